package api

import (
	"net/http"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

// AccessReportRoutes is what GET /access-report needs.
type AccessReportRoutes struct {
	Views       *projections.Views
	Projections *projections.Runtime
	Store       *eventstore.Store
}

type accessReport struct {
	s *Server
	AccessReportRoutes
}

// MountAccessReport adds GET /access-report: who could reach a database at a moment, or every
// change of access in a period, from the access_report read model (projections.AccessReport).
func (s *Server) MountAccessReport(routes AccessReportRoutes) {
	a := accessReport{s: s, AccessReportRoutes: routes}
	// Tenant admins ask about their tenant's databases, super admins about any: decided by tenantOf.
	s.mount([]route{{"GET", "/access-report", authenticated, a.handle}})
}

// tenantOf is the tenant whose databases the caller may report on: "" (any) for a super admin, the
// session's for a tenant admin; anyone else is refused.
func (a accessReport) tenantOf(p Principal) (domain.TenantID, error) {
	switch {
	case p.SuperAdmin:
		return "", nil
	case p.role() != domain.RoleTenantAdmin:
		return "", domain.ErrForbidden
	}
	return p.TenantID, nil
}

func (a accessReport) handle(w http.ResponseWriter, r *http.Request) {
	if err := a.serve(w, r); err != nil {
		a.s.writeError(w, r, err)
	}
}

func (a accessReport) serve(w http.ResponseWriter, r *http.Request) error {
	tenant, err := a.tenantOf(principalFrom(r.Context()))
	if err != nil {
		return err
	}
	times, err := timeParams(r, "at", "from", "to")
	if err != nil {
		return err
	}
	q, err := domain.NewAccessReportQuery(r.URL.Query().Get("database_id"), times[0], times[1], times[2], a.s.now())
	if err != nil {
		return err
	}
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	a.s.caughtUp(r.Context(), a.Store, a.Projections, "access_report") // an admin who just changed a role sees it
	db, err := a.Views.AccessDatabaseOf(r.Context(), tenant, q.DatabaseID)
	if err != nil {
		return err
	}
	if !q.Review {
		for _, name := range []string{"limit", "cursor"} {
			if r.URL.Query().Has(name) { // a moment's answer is one list: a page asked of it would be ignored
				return domain.NewValidationError(name, "only with from: who could reach a database at a moment is not paged")
			}
		}
		holders, err := a.Views.AccessAt(r.Context(), &db, q.At)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"database": db, "at": q.At.Format(time.RFC3339Nano), "items": holders})
		return nil
	}
	changes, next, err := a.Views.AccessChanges(r.Context(), db.ID, q.From, q.To, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"database": db, "from": q.From.Format(time.RFC3339Nano), "to": q.To.Format(time.RFC3339Nano),
		"items": changes, "next_cursor": nullable(next)})
	return nil
}
