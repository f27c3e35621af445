package api

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
)

// The members' lifecycle routes: deactivation and reactivation by a tenant's admins, and a super
// admin's forced password reset and overrides of a tenant's decisions.

func (s *Server) handleDeactivate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason       string     `json:"reason"`
		Note         string     `json:"note"`
		Type         string     `json:"type"`
		ReactivateAt *time.Time `json:"reactivate_at"`
		Resources    string     `json:"resources"`
		TransferTo   string     `json:"transfer_to"`
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
	p := principalFrom(r.Context())
	cmd := commands.Deactivate{Tenant: p.TenantID, Actor: p.UserID, ActorRole: p.role(), User: user,
		Request: domain.DeactivationRequest{Reason: req.Reason, Note: req.Note, Type: req.Type, ReactivateAt: req.ReactivateAt,
			Resources: req.Resources}}
	impact, ok := s.deactivate(w, r, cmd, req.TransferTo)
	if !ok {
		return
	}
	if impact.DryRun {
		writeJSON(w, http.StatusOK, map[string]any{"impact": impact.DeactivationImpact})
		return
	}
	s.writeMember(w, r, p.TenantID, user, map[string]any{"impact": impact.DeactivationImpact})
}

// handleLeave is POST /me/leave: the caller leaves the tenant of their session for good
// (domain.Tenant.Leave), their databases handed over as resources says.
func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Note       string `json:"note"`
		Resources  string `json:"resources"`
		TransferTo string `json:"transfer_to"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p := principalFrom(r.Context())
	cmd := commands.Deactivate{Tenant: p.TenantID, Actor: p.UserID, ActorRole: p.role(), User: p.UserID, Leave: true,
		Request: domain.LeaveRequest(req.Resources, "", req.Note)}
	if impact, ok := s.deactivate(w, r, cmd, req.TransferTo); ok {
		writeJSON(w, http.StatusOK, map[string]any{"impact": impact.DeactivationImpact})
	}
}

// deactivated is what deactivate did, or would do in a dry run.
type deactivated struct {
	commands.DeactivationImpact
	DryRun bool
}

// deactivate runs cmd, a deactivation or a leave, with the request's ?dry_run and the body's
// transfer_to; it answers the errors itself (ok false).
func (s *Server) deactivate(w http.ResponseWriter, r *http.Request, cmd commands.Deactivate, transferTo string) (deactivated, bool) {
	var err error
	if cmd.DryRun, err = dryRunParam(r); err == nil {
		cmd.Request.TransferTo, err = parseTransferTo(transferTo)
	}
	if err != nil {
		s.writeError(w, r, err)
		return deactivated{}, false
	}
	cmd.Meta = metadata(r.Context(), r)
	impact, err := s.identity.Members.Deactivate(r.Context(), cmd)
	if err != nil {
		s.writeError(w, r, err)
		return deactivated{}, false
	}
	return deactivated{impact, cmd.DryRun}, true
}

// parseTransferTo reads a deactivation's transfer_to: "" (none) or a user id.
func parseTransferTo(raw string) (domain.UserID, error) {
	if raw == "" {
		return "", nil
	}
	id, err := domain.ParseUserID(raw)
	if err != nil {
		return "", domain.NewValidationError("transfer_to", "must be the user id of another active member of this tenant")
	}
	return id, nil
}

func (s *Server) handleReactivate(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	s.reactivate(w, r, p.TenantID, p.role())
}

// handleAdminReactivate is a super admin's reactivation in any tenant, recorded as an override
// unless they are one of its admins.
func (s *Server) handleAdminReactivate(w http.ResponseWriter, r *http.Request) {
	tenant, err := domain.ParseTenantID(mux.Vars(r)["tenant"])
	if err != nil {
		s.writeError(w, r, domain.ErrNotFound)
		return
	}
	s.reactivate(w, r, tenant, domain.RoleSuperAdmin)
}

func (s *Server) reactivate(w http.ResponseWriter, r *http.Request, tenant domain.TenantID, actorRole domain.Role) {
	user, err := pathID(r, domain.ParseUserID)
	if err == nil {
		err = s.identity.Members.Reactivate(r.Context(), tenant, principalFrom(r.Context()).UserID, actorRole, user, metadata(r.Context(), r))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeMember(w, r, tenant, user, nil)
}

// handleAdminChangeRole is a super admin's role change in any tenant (PUT /users/{id}/role's
// rules, dry run included), recorded as an override unless they are one of its admins.
func (s *Server) handleAdminChangeRole(w http.ResponseWriter, r *http.Request) {
	tenant, err := domain.ParseTenantID(mux.Vars(r)["tenant"])
	if err != nil {
		s.writeError(w, r, domain.ErrNotFound)
		return
	}
	s.changeRole(w, r, tenant, domain.RoleSuperAdmin)
}

func (s *Server) handleForcePasswordReset(w http.ResponseWriter, r *http.Request) {
	user, err := pathID(r, domain.ParseUserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ended, err := s.identity.Members.ForcePasswordReset(r.Context(), principalFrom(r.Context()).UserID, user, metadata(r.Context(), r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "sessions_ended": ended, "reset_mail": "requested"})
}

// writeMember answers a member of tenant as GET /users lists them (with extra fields).
func (s *Server) writeMember(w http.ResponseWriter, r *http.Request, tenant domain.TenantID, user domain.UserID, extra map[string]any) {
	m, err := s.identity.Views.Member(r.Context(), tenant, user)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	doc := map[string]any{"id": m.ID, "email": m.Email, "name": m.Name, "role": m.Role, "status": m.Status,
		"deactivation": deactivationDocument(m.Deactivation)}
	for k, v := range extra {
		doc[k] = v
	}
	writeJSON(w, http.StatusOK, doc)
}
