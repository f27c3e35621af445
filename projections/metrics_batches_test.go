package projections_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

// TestMetricsLargeBatchesEqualOneEventAtATime shows that the size of a batch changes only how
// often a row is written, never what it holds: the live model (built by a runtime started on the
// whole log, whose reads are then the metrics projector's batch of thousands of events, applied
// by the query history in batches of 500), a rebuild (every event in one transaction) and the
// events applied one per transaction to tables of their own give the same rows, byte for byte —
// counters, histograms, gauges, patterns, the cut.
func TestMetricsLargeBatchesEqualOneEventAtATime(t *testing.T) {
	f := newIdentityFixture(t)
	metrics := projections.NewMetrics(production)
	ctx := context.Background()

	rng := rand.New(rand.NewPCG(7, 13))
	members := addMetricsMembers(t, f, 3, t0.Add(time.Minute))
	statuses := []domain.QueryStatus{domain.QuerySucceeded, domain.QuerySucceeded, domain.QuerySucceeded, domain.QueryFailed,
		domain.QueryTimedOut, domain.QueryDenied}
	var batch []domain.QueryExecuted
	const n = 1200
	for i := range n {
		at := t0.Add(time.Duration(i) * 241 * time.Second) // 3⅓ days
		m, q := randomQuery(rng, members, 4, statuses, at)
		batch = append(batch, q)
		if len(batch) == 100 || i == n-1 {
			recordQueries(t, f, batch...)
			batch = nil
		}
		switch {
		case i%100 == 0:
			f.appendAt(t, at, "user-"+string(m.user), domain.UserLoginFailed{At: at, Reason: "password"})
		case i%150 == 0:
			f.appendAt(t, at, "database-"+string(m.dbs[0]), domain.DatabaseStorageMeasured{Bytes: int64(i) * 1000, At: at})
		case i == 800: // a cut in the middle: later events for cut times count nowhere, and nothing before it stays
			cut := domain.MetricsCut(at.Add(30 * 24 * time.Hour))
			cut.PerformanceBefore = at.Add(-24 * time.Hour).Truncate(time.Hour)
			f.appendAt(t, at, domain.MetricsRetentionStream, cut)
		}
	}
	head, err := f.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := f.start(t, metrics, projections.NewQueryHistory(production))
	waitFor(t, r, head, "metrics", "query_history")
	// Each member's newest row counts their statements: none was lost at the edges of the batches.
	if rows, _ := query(t, f.db, "SELECT SUM(newest) AS n FROM (SELECT MAX(seq) AS newest FROM query_history GROUP BY tenant_id, user_id) AS m"); rows[0]["n"] != fmt.Sprint(n) {
		t.Fatalf("query history counted %s statements, want %d", rows[0]["n"], n)
	}

	live := dumpMetrics(t, f, "")
	if err := r.Rebuild(ctx, metrics.Name()); err != nil {
		t.Fatal(err)
	}
	if rebuilt := dumpMetrics(t, f, ""); rebuilt != live {
		t.Fatalf("the rebuild (one batch) differs from the live model:\nlive:\n%s\nrebuilt:\n%s", live, rebuilt)
	}

	// The same log applied one event per transaction, to tables of its own.
	applyOneByOne(t, f, metrics, "_one", nil)
	if one := dumpMetrics(t, f, "_one"); one != live {
		t.Fatalf("one event per transaction differs from the live model:\nlive:\n%s\none by one:\n%s", live, one)
	}
}

// applyOneByOne applies the metrics events of f's log one per transaction to tables of their own
// (each table's name with suffix). before, when not nil, runs before each event's transaction:
// a non-nil undo it returns means the event's first transaction must fail; undo runs after its
// rollback and the event is applied again.
func applyOneByOne(t *testing.T, f *identityFixture, metrics projections.Metrics, suffix string, before func(e eventstore.Envelope) (undo func())) {
	t.Helper()
	ctx := context.Background()
	names := projections.Tables{}
	for _, table := range metrics.Tables() {
		names[table.Name] = table.Name + suffix
		if _, err := f.db.ExecContext(ctx, strings.ReplaceAll(table.DDL, "{{table}}", "`"+table.Name+suffix+"`")); err != nil {
			t.Fatal(err)
		}
	}
	events, err := f.store.ReadAll(ctx, 0, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	handled := map[string]bool{}
	for _, typ := range metrics.Handles() {
		handled[typ] = true
	}
	apply := func(e eventstore.Envelope) error {
		tx, err := f.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := metrics.Apply(ctx, tx, names, []eventstore.Envelope{e}); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	for _, e := range events {
		if !handled[e.EventType] {
			continue
		}
		if before != nil {
			if undo := before(e); undo != nil {
				if err := apply(e); err == nil {
					t.Fatalf("position %d: applied, want a failure", e.Position)
				}
				undo()
			}
		}
		if err := apply(e); err != nil {
			t.Fatalf("position %d: %v", e.Position, err)
		}
	}
}

// A batch whose transaction fails after it merged what this process cached of its rows (their
// histograms and an hour's minutes), then applied again, counts its events once: the cache does
// not stay ahead of the tables it rolled back.
func TestMetricsBatchAppliedAgainAfterRollbackCountsOnce(t *testing.T) {
	f := newIdentityFixture(t)
	metrics := projections.NewMetrics(production)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 11))
	members := addMetricsMembers(t, f, 2, t0.Add(time.Minute))
	var last int64
	for i := range 6 { // the same minute of the same hour: each batch merges the cached rows
		_, q := randomQuery(rng, members, 3, []domain.QueryStatus{domain.QuerySucceeded}, t0.Add(2*time.Minute+time.Duration(i)*7*time.Second))
		last = recordQueries(t, f, q)
	}
	r := f.start(t, metrics)
	waitFor(t, r, last, "metrics")
	queries := 0
	applyOneByOne(t, f, metrics, "_again", func(e eventstore.Envelope) func() {
		if e.EventType != (domain.QueryExecuted{}).EventType() {
			return nil
		}
		if queries++; queries != 4 {
			return nil
		}
		// The batch's last write fails: its patterns' table is away.
		rename := func(from, to string) {
			if _, err := f.db.ExecContext(ctx, "RENAME TABLE `"+from+"` TO `"+to+"`"); err != nil {
				t.Fatal(err)
			}
		}
		rename("metrics_patterns_again", "metrics_patterns_away")
		return func() { rename("metrics_patterns_away", "metrics_patterns_again") }
	})
	live, again := strings.Split(dumpMetrics(t, f, ""), "\n"), strings.Split(dumpMetrics(t, f, "_again"), "\n")
	for i := range max(len(live), len(again)) {
		if i >= len(live) || i >= len(again) || live[i] != again[i] {
			t.Fatalf("a batch applied again after a rollback differs from the live model at line %d:\nlive:\n%s\nagain:\n%s",
				i, strings.Join(live[i:min(i+1, len(live))], ""), strings.Join(again[i:min(i+1, len(again))], ""))
		}
	}
}

// dumpMetrics renders the metrics tables whose names end with suffix.
func dumpMetrics(t *testing.T, f *identityFixture, suffix string) string {
	t.Helper()
	var b strings.Builder
	for _, table := range slices.Sorted(maps.Keys(metricsTables)) {
		fmt.Fprintf(&b, "%s:\n%s", table, dumpTable(t, f.db, table+suffix, metricsTables[table]))
	}
	return b.String()
}
