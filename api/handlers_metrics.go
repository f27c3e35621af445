package api

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

// MetricsRoutes is what the handlers of the dashboards and their export need.
type MetricsRoutes struct {
	Views *projections.Views
	// Connections is how many statements a tenant ("" for the platform) runs now.
	Connections func(domain.TenantID) int64
	// Exports bound the downloads of GET /metrics/export.
	Exports ExportLimits
}

type metricsHandlers struct {
	*Server
	routes  MetricsRoutes
	exports *exportGate
}

// MountMetrics adds GET /metrics/dashboard and GET /metrics/export. Both take a super admin
// without a tenant (who sees the platform), so they check the tenant themselves.
func (s *Server) MountMetrics(m MetricsRoutes) {
	h := &metricsHandlers{Server: s, routes: m, exports: newExportGate(m.Exports)}
	s.mount([]route{
		{"GET", "/metrics/dashboard", authenticated, h.handleDashboard},
		{"GET", "/metrics/export", authenticated, h.handleExport},
	})
}

// metricsView is the caller's view (domain.MetricsViewOf). A caller who is neither a super admin
// nor in a tenant is refused as the member routes refuse them; atLeast refuses views below it.
func metricsView(p Principal, atLeast domain.MetricsView) (domain.MetricsView, error) {
	if !p.SuperAdmin && p.TenantID == "" {
		return "", &Error{Status: http.StatusForbidden, Code: "forbidden",
			Message: "This needs a tenant: log in to one of your tenants, or create one with POST /api/v1/tenants."}
	}
	view := domain.MetricsViewOf(p.role(), p.SuperAdmin)
	order := []domain.MetricsView{domain.MetricsStatus, domain.MetricsOwn, domain.MetricsTenant, domain.MetricsPlatform}
	rank := func(v domain.MetricsView) int {
		for i, o := range order {
			if o == v {
				return i
			}
		}
		return -1
	}
	if rank(view) < rank(atLeast) {
		return "", domain.ErrForbidden
	}
	return view, nil
}

// metricsWindow reads range, from, to and compare.
func (s *Server) metricsWindow(r *http.Request) (domain.MetricsWindow, bool, error) {
	q := r.URL.Query()
	compare := false
	switch q.Get("compare") {
	case "", "false":
	case "true":
		compare = true
	default:
		return domain.MetricsWindow{}, false, domain.NewValidationError("compare", "must be true or false")
	}
	var from, to *time.Time
	for name, dest := range map[string]**time.Time{"from": &from, "to": &to} {
		if raw := q.Get(name); raw != "" {
			t, err := time.Parse(time.RFC3339, raw)
			if err != nil {
				return domain.MetricsWindow{}, false, domain.NewValidationError(name, "must be an RFC 3339 time")
			}
			*dest = &t
		}
	}
	w, err := domain.NewMetricsWindow(q.Get("range"), from, to, compare, s.now())
	return w, compare, err
}

