package commands

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// DefaultIdleTimeout ends a session without a tenant after this long without activity; a
// tenant's sessions use its idle_timeout_minutes setting.
const DefaultIdleTimeout = 30 * time.Minute

// Login is POST /auth/login.
type Login struct {
	Email, Password string
	Tenant          string // id or slug; optional when the user belongs to one tenant or none
	TOTPCode        string // a 6-digit code or a recovery code, when the account has two factors
	IP, UserAgent   string
	Meta            eventstore.Metadata
}

// LoginResult is a started session and the refresh token that continues it.
type LoginResult struct {
	Session      domain.SessionStarted
	RefreshToken string
	User         *domain.User
	Tenant       *domain.Membership // nil when the session has no tenant
}

// Login authenticates and starts a session. Returns domain.ErrInvalidCredentials for an unknown
// email or wrong password, a *domain.AccountLockedError while the account is locked (the fifth
// failure within 15 minutes locks it; the password with a valid two-factor code lifts the lock), domain.ErrEmailNotVerified, or a *domain.ValidationError
// for the tenant. An unknown email does the work of a wrong password, read for read, comparison
// for comparison and append for append (on the address's own stream, which locks alike), so
// neither the time nor the answer tells whether the address has an account.
func (h *Identity) Login(ctx context.Context, cmd Login) (LoginResult, error) {
	email, err := domain.NormalizeEmail(cmd.Email)
	if err != nil {
		return LoginResult{}, domain.ErrInvalidCredentials
	}
	id, ok, err := h.accountOf(ctx, email, cmd.Email)
	if err != nil {
		return LoginResult{}, err
	}
	if !ok {
		return LoginResult{}, h.failUnknownAddress(ctx, email, cmd)
	}
	user, err := h.loadUser(ctx, id)
	if err != nil {
		return LoginResult{}, err
	}
	locked := user.Locked(h.now())
	checkedHash := user.PasswordHash()
	if !h.passwordMatches(cmd.Password)(checkedHash) {
		return LoginResult{}, h.failLogin(ctx, h.account(id), "password", cmd)
	}
	if user.ResetForced() {
		// A super admin forced a reset: the password is answered as a wrong one until the owner
		// sets a new one through the mailed link.
		return LoginResult{}, h.failLogin(ctx, h.account(id), "reset_forced", cmd)
	}
	if locked != nil && !(user.TOTPEnabled() && cmd.TOTPCode != "") {
		// The right password during a lock is answered like a wrong one, after the same work:
		// the lock must not tell a guess that hit. With a two-factor code it may lift the lock
		// (below); otherwise the owner lifts it with the mailed unlock link.
		return LoginResult{}, h.failLogin(ctx, h.account(id), "locked", cmd)
	}
	if user.Status() != domain.UserActive {
		return LoginResult{}, domain.ErrEmailNotVerified
	}
	if user.TOTPEnabled() && cmd.TOTPCode == "" {
		return LoginResult{}, domain.ErrTOTPRequired
	}
	membership, err := h.pickTenant(ctx, id, cmd.Tenant)
	if err != nil {
		return LoginResult{}, err
	}
	var result LoginResult
	err = retry(ctx, func() error {
		user, err := h.loadUser(ctx, id)
		if err != nil {
			return err
		}
		if err := user.Locked(h.now()); err != nil && !user.TOTPEnabled() {
			return err
		}
		if user.PasswordHash() != checkedHash {
			return domain.ErrInvalidCredentials // the password changed since it was checked
		}
		var step int64
		if user.TOTPEnabled() {
			if step, err = h.secondFactor(ctx, user, cmd.TOTPCode); err != nil {
				return err
			}
			user.UnlockWithSecondFactor(h.now())
		}
		started, idle, guard, err := h.sessionStart(ctx, user, membership)
		if err != nil {
			return err
		}
		token, refreshHash := newToken(string(started.SessionID))
		started.RefreshHash = refreshHash
		started.IP, started.UserAgent = cmd.IP, truncate(cmd.UserAgent, 512)
		started.StartedAt = h.now().UTC()
		started.ExpiresAt = started.StartedAt.Add(domain.SessionLifetime)
		started.IdleTimeout = int64(idle / time.Second)
		session := domain.StartSession(started)
		if err := user.SucceedLogin(started.SessionID, started.TenantID, step, started.StartedAt); err != nil {
			return err
		}
		meta := cmd.Meta
		meta.ActorID, meta.TenantID, meta.SessionID = string(id), string(started.TenantID), string(started.SessionID)
		streams := []eventstore.Stream{stream(id.Stream(), "user", user), stream(started.SessionID.Stream(), "session", session)}
		if guard != nil {
			streams = append(streams, *guard)
		}
		if err := h.append(ctx, eventstore.Append{Streams: streams, Metadata: meta}); err != nil {
			return err
		}
		result = LoginResult{Session: started, RefreshToken: token, User: user, Tenant: membership}
		return nil
	})
	if errors.Is(err, domain.ErrInvalidTOTP) {
		return LoginResult{}, h.failLogin(ctx, h.account(id), "totp", cmd)
	}
	return result, err
}

