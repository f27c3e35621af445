package projections_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

// The export carries the sampled load, as the dashboard does: the platform's and each tenant's
// rows have the bucket's peak where a sample fell in it, a bucket with a sample but no event is a
// row of its own (zero counts), and the rows keep the export's order.
func TestMetricsExportCarriesTheLoad(t *testing.T) {
	f := newIdentityFixture(t)
	r := f.start(t, projections.NewMetrics(production), projections.NewMetricsLoad(production))
	views := projections.NewViews(f.db)
	ctx := context.Background()
	// Tenant ids in a known order: the platform export lists the tenants by id.
	tenant, other := domain.TenantID("00000000-0000-4000-8000-00000000000a"), domain.TenantID("00000000-0000-4000-8000-00000000000b")
	user, db := domain.UserID(newID()), domain.DatabaseID(newID())
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	ran := func(m int) {
		recordQueries(t, f, domain.QueryExecuted{QueryID: newID(), TenantID: tenant, UserID: user, DatabaseID: db, SQL: "SELECT 1",
			Fingerprint: "SELECT ?", StatementType: "read", Status: domain.QuerySucceeded, ExecutionMS: 2, At: at(m)})
	}
	sample := func(m int, of domain.TenantID, running, open, inUse int64) int64 {
		return f.appendAt(t, at(m+1), domain.LoadStream(of), domain.TenantLoadSampled{TenantID: of, ProcessID: "p1",
			Minute: at(m), PeakRunning: running, PoolOpen: open, PoolInUse: inUse, At: at(m + 1)}).LastPosition
	}
	ran(0)
	sample(0, tenant, 2, 3, 1)
	sample(1, tenant, 1, 1, 1) // no query in minute 1
	ran(2)
	last := sample(5, other, 1, 1, 0)
	waitFor(t, r, last, "metrics", "metrics_load")

	export := func(of domain.TenantID) string {
		var out []string
		err := views.ExportMetrics(ctx, of, domain.GrainMinute, at(0), at(10), func(row projections.MetricsRow) error {
			name := map[domain.TenantID]string{"": "-", tenant: "T", other: "O"}[row.TenantID]
			if row.Subject != "" {
				name += "/" + row.Subject[:4]
			}
			load := "-"
			if row.Load != nil {
				load = fmt.Sprintf("%d/%d/%d", row.Load.Running, row.Load.PoolOpen, row.Load.PoolInUse)
			}
			out = append(out, fmt.Sprintf("%s %s m%d q%d %s", row.Scope, name, int(row.At.Sub(t0)/time.Minute), row.Queries, load))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, "\n")
	}
	u := string(user[:4])
	if got, want := export(tenant), strings.Join([]string{
		"t T m0 q1 2/3/1", "t T m1 q0 1/1/1", "t T m2 q1 -",
		"u T/" + u + " m0 q1 -", "u T/" + u + " m2 q1 -",
	}, "\n"); got != want {
		t.Errorf("the tenant's export:\n%s\nwant:\n%s", got, want)
	}
	if got, want := export(""), strings.Join([]string{
		"p - m0 q1 2/3/1", "p - m1 q0 1/1/1", "p - m2 q1 -", "p - m5 q0 2/2/1",
		"t T m0 q1 2/3/1", "t T m1 q0 1/1/1", "t T m2 q1 -",
		"t O m5 q0 1/1/0",
	}, "\n"); got != want {
		t.Errorf("the platform's export:\n%s\nwant:\n%s", got, want)
	}
}
