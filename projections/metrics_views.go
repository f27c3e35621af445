package projections

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/latency"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

// MetricsScope names the rows of one family of metrics_usage: the platform, a tenant, one of its
// databases or one of its members.
type MetricsScope struct {
	Tenant  domain.TenantID
	Kind    string // ScopePlatform, ScopeTenant, ScopeDatabase, ScopeUser
	Subject string // the database or user id; "" for the platform and a tenant
}

// PlatformScope, TenantScope, DatabaseScope and UserScope name the row families.
func PlatformScope() MetricsScope { return MetricsScope{Kind: ScopePlatform} }
func TenantScope(t domain.TenantID) MetricsScope {
	return MetricsScope{Tenant: t, Kind: ScopeTenant}
}
func DatabaseScope(t domain.TenantID, d domain.DatabaseID) MetricsScope {
	return MetricsScope{Tenant: t, Kind: ScopeDatabase, Subject: string(d)}
}
func UserScope(t domain.TenantID, u domain.UserID) MetricsScope {
	return MetricsScope{Tenant: t, Kind: ScopeUser, Subject: string(u)}
}

// MetricsCounts are the counters of a bucket, or of several added up.
type MetricsCounts struct {
	Queries          uint64 `json:"queries"`
	Errors           uint64 `json:"errors"`
	Timeouts         uint64 `json:"timeouts"`
	Denials          uint64 `json:"denials"`
	RowsRead         uint64 `json:"rows_read"`
	RowsWritten      uint64 `json:"rows_written"`
	Logins           uint64 `json:"logins"`
	LoginFailures    uint64 `json:"login_failures"`
	Lockouts         uint64 `json:"lockouts"`
	Sessions         uint64 `json:"sessions_started"`
	DatabasesCreated uint64 `json:"databases_created"`
	DatabasesDeleted uint64 `json:"databases_deleted"`
	RoleChanges      uint64 `json:"role_changes"`
}

// fields are the counters in the order of counterColumns.
func (c *MetricsCounts) fields() [nCounters]*uint64 {
	return [nCounters]*uint64{&c.Queries, &c.Errors, &c.Timeouts, &c.Denials, &c.RowsRead, &c.RowsWritten,
		&c.Logins, &c.LoginFailures, &c.Lockouts, &c.Sessions, &c.DatabasesCreated, &c.DatabasesDeleted, &c.RoleChanges}
}

// Add adds o's counters to c.
func (c *MetricsCounts) Add(o MetricsCounts) {
	mine, theirs := c.fields(), o.fields()
	for i := range mine {
		*mine[i] += *theirs[i]
	}
}

// MetricsBucket is one stored bucket: its counters, the latencies of its statements, and the
// gauges when an event of the bucket changed them.
type MetricsBucket struct {
	At time.Time
	MetricsCounts
	Latency      latency.Histogram
	Databases    *int64
	StorageBytes *int64
}

// bucketColumns are the columns scanBucket reads.
var bucketColumns = `bucket, ` + strings.Join(counterColumns[:], ", ") + `, latency, database_count, storage_bytes`

// scanBucket reads a row of lead's columns followed by bucketColumns.
func scanBucket(rows *sql.Rows, lead ...any) (MetricsBucket, error) {
	var b MetricsBucket
	var hist []byte
	var databases, storage sql.NullInt64
	dest := append(lead, &b.At)
	for _, f := range b.fields() {
		dest = append(dest, f)
	}
	if err := rows.Scan(append(dest, &hist, &databases, &storage)...); err != nil {
		return MetricsBucket{}, err
	}
	if err := b.Latency.UnmarshalBinary(hist); err != nil {
		return MetricsBucket{}, fmt.Errorf("metrics of %s: %w", b.At, err)
	}
	b.At = b.At.UTC()
	if databases.Valid {
		b.Databases = &databases.Int64
	}
	if storage.Valid {
		b.StorageBytes = &storage.Int64
	}
	return b, nil
}

