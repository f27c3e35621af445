package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/activity"
	"github.com/clouddbmanager/clouddb/projections"
)

// IdentityRoutes is what the HTTP handlers of authentication, tenants and platform administration
// need.
type IdentityRoutes struct {
	Commands    *commands.Identity
	Tenants     *commands.Tenants
	Members     *commands.Members
	Views       *projections.Views
	Activity    *activity.Tracker
	Tokens      *Tokens
	Events      *eventstore.Store
	Projections *projections.Runtime
	Limits      *Limits
	// SecureCookie marks the session cookie Secure (CLOUDDB_PUBLIC_URL is https).
	SecureCookie bool
	Now          func() time.Time
}

// MountIdentity adds the routes of authentication, sessions, tenants, plans and platform
// administration.
func (s *Server) MountIdentity(id IdentityRoutes) {
	s.identity = id
	s.mount([]route{
		{"POST", "/auth/register", public, s.limited(limitRegister, s.handleRegister)},
		{"POST", "/auth/verify", public, s.handleVerify},
		{"POST", "/auth/verify/resend", public, s.limited(limitMail, s.handleResend)},
		{"POST", "/auth/login", public, s.limited(limitLogin, s.handleLogin)},
		{"POST", "/auth/refresh", public, s.handleRefresh},
		{"POST", "/auth/logout", authenticated, s.handleLogout},
		{"POST", "/auth/password/forgot", public, s.limited(limitMail, s.handleForgot)},
		{"POST", "/auth/password/reset", public, s.limited(limitRegister, s.handleReset)},
		{"POST", "/auth/unlock", public, s.limited(limitRegister, s.handleUnlock)},
		{"GET", "/me", authenticated, s.handleMe},
		{"GET", "/me/tenants", authenticated, s.handleMyTenants},
		{"PUT", "/me/password", authenticated, s.handleChangePassword},
		{"POST", "/me/reauth", authenticated, s.limited(limitLogin, s.handleReauth)},
		{"GET", "/me/sessions", authenticated, s.handleMySessions},
		{"DELETE", "/me/sessions/{id}", authenticated, s.handleEndMySession},
		{"POST", "/me/totp/setup", authenticated, s.handleTOTPSetup},
		{"POST", "/me/totp/enable", authenticated, s.handleTOTPEnable},
		{"POST", "/me/totp/disable", authenticated, s.handleTOTPDisable},
		{"POST", "/me/api-keys", authenticated, s.handleCreateAPIKey},
		{"GET", "/me/api-keys", authenticated, s.handleAPIKeys},
		{"DELETE", "/me/api-keys/{id}", authenticated, s.handleRevokeAPIKey},
		{"POST", "/me/leave", member | confirmed, s.handleLeave},
		{"GET", "/plans", public, s.handlePlans},
		{"POST", "/tenants", authenticated | interactive, s.handleCreateTenant},
		{"GET", "/tenant", member, s.handleTenant},
		{"PATCH", "/tenant/settings", tenantAdmin, s.handleTenantSettings},
		{"POST", "/invitations", tenantAdmin | confirmed, s.handleInvite},
		{"GET", "/invitations", tenantAdmin, s.handleInvitations},
		{"DELETE", "/invitations/{id}", tenantAdmin, s.handleRevokeInvitation},
		{"POST", "/invitations/accept", public, s.limited(limitRegister, s.handleAcceptInvitation)},
		{"GET", "/roles", member, s.handleRoles},
		{"GET", "/users", tenantAdmin, s.handleUsers},
		{"GET", "/users/{id}/resources", tenantAdmin, s.handleUserResources},
		{"PUT", "/users/{id}/role", tenantAdmin | confirmed, s.handleChangeRole},
		{"PUT", "/users/{id}/quota", tenantAdmin, s.handleSetSubQuota},
		{"POST", "/users/{id}/deactivate", tenantAdmin | confirmed, s.handleDeactivate},
		{"POST", "/users/{id}/reactivate", tenantAdmin | confirmed, s.handleReactivate},
		{"POST", "/admin/users/{id}/force-password-reset", superAdmin | confirmed, s.handleForcePasswordReset},
		{"POST", "/admin/tenants/{tenant}/users/{id}/reactivate", superAdmin | confirmed, s.handleAdminReactivate},
		{"PUT", "/admin/tenants/{tenant}/users/{id}/role", superAdmin | confirmed, s.handleAdminChangeRole},
		{"GET", "/admin/tenants", superAdmin, s.handleAdminTenants},
		{"POST", "/admin/tenants", superAdmin | interactive, s.handleAdminCreateTenant},
		{"PUT", "/admin/tenants/{id}/plan", superAdmin, s.handleAdminPlan},
		{"GET", "/admin/events", superAdmin, s.handleAdminEvents},
		{"GET", "/admin/projections", superAdmin, s.handleAdminProjections},
		{"POST", "/admin/projections/{name}/rebuild", superAdmin, s.handleAdminRebuild},
	})
}

// route is one /api/v1 route and who may call it. The changes of who belongs to or controls a
// tenant are confirmed (API keys refused, a recent password in a session), and creating a tenant
// is interactive (API keys refused): docs/SECURITY.md "Control of a tenant" says why each.
type route struct {
	method, path string
	access       access
	handler      http.HandlerFunc
}

// mount adds routes under /api/v1, each behind the guard of its access level. Every POST route
// that is not public takes an Idempotency-Key (idempotent, inside the guard: keys belong to the
// principal); public POSTs (login, register, ...) ignore the header.
func (s *Server) mount(routes []route) {
	for _, rt := range routes {
		h := rt.handler
		if rt.method == http.MethodPost && rt.access != public {
			h = s.idempotent(h)
		}
		s.api.HandleFunc(rt.path, s.knownQuery(rt.method, rt.path, s.guard(rt.access, h))).Methods(rt.method)
	}
}

// metadata is the audit metadata of the events a request causes.
func metadata(ctx context.Context, r *http.Request) eventstore.Metadata {
	m := eventstore.Metadata{RequestID: RequestID(ctx), CorrelationID: RequestID(ctx)}
	if p := principalFrom(ctx); p.UserID != "" {
		m.ActorID, m.TenantID = string(p.UserID), string(p.TenantID)
		if p.APIKeyID != "" {
			m.APIKeyID = string(p.APIKeyID)
		} else {
			m.SessionID = string(p.SessionID)
		}
	}
	if r != nil {
		m.IP, m.UserAgent = remoteIP(r), userAgent(r)
	}
	return m
}

func pathID[T ~string](r *http.Request, parse func(string) (T, error)) (T, error) {
	id, err := parse(mux.Vars(r)["id"])
	if err != nil {
		var zero T
		return zero, domain.ErrNotFound // a malformed id names nothing that exists
	}
	return id, nil
}
