package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/latency"
)

// DashboardRequest is what GET /metrics/dashboard asks: the caller's view (domain.MetricsViewOf),
// tenant and user, the window, and what the API knows that no read model does.
type DashboardRequest struct {
	View   domain.MetricsView
	Tenant domain.TenantID
	User   domain.UserID
	// Database or Member narrow a tenant's dashboard to one database or one member.
	Database domain.DatabaseID
	Member   domain.UserID
	Window   domain.MetricsWindow
	Compare  bool
	// PatternsBy orders the query patterns (a Patterns* constant; "" for count).
	PatternsBy string
	// Connections is how many statements the tenant (the platform, for its view) runs now.
	Connections int64
	Now         time.Time
}

// Dashboard is the answer of GET /metrics/dashboard: series ready to chart (one point per bucket
// of the window's grain, zeros where nothing happened), totals and percentiles of the window.
type Dashboard struct {
	Scope domain.MetricsView `json:"scope"`
	Range DashboardRange     `json:"range"`
	DashboardPeriod
	Quotas   map[string]QuotaUse `json:"quotas,omitempty"`
	Patterns []PatternView       `json:"patterns,omitempty"`
	Status   *DatabaseStatus     `json:"status,omitempty"`
	Previous *DashboardPeriod    `json:"previous,omitempty"`
}

// DashboardRange says which window the dashboard shows.
type DashboardRange struct {
	Name  string              `json:"name"` // 15m, 1h, 1d, 7d, 30d, custom
	From  time.Time           `json:"from"`
	To    time.Time           `json:"to"`
	Grain domain.MetricsGrain `json:"grain"`
}

// DashboardPeriod is what happened in one period. From and To are set for the previous period.
type DashboardPeriod struct {
	From      time.Time     `json:"from,omitzero"`
	To        time.Time     `json:"to,omitzero"`
	Queries   *QueryStats   `json:"queries,omitempty"`
	Resources *ResourceUse  `json:"resources,omitempty"`
	Activity  *ActivityInfo `json:"activity,omitempty"`
}

// QueryStats are the statements of a period; ErrorRate is (errors + timeouts) / queries.
type QueryStats struct {
	Count       uint64       `json:"count"`
	Errors      uint64       `json:"errors"`
	Timeouts    uint64       `json:"timeouts"`
	Denials     uint64       `json:"denials"`
	ErrorRate   float64      `json:"error_rate"`
	RowsRead    uint64       `json:"rows_read"`
	RowsWritten uint64       `json:"rows_written"`
	P50MS       float64      `json:"p50_ms"`
	P95MS       float64      `json:"p95_ms"`
	P99MS       float64      `json:"p99_ms"`
	MeanMS      float64      `json:"mean_ms"`
	MaxMS       float64      `json:"max_ms"`
	Series      []QueryPoint `json:"series"`
}

// QueryPoint is one bucket of QueryStats.
type QueryPoint struct {
	At       time.Time `json:"at"`
	Count    uint64    `json:"count"`
	Errors   uint64    `json:"errors"`
	Timeouts uint64    `json:"timeouts"`
	Denials  uint64    `json:"denials"`
	P50MS    float64   `json:"p50_ms"`
	P95MS    float64   `json:"p95_ms"`
	P99MS    float64   `json:"p99_ms"`
}

// ResourceUse is the databases and storage at the end of a period, with their series (the value
// at the end of each bucket; absent for a member, whose databases the gauges do not follow).
// Connections is the statements running now in the process that answers; Load the deployment's,
// as the processes sampled it.
type ResourceUse struct {
	Databases        int64           `json:"databases"`
	StorageBytes     int64           `json:"storage_bytes"`
	Connections      *int64          `json:"connections,omitempty"`
	Load             *LoadUse        `json:"load,omitempty"`
	DatabasesCreated uint64          `json:"databases_created"`
	DatabasesDeleted uint64          `json:"databases_deleted"`
	Series           []ResourcePoint `json:"series,omitempty"`
}

