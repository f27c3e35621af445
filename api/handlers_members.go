package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

func (s *Server) handleInvite(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Emails  []string `json:"emails"`
		Role    string   `json:"role"`
		Message string   `json:"message"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p := principalFrom(r.Context())
	invited, failures, err := s.identity.Commands.Invite(r.Context(), commands.Invite{
		Tenant: p.TenantID, Actor: p.UserID, ActorRole: p.role(), Emails: req.Emails, Role: req.Role,
		Message: req.Message, Meta: metadata(r.Context(), r)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]map[string]any, len(invited))
	for i, inv := range invited {
		items[i] = map[string]any{"id": inv.InvitationID, "email": inv.Email, "role": inv.Role, "status": "pending",
			"expires_at": inv.ExpiresAt.UTC().Format(time.RFC3339)}
	}
	errs := make([]map[string]any, len(failures))
	var retry time.Duration
	limited := 0
	for i, f := range failures {
		errs[i] = map[string]any{"email": f.Email, "code": f.Code, "message": f.Message}
		if f.Code == "rate_limited" {
			errs[i]["retry_after_s"] = int(f.RetryAfter.Seconds())
			retry, limited = max(retry, f.RetryAfter), limited+1
		}
	}
	if len(invited) == 0 && limited == len(failures) && limited > 0 {
		// Nothing was sent, only because of the invitation bounds: the request as a whole is limited.
		s.writeError(w, r, rateLimited(retry))
		return
	}
	status := http.StatusCreated
	if len(invited) == 0 {
		status = http.StatusOK // nothing was created; errors says why
	}
	writeJSON(w, status, map[string]any{"items": items, "errors": errs})
}

func (s *Server) handleInvitations(w http.ResponseWriter, r *http.Request) {
	invitations, err := s.identity.Views.InvitationsOf(r.Context(), principalFrom(r.Context()).TenantID, s.identity.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]map[string]any, len(invitations))
	for i, inv := range invitations {
		items[i] = map[string]any{"id": inv.ID, "email": inv.Email, "role": inv.Role, "status": inv.Status,
			"invited_by": inv.InvitedBy, "created_at": inv.CreatedAt.UTC().Format(time.RFC3339),
			"expires_at": inv.ExpiresAt.UTC().Format(time.RFC3339)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nil})
}

func (s *Server) handleRevokeInvitation(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, domain.ParseInvitationID)
	if err == nil {
		err = s.identity.Commands.RevokeInvitation(r.Context(), principalFrom(r.Context()).TenantID, id, metadata(r.Context(), r))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAcceptInvitation(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token    string `json:"token"`
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	m, user, err := s.identity.Commands.AcceptInvitation(r.Context(), req.Token, req.Name, req.Password, metadata(r.Context(), r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant": tenantRef{ID: m.TenantID, Slug: m.Slug, Name: m.Name, Role: m.Role}, "user_id": user})
}

func (s *Server) handleRoles(w http.ResponseWriter, r *http.Request) {
	actor := principalFrom(r.Context()).role()
	items := make([]map[string]any, len(domain.TenantRoles))
	for i, role := range domain.TenantRoles {
		items[i] = map[string]any{"name": role, "level": role.Level(), "assignable": actor.CanAssign(role)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) handleUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f projections.MemberFilter
	var fields = map[string]string{}
	if raw := q.Get("role"); raw != "" {
		role, err := domain.ParseTenantRole("role", raw)
		if err != nil {
			fields["role"] = "must be viewer, developer or tenant_admin"
		}
		f.Role = role
	}
	switch status := q.Get("status"); status {
	case "", string(domain.UserActive), string(domain.UserPendingVerification), string(domain.MemberDeactivated):
		f.Status = status
	default:
		fields["status"] = "must be active, deactivated or pending_verification"
	}
	if raw := q.Get("active_since"); raw != "" {
		at, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			fields["active_since"] = "must be an RFC 3339 time"
		}
		f.ActiveSince = &at
	}
	limit, err := pageLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(fields) > 0 {
		s.writeError(w, r, &domain.ValidationError{Fields: fields})
		return
	}
	tenant := principalFrom(r.Context()).TenantID
	members, next, err := s.identity.Views.Members(r.Context(), tenant, f, q.Get("cursor"), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	quota, err := s.databases.Commands.Quota(r.Context(), tenant)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	storage, err := s.identity.Views.StorageByOwner(r.Context(), tenant)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]map[string]any, len(members))
	for i, m := range members {
		var sub any
		if mq := quota.MemberQuota(m.ID); mq != (domain.MemberQuota{}) {
			sub = mq
		}
		items[i] = map[string]any{"id": m.ID, "email": m.Email, "name": m.Name, "role": m.Role, "status": m.Status,
			"last_login_at": m.LastLoginAt, "joined_at": m.JoinedAt.UTC().Format(time.RFC3339),
			"usage": map[string]any{"databases": quota.DatabasesOf(m.ID), "storage_bytes": storage[m.ID]}, "quota": sub,
			"deactivation": deactivationDocument(m.Deactivation)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nullable(next)})
}

// deactivationDocument is a member's deactivation as GET /users shows it; null while active.
func deactivationDocument(d *projections.MemberDeactivation) any {
	if d == nil {
		return nil
	}
	return map[string]any{"type": d.Type, "reason": d.Reason, "at": d.At.Format(time.RFC3339),
		"reactivate_at": d.ReactivateAt, "grace_until": d.GraceUntil}
}

// handleUserResources is what a member holds in the tenant: the databases they own (deleted ones
// within their recovery window too) with their storage, their API keys for this tenant, their live
// sessions in it, and the invitations they sent that are still pending. What they hold in other
// tenants is not this tenant's business.
func (s *Server) handleUserResources(w http.ResponseWriter, r *http.Request) {
	user, err := pathID(r, domain.ParseUserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tenant, views, now := principalFrom(r.Context()).TenantID, s.identity.Views, s.identity.Now()
	if _, err := views.Member(r.Context(), tenant, user); err != nil {
		s.writeError(w, r, err)
		return
	}
	owned, err := views.DatabasesOwnedBy(r.Context(), tenant, user)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	databases, storage := make([]map[string]any, len(owned)), int64(0)
	for i, d := range owned {
		databases[i] = map[string]any{"id": d.ID, "name": d.Name, "state": d.State, "storage_bytes": d.StorageBytes}
		if d.RecoverableUntil != nil {
			databases[i]["recoverable_until"] = d.RecoverableUntil.Format(time.RFC3339)
		}
		storage += d.StorageBytes
	}
	keys, err := views.APIKeysOf(r.Context(), user)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	apiKeys := []map[string]any{}
	for _, k := range keys {
		if k.TenantID == tenant && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt)) {
			apiKeys = append(apiKeys, map[string]any{"id": k.ID, "name": k.Name, "created_at": k.CreatedAt.UTC().Format(time.RFC3339),
				"expires_at": k.ExpiresAt})
		}
	}
	live, err := views.LiveSessionsOf(r.Context(), user, now)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sessions := []map[string]any{}
	for _, ses := range live {
		if ses.TenantID == tenant {
			sessions = append(sessions, map[string]any{"id": ses.ID, "started_at": ses.StartedAt.UTC().Format(time.RFC3339),
				"expires_at": ses.ExpiresAt.UTC().Format(time.RFC3339), "ip": ses.IP, "user_agent": ses.UserAgent})
		}
	}
	invitations, err := views.InvitationsOf(r.Context(), tenant, now)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sent := []map[string]any{}
	for _, inv := range invitations {
		if inv.InvitedBy == user && inv.Status == "pending" {
			sent = append(sent, map[string]any{"id": inv.ID, "email": inv.Email, "role": inv.Role,
				"expires_at": inv.ExpiresAt.UTC().Format(time.RFC3339)})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "databases": databases, "storage_bytes": storage,
		"api_keys": apiKeys, "sessions": sessions, "invitations": sent})
}

func (s *Server) handleChangeRole(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	s.changeRole(w, r, p.TenantID, p.role())
}

// changeRole changes the role of a member of tenant, the caller acting as actorRole.
func (s *Server) changeRole(w http.ResponseWriter, r *http.Request, tenant domain.TenantID, actorRole domain.Role) {
	var req struct {
		Role string `json:"role"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	user, err := pathID(r, domain.ParseUserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Role == "" {
		s.writeError(w, r, domain.NewValidationError("role", "is required: viewer, developer or tenant_admin"))
		return
	}
	dryRun, err := dryRunParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	change, err := s.identity.Commands.ChangeRole(r.Context(), tenant, principalFrom(r.Context()).UserID, actorRole, user, req.Role, dryRun, metadata(r.Context(), r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if dryRun {
		writeJSON(w, http.StatusOK, map[string]any{"impact": map[string]any{"user_id": user, "from": change.From, "to": change.To,
			"sessions_ended": change.SessionsEnded, "credentials_rotated": change.CredentialsRotated,
			"permissions_before": rolePermissions(change.From), "permissions_after": rolePermissions(change.To)}})
		return
	}
	s.writeMember(w, r, tenant, user, nil)
}

// rolePermissions are the permissions a member with role has in the tenant.
func rolePermissions(role domain.Role) []string {
	return Principal{TenantID: "x", Role: role}.permissions()
}

// dryRunParam reads ?dry_run= as a boolean; anything but a boolean is refused, so a typo never
// makes a real change.
func dryRunParam(r *http.Request) (bool, error) {
	raw := r.URL.Query().Get("dry_run")
	if raw == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(raw)
	if err != nil {
		return false, domain.NewValidationError("dry_run", "must be true or false")
	}
	return v, nil
}

func (s *Server) handleSetSubQuota(w http.ResponseWriter, r *http.Request) {
	var req domain.MemberQuota
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	user, err := pathID(r, domain.ParseUserID)
	if err == nil {
		err = s.databases.Commands.SetSubQuota(r.Context(), principalFrom(r.Context()).TenantID, user, req, metadata(r.Context(), r))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "quota": req})
}