// scanMinutes reads a row of lead's columns followed by an hour's bucket and minutes (the
// minutes of metrics_usage, see metrics_minutes.go) and returns its minutes in [from, to).
func scanMinutes(rows *sql.Rows, from, to time.Time, lead ...any) ([]MetricsBucket, error) {
	var hour time.Time
	var minutes []byte
	if err := rows.Scan(append(lead, &hour, &minutes)...); err != nil {
		return nil, err
	}
	return minuteBuckets(hour.UTC(), minutes, from, to)
}

// minutesFrom is where the hours holding the minutes from from start.
func minutesFrom(from time.Time) time.Time { return from.UTC().Truncate(time.Hour) }

// usageRead says how the buckets of grain from from on are read from metrics_usage: the columns
// (after a reader's own), the grain of the rows and the first row's bucket. A minute is read from
// its hour's row (metrics_minutes.go).
func usageRead(grain domain.MetricsGrain, from time.Time) (columns string, stored domain.MetricsGrain, first time.Time) {
	if grain == domain.GrainMinute {
		return `bucket, minutes`, domain.GrainHour, minutesFrom(from)
	}
	return bucketColumns, grain, from
}

// scanBuckets reads a row of lead's columns followed by usageRead's of grain and returns its
// buckets in [from, to): the row's, or its hour's minutes.
func scanBuckets(rows *sql.Rows, grain domain.MetricsGrain, from, to time.Time, lead ...any) ([]MetricsBucket, error) {
	if grain == domain.GrainMinute {
		return scanMinutes(rows, from, to, lead...)
	}
	b, err := scanBucket(rows, lead...)
	return []MetricsBucket{b}, err
}

// MetricsBuckets returns the stored buckets of scope at grain that start in [from, to), oldest
// first; buckets without events are not stored.
func (q *Views) MetricsBuckets(ctx context.Context, scope MetricsScope, grain domain.MetricsGrain, from, to time.Time) ([]MetricsBucket, error) {
	columns, stored, first := usageRead(grain, from)
	rows, err := q.db.QueryContext(ctx, `SELECT `+columns+` FROM metrics_usage
		WHERE tenant_id = ? AND scope = ? AND subject_id = ? AND grain = ? AND bucket >= ? AND bucket < ?
		ORDER BY bucket`, scope.Tenant, scope.Kind, scope.Subject, grainCode(stored), first.UTC(), to.UTC())
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	defer rows.Close()
	var out []MetricsBucket
	for rows.Next() {
		buckets, err := scanBuckets(rows, grain, from, to)
		if err != nil {
			return nil, err
		}
		out = append(out, buckets...)
	}
	return out, rows.Err()
}

// Gauges are the databases counted against the plan and the storage they hold.
type Gauges struct {
	Databases    int64 `json:"databases"`
	StorageBytes int64 `json:"storage_bytes"`
}

// lookBack bounds how far back MetricsGaugesAt reads each grain: a day of minutes, a month of
// hours, a year of days (at most ~2,500 rows, however quiet the gauges were).
var lookBack = map[domain.MetricsGrain]time.Duration{
	domain.GrainMinute: 24 * time.Hour, domain.GrainHour: 30 * 24 * time.Hour, domain.GrainDay: domain.MetricsDailyRetention,
}

// MetricsGaugesAt returns the gauges of scope as they stood at at: the last value set in a bucket
// that ended by then (zero when none is kept).
func (q *Views) MetricsGaugesAt(ctx context.Context, scope MetricsScope, at time.Time) (Gauges, error) {
	var best time.Time
	var g Gauges
	for _, grain := range grains {
		latestStart := at.UTC().Add(-grain.Size())
		var bucket time.Time
		var databases sql.NullInt64
		var storage int64
		var err error
		if grain == domain.GrainMinute {
			bucket, databases, storage, err = q.lastMinuteGauges(ctx, scope, latestStart.Add(-lookBack[grain]), latestStart)
		} else {
			err = q.db.QueryRowContext(ctx, `SELECT bucket, database_count, storage_bytes FROM metrics_usage
				WHERE tenant_id = ? AND scope = ? AND subject_id = ? AND grain = ? AND bucket <= ? AND bucket >= ?
				AND storage_bytes IS NOT NULL ORDER BY bucket DESC LIMIT 1`,
				scope.Tenant, scope.Kind, scope.Subject, grainCode(grain), latestStart, latestStart.Add(-lookBack[grain])).
				Scan(&bucket, &databases, &storage)
		}
		if errors.Is(err, sql.ErrNoRows) {
			continue
		} else if err != nil {
			return Gauges{}, fmt.Errorf("read gauges: %w", err)
		}
		if end := bucket.Add(grain.Size()); end.After(best) {
			best, g = end, Gauges{Databases: databases.Int64, StorageBytes: storage}
		}
	}
	return g, nil
}

