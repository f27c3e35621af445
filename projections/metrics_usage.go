package projections

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/latency"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

// Metrics is the read model of the dashboards, the exports and the alerts: counts and latency
// histograms in buckets of a minute, an hour and a day, for the platform, each tenant, each
// database and each member (metrics_usage: databases by the hour and day only; the minutes of a
// subject's hour packed into its hour's row, metrics_minutes.go); the query patterns
// (metrics_patterns: a tenant's by fingerprint per hour and day, and per database and member by
// the day); and what the gauges need to carry on between events
// (metrics_databases, metrics_totals, metrics_members) and where the model stands (metrics_state:
// the last position applied, so a redelivered event changes nothing, and the retention cut).
//
// Rollups happen as events arrive: each event adds to its minute, its hour and its day in the same
// transaction as the checkpoint, so an hour is always the merge of its minutes and a day of its
// hours (the histograms merge exactly, internal/latency), none is ever behind or counted twice,
// and the model is a function of the log: a rebuild gives the same numbers. Retention is an event
// too (domain.MetricsPruned, recorded by the retention reactor): a cut deletes the buckets before
// it and makes later events for those times count nowhere, so a rebuild prunes where the live
// model did.
//
// A batch costs a few statements whatever its size: the state rows its events touch are read
// once, the buckets are summed in Go (one row per key however many events fall in it), the
// histograms (and an hour's minutes) of the buckets a batch adds to are read once, merged and written back with
// every counter in one multi-row upsert per 500 rows. A rebuild does better: it writes each bucket
// once, with plain inserts, when the log has passed it (metricsRebuild, metrics_rebuild.go).
type Metrics struct {
	reg    *eventstore.Registry
	cached *histogramCache
}

// NewMetrics returns the projector decoding with reg. It panics on a nil registry.
func NewMetrics(reg *eventstore.Registry) Metrics {
	if reg == nil {
		panic("projections: NewMetrics needs a registry")
	}
	return Metrics{reg: reg, cached: &histogramCache{tables: map[string]*cachedHistograms{}}}
}

func (Metrics) Name() string { return "metrics" }

// Handles names the types under every version the log holds them.
func (p Metrics) Handles() []string {
	return p.reg.StoredAs(
		domain.QueryExecuted{}.EventType(),
		domain.UserLoginSucceeded{}.EventType(), domain.UserLoginFailed{}.EventType(), domain.UserLocked{}.EventType(),
		domain.AddressLoginFailed{}.EventType(), domain.SessionStarted{}.EventType(),
		domain.DatabaseRequested{}.EventType(), domain.DatabaseProvisioningFailed{}.EventType(),
		domain.DatabaseDeleted{}.EventType(), domain.DatabaseRestored{}.EventType(), domain.DatabasePurged{}.EventType(),
		domain.DatabaseOwnerChanged{}.EventType(), domain.DatabaseStorageMeasured{}.EventType(),
		domain.TenantMemberAdded{}.EventType(), domain.TenantMemberRoleChanged{}.EventType(), domain.TenantMembershipClosed{}.EventType(),
		domain.MetricsPruned{}.EventType(),
	)
}

// Lazy: executed queries reach the dashboards and the alerts within a second, in batches: at
// thousands a second, a commit per query would be the projector's bottleneck.
func (Metrics) Lazy() ([]string, time.Duration) {
	return []string{domain.QueryExecuted{}.EventType()}, time.Second
}

// BatchSize: a batch costs per bucket row it touches, not per event, and every batch touches the
// current hour's and day's rows of each active tenant, member, database and pattern again; behind
// the head (a burst, a restart), the live loop gives it this many events per transaction.
func (Metrics) BatchSize() int { return 10_000 }

// Scopes of metrics_usage rows: the platform (tenant ""), a tenant, one of its databases, one of
// its members (subject_id is the database or user id).
const (
	ScopePlatform = "p"
	ScopeTenant   = "t"
	ScopeDatabase = "d"
	ScopeUser     = "u"
)

// grainCode is how the metrics tables store a grain: its first letter.
func grainCode(g domain.MetricsGrain) string { return string(g[:1]) }

var grains = []domain.MetricsGrain{domain.GrainMinute, domain.GrainHour, domain.GrainDay}

// The counters of a metrics_usage row, in the order of counterColumns.
const (
	cQueries = iota
	cErrors
	cTimeouts
	cDenials
	cRowsRead
	cRowsWritten
	cLogins
	cLoginFailures
	cLockouts
	cSessions
	cCreated
	cDeleted
	cRoleChanges
	nCounters
)

var counterColumns = [nCounters]string{"queries", "errors", "timeouts", "denials", "rows_read", "rows_written",
	"logins", "login_failures", "lockouts", "sessions", "databases_created", "databases_deleted", "role_changes"}

// fingerprintLen is how many hex digits of the fingerprint's SHA-256 name a pattern.
const fingerprintLen = 16

// patternTextLen is how much of a fingerprint's text is kept to show.
const patternTextLen = 1000

func (Metrics) Tables() []Table {
	var counters strings.Builder
	for _, c := range counterColumns {
		fmt.Fprintf(&counters, "%s BIGINT UNSIGNED NOT NULL DEFAULT 0,\n", c)
	}
	return []Table{
		{Name: "metrics_usage", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			tenant_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			scope         CHAR(1)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			subject_id    CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			grain         CHAR(1)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			bucket        DATETIME NOT NULL,
			` + counters.String() + `
			latency       BLOB NULL,
			database_count INT NULL,
			storage_bytes BIGINT NULL,
			minutes       MEDIUMBLOB NULL,
			PRIMARY KEY (tenant_id, scope, subject_id, grain, bucket),
			KEY metrics_usage_age (grain, bucket)
		) ENGINE = InnoDB`},
		{Name: "metrics_patterns", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			tenant_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			scope       CHAR(1)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			grain       CHAR(1)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			bucket      DATETIME NOT NULL,
			fingerprint CHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			database_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			user_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			queries     BIGINT UNSIGNED NOT NULL,
			errors      BIGINT UNSIGNED NOT NULL,
			latency     BLOB NULL,
			PRIMARY KEY (tenant_id, scope, grain, bucket, fingerprint, database_id, user_id),
			KEY metrics_patterns_age (grain, bucket)
		) ENGINE = InnoDB`},
		{Name: "metrics_pattern_texts", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			tenant_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			fingerprint    CHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			text           VARCHAR(1000) NOT NULL,
			statement_type VARCHAR(16) NOT NULL,
			last_seen      DATE NOT NULL,
			PRIMARY KEY (tenant_id, fingerprint),
			KEY metrics_pattern_texts_age (last_seen)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
		{Name: "metrics_databases", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			database_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
			tenant_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			owner_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			counted       BOOL NOT NULL,
			storage_bytes BIGINT NOT NULL
		) ENGINE = InnoDB`},
		{Name: "metrics_totals", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			tenant_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
			database_count BIGINT NOT NULL,
			storage_bytes BIGINT NOT NULL
		) ENGINE = InnoDB`},
		{Name: "metrics_members", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			user_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			tenant_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			PRIMARY KEY (user_id, tenant_id)
		) ENGINE = InnoDB`},
		{Name: "metrics_state", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			id                 TINYINT NOT NULL PRIMARY KEY,
			position           BIGINT NOT NULL,
			latest             DATETIME NULL,
			performance_before DATETIME NOT NULL,
			activity_before    DATETIME NOT NULL,
			daily_before       DATETIME NOT NULL
		) ENGINE = InnoDB`},
	}
}

