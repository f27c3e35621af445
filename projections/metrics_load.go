package projections

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

// MetricsLoad is the read model of the load gauges: the statements running at once and the
// account pools' connections, sampled by each process's query module (domain.TenantLoadSampled,
// once a minute at most and only when they changed). metrics_load_processes keeps each process's
// latest sample per tenant (process "" is the tenant's sum over processes, and tenant "" with
// process "" the platform's); metrics_load keeps, per tenant (and the platform, tenant "") and
// bucket of each grain, the peak of those sums in the bucket and the sums after its last sample
// (what a chart carries on to the buckets without one). A sample adds its change to the sums, then
// raises the peaks of its minute, hour and day: an hour's peak is its minutes' greatest and a
// day's its hours', and the log alone decides them, so a rebuild writes the same rows. Retention
// is the metrics read model's (domain.MetricsPruned): minutes 30 days, hours 90, days a year.
//
// It is a projector of its own beside Metrics: a minute's samples are a few rows and need none of
// Metrics' batching, and neither model waits for the other.
type MetricsLoad struct{ reg *eventstore.Registry }

// NewMetricsLoad returns the projector decoding with reg. It panics on a nil registry.
func NewMetricsLoad(reg *eventstore.Registry) MetricsLoad {
	if reg == nil {
		panic("projections: NewMetricsLoad needs a registry")
	}
	return MetricsLoad{reg: reg}
}

func (MetricsLoad) Name() string { return "metrics_load" }

func (p MetricsLoad) Handles() []string {
	return p.reg.StoredAs(domain.TenantLoadSampled{}.EventType(), domain.MetricsPruned{}.EventType())
}