// lastMinuteGauges returns the last minute of scope in [from, to] that set the gauges (the
// storage always, the databases for a tenant and the platform), from the minutes of the hours
// whose gauges were set; sql.ErrNoRows when none did.
func (q *Views) lastMinuteGauges(ctx context.Context, scope MetricsScope, from, to time.Time) (time.Time, sql.NullInt64, int64, error) {
	columns, stored, first := usageRead(domain.GrainMinute, from)
	rows, err := q.db.QueryContext(ctx, `SELECT `+columns+` FROM metrics_usage
		WHERE tenant_id = ? AND scope = ? AND subject_id = ? AND grain = ? AND bucket <= ? AND bucket >= ?
		AND storage_bytes IS NOT NULL ORDER BY bucket DESC`,
		scope.Tenant, scope.Kind, scope.Subject, grainCode(stored), to, first.UTC())
	if err != nil {
		return time.Time{}, sql.NullInt64{}, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		minutes, err := scanBuckets(rows, domain.GrainMinute, from, to.Add(time.Nanosecond))
		if err != nil {
			return time.Time{}, sql.NullInt64{}, 0, err
		}
		for _, m := range slices.Backward(minutes) {
			if m.StorageBytes == nil {
				continue
			}
			var databases sql.NullInt64
			if m.Databases != nil {
				databases = sql.NullInt64{Int64: *m.Databases, Valid: true}
			}
			return m.At, databases, *m.StorageBytes, nil
		}
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, sql.NullInt64{}, 0, err
	}
	return time.Time{}, sql.NullInt64{}, 0, sql.ErrNoRows
}

// MetricsTotals returns a tenant's gauges now ("" for the platform).
func (q *Views) MetricsTotals(ctx context.Context, tenant domain.TenantID) (Gauges, error) {
	var g Gauges
	err := q.db.QueryRowContext(ctx, `SELECT database_count, storage_bytes FROM metrics_totals WHERE tenant_id = ?`, tenant).
		Scan(&g.Databases, &g.StorageBytes)
	if errors.Is(err, sql.ErrNoRows) {
		return Gauges{}, nil
	}
	return g, err
}

// PatternStats are the statements of one pattern (fingerprint) over a period.
type PatternStats struct {
	Fingerprint   string
	Text          string
	StatementType string
	Queries       uint64
	Errors        uint64
	Latency       latency.Histogram
}

// PatternFilter narrows the patterns of a tenant to a database and a member ("" for all).
type PatternFilter struct {
	Tenant   domain.TenantID
	Database domain.DatabaseID
	User     domain.UserID
}

// Pattern orders: by statements, by the time they took, by their p95, by their errors.
const (
	PatternsByCount     = "count"
	PatternsByTotalTime = "total_time"
	PatternsByP95       = "p95"
	PatternsByErrors    = "errors"
)