type usageKey struct {
	tenant  domain.TenantID
	scope   string
	subject string
	grain   string // grainCode
	bucket  int64  // unix seconds
}

type usageRow struct {
	counts    [nCounters]uint64
	latency   *latency.Histogram // nil: the batch added no latency
	pending   []latency.Sample   // latencies not in latency yet (see addLatency)
	databases *int64             // gauges at the end of the bucket; nil: unchanged
	storage   *int64
	minutes   []minuteSlot // an hour's row being written: its minutes that the batch counted in (packMinutes)
}

// pendingSamples is how many latencies a row keeps as they came before it makes them a histogram:
// most rows (a member's minute) see a few, and a histogram grows its dense counts with each new
// bucket; a handful are counted in one step when the row is written.
const pendingSamples = 32

// addLatency counts s in the row's histogram, or among its pending samples.
func (r *usageRow) addLatency(s latency.Sample) {
	if r.latency == nil && len(r.pending) < pendingSamples {
		r.pending = append(r.pending, s)
		return
	}
	if r.latency == nil {
		r.latency = &latency.Histogram{}
	}
	r.settle()
	r.latency.AddSample(s, 1)
}

// settle counts the pending samples in the histogram: before anything reads it.
func (r *usageRow) settle() {
	if len(r.pending) == 0 {
		return
	}
	if r.latency == nil {
		r.latency = &latency.Histogram{}
	}
	r.latency.AddSamples(r.pending)
	r.pending = nil
}

type patternKey struct {
	tenant      domain.TenantID
	grain       string // grainCode
	bucket      int64
	fingerprint string
	database    domain.DatabaseID
	user        domain.UserID
}

// Scopes of metrics_patterns rows: the tenant's (database_id and user_id ""), or one database's
// statements by one member. A tenant's own patterns are then one range of the primary key, which
// the dashboard reads without passing over every database's and member's rows of those days.
const (
	patternsOfTenant  = ScopeTenant
	patternsOfMembers = "m"
)

func (k patternKey) scope() string {
	if k.database == "" && k.user == "" {
		return patternsOfTenant
	}
	return patternsOfMembers
}

// patternRow counts the statements of a pattern; the time they took is the latency histogram's
// sum.
type patternRow struct {
	queries, errors uint64
	latency         latency.Histogram
	pending         []latency.Sample // as usageRow's
}

func (r *patternRow) addLatency(s latency.Sample) {
	if r.latency.Count() == 0 && len(r.pending) < pendingSamples {
		r.pending = append(r.pending, s)
		return
	}
	r.settle()
	r.latency.AddSample(s, 1)
}

func (r *patternRow) settle() {
	if len(r.pending) > 0 {
		r.latency.AddSamples(r.pending)
		r.pending = nil
	}
}

type textKey struct {
	tenant      domain.TenantID
	fingerprint string
}

type patternText struct {
	text, statementType string
	lastSeen            time.Time
}

// metricsDatabase is what the gauges need of a database: whose it is, whether it counts against
// the plan (not deleted, not failed) and the storage it holds (until failed or purged).
type metricsDatabase struct {
	tenant  domain.TenantID
	owner   domain.UserID
	counted bool
	storage int64
	changed bool
}

type metricsTotals struct {
	databases, storage int64
	changed            bool
}

// metricsBatch is one Apply: the state it read and the rows it will write.
type metricsBatch struct {
	t        Tables
	cache    *cachedHistograms // locked for the batch
	position int64             // the last event applied
	// latest is the latest time counted before the batch, and after it once the batch is written: no
	// stored bucket starts after its bucket, so keys past it are new and need no read.
	latest, counted time.Time
	cut             domain.MetricsPruned
	cutMoved        bool
	minutesCut      time.Time // the cut of minutes before the batch: the hours before it hold none
	usage           map[usageKey]*usageRow
	patterns        map[patternKey]*patternRow
	texts           map[textKey]patternText
	dbs             map[domain.DatabaseID]*metricsDatabase
	totals          map[domain.TenantID]*metricsTotals // "" is the platform
	members         map[domain.UserID][]domain.TenantID
	joined          []membershipChange // memberships the batch opened or closed, in log order
	// A rebuild's fold (metricsRebuild): usage and patterns are its open buckets, kept in memory
	// across batches; written, per grain code, is where the buckets written already end: an event
	// for one of those counts in lateUsage and latePatterns, which the batch upserts as a live
	// batch does. written is nil in a live batch.
	written      map[string]int64
	lateUsage    map[usageKey]*usageRow
	latePatterns map[patternKey]*patternRow
	// readAll: the batch's rows may all be stored already (a rebuild's late rows): mayBeStored
	// answers true, and the cache knows none of them.
	readAll bool
	// slots: a rebuild's open rows by the numbers of their subjects (nil: a live batch, which
	// looks every row up by its key).
	slots *rowSlots
}

// openRow returns the batch's row of k, a key of a bucket of grain, in rows (in late when a
// rebuild wrote that bucket already), made if missing.
func openRow[K comparable, R any](b *metricsBatch, rows, late map[K]*R, k K, grain string, bucket int64) *R {
	if b.written != nil && bucket < b.written[grain] {
		rows = late
	}
	row := rows[k]
	if row == nil {
		row = new(R)
		rows[k] = row
	}
	return row
}

type decodedEvent struct {
	env eventstore.Envelope
	e   domain.Event
}

