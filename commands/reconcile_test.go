package commands_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// recordOnly appends what change records on database id's stream, and acts on nothing: a process
// that recorded its intent and died before acting on the server.
func (f *dbFixture) recordOnly(t *testing.T, tenant domain.TenantID, id domain.DatabaseID, change func(d *domain.Database) error) {
	t.Helper()
	d := f.load(t, tenant, id)
	if err := change(d); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Append(ctx(t), eventstore.Append{Streams: []eventstore.Stream{{ID: id.Stream(), Type: "database",
		ExpectedVersion: d.Version(), Events: d.PendingEvents()}}}); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
}

// inspect reads a database's accounts from the server.
func (f *dbFixture) inspect(t *testing.T, d *domain.Database) sandbox.State {
	t.Helper()
	server, err := f.fleet.Get(d.Requested().Server)
	if err != nil {
		t.Fatal(err)
	}
	st, err := server.Inspect(ctx(t), string(d.ID()), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestReconcilerRepairsWhatACrashLeft: a stop recorded by a process that died before acting keeps
// accepting logins until the reconciler runs, and none after; a lock set by a change that was never
// recorded is lifted; a start of a running database whose accounts stayed locked unlocks them; the
// schema and locked accounts a failed provisioning left are dropped. The repairs are counted.
func TestReconcilerRepairsWhatACrashLeft(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	reg := prometheus.NewRegistry()
	if err := f.dbs.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	owner, tenant := f.owner(t, "drift@example.com")
	d := f.running(t, tenant, owner, "drift", "")
	c := f.conn(t, tenant, d.ID())

	f.recordOnly(t, tenant, d.ID(), func(d *domain.Database) error { return d.Stop("manual", f.clock.Now()) })
	mustDial(t, c) // the drift the reconciler is for
	if n, err := f.dbs.ReconcileAll(ctx(t)); err != nil || n != 1 {
		t.Fatalf("ReconcileAll: %d repaired, %v; want 1", n, err)
	}
	if _, err := dial(t, c); errno(err) != errAccountLocked {
		t.Errorf("login to a stopped database after the reconciler: %v, want error %d", err, errAccountLocked)
	}
	if n, err := f.dbs.ReconcileAll(ctx(t)); err != nil || n != 0 {
		t.Errorf("second ReconcileAll: %d repaired, %v; want nothing", n, err)
	}

	f.recordOnly(t, tenant, d.ID(), func(d *domain.Database) error { return d.Start(f.clock.Now()) })
	if _, err := dial(t, c); errno(err) != errAccountLocked {
		t.Fatalf("before the start acted: %v, want locked", err)
	}
	// POST /start again: nothing to record, but the accounts are unlocked.
	if _, err := f.dbs.Start(ctx(t), tenant, d.ID(), meta); err != nil {
		t.Fatal(err)
	}
	mustDial(t, c)

	// A lock no event says (a change acted, then its process died before recording it).
	rw, ro := sandbox.AccountNames(f.prefix, string(d.ID()))
	if _, err := f.admin.ExecContext(ctx(t), "ALTER USER `"+rw+"`@`%`, `"+ro+"`@`%` ACCOUNT LOCK"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dbs.ReconcileAll(ctx(t)); err != nil {
		t.Fatal(err)
	}
	mustDial(t, c)

	// What a failed provisioning left: the schema and two locked accounts.
	failed := f.create(t, tenant, owner, "leftover", "")
	server, err := f.fleet.Get(failed.Requested().Server)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.Provision(ctx(t), sandbox.Spec{ID: string(failed.ID()), Charset: "utf8mb4", Collation: "utf8mb4_bin", MaxUserConnections: 1}); err != nil {
		t.Fatal(err)
	}
	if err := server.Lock(ctx(t), string(failed.ID())); err != nil {
		t.Fatal(err)
	}
	f.recordOnly(t, tenant, failed.ID(), func(d *domain.Database) error { return d.ProvisioningFailed("test", f.clock.Now()) })
	if _, err := f.dbs.ReconcileAll(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if f.schemaExists(t, failed.ID()) || f.accounts(t, failed.ID()) != 0 {
		t.Errorf("a failed database kept its schema (%v) or %d accounts", f.schemaExists(t, failed.ID()), f.accounts(t, failed.ID()))
	}

	repairs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, family := range repairs {
		for _, m := range family.GetMetric() {
			counted[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	for kind, want := range map[string]float64{sandbox.RepairLock: 1, sandbox.RepairUnlock: 2, sandbox.RepairLeftoverDropped: 1} {
		if counted[kind] != want {
			t.Errorf("repairs of kind %s counted %v, want %v (all: %v)", kind, counted[kind], want, counted)
		}
	}
}

// TestReconcilerFollowsPlanAndSettings: a plan change reaches every account's
// MAX_USER_CONNECTIONS, and allow_procedures decides whether the read-write account may create
// routines and triggers over a direct connection.
func TestReconcilerFollowsPlanAndSettings(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "plan@example.com")
	d := f.running(t, tenant, owner, "planned", "")
	st := f.inspect(t, d)
	if st.RW.MaxUserConnections != 10 || st.RO.MaxUserConnections != 10 {
		t.Fatalf("free plan accounts: %d/%d connections, want 10", st.RW.MaxUserConnections, st.RO.MaxUserConnections)
	}
	conn := mustDial(t, f.conn(t, tenant, d.ID()))
	if _, err := conn.ExecContext(ctx(t), "CREATE PROCEDURE p() SELECT 1"); errno(err) != 1044 && errno(err) != 1142 {
		t.Errorf("CREATE PROCEDURE while procedures are not allowed: %v, want access denied", err)
	}
	if _, err := conn.ExecContext(ctx(t), "CREATE TABLE t (x INT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx(t), "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.x = 1"); err == nil {
		t.Error("CREATE TRIGGER while procedures are not allowed worked")
	}

	if _, err := f.tenants.ChangePlan(ctx(t), tenant, domain.PlanEnterprise, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.tenants.ChangeSettings(ctx(t), tenant, commands.SettingsPatch{AllowProcedures: ptr(true)}, meta); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
	if _, err := f.dbs.ReconcileTenant(ctx(t), tenant); err != nil {
		t.Fatal(err)
	}
	st = f.inspect(t, d)
	if st.RW.MaxUserConnections != 1000 || st.RO.MaxUserConnections != 1000 {
		t.Errorf("enterprise plan accounts: %d/%d connections, want 1000", st.RW.MaxUserConnections, st.RO.MaxUserConnections)
	}
	conn = mustDial(t, f.conn(t, tenant, d.ID()))
	if _, err := conn.ExecContext(ctx(t), "CREATE PROCEDURE p() SELECT 1"); err != nil {
		t.Errorf("CREATE PROCEDURE once procedures are allowed: %v", err)
	}
}

// TestCredentialsOutliveNoGrant: a developer who rotated their database's credentials and was then
// demoted to viewer can no longer write through the read-write account directly; nor can a
// database's previous owner. Each rotation is recorded with its reason. A developer who does not
// own a database may not see its read-write credentials.
func TestCredentialsOutliveNoGrant(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	admin, tenant := f.owner(t, "admin@example.com")
	dev := f.member(t, tenant, admin, "dev@example.com")
	other := f.member(t, tenant, admin, "other@example.com")
	d := f.running(t, tenant, dev, "devs", "")
	if _, err := f.dbs.RotateCredentials(ctx(t), tenant, d.ID(), other, domain.RoleDeveloper, meta); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("rotation by a developer who does not own the database: %v, want ErrForbidden", err)
	}
	if _, err := f.dbs.RotateCredentials(ctx(t), tenant, d.ID(), dev, domain.RoleDeveloper, meta); err != nil {
		t.Fatal(err)
	}
	stolen := f.conn(t, tenant, d.ID())
	conn := mustDial(t, stolen)
	if _, err := conn.ExecContext(ctx(t), "CREATE TABLE t (x INT)"); err != nil {
		t.Fatal(err)
	}

	if _, err := f.identity.ChangeRole(ctx(t), tenant, admin, domain.RoleTenantAdmin, dev, "viewer", false, meta); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
	if _, err := f.dbs.ReconcileTenant(ctx(t), tenant); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx(t), "INSERT INTO t VALUES (1)"); err == nil {
		t.Error("the demoted developer's open connection still inserts")
	}
	if _, err := dial(t, stolen); errno(err) != errAccessDenied {
		t.Errorf("login with the demoted developer's password: %v, want error %d", err, errAccessDenied)
	}
	events := f.events(t, d.ID().Stream())
	if last, ok := events[len(events)-1].(domain.DatabaseCredentialsRotated); !ok || last.Reason != domain.CredentialsRoleChanged {
		t.Errorf("last event %#v, want a rotation for role_changed", events[len(events)-1])
	}
	mustDial(t, f.conn(t, tenant, d.ID())) // the new password works

	// The previous owner of a database given to someone else.
	e := f.running(t, tenant, other, "handed", "")
	previous := f.conn(t, tenant, e.ID())
	if _, err := f.dbs.ChangeOwner(ctx(t), tenant, e.ID(), admin, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, previous); errno(err) != errAccessDenied {
		t.Errorf("login with the previous owner's password: %v, want error %d", err, errAccessDenied)
	}
	rotations := 0
	for _, ev := range f.events(t, e.ID().Stream()) {
		if r, ok := ev.(domain.DatabaseCredentialsRotated); ok && r.Reason == domain.CredentialsOwnerChanged {
			rotations++
		}
	}
	if rotations != 1 {
		t.Errorf("%d rotations for owner_changed, want 1", rotations)
	}
	if n, err := f.dbs.ReconcileAll(ctx(t)); err != nil || n != 0 {
		t.Errorf("ReconcileAll after the rotations: %d repaired, %v; want nothing left", n, err)
	}
}