// failUnknownAddress answers a login for an address without an account after the work a wrong
// password costs an account: its stream read, a bcrypt comparison against a hash of the
// configured cost, and a failed login recorded (on domain.AddressStream).
func (h *Identity) failUnknownAddress(ctx context.Context, email string, cmd Login) error {
	address := h.address(email)
	if _, err := address.load(ctx); err != nil {
		return err
	}
	h.Passwords.Matches(h.dummyHash, cmd.Password)
	return h.failLogin(ctx, address, "password", cmd)
}

// lockable is what a failed login is recorded on: an account, or an address without one.
type lockable interface {
	recorder
	FailLogin(reason, ip, userAgent string, now time.Time) error
}

// loginTarget names a lockable's stream and loads it.
type loginTarget struct {
	stream, typ string
	actor       domain.UserID
	load        func(ctx context.Context) (lockable, error)
}

func (h *Identity) account(id domain.UserID) loginTarget {
	return loginTarget{stream: id.Stream(), typ: "user", actor: id, load: func(ctx context.Context) (lockable, error) {
		return h.loadUser(ctx, id)
	}}
}

func (h *Identity) address(email string) loginTarget {
	streamID := domain.AddressStream(email)
	return loginTarget{stream: streamID, typ: "address", load: func(ctx context.Context) (lockable, error) {
		return load(ctx, h.events, streamID, domain.RebuildAddress)
	}}
}

// failLogin records a failed attempt (which may lock the account) and returns what to answer.
func (h *Identity) failLogin(ctx context.Context, target loginTarget, reason string, cmd Login) error {
	var answer error
	err := retry(ctx, func() error {
		subject, err := target.load(ctx)
		if err != nil {
			return err
		}
		answer = subject.FailLogin(reason, cmd.IP, truncate(cmd.UserAgent, 512), h.now())
		meta := cmd.Meta
		meta.ActorID = string(target.actor)
		_, err = h.events.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(target.stream, target.typ, subject)}, Metadata: meta})
		return err
	})
	if err != nil {
		return err
	}
	return answer
}

// pickTenant resolves the tenant of a login among the user's memberships: the one named by id or
// slug, the only one, or none.
func (h *Identity) pickTenant(ctx context.Context, user domain.UserID, wanted string) (*domain.Membership, error) {
	memberships, err := h.directory.MembershipsOf(ctx, user)
	if err != nil {
		return nil, err
	}
	if wanted == "" {
		switch len(memberships) {
		case 0:
			return nil, nil
		case 1:
			return &memberships[0], nil
		}
		return nil, &domain.TenantChoiceError{Tenants: memberships}
	}
	for i, m := range memberships {
		if string(m.TenantID) == wanted || m.Slug == wanted {
			return &memberships[i], nil
		}
	}
	return nil, domain.NewValidationError("tenant", "you are not a member of this tenant")
}

// sessionStart fills in who the session is for: the role comes from the tenant's own stream,
// not the read model. guard appends nothing to the tenant's stream but expects the version the
// role was read at, so a role change committed meanwhile makes the login decide again instead of
// starting a session with the old role.
func (h *Identity) sessionStart(ctx context.Context, user *domain.User, m *domain.Membership) (started domain.SessionStarted, idle time.Duration, guard *eventstore.Stream, err error) {
	started = domain.SessionStarted{SessionID: domain.SessionID(uuid.NewString()), UserID: user.ID(), SuperAdmin: user.SuperAdmin()}
	if m == nil {
		return started, DefaultIdleTimeout, nil, nil
	}
	tenant, err := load(ctx, h.events, m.TenantID.Stream(), domain.RebuildTenant)
	if err != nil {
		return started, 0, nil, err
	}
	role := tenant.Role(user.ID())
	if role == "" {
		return started, 0, nil, domain.NewValidationError("tenant", "you are not a member of this tenant")
	}
	m.Role = role
	started.TenantID, started.Role = tenant.ID(), role
	g := stream(tenant.ID().Stream(), "tenant", tenant)
	return started, time.Duration(tenant.Settings().IdleTimeoutMinutes) * time.Minute, &g, nil
}