// LoadUse is the load of a tenant or the platform across the deployment (MetricsLoad): the peak
// of the period and a series of each bucket's peak (a bucket without a sample carries the sums of
// the last one on); Now (current period only) sums the latest samples of the live processes.
type LoadUse struct {
	Now    *Load       `json:"now,omitempty"`
	Peak   Load        `json:"peak"`
	Series []LoadPoint `json:"series"`
}

// LoadPoint is one bucket of LoadUse.
type LoadPoint struct {
	At time.Time `json:"at"`
	Load
}

// ResourcePoint is one bucket of ResourceUse.
type ResourcePoint struct {
	At           time.Time `json:"at"`
	Databases    int64     `json:"databases"`
	StorageBytes int64     `json:"storage_bytes"`
}

// ActivityInfo is the sign-ins and changes of a period; ActiveSessions is now's.
type ActivityInfo struct {
	ActiveSessions *int64          `json:"active_sessions,omitempty"`
	Logins         uint64          `json:"logins"`
	LoginFailures  uint64          `json:"login_failures"`
	Lockouts       uint64          `json:"lockouts"`
	SessionsStart  uint64          `json:"sessions_started"`
	RoleChanges    uint64          `json:"role_changes"`
	Series         []ActivityPoint `json:"series"`
}

// ActivityPoint is one bucket of ActivityInfo.
type ActivityPoint struct {
	At            time.Time `json:"at"`
	Logins        uint64    `json:"logins"`
	LoginFailures uint64    `json:"login_failures"`
	SessionsStart uint64    `json:"sessions_started"`
}

// QuotaUse is one quota: what is used, the plan's limit, and the share used in percent.
type QuotaUse struct {
	Used    int64   `json:"used"`
	Limit   int64   `json:"limit"`
	Percent float64 `json:"percent"`
}

// NewQuotaUse computes the share of limit that used is (0 for no limit).
func NewQuotaUse(used, limit int64) QuotaUse {
	q := QuotaUse{Used: used, Limit: limit}
	if limit > 0 {
		q.Percent = float64(used) * 100 / float64(limit)
	}
	return q
}

// PatternView is one query pattern of the dashboard.
type PatternView struct {
	Fingerprint   string  `json:"fingerprint"`
	Text          string  `json:"text"`
	StatementType string  `json:"statement_type"`
	Count         uint64  `json:"count"`
	Errors        uint64  `json:"errors"`
	TotalMS       float64 `json:"total_ms"`
	MeanMS        float64 `json:"mean_ms"`
	P95MS         float64 `json:"p95_ms"`
}

// DatabaseStatus is what a viewer sees: the tenant's databases by state.
type DatabaseStatus struct {
	Databases map[domain.DatabaseState]int64 `json:"databases"`
}

// dashboardPatterns is how many patterns a dashboard lists.
const dashboardPatterns = 10

// Dashboard assembles the dashboard req asks for. Returns domain.ErrNotFound for a database or
// member not of the tenant.
func (q *Views) Dashboard(ctx context.Context, req DashboardRequest) (Dashboard, error) {
	w := req.Window
	d := Dashboard{Scope: req.View, Range: DashboardRange{Name: w.Range, From: w.From, To: w.To, Grain: w.Grain}}
	if req.View == domain.MetricsStatus {
		status, err := q.databaseStatus(ctx, req.Tenant)
		d.Status = &status
		return d, err
	}
	scope, err := q.dashboardScope(ctx, req)
	if err != nil {
		return Dashboard{}, err
	}
	if scope.Kind == ScopeDatabase && w.Grain == domain.GrainMinute {
		w.Grain = domain.GrainHour // databases are kept by the hour
		req.Window, d.Range.Grain = w, w.Grain
	}
	if d.DashboardPeriod, err = q.period(ctx, req, scope, w); err != nil {
		return Dashboard{}, err
	}
	if err := q.now(ctx, req, scope, &d); err != nil {
		return Dashboard{}, err
	}
	if req.Compare {
		previous, err := q.period(ctx, req, scope, w.Previous())
		if err != nil {
			return Dashboard{}, err
		}
		previous.From, previous.To = w.Previous().From, w.Previous().To
		d.Previous = &previous
	}
	return d, nil
}

