package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
)

// The platform administration routes (super admin): tenants and plans, the raw event log, and the
// projections.

func (s *Server) handleAdminTenants(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items, next, err := s.identity.Views.Tenants(r.Context(), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	docs := make([]map[string]any, len(items))
	for i, t := range items {
		if docs[i], err = s.tenantDocument(r.Context(), t); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": docs, "next_cursor": nullable(next)})
}

// handleAdminCreateTenant creates a tenant on a plan for someone else: it starts without members,
// and its first tenant admin is invited at admin_email.
func (s *Server) handleAdminCreateTenant(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name       string        `json:"name"`
		Slug       string        `json:"slug"`
		Plan       domain.PlanID `json:"plan"`
		AdminEmail string        `json:"admin_email"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := domain.NormalizeEmail(req.AdminEmail); err != nil {
		s.writeError(w, r, domain.NewValidationError("admin_email", "must be an email address"))
		return
	}
	p := principalFrom(r.Context())
	meta := metadata(r.Context(), r)
	tenant, err := s.identity.Tenants.CreateTenant(r.Context(), commands.CreateTenant{Name: req.Name, Slug: req.Slug, Plan: req.Plan, Meta: meta})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	meta.TenantID = string(tenant.ID())
	invited, failures, err := s.identity.Commands.Invite(r.Context(), commands.Invite{Tenant: tenant.ID(), Actor: p.UserID,
		ActorRole: domain.RoleSuperAdmin, Emails: []string{req.AdminEmail}, Role: string(domain.RoleTenantAdmin), Meta: meta})
	if err == nil && len(invited) != 1 {
		err = fmt.Errorf("inviting the first admin of tenant %s: %s", tenant.ID(), failures[0].Message)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	inv := invited[0]
	writeJSON(w, http.StatusCreated, map[string]any{"id": tenant.ID(), "slug": tenant.Slug(), "name": tenant.Name(), "plan": tenant.Plan(),
		"invitation": map[string]any{"id": inv.InvitationID, "email": inv.Email, "role": inv.Role, "status": "pending",
			"expires_at": inv.ExpiresAt.UTC().Format(time.RFC3339)}})
}

func (s *Server) handleAdminPlan(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Plan domain.PlanID `json:"plan"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := pathID(r, domain.ParseTenantID)
	if err == nil {
		_, err = s.identity.Tenants.ChangePlan(r.Context(), id, req.Plan, metadata(r.Context(), r))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeTenant(w, r, id)
}

func (s *Server) handleAdminEvents(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var after int64
	if raw := r.URL.Query().Get("after"); raw != "" {
		if after, err = strconv.ParseInt(raw, 10, 64); err != nil || after < 0 {
			s.writeError(w, r, domain.NewValidationError("after", "must be a position (a number ≥ 0)"))
			return
		}
	}
	events, err := s.identity.Events.ReadAll(r.Context(), after, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]map[string]any, len(events))
	next := after
	for i, e := range events {
		items[i] = map[string]any{"position": e.Position, "stream_id": e.StreamID, "stream_type": e.StreamType,
			"version": e.StreamVersion, "type": e.EventType, "data": redactHashes(e.Payload), "metadata": e.Metadata,
			"recorded_at": e.RecordedAt.UTC().Format(time.RFC3339Nano)}
		next = e.Position
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_after": next})
}

// redactHashes hides the values of payload fields that hold password or token hashes: the log
// keeps them (logins need them), but no one reading events needs to see them.
func redactHashes(payload json.RawMessage) any {
	var fields map[string]any
	if err := json.Unmarshal(payload, &fields); err != nil {
		return payload
	}
	for name := range fields {
		if domain.SecretHashField(name) {
			fields[name] = "[redacted]"
		}
	}
	return fields
}

func (s *Server) handleAdminProjections(w http.ResponseWriter, r *http.Request) {
	statuses, err := s.identity.Projections.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": statuses})
}

// handleAdminRebuild takes the projector's rebuild lock and answers 202 at once; the rebuild runs
// on in the background (GET /admin/projections shows it as rebuilding, and a failure as the
// projector's last_error). A rebuild of it running anywhere answers 409 conflict.
func (s *Server) handleAdminRebuild(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	if err := s.identity.Projections.StartRebuild(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"name": name, "status": "rebuilding"})
}
