package projections_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/latency"
	"github.com/clouddbmanager/clouddb/projections"
)

// metricsTables are the metrics read model's tables and their order, for checkReplay.
var metricsTables = map[string]string{
	"metrics_usage":         "tenant_id, scope, subject_id, grain, bucket",
	"metrics_patterns":      "tenant_id, scope, grain, bucket, fingerprint, database_id, user_id",
	"metrics_pattern_texts": "tenant_id, fingerprint",
	"metrics_databases":     "database_id",
	"metrics_totals":        "tenant_id",
	"metrics_members":       "user_id, tenant_id",
	"metrics_state":         "id",
}

// nearestRank is the exact percentile the dashboards promise to within 2 %.
func nearestRank(values []float64, q float64) float64 {
	sorted := slices.Sorted(slices.Values(values))
	return sorted[max(int(math.Ceil(q*float64(len(sorted)))), 1)-1]
}

func within2Percent(got, want float64) bool { return math.Abs(got-want) <= 0.02*want }

// expected is what the test knows of one bucket of one scope.
type expected struct {
	counts    projections.MetricsCounts
	latencies []float64
}

func TestMetricsRollQueriesUpByMinuteHourAndDay(t *testing.T) {
	f := newIdentityFixture(t)
	metrics := projections.NewMetrics(production)
	r := f.start(t, metrics)
	views := projections.NewViews(f.db)
	tenant := domain.TenantID(newID())
	dbs := []domain.DatabaseID{domain.DatabaseID(newID()), domain.DatabaseID(newID())}
	users := []domain.UserID{domain.UserID(newID()), domain.UserID(newID())}
	fingerprints := []string{"SELECT * FROM t WHERE id = ?", "UPDATE t SET a = ? WHERE id = ?", "SELECT COUNT(*) FROM big"}

	rng := rand.New(rand.NewPCG(1, 13))
	want := map[string]*expected{} // scope/grain/bucket
	note := func(key string, q domain.QueryExecuted) {
		e := want[key]
		if e == nil {
			e = &expected{}
			want[key] = e
		}
		e.counts.Queries++
		switch q.Status {
		case domain.QueryFailed:
			e.counts.Errors++
		case domain.QueryTimedOut:
			e.counts.Timeouts++
		case domain.QueryDenied:
			e.counts.Denials++
		}
		e.counts.RowsRead += uint64(q.RowCount)
		e.counts.RowsWritten += uint64(q.AffectedRows)
		if q.Status != domain.QueryDenied {
			e.latencies = append(e.latencies, q.ExecutionMS)
		}
	}
	patternCounts := map[string]int{}
	var last int64
	var batch []domain.QueryExecuted
	const n = 900
	for i := range n {
		fp := i % 3
		q := domain.QueryExecuted{QueryID: newID(), TenantID: tenant, UserID: users[i%2], DatabaseID: dbs[(i/2)%2],
			SQL: fingerprints[fp], Fingerprint: fingerprints[fp], StatementType: "read", Status: domain.QuerySucceeded,
			ExecutionMS: math.Round(math.Exp(rng.NormFloat64()+float64(fp+1))*1000) / 1000, RowCount: int64(i % 7), AffectedRows: int64(i % 3),
			At: t0.Add(time.Duration(i) * 13 * time.Second)} // 3¼ hours
		switch {
		case i%10 == 0:
			q.Status = domain.QueryFailed
		case i%17 == 0:
			q.Status = domain.QueryTimedOut
		case i%23 == 0:
			q.Status, q.ExecutionMS = domain.QueryDenied, 0
		}
		for _, g := range []domain.MetricsGrain{domain.GrainMinute, domain.GrainHour, domain.GrainDay} {
			at := g.Start(q.At).Format(time.RFC3339)
			note("t/"+string(g)+"/"+at, q)
			if q.UserID == users[0] {
				note("u0/"+string(g)+"/"+at, q)
			}
		}
		patternCounts[q.Fingerprint]++
		batch = append(batch, q)
		if len(batch) == 50 {
			last = recordQueries(t, f, batch...)
			batch = nil
		}
	}
	wait(t, r, last, "metrics")
	ctx := context.Background()

	check := func(scope projections.MetricsScope, prefix string, g domain.MetricsGrain) {
		t.Helper()
		buckets, err := views.MetricsBuckets(ctx, scope, g, t0.Add(-24*time.Hour), t0.Add(48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, b := range buckets {
			e := want[prefix+"/"+string(g)+"/"+b.At.Format(time.RFC3339)]
			if e == nil {
				t.Fatalf("%s %s bucket %s is not expected", prefix, g, b.At)
			}
			seen++
			if b.MetricsCounts != e.counts {
				t.Errorf("%s %s %s: counts %+v, want %+v", prefix, g, b.At, b.MetricsCounts, e.counts)
			}
			if len(e.latencies) == 0 {
				continue
			}
			for _, q := range []float64{0.5, 0.95, 0.99} {
				if got, exact := b.Latency.Quantile(q), nearestRank(e.latencies, q); !within2Percent(got, exact) {
					t.Errorf("%s %s %s: p%g = %g, exact %g", prefix, g, b.At, 100*q, got, exact)
				}
			}
		}
		if wanted := countPrefix(want, prefix+"/"+string(g)+"/"); seen != wanted {
			t.Errorf("%s %s: %d buckets, want %d", prefix, g, seen, wanted)
		}
	}
	for _, g := range []domain.MetricsGrain{domain.GrainMinute, domain.GrainHour, domain.GrainDay} {
		check(projections.TenantScope(tenant), "t", g)
		check(projections.UserScope(tenant, users[0]), "u0", g)
	}

	// An hour is the merge of its minutes, a day of its hours, and the platform, the databases and
	// the members each add up to the tenant.
	sum := func(scope projections.MetricsScope, g domain.MetricsGrain, from, to time.Time) (projections.MetricsCounts, latency.Histogram) {
		t.Helper()
		buckets, err := views.MetricsBuckets(ctx, scope, g, from, to)
		if err != nil {
			t.Fatal(err)
		}
		var c projections.MetricsCounts
		var h latency.Histogram
		for _, b := range buckets {
			c.Add(b.MetricsCounts)
			h.Merge(&b.Latency)
		}
		return c, h
	}
	same := func(what string, c1 projections.MetricsCounts, h1 latency.Histogram, c2 projections.MetricsCounts, h2 latency.Histogram) {
		t.Helper()
		b1, _ := h1.MarshalBinary()
		b2, _ := h2.MarshalBinary()
		if c1 != c2 || string(b1) != string(b2) {
			t.Errorf("%s: %+v (%d latencies) against %+v (%d)", what, c1, h1.Count(), c2, h2.Count())
		}
	}
	for h := range 4 {
		from := t0.Add(time.Duration(h) * time.Hour)
		mc, mh := sum(projections.TenantScope(tenant), domain.GrainMinute, from, from.Add(time.Hour))
		hc, hh := sum(projections.TenantScope(tenant), domain.GrainHour, from, from.Add(time.Hour))
		same(fmt.Sprintf("hour %d against its minutes", h), hc, hh, mc, mh)
	}
	day := domain.GrainDay.Start(t0)
	hc, hh := sum(projections.TenantScope(tenant), domain.GrainHour, day, day.Add(24*time.Hour))
	dc, dh := sum(projections.TenantScope(tenant), domain.GrainDay, day, day.Add(24*time.Hour))
	same("the day against its hours", dc, dh, hc, hh)
	pc, ph := sum(projections.PlatformScope(), domain.GrainDay, day, day.Add(24*time.Hour))
	same("the platform against its only tenant", pc, ph, dc, dh)
	var uc, bc projections.MetricsCounts
	var uh, bh latency.Histogram
	for i := range 2 {
		c, h := sum(projections.UserScope(tenant, users[i]), domain.GrainDay, day, day.Add(24*time.Hour))
		uc.Add(c)
		uh.Merge(&h)
		c, h = sum(projections.DatabaseScope(tenant, dbs[i]), domain.GrainDay, day, day.Add(24*time.Hour))
		bc.Add(c)
		bh.Merge(&h)
	}
	same("the members against the tenant", uc, uh, dc, dh)
	same("the databases against the tenant", bc, bh, dc, dh)

	top, err := views.MetricsPatterns(ctx, projections.PatternFilter{Tenant: tenant}, domain.GrainDay, day, day.Add(24*time.Hour), projections.PatternsByP95, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 2 || top[0].Text != fingerprints[2] || top[1].Text != fingerprints[1] || top[0].Queries != uint64(patternCounts[fingerprints[2]]) {
		t.Errorf("top 2 patterns by p95: %+v", top)
	}
	if top[0].StatementType != "read" || top[0].Errors == 0 {
		t.Errorf("pattern %+v: want its statement type and errors", top[0])
	}
	mine, err := views.MetricsPatterns(ctx, projections.PatternFilter{Tenant: tenant, User: users[0]}, domain.GrainHour, t0, t0.Add(time.Hour),
		projections.PatternsByCount, 10)
	if err != nil {
		t.Fatal(err)
	}
	var own uint64
	for _, p := range mine {
		own += p.Queries
	}
	if own != n/2 || len(mine) != 3 {
		t.Errorf("one member's patterns (by the day): %d statements in %d patterns, want %d in 3", own, len(mine), n/2)
	}
	checkReplay(t, f, r, metrics, metricsTables)
}

func countPrefix(m map[string]*expected, prefix string) int {
	n := 0
	for k := range m {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

func TestMetricsGaugesSignInsAndRetention(t *testing.T) {
	f := newIdentityFixture(t)
	metrics := projections.NewMetrics(production)
	r := f.start(t, metrics)
	views := projections.NewViews(f.db)
	ctx := context.Background()
	tenant, user := domain.TenantID(newID()), domain.UserID(newID())
	d1, d2 := domain.DatabaseID(newID()), domain.DatabaseID(newID())
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

	f.appendAt(t, at(0), "tenant-"+string(tenant), domain.TenantMemberAdded{UserID: user, Role: domain.RoleTenantAdmin, At: at(0)})
	f.appendAt(t, at(1), "database-"+string(d1), domain.DatabaseRequested{DatabaseID: d1, TenantID: tenant, Name: "a", OwnerID: user, At: at(1)})
	f.appendAt(t, at(1), "user-"+string(user), domain.UserLoginSucceeded{SessionID: domain.SessionID(newID()), TenantID: tenant})
	f.appendAt(t, at(2), "database-"+string(d1), domain.DatabaseStorageMeasured{Bytes: 1000, At: at(2)})
	f.appendAt(t, at(2), "user-"+string(user), domain.UserLoginFailed{At: at(2), Reason: "password"}, domain.UserLoginFailed{At: at(2), Reason: "password"})
	f.appendAt(t, at(3), "database-"+string(d2), domain.DatabaseRequested{DatabaseID: d2, TenantID: tenant, Name: "b", OwnerID: user, At: at(3)})
	f.appendAt(t, at(3), "user-"+string(user), domain.UserLocked{Until: at(18)})
	f.appendAt(t, at(5), "database-"+string(d2), domain.DatabaseDeleted{At: at(5), RecoverableUntil: at(5).Add(domain.RecoveryWindow)})
	f.appendAt(t, at(6), "tenant-"+string(tenant), domain.TenantMemberRoleChanged{UserID: user, From: domain.RoleTenantAdmin, To: domain.RoleDeveloper})
	f.appendAt(t, at(7), "session-"+newID(), domain.SessionStarted{UserID: user, TenantID: tenant, StartedAt: at(7), ExpiresAt: at(700)})
	last := f.appendAt(t, at(61), "database-"+string(d1), domain.DatabaseStorageMeasured{Bytes: 5000, At: at(61)})
	wait(t, r, last.LastPosition, "metrics")

	minutes, err := views.MetricsBuckets(ctx, projections.TenantScope(tenant), domain.GrainMinute, at(0), at(120))
	if err != nil {
		t.Fatal(err)
	}
	gauges := map[int]string{}
	var total projections.MetricsCounts
	for _, b := range minutes {
		total.Add(b.MetricsCounts)
		if b.Databases != nil {
			gauges[int(b.At.Sub(t0)/time.Minute)] = fmt.Sprintf("%d/%d", *b.Databases, *b.StorageBytes)
		}
	}
	wantGauges := map[int]string{1: "1/0", 2: "1/1000", 3: "2/1000", 5: "1/1000", 61: "1/5000"}
	if fmt.Sprint(gauges) != fmt.Sprint(wantGauges) {
		t.Errorf("tenant gauges by minute = %v, want %v", gauges, wantGauges)
	}
	wantTotal := projections.MetricsCounts{Logins: 1, LoginFailures: 2, Lockouts: 1, Sessions: 1, DatabasesCreated: 2, DatabasesDeleted: 1, RoleChanges: 1}
	if total != wantTotal {
		t.Errorf("tenant counts = %+v, want %+v", total, wantTotal)
	}
	for m, want := range map[int]projections.Gauges{0: {}, 4: {Databases: 2, StorageBytes: 1000}, 30: {Databases: 1, StorageBytes: 1000}, 200: {Databases: 1, StorageBytes: 5000}} {
		if g, err := views.MetricsGaugesAt(ctx, projections.TenantScope(tenant), at(m)); err != nil || g != want {
			t.Errorf("gauges at minute %d = %+v, %v; want %+v", m, g, err, want)
		}
	}
	for _, id := range []domain.TenantID{tenant, ""} {
		if g, err := views.MetricsTotals(ctx, id); err != nil || g != (projections.Gauges{Databases: 1, StorageBytes: 5000}) {
			t.Errorf("totals of %q = %+v, %v", id, g, err)
		}
	}

	// The cut drops the minutes before the second hour and keeps the hours; a late failure for a
	// cut minute counts in its hour only.
	f.appendAt(t, at(100), domain.MetricsRetentionStream, domain.MetricsPruned{PerformanceBefore: at(60), ActivityBefore: at(0), DailyBefore: at(0), At: at(100)})
	last = f.appendAt(t, at(30), "user-"+string(user), domain.UserLoginFailed{At: at(30), Reason: "password"})
	wait(t, r, last.LastPosition, "metrics")
	if minutes, err := views.MetricsBuckets(ctx, projections.TenantScope(tenant), domain.GrainMinute, at(0), at(120)); err != nil || len(minutes) != 1 || !minutes[0].At.Equal(at(61)) {
		t.Errorf("minutes after the cut: %+v, %v; want the one at minute 61", minutes, err)
	}
	hours, err := views.MetricsBuckets(ctx, projections.TenantScope(tenant), domain.GrainHour, at(0), at(120))
	if err != nil || len(hours) != 2 || hours[0].LoginFailures != 3 {
		t.Errorf("hours after the cut: %+v, %v; want two, the first with 3 failed sign-ins", hours, err)
	}
	// A cut inside an hour (domain.MetricsCut's are on whole hours) drops that hour's minutes
	// before it only.
	f.appendAt(t, at(110), "user-"+string(user), domain.UserLoginFailed{At: at(110), Reason: "password"})
	last = f.appendAt(t, at(111), domain.MetricsRetentionStream, domain.MetricsPruned{PerformanceBefore: at(90), ActivityBefore: at(0), DailyBefore: at(0), At: at(111)})
	wait(t, r, last.LastPosition, "metrics")
	if minutes, err := views.MetricsBuckets(ctx, projections.TenantScope(tenant), domain.GrainMinute, at(0), at(120)); err != nil || len(minutes) != 1 || !minutes[0].At.Equal(at(110)) {
		t.Errorf("minutes after a cut at minute 90: %+v, %v; want the one at minute 110", minutes, err)
	}
	checkReplay(t, f, r, metrics, metricsTables)
}