// dashboardScope is the row family the view reads: the platform, the tenant (or the database or
// member it is narrowed to), or the caller in the tenant.
func (q *Views) dashboardScope(ctx context.Context, req DashboardRequest) (MetricsScope, error) {
	switch {
	case req.View == domain.MetricsPlatform:
		return PlatformScope(), nil
	case req.View == domain.MetricsOwn:
		return UserScope(req.Tenant, req.User), nil
	case req.Database != "":
		if _, err := q.Database(ctx, req.Tenant, req.Database); err != nil {
			return MetricsScope{}, err
		}
		return DatabaseScope(req.Tenant, req.Database), nil
	case req.Member != "":
		role, err := q.RoleIn(ctx, req.Tenant, req.Member)
		if err != nil {
			return MetricsScope{}, err
		}
		if role == "" {
			return MetricsScope{}, fmt.Errorf("member %s: %w", req.Member, domain.ErrNotFound)
		}
		return UserScope(req.Tenant, req.Member), nil
	}
	return TenantScope(req.Tenant), nil
}

// period reads the buckets of w and makes its totals and series.
func (q *Views) period(ctx context.Context, req DashboardRequest, scope MetricsScope, w domain.MetricsWindow) (DashboardPeriod, error) {
	start := w.Grain.Start(w.From)
	buckets, err := q.MetricsBuckets(ctx, scope, w.Grain, start, w.To)
	if err != nil {
		return DashboardPeriod{}, err
	}
	var gauges Gauges
	followsGauges := scope.Kind != ScopeUser
	if followsGauges {
		if gauges, err = q.MetricsGaugesAt(ctx, scope, start); err != nil {
			return DashboardPeriod{}, err
		}
	}
	p := DashboardPeriod{Queries: &QueryStats{Series: []QueryPoint{}}, Resources: &ResourceUse{},
		Activity: &ActivityInfo{Series: []ActivityPoint{}}}
	var all latency.Histogram
	var total MetricsCounts
	next := 0
	for at := start; at.Before(w.To); at = at.Add(w.Grain.Size()) {
		var b MetricsBucket
		if next < len(buckets) && buckets[next].At.Equal(at) {
			b = buckets[next]
			next++
		}
		total.Add(b.MetricsCounts)
		all.Merge(&b.Latency)
		p.Queries.Series = append(p.Queries.Series, QueryPoint{At: at, Count: b.Queries, Errors: b.Errors, Timeouts: b.Timeouts,
			Denials: b.Denials, P50MS: b.Latency.Quantile(0.5), P95MS: b.Latency.Quantile(0.95), P99MS: b.Latency.Quantile(0.99)})
		p.Activity.Series = append(p.Activity.Series, ActivityPoint{At: at, Logins: b.Logins, LoginFailures: b.LoginFailures,
			SessionsStart: b.Sessions})
		if b.StorageBytes != nil {
			gauges.StorageBytes = *b.StorageBytes
		}
		if b.Databases != nil {
			gauges.Databases = *b.Databases
		}
		if followsGauges {
			p.Resources.Series = append(p.Resources.Series, ResourcePoint{At: at, Databases: gauges.Databases, StorageBytes: gauges.StorageBytes})
		}
	}
	if scope.Kind == ScopePlatform || scope.Kind == ScopeTenant {
		if p.Resources.Load, err = q.loadUse(ctx, scope.Tenant, w, start); err != nil {
			return DashboardPeriod{}, err
		}
	}
	qs := p.Queries
	qs.Count, qs.Errors, qs.Timeouts, qs.Denials = total.Queries, total.Errors, total.Timeouts, total.Denials
	qs.RowsRead, qs.RowsWritten = total.RowsRead, total.RowsWritten
	if total.Queries > 0 {
		qs.ErrorRate = float64(total.Errors+total.Timeouts) / float64(total.Queries)
	}
	qs.P50MS, qs.P95MS, qs.P99MS = all.Quantile(0.5), all.Quantile(0.95), all.Quantile(0.99)
	qs.MeanMS, qs.MaxMS = all.Mean(), all.Max()
	p.Resources.Databases, p.Resources.StorageBytes = gauges.Databases, gauges.StorageBytes
	p.Resources.DatabasesCreated, p.Resources.DatabasesDeleted = total.DatabasesCreated, total.DatabasesDeleted
	a := p.Activity
	a.Logins, a.LoginFailures, a.Lockouts, a.SessionsStart, a.RoleChanges = total.Logins, total.LoginFailures, total.Lockouts,
		total.Sessions, total.RoleChanges
	if !followsGauges && req.View == domain.MetricsOwn {
		// A member's databases: the ones they own now, from the databases read model.
		if p.Resources.Databases, p.Resources.StorageBytes, err = q.ownedDatabases(ctx, req.Tenant, req.User); err != nil {
			return DashboardPeriod{}, err
		}
	}
	return p, nil
}

