package projections_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

// with is the columns of base and more together.
func with(base, more row) row {
	out := row{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

// settingsJSON reads a settings column back as the domain type it was written from.
func settingsJSON(t *testing.T, s string) domain.TenantSettings {
	t.Helper()
	var out domain.TenantSettings
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("settings %q: %v", s, err)
	}
	return out
}

func TestTenantsFollowPlansSettingsAndMembers(t *testing.T) {
	f := newIdentityFixture(t)
	tenants := projections.NewTenants(production)
	r := f.start(t, tenants)
	free, _ := domain.PlanByID(domain.PlanFree)
	pro, _ := domain.PlanByID(domain.PlanPro)
	owner, dev, other := domain.UserID(newID()), domain.UserID(newID()), domain.UserID(newID())
	acmeID, orphanID := domain.TenantID(newID()), domain.TenantID(newID())

	// Acme is created by its owner: created, then the owner's membership as tenant admin.
	acme := domain.CreateTenant(acmeID, "Acme Corp", "acme", free, owner, t0.Add(-time.Second))
	f.appendAt(t, t0, acmeID.Stream(), acme.PendingEvents()...)
	// A super admin creates one for someone still to be invited: no creator, no member.
	orphan := domain.CreateTenant(orphanID, "Orphan", "orphan", pro, "", t0)
	last := f.appendAt(t, t0.Add(time.Second), orphanID.Stream(), orphan.PendingEvents()...)
	wait(t, r, last.LastPosition, "tenants")
	defaults := domain.DefaultSettings(free.Limits)
	rows, _ := query(t, f.db, `SELECT settings FROM tenants WHERE tenant_id = ?`, string(acmeID))
	if got := settingsJSON(t, rows[0]["settings"]); got != defaults {
		t.Fatalf("settings = %+v, want the defaults %+v", got, defaults)
	}
	defaultsText := rows[0]["settings"]
	assertRow(t, f.db, "tenants", "tenant_id", string(acmeID), row{
		"tenant_id": string(acmeID), "slug": "acme", "name": "Acme Corp", "plan": "free", "settings": defaultsText,
		"created_by": string(owner), "created_at": ts(t0), "updated_at": ts(t0), "version": "2",
	})
	assertRow(t, f.db, "tenants", "tenant_id", string(orphanID), row{
		"tenant_id": string(orphanID), "slug": "orphan", "name": "Orphan", "plan": "pro", "settings": defaultsText,
		"created_by": "NULL", "created_at": ts(t0.Add(time.Second)), "updated_at": ts(t0.Add(time.Second)), "version": "1",
	})
	memberships, _ := query(t, f.db, `SELECT * FROM memberships ORDER BY tenant_id, user_id`)
	if len(memberships) != 1 {
		t.Fatalf("memberships = %v, want only the owner's", memberships)
	}

	f.appendAt(t, t0.Add(time.Minute), acmeID.Stream(), domain.TenantMemberAdded{UserID: dev, Role: domain.RoleTenantAdmin, At: t0.Add(time.Minute)})
	f.appendAt(t, t0.Add(2*time.Minute), orphanID.Stream(), domain.TenantMemberAdded{UserID: dev, Role: domain.RoleViewer, At: t0.Add(2 * time.Minute)})
	f.appendAt(t, t0.Add(3*time.Minute), acmeID.Stream(), domain.TenantMemberRoleChanged{UserID: dev, From: domain.RoleTenantAdmin, To: domain.RoleDeveloper})
	tuned := defaults
	tuned.QueryTimeoutS, tuned.AllowProcedures = 10, true
	f.appendAt(t, t0.Add(4*time.Minute), acmeID.Stream(), domain.TenantSettingsChanged{Settings: tuned})
	// A role change for a non-member touches no membership (and must not fail).
	f.appendAt(t, t0.Add(5*time.Minute), acmeID.Stream(), domain.TenantMemberRoleChanged{UserID: other, From: domain.RoleViewer, To: domain.RoleViewer})
	upgraded := tuned
	upgraded.RowLimit = 50_000
	last = f.appendAt(t, t0.Add(6*time.Minute), acmeID.Stream(), domain.TenantPlanChanged{From: domain.PlanFree, To: domain.PlanPro, Settings: upgraded})
	wait(t, r, last.LastPosition, "tenants")

	rows, _ = query(t, f.db, `SELECT settings FROM tenants WHERE tenant_id = ?`, string(acmeID))
	if got := settingsJSON(t, rows[0]["settings"]); got != upgraded {
		t.Fatalf("settings = %+v, want %+v", got, upgraded)
	}
	assertRow(t, f.db, "tenants", "tenant_id", string(acmeID), row{
		"tenant_id": string(acmeID), "slug": "acme", "name": "Acme Corp", "plan": "pro", "settings": rows[0]["settings"],
		"created_by": string(owner), "created_at": ts(t0), "updated_at": ts(t0.Add(6 * time.Minute)), "version": "7",
	})
	assertRow(t, f.db, "tenants", "tenant_id", string(orphanID), row{
		"tenant_id": string(orphanID), "slug": "orphan", "name": "Orphan", "plan": "pro", "settings": defaultsText,
		"created_by": "NULL", "created_at": ts(t0.Add(time.Second)), "updated_at": ts(t0.Add(2 * time.Minute)), "version": "2",
	})
	memberships, _ = query(t, f.db, `SELECT tenant_id, user_id, role, joined_at FROM memberships WHERE user_id = ? ORDER BY joined_at`, string(dev))
	want := []row{
		{"tenant_id": string(acmeID), "user_id": string(dev), "role": "developer", "joined_at": ts(t0.Add(time.Minute))},
		{"tenant_id": string(orphanID), "user_id": string(dev), "role": "viewer", "joined_at": ts(t0.Add(2 * time.Minute))},
	}
	if len(memberships) != len(want) {
		t.Fatalf("memberships of the developer = %v, want %v", memberships, want)
	}
	for i := range want {
		for c, w := range want[i] {
			if memberships[i][c] != w {
				t.Errorf("membership %d: %s = %q, want %q", i, c, memberships[i][c], w)
			}
		}
	}
	active := row{"status": "active", "deactivated_at": "NULL", "deactivation_type": "NULL", "deactivation_reason": "NULL",
		"reactivate_at": "NULL", "grace_until": "NULL"}
	assertRow(t, f.db, "memberships", "user_id", string(owner), with(active, row{
		"tenant_id": string(acmeID), "user_id": string(owner), "role": "tenant_admin", "joined_at": ts(t0.Add(-time.Second)),
	}))
	if n, _ := query(t, f.db, `SELECT 1 FROM memberships WHERE user_id = ?`, string(other)); len(n) != 0 {
		t.Fatal("a role change made a non-member a member")
	}

	// The developer's lifecycle in Orphan: deactivated until a date, reactivated, deactivated for
	// good, closed.
	back, grace := t0.Add(time.Hour), t0.Add(48*time.Hour)
	f.appendAt(t, t0.Add(7*time.Minute), orphanID.Stream(), domain.TenantMemberDeactivated{UserID: dev, Role: domain.RoleViewer,
		Reason: "inactivity", Type: domain.DeactivationTemporary, ReactivateAt: &back, Resources: domain.ResourcesArchive, At: t0.Add(7 * time.Minute)})
	wait(t, r, f.appendAt(t, t0.Add(8*time.Minute), acmeID.Stream(), domain.TenantMemberDeactivated{UserID: dev, Role: domain.RoleDeveloper,
		Reason: "departure", Type: domain.DeactivationPermanent, GraceUntil: &grace, Resources: domain.ResourcesDelete, At: t0.Add(8 * time.Minute)}).LastPosition, "tenants")
	assertRow(t, f.db, "memberships", "CONCAT(tenant_id, '/', user_id)", string(orphanID)+"/"+string(dev), row{
		"tenant_id": string(orphanID), "user_id": string(dev), "role": "viewer", "joined_at": ts(t0.Add(2 * time.Minute)),
		"status": "deactivated", "deactivated_at": ts(t0.Add(7 * time.Minute)), "deactivation_type": "temporary",
		"deactivation_reason": "inactivity", "reactivate_at": ts(back), "grace_until": "NULL",
	})
	f.appendAt(t, t0.Add(9*time.Minute), orphanID.Stream(), domain.TenantMemberReactivated{UserID: dev, How: domain.ReactivatedOnSchedule, At: t0.Add(9 * time.Minute)})
	wait(t, r, f.appendAt(t, t0.Add(10*time.Minute), acmeID.Stream(), domain.TenantMembershipClosed{UserID: dev, At: t0.Add(10 * time.Minute)}).LastPosition, "tenants")
	assertRow(t, f.db, "memberships", "user_id", string(dev), with(active, row{
		"tenant_id": string(orphanID), "user_id": string(dev), "role": "viewer", "joined_at": ts(t0.Add(2 * time.Minute)),
	}))

	t.Run("rebuild and redelivery change nothing", func(t *testing.T) {
		checkReplay(t, f, r, tenants, map[string]string{"tenants": "tenant_id", "memberships": "tenant_id, user_id"})
	})
}
