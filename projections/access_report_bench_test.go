package projections_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/projections"
)

// BenchmarkAccessReport measures GET /access-report's reads for a database with 1,000 changes of
// access, in a tenant of 20 databases and 40 members (so every change of a role writes intervals
// of 20 databases, and the table holds about 20 times the rows the report reads): who could reach
// it at a moment in the middle of its history, the first page (500) of the review of the whole
// period, and every page of it. Also reports how fast the projector built the intervals.
func BenchmarkAccessReport(b *testing.B) {
	db := testdb.New(b)
	clk := &clock{now: t0}
	store := eventstore.New(db, production, eventstore.Options{Logger: quiet(), Clock: clk.Now})
	b.Cleanup(func() { store.Close() })
	ctx := context.Background()
	appendAt := func(at time.Time, stream string, events ...domain.Event) eventstore.Appended {
		clk.set(at)
		typ, _, _ := strings.Cut(stream, "-")
		res, err := store.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{{ID: stream, Type: typ, ExpectedVersion: eventstore.AnyVersion, Events: events}}})
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	enterprise, _ := domain.PlanByID(domain.PlanEnterprise)
	tenant, admin := domain.TenantID(newID()), domain.UserID(newID())
	appendAt(t0, tenant.Stream(), domain.CreateTenant(tenant, "Busy", "busy", enterprise, admin, t0).PendingEvents()...)
	var databases []domain.DatabaseID
	for i := range 20 {
		id := domain.DatabaseID(newID())
		databases = append(databases, id)
		appendAt(t0.Add(time.Duration(i)*time.Second), id.Stream(), domain.DatabaseRequested{DatabaseID: id, TenantID: tenant, Name: "db", OwnerID: admin})
	}
	members := make([]domain.UserID, 40)
	for i := range members {
		members[i] = domain.UserID(newID())
		appendAt(t0.Add(time.Minute), tenant.Stream(), domain.TenantMemberAdded{UserID: members[i], Role: domain.RoleViewer})
	}
	// 1,000 changes of access to each database: members promoted and demoted in turn.
	roles := map[domain.UserID]domain.Role{}
	var last eventstore.Appended
	for i := range 1000 {
		m := members[i%len(members)]
		from := roleOrViewer(roles[m])
		to := domain.RoleDeveloper
		if from == domain.RoleDeveloper {
			to = domain.RoleViewer
		}
		roles[m] = to
		last = appendAt(t0.Add(time.Hour+time.Duration(i)*time.Minute), tenant.Stream(), domain.TenantMemberRoleChanged{UserID: m, From: from, To: to})
	}
	built := time.Now()
	r, err := projections.New(db, store, projections.Options{Logger: quiet(), Poll: 20 * time.Millisecond}, projections.NewAccessReport(production), projections.NewUsers(production))
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := r.WaitFor(waitCtx, last.LastPosition, "access_report"); err != nil {
		b.Fatal(err)
	}
	buildTime := time.Since(built)
	var rows int
	if err := db.QueryRow(`SELECT COUNT(*) FROM access_intervals`).Scan(&rows); err != nil {
		b.Fatal(err)
	}
	views := projections.NewViews(db)
	target := databases[7]
	end := t0.Add(time.Hour + 1001*time.Minute)
	measure := func(b *testing.B, read func() int) {
		latencies := make([]time.Duration, 0, b.N)
		items := 0
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			items = read()
			latencies = append(latencies, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(latencies)
		b.ReportMetric(float64(rows), "intervals")
		b.ReportMetric(float64(last.LastPosition)/buildTime.Seconds(), "built-events/s")
		b.ReportMetric(float64(items), "items")
		b.ReportMetric(percentile(latencies, 0.50), "p50-ms")
		b.ReportMetric(percentile(latencies, 0.99), "p99-ms")
	}
	b.Run("at", func(b *testing.B) {
		measure(b, func() int {
			d, err := views.AccessDatabaseOf(ctx, tenant, target)
			if err != nil {
				b.Fatal(err)
			}
			holders, err := views.AccessAt(ctx, &d, t0.Add(time.Hour+500*time.Minute+30*time.Second))
			if err != nil {
				b.Fatal(err)
			}
			return len(holders)
		})
	})
	b.Run("review-first-page", func(b *testing.B) {
		measure(b, func() int {
			changes, _, err := views.AccessChanges(ctx, string(target), t0, end, "", 500)
			if err != nil {
				b.Fatal(err)
			}
			return len(changes)
		})
	})
	b.Run("review-all-pages", func(b *testing.B) {
		measure(b, func() int {
			n, cursor := 0, ""
			for {
				changes, next, err := views.AccessChanges(ctx, string(target), t0, end, cursor, 500)
				if err != nil {
					b.Fatal(err)
				}
				n += len(changes)
				if next == "" {
					return n
				}
				cursor = next
			}
		})
	})
}

// roleOrViewer is a member's role in the benchmark, viewer until changed.
func roleOrViewer(r domain.Role) domain.Role {
	if r == "" {
		return domain.RoleViewer
	}
	return r
}