// Apply folds the events into their buckets and writes each touched row once.
func (p Metrics) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	b := &metricsBatch{t: t, usage: map[usageKey]*usageRow{}, patterns: map[patternKey]*patternRow{},
		texts: map[textKey]patternText{}, dbs: map[domain.DatabaseID]*metricsDatabase{},
		totals: map[domain.TenantID]*metricsTotals{}, members: map[domain.UserID][]domain.TenantID{}}
	if err := b.loadState(ctx, tx); err != nil {
		return err
	}
	b.cache = p.cached.of(t.Name("metrics_usage"), b.position, b.latest)
	defer b.cache.mu.Unlock()
	decoded := make([]decodedEvent, 0, len(events))
	var dbIDs, tenants, users []string
	for _, env := range events {
		if env.Position <= b.position {
			continue // applied before: a redelivery
		}
		b.position = env.Position
		e, err := p.decode(env, nil)
		if err != nil {
			return fmt.Errorf("projections: metrics at position %d: %w", env.Position, err)
		}
		decoded = append(decoded, decodedEvent{env: env, e: e})
		switch e := e.(type) {
		case domain.DatabaseRequested:
			tenants = append(tenants, string(e.TenantID))
		case domain.DatabaseProvisioningFailed, domain.DatabaseDeleted, domain.DatabaseRestored, domain.DatabasePurged,
			domain.DatabaseOwnerChanged, domain.DatabaseStorageMeasured:
			dbIDs = append(dbIDs, strings.TrimPrefix(env.StreamID, "database-"))
		case domain.UserLoginFailed, domain.UserLocked:
			users = append(users, strings.TrimPrefix(env.StreamID, "user-"))
		}
	}
	if err := b.load(ctx, tx, dbIDs, tenants, users); err != nil {
		return err
	}
	if len(decoded) == 0 {
		return nil
	}
	for i := range decoded {
		b.fold(&decoded[i])
	}
	return b.write(ctx, tx)
}

// loadState reads where the model stands: the last position applied and the cut.
func (b *metricsBatch) loadState(ctx context.Context, tx *sql.Tx) error {
	var latest sql.NullTime
	err := tx.QueryRowContext(ctx, `SELECT position, latest, performance_before, activity_before, daily_before FROM `+b.t.Name("metrics_state")+` WHERE id = 1`).
		Scan(&b.position, &latest, &b.cut.PerformanceBefore, &b.cut.ActivityBefore, &b.cut.DailyBefore)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("projections: metrics: read the state: %w", err)
	}
	b.latest = latest.Time.UTC()
	b.counted = b.latest
	b.minutesCut = b.cut.PerformanceBefore
	return nil
}

