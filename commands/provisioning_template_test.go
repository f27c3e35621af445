package commands_test

import (
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
)

// TestSchemaTemplateStopsAtTheStatementTimeout: a template statement that would run a minute is
// stopped at the tenant's statement timeout (1 s here) on the server, and the database ends failed
// with a reason that says so, its schema and accounts gone.
func TestSchemaTemplateStopsAtTheStatementTimeout(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "slow@example.com")
	if _, err := f.tenants.ChangeSettings(ctx(t), tenant, commands.SettingsPatch{QueryTimeoutS: ptr(int64(1))}, meta); err != nil {
		t.Fatal(err)
	}
	d, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: owner, Role: domain.RoleTenantAdmin,
		Name: "slow", Template: domain.TemplateSchema, SchemaSQL: "CREATE TABLE t AS SELECT SLEEP(60) AS x", Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	f.provisionAll(t)
	v := f.view(t, tenant, d.ID())
	if v.State != domain.StateFailed || !strings.Contains(v.FailureReason, "statement timeout") {
		t.Errorf("state %s, reason %q; want failed at the statement timeout", v.State, v.FailureReason)
	}
	if f.schemaExists(t, d.ID()) || f.accounts(t, d.ID()) != 0 {
		t.Error("the failed template's schema or accounts were kept")
	}
}

// TestSchemaTemplateStopsAtTheStorageQuota: a template is held to the tenant's storage like the
// query API's writes: with 40,000 bytes of the free plan left, its third empty table (16 KiB
// each on InnoDB) takes the tenant past the plan, and the database ends failed, nothing kept.
func TestSchemaTemplateStopsAtTheStorageQuota(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "full@example.com")
	full := f.running(t, tenant, owner, "full", domain.TemplateBlank)
	free, err := domain.PlanByID(domain.PlanFree)
	if err != nil {
		t.Fatal(err)
	}
	f.measure(t, tenant, full.ID(), free.Limits.MaxStorageBytes-40_000)
	d, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: owner, Role: domain.RoleTenantAdmin,
		Name: "big", Template: domain.TemplateSchema, Meta: meta,
		SchemaSQL: "CREATE TABLE a (x INT); CREATE TABLE b (x INT); CREATE TABLE c (x INT); CREATE TABLE d (x INT); CREATE TABLE e (x INT)"})
	if err != nil {
		t.Fatal(err)
	}
	f.provisionAll(t)
	v := f.view(t, tenant, d.ID())
	if v.State != domain.StateFailed || !strings.Contains(v.FailureReason, "past its plan's") {
		t.Errorf("state %s, reason %q; want failed at the storage quota", v.State, v.FailureReason)
	}
	if f.schemaExists(t, d.ID()) || f.accounts(t, d.ID()) != 0 {
		t.Error("the failed template's schema or accounts were kept")
	}
}
