package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
)

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	user := p.User
	doc := map[string]any{
		"user": map[string]any{"id": user.ID, "email": user.Email, "name": user.Name, "status": user.Status,
			"totp_enabled": user.TOTPEnabled, "super_admin": user.SuperAdmin},
		"tenant":      nil,
		"permissions": p.permissions(),
		"session":     nil, // an API key has no session
	}
	if p.APIKeyID == "" {
		doc["session"] = map[string]any{"id": p.SessionID, "expires_at": p.Session.ExpiresAt.UTC().Format(time.RFC3339),
			"idle_timeout_s": int(p.Session.IdleTimeout / time.Second)}
	}
	if p.TenantID != "" {
		t, err := s.identity.Views.Tenant(r.Context(), p.TenantID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		doc["tenant"] = tenantRef{ID: t.ID, Slug: t.Slug, Name: t.Name, Role: p.Role}
	} else {
		// Onboarding: what a user without a tenant can do next.
		doc["next_steps"] = []map[string]string{
			{"action": "create_tenant", "method": "POST", "path": "/api/v1/tenants"},
			{"action": "list_tenants", "method": "GET", "path": "/api/v1/me/tenants"},
			{"action": "accept_invitation", "method": "POST", "path": "/api/v1/invitations/accept"},
		}
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) handleMyTenants(w http.ResponseWriter, r *http.Request) {
	memberships, err := s.identity.Views.MembershipsOf(r.Context(), principalFrom(r.Context()).UserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]tenantRef, len(memberships))
	for i, m := range memberships {
		items[i] = tenantRef{ID: m.TenantID, Slug: m.Slug, Name: m.Name, Role: m.Role}
	}
	used, limit, err := s.identity.Tenants.FreeTenants(r.Context(), principalFrom(r.Context()).UserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "free_tenants": map[string]int{"used": used, "limit": limit}})
}

func (s *Server) handleChangePassword(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CurrentPassword string `json:"current_password"`
		NewPassword     string `json:"new_password"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.identity.Commands.ChangePassword(r.Context(), caller(r), req.CurrentPassword, req.NewPassword, metadata(r.Context(), r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleMySessions(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	sessions, err := s.identity.Views.LiveSessionsOf(r.Context(), p.UserID, s.identity.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]map[string]any, len(sessions))
	for i, ses := range sessions {
		items[i] = map[string]any{
			"id": ses.ID, "tenant_id": nullable(string(ses.TenantID)), "role": nullable(string(ses.Role)),
			"ip": ses.IP, "user_agent": ses.UserAgent,
			"started_at": ses.StartedAt.UTC().Format(time.RFC3339), "expires_at": ses.ExpiresAt.UTC().Format(time.RFC3339),
			"current": ses.ID == p.SessionID,
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nil})
}

func (s *Server) handleEndMySession(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, domain.ParseSessionID)
	if principalFrom(r.Context()).APIKeyID != "" {
		err = errNoSession
	}
	if err == nil {
		p := principalFrom(r.Context())
		err = s.identity.Commands.EndSession(r.Context(), p.UserID, id, domain.EndRevoked, metadata(r.Context(), r))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// errNoSession answers session routes called with an API key.
var errNoSession = &Error{Status: http.StatusBadRequest, Code: "invalid_request",
	Message: "This request authenticated with an API key, which has no session: revoke the key instead."}

// caller is who asks for a change of their own account: the user and the request's session (none
// for an API key).
func caller(r *http.Request) commands.Caller {
	p := principalFrom(r.Context())
	return commands.Caller{User: p.UserID, Session: p.SessionID}
}

// handleReauth confirms the password (and two-factor code) again, so that this session may
// change the account's credentials for the next domain.ReauthWindow.
func (s *Server) handleReauth(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Password string `json:"password"`
		TOTPCode string `json:"totp_code"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.identity.Commands.Reauthenticate(r.Context(), caller(r), req.Password, req.TOTPCode, metadata(r.Context(), r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	until := s.identity.Now().Add(domain.ReauthWindow).UTC()
	writeJSON(w, http.StatusOK, map[string]any{"reauthenticated_until": until.Format(time.RFC3339)})
}

func (s *Server) handleTOTPSetup(w http.ResponseWriter, r *http.Request) {
	secret, url, err := s.identity.Commands.StartTOTP(r.Context(), caller(r), metadata(r.Context(), r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"secret": secret, "otpauth_url": url})
}

type codeRequest struct {
	Code string `json:"code"`
}

func (s *Server) handleTOTPEnable(w http.ResponseWriter, r *http.Request) {
	var req codeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	codes, err := s.identity.Commands.EnableTOTP(r.Context(), caller(r), req.Code, metadata(r.Context(), r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
}

func (s *Server) handleTOTPDisable(w http.ResponseWriter, r *http.Request) {
	var req codeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.identity.Commands.DisableTOTP(r.Context(), caller(r), req.Code, metadata(r.Context(), r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleCreateAPIKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name      string     `json:"name"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p := principalFrom(r.Context())
	id, key, err := s.identity.Commands.CreateAPIKey(r.Context(), caller(r), p.TenantID, req.Name, req.ExpiresAt, metadata(r.Context(), r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"id": id, "name": strings.TrimSpace(req.Name), "key": key,
		"tenant_id": nullable(string(p.TenantID)), "expires_at": req.ExpiresAt})
}

func (s *Server) handleAPIKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.identity.Views.APIKeysOf(r.Context(), principalFrom(r.Context()).UserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]map[string]any, len(keys))
	for i, k := range keys {
		items[i] = map[string]any{"id": k.ID, "name": k.Name, "tenant_id": nullable(string(k.TenantID)),
			"created_at": k.CreatedAt.UTC().Format(time.RFC3339), "expires_at": k.ExpiresAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nil})
}

func (s *Server) handleRevokeAPIKey(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, domain.ParseAPIKeyID)
	if err == nil {
		err = s.identity.Commands.RevokeAPIKey(r.Context(), principalFrom(r.Context()).UserID, id, metadata(r.Context(), r))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
