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
	"github.com/clouddbmanager/clouddb/projections"
)

// TestMetricsRebuildWritesEachBucketOnceAndEqualsLive: a rebuild keeps buckets open in memory and
// inserts each once the log's time has passed it (metricsRebuild). Read in batches of a few dozen
// events, so that buckets close between batches, a log with late events (recorded hours and a day
// after their time: their buckets were written already), events on the edges of minutes, hours
// and days, retention cuts inside the open buckets, events for times a cut removed, sign-in
// failures of members, former members and members again, storage and deleted databases must
// give the live model's rows byte for byte.
func TestMetricsRebuildWritesEachBucketOnceAndEqualsLive(t *testing.T) {
	f := newIdentityFixture(t)
	metrics := projections.NewMetrics(production)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(11, 13))

	members := addMetricsMembers(t, f, 2, t0)
	statuses := []domain.QueryStatus{domain.QuerySucceeded, domain.QuerySucceeded, domain.QueryFailed, domain.QueryTimedOut, domain.QueryDenied}
	q := func(at time.Time) domain.QueryExecuted {
		_, e := randomQuery(rng, members, 3, statuses, at)
		return e
	}
	// late records a query of time at when the log's clock is at now.
	late := func(now, at time.Time) {
		e := q(at)
		f.appendAt(t, now, domain.QueryStream(e.QueryID), e)
	}
	start := t0.Truncate(24 * time.Hour).Add(22 * time.Hour) // 22:00, two hours before a day ends
	const n = 900
	for i := range n {
		at := start.Add(time.Duration(i) * 197 * time.Second) // two days
		switch i % 7 {
		case 0:
			at = at.Truncate(time.Minute) // on a minute's edge
		case 1:
			at = at.Truncate(time.Hour) // on an hour's edge (a day's at midnight)
		}
		recordQueries(t, f, q(at))
		switch {
		case i%40 == 5:
			late(at, at.Add(-3*time.Hour)) // its hour and minutes were written
		case i%90 == 7:
			late(at, at.Add(-26*time.Hour)) // its day too
		case i%60 == 3:
			m := members[rng.IntN(len(members))]
			f.appendAt(t, at, "user-"+string(m.user), domain.UserLoginFailed{At: at, Reason: "password"})
		case i%75 == 11:
			m := members[rng.IntN(len(members))]
			f.appendAt(t, at, "database-"+string(m.dbs[0]), domain.DatabaseStorageMeasured{Bytes: int64(i) * 1000, At: at})
		case i == 500:
			f.appendAt(t, at, "database-"+string(members[0].dbs[1]), domain.DatabaseDeleted{At: at})
		case i == 300 || i == 310: // a member leaves: their failed sign-ins no longer count in the tenant
			m := members[1]
			f.appendAt(t, at, "tenant-"+string(m.tenant), domain.TenantMembershipClosed{UserID: m.user, At: at})
			f.appendAt(t, at, "user-"+string(m.user), domain.UserLoginFailed{At: at, Reason: "password"})
		case i == 600: // and joins again
			m := members[1]
			f.appendAt(t, at, "tenant-"+string(m.tenant), domain.TenantMemberAdded{UserID: m.user, Role: domain.RoleDeveloper, At: at})
			f.appendAt(t, at, "tenant-"+string(m.tenant), domain.TenantMemberAdded{UserID: m.user, Role: domain.RoleDeveloper, At: at})
			f.appendAt(t, at, "user-"+string(m.user), domain.UserLoginFailed{At: at, Reason: "password"})
		case i == 400 || i == 700: // cuts inside the open buckets; later events before them count nowhere
			cut := domain.MetricsCut(at.Add(30 * 24 * time.Hour))
			cut.PerformanceBefore = at.Add(-40 * time.Minute).Truncate(time.Minute)
			cut.ActivityBefore = at.Add(-5 * time.Hour).Truncate(time.Hour)
			cut.DailyBefore = at.Add(-24 * time.Hour).Truncate(24 * time.Hour)
			f.appendAt(t, at, domain.MetricsRetentionStream, cut)
			late(at, at.Add(-50*time.Minute))
			late(at, at.Add(-20*time.Minute))
		}
	}
	head, err := f.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := f.start(t, metrics)
	waitFor(t, r, head, "metrics")
	dump := func() string {
		var b strings.Builder
		for _, table := range slices.Sorted(maps.Keys(metricsTables)) {
			fmt.Fprintf(&b, "%s:\n%s", table, dumpTable(t, f.db, table, metricsTables[table]))
		}
		return b.String()
	}
	live := dump()
	if !strings.Contains(live, "grain=d") || !strings.Contains(live, "storage_bytes=") {
		t.Fatalf("the live model holds no daily buckets or storage:\n%s", live)
	}
	// The minutes are in their hours' rows (metrics_minutes.go), not rows of their own.
	if strings.Contains(live, "grain=m ") || strings.Count(live, "minutes=") == strings.Count(live, "minutes=NULL") {
		t.Fatalf("the live model holds minute rows, or no hour holds its minutes:\n%s", live)
	}
	// One event at a time, a cut's batch ends at the cut, the buckets before it still open; 37, a
	// batch spans two hours of the log; 1,000, all of it in one.
	// The closed buckets by LOAD DATA, and by INSERT statements (where the server refuses it).
	for _, batch := range []int{1, 37, 1000} {
		for _, load := range []bool{true, false} {
			restore, restoreLoad := projections.SetRebuildSessionBatch(batch), projections.SetRebuildLoadData(load)
			refused := projections.RebuildLoadsRefused()
			err := r.Rebuild(ctx, metrics.Name())
			restore()
			restoreLoad()
			if err != nil {
				t.Fatal(err)
			}
			if n := projections.RebuildLoadsRefused() - refused; n != 0 {
				t.Fatalf("the rebuild in batches of %d (LOAD DATA %t): %d LOAD DATA refused", batch, load, n)
			}
			if rebuilt := dump(); rebuilt != live {
				t.Fatalf("the rebuild in batches of %d (LOAD DATA %t) differs from the live model:\nlive:\n%s\nrebuilt:\n%s", batch, load, live, rebuilt)
			}
		}
	}
	// With at most 3 rows open (and 3 texts remembered), buckets close before their time: their
	// later events are late. With 6 ids, subjects and patterns numbered, the open rows of the
	// others are kept in maps by their keys, beside the numbered ones'.
	for _, bound := range []struct {
		name string
		set  func() (restore func())
	}{
		{"at most 3 rows open", func() func() { return projections.SetRebuildMaxOpenRows(3) }},
		{"6 numbers of each kind", func() func() { return projections.SetRebuildMaxRefs(6) }},
	} {
		restore, restoreBound := projections.SetRebuildSessionBatch(37), bound.set()
		err = r.Rebuild(ctx, metrics.Name())
		restore()
		restoreBound()
		if err != nil {
			t.Fatal(err)
		}
		if rebuilt := dump(); rebuilt != live {
			t.Fatalf("the rebuild with %s differs from the live model:\nlive:\n%s\nrebuilt:\n%s", bound.name, live, rebuilt)
		}
	}
}
