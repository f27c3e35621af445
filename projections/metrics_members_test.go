package projections_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

// A member whose membership closed (left, or removed for good) no longer counts in the tenant: their
// failed sign-ins and lockouts count in the platform and their other tenants only, until a new
// membership in the tenant; a rebuild, which applies it all in one batch, agrees.
func TestMetricsClosedMembershipStopsCounting(t *testing.T) {
	f := newIdentityFixture(t)
	metrics := projections.NewMetrics(production)
	r := f.start(t, metrics)
	views := projections.NewViews(f.db)
	ctx := context.Background()
	left, stays := domain.TenantID(newID()), domain.TenantID(newID())
	user := domain.UserID(newID())
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	failed := func(m int) {
		f.appendAt(t, at(m), "user-"+string(user), domain.UserLoginFailed{At: at(m), Reason: "password"})
	}
	members := func() string {
		var got []string
		rows, err := f.db.QueryContext(ctx, `SELECT tenant_id FROM metrics_members WHERE user_id = ? ORDER BY tenant_id`, user)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var tenant string
			if err := rows.Scan(&tenant); err != nil {
				t.Fatal(err)
			}
			got = append(got, tenant)
		}
		return fmt.Sprint(got)
	}
	sorted := func(ids ...domain.TenantID) string {
		if ids[0] > ids[1] {
			ids[0], ids[1] = ids[1], ids[0]
		}
		return fmt.Sprint(ids)
	}

	for _, tenant := range []domain.TenantID{left, stays} {
		f.appendAt(t, at(0), "tenant-"+string(tenant), domain.TenantMemberAdded{UserID: user, Role: domain.RoleDeveloper, At: at(0)})
	}
	failed(1)
	last := f.appendAt(t, at(2), "tenant-"+string(left), domain.TenantMembershipClosed{UserID: user, At: at(2)})
	wait(t, r, last.LastPosition, "metrics")
	if got, want := members(), fmt.Sprint([]domain.TenantID{stays}); got != want {
		t.Errorf("memberships after the close = %s, want %s", got, want)
	}
	failed(3)
	f.appendAt(t, at(3), "user-"+string(user), domain.UserLocked{Until: at(18)})
	f.appendAt(t, at(4), "tenant-"+string(left), domain.TenantMemberAdded{UserID: user, Role: domain.RoleViewer, At: at(4)})
	failed(5)
	last = f.appendAt(t, at(6), "tenant-"+string(stays), domain.TenantMemberRoleChanged{UserID: user, From: domain.RoleDeveloper, To: domain.RoleViewer})
	wait(t, r, last.LastPosition, "metrics")
	if got, want := members(), sorted(left, stays); got != want {
		t.Errorf("memberships after joining again = %s, want %s", got, want)
	}

	byMinute := func(scope projections.MetricsScope) string {
		buckets, err := views.MetricsBuckets(ctx, scope, domain.GrainMinute, at(0), at(10))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range buckets {
			if b.LoginFailures > 0 || b.Lockouts > 0 {
				out = append(out, fmt.Sprintf("%d:%d/%d", int(b.At.Sub(t0)/time.Minute), b.LoginFailures, b.Lockouts))
			}
		}
		return fmt.Sprint(out)
	}
	for _, c := range []struct {
		scope projections.MetricsScope
		want  string
	}{
		{projections.TenantScope(left), "[1:1/0 5:1/0]"}, // nothing while they were not a member
		{projections.UserScope(left, user), "[1:1/0 5:1/0]"},
		{projections.TenantScope(stays), "[1:1/0 3:1/1 5:1/0]"},
		{projections.UserScope(stays, user), "[1:1/0 3:1/1 5:1/0]"},
		{projections.PlatformScope(), "[1:1/0 3:1/1 5:1/0]"},
	} {
		if got := byMinute(c.scope); got != c.want {
			t.Errorf("%+v: failed sign-ins/lockouts by minute = %s, want %s", c.scope, got, c.want)
		}
	}
	checkReplay(t, f, r, metrics, metricsTables)
}
