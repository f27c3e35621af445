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

	dump := func(suffix string) string {
		var b strings.Builder
		for _, table := range slices.Sorted(maps.Keys(metricsTables)) {
			fmt.Fprintf(&b, "%s:\n%s", table, dumpTable(t, f.db, table+suffix, metricsTables[table]))
		}
		return b.String()
	}
	live := dump("")
	if err := r.Rebuild(ctx, metrics.Name()); err != nil {
		t.Fatal(err)
	}
	if rebuilt := dump(""); rebuilt != live {
		t.Fatalf("the rebuild (one batch) differs from the live model:\nlive:\n%s\nrebuilt:\n%s", live, rebuilt)
	}

	// The same log applied one event per transaction, to tables of its own.
	names := projections.Tables{}
	for _, table := range metrics.Tables() {
		names[table.Name] = table.Name + "_one"
		if _, err := f.db.ExecContext(ctx, strings.ReplaceAll(table.DDL, "{{table}}", "`"+table.Name+"_one`")); err != nil {
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
	for _, e := range events {
		if !handled[e.EventType] {
			continue
		}
		tx, err := f.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := metrics.Apply(ctx, tx, names, []eventstore.Envelope{e}); err != nil {
			t.Fatalf("position %d: %v", e.Position, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if one := dump("_one"); one != live {
		t.Fatalf("one event per transaction differs from the live model:\nlive:\n%s\none by one:\n%s", live, one)
	}
}
