package projections_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

// The load samples of two processes add up per tenant and for the platform; a minute keeps the
// peak of the sums in it, an hour its minutes' greatest and a day its hours'; a bucket without a
// sample carries the last sums on in the dashboard's series; the cut prunes like the other
// metrics; a rebuild writes the same rows; the figures now count only processes alive.
func TestMetricsLoadSumsProcessesAndRollsPeaksUp(t *testing.T) {
	f := newIdentityFixture(t)
	load := projections.NewMetricsLoad(production)
	r := f.start(t, load, projections.NewMetrics(production), projections.NewSessions(production))
	views := projections.NewViews(f.db)
	ctx := context.Background()
	tenant, other := domain.TenantID(newID()), domain.TenantID(newID())
	procA, procB := newID(), newID()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	sample := func(m int, tenant domain.TenantID, process string, running, open, inUse int64) int64 {
		t.Helper()
		// Recorded as the sampler does: at the end of the minute it covers.
		res := f.appendAt(t, at(m+1), domain.LoadStream(tenant), domain.TenantLoadSampled{TenantID: tenant, ProcessID: process,
			Minute: at(m), PeakRunning: running, PoolOpen: open, PoolInUse: inUse, At: at(m + 1)})
		return res.LastPosition
	}
	sample(0, tenant, procA, 2, 3, 1)
	sample(0, tenant, procB, 1, 1, 1)
	sample(1, tenant, procA, 4, 3, 2)
	sample(2, tenant, procA, 0, 0, 0) // A's part goes quiet; B's 1/1/1 goes on
	sample(61, tenant, procB, 3, 2, 2)
	last := sample(61, other, procA, 1, 1, 0)
	wait(t, r, last, "metrics_load")

	str := func(l projections.Load) string { return fmt.Sprintf("%d/%d/%d", l.Running, l.PoolOpen, l.PoolInUse) }
	check := func(of domain.TenantID, grain domain.MetricsGrain, want map[int]string) {
		t.Helper()
		buckets, _, err := views.LoadBuckets(ctx, of, grain, grain.Start(t0), at(24*60))
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]string{}
		for _, b := range buckets {
			got[int(b.At.Sub(t0)/time.Minute)] = str(b.Peak) + " last " + str(b.Last)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("load of %q by %s = %v, want %v", of, grain, got, want)
		}
	}
	check(tenant, domain.GrainMinute, map[int]string{0: "3/4/2 last 3/4/2", 1: "5/4/3 last 5/4/3", 2: "1/1/1 last 1/1/1", 61: "3/2/2 last 3/2/2"})
	check(tenant, domain.GrainHour, map[int]string{0: "5/4/3 last 1/1/1", 60: "3/2/2 last 3/2/2"})
	check(tenant, domain.GrainDay, map[int]string{-9 * 60: "5/4/3 last 3/2/2"})
	check("", domain.GrainHour, map[int]string{0: "5/4/3 last 1/1/1", 60: "4/3/2 last 4/3/2"})

	// The platform's dashboard: a point per minute, the sums carried on between samples.
	from, to := at(0), at(5)
	w, err := domain.NewMetricsWindow("", &from, &to, false, at(5))
	if err != nil {
		t.Fatal(err)
	}
	d, err := views.Dashboard(ctx, projections.DashboardRequest{View: domain.MetricsPlatform, Window: w, Now: at(5)})
	if err != nil {
		t.Fatal(err)
	}
	var series []string
	for _, p := range d.Resources.Load.Series {
		series = append(series, str(p.Load))
	}
	if fmt.Sprint(series) != "[3/4/2 5/4/3 1/1/1 1/1/1 1/1/1]" || str(d.Resources.Load.Peak) != "5/4/3" {
		t.Errorf("platform load series %v, peak %s; want [3/4/2 5/4/3 1/1/1 1/1/1 1/1/1], peak 5/4/3", series, str(d.Resources.Load.Peak))
	}

	// Now: the latest samples of the processes alive (B only: A has no lease).
	if _, err := f.db.ExecContext(ctx, `INSERT INTO process_leases (instance_id, host, started_at, expires_at) VALUES (?, 'b', ?, ?)`,
		procB, at(0), at(120)); err != nil {
		t.Fatal(err)
	}
	for of, want := range map[domain.TenantID]string{tenant: "3/2/2", other: "0/0/0", "": "3/2/2"} {
		if l, err := views.LoadNow(ctx, of, at(62)); err != nil || str(l) != want {
			t.Errorf("load now of %q = %s, %v; want %s", of, str(l), err, want)
		}
	}

	// The cut drops the minutes before the second hour; a late sample for a cut minute counts in
	// its hour and day only.
	f.appendAt(t, at(100), domain.MetricsRetentionStream, domain.MetricsPruned{PerformanceBefore: at(60), ActivityBefore: at(0), DailyBefore: at(0), At: at(100)})
	wait(t, r, sample(30, tenant, procA, 9, 9, 9), "metrics_load")
	check(tenant, domain.GrainMinute, map[int]string{61: "3/2/2 last 3/2/2"})
	check(tenant, domain.GrainHour, map[int]string{0: "12/11/11 last 12/11/11", 60: "3/2/2 last 3/2/2"})
	checkReplay(t, f, r, load, map[string]string{
		"metrics_load":           "tenant_id, grain, bucket",
		"metrics_load_processes": "tenant_id, process_id",
		"metrics_load_state":     "id",
	})
}