// MetricsPatterns returns the top limit patterns of the filter's statements in the hourly (grain
// hour) or daily buckets that start in [from, to), ordered by order (a Patterns* constant),
// heaviest first, with their text. The hourly patterns are the tenant's; those of one database or
// member are kept by the day, so such a filter reads the days that hold [from, to).
func (q *Views) MetricsPatterns(ctx context.Context, f PatternFilter, grain domain.MetricsGrain, from, to time.Time, order string, limit int) ([]PatternStats, error) {
	query := `SELECT fingerprint, queries, errors, latency FROM metrics_patterns
		WHERE tenant_id = ? AND scope = ? AND grain = ? AND bucket >= ? AND bucket < ?`
	scope := patternsOfTenant
	if f.Database != "" || f.User != "" {
		scope, grain, from = patternsOfMembers, domain.GrainDay, domain.GrainDay.Start(from)
	}
	switch {
	case f.Database == "" && f.User != "":
		query += ` AND database_id <> '' AND user_id = ?`
	case f.Database != "" && f.User == "":
		query += ` AND database_id = ? AND user_id <> ''`
	case f.Database != "":
		query += ` AND database_id = ? AND user_id = ?`
	}
	args := []any{f.Tenant, scope, grainCode(grain), from.UTC(), to.UTC()}
	for _, v := range []string{string(f.Database), string(f.User)} {
		if v != "" {
			args = append(args, v)
		}
	}
	rows, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read patterns: %w", err)
	}
	defer rows.Close()
	byFingerprint := map[string]*PatternStats{}
	for rows.Next() {
		var fp string
		var queries, errs uint64
		var hist []byte
		if err := rows.Scan(&fp, &queries, &errs, &hist); err != nil {
			return nil, err
		}
		h, err := latency.Decode(hist)
		if err != nil {
			return nil, fmt.Errorf("read patterns: %w", err)
		}
		p := byFingerprint[fp]
		if p == nil {
			p = &PatternStats{Fingerprint: fp}
			byFingerprint[fp] = p
		}
		p.Queries += queries
		p.Errors += errs
		p.Latency.Merge(h)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	weight := map[string]func(*PatternStats) float64{
		PatternsByCount:     func(p *PatternStats) float64 { return float64(p.Queries) },
		PatternsByTotalTime: func(p *PatternStats) float64 { return p.Latency.Sum() },
		PatternsByP95:       func(p *PatternStats) float64 { return p.Latency.Quantile(0.95) },
		PatternsByErrors:    func(p *PatternStats) float64 { return float64(p.Errors) },
	}[order]
	if weight == nil {
		return nil, domain.NewValidationError("patterns_by", "one of count, total_time, p95, errors")
	}
	top := make([]*PatternStats, 0, len(byFingerprint))
	for _, p := range byFingerprint {
		top = append(top, p)
	}
	slices.SortFunc(top, func(a, b *PatternStats) int {
		if wa, wb := weight(a), weight(b); wa != wb {
			if wa > wb {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Fingerprint, b.Fingerprint)
	})
	top = top[:min(limit, len(top))]
	if err := q.patternTexts(ctx, f.Tenant, top); err != nil {
		return nil, err
	}
	out := make([]PatternStats, len(top))
	for i, p := range top {
		out[i] = *p
	}
	return out, nil
}

func (q *Views) patternTexts(ctx context.Context, tenant domain.TenantID, patterns []*PatternStats) error {
	if len(patterns) == 0 {
		return nil
	}
	args := []any{tenant}
	byFingerprint := map[string]*PatternStats{}
	for _, p := range patterns {
		args = append(args, p.Fingerprint)
		byFingerprint[p.Fingerprint] = p
	}
	rows, err := q.db.QueryContext(ctx, `SELECT fingerprint, text, statement_type FROM metrics_pattern_texts
		WHERE tenant_id = ? AND fingerprint IN (`+sqlparams.List(len(patterns))+`)`, args...)
	if err != nil {
		return fmt.Errorf("read pattern texts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var fp, text, typ string
		if err := rows.Scan(&fp, &text, &typ); err != nil {
			return err
		}
		byFingerprint[fp].Text, byFingerprint[fp].StatementType = text, typ
	}
	return rows.Err()
}

// MetricsRow is one bucket of one scope, as GET /metrics/export writes it. Load is the peak of the
// sampled load in the bucket (metrics_load) for the platform and a tenant, nil where no sample fell
// in it; a bucket with a sample but no event is a row of zero counts.
type MetricsRow struct {
	Scope    string
	TenantID domain.TenantID
	Subject  string
	MetricsBucket
	Load *Load
}

// ExportMetrics calls each with every bucket at grain that starts in [from, to): of every scope of
// tenant (the tenant, its databases, its members), or, for tenant "", of the platform and of each
// tenant, the platform's and the tenants' with their load. Rows come by scope and subject, oldest
// first; an error of each stops the export. The buckets and the load are read by two streamed
// queries in the same order and merged, so the export holds one row of each at a time.
func (q *Views) ExportMetrics(ctx context.Context, tenant domain.TenantID, grain domain.MetricsGrain, from, to time.Time, each func(MetricsRow) error) error {
	columns, stored, first := usageRead(grain, from)
	columns = `scope, tenant_id, subject_id, ` + columns
	query := `SELECT ` + columns + ` FROM metrics_usage WHERE tenant_id = ? AND grain = ? AND bucket >= ? AND bucket < ?
		ORDER BY scope, subject_id, bucket`
	args := []any{tenant, grainCode(stored), first.UTC(), to.UTC()}
	loadQuery := `SELECT tenant_id, bucket, peak_running, peak_pool_open, peak_pool_in_use FROM metrics_load
		WHERE tenant_id = ? AND grain = ? AND bucket >= ? AND bucket < ? ORDER BY bucket`
	loadArgs := []any{tenant, grainCode(grain), from.UTC(), to.UTC()}
	if tenant == "" {
		query = `SELECT ` + columns + ` FROM metrics_usage WHERE grain = ? AND bucket >= ? AND bucket < ? AND scope IN (?, ?)
			ORDER BY scope, tenant_id, bucket`
		args = []any{grainCode(stored), first.UTC(), to.UTC(), ScopePlatform, ScopeTenant}
		loadQuery = `SELECT tenant_id, bucket, peak_running, peak_pool_open, peak_pool_in_use FROM metrics_load
			WHERE grain = ? AND bucket >= ? AND bucket < ? ORDER BY tenant_id, bucket`
		loadArgs = loadArgs[1:]
	}
	// scan reads a row's buckets: one, or an hour's minutes.
	scan := func(rows *sql.Rows) ([]MetricsRow, error) {
		var r MetricsRow
		buckets, err := scanBuckets(rows, grain, from, to, &r.Scope, &r.TenantID, &r.Subject)
		out := make([]MetricsRow, len(buckets))
		for i, m := range buckets {
			out[i] = r
			out[i].MetricsBucket = m
		}
		return out, err
	}
	rows, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("export metrics: %w", err)
	}
	defer rows.Close()
	loads, err := q.db.QueryContext(ctx, loadQuery, loadArgs...)
	if err != nil {
		return fmt.Errorf("export metrics: %w", err)
	}
	defer loads.Close()
	var load *MetricsRow // the next load bucket, as the row it belongs to
	nextLoad := func() error {
		load = nil
		if !loads.Next() {
			return loads.Err()
		}
		r := MetricsRow{Scope: ScopeTenant, Load: &Load{}}
		if err := loads.Scan(&r.TenantID, &r.At, &r.Load.Running, &r.Load.PoolOpen, &r.Load.PoolInUse); err != nil {
			return err
		}
		if r.TenantID == "" {
			r.Scope = ScopePlatform
		}
		r.At = r.At.UTC()
		load = &r
		return nil
	}
	if err := nextLoad(); err != nil {
		return fmt.Errorf("export metrics: %w", err)
	}
	// emitLoads writes the load buckets that come before row (all of them for nil) as rows of their own.
	emitLoads := func(row *MetricsRow) error {
		for load != nil && (row == nil || compareExportRows(load, row) < 0) {
			if err := each(*load); err != nil {
				return err
			}
			if err := nextLoad(); err != nil {
				return fmt.Errorf("export metrics: %w", err)
			}
		}
		return nil
	}
	for rows.Next() {
		buckets, err := scan(rows)
		if err != nil {
			return fmt.Errorf("export metrics: %w", err)
		}
		for _, r := range buckets {
			if err := emitLoads(&r); err != nil {
				return err
			}
			if load != nil && compareExportRows(load, &r) == 0 {
				r.Load = load.Load
				if err := nextLoad(); err != nil {
					return fmt.Errorf("export metrics: %w", err)
				}
			}
			if err := each(r); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export metrics: %w", err)
	}
	return emitLoads(nil)
}

// compareExportRows orders rows as ExportMetrics' queries do: by scope, tenant, subject and bucket
// (a tenant's export has one tenant, the platform's no subjects).
func compareExportRows(a, b *MetricsRow) int {
	return cmp.Or(strings.Compare(a.Scope, b.Scope), strings.Compare(string(a.TenantID), string(b.TenantID)),
		strings.Compare(a.Subject, b.Subject), a.At.Compare(b.At))
}
