package api

import (
	"context"
	"net/http"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

func (s *Server) handlePlans(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"items": domain.Plans})
}

func (s *Server) handleCreateTenant(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
		Slug string `json:"slug"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p := principalFrom(r.Context())
	tenant, err := s.identity.Tenants.CreateTenant(r.Context(), commands.CreateTenant{
		Name: req.Name, Slug: req.Slug, Plan: domain.PlanFree, Creator: p.UserID, Meta: metadata(r.Context(), r)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": tenant.ID(), "slug": tenant.Slug(), "name": tenant.Name(), "plan": tenant.Plan()})
}

// tenantDocument is GET /tenant: the tenant with its plan's limits, its usage and settings.
func (s *Server) tenantDocument(ctx context.Context, t projections.TenantView) (map[string]any, error) {
	plan, _ := domain.PlanByID(t.Plan)
	databases, storage, err := s.identity.Views.DatabaseUsage(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"id": t.ID, "slug": t.Slug, "name": t.Name, "plan": t.Plan, "limits": plan.Limits,
		// connections: live connections are counted by the query module (upcoming); 0 until then.
		"usage":      map[string]any{"databases": databases, "storage_bytes": storage, "connections": 0, "users": t.Members},
		"settings":   t.Settings,
		"created_at": t.CreatedAt.UTC().Format(time.RFC3339),
	}, nil
}

func (s *Server) handleTenant(w http.ResponseWriter, r *http.Request) {
	s.writeTenant(w, r, principalFrom(r.Context()).TenantID)
}

// writeTenant answers the tenant document of id.
func (s *Server) writeTenant(w http.ResponseWriter, r *http.Request, id domain.TenantID) {
	t, err := s.identity.Views.Tenant(r.Context(), id)
	var doc map[string]any
	if err == nil {
		doc, err = s.tenantDocument(r.Context(), t)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) handleTenantSettings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		QueryTimeoutS        *int64 `json:"query_timeout_s"`
		RowLimit             *int64 `json:"row_limit"`
		IdleTimeoutMinutes   *int64 `json:"idle_timeout_minutes"`
		AutoStopMinutes      *int64 `json:"auto_stop_minutes"`
		AllowProcedures      *bool  `json:"allow_procedures"`
		AllowForeignKeys     *bool  `json:"allow_foreign_keys"`
		AllowHighImpactAlter *bool  `json:"allow_high_impact_alter"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p := principalFrom(r.Context())
	_, err := s.identity.Tenants.ChangeSettings(r.Context(), p.TenantID, commands.SettingsPatch(req), metadata(r.Context(), r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.handleTenant(w, r)
}

// pageLimit reads ?limit= (default 50, 1 to 500).
func pageLimit(r *http.Request) (int, error) {
	n, err := intParam(r, "limit", 50, 1, 500)
	return int(n), err
}
