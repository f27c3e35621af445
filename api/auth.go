package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

// cookieName is the browser session cookie carrying the access token.
const cookieName = "clouddb_session"

// access is who may call a route. The route tables (MountIdentity, MountDatabases, MountQueries)
// give every route one; this file is the one place that decides it.
type access int

const (
	public        access = iota // anyone
	authenticated               // any logged-in user, with or without a tenant
	member                      // a member of the session's tenant (viewer and up)
	developer
	tenantAdmin
	superAdmin

	// levels is the role level of an access; the bits above it are what a route asks of the
	// authentication itself.
	levels access = 0xff
	// interactive refuses API keys: a stolen key must not create tenants in its owner's name.
	interactive access = 1 << 8
	// confirmed is interactive and needs the session's password (and two-factor code) checked
	// within domain.ReauthWindow: the changes of who belongs to or controls a tenant, which
	// would outlast a stolen key or token, the owner's password reset and the key's revocation
	// (docs/SECURITY.md "Control of a tenant").
	confirmed access = 1<<9 | interactive
)

// level is the role level a route needs, without what it asks of the authentication.
func (a access) level() access { return a & levels }

// Principal is who is calling: the session's user, tenant and role.
type Principal struct {
	UserID     domain.UserID
	SessionID  domain.SessionID
	TenantID   domain.TenantID // "" for a session without tenant
	Role       domain.Role     // the role in TenantID
	SuperAdmin bool
	Session    projections.SessionView // zero for an API key
	APIKeyID   domain.APIKeyID         // set when an API key authenticated the request
	User       projections.UserView    // the caller's account as the request found it
}

type principalKey struct{}

func principalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// role is what p acts as in the session's tenant (domain.EffectiveRole); "" without a tenant.
func (p Principal) role() domain.Role {
	if p.TenantID == "" {
		return ""
	}
	return domain.EffectiveRole(p.Role, p.SuperAdmin)
}

// allows reports whether p may call a route of level a.
func (p Principal) allows(a access) bool {
	role := p.role()
	switch a.level() {
	case public, authenticated:
		return true
	case member:
		return role.AtLeast(domain.RoleViewer)
	case developer:
		return role.AtLeast(domain.RoleDeveloper)
	case tenantAdmin:
		return role.AtLeast(domain.RoleTenantAdmin)
	case superAdmin:
		return p.SuperAdmin
	}
	return false
}

