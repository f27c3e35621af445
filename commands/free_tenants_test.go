package commands_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
)

// A person creates at most FreeTenantsPerUser free-plan tenants, even all at once: each holds a
// claimed slot, so eight concurrent creates with a limit of three make exactly three tenants.
// Other plans, tenants a super admin creates and other people are not counted against them.
func TestFreeTenantsPerUser(t *testing.T) {
	t.Parallel()
	if n := commands.NewTenants(nil, nil, nil).FreeTenantsPerUser; n != 3 {
		t.Errorf("default FreeTenantsPerUser = %d, want 3", n)
	}
	f := newFixture(t)
	f.tenants.FreeTenantsPerUser = 3
	founder := f.user(t, "serial.founder@example.com")
	create := func(name string, plan domain.PlanID, creator domain.UserID) error {
		_, err := f.tenants.CreateTenant(ctx(t), commands.CreateTenant{Name: name, Plan: plan, Creator: creator, Meta: meta})
		return err
	}
	errs := race(8, func(i int) error { return create(fmt.Sprint("Free ", i), domain.PlanFree, founder) })
	created := 0
	for i, err := range errs {
		var quota *domain.QuotaExceededError
		switch {
		case err == nil:
			created++
		case errors.As(err, &quota) && quota.Resource == "free_tenants" && quota.Used == 3 && quota.Limit == 3:
		default:
			t.Errorf("#%d: %v; want success or quota_exceeded free_tenants 3 of 3", i, err)
		}
	}
	if created != 3 {
		t.Errorf("%d of 8 concurrent free tenants created, want 3", created)
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE event_type = 'tenant.created.v1' AND JSON_VALUE(payload, '$.created_by') = ?`, string(founder)); n != 3 {
		t.Errorf("%d tenant.created events by the founder, want 3", n)
	}
	if used, limit, err := f.tenants.FreeTenants(ctx(t), founder); used != 3 || limit != 3 || err != nil {
		t.Errorf("FreeTenants = %d of %d, %v; want 3 of 3", used, limit, err)
	}
	var quota *domain.QuotaExceededError
	if err := create("Fourth", domain.PlanFree, founder); !errors.As(err, &quota) || quota.Resource != domain.ResourceFreeTenants {
		t.Errorf("a fourth free tenant: %v; want quota_exceeded", err)
	}
	if err := create("Paid", domain.PlanPro, founder); err != nil {
		t.Errorf("a pro tenant past the free limit: %v", err)
	}
	if err := create("Platform's", domain.PlanFree, ""); err != nil {
		t.Errorf("a free tenant without a creator (POST /admin/tenants): %v", err)
	}
	other := f.user(t, "someone.else@example.com")
	if err := create("Other's", domain.PlanFree, other); err != nil {
		t.Errorf("another person's first free tenant: %v", err)
	}
	// The limit is the configuration's: raising it makes room.
	f.tenants.FreeTenantsPerUser = 4
	if err := create("Fourth", domain.PlanFree, founder); err != nil {
		t.Errorf("a fourth free tenant with a limit of 4: %v", err)
	}
}