func (MetricsLoad) Tables() []Table {
	return []Table{
		{Name: "metrics_load", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			tenant_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			grain            CHAR(1)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			bucket           DATETIME NOT NULL,
			peak_running     BIGINT NOT NULL,
			peak_pool_open   BIGINT NOT NULL,
			peak_pool_in_use BIGINT NOT NULL,
			last_running     BIGINT NOT NULL,
			last_pool_open   BIGINT NOT NULL,
			last_pool_in_use BIGINT NOT NULL,
			PRIMARY KEY (tenant_id, grain, bucket),
			KEY metrics_load_age (grain, bucket)
		) ENGINE = InnoDB`},
		{Name: "metrics_load_processes", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			tenant_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			process_id  CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			running     BIGINT NOT NULL,
			pool_open   BIGINT NOT NULL,
			pool_in_use BIGINT NOT NULL,
			PRIMARY KEY (tenant_id, process_id)
		) ENGINE = InnoDB`},
		{Name: "metrics_load_state", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			id                 TINYINT NOT NULL PRIMARY KEY,
			position           BIGINT NOT NULL,
			performance_before DATETIME NOT NULL,
			activity_before    DATETIME NOT NULL,
			daily_before       DATETIME NOT NULL
		) ENGINE = InnoDB`},
	}
}

// Load is the load of a tenant or the platform: statements running at once, and the account
// pools' connections open and in use.
type Load struct {
	Running   int64 `json:"running"`
	PoolOpen  int64 `json:"pool_open"`
	PoolInUse int64 `json:"pool_in_use"`
}

func (l Load) add(o Load, sign int64) Load {
	return Load{l.Running + sign*o.Running, l.PoolOpen + sign*o.PoolOpen, l.PoolInUse + sign*o.PoolInUse}
}

func (l Load) max(o Load) Load {
	return Load{max(l.Running, o.Running), max(l.PoolOpen, o.PoolOpen), max(l.PoolInUse, o.PoolInUse)}
}

type loadProcessKey struct {
	tenant  domain.TenantID
	process string
}

type loadBucketKey struct {
	tenant domain.TenantID
	grain  string
	bucket int64
}

type loadBucket struct{ peak, last Load }

// loadBatch is one Apply: what its samples read and the rows it will write.
type loadBatch struct {
	t         Tables
	position  int64 // the last event applied: a redelivered one changes nothing
	cut       domain.MetricsPruned
	cutMoved  bool
	processes map[loadProcessKey]Load // read or changed; a zero Load is deleted
	changed   map[loadProcessKey]bool
	buckets   map[loadBucketKey]*loadBucket
}

// Apply folds the samples into the sums and the buckets, and writes each touched row once.
func (p MetricsLoad) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	b := &loadBatch{t: t, processes: map[loadProcessKey]Load{}, changed: map[loadProcessKey]bool{}, buckets: map[loadBucketKey]*loadBucket{}}
	err := tx.QueryRowContext(ctx, `SELECT position, performance_before, activity_before, daily_before FROM `+t.Name("metrics_load_state")+` WHERE id = 1`).
		Scan(&b.position, &b.cut.PerformanceBefore, &b.cut.ActivityBefore, &b.cut.DailyBefore)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("projections: metrics load: read the state: %w", err)
	}
	decoded := make([]domain.Event, 0, len(events))
	var tenants []string
	for _, env := range events {
		if env.Position <= b.position {
			continue
		}
		b.position = env.Position
		e, err := p.reg.Decode(env)
		if err != nil {
			return fmt.Errorf("projections: metrics load at position %d: %w", env.Position, err)
		}
		decoded = append(decoded, e)
		if s, ok := e.(domain.TenantLoadSampled); ok {
			tenants = append(tenants, string(s.TenantID))
		}
	}
	if len(decoded) == 0 {
		return nil
	}
	if err := b.load(ctx, tx, tenants); err != nil {
		return err
	}
	for _, e := range decoded {
		switch e := e.(type) {
		case domain.TenantLoadSampled:
			b.sampled(e)
		case domain.MetricsPruned:
			b.prune(e)
		}
	}
	return b.write(ctx, tx)
}

// load reads the rows of metrics_load_processes of the tenants sampled (every process's, and
// their sums) and the platform's sum.
func (b *loadBatch) load(ctx context.Context, tx *sql.Tx, tenants []string) error {
	if len(tenants) == 0 {
		return nil
	}
	slices.Sort(tenants)
	err := eachChunk(append(slices.Compact(tenants), ""), func(chunk []string) error {
		return scanRows(ctx, tx, `SELECT tenant_id, process_id, running, pool_open, pool_in_use FROM `+b.t.Name("metrics_load_processes")+
			` WHERE tenant_id IN (`+sqlparams.List(len(chunk))+`)`, anys(chunk), func(rows *sql.Rows) error {
			var k loadProcessKey
			var l Load
			if err := rows.Scan(&k.tenant, &k.process, &l.Running, &l.PoolOpen, &l.PoolInUse); err != nil {
				return err
			}
			b.processes[k] = l
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("projections: metrics load: read the samples: %w", err)
	}
	return nil
}

// cutoff is where the cut leaves the buckets of grain: minutes are performance data, hours
// resource use.
func (b *loadBatch) cutoff(g domain.MetricsGrain) time.Time {
	switch g {
	case domain.GrainMinute:
		return b.cut.PerformanceBefore
	case domain.GrainHour:
		return b.cut.ActivityBefore
	}
	return b.cut.DailyBefore
}

// prune notes a cut: the buckets before it go once the batch is written, and later samples no
// longer count there.
func (b *loadBatch) prune(e domain.MetricsPruned) {
	if !e.Moves(b.cut) {
		return
	}
	later := func(x, y time.Time) time.Time {
		if x.After(y) {
			return x.UTC()
		}
		return y
	}
	b.cut.PerformanceBefore = later(e.PerformanceBefore, b.cut.PerformanceBefore)
	b.cut.ActivityBefore = later(e.ActivityBefore, b.cut.ActivityBefore)
	b.cut.DailyBefore = later(e.DailyBefore, b.cut.DailyBefore)
	b.cutMoved = true
}

// sampled replaces the process's figures for the tenant, moves the tenant's and the platform's
// sums by the change, and raises the peaks of the sample's minute, hour and day.
func (b *loadBatch) sampled(e domain.TenantLoadSampled) {
	now := Load{e.PeakRunning, e.PoolOpen, e.PoolInUse}
	own := loadProcessKey{e.TenantID, e.ProcessID}
	change := now.add(b.processes[own], -1)
	b.processes[own], b.changed[own] = now, true
	for _, sum := range []loadProcessKey{{e.TenantID, ""}, {"", ""}} {
		total := b.processes[sum].add(change, 1)
		b.processes[sum], b.changed[sum] = total, true
		for _, g := range grains {
			start := g.Start(e.Minute)
			if start.Before(b.cutoff(g)) {
				continue
			}
			k := loadBucketKey{sum.tenant, grainCode(g), start.Unix()}
			r := b.buckets[k]
			if r == nil {
				r = &loadBucket{}
				b.buckets[k] = r
			}
			r.peak, r.last = r.peak.max(total), total
		}
	}
}

// write stores the processes' figures and sums (deleting those back at zero), the buckets (a
// stored peak only rises, the last figures are the batch's), then the cut, which deletes what
// falls before it.
func (b *loadBatch) write(ctx context.Context, tx *sql.Tx) error {
	keys := slices.SortedFunc(maps.Keys(b.changed), func(x, y loadProcessKey) int {
		return cmp.Or(strings.Compare(string(x.tenant), string(y.tenant)), strings.Compare(x.process, y.process))
	})
	var upserts, deletes []any
	for _, k := range keys {
		v := b.processes[k]
		if v == (Load{}) {
			deletes = append(deletes, k.tenant, k.process)
			continue
		}
		upserts = append(upserts, []any{k.tenant, k.process, v.Running, v.PoolOpen, v.PoolInUse})
	}
	table := b.t.Name("metrics_load_processes")
	if err := upsertRows(ctx, tx, `INSERT INTO `+table+` (tenant_id, process_id, running, pool_open, pool_in_use) VALUES `, 5, upserts,
		` ON DUPLICATE KEY UPDATE running = VALUES(running), pool_open = VALUES(pool_open), pool_in_use = VALUES(pool_in_use)`); err != nil {
		return fmt.Errorf("projections: metrics load: write the samples: %w", err)
	}
	for from := 0; from < len(deletes); from += 2 * rowsPerStatement {
		chunk := deletes[from:min(from+2*rowsPerStatement, len(deletes))]
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE (tenant_id, process_id) IN (`+
			strings.TrimSuffix(strings.Repeat("(?, ?), ", len(chunk)/2), ", ")+`)`, chunk...); err != nil {
			return fmt.Errorf("projections: metrics load: delete the samples: %w", err)
		}
	}
	buckets := slices.SortedFunc(maps.Keys(b.buckets), func(x, y loadBucketKey) int {
		return cmp.Or(strings.Compare(string(x.tenant), string(y.tenant)), strings.Compare(x.grain, y.grain), cmp.Compare(x.bucket, y.bucket))
	})
	rows := make([]any, 0, len(buckets))
	for _, k := range buckets {
		r := b.buckets[k]
		rows = append(rows, []any{k.tenant, k.grain, time.Unix(k.bucket, 0).UTC(), r.peak.Running, r.peak.PoolOpen, r.peak.PoolInUse,
			r.last.Running, r.last.PoolOpen, r.last.PoolInUse})
	}
	if err := upsertRows(ctx, tx, `INSERT INTO `+b.t.Name("metrics_load")+` (tenant_id, grain, bucket, peak_running, peak_pool_open,
		peak_pool_in_use, last_running, last_pool_open, last_pool_in_use) VALUES `, 9, rows, ` ON DUPLICATE KEY UPDATE
		peak_running = GREATEST(peak_running, VALUES(peak_running)), peak_pool_open = GREATEST(peak_pool_open, VALUES(peak_pool_open)),
		peak_pool_in_use = GREATEST(peak_pool_in_use, VALUES(peak_pool_in_use)), last_running = VALUES(last_running),
		last_pool_open = VALUES(last_pool_open), last_pool_in_use = VALUES(last_pool_in_use)`); err != nil {
		return fmt.Errorf("projections: metrics load: write buckets: %w", err)
	}
	return b.writeState(ctx, tx)
}