// guard authenticates the request (unless the route is public) and checks its access level, and
// what the route asks of the authentication, before calling h.
func (s *Server) guard(a access, h http.HandlerFunc) http.HandlerFunc {
	if a == public {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !p.allows(a) {
			err := domain.ErrForbidden
			if a.level() >= member && a.level() < superAdmin && p.TenantID == "" {
				err = &Error{Status: http.StatusForbidden, Code: "forbidden",
					Message: "This needs a tenant: log in to one of your tenants, or create one with POST /api/v1/tenants."}
			}
			s.writeError(w, r, err)
			return
		}
		if err := s.confirmAuthentication(r.Context(), a, p); err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// confirmAuthentication refuses an API key on an interactive route (domain.ErrAPIKeyNotAllowed)
// and, on a confirmed one, a session whose password was not checked recently
// (domain.ErrReauthenticationRequired), by the same rule as the changes of credentials.
func (s *Server) confirmAuthentication(ctx context.Context, a access, p Principal) error {
	switch {
	case a&confirmed == confirmed:
		return s.identity.Commands.ConfirmRecentAuthentication(ctx, commands.Caller{User: p.UserID, Session: p.SessionID})
	case a&interactive != 0 && p.APIKeyID != "":
		return domain.ErrAPIKeyNotAllowed
	}
	return nil
}

// authenticate resolves the bearer token, or the session cookie (then a mutating request must
// carry X-CSRF-Token), and checks that its session is live and not idle.
func (s *Server) authenticate(r *http.Request) (Principal, error) {
	id := s.identity
	token, fromCookie := bearer(r)
	if token == "" {
		return Principal{}, domain.ErrUnauthenticated
	}
	if strings.HasPrefix(token, commands.APIKeyPrefix) {
		return s.authenticateAPIKey(r.Context(), token)
	}
	claims, err := id.Tokens.parse(token)
	if err != nil {
		return Principal{}, err
	}
	sid := domain.SessionID(claims.SessionID)
	if fromCookie && !safeMethod(r.Method) && !id.Tokens.validCSRF(sid, r.Header.Get("X-CSRF-Token")) {
		return Principal{}, &Error{Status: http.StatusForbidden, Code: "forbidden",
			Message: "A request authenticated by cookie must carry the X-CSRF-Token returned at login."}
	}
	session, user, err := id.Views.SessionAndUser(r.Context(), sid)
	if errors.Is(err, domain.ErrNotFound) {
		return Principal{}, domain.ErrUnauthenticated
	} else if err != nil {
		return Principal{}, err
	}
	now := id.Now()
	if session.EndedAt != nil || !now.Before(session.ExpiresAt) || string(session.UserID) != claims.Subject {
		return Principal{}, domain.ErrUnauthenticated
	}
	active, err := id.Activity.Touch(r.Context(), string(sid), session.LastActive(), session.IdleTimeout, now)
	if err != nil {
		return Principal{}, err
	}
	if !active {
		s.endIdleSession(r.Context(), session)
		return Principal{}, domain.ErrUnauthenticated
	}
	return Principal{UserID: session.UserID, SessionID: sid, TenantID: session.TenantID, Role: session.Role,
		SuperAdmin: session.SuperAdmin, Session: session, User: user}, nil
}

// authenticateAPIKey resolves a "cdb_..." key: unrevoked, unexpired, its hash matching, and the
// owner's current role in the key's tenant.
func (s *Server) authenticateAPIKey(ctx context.Context, key string) (Principal, error) {
	id, hash, err := commands.ParseAPIKey(key)
	if err != nil {
		return Principal{}, err
	}
	k, err := s.identity.Views.APIKey(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return Principal{}, domain.ErrUnauthenticated
	} else if err != nil {
		return Principal{}, err
	}
	if subtle.ConstantTimeCompare([]byte(k.Hash), []byte(hash)) != 1 || k.RevokedAt != nil ||
		(k.ExpiresAt != nil && !s.identity.Now().Before(*k.ExpiresAt)) {
		return Principal{}, domain.ErrUnauthenticated
	}
	user, err := s.identity.Views.User(ctx, k.UserID)
	if err != nil {
		return Principal{}, err
	}
	p := Principal{UserID: k.UserID, TenantID: k.TenantID, SuperAdmin: user.SuperAdmin, APIKeyID: k.ID, User: user}
	if k.TenantID != "" {
		if p.Role, err = s.identity.Views.RoleIn(ctx, k.TenantID, k.UserID); err != nil {
			return Principal{}, err
		}
		if p.Role == "" {
			return Principal{}, domain.ErrUnauthenticated // the owner left the tenant
		}
	}
	return p, nil
}

// checkIdle refuses a refresh token whose session has been idle past its timeout: refreshing
// must not revive it. It records nothing: only a refresh that succeeds counts as activity (its
// refreshed_at), so guessing refresh tokens cannot keep someone's session alive.
func (s *Server) checkIdle(ctx context.Context, refreshToken string) error {
	sid, err := commands.SessionOfRefreshToken(refreshToken)
	if err != nil {
		return err
	}
	session, err := s.identity.Views.Session(ctx, sid)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.ErrUnauthenticated
	} else if err != nil {
		return err
	}
	active, err := s.identity.Activity.Active(ctx, string(sid), session.LastActive(), session.IdleTimeout, s.identity.Now())
	if err != nil {
		return err
	}
	if !active && session.EndedAt == nil {
		s.endIdleSession(ctx, session)
		return domain.ErrUnauthenticated
	}
	return nil
}

// endIdleSession records the idle timeout; failing to record it changes nothing for the caller,
// whose request is refused either way.
func (s *Server) endIdleSession(ctx context.Context, session projections.SessionView) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.identity.Commands.EndSession(ctx, session.UserID, session.ID, domain.EndIdle, metadata(ctx, nil)); err != nil {
		s.log.Warn("could not record an idle session's end", "session_id", session.ID, "err", err)
	}
}

func bearer(r *http.Request) (token string, fromCookie bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, value, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(value), false
		}
		return "", false
	}
	if c, err := r.Cookie(cookieName); err == nil {
		return c.Value, true
	}
	return "", false
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// permissions is what GET /me tells a UI the caller may do.
func (p Principal) permissions() []string {
	var perms []string
	add := func(a access, names ...string) {
		if p.allows(a) && (a == authenticated || a == superAdmin || p.TenantID != "") {
			perms = append(perms, names...)
		}
	}
	add(authenticated, "profile:write", "tenants:create")
	add(member, "tenant:read", "databases:read", "queries:read", "metrics:read")
	add(developer, "databases:write", "queries:write")
	add(tenantAdmin, "tenant:settings", "members:manage", "audit:read", "alerts:manage")
	add(superAdmin, "platform:admin")
	return perms
}
