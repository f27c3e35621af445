package projections_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// metricsMember is a developer of a tenant, with the tenant's databases.
type metricsMember struct {
	tenant domain.TenantID
	user   domain.UserID
	dbs    []domain.DatabaseID
}

// addMetricsMembers records two tenants of perTenant developers (added at t0) and two databases
// each, requested at dbAt and owned by the tenant's first two members.
func addMetricsMembers(t *testing.T, f *identityFixture, perTenant int, dbAt time.Time) []metricsMember {
	var members []metricsMember
	for range 2 {
		tenant := domain.TenantID(newID())
		dbs := []domain.DatabaseID{domain.DatabaseID(newID()), domain.DatabaseID(newID())}
		for i := range perTenant {
			m := metricsMember{tenant, domain.UserID(newID()), dbs}
			members = append(members, m)
			f.appendAt(t, t0, "tenant-"+string(tenant), domain.TenantMemberAdded{UserID: m.user, Role: domain.RoleDeveloper, At: t0})
			if i < len(dbs) {
				f.appendAt(t, dbAt, "database-"+string(dbs[i]),
					domain.DatabaseRequested{DatabaseID: dbs[i], TenantID: tenant, Name: fmt.Sprint("db", i), OwnerID: m.user, At: dbAt})
			}
		}
	}
	return members
}

// randomQuery is a read of a random member on one of their tenant's databases at at: one of
// patterns statements, a status of statuses, a log-normal execution time.
func randomQuery(rng *rand.Rand, members []metricsMember, patterns int, statuses []domain.QueryStatus, at time.Time) (metricsMember, domain.QueryExecuted) {
	m := members[rng.IntN(len(members))]
	fp := fmt.Sprintf("SELECT * FROM t%d WHERE id = ?", rng.IntN(patterns))
	return m, domain.QueryExecuted{QueryID: newID(), TenantID: m.tenant, UserID: m.user, DatabaseID: m.dbs[rng.IntN(len(m.dbs))],
		SQL: fp, Fingerprint: fp, StatementType: "read", Status: statuses[rng.IntN(len(statuses))],
		ExecutionMS: math.Round(math.Exp(rng.NormFloat64()+2)*1000) / 1000, RowCount: int64(rng.IntN(50)), At: at}
}