func (h *metricsHandlers) handleDashboard(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	view, err := metricsView(p, domain.MetricsStatus)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	window, compare, err := h.metricsWindow(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	req := projections.DashboardRequest{View: view, Tenant: p.TenantID, User: p.UserID, Window: window, Compare: compare,
		PatternsBy: q.Get("patterns_by"), Now: h.now()}
	if view == domain.MetricsPlatform {
		req.Tenant = ""
	}
	if db, member := q.Get("database_id"), q.Get("user_id"); db != "" || member != "" {
		if err := narrow(&req, db, member); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	if view != domain.MetricsStatus {
		req.Connections = h.routes.Connections(req.Tenant)
	}
	d, err := h.routes.Views.Dashboard(r.Context(), req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, d)
}

// narrow points a tenant's dashboard at one of its databases or members.
func narrow(req *projections.DashboardRequest, db, member string) error {
	switch {
	case req.View != domain.MetricsTenant:
		return domain.NewValidationError("database_id", "narrows a tenant's dashboard, which tenant admins see")
	case db != "" && member != "":
		return domain.NewValidationError("database_id", "give database_id or user_id, not both")
	case db != "":
		id, err := domain.ParseDatabaseID(db)
		if err != nil {
			return fmt.Errorf("database %q: %w", db, domain.ErrNotFound)
		}
		req.Database = id
	default:
		id, err := domain.ParseUserID(member)
		if err != nil {
			return fmt.Errorf("member %q: %w", member, domain.ErrNotFound)
		}
		req.Member = id
	}
	return nil
}

// scopeNames are the scopes of the export, by their stored letter.
var scopeNames = map[string]string{
	projections.ScopePlatform: "platform", projections.ScopeTenant: "tenant",
	projections.ScopeDatabase: "database", projections.ScopeUser: "user",
}

// exportColumns are the columns of the CSV export and the fields of the JSON one, in order.
var exportColumns = []string{"at", "scope", "tenant_id", "subject_id", "queries", "errors", "timeouts", "denials",
	"rows_read", "rows_written", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "logins", "login_failures", "lockouts",
	"sessions_started", "databases_created", "databases_deleted", "role_changes", "databases", "storage_bytes",
	"peak_running", "peak_pool_open", "peak_pool_in_use"}

// exportValues are a row's values in the order of exportColumns; gauges an event of the bucket did
// not set are nil, and so is the load (the platform's and a tenant's peaks) where no sample fell in
// the bucket.
func exportValues(row projections.MetricsRow) []any {
	c, l := row.MetricsCounts, &row.Latency
	values := []any{row.At.Format(time.RFC3339), scopeNames[row.Scope], string(row.TenantID), row.Subject,
		c.Queries, c.Errors, c.Timeouts, c.Denials, c.RowsRead, c.RowsWritten,
		l.Quantile(0.5), l.Quantile(0.95), l.Quantile(0.99), l.Mean(),
		c.Logins, c.LoginFailures, c.Lockouts, c.Sessions, c.DatabasesCreated, c.DatabasesDeleted, c.RoleChanges, nil, nil,
		nil, nil, nil}
	if row.Databases != nil {
		values[len(values)-5] = *row.Databases
	}
	if row.StorageBytes != nil {
		values[len(values)-4] = *row.StorageBytes
	}
	if l := row.Load; l != nil {
		values[len(values)-3], values[len(values)-2], values[len(values)-1] = l.Running, l.PoolOpen, l.PoolInUse
	}
	return values
}

// handleExport streams the buckets of the window at its grain: a tenant admin's every scope of
// the tenant, a super admin's the platform and each tenant.
func (h *metricsHandlers) handleExport(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	view, err := metricsView(p, domain.MetricsTenant)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "json" {
		h.writeError(w, r, domain.NewValidationError("format", "must be csv or json"))
		return
	}
	window, _, err := h.metricsWindow(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	tenant := p.TenantID
	if view == domain.MetricsPlatform {
		tenant = ""
	}
	leave, err := h.exports.enter(p.UserID)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	defer leave()
	started := false
	out := bufio.NewWriterSize(h.exports.writer(w), 64<<10)
	write := h.exportWriter(out, format, window, view, tenant)
	err = h.routes.Views.ExportMetrics(r.Context(), tenant, window.Grain, window.Grain.Start(window.From), window.To, func(row projections.MetricsRow) error {
		if !started {
			h.startExport(w, format, view, window)
			started = true
		}
		return write(&row)
	})
	if err == nil {
		if !started {
			h.startExport(w, format, view, window)
			started = true
		}
		err = write(nil)
	}
	if err == nil {
		err = out.Flush()
	}
	switch {
	case err == nil:
	case started: // the status is sent; all that is left is to cut the download short
		h.log.WarnContext(r.Context(), "metrics export interrupted", "err", err)
		panic(http.ErrAbortHandler)
	default:
		h.writeError(w, r, err)
	}
}

func (h *metricsHandlers) startExport(w http.ResponseWriter, format string, view domain.MetricsView, window domain.MetricsWindow) {
	contentType := "text/csv; charset=utf-8"
	if format == "json" {
		contentType = "application/json; charset=utf-8"
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="metrics-%s-%s-%s.%s"`, view,
		window.From.Format("20060102T150405Z"), window.To.Format("20060102T150405Z"), format))
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// exportWriter returns the function that writes each row, and the end (row nil), in format.
func (h *metricsHandlers) exportWriter(out *bufio.Writer, format string, window domain.MetricsWindow, view domain.MetricsView, tenant domain.TenantID) func(*projections.MetricsRow) error {
	if format == "csv" {
		c := csv.NewWriter(out)
		header := false
		return func(row *projections.MetricsRow) error {
			if !header {
				header = true
				if err := c.Write(exportColumns); err != nil {
					return err
				}
			}
			if row != nil {
				values := exportValues(*row)
				record := make([]string, len(values))
				for i, v := range values {
					record[i] = csvValue(v)
				}
				if err := c.Write(record); err != nil {
					return err
				}
			}
			c.Flush()
			return c.Error()
		}
	}
	items := 0
	return func(row *projections.MetricsRow) error {
		if items == 0 {
			head, err := json.Marshal(map[string]any{"scope": view, "tenant_id": nullable(string(tenant)), "from": window.From,
				"to": window.To, "grain": window.Grain})
			if err != nil {
				return err
			}
			// the head's object stays open for the items
			if _, err := fmt.Fprintf(out, "%s,\"items\":[", head[:len(head)-1]); err != nil {
				return err
			}
		}
		if row == nil {
			_, err := out.WriteString("]}\n")
			return err
		}
		values := exportValues(*row)
		item := make(map[string]any, len(values))
		for i, v := range values {
			item[exportColumns[i]] = v
		}
		body, err := json.Marshal(item)
		if err != nil {
			return err
		}
		if items > 0 {
			out.WriteByte(',')
		}
		items++
		_, err = out.Write(body)
		return err
	}
}

// csvValue writes a value of exportValues as CSV text: nil as an empty cell.
func csvValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}