// writeState stores the position and the cut and, when the batch moved the cut, deletes what falls
// before it.
func (b *loadBatch) writeState(ctx context.Context, tx *sql.Tx) error {
	c := b.cut
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+b.t.Name("metrics_load_state")+` (id, position, performance_before, activity_before, daily_before)
		VALUES (1, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE position = VALUES(position), performance_before = VALUES(performance_before),
		activity_before = VALUES(activity_before), daily_before = VALUES(daily_before)`,
		b.position, c.PerformanceBefore, c.ActivityBefore, c.DailyBefore); err != nil {
		return fmt.Errorf("projections: metrics load: write the state: %w", err)
	}
	if !b.cutMoved {
		return nil
	}
	for _, g := range grains {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+b.t.Name("metrics_load")+` WHERE grain = ? AND bucket < ?`, grainCode(g), b.cutoff(g)); err != nil {
			return fmt.Errorf("projections: metrics load: apply the cut: %w", err)
		}
	}
	return nil
}

// LoadBucket is one stored bucket of metrics_load: the peak of the summed samples in it, and the
// sums after its last sample.
type LoadBucket struct {
	At         time.Time
	Peak, Last Load
}

// LoadBuckets returns the stored load buckets of a tenant ("" for the platform) at grain that
// start in [from, to), oldest first, and the sums as they stood at from: the last ones of the
// bucket before it (within lookBack; zero when none is kept).
func (q *Views) LoadBuckets(ctx context.Context, tenant domain.TenantID, grain domain.MetricsGrain, from, to time.Time) ([]LoadBucket, Load, error) {
	var before Load
	err := q.db.QueryRowContext(ctx, `SELECT last_running, last_pool_open, last_pool_in_use FROM metrics_load
		WHERE tenant_id = ? AND grain = ? AND bucket < ? AND bucket >= ? ORDER BY bucket DESC LIMIT 1`,
		tenant, grainCode(grain), from.UTC(), from.UTC().Add(-lookBack[grain])).Scan(&before.Running, &before.PoolOpen, &before.PoolInUse)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, Load{}, fmt.Errorf("read the load before the window: %w", err)
	}
	rows, err := q.db.QueryContext(ctx, `SELECT bucket, peak_running, peak_pool_open, peak_pool_in_use, last_running, last_pool_open,
		last_pool_in_use FROM metrics_load WHERE tenant_id = ? AND grain = ? AND bucket >= ? AND bucket < ? ORDER BY bucket`,
		tenant, grainCode(grain), from.UTC(), to.UTC())
	if err != nil {
		return nil, Load{}, fmt.Errorf("read the load: %w", err)
	}
	defer rows.Close()
	var out []LoadBucket
	for rows.Next() {
		var b LoadBucket
		if err := rows.Scan(&b.At, &b.Peak.Running, &b.Peak.PoolOpen, &b.Peak.PoolInUse, &b.Last.Running, &b.Last.PoolOpen, &b.Last.PoolInUse); err != nil {
			return nil, Load{}, err
		}
		b.At = b.At.UTC()
		out = append(out, b)
	}
	return out, before, rows.Err()
}