// now adds what only the present has: connections, live sessions, quotas and query patterns.
func (q *Views) now(ctx context.Context, req DashboardRequest, scope MetricsScope, d *Dashboard) error {
	connections, used := req.Connections, req.Connections
	d.Resources.Connections = &connections
	sessionsOf := req.User
	if req.View != domain.MetricsOwn {
		sessionsOf = req.Member
	}
	active, err := q.liveSessions(ctx, req.Tenant, sessionsOf, req.Now)
	if err != nil {
		return err
	}
	d.Activity.ActiveSessions = &active
	if d.Resources.Load != nil {
		load, err := q.LoadNow(ctx, scope.Tenant, req.Now)
		if err != nil {
			return err
		}
		d.Resources.Load.Now = &load
		// The quota holds for the deployment: the sampled sum, or this process's own count if the
		// samples have not caught up with it yet.
		used = max(used, load.Running)
	}
	if req.View == domain.MetricsPlatform {
		return nil
	}
	if d.Quotas, err = q.quotas(ctx, req.Tenant, used); err != nil {
		return err
	}
	order := req.PatternsBy
	if order == "" {
		order = PatternsByCount
	}
	grain := domain.GrainDay
	if req.Window.To.Sub(req.Window.From) <= 7*24*time.Hour && !req.Window.From.Before(req.Now.Add(-domain.MetricsPerformanceRetention)) {
		grain = domain.GrainHour
	}
	filter := PatternFilter{Tenant: req.Tenant, Database: req.Database, User: req.Member}
	if req.View == domain.MetricsOwn {
		filter.User = req.User
	}
	patterns, err := q.MetricsPatterns(ctx, filter, grain, grain.Start(req.Window.From), req.Window.To, order, dashboardPatterns)
	if err != nil {
		return err
	}
	d.Patterns = make([]PatternView, len(patterns))
	for i, p := range patterns {
		d.Patterns[i] = PatternView{Fingerprint: p.Fingerprint, Text: p.Text, StatementType: p.StatementType, Count: p.Queries,
			Errors: p.Errors, TotalMS: p.Latency.Sum(), MeanMS: p.Latency.Mean(), P95MS: p.Latency.Quantile(0.95)}
	}
	return nil
}

