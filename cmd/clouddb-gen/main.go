// Command clouddb-gen loads executed queries into a management database through the event store
// and measures the metrics read model on them (docs/PERFORMANCE.md, "Metrics"):
//
//	clouddb-gen -dsn 'root@tcp(127.0.0.1:3306)/clouddb_gen' -events 1000000 -tenants 100 -days 30
//
// It migrates the database (created if missing; it should be a fresh one), records the tenants
// (tenant.created.v1 and their members) and -events query.executed.v1 events spread evenly over
// the last -days, in log order as in time, appended by -appenders goroutines in appends of -batch
// events with the store's clock at each batch's time; the store's writer commits up to
// -group-events of them per transaction (the log's inserts are serial, under the sequence lock, so
// fewer and larger transactions are what speeds the load; -loadprofile profiles it). Then it
// measures, one after the other:
//
//   - live: the metrics projector, started on the loaded log, follows it to the head through the
//     runtime's live loop (reads of 500 events): events/s;
//   - rebuild: Runtime.Rebuild("metrics") from position 0: events/s;
//   - dashboard: -dashboards calls of the 30-day dashboard of random tenants (Views.Dashboard, the
//     handler's work without HTTP), with and without the previous period: p50, p99, max;
//   - storage: data and index bytes of the metrics tables, per tenant and day.
//
// -skip-load measures a database loaded before (drop its metrics tables and metrics_checkpoint
// first to measure the live projector from zero again); -cpuprofile writes the process's CPU
// profile of the measuring phases.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/mgmtdb"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
	"github.com/clouddbmanager/clouddb/migrations"
	"github.com/clouddbmanager/clouddb/projections"
)

type config struct {
	dsn                             string
	events, tenants                 int
	days                            float64
	users, databases, patterns      int
	batch, appenders, dashboards    int
	groupEvents                     int
	skipLoad, skipLive, skipRebuild bool
	seed                            uint64
	cpuProfile, loadProfile         string
}

func main() {
	var c config
	flag.StringVar(&c.dsn, "dsn", "root@tcp(127.0.0.1:3306)/clouddb_gen", "management database (created if missing)")
	flag.IntVar(&c.events, "events", 1_000_000, "query events to load")
	flag.IntVar(&c.tenants, "tenants", 100, "tenants")
	flag.Float64Var(&c.days, "days", 30, "days the events span, ending now (a fraction keeps a day's density with fewer events)")
	flag.IntVar(&c.users, "users", 5, "members per tenant")
	flag.IntVar(&c.databases, "databases", 5, "databases per tenant")
	flag.IntVar(&c.patterns, "patterns", 20, "query patterns (fingerprints) per tenant")
	flag.IntVar(&c.batch, "batch", 2000, "events per append")
	flag.IntVar(&c.appenders, "appenders", 4, "concurrent appenders")
	flag.IntVar(&c.groupEvents, "group-events", 4000, "events per group commit of the store's writer (eventstore.Options.MaxBatchEvents; the store's default is 500)")
	flag.IntVar(&c.dashboards, "dashboards", 200, "dashboard calls to time")
	flag.BoolVar(&c.skipLoad, "skip-load", false, "measure what an earlier run loaded")
	flag.BoolVar(&c.skipLive, "skip-live", false, "do not measure the live projector (the read model must be built)")
	flag.BoolVar(&c.skipRebuild, "skip-rebuild", false, "do not measure the rebuild")
	flag.Uint64Var(&c.seed, "seed", 1, "random seed")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write the CPU profile of the measuring phases to this file")
	flag.StringVar(&c.loadProfile, "loadprofile", "", "write the CPU profile of the load phase to this file")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(context.Background(), c, log); err != nil {
		log.Error("clouddb-gen failed", "err", err)
		os.Exit(1)
	}
}

// clock is the store's clock: the time of the batch being appended.
type clock struct{ unixNano atomic.Int64 }

func (c *clock) now() time.Time { return time.Unix(0, c.unixNano.Load()).UTC() }

