package commands_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// TestSlowSchemaTemplateDelaysOnlyItsTenant: tenant A's schema template waits on a lock the test
// holds over a connection of its own; meanwhile the provisioning pool provisions tenant B's new
// database and B starts another one, so A's tenant SQL holds no worker and no lock that others
// need. Released, A's template finishes and A's database runs.
func TestSlowSchemaTemplateDelaysOnlyItsTenant(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	ownerA, tenantA := f.owner(t, "slow-tenant@example.com")
	ownerB, tenantB := f.owner(t, "other-tenant@example.com")
	if _, err := f.tenants.ChangeSettings(ctx(t), tenantA, commands.SettingsPatch{QueryTimeoutS: ptr(int64(30))}, meta); err != nil {
		t.Fatal(err)
	}
	stopped := f.running(t, tenantB, ownerB, "kept", "")
	if _, err := f.dbs.Stop(ctx(t), tenantB, stopped.ID(), "", meta); err != nil {
		t.Fatal(err)
	}

	slow, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenantA, Owner: ownerA, Role: domain.RoleTenantAdmin,
		Name: "slow", Template: domain.TemplateSchema, SchemaSQL: "ALTER TABLE t ADD COLUMN b INT", Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	// The table the template alters exists before provisioning (CREATE DATABASE IF NOT EXISTS keeps
	// it), and the test's open transaction holds its metadata lock: the ALTER waits for it.
	schema := sandbox.SchemaName(f.prefix, string(slow.ID()))
	for _, stmt := range []string{"CREATE DATABASE `" + schema + "`", "CREATE TABLE `" + schema + "`.t (a INT)"} {
		if _, err := f.admin.ExecContext(ctx(t), stmt); err != nil {
			t.Fatal(err)
		}
	}
	holder, err := f.admin.Conn(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	for _, stmt := range []string{"BEGIN", "INSERT INTO `" + schema + "`.t VALUES (1)"} {
		if _, err := holder.ExecContext(ctx(t), stmt); err != nil {
			t.Fatal(err)
		}
	}
	released := false
	release := func() {
		if !released {
			released = true
			if _, err := holder.ExecContext(context.Background(), "COMMIT"); err != nil {
				t.Error(err)
			}
		}
	}
	defer release()

	pool, stopPool := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	workers.Go(func() {
		f.dbs.RunProvisioning(pool, 2, func() <-chan struct{} { return f.runtime.Advanced("databases") }, time.Second)
	})
	defer func() { stopPool(); workers.Wait() }()

	rw, _ := sandbox.AccountNames(f.prefix, string(slow.ID()))
	f.waitForCondition(t, "A's template waiting for the test's lock", func() bool {
		return f.scalar(t, `SELECT COUNT(*) FROM information_schema.PROCESSLIST
			WHERE USER = ? AND STATE LIKE 'Waiting for table metadata lock%'`, rw) == 1
	})

	other := f.create(t, tenantB, ownerB, "fresh", "")
	f.waitForState(t, tenantB, other.ID(), domain.StateRunning)
	if _, err := f.dbs.Start(ctx(t), tenantB, stopped.ID(), meta); err != nil {
		t.Fatalf("start of tenant B's database while A's template runs: %v", err)
	}
	if v := f.view(t, tenantB, stopped.ID()); v.State != domain.StateRunning {
		t.Fatalf("tenant B's started database is %s", v.State)
	}
	if v := f.view(t, tenantA, slow.ID()); v.State != domain.StateProvisioning {
		t.Fatalf("A's database is %s while its template waits, want provisioning", v.State)
	}

	release()
	f.waitForState(t, tenantA, slow.ID(), domain.StateRunning)
	if n := f.scalar(t, `SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't' AND COLUMN_NAME = 'b'`, schema); n != 1 {
		t.Error("A's template did not add its column")
	}
}

// TestProvisioningLeaseOfACrashedWorker: a tenant's provisioning taken by a worker that died
// (its lease left in work_leases) waits until the lease expires, then the next worker does it.
func TestProvisioningLeaseOfACrashedWorker(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "crashed-worker@example.com")
	d := f.create(t, tenant, owner, "orphan", "")
	now := f.clock.Now().UTC()
	if _, err := f.db.ExecContext(ctx(t), `INSERT INTO work_leases (lease_key, item, owner, token, taken_at, expires_at)
		VALUES (?, ?, 'dead-process', 'dead-token', ?, ?)`, "provision:"+string(tenant), string(d.ID()), now, now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := f.provisionAll(t); n != 0 {
		t.Fatalf("ProvisionDue handled %d while another worker's lease holds the tenant, want 0", n)
	}
	f.clock.Advance(31 * time.Second)
	if n := f.provisionAll(t); n != 1 {
		t.Fatalf("ProvisionDue handled %d after the lease expired, want 1", n)
	}
	if v := f.view(t, tenant, d.ID()); v.State != domain.StateRunning {
		t.Fatalf("state %s (%s), want running", v.State, v.FailureReason)
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM work_leases`); n != 0 {
		t.Errorf("%d work leases left after provisioning, want 0", n)
	}
}

// waitForState waits until the read model shows database id in state, each look after the
// databases projector committed.
func (f *dbFixture) waitForState(t *testing.T, tenant domain.TenantID, id domain.DatabaseID, state domain.DatabaseState) {
	t.Helper()
	c := ctx(t)
	for {
		advanced := f.runtime.Advanced("databases")
		v, err := f.views.Database(c, tenant, id)
		if err == nil && v.State == state {
			return
		}
		select {
		case <-advanced:
		case <-c.Done():
			t.Fatalf("database %s never became %s (last %s, %q, %v)", id, state, v.State, v.FailureReason, err)
		}
	}
}

// waitForCondition looks at what cond sees on the servers until it holds: there is no event to
// wait for when a statement starts waiting on a server.
func (f *dbFixture) waitForCondition(t *testing.T, what string, cond func() bool) {
	t.Helper()
	c := ctx(t)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-c.Done():
			t.Fatalf("never saw %s", what)
		}
	}
}