// loadUse is the load series of a tenant ("" for the platform) over w, from start.
func (q *Views) loadUse(ctx context.Context, tenant domain.TenantID, w domain.MetricsWindow, start time.Time) (*LoadUse, error) {
	buckets, carried, err := q.LoadBuckets(ctx, tenant, w.Grain, start, w.To)
	if err != nil {
		return nil, err
	}
	u := &LoadUse{Series: []LoadPoint{}}
	next := 0
	for at := start; at.Before(w.To); at = at.Add(w.Grain.Size()) {
		point := carried
		if next < len(buckets) && buckets[next].At.Equal(at) {
			point, carried = buckets[next].Peak, buckets[next].Last
			next++
		}
		u.Peak = u.Peak.max(point)
		u.Series = append(u.Series, LoadPoint{At: at, Load: point})
	}
	return u, nil
}

// quotas is the tenant's use of each quota of its plan.
func (q *Views) quotas(ctx context.Context, tenant domain.TenantID, connections int64) (map[string]QuotaUse, error) {
	t, err := q.Tenant(ctx, tenant)
	if err != nil {
		return nil, err
	}
	plan, err := domain.PlanByID(t.Plan)
	if err != nil {
		return nil, err
	}
	databases, storage, err := q.DatabaseUsage(ctx, tenant)
	if err != nil {
		return nil, err
	}
	l := plan.Limits
	return map[string]QuotaUse{
		"databases":     NewQuotaUse(databases, l.MaxDatabases),
		"storage_bytes": NewQuotaUse(storage, l.MaxStorageBytes),
		"connections":   NewQuotaUse(connections, l.MaxConnections),
		"users":         NewQuotaUse(t.Seats, l.MaxUsers),
	}, nil
}

// liveSessions counts the sessions live now: of a user in a tenant, of a tenant (user ""), or of
// the platform (both ""). The sessions of a user come by sessions_user, those of a tenant by
// sessions_tenant; only the platform's reads every session not ended.
func (q *Views) liveSessions(ctx context.Context, tenant domain.TenantID, user domain.UserID, now time.Time) (int64, error) {
	query := `SELECT COUNT(*) FROM sessions s LEFT JOIN session_activity a ON a.session_id = s.session_id
		WHERE s.ended_at IS NULL AND s.expires_at > ?
		AND GREATEST(s.started_at, COALESCE(s.refreshed_at, s.started_at), COALESCE(a.last_seen_at, s.started_at))
			+ INTERVAL s.idle_timeout_s SECOND >= ?`
	args := []any{now.UTC(), now.UTC()}
	if user != "" {
		query += ` AND s.user_id = ?`
		args = append(args, user)
	}
	if tenant != "" {
		query += ` AND s.tenant_id = ?`
		args = append(args, tenant)
	}
	var n int64
	if err := q.db.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count live sessions: %w", err)
	}
	return n, nil
}

// ownedDatabases counts a member's databases that count against the plan, and the storage of
// those with a schema.
func (q *Views) ownedDatabases(ctx context.Context, tenant domain.TenantID, owner domain.UserID) (databases, storage int64, err error) {
	err = q.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(state IN ('provisioning', 'running', 'stopped')), 0),
		COALESCE(SUM(IF(state IN ('running', 'stopped', 'deleted'), storage_bytes, 0)), 0)
		FROM database_list WHERE tenant_id = ? AND owner_id = ?`, tenant, owner).Scan(&databases, &storage)
	if err != nil {
		return 0, 0, fmt.Errorf("databases of %s: %w", owner, err)
	}
	return databases, storage, nil
}

// databaseStatus counts the tenant's databases by state (purged ones are gone).
func (q *Views) databaseStatus(ctx context.Context, tenant domain.TenantID) (DatabaseStatus, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM database_list WHERE tenant_id = ? AND state <> 'purged' GROUP BY state`, tenant)
	if err != nil {
		return DatabaseStatus{}, fmt.Errorf("database states of %s: %w", tenant, err)
	}
	defer rows.Close()
	s := DatabaseStatus{Databases: map[domain.DatabaseState]int64{}}
	for rows.Next() {
		var state domain.DatabaseState
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return DatabaseStatus{}, err
		}
		s.Databases[state] = n
	}
	return s, rows.Err()
}