// tenant is what the generator knows of one tenant.
type tenant struct {
	id        domain.TenantID
	users     []domain.UserID
	databases []domain.DatabaseID
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	db, err := mgmtdb.Open(ctx, c.dsn, 30*time.Second, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := migrations.Apply(ctx, db, log); err != nil {
		return err
	}
	clk := &clock{}
	clk.unixNano.Store(time.Now().UnixNano())
	registry := eventstore.NewDomainRegistry()
	quiet := slog.New(slog.DiscardHandler)
	store := eventstore.New(db, registry, eventstore.Options{Logger: quiet, Clock: clk.now, MaxBatchEvents: c.groupEvents})
	defer store.Close()
	rng := rand.New(rand.NewPCG(c.seed, 13))
	tenants := make([]tenant, c.tenants)
	for i := range tenants {
		t := tenant{id: domain.TenantID(uuidFrom(rng))}
		for range c.users {
			t.users = append(t.users, domain.UserID(uuidFrom(rng)))
		}
		for range c.databases {
			t.databases = append(t.databases, domain.DatabaseID(uuidFrom(rng)))
		}
		tenants[i] = t
	}
	end := time.Now().UTC()
	start := end.Add(-time.Duration(c.days * float64(24*time.Hour)))
	if !c.skipLoad {
		if c.loadProfile != "" {
			f, err := os.Create(c.loadProfile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
		}
		err := load(ctx, c, store, clk, tenants, start, end, rng, log)
		if c.loadProfile != "" {
			pprof.StopCPUProfile()
		}
		if err != nil {
			return err
		}
	}
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	metrics := projections.NewMetrics(registry)
	// The tenants' read models first (the dashboard's quotas), then the metrics projector alone.
	others, err := projections.New(db, store, projections.Options{Logger: quiet}, projections.NewTenants(registry), projections.NewSessions(registry))
	if err != nil {
		return err
	}
	if err := others.Start(ctx); err != nil {
		return err
	}
	if err := caughtUp(ctx, others, head); err != nil {
		return err
	}
	others.Close()
	if !c.skipLive {
		live, err := projections.New(db, store, projections.Options{Logger: quiet, MaxLag: math.MaxInt64}, metrics)
		if err != nil {
			return err
		}
		began := time.Now()
		if err := live.Start(ctx); err != nil {
			return err
		}
		if err := caughtUp(ctx, live, head); err != nil {
			return err
		}
		took := time.Since(began)
		live.Close()
		fmt.Printf("live: %d events (log positions) in %s: %.0f events/s\n", head, took.Round(time.Millisecond), float64(head)/took.Seconds())
	}
	// The databases, invitations and load read models are only created (the quotas and the
	// dashboard's resources read them), never filled here: the log holds none of their events.
	r, err := projections.New(db, store, projections.Options{Logger: quiet, MaxLag: math.MaxInt64}, metrics,
		projections.NewDatabases(registry), projections.NewInvitations(registry), projections.NewMetricsLoad(registry))
	if err != nil {
		return err
	}
	if err := r.Prepare(ctx); err != nil {
		return err
	}
	if !c.skipRebuild {
		began := time.Now()
		if err := r.Rebuild(ctx, "metrics"); err != nil {
			return err
		}
		took := time.Since(began)
		fmt.Printf("rebuild: %d events in %s: %.0f events/s\n", head, took.Round(time.Millisecond), float64(head)/took.Seconds())
	}
	if err := timeDashboards(ctx, c, projections.NewViews(db), tenants, rng); err != nil {
		return err
	}
	return storage(ctx, db, c)
}

// caughtUp waits until every projector of r has applied the log up to head (WaitFor counts only
// this process's appends, and a measuring run may load nothing itself).
func caughtUp(ctx context.Context, r *projections.Runtime, head int64) error {
	for {
		statuses, err := r.Status(ctx)
		if err != nil {
			return err
		}
		done := true
		for _, st := range statuses {
			if st.Status == "failing" {
				return fmt.Errorf("projection %s fails: %s", st.Name, st.LastError)
			}
			done = done && st.Position >= head
		}
		if done {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func uuidFrom(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	id, _ := uuid.FromBytes(b[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id.String()
}

// load records the tenants and their members, then the queries.
func load(ctx context.Context, c config, store *eventstore.Store, clk *clock, tenants []tenant, start, end time.Time, rng *rand.Rand, log *slog.Logger) error {
	clk.unixNano.Store(start.Add(-time.Hour).UnixNano())
	pro, err := domain.PlanByID(domain.PlanPro)
	if err != nil {
		return err
	}
	for _, t := range tenants {
		events := []domain.Event{domain.TenantCreated{TenantID: t.id, Name: "Tenant " + string(t.id[:8]), Slug: "t-" + string(t.id[:8]),
			Plan: domain.PlanPro, Settings: domain.DefaultSettings(pro.Limits)}}
		for i, u := range t.users {
			role := domain.RoleDeveloper
			if i == 0 {
				role = domain.RoleTenantAdmin
			}
			events = append(events, domain.TenantMemberAdded{UserID: u, Role: role, At: start})
		}
		if _, err := store.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{{ID: t.id.Stream(), Type: "tenant", Events: events}}}); err != nil {
			return err
		}
	}
	statuses := []domain.QueryStatus{domain.QuerySucceeded, domain.QueryFailed, domain.QueryTimedOut, domain.QueryDenied}
	step := end.Sub(start) / time.Duration(c.events)
	batches := make(chan []domain.QueryExecuted, c.appenders)
	var wg sync.WaitGroup
	var appended atomic.Int64
	errs := make(chan error, c.appenders)
	for range c.appenders {
		wg.Go(func() {
			for b := range batches {
				streams := make([]eventstore.Stream, len(b))
				for i, q := range b {
					streams[i] = eventstore.Stream{ID: domain.QueryStream(q.QueryID), Type: "query", Events: []domain.Event{q}}
				}
				if _, err := store.Append(ctx, eventstore.Append{Streams: streams, Metadata: eventstore.Metadata{TenantID: string(b[0].TenantID)}}); err != nil {
					errs <- err
					return
				}
				appended.Add(int64(len(b)))
			}
		})
	}
	began := time.Now()
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	// The patterns' texts, made once: the statements differ only in their literals.
	type pattern struct {
		tables                        []string
		selectFrom, selectFingerprint string
		update, updateFingerprint     string
	}
	patterns := make([]pattern, c.patterns)
	for p := range patterns {
		patterns[p] = pattern{tables: []string{fmt.Sprintf("orders_%d", p)},
			selectFrom:        fmt.Sprintf("SELECT id, name, total FROM orders_%d WHERE customer_id = ", p),
			selectFingerprint: fmt.Sprintf("SELECT id, name, total FROM orders_%d WHERE customer_id = ? AND created_at > ?", p),
			update:            fmt.Sprintf("UPDATE orders_%d SET status = 'paid' WHERE id = ", p),
			updateFingerprint: fmt.Sprintf("UPDATE orders_%d SET status = ? WHERE id = ?", p)}
	}
	batch := make([]domain.QueryExecuted, 0, c.batch)
	for i := range c.events {
		t := tenants[rng.IntN(len(tenants))]
		p := rng.IntN(c.patterns)
		pat := &patterns[p]
		q := domain.QueryExecuted{QueryID: uuidFrom(rng), TenantID: t.id, UserID: t.users[rng.IntN(len(t.users))],
			DatabaseID: t.databases[rng.IntN(len(t.databases))], Status: domain.QuerySucceeded, StatementType: "read",
			SQL:         pat.selectFrom + strconv.Itoa(rng.IntN(100000)) + " AND created_at > '2026-01-01'",
			Fingerprint: pat.selectFingerprint, Tables: pat.tables,
			ExecutionMS: math.Round(math.Exp(rng.NormFloat64()+1+float64(p%4)/2)*1000) / 1000, RowCount: int64(rng.IntN(200)),
			At: start.Add(time.Duration(i) * step)}
		switch x := rng.IntN(100); {
		case x < 3:
			q.Status, q.ErrorCode, q.RowCount = statuses[1], "query_failed", 0
		case x == 3:
			q.Status, q.ErrorCode, q.ExecutionMS, q.RowCount = statuses[2], "query_timeout", 30000, 0
		case x == 4:
			q.Status, q.ErrorCode, q.ExecutionMS, q.RowCount = statuses[3], "statement_not_allowed", 0, 0
		case x < 20:
			q.StatementType, q.RowCount, q.AffectedRows = "dml", 0, int64(1+rng.IntN(10))
			q.SQL, q.Fingerprint = pat.update+strconv.Itoa(rng.IntN(100000)), pat.updateFingerprint
		}
		batch = append(batch, q)
		if len(batch) == c.batch || i == c.events-1 {
			clk.unixNano.Store(q.At.UnixNano())
			select {
			case batches <- batch:
			case err := <-errs:
				close(batches)
				return err
			}
			batch = make([]domain.QueryExecuted, 0, c.batch)
		}
		select {
		case <-progress.C:
			n := appended.Load()
			log.Info("loading", "appended", n, "events_per_s", int(float64(n)/time.Since(began).Seconds()))
		default:
		}
	}
	close(batches)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	took := time.Since(began)
	fmt.Printf("load: %d query events in %s: %.0f events/s\n", c.events, took.Round(time.Millisecond), float64(c.events)/took.Seconds())
	return nil
}

// timeDashboards times the 30-day dashboard of random tenants, alone and with the previous period.
func timeDashboards(ctx context.Context, c config, views *projections.Views, tenants []tenant, rng *rand.Rand) error {
	if c.dashboards <= 0 {
		return nil
	}
	for _, compare := range []bool{false, true} {
		var took []time.Duration
		for range c.dashboards {
			t := tenants[rng.IntN(len(tenants))]
			now := time.Now()
			w, err := domain.NewMetricsWindow("30d", nil, nil, compare, now)
			if err != nil {
				return err
			}
			began := time.Now()
			d, err := views.Dashboard(ctx, projections.DashboardRequest{View: domain.MetricsTenant, Tenant: t.id, User: t.users[0],
				Window: w, Compare: compare, Now: now})
			if err != nil {
				return err
			}
			took = append(took, time.Since(began))
			if d.Queries.Count == 0 {
				return fmt.Errorf("tenant %s: an empty dashboard", t.id)
			}
		}
		slices.Sort(took)
		pct := func(q float64) time.Duration { return took[int(math.Ceil(q*float64(len(took))))-1] }
		fmt.Printf("dashboard 30d (compare=%v): %d calls, p50 %s, p99 %s, max %s\n", compare, len(took),
			pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), took[len(took)-1].Round(10*time.Microsecond))
	}
	return nil
}

// storage prints the size of the metrics tables (InnoDB's statistics, refreshed first), in all
// and per tenant and day, next to the event log's.
func storage(ctx context.Context, db *sql.DB, c config) error {
	tables := []string{"metrics_usage", "metrics_patterns", "metrics_pattern_texts", "metrics_databases", "metrics_totals",
		"metrics_members", "metrics_state"}
	for _, t := range append(tables, "events") {
		if _, err := db.ExecContext(ctx, "ANALYZE TABLE `"+t+"`"); err != nil {
			return err
		}
	}
	size := func(names ...string) (bytes, rows int64, err error) {
		args := make([]any, len(names))
		for i, n := range names {
			args[i] = n
		}
		err = db.QueryRowContext(ctx, `SELECT COALESCE(SUM(data_length + index_length), 0), COALESCE(SUM(table_rows), 0)
			FROM information_schema.TABLES WHERE table_schema = DATABASE() AND table_name IN (`+sqlparams.List(len(names))+`)`, args...).
			Scan(&bytes, &rows)
		return bytes, rows, err
	}
	metricsBytes, metricsRows, err := size(tables...)
	if err != nil {
		return err
	}
	eventBytes, eventRows, err := size("events")
	if err != nil {
		return err
	}
	perTenantDay := float64(metricsBytes) / float64(c.tenants) / c.days
	fmt.Printf("storage: metrics tables %.1f MiB in ~%d rows (%.0f KiB per tenant per day); the event log %.1f MiB in ~%d rows\n",
		float64(metricsBytes)/(1<<20), metricsRows, perTenantDay/1024, float64(eventBytes)/(1<<20), eventRows)
	for _, t := range tables[:3] {
		b, r, err := size(t)
		if err != nil {
			return err
		}
		fmt.Printf("  %s: %.1f MiB, ~%d rows\n", t, float64(b)/(1<<20), r)
	}
	return nil
}