// liveSamples reads the latest samples of the processes alive at its one argument, now: those
// holding a lease in process_leases, so that a process that died without recording its end no
// longer counts.
const liveSamples = `FROM metrics_load_processes s JOIN process_leases l ON l.instance_id = s.process_id AND l.expires_at > ?`

// RunningNow is, for each of tenants, the statements it runs at once across the deployment now
// (LoadNow's running, for many tenants at once); a tenant without a live sample is absent.
func (q *Views) RunningNow(ctx context.Context, tenants []domain.TenantID, now time.Time) (map[domain.TenantID]int64, error) {
	out := map[domain.TenantID]int64{}
	ids := make([]string, len(tenants))
	for i, t := range tenants {
		ids[i] = string(t)
	}
	err := eachChunk(ids, func(chunk []string) error {
		rows, err := q.db.QueryContext(ctx, `SELECT s.tenant_id, SUM(s.running) `+liveSamples+`
			WHERE s.tenant_id IN (`+sqlparams.List(len(chunk))+`) GROUP BY s.tenant_id`, append([]any{now.UTC()}, anys(chunk)...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var tenant domain.TenantID
			var running int64
			if err := rows.Scan(&tenant, &running); err != nil {
				return err
			}
			out[tenant] = running
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read the tenants' load now: %w", err)
	}
	return out, nil
}

// LoadNow is a tenant's load across the deployment now ("" for the platform): the sum of the
// latest samples of the processes alive at now (a live lease in process_leases), so that a
// process that died without recording its end no longer counts.
func (q *Views) LoadNow(ctx context.Context, tenant domain.TenantID, now time.Time) (Load, error) {
	query := `SELECT COALESCE(SUM(s.running), 0), COALESCE(SUM(s.pool_open), 0), COALESCE(SUM(s.pool_in_use), 0) ` + liveSamples
	args := []any{now.UTC()}
	if tenant != "" {
		query += ` WHERE s.tenant_id = ?`
		args = append(args, tenant)
	}
	var l Load
	if err := q.db.QueryRowContext(ctx, query, args...).Scan(&l.Running, &l.PoolOpen, &l.PoolInUse); err != nil {
		return Load{}, fmt.Errorf("read the load now: %w", err)
	}
	return l, nil
}