// Refresh rotates a session's refresh token. Returns domain.ErrUnauthenticated for an ended,
// expired or unknown session or token; presenting a spent token ends the session. The session's
// own stream decides: every end of a session, password and role changes included, is recorded
// there.
func (h *Identity) Refresh(ctx context.Context, refreshToken string, meta eventstore.Metadata) (domain.SessionStarted, string, error) {
	rawID, presented, err := parseToken(refreshToken)
	if err != nil {
		return domain.SessionStarted{}, "", domain.ErrUnauthenticated
	}
	id := domain.SessionID(rawID)
	var started domain.SessionStarted
	var token string
	err = retry(ctx, func() error {
		session, err := h.loadSession(ctx, id)
		if errors.Is(err, domain.ErrNotFound) {
			return domain.ErrUnauthenticated
		} else if err != nil {
			return err
		}
		var next string
		token, next = newToken(rawID)
		refreshErr := session.Refresh(presented, next, h.now())
		if len(session.PendingEvents()) > 0 {
			meta.ActorID, meta.TenantID = string(session.UserID()), string(session.Started().TenantID)
			if err := h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "session", session)}, Metadata: meta}); err != nil {
				return err
			}
		}
		started = session.Started()
		return refreshErr
	})
	return started, token, err
}

// SessionOfRefreshToken returns the session a refresh token belongs to, without checking it.
// Returns domain.ErrUnauthenticated for a malformed token.
func SessionOfRefreshToken(token string) (domain.SessionID, error) {
	id, _, err := parseToken(token)
	if err != nil {
		return "", domain.ErrUnauthenticated
	}
	return domain.SessionID(id), nil
}

// EndSession ends one of the user's sessions (logout, or revoking another device). Returns
// domain.ErrNotFound for a session of someone else.
func (h *Identity) EndSession(ctx context.Context, user domain.UserID, id domain.SessionID, reason string, meta eventstore.Metadata) error {
	return retry(ctx, func() error {
		session, err := h.loadSession(ctx, id)
		if err != nil {
			return err
		}
		if session.UserID() != user {
			return domain.ErrNotFound
		}
		session.End(reason, h.now())
		if len(session.PendingEvents()) == 0 {
			return nil
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "session", session)}, Metadata: meta})
	})
}

// sessionsOf loads the sessions of logins, for a change that ends sessions to decide on. The
// sessions it ends are appended in the same transaction as the change: no moment exists in which
// the change is recorded and a session it ends still refreshes, and a refresh racing the change
// makes one of the two decide again. One transaction is affordable because the candidates are the
// user's logins since the last password change (every password change ends them all): a few
// stream reads for a person's sessions.
func (h *Identity) sessionsOf(ctx context.Context, logins []domain.UserLoginSucceeded) ([]*domain.Session, error) {
	sessions := make([]*domain.Session, 0, len(logins))
	for _, login := range logins {
		session, err := h.loadSession(ctx, login.SessionID)
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, session)
	}
	return sessions, nil
}

// userWithSessions loads a user and the sessions of its logins (for a change that ends them).
func (h *Identity) userWithSessions(ctx context.Context, id domain.UserID) (*domain.User, []*domain.Session, error) {
	u, err := h.loadUser(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	sessions, err := h.sessionsOf(ctx, u.Logins())
	return u, sessions, err
}

// endedStreams ends those of sessions that change ends and returns their streams, each expecting
// the version it was read at, to append with the change.
func endedStreams(change domain.SessionEnding, sessions []*domain.Session) []eventstore.Stream {
	var streams []eventstore.Stream
	for _, session := range change.End(sessions) {
		streams = append(streams, stream(session.ID().Stream(), "session", session))
	}
	return streams
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n-- // do not cut a UTF-8 sequence
	}
	return s[:n]
}