// load reads the state the batch's events need: the databases they name, the totals of their
// tenants and the platform, the memberships of users whose failures count in their tenants.
func (b *metricsBatch) load(ctx context.Context, tx *sql.Tx, dbIDs, tenants, users []string) error {
	err := eachChunk(dbIDs, func(chunk []string) error {
		return scanRows(ctx, tx, `SELECT database_id, tenant_id, owner_id, counted, storage_bytes FROM `+b.t.Name("metrics_databases")+
			` WHERE database_id IN (`+sqlparams.List(len(chunk))+`)`, anys(chunk), func(rows *sql.Rows) error {
			var id domain.DatabaseID
			d := &metricsDatabase{}
			if err := rows.Scan(&id, &d.tenant, &d.owner, &d.counted, &d.storage); err != nil {
				return err
			}
			b.dbs[id] = d
			tenants = append(tenants, string(d.tenant))
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("projections: metrics: read databases: %w", err)
	}
	if len(tenants) > 0 {
		tenants = append(tenants, "")
	}
	err = eachChunk(tenants, func(chunk []string) error {
		return scanRows(ctx, tx, `SELECT tenant_id, database_count, storage_bytes FROM `+b.t.Name("metrics_totals")+
			` WHERE tenant_id IN (`+sqlparams.List(len(chunk))+`)`, anys(chunk), func(rows *sql.Rows) error {
			var id domain.TenantID
			t := &metricsTotals{}
			if err := rows.Scan(&id, &t.databases, &t.storage); err != nil {
				return err
			}
			b.totals[id] = t
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("projections: metrics: read totals: %w", err)
	}
	err = eachChunk(users, func(chunk []string) error {
		return scanRows(ctx, tx, `SELECT user_id, tenant_id FROM `+b.t.Name("metrics_members")+
			` WHERE user_id IN (`+sqlparams.List(len(chunk))+`) ORDER BY user_id, tenant_id`, anys(chunk), func(rows *sql.Rows) error {
			var user domain.UserID
			var tenant domain.TenantID
			if err := rows.Scan(&user, &tenant); err != nil {
				return err
			}
			b.members[user] = append(b.members[user], tenant)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("projections: metrics: read members: %w", err)
	}
	return nil
}

// scope is one row family an event counts in.
type scope struct {
	tenant  domain.TenantID
	kind    string
	subject string
}

func platform() scope                     { return scope{"", ScopePlatform, ""} }
func tenantScope(t domain.TenantID) scope { return scope{t, ScopeTenant, ""} }
func databaseScope(t domain.TenantID, d domain.DatabaseID) scope {
	return scope{t, ScopeDatabase, string(d)}
}
func userScope(t domain.TenantID, u domain.UserID) scope { return scope{t, ScopeUser, string(u)} }

// cutoff is where the cut leaves the buckets of grain (patterns: the hourly ones are performance
// data).
func (b *metricsBatch) cutoff(g domain.MetricsGrain, pattern bool) time.Time {
	switch {
	case g == domain.GrainMinute || (g == domain.GrainHour && pattern):
		return b.cut.PerformanceBefore
	case g == domain.GrainHour:
		return b.cut.ActivityBefore
	}
	return b.cut.DailyBefore
}

// count calls f on the row of each scope in each of its grains at time at, but not in buckets the
// cut has removed. Databases have no minute buckets: nothing charts one database by the minute,
// and they would be the read model's largest share of rows.
func (b *metricsBatch) count(at time.Time, f func(*usageRow), scopes ...scope) {
	if at.After(b.counted) {
		b.counted = at.UTC()
	}
	for gi, g := range grains {
		start := g.Start(at)
		if start.Before(b.cutoff(g, false)) {
			continue
		}
		for _, s := range scopes {
			if s.kind == ScopeDatabase && g == domain.GrainMinute {
				continue
			}
			k := usageKey{s.tenant, s.kind, s.subject, grainCode(g), start.Unix()}
			i := b.slots.usageIndex(s, gi) // first: it may grow the slots
			f(slotRow(b, b.slots.usageSlots(), i, b.usage, b.lateUsage, k, k.grain, k.bucket))
		}
	}
}

func add(c int, n uint64) func(*usageRow) { return func(r *usageRow) { r.counts[c] += n } }

// fold applies one event to the batch's rows and state, in log order.
func (b *metricsBatch) fold(d *decodedEvent) {
	env, at := d.env, d.env.RecordedAt
	switch e := d.e.(type) {
	case domain.QueryExecuted:
		b.query(e)
	case domain.UserLoginSucceeded:
		user := domain.UserID(strings.TrimPrefix(env.StreamID, "user-"))
		scopes := []scope{platform()}
		if e.TenantID != "" {
			scopes = append(scopes, tenantScope(e.TenantID), userScope(e.TenantID, user))
		}
		b.count(at, add(cLogins, 1), scopes...)
	case domain.UserLoginFailed:
		b.count(at, add(cLoginFailures, 1), b.memberScopes(env.StreamID)...)
	case domain.AddressLoginFailed:
		b.count(at, add(cLoginFailures, 1), platform())
	case domain.UserLocked:
		b.count(at, add(cLockouts, 1), b.memberScopes(env.StreamID)...)
	case domain.SessionStarted:
		scopes := []scope{platform()}
		if e.TenantID != "" {
			scopes = append(scopes, tenantScope(e.TenantID), userScope(e.TenantID, e.UserID))
		}
		b.count(at, add(cSessions, 1), scopes...)
	case domain.TenantMemberAdded:
		tenant := domain.TenantID(strings.TrimPrefix(env.StreamID, "tenant-"))
		if !slices.Contains(b.members[e.UserID], tenant) {
			b.members[e.UserID] = append(b.members[e.UserID], tenant)
		}
		b.joined = append(b.joined, membershipChange{e.UserID, tenant, true})
	case domain.TenantMembershipClosed:
		// A former member's failed sign-ins and lockouts no longer count in the tenant.
		tenant := domain.TenantID(strings.TrimPrefix(env.StreamID, "tenant-"))
		b.members[e.UserID] = slices.DeleteFunc(b.members[e.UserID], func(t domain.TenantID) bool { return t == tenant })
		b.joined = append(b.joined, membershipChange{e.UserID, tenant, false})
	case domain.TenantMemberRoleChanged:
		tenant := domain.TenantID(strings.TrimPrefix(env.StreamID, "tenant-"))
		b.count(at, add(cRoleChanges, 1), platform(), tenantScope(tenant), userScope(tenant, e.UserID))
	case domain.MetricsPruned:
		b.prune(e)
	default:
		b.database(env, e)
	}
}

// memberScopes are the platform and, in every tenant the user of stream belongs to, the tenant and
// the member: a failed sign-in or a lock names no tenant, and concerns each of them.
func (b *metricsBatch) memberScopes(stream string) []scope {
	user := domain.UserID(strings.TrimPrefix(stream, "user-"))
	scopes := []scope{platform()}
	for _, t := range b.members[user] {
		scopes = append(scopes, tenantScope(t), userScope(t, user))
	}
	return scopes
}

// query counts one statement: its status, rows, latency (unless it never reached the server) and
// its pattern; in a rebuild, in the rows of b.slots when its subjects are numbered.
func (b *metricsBatch) query(e domain.QueryExecuted) {
	refs := b.slots.refsOf(e)
	slots, fp := b.slots.of(&refs), refs.fingerprint
	if slots == nil {
		fp = Fingerprint(e.Fingerprint)
	}
	ran := e.Status != domain.QueryDenied
	var sample latency.Sample // found once for the dozen histograms the statement counts in
	if ran {
		sample = latency.NewSample(e.ExecutionMS)
	}
	status := -1
	switch e.Status {
	case domain.QueryFailed:
		status = cErrors
	case domain.QueryTimedOut:
		status = cTimeouts
	case domain.QueryDenied:
		status = cDenials
	}
	read, written := uint64(max(e.RowCount, 0)), uint64(max(e.AffectedRows, 0))
	// count's work, without a function value per statement.
	if e.At.After(b.counted) {
		b.counted = e.At.UTC()
	}
	scopes := [...]scope{platform(), tenantScope(e.TenantID), databaseScope(e.TenantID, e.DatabaseID), userScope(e.TenantID, e.UserID)}
	for gi, g := range grains {
		start := g.Start(e.At)
		if start.Before(b.cutoff(g, false)) {
			continue
		}
		bucket := start.Unix()
		for si, s := range scopes {
			if s.kind == ScopeDatabase && g == domain.GrainMinute {
				continue
			}
			k := usageKey{s.tenant, s.kind, s.subject, grainCode(g), bucket}
			r := slotRow(b, slots.usageSlots(), slotIndex(slots, refs.usage[si], gi), b.usage, b.lateUsage, k, k.grain, k.bucket)
			r.counts[cQueries]++
			if status >= 0 {
				r.counts[status]++
			}
			r.counts[cRowsRead] += read
			r.counts[cRowsWritten] += written
			if ran {
				r.addLatency(sample)
			}
		}
	}
	seen := false
	// The tenant's patterns by the hour and the day; those of each database and member by the day.
	hour, day := domain.GrainHour.Start(e.At).Unix(), domain.GrainDay.Start(e.At).Unix()
	keys := [...]patternKey{
		{e.TenantID, grainCode(domain.GrainHour), hour, fp, "", ""},
		{e.TenantID, grainCode(domain.GrainDay), day, fp, "", ""},
		{e.TenantID, grainCode(domain.GrainDay), day, fp, e.DatabaseID, e.UserID},
	}
	slotOf := [...]int{slotIndex(slots, refs.pattern, 1), slotIndex(slots, refs.pattern, 2), slotIndex(slots, refs.memberPattern, 2)}
	for i, k := range keys {
		g := domain.GrainHour
		if i > 0 {
			g = domain.GrainDay
		}
		if time.Unix(k.bucket, 0).Before(b.cutoff(g, true)) {
			continue
		}
		seen = true
		row := slotRow(b, slots.patternSlots(), slotOf[i], b.patterns, b.latePatterns, k, k.grain, k.bucket)
		row.queries++
		if QueryError(e.Status) {
			row.errors++
		}
		if ran {
			row.addLatency(sample)
		}
	}
	if seen && !slots.textSeen(refs.pattern, day) {
		day := time.Unix(day, 0).UTC()
		tk := textKey{e.TenantID, fp}
		if old, ok := b.texts[tk]; !ok || old.lastSeen.Before(day) {
			b.texts[tk] = patternText{text: clip(e.Fingerprint, patternTextLen), statementType: clip(e.StatementType, historyShortLen), lastSeen: day}
		}
	}
}

// QueryError reports whether a statement of this status counts as an error of its pattern and in
// error rates: the server refused it, or it ran out of time.
func QueryError(s domain.QueryStatus) bool {
	return s == domain.QueryFailed || s == domain.QueryTimedOut
}

// Fingerprint names a statement's fingerprint (its text with literals normalized) in the patterns.
func Fingerprint(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])[:fingerprintLen]
}

// database follows a database's lifecycle into the gauges (databases counted, storage) of its
// tenant, the platform and itself, and counts creations and deletions.
func (b *metricsBatch) database(env eventstore.Envelope, e domain.Event) {
	id := domain.DatabaseID(strings.TrimPrefix(env.StreamID, "database-"))
	at := env.RecordedAt
	if r, ok := e.(domain.DatabaseRequested); ok {
		id = r.DatabaseID
		if b.dbs[id] != nil {
			return // applied before: a database is requested once
		}
		b.dbs[id] = &metricsDatabase{tenant: r.TenantID, owner: r.OwnerID}
	}
	d := b.dbs[id]
	if d == nil {
		return // its request fell before this model's log (cannot happen) or was pruned: nothing to follow
	}
	counted, storage := d.counted, d.storage
	switch e := e.(type) {
	case domain.DatabaseRequested:
		counted = true
		b.count(at, add(cCreated, 1), platform(), tenantScope(d.tenant), databaseScope(d.tenant, id), userScope(d.tenant, d.owner))
	case domain.DatabaseProvisioningFailed:
		counted, storage = false, 0
	case domain.DatabaseDeleted:
		counted = false
		b.count(at, add(cDeleted, 1), platform(), tenantScope(d.tenant), databaseScope(d.tenant, id), userScope(d.tenant, d.owner))
	case domain.DatabaseRestored:
		counted = true
	case domain.DatabasePurged:
		storage = 0
	case domain.DatabaseOwnerChanged:
		d.owner, d.changed = e.To, true
	case domain.DatabaseStorageMeasured:
		storage = e.Bytes
	}
	if counted == d.counted && storage == d.storage {
		return
	}
	dc := int64(0)
	if counted != d.counted {
		dc = 1
		if !counted {
			dc = -1
		}
	}
	ds := storage - d.storage
	d.counted, d.storage, d.changed = counted, storage, true
	for _, t := range []domain.TenantID{d.tenant, ""} {
		tot := b.totals[t]
		if tot == nil {
			tot = &metricsTotals{}
			b.totals[t] = tot
		}
		tot.databases += dc
		tot.storage += ds
		tot.changed = true
		dbs, st := tot.databases, tot.storage
		s := tenantScope(t)
		if t == "" {
			s = platform()
		}
		b.count(at, func(r *usageRow) { r.databases, r.storage = &dbs, &st }, s)
	}
	own := d.storage
	b.count(at, func(r *usageRow) { r.storage = &own }, databaseScope(d.tenant, id))
}

// prune notes a cut: the buckets before it go when the batch is written, and later events of the
// batch no longer count there.
func (b *metricsBatch) prune(e domain.MetricsPruned) {
	later := func(a, b time.Time) time.Time {
		if a.After(b) {
			return a
		}
		return b
	}
	b.cut.PerformanceBefore = later(e.PerformanceBefore.UTC(), b.cut.PerformanceBefore)
	b.cut.ActivityBefore = later(e.ActivityBefore.UTC(), b.cut.ActivityBefore)
	b.cut.DailyBefore = later(e.DailyBefore.UTC(), b.cut.DailyBefore)
	b.cutMoved = true
	if b.written == nil {
		return
	}
	// A rebuild's open buckets before the cut go now, as the cut deletes the stored ones.
	b.slots.prune(b.cutoff)
	for k := range b.usage {
		if k.bucket < b.cutoff(grainOf[k.grain], false).Unix() {
			delete(b.usage, k)
		}
	}
	for k := range b.patterns {
		if k.bucket < b.cutoff(grainOf[k.grain], true).Unix() {
			delete(b.patterns, k)
		}
	}
}

// grainOf is the grain of a grain code.
var grainOf = map[string]domain.MetricsGrain{
	grainCode(domain.GrainMinute): domain.GrainMinute, grainCode(domain.GrainHour): domain.GrainHour, grainCode(domain.GrainDay): domain.GrainDay,
}

// write stores the batch: state, buckets, patterns, then where the model stands and the cut (which
// deletes what the batch may just have written before it, as one event at a time would have).
// The cache takes each row as it is written: a write that fails (its transaction rolls back, the
// model stays where the cache was) empties it, else the batch applied again would merge itself.
func (b *metricsBatch) write(ctx context.Context, tx *sql.Tx) error {
	for _, write := range []func(context.Context, *sql.Tx) error{b.writeFollowed, b.writeUsage, b.writePatterns, b.writeCut} {
		if err := write(ctx, tx); err != nil {
			b.cache.forget()
			return err
		}
	}
	b.cache.keep(b.position, b.counted)
	return nil
}

// writeFollowed stores what the gauges and the sign-in failures follow between batches.
func (b *metricsBatch) writeFollowed(ctx context.Context, tx *sql.Tx) error {
	var dbRows []any
	for id, d := range b.dbs {
		if d.changed {
			dbRows = append(dbRows, []any{id, d.tenant, d.owner, d.counted, d.storage})
		}
	}
	if err := upsertRows(ctx, tx, `INSERT INTO `+b.t.Name("metrics_databases")+` (database_id, tenant_id, owner_id, counted, storage_bytes) VALUES `,
		5, dbRows, ` ON DUPLICATE KEY UPDATE owner_id = VALUES(owner_id), counted = VALUES(counted), storage_bytes = VALUES(storage_bytes)`); err != nil {
		return fmt.Errorf("projections: metrics: write databases: %w", err)
	}
	var totals []any
	for id, t := range b.totals {
		if t.changed {
			totals = append(totals, []any{id, t.databases, t.storage})
		}
	}
	if err := upsertRows(ctx, tx, `INSERT INTO `+b.t.Name("metrics_totals")+` (tenant_id, database_count, storage_bytes) VALUES `,
		3, totals, ` ON DUPLICATE KEY UPDATE database_count = VALUES(database_count), storage_bytes = VALUES(storage_bytes)`); err != nil {
		return fmt.Errorf("projections: metrics: write totals: %w", err)
	}
	return b.writeMemberships(ctx, tx)
}

// membershipChange is a membership a batch opened (member) or closed.
type membershipChange struct {
	user   domain.UserID
	tenant domain.TenantID
	member bool
}

// writeMemberships stores where each membership the batch changed ends: added, or deleted.
func (b *metricsBatch) writeMemberships(ctx context.Context, tx *sql.Tx) error {
	final := map[[2]string]bool{}
	for _, m := range b.joined {
		final[[2]string{string(m.user), string(m.tenant)}] = m.member
	}
	var added, closed []any
	for _, k := range slices.SortedFunc(maps.Keys(final), func(x, y [2]string) int {
		return cmp.Or(strings.Compare(x[0], y[0]), strings.Compare(x[1], y[1]))
	}) {
		if final[k] {
			added = append(added, []any{k[0], k[1]})
		} else {
			closed = append(closed, k[0], k[1])
		}
	}
	if err := upsertRows(ctx, tx, `INSERT IGNORE INTO `+b.t.Name("metrics_members")+` (user_id, tenant_id) VALUES `, 2, added, ``); err != nil {
		return fmt.Errorf("projections: metrics: write members: %w", err)
	}
	for from := 0; from < len(closed); from += 2 * rowsPerStatement {
		chunk := closed[from:min(from+2*rowsPerStatement, len(closed))]
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+b.t.Name("metrics_members")+` WHERE (user_id, tenant_id) IN (`+
			strings.TrimSuffix(strings.Repeat("(?, ?), ", len(chunk)/2), ", ")+`)`, chunk...); err != nil {
			return fmt.Errorf("projections: metrics: delete members: %w", err)
		}
	}
	return nil
}

// rowsPerStatement bounds the rows of one multi-row statement (and the keys of one read).
const rowsPerStatement = 500

// bytesPerStatement bounds the values of one multi-row write, well under max_allowed_packet
// (escaped or in hex, at most twice that: under MySQL 5.7's default 4 MiB packet), whatever the
// rows hold: an hour's row holds its 60 minutes' histograms, tens of KiB when a member's
// statements take every duration, where 500 rows would be over MariaDB's default 16 MiB. A
// statement passes it by one row at most (an hour's minutes are under 400 KiB: latency's bound).
const bytesPerStatement = 1 << 20

// upsertRows inserts rows (each a []any of columns values) rowsPerStatement at a time, and
// bytesPerStatement.
func upsertRows(ctx context.Context, tx *sql.Tx, insert string, columns int, rows []any, onDuplicate string) error {
	for from, to := 0, 0; from < len(rows); from = to {
		for size := 0; to < min(from+rowsPerStatement, len(rows)) && size < bytesPerStatement; to++ {
			for _, v := range rows[to].([]any) {
				if b, ok := v.([]byte); ok {
					size += len(b)
				}
			}
		}
		chunk := rows[from:to]
		args := make([]any, 0, columns*len(chunk))
		for _, r := range chunk {
			args = append(args, r.([]any)...)
		}
		if _, err := tx.ExecContext(ctx, insert+sqlparams.Rows(len(chunk), columns)+onDuplicate, args...); err != nil {
			return err
		}
	}
	return nil
}

// writeUsage merges the stored histograms and minutes of the buckets the batch added latencies
// or minutes to and upserts every touched bucket: counters add, gauges replace when the batch set
// them, an hour's minutes are its stored ones merged with the batch's (packMinutes).
func (b *metricsBatch) writeUsage(ctx context.Context, tx *sql.Tx) error {
	table := b.t.Name("metrics_usage")
	packMinutes(b.usage)
	var stored []storedKey
	unread := map[usageKey]*usageRow{} // the rows whose stored histogram or minutes are still to merge
	for k, r := range b.usage {
		r.settle()
		if (r.latency == nil && r.minutes == nil) || !b.mayBeStored(k.grain, k.bucket) {
			continue
		}
		cached, complete := b.cache.usage[k], k.bucket >= b.cache.complete[k.grain] // complete: the cache saw every write of this bucket
		missing := &usageRow{}                                                      // the parts to read
		switch {
		case r.latency == nil:
		case cached != nil && cached.latency != nil:
			r.latency.Merge(cached.latency)
		case !complete:
			missing.latency = r.latency
		}
		switch {
		case r.minutes == nil:
		case cached != nil && cached.minutes != nil:
			r.minutes = mergeMinutes(cached.minutes, r.minutes)
		case !complete:
			missing.minutes = r.minutes
		}
		if missing.latency != nil || missing.minutes != nil {
			stored = append(stored, storedKey{[]any{k.tenant, k.scope, k.subject}, k.grain, k.bucket})
			unread[k] = missing
		}
	}
	err := readStored(ctx, tx, table, []string{"tenant_id", "scope", "subject_id"}, "minutes", stored,
		func(vals []string, grain string, bucket int64, hist, minutes []byte) error {
			k := usageKey{domain.TenantID(vals[0]), vals[1], vals[2], grain, bucket}
			missing := unread[k]
			delete(unread, k)
			if missing == nil {
				return nil
			}
			if err := mergeStored(missing.latency, hist); err != nil {
				return err
			}
			if missing.minutes != nil && minutes != nil {
				old, err := decodeMinutes(bucket, minutes)
				if err != nil {
					return err
				}
				b.usage[k].minutes = mergeMinutes(old, missing.minutes)
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("projections: metrics: read histograms: %w", err)
	}
	columns := "tenant_id, scope, subject_id, grain, bucket, " + strings.Join(counterColumns[:], ", ") + ", latency, database_count, storage_bytes, minutes"
	var update strings.Builder
	update.WriteString(" ON DUPLICATE KEY UPDATE ")
	for _, c := range counterColumns {
		fmt.Fprintf(&update, "%s = %s + VALUES(%s), ", c, c, c)
	}
	update.WriteString("latency = COALESCE(VALUES(latency), latency), database_count = COALESCE(VALUES(database_count), database_count), " +
		"storage_bytes = COALESCE(VALUES(storage_bytes), storage_bytes), minutes = COALESCE(VALUES(minutes), minutes)")
	keys := slices.SortedFunc(maps.Keys(b.usage), compareUsageKeys)
	rows := make([]any, 0, len(keys))
	for _, k := range keys {
		r := b.usage[k]
		row := make([]any, 0, 9+nCounters)
		row = append(row, k.tenant, k.scope, k.subject, k.grain, time.Unix(k.bucket, 0).UTC())
		for _, c := range r.counts {
			row = append(row, c)
		}
		var hist, minutes []byte
		if r.latency != nil || r.minutes != nil {
			cached := b.cache.usage[k]
			if cached == nil {
				cached = &usageRow{}
				b.cache.usage[k] = cached
			}
			if r.latency != nil {
				hist, _ = r.latency.MarshalBinary()
				cached.latency = r.latency
			}
			if r.minutes != nil {
				minutes = appendMinutes(nil, k.bucket, r.minutes)
				cached.minutes = r.minutes
			}
		}
		row = append(row, hist, r.databases, r.storage, minutes)
		rows = append(rows, row)
	}
	if err := upsertRows(ctx, tx, `INSERT INTO `+table+` (`+columns+`) VALUES `, 9+nCounters, rows, update.String()); err != nil {
		return fmt.Errorf("projections: metrics: write buckets: %w", err)
	}
	return nil
}

// packMinutes moves the minutes of usage into their hours' rows (minutes, in order). An hour the
// batch has no row of (cut while its minutes were not) gets one of zero counts.
func packMinutes(usage map[usageKey]*usageRow) {
	minute, hour := grainCode(domain.GrainMinute), grainCode(domain.GrainHour)
	var hours []*usageRow
	for k, r := range usage {
		if k.grain != minute {
			continue
		}
		hk := k
		hk.grain, hk.bucket = hour, hourOf(k.bucket)
		h := usage[hk]
		if h == nil {
			h = &usageRow{}
			usage[hk] = h
		}
		if h.minutes == nil {
			hours = append(hours, h)
		}
		h.minutes = append(h.minutes, minuteSlot{k.bucket, r})
		delete(usage, k)
	}
	for _, h := range hours {
		slices.SortFunc(h.minutes, func(x, y minuteSlot) int { return cmp.Compare(x.at, y.at) })
	}
}

func (b *metricsBatch) writePatterns(ctx context.Context, tx *sql.Tx) error {
	table := b.t.Name("metrics_patterns")
	keys := make([]patternKey, 0, len(b.patterns))
	stored := make([]storedKey, 0, len(b.patterns))
	unread := map[patternKey]*latency.Histogram{} // the rows whose stored histogram is still to merge
	for k, r := range b.patterns {
		r.settle()
		keys = append(keys, k)
		switch {
		case !b.mayBeStored(k.grain, k.bucket):
		case b.cache.patterns[k] != nil:
			r.latency.Merge(b.cache.patterns[k])
		case k.bucket >= b.cache.complete[k.grain]: // the cache saw every write of this bucket: none yet
		default:
			stored = append(stored, storedKey{[]any{k.tenant, k.scope(), k.fingerprint, k.database, k.user}, k.grain, k.bucket})
			unread[k] = &r.latency
		}
	}
	err := readStored(ctx, tx, table, []string{"tenant_id", "scope", "fingerprint", "database_id", "user_id"}, "NULL", stored,
		func(vals []string, grain string, bucket int64, hist, _ []byte) error {
			k := patternKey{domain.TenantID(vals[0]), grain, bucket, vals[2], domain.DatabaseID(vals[3]), domain.UserID(vals[4])}
			h := unread[k]
			delete(unread, k)
			return mergeStored(h, hist)
		})
	if err != nil {
		return fmt.Errorf("projections: metrics: read pattern histograms: %w", err)
	}
	slices.SortFunc(keys, comparePatternKeys)
	rows := make([]any, 0, len(keys))
	for _, k := range keys {
		r := b.patterns[k]
		hist, _ := r.latency.MarshalBinary()
		b.cache.patterns[k] = &r.latency
		rows = append(rows, []any{k.tenant, k.scope(), k.grain, time.Unix(k.bucket, 0).UTC(), k.fingerprint, k.database, k.user,
			r.queries, r.errors, hist})
	}
	if err := upsertRows(ctx, tx, `INSERT INTO `+table+` (tenant_id, scope, grain, bucket, fingerprint, database_id, user_id,
		queries, errors, latency) VALUES `, 10, rows, ` ON DUPLICATE KEY UPDATE queries = queries + VALUES(queries),
		errors = errors + VALUES(errors), latency = VALUES(latency)`); err != nil {
		return fmt.Errorf("projections: metrics: write patterns: %w", err)
	}
	texts := make([]any, 0, len(b.texts))
	for k, v := range b.texts {
		texts = append(texts, []any{k.tenant, k.fingerprint, v.text, v.statementType, v.lastSeen})
	}
	if err := upsertRows(ctx, tx, `INSERT INTO `+b.t.Name("metrics_pattern_texts")+` (tenant_id, fingerprint, text, statement_type, last_seen) VALUES `,
		5, texts, ` ON DUPLICATE KEY UPDATE last_seen = GREATEST(last_seen, VALUES(last_seen))`); err != nil {
		return fmt.Errorf("projections: metrics: write pattern texts: %w", err)
	}
	return nil
}

// compareUsageKeys and comparePatternKeys order rows as their table's primary key does: a batch
// writes its rows in key order, each statement into neighbouring pages.
// Each stops at the first column that differs (cmp.Or would compare every column first).
func compareUsageKeys(a, b usageKey) int {
	if c := strings.Compare(string(a.tenant), string(b.tenant)); c != 0 {
		return c
	}
	if c := strings.Compare(a.scope, b.scope); c != 0 {
		return c
	}
	if c := strings.Compare(a.subject, b.subject); c != 0 {
		return c
	}
	if c := strings.Compare(a.grain, b.grain); c != 0 {
		return c
	}
	return cmp.Compare(a.bucket, b.bucket)
}

func comparePatternKeys(a, b patternKey) int {
	if c := strings.Compare(string(a.tenant), string(b.tenant)); c != 0 {
		return c
	}
	if c := strings.Compare(a.scope(), b.scope()); c != 0 {
		return c
	}
	if c := strings.Compare(a.grain, b.grain); c != 0 {
		return c
	}
	if c := cmp.Compare(a.bucket, b.bucket); c != 0 {
		return c
	}
	if c := strings.Compare(a.fingerprint, b.fingerprint); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.database), string(b.database)); c != 0 {
		return c
	}
	return strings.Compare(string(a.user), string(b.user))
}

// writeCut stores the position and the cut and, when the batch moved the cut, deletes what falls
// before it.
func (b *metricsBatch) writeCut(ctx context.Context, tx *sql.Tx) error {
	c := b.cut
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+b.t.Name("metrics_state")+` (id, position, latest, performance_before, activity_before, daily_before)
		VALUES (1, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE position = VALUES(position), latest = VALUES(latest),
		performance_before = VALUES(performance_before), activity_before = VALUES(activity_before), daily_before = VALUES(daily_before)`,
		b.position, dbTime(b.counted.Truncate(time.Second)), c.PerformanceBefore, c.ActivityBefore, c.DailyBefore); err != nil {
		return fmt.Errorf("projections: metrics: write the state: %w", err)
	}
	if !b.cutMoved {
		return nil
	}
	statements := []struct {
		query string
		args  []any
	}{
		{`UPDATE ` + b.t.Name("metrics_usage") + ` SET minutes = NULL WHERE grain = ? AND bucket >= ? AND bucket <= ? AND minutes IS NOT NULL`,
			[]any{grainCode(domain.GrainHour), b.minutesCut.Truncate(time.Hour), c.PerformanceBefore.Add(-time.Hour)}},
		{`DELETE FROM ` + b.t.Name("metrics_usage") + ` WHERE grain = ? AND bucket < ?`, []any{grainCode(domain.GrainHour), c.ActivityBefore}},
		{`DELETE FROM ` + b.t.Name("metrics_usage") + ` WHERE grain = ? AND bucket < ?`, []any{grainCode(domain.GrainDay), c.DailyBefore}},
		{`DELETE FROM ` + b.t.Name("metrics_patterns") + ` WHERE grain = ? AND bucket < ?`, []any{grainCode(domain.GrainHour), c.PerformanceBefore}},
		{`DELETE FROM ` + b.t.Name("metrics_patterns") + ` WHERE grain = ? AND bucket < ?`, []any{grainCode(domain.GrainDay), c.DailyBefore}},
		{`DELETE FROM ` + b.t.Name("metrics_pattern_texts") + ` WHERE last_seen < ?`, []any{c.DailyBefore}},
	}
	for _, s := range statements {
		if _, err := tx.ExecContext(ctx, s.query, s.args...); err != nil {
			return fmt.Errorf("projections: metrics: apply the cut: %w", err)
		}
	}
	if err := b.cutInsideHour(ctx, tx); err != nil {
		return fmt.Errorf("projections: metrics: apply the cut: %w", err)
	}
	return nil
}

// cutInsideHour removes the minutes before the cut from the rows of the hour it falls in, if it
// falls inside one (domain.MetricsCut's are on whole hours): stored, and as the cache keeps them.
func (b *metricsBatch) cutInsideHour(ctx context.Context, tx *sql.Tx) error {
	before := b.cut.PerformanceBefore.Unix()
	hour := hourOf(before)
	if hour == before {
		return nil
	}
	for k, r := range b.cache.usage {
		if k.grain == grainCode(domain.GrainHour) && k.bucket == hour && r.minutes != nil {
			b.cache.usage[k] = &usageRow{latency: r.latency, minutes: cutMinutes(r.minutes, before)}
		}
	}
	table := b.t.Name("metrics_usage")
	var cut [][]any
	err := scanRows(ctx, tx, `SELECT tenant_id, scope, subject_id, minutes FROM `+table+` WHERE grain = ? AND bucket = ? AND minutes IS NOT NULL`,
		[]any{grainCode(domain.GrainHour), time.Unix(hour, 0).UTC()}, func(rows *sql.Rows) error {
			var tenant, scope, subject string
			var data []byte
			if err := rows.Scan(&tenant, &scope, &subject, &data); err != nil {
				return err
			}
			minutes, err := decodeMinutes(hour, data)
			if err != nil {
				return err
			}
			var kept []byte // NULL when none is left
			if left := cutMinutes(minutes, before); left != nil {
				kept = appendMinutes(nil, hour, left)
			}
			cut = append(cut, []any{kept, tenant, scope, subject})
			return nil
		})
	if err != nil {
		return err
	}
	for _, c := range cut {
		if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET minutes = ? WHERE tenant_id = ? AND scope = ? AND subject_id = ? AND grain = ? AND bucket = ?`,
			append(c, grainCode(domain.GrainHour), time.Unix(hour, 0).UTC())...); err != nil {
			return err
		}
	}
	return nil
}

// mayBeStored reports whether a bucket may have a row before the batch: not when it starts after
// the bucket of the latest time counted (a rebuild and a live model following the log both count
// mostly new buckets, which then cost no read).
func (b *metricsBatch) mayBeStored(grain string, bucket int64) bool {
	return b.readAll || !b.latest.IsZero() && bucket <= b.latest.Truncate(grainSizes[grain]).Unix()
}

// histogramCache keeps, per physical table (the live model's, a rebuild's), the histograms this
// process last wrote of the current buckets, so that following the log reads none back. A batch
// may use them only if the model stands where this process left it (its state row's position is
// the cache's): another process that applied batches meanwhile, or a batch of ours that rolled
// back, moved or left it elsewhere, and the cache starts over.
type histogramCache struct {
	mu     sync.Mutex
	tables map[string]*cachedHistograms
}

type cachedHistograms struct {
	mu       sync.Mutex
	position int64
	// usage: per row, its histogram and minutes as last written (nil: not written by this
	// process; its counters are not kept).
	usage    map[usageKey]*usageRow
	patterns map[patternKey]*latency.Histogram
	// complete is, per grain code, the first bucket from which the cache holds every row written:
	// a bucket it has no row of has none stored either.
	complete map[string]int64
}

// of returns the cache of table, locked, emptied unless it was left at position (the model then
// stands at latest).
func (c *histogramCache) of(table string, position int64, latest time.Time) *cachedHistograms {
	c.mu.Lock()
	h := c.tables[table]
	if h == nil {
		h = &cachedHistograms{}
		c.tables[table] = h
	}
	c.mu.Unlock()
	h.mu.Lock()
	if h.position != position || h.usage == nil {
		h.forget()
		for code, size := range grainSizes {
			h.complete[code] = latest.Truncate(size).Add(size).Unix() // the buckets no row was written to yet
		}
	}
	return h
}

func (h *cachedHistograms) forget() {
	h.position, h.usage, h.patterns = -1, map[usageKey]*usageRow{}, map[patternKey]*latency.Histogram{}
	h.complete = map[string]int64{}
}

// keep marks the cache as the model at position and drops the buckets older than the current
// one of their grain (at latest): late events for them read the table.
func (h *cachedHistograms) keep(position int64, latest time.Time) {
	h.position = position
	for code, size := range grainSizes {
		h.complete[code] = max(h.complete[code], latest.Truncate(size).Unix())
	}
	for k := range h.usage {
		if k.bucket < latest.Truncate(grainSizes[k.grain]).Unix() {
			delete(h.usage, k)
		}
	}
	for k := range h.patterns {
		if k.bucket < latest.Truncate(grainSizes[k.grain]).Unix() {
			delete(h.patterns, k)
		}
	}
}

// storedKey is the key of a row whose stored histogram a batch merges into: the values of the
// table's key columns but grain and bucket, then those.
type storedKey struct {
	columns []any
	grain   string
	bucket  int64
}

// readStored reads the stored histograms of keys in table, whose key is columns, grain and bucket,
// with the column more (the minutes of usage rows), and calls into with each row's. Few keys need
// it: the new buckets, and those this process wrote last, need no read.
func readStored(ctx context.Context, tx *sql.Tx, table string, columns []string, more string, keys []storedKey,
	into func(vals []string, grain string, bucket int64, hist, more []byte) error) error {
	list := strings.Join(columns, ", ")
	tuple := "(" + sqlparams.List(len(columns)+2) + ")"
	return eachChunk(keys, func(chunk []storedKey) error {
		args := make([]any, 0, (len(columns)+2)*len(chunk))
		for _, k := range chunk {
			args = append(append(args, k.columns...), k.grain, time.Unix(k.bucket, 0).UTC())
		}
		return scanRows(ctx, tx, `SELECT `+list+`, grain, bucket, latency, `+more+` FROM `+table+` WHERE (`+list+`, grain, bucket) IN (`+
			strings.TrimSuffix(strings.Repeat(tuple+", ", len(chunk)), ", ")+`)`, args, func(rows *sql.Rows) error {
			vals := make([]string, len(columns))
			dest := make([]any, 0, len(columns)+4)
			for i := range vals {
				dest = append(dest, &vals[i])
			}
			var grain string
			var bucket time.Time
			var hist, extra []byte
			if err := rows.Scan(append(dest, &grain, &bucket, &hist, &extra)...); err != nil {
				return err
			}
			return into(vals, grain, bucket.Unix(), hist, extra)
		})
	})
}

// mergeStored merges the stored histogram into h (nil: none to merge into).
func mergeStored(h *latency.Histogram, stored []byte) error {
	if h == nil {
		return nil
	}
	decoded, err := latency.Decode(stored)
	if err != nil {
		return err
	}
	h.Merge(decoded)
	return nil
}

// grainSizes are the bucket lengths by grain code.
var grainSizes = map[string]time.Duration{
	grainCode(domain.GrainMinute): time.Minute, grainCode(domain.GrainHour): time.Hour, grainCode(domain.GrainDay): 24 * time.Hour,
}

// eachChunk calls f on items rowsPerStatement at a time.
func eachChunk[T any](items []T, f func([]T) error) error {
	for from := 0; from < len(items); from += rowsPerStatement {
		if err := f(items[from:min(from+rowsPerStatement, len(items))]); err != nil {
			return err
		}
	}
	return nil
}

// scanRows runs query and calls scan on each row.
func scanRows(ctx context.Context, tx *sql.Tx, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
