package commands_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// Tenant databases on RDS-B (the test server), driven through the command handlers with the
// reactors (ProvisionDue, PurgeDue, StopIdle, SampleStorage) called directly on a settable clock.

// MariaDB error numbers the tests expect from tenant connections.
const (
	errAccessDenied  = 1045 // wrong password
	errAccountLocked = 4151 // ACCOUNT LOCK (MySQL: 3118)
)

func TestDatabaseQuotaRace(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "quota@example.com")
	c := ctx(t)
	errs := race(10, func(i int) error {
		_, _, err := f.dbs.CreateDatabase(c, commands.CreateDatabase{Tenant: tenant, Owner: owner, Name: fmt.Sprintf("racer_%d", i), Meta: meta})
		return err
	})
	created, exceeded := 0, 0
	for i, err := range errs {
		var quota *domain.QuotaExceededError
		switch {
		case err == nil:
			created++
		case errors.As(err, &quota):
			exceeded++
			if quota.Resource != "databases" || quota.Limit != 5 || quota.Used != 5 {
				t.Errorf("create #%d: %+v, want databases 5 of 5", i, quota)
			}
		default:
			t.Errorf("create #%d: %v, want success or *QuotaExceededError", i, err)
		}
	}
	if created != 5 || exceeded != 5 {
		t.Fatalf("%d created, %d over quota, want 5 and 5:%s", created, exceeded, describe(errs))
	}
	types, _ := f.stream(t, tenant.QuotaStream())
	if n := count(types, domain.QuotaDatabaseReserved{}.EventType()); n != 5 || len(types) != 5 {
		t.Errorf("quota stream %v: %d reservations, want exactly 5", types, n)
	}
	if q := f.quota(t, tenant); q.Databases() != 5 || q.DatabasesOf(owner) != 5 {
		t.Errorf("quota counts %d databases (%d of the owner), want 5", q.Databases(), q.DatabasesOf(owner))
	}
	f.settle(t)
	if n := f.scalar(t, `SELECT COUNT(*) FROM database_list WHERE tenant_id = ? AND state = 'provisioning'`, tenant); n != 5 {
		t.Errorf("read model has %d databases provisioning, want 5", n)
	}
	if used, _, err := f.views.DatabaseUsage(ctx(t), tenant); err != nil || used != 5 {
		t.Errorf("DatabaseUsage = %d, %v; want 5", used, err)
	}
	// Provisioning them all makes five schemas, each with its two accounts.
	if n := f.provisionAll(t); n != 5 {
		t.Errorf("ProvisionDue handled %d, want 5", n)
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM database_list WHERE tenant_id = ? AND state = 'running'`, tenant); n != 5 {
		t.Errorf("%d databases running, want 5", n)
	}
}

func TestDatabaseProvisioning(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "prov@example.com")
	blank := f.create(t, tenant, owner, "app", "")
	sample := f.create(t, tenant, owner, "shop", domain.TemplateSample)
	if v := f.view(t, tenant, blank.ID()); v.State != domain.StateProvisioning {
		t.Fatalf("read model state %s before provisioning, want provisioning", v.State)
	}
	if n := f.provisionAll(t); n != 2 {
		t.Fatalf("ProvisionDue handled %d, want 2", n)
	}

	for _, d := range []*domain.Database{blank, sample} {
		v := f.view(t, tenant, d.ID())
		if v.State != domain.StateRunning || v.FailureReason != "" {
			t.Fatalf("%s: read model state %s (reason %q), want running", d.Name(), v.State, v.FailureReason)
		}
		if got := f.load(t, tenant, d.ID()).State(); got != domain.StateRunning {
			t.Errorf("%s: stream state %s, want running", d.Name(), got)
		}
		if v.Charset != "utf8mb4" || v.Collation == "" || v.Server != f.fleet.Servers()[0].Name() {
			t.Errorf("%s: charset %q collation %q server %q", d.Name(), v.Charset, v.Collation, v.Server)
		}
		if !f.schemaExists(t, d.ID()) || f.accounts(t, d.ID()) != 2 {
			t.Fatalf("%s: schema exists %v, %d accounts; want the schema and 2 accounts", d.Name(), f.schemaExists(t, d.ID()), f.accounts(t, d.ID()))
		}
	}

	t.Run("credentials work and see only their schema", func(t *testing.T) {
		c := f.conn(t, tenant, blank.ID())
		host, port := f.fleet.Servers()[0].Host()
		rw, _ := sandbox.AccountNames(f.prefix, string(blank.ID()))
		if c.Host != host || c.Port != port || c.Username != rw || c.Database != sandbox.SchemaName(f.prefix, string(blank.ID())) || len(c.Password) < 20 {
			t.Fatalf("connection details %+v", c)
		}
		if strings.Contains(c.Database, "app") || strings.Contains(c.Username, "app") {
			t.Errorf("physical names %q/%q derive from the user's name", c.Database, c.Username)
		}
		db := mustDial(t, c)
		if _, err := db.ExecContext(ctx(t), `CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)`); err != nil {
			t.Fatalf("the read-write account cannot create a table: %v", err)
		}
		if _, err := db.ExecContext(ctx(t), `INSERT INTO notes VALUES (1, 'hello')`); err != nil {
			t.Fatal(err)
		}
		rows, err := db.QueryContext(ctx(t), `SHOW DATABASES`)
		if err != nil {
			t.Fatal(err)
		}
		var schemas []string
		for rows.Next() {
			var s string
			rows.Scan(&s)
			schemas = append(schemas, s)
		}
		rows.Close()
		slices.Sort(schemas)
		if want := []string{"information_schema", c.Database}; !slices.Equal(schemas, want) {
			t.Errorf("SHOW DATABASES = %v, want %v", schemas, want)
		}
		other := sandbox.SchemaName(f.prefix, string(sample.ID()))
		for _, q := range []string{"SELECT COUNT(*) FROM `" + other + "`.orders", "SELECT COUNT(*) FROM mysql.user"} {
			var n int
			if err := db.QueryRowContext(ctx(t), q).Scan(&n); err == nil {
				t.Errorf("%s as the tenant account: %d, want refused", q, n)
			}
		}
		// A schema whose name matches the grant if '_' were a wildcard cannot be created.
		lookalike := strings.Replace(c.Database, "_", "x", 1)
		if _, err := db.ExecContext(ctx(t), "CREATE DATABASE `"+lookalike+"`"); err == nil {
			f.admin.Exec("DROP DATABASE `" + lookalike + "`")
			t.Errorf("the account could create schema %s", lookalike)
		}
		// The read-only account reads and cannot write.
		roPassword, err := f.vault.Get(ctx(t), "db:"+string(blank.ID())+":ro")
		if err != nil {
			t.Fatal(err)
		}
		_, roUser := sandbox.AccountNames(f.prefix, string(blank.ID()))
		ro := mustDial(t, commands.Connection{Host: c.Host, Port: c.Port, Database: c.Database, Username: roUser, Password: string(roPassword)})
		var body string
		if err := ro.QueryRowContext(ctx(t), `SELECT body FROM notes WHERE id = 1`).Scan(&body); err != nil || body != "hello" {
			t.Errorf("read-only read: %q, %v", body, err)
		}
		if _, err := ro.ExecContext(ctx(t), `INSERT INTO notes VALUES (2, 'no')`); err == nil {
			t.Error("the read-only account could insert")
		}
	})

	t.Run("sample template", func(t *testing.T) {
		db := mustDial(t, f.conn(t, tenant, sample.ID()))
		for table, want := range map[string]int{"orders": 300, "customers": 100, "products": 10} {
			var n int
			if err := db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n != want {
				t.Errorf("%s: %d rows, %v; want %d", table, n, err, want)
			}
		}
	})

	t.Run("provisioning again changes nothing", func(t *testing.T) {
		if n := f.provisionAll(t); n != 0 {
			t.Errorf("ProvisionDue handled %d with nothing requested", n)
		}
		types, _ := f.stream(t, blank.ID().Stream())
		if count(types, domain.DatabaseProvisioned{}.EventType()) != 1 {
			t.Errorf("stream %v, want one provisioned event", types)
		}
	})
}

func TestDatabaseProvisioningResumes(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "crash@example.com")
	spec := func(d *domain.Database) sandbox.Spec {
		r := d.Requested()
		return sandbox.Spec{ID: string(r.DatabaseID), Charset: r.Charset, Collation: r.Collation, MaxUserConnections: 10}
	}
	server := f.fleet.Servers()[0]

	t.Run("crash after the server work, before the event", func(t *testing.T) {
		d := f.create(t, tenant, owner, "crashy", domain.TemplateSample)
		lost, _, err := server.Provision(ctx(t), spec(d))
		if err != nil {
			t.Fatal(err)
		}
		if err := server.LoadSample(ctx(t), string(d.ID())); err != nil {
			t.Fatal(err)
		}
		if n := f.provisionAll(t); n != 1 {
			t.Fatalf("ProvisionDue handled %d, want 1", n)
		}
		if v := f.view(t, tenant, d.ID()); v.State != domain.StateRunning {
			t.Fatalf("state %s (%s), want running", v.State, v.FailureReason)
		}
		c := f.conn(t, tenant, d.ID())
		if c.Password == lost {
			t.Fatal("the password of the interrupted attempt was kept")
		}
		db := mustDial(t, c) // the stored password is the one that works
		var n int
		if err := db.QueryRowContext(ctx(t), `SELECT COUNT(*) FROM orders`).Scan(&n); err != nil || n != 300 {
			t.Errorf("orders: %d, %v; want 300 (loaded once)", n, err)
		}
		c.Password = lost
		if _, err := dial(t, c); errno(err) != errAccessDenied {
			t.Errorf("the interrupted attempt's password: %v, want error %d", err, errAccessDenied)
		}
	})

	t.Run("crash in the middle of the sample", func(t *testing.T) {
		d := f.create(t, tenant, owner, "halfway", domain.TemplateSample)
		if _, _, err := server.Provision(ctx(t), spec(d)); err != nil {
			t.Fatal(err)
		}
		if err := server.LoadSample(ctx(t), string(d.ID())); err != nil {
			t.Fatal(err)
		}
		// The rows go in one transaction, so a crash during the load leaves the tables without
		// rows (orders first: its foreign keys point at the others).
		schema := sandbox.SchemaName(f.prefix, string(d.ID()))
		for _, table := range []string{"orders", "products", "customers"} {
			if _, err := f.admin.ExecContext(ctx(t), "DELETE FROM `"+schema+"`."+table); err != nil {
				t.Fatal(err)
			}
		}
		f.provisionAll(t)
		if v := f.view(t, tenant, d.ID()); v.State != domain.StateRunning {
			t.Fatalf("state %s (%s), want running", v.State, v.FailureReason)
		}
		db := mustDial(t, f.conn(t, tenant, d.ID()))
		for table, want := range map[string]int{"orders": 300, "customers": 100, "products": 10} {
			var n int
			if err := db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n != want {
				t.Errorf("resumed sample: %s has %d rows (%v), want %d", table, n, err, want)
			}
		}
	})
}

func TestDatabaseProvisioningUnreachableServer(t *testing.T) {
	t.Parallel()
	// OpenFleet pings every server: a DSN nobody answers (127.0.0.1:1) cannot be part of a fleet
	// at all, so the unreachable server is a proxy that is taken down after the fleet opened.
	if fleet, err := sandbox.OpenFleet(ctx(t), []string{testdb.ServerDSN(), "root@tcp(127.0.0.1:1)/?timeout=1s"}, newPrefix(), quiet()); err == nil {
		fleet.Close()
	} else {
		t.Logf("OpenFleet with a second server at 127.0.0.1:1: %v", err)
		if !errors.Is(err, domain.ErrUnavailable) {
			t.Errorf("OpenFleet with an unreachable server: %v, want an error wrapping ErrUnavailable", err)
		}
	}
	cfg, err := mysql.ParseDSN(testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, cfg.Addr)
	f := newDBFixture(t, testdb.ServerDSN(), proxy.dsn(t))
	real, flaky := f.fleet.Servers()[0].Name(), f.fleet.Servers()[1].Name()
	owner, tenant := f.owner(t, "down@example.com")

	first := f.create(t, tenant, owner, "first", "")
	stranded := f.create(t, tenant, owner, "stranded", "")
	if first.Requested().Server != real || stranded.Requested().Server != flaky {
		t.Fatalf("placed on %s and %s, want %s then %s", first.Requested().Server, stranded.Requested().Server, real, flaky)
	}
	proxy.down()
	third := f.create(t, tenant, owner, "third", "")
	fourth := f.create(t, tenant, owner, "fourth", "") // flaky has fewer, but does not answer
	if third.Requested().Server != real || fourth.Requested().Server != real {
		t.Fatalf("placed on %s and %s while %s is down, want %s", third.Requested().Server, fourth.Requested().Server, flaky, real)
	}

	if n := f.provisionAll(t); n != 3 {
		t.Errorf("ProvisionDue handled %d, want 3 (the stranded database waits)", n)
	}
	f.clock.Advance(119 * time.Second)
	// The wait is said, so that the reactor looks again within a second rather than at its idle poll.
	if n, err := f.dbs.ProvisionDue(ctx(t)); n != 0 || !errors.Is(err, commands.ErrWorkWaits) {
		t.Errorf("ProvisionDue before the 2 minutes passed = %d, %v; want 0, ErrWorkWaits", n, err)
	}
	if v := f.view(t, tenant, stranded.ID()); v.State != domain.StateProvisioning {
		t.Fatalf("stranded database is %s before its deadline, want provisioning", v.State)
	}
	if q := f.quota(t, tenant); q.Databases() != 4 {
		t.Errorf("quota counts %d while one waits, want 4", q.Databases())
	}

	f.clock.Advance(2 * time.Second)
	if n := f.provisionAll(t); n != 1 {
		t.Errorf("ProvisionDue handled %d after the deadline, want 1", n)
	}
	v := f.view(t, tenant, stranded.ID())
	if v.State != domain.StateFailed || v.FailureReason == "" {
		t.Fatalf("after the deadline: state %s, reason %q; want failed with a reason", v.State, v.FailureReason)
	}
	if strings.Contains(v.FailureReason, "127.0.0.1") || strings.Contains(v.FailureReason, "tcp") {
		t.Errorf("failure reason %q shows the tenant the server's address or driver errors", v.FailureReason)
	}
	if q := f.quota(t, tenant); q.Databases() != 3 {
		t.Errorf("quota counts %d after the failure, want 3 (released)", q.Databases())
	}
	if used, _, err := f.views.DatabaseUsage(ctx(t), tenant); err != nil || used != 3 {
		t.Errorf("DatabaseUsage = %d, %v; want 3", used, err)
	}
	again := f.create(t, tenant, owner, "stranded", "") // the name is free again
	if again.Requested().Server != real {
		t.Errorf("the new database went to %s", again.Requested().Server)
	}
	f.provisionAll(t)
	mustDial(t, f.conn(t, tenant, again.ID()))

	t.Run("a failed database can be deleted once its server answers", func(t *testing.T) {
		proxy.up(t)
		deleted, err := f.dbs.Delete(ctx(t), tenant, stranded.ID(), "stranded", time.Hour, meta)
		if err != nil {
			t.Fatalf("Delete of the failed database: %v, want it deleted", err)
		}
		if deleted.State() != domain.StateDeleted {
			t.Errorf("state %s, want deleted", deleted.State())
		}
	})
}

func TestDatabasePlacementTwoServers(t *testing.T) {
	t.Parallel()
	cfg, err := mysql.ParseDSN(testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(cfg.Addr, ":")
	other := cfg.Clone()
	if host == "localhost" {
		other.Addr = "127.0.0.1:" + port
	} else {
		other.Addr = "localhost:" + port
	}
	dsns := []string{testdb.ServerDSN(), other.FormatDSN()}
	f := newDBFixture(t, dsns...)
	a, b := f.fleet.Servers()[0].Name(), f.fleet.Servers()[1].Name()
	if a == b {
		t.Fatalf("both servers are named %s", a)
	}
	owner, tenant := f.owner(t, "place@example.com")
	var all []*domain.Database
	for i := 0; i < 4; i++ {
		d := f.create(t, tenant, owner, fmt.Sprintf("placed_%d", i), "")
		if want := []string{a, b}[i%2]; d.Requested().Server != want {
			t.Errorf("database %d placed on %s, want %s", i, d.Requested().Server, want)
		}
		all = append(all, d)
	}
	f.provisionAll(t)
	for i, d := range all {
		want := []string{a, b}[i%2]
		if v := f.view(t, tenant, d.ID()); v.Server != want || v.State != domain.StateRunning {
			t.Errorf("database %d: read model server %s state %s, want %s running", i, v.Server, v.State, want)
		}
		if got := f.load(t, tenant, d.ID()).Requested().Server; got != want {
			t.Errorf("database %d remembers %s, want %s", i, got, want)
		}
		c := f.conn(t, tenant, d.ID())
		if wantHost, _ := f.fleet.Servers()[i%2].Host(); c.Host != wantHost {
			t.Errorf("database %d: host %s, want %s", i, c.Host, wantHost)
		}
		mustDial(t, c)
	}
	// A restart that lists the servers the other way round finds each database where it lives.
	reversed, err := sandbox.OpenFleet(ctx(t), []string{dsns[1], dsns[0]}, f.prefix, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer reversed.Close()
	dbs := commands.NewDatabases(f.store, f.vault, reversed, f.runtime, f.views, f.db, f.clock.Now, quiet())
	for i, d := range all {
		c, err := dbs.Connection(ctx(t), f.load(t, tenant, d.ID()), "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if wantHost, _ := f.fleet.Servers()[i%2].Host(); c.Host != wantHost {
			t.Errorf("after reordering, database %d: host %s, want %s", i, c.Host, wantHost)
		}
	}
}

func TestDatabaseStopStart(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "stop@example.com")
	d := f.running(t, tenant, owner, "svc", "")
	c := f.conn(t, tenant, d.ID())
	pool := mustDial(t, c)
	held, err := pool.Conn(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := held.PingContext(ctx(t)); err != nil {
		t.Fatal(err)
	}
	roPassword, err := f.vault.Get(ctx(t), "db:"+string(d.ID())+":ro")
	if err != nil {
		t.Fatal(err)
	}
	_, roUser := sandbox.AccountNames(f.prefix, string(d.ID()))
	ro := commands.Connection{Host: c.Host, Port: c.Port, Database: c.Database, Username: roUser, Password: string(roPassword)}

	stopped, err := f.dbs.Stop(ctx(t), tenant, d.ID(), "manual", meta)
	if err != nil {
		t.Fatal(err)
	}
	if stopped.State() != domain.StateStopped || f.view(t, tenant, d.ID()).State != domain.StateStopped {
		t.Fatalf("after Stop: %s / read model %s, want stopped", stopped.State(), f.view(t, tenant, d.ID()).State)
	}
	for _, conn := range []commands.Connection{c, ro} {
		if _, err := dial(t, conn); errno(err) != errAccountLocked {
			t.Errorf("new connection as %s to a stopped database: %v, want error %d", conn.Username, err, errAccountLocked)
		}
	}
	var one int
	if err := held.QueryRowContext(ctx(t), `SELECT 1`).Scan(&one); err == nil {
		t.Error("a connection opened before the stop still runs queries")
	}

	before, _ := f.stream(t, d.ID().Stream())
	if again, err := f.dbs.Stop(ctx(t), tenant, d.ID(), "manual", meta); err != nil || again.State() != domain.StateStopped {
		t.Errorf("second Stop: %v, want a no-op", err)
	}
	if after, _ := f.stream(t, d.ID().Stream()); len(after) != len(before) || count(after, domain.DatabaseStopped{}.EventType()) != 1 {
		t.Errorf("stream %v after a second Stop, want %v", after, before)
	}
	if events := f.events(t, d.ID().Stream()); events[len(events)-1].(domain.DatabaseStopped).Reason != "manual" {
		t.Errorf("stopped event %#v, want reason manual", events[len(events)-1])
	}

	started, err := f.dbs.Start(ctx(t), tenant, d.ID(), meta)
	if err != nil {
		t.Fatal(err)
	}
	if started.State() != domain.StateRunning || f.view(t, tenant, d.ID()).State != domain.StateRunning {
		t.Fatalf("after Start: %s, want running", started.State())
	}
	mustDial(t, c)
	mustDial(t, ro)
	before, _ = f.stream(t, d.ID().Stream())
	if _, err := f.dbs.Start(ctx(t), tenant, d.ID(), meta); err != nil {
		t.Errorf("Start of a running database: %v, want a no-op", err)
	}
	if after, _ := f.stream(t, d.ID().Stream()); len(after) != len(before) {
		t.Errorf("stream %v after a second Start, want %v", after, before)
	}

	if _, err := f.dbs.Delete(ctx(t), tenant, d.ID(), "svc", time.Hour, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dbs.Start(ctx(t), tenant, d.ID(), meta); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("Start of a deleted database: %v, want ErrConflict", err)
	}
	if _, err := f.dbs.Stop(ctx(t), tenant, d.ID(), "manual", meta); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("Stop of a deleted database: %v, want ErrConflict", err)
	}
	if _, err := dial(t, c); errno(err) != errAccountLocked {
		t.Errorf("connection to a deleted database: %v, want error %d", err, errAccountLocked)
	}
}

func TestDatabaseDeleteRestorePurge(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "delete@example.com")
	const window = time.Hour
	shop := f.create(t, tenant, owner, "shop", "")
	others := make([]*domain.Database, 4)
	for i := range others {
		others[i] = f.create(t, tenant, owner, fmt.Sprintf("other_%d", i), "")
	}
	f.provisionAll(t)
	c := f.conn(t, tenant, shop.ID())
	db := mustDial(t, c)
	if _, err := db.ExecContext(ctx(t), `CREATE TABLE keep (v INT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx(t), `INSERT INTO keep VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	for _, wrong := range []string{"", "Shop", "shop ", "other_0"} {
		var invalid *domain.ValidationError
		if _, err := f.dbs.Delete(ctx(t), tenant, shop.ID(), wrong, window, meta); !errors.As(err, &invalid) {
			t.Errorf("Delete with confirm_name %q: %v, want *ValidationError", wrong, err)
		}
	}
	if v := f.view(t, tenant, shop.ID()); v.State != domain.StateRunning {
		t.Fatalf("after refused deletes: %s", v.State)
	}

	deletedAt := f.clock.Advance(time.Minute)
	deleted, err := f.dbs.Delete(ctx(t), tenant, shop.ID(), "shop", window, meta)
	if err != nil {
		t.Fatal(err)
	}
	v := f.view(t, tenant, shop.ID())
	if deleted.State() != domain.StateDeleted || v.State != domain.StateDeleted {
		t.Fatalf("after Delete: %s / read model %s", deleted.State(), v.State)
	}
	if want := deletedAt.Add(window); !deleted.RecoverableUntil().Equal(want) || v.RecoverableUntil == nil || !v.RecoverableUntil.Equal(want) {
		t.Errorf("recoverable_until %v / read model %v, want %v", deleted.RecoverableUntil(), v.RecoverableUntil, want)
	}
	if !f.schemaExists(t, shop.ID()) {
		t.Error("Delete dropped the schema")
	}
	if _, err := dial(t, c); errno(err) != errAccountLocked {
		t.Errorf("connection to a deleted database: %v, want error %d", err, errAccountLocked)
	}
	if q := f.quota(t, tenant); q.Databases() != 4 {
		t.Errorf("quota counts %d after the delete, want 4", q.Databases())
	}
	if list, err := f.views.DatabasesOf(ctx(t), tenant, "", false); err != nil || len(list) != 4 {
		t.Errorf("list without deleted: %d, %v; want 4", len(list), err)
	}

	// Quota and name are free at once: a fifth database named "shop" fits.
	reused := f.running(t, tenant, owner, "shop", "")
	if _, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: owner, Name: "sixth", Meta: meta}); err == nil {
		t.Fatal("a sixth database was created on the free plan")
	}

	var quota *domain.QuotaExceededError
	if _, err := f.dbs.Restore(ctx(t), tenant, shop.ID(), meta); !errors.As(err, &quota) {
		t.Errorf("Restore at the limit: %v, want *QuotaExceededError", err)
	}
	if _, err := f.dbs.Delete(ctx(t), tenant, others[3].ID(), "other_3", window, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dbs.Restore(ctx(t), tenant, shop.ID(), meta); !errors.Is(err, domain.ErrNameTaken) {
		t.Errorf("Restore while the name is reused: %v, want ErrNameTaken", err)
	}
	if q := f.quota(t, tenant); q.Databases() != 4 {
		t.Errorf("quota counts %d after a refused restore, want 4", q.Databases())
	}

	if _, err := f.dbs.Delete(ctx(t), tenant, reused.ID(), "shop", window, meta); err != nil {
		t.Fatal(err)
	}
	restored, err := f.dbs.Restore(ctx(t), tenant, shop.ID(), meta)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if v := f.view(t, tenant, shop.ID()); restored.State() != domain.StateRunning || v.State != domain.StateRunning || v.RecoverableUntil != nil {
		t.Fatalf("after Restore: %s / read model %s, recoverable_until %v", restored.State(), v.State, v.RecoverableUntil)
	}
	db = mustDial(t, f.conn(t, tenant, shop.ID()))
	var kept int
	if err := db.QueryRowContext(ctx(t), `SELECT v FROM keep`).Scan(&kept); err != nil || kept != 42 {
		t.Errorf("restored data: %d, %v", kept, err)
	}
	db.Close()
	if q := f.quota(t, tenant); q.Databases() != 4 {
		t.Errorf("quota counts %d after the restore, want 4", q.Databases())
	}

	// Deleted again, and the window passes.
	if _, err := f.dbs.Delete(ctx(t), tenant, shop.ID(), "shop", window, meta); err != nil {
		t.Fatal(err)
	}
	if n, err := f.dbs.PurgeDue(ctx(t)); err != nil || n != 0 {
		t.Errorf("PurgeDue within the window: %d, %v; want 0", n, err)
	}
	f.clock.Advance(window + time.Second)
	if _, err := f.dbs.Restore(ctx(t), tenant, shop.ID(), meta); !errors.Is(err, domain.ErrExpired) {
		t.Errorf("Restore after the window: %v, want ErrExpired", err)
	}
	n, err := f.dbs.PurgeDue(ctx(t))
	if err != nil || n != 3 { // shop, other_3 and the reused shop
		t.Errorf("PurgeDue after the window: %d, %v; want 3", n, err)
	}
	f.settle(t)
	for _, d := range []*domain.Database{shop, others[3], reused} {
		if f.schemaExists(t, d.ID()) || f.accounts(t, d.ID()) != 0 {
			t.Errorf("%s after the purge: schema %v, %d accounts", d.ID(), f.schemaExists(t, d.ID()), f.accounts(t, d.ID()))
		}
		for _, kind := range []string{"rw", "ro"} {
			if _, err := f.vault.Get(ctx(t), "db:"+string(d.ID())+":"+kind); err == nil {
				t.Errorf("the %s password of %s survived the purge", kind, d.ID())
			}
		}
		if _, err := f.dbs.Database(ctx(t), tenant, d.ID()); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Database after the purge: %v, want ErrNotFound", err)
		}
		if _, err := f.views.Database(ctx(t), tenant, d.ID()); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("read model after the purge: %v, want ErrNotFound", err)
		}
		types, _ := f.stream(t, d.ID().Stream())
		if types[len(types)-1] != (domain.DatabasePurged{}).EventType() {
			t.Errorf("stream %v does not end purged", types)
		}
	}
	if _, err := f.dbs.Restore(ctx(t), tenant, shop.ID(), meta); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Restore of a purged database: %v, want ErrNotFound", err)
	}
	if n, err := f.dbs.PurgeDue(ctx(t)); err != nil || n != 0 {
		t.Errorf("second PurgeDue: %d, %v; want 0", n, err)
	}
	for _, d := range others[:3] {
		if !f.schemaExists(t, d.ID()) || f.view(t, tenant, d.ID()).State != domain.StateRunning {
			t.Errorf("purge touched %s", d.Name())
		}
	}
}

func TestDatabaseRotateAndOwner(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	admin, tenant := f.owner(t, "rotate@example.com")
	d := f.running(t, tenant, admin, "keys", "")

	t.Run("rotate credentials", func(t *testing.T) {
		old := f.conn(t, tenant, d.ID())
		held, err := mustDial(t, old).Conn(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		if err := held.PingContext(ctx(t)); err != nil {
			t.Fatal(err)
		}
		roBefore, _ := f.vault.Get(ctx(t), "db:"+string(d.ID())+":ro")
		rotated, err := f.dbs.RotateCredentials(ctx(t), tenant, d.ID(), admin, domain.RoleTenantAdmin, meta)
		if err != nil {
			t.Fatal(err)
		}
		if rotated.State() != domain.StateRunning {
			t.Errorf("state %s after rotation", rotated.State())
		}
		fresh := f.conn(t, tenant, d.ID())
		if fresh.Password == old.Password || fresh.Username != old.Username {
			t.Fatalf("rotation kept the password or changed the user: %s → %s", old.Username, fresh.Username)
		}
		if _, err := dial(t, old); errno(err) != errAccessDenied {
			t.Errorf("old password: %v, want error %d", err, errAccessDenied)
		}
		mustDial(t, fresh)
		var one int
		if err := held.QueryRowContext(ctx(t), `SELECT 1`).Scan(&one); err == nil {
			t.Error("a connection opened with the old password still runs queries")
		}
		if roAfter, _ := f.vault.Get(ctx(t), "db:"+string(d.ID())+":ro"); string(roAfter) != string(roBefore) {
			t.Error("rotation changed the read-only password")
		}
		types, _ := f.stream(t, d.ID().Stream())
		if count(types, domain.DatabaseCredentialsRotated{}.EventType()) != 1 {
			t.Errorf("stream %v, want one rotation", types)
		}
	})

	t.Run("change owner", func(t *testing.T) {
		outsider := f.user(t, "outsider@example.com")
		for _, to := range []domain.UserID{outsider, domain.UserID(uuid.NewString())} {
			if _, err := f.dbs.ChangeOwner(ctx(t), tenant, d.ID(), to, meta); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("ChangeOwner to non-member %s: %v, want ErrNotFound", to, err)
			}
		}
		member := f.member(t, tenant, admin, "member@example.com")
		changed, err := f.dbs.ChangeOwner(ctx(t), tenant, d.ID(), member, meta)
		if err != nil {
			t.Fatal(err)
		}
		if changed.Owner() != member || f.view(t, tenant, d.ID()).OwnerID != member {
			t.Errorf("owner %s / read model %s, want %s", changed.Owner(), f.view(t, tenant, d.ID()).OwnerID, member)
		}
		q := f.quota(t, tenant)
		if q.DatabasesOf(admin) != 0 || q.DatabasesOf(member) != 1 || q.Databases() != 1 {
			t.Errorf("quota after the transfer: admin %d, member %d, total %d; want 0, 1, 1", q.DatabasesOf(admin), q.DatabasesOf(member), q.Databases())
		}

		// A sub-quota of 1 for the member: the transferred database fills it.
		plan, _ := domain.PlanByID(domain.PlanFree)
		if err := q.SetSubQuota(member, domain.MemberQuota{MaxDatabases: ptr(int64(1))}, plan.Limits); err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.Append(ctx(t), eventstore.Append{Streams: []eventstore.Stream{{ID: tenant.QuotaStream(), Type: "quota", ExpectedVersion: q.Version(), Events: q.PendingEvents()}}}); err != nil {
			t.Fatal(err)
		}
		var quota *domain.QuotaExceededError
		_, impact, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: member, Name: "mine", Meta: meta})
		if !errors.As(err, &quota) || quota.Resource != "user_databases" || quota.Used != 1 || quota.Limit != 1 {
			t.Errorf("member's create at the sub-quota: %v (%+v), want user_databases 1 of 1", err, quota)
		}
		if impact.UserDatabases == nil || impact.UserDatabases.Used != 1 || impact.UserDatabases.Limit != 1 {
			t.Errorf("impact %+v, want user databases 1 of 1", impact.UserDatabases)
		}
		if _, err := f.dbs.ChangeOwner(ctx(t), tenant, d.ID(), admin, meta); err != nil {
			t.Fatal(err)
		}
		if q := f.quota(t, tenant); q.DatabasesOf(admin) != 1 || q.DatabasesOf(member) != 0 {
			t.Errorf("quota after the transfer back: admin %d, member %d", q.DatabasesOf(admin), q.DatabasesOf(member))
		}
		if _, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: member, Name: "mine", Meta: meta}); err != nil {
			t.Errorf("member's create within the sub-quota: %v", err)
		}
	})
}

func TestDatabaseSchemaAndTenantIsolation(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "schema@example.com")
	d := f.create(t, tenant, owner, "catalog", "")
	neighbour := f.create(t, tenant, owner, "neighbour", "")
	f.provisionAll(t)
	db := mustDial(t, f.conn(t, tenant, d.ID()))
	for _, stmt := range []string{
		`CREATE TABLE items (
			id INT AUTO_INCREMENT PRIMARY KEY,
			sku VARCHAR(32) NOT NULL,
			price DECIMAL(10,2) NULL DEFAULT 0,
			UNIQUE KEY items_sku (sku),
			KEY items_price_sku (price, sku)
		)`,
		`CREATE VIEW cheap AS SELECT id, sku FROM items WHERE price < 10`,
		`INSERT INTO items (sku, price) VALUES ('a', 1), ('b', 20), ('c', 5)`,
	} {
		if _, err := db.ExecContext(ctx(t), stmt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mustDial(t, f.conn(t, tenant, neighbour.ID())).ExecContext(ctx(t), `CREATE TABLE secret (x INT)`); err != nil {
		t.Fatal(err)
	}

	if _, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: owner, Name: "CATALOG", Meta: meta}); !errors.Is(err, domain.ErrNameTaken) {
		t.Errorf("create CATALOG next to catalog: %v, want ErrNameTaken", err)
	}
	tables, err := f.dbs.Schema(ctx(t), tenant, d.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 || tables[0].Name != "cheap" || tables[0].Type != "view" || tables[1].Name != "items" || tables[1].Type != "table" {
		t.Fatalf("schema %+v, want the view cheap and the table items only", tables)
	}
	items := tables[1]
	var cols []string
	for _, c := range items.Columns {
		cols = append(cols, c.Name+" "+c.Type+" "+c.Key+fmt.Sprint(c.Nullable))
	}
	if want := []string{"id int(11) PRIfalse", "sku varchar(32) UNIfalse", "price decimal(10,2) MULtrue"}; !slices.Equal(cols, want) {
		t.Errorf("columns of items %q, want %q", cols, want)
	}
	var idx []string
	for _, i := range items.Indexes {
		idx = append(idx, fmt.Sprintf("%s %v %s", i.Name, i.Unique, strings.Join(i.Columns, ",")))
	}
	if want := []string{"PRIMARY true id", "items_price_sku false price,sku", "items_sku true sku"}; len(idx) != 3 || idx[0] != want[0] || !slices.Contains(idx, want[1]) || !slices.Contains(idx, want[2]) {
		t.Errorf("indexes of items %q, want %q (PRIMARY first)", idx, want)
	}
	var viewCols []string
	for _, c := range tables[0].Columns {
		viewCols = append(viewCols, c.Name)
	}
	if !slices.Equal(viewCols, []string{"id", "sku"}) || len(tables[0].Indexes) != 0 {
		t.Errorf("view cheap: columns %v, indexes %v", viewCols, tables[0].Indexes)
	}

	t.Run("another tenant's database is not found", func(t *testing.T) {
		intruder, other := f.owner(t, "intruder@example.com")
		mine := f.running(t, other, intruder, "catalog", "") // the same name in another tenant is fine
		id := d.ID()
		ops := map[string]func() error{
			"Database": func() error { _, err := f.dbs.Database(ctx(t), other, id); return err },
			"Schema":   func() error { _, err := f.dbs.Schema(ctx(t), other, id); return err },
			"Stop":     func() error { _, err := f.dbs.Stop(ctx(t), other, id, "manual", meta); return err },
			"Start":    func() error { _, err := f.dbs.Start(ctx(t), other, id, meta); return err },
			"Delete": func() error {
				_, err := f.dbs.Delete(ctx(t), other, id, "catalog", time.Hour, meta)
				return err
			},
			"Restore": func() error { _, err := f.dbs.Restore(ctx(t), other, id, meta); return err },
			"RotateCredentials": func() error {
				_, err := f.dbs.RotateCredentials(ctx(t), other, id, intruder, domain.RoleTenantAdmin, meta)
				return err
			},
			"ChangeOwner": func() error { _, err := f.dbs.ChangeOwner(ctx(t), other, id, intruder, meta); return err },
			"read model":  func() error { _, err := f.views.Database(ctx(t), other, id); return err },
		}
		for name, op := range ops {
			if err := op(); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("%s of another tenant's database: %v, want ErrNotFound", name, err)
			}
		}
		if _, err := f.dbs.Schema(ctx(t), tenant, mine.ID()); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Schema the other way round: %v, want ErrNotFound", err)
		}
		got := f.load(t, tenant, id)
		if got.State() != domain.StateRunning || got.Owner() != owner {
			t.Errorf("the database changed: %s, owner %s", got.State(), got.Owner())
		}
		types, _ := f.stream(t, id.Stream())
		if len(types) != 2 {
			t.Errorf("stream %v, want requested and provisioned only", types)
		}
		mustDial(t, f.conn(t, tenant, id))
	})
}

func TestDatabaseStopIdle(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "idle@example.com")
	idle := f.create(t, tenant, owner, "idle", "")
	restarted := f.create(t, tenant, owner, "restarted", "")
	used := f.create(t, tenant, owner, "used", "")
	f.provisionAll(t) // at t0

	if n, err := f.dbs.StopIdle(ctx(t)); err != nil || n != 0 {
		t.Fatalf("StopIdle right after provisioning: %d, %v", n, err)
	}
	f.clock.Set(t0.Add(30 * time.Minute))
	if _, err := f.dbs.Stop(ctx(t), tenant, restarted.ID(), "manual", meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dbs.Start(ctx(t), tenant, restarted.ID(), meta); err != nil {
		t.Fatal(err)
	}
	// The query module records use in the read model; no handler does it yet.
	f.settle(t)
	if _, err := f.db.ExecContext(ctx(t), `UPDATE database_list SET last_used_at = ? WHERE database_id = ?`, t0.Add(55*time.Minute), used.ID()); err != nil {
		t.Fatal(err)
	}

	f.clock.Set(t0.Add(59 * time.Minute))
	if n, err := f.dbs.StopIdle(ctx(t)); err != nil || n != 0 {
		t.Errorf("StopIdle after 59 minutes: %d, %v; want 0", n, err)
	}
	f.clock.Set(t0.Add(61 * time.Minute))
	if n, err := f.dbs.StopIdle(ctx(t)); err != nil || n != 1 {
		t.Errorf("StopIdle after 61 minutes: %d, %v; want 1", n, err)
	}
	states := func() (s [3]domain.DatabaseState) {
		for i, d := range []*domain.Database{idle, restarted, used} {
			s[i] = f.view(t, tenant, d.ID()).State
		}
		return s
	}
	if s := states(); s != [3]domain.DatabaseState{domain.StateStopped, domain.StateRunning, domain.StateRunning} {
		t.Errorf("states idle/restarted/used %v, want stopped/running/running", s)
	}
	events := f.events(t, idle.ID().Stream())
	if stop, ok := events[len(events)-1].(domain.DatabaseStopped); !ok || stop.Reason != "idle" || !stop.At.Equal(t0.Add(61*time.Minute)) {
		t.Errorf("last event of the idle database %#v, want database.stopped.v1 with reason idle", events[len(events)-1])
	}
	if _, err := dial(t, f.conn(t, tenant, idle.ID())); errno(err) != errAccountLocked {
		t.Errorf("connection to an auto-stopped database: %v, want error %d", err, errAccountLocked)
	}

	f.clock.Set(t0.Add(91 * time.Minute))
	if n, err := f.dbs.StopIdle(ctx(t)); err != nil || n != 1 {
		t.Errorf("StopIdle after 91 minutes: %d, %v; want 1 (restarted)", n, err)
	}
	f.clock.Set(t0.Add(116 * time.Minute))
	if n, err := f.dbs.StopIdle(ctx(t)); err != nil || n != 1 {
		t.Errorf("StopIdle after 116 minutes: %d, %v; want 1 (used)", n, err)
	}
	if s := states(); s != [3]domain.DatabaseState{domain.StateStopped, domain.StateStopped, domain.StateStopped} {
		t.Errorf("states %v, want all stopped", s)
	}
	if n, err := f.dbs.StopIdle(ctx(t)); err != nil || n != 0 {
		t.Errorf("StopIdle with everything stopped: %d, %v", n, err)
	}

	t.Run("the tenant's own period", func(t *testing.T) {
		if _, err := f.tenants.ChangeSettings(ctx(t), tenant, commands.SettingsPatch{AutoStopMinutes: ptr(int64(15))}, meta); err != nil {
			t.Fatal(err)
		}
		if _, err := f.dbs.Start(ctx(t), tenant, idle.ID(), meta); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(14 * time.Minute)
		if n, err := f.dbs.StopIdle(ctx(t)); err != nil || n != 0 {
			t.Errorf("after 14 of 15 minutes: %d, %v", n, err)
		}
		f.clock.Advance(2 * time.Minute)
		if n, err := f.dbs.StopIdle(ctx(t)); err != nil || n != 1 {
			t.Errorf("after 16 of 15 minutes: %d, %v; want 1", n, err)
		}
	})
}

func TestDatabaseSampleStorage(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "storage@example.com")
	d := f.running(t, tenant, owner, "big", "")
	untouched := f.running(t, tenant, owner, "quiet", "")
	if n, err := f.dbs.SampleStorage(ctx(t)); err != nil || n != 0 {
		t.Errorf("SampleStorage of empty schemas: %d, %v; want 0", n, err)
	}
	db := mustDial(t, f.conn(t, tenant, d.ID()))
	fill := func(rows int) {
		t.Helper()
		for i := 0; i < rows; i += 500 {
			if _, err := db.ExecContext(ctx(t), `INSERT INTO blobs (body) SELECT REPEAT('x', 1000) FROM
				(SELECT 1 FROM information_schema.COLLATIONS LIMIT 500) AS n`); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.ExecContext(ctx(t), `ANALYZE TABLE blobs`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx(t), `CREATE TABLE blobs (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(1000))`); err != nil {
		t.Fatal(err)
	}
	fill(1000)

	measure := func() int64 {
		t.Helper()
		n, err := f.dbs.SampleStorage(ctx(t))
		if err != nil || n != 1 {
			t.Fatalf("SampleStorage after writing: %d, %v; want 1", n, err)
		}
		return f.view(t, tenant, d.ID()).StorageBytes
	}
	first := measure()
	if first < 500_000 {
		t.Errorf("storage_bytes %d after 1,000 rows of 1 kB", first)
	}
	events := f.events(t, d.ID().Stream())
	if m, ok := events[len(events)-1].(domain.DatabaseStorageMeasured); !ok || m.Bytes != first {
		t.Errorf("last event %#v, want database.storage_measured.v1 of %d bytes", events[len(events)-1], first)
	}
	if n, err := f.dbs.SampleStorage(ctx(t)); err != nil || n != 0 {
		t.Errorf("SampleStorage with no change: %d, %v; want 0", n, err)
	}
	if types, _ := f.stream(t, d.ID().Stream()); count(types, domain.DatabaseStorageMeasured{}.EventType()) != 1 {
		t.Errorf("stream %v, want one measurement", types)
	}
	fill(2000)
	if second := measure(); second <= first {
		t.Errorf("storage_bytes %d after more rows, want more than %d", second, first)
	}
	if v := f.view(t, tenant, untouched.ID()); v.StorageBytes != 0 {
		t.Errorf("the untouched database measures %d", v.StorageBytes)
	}
	if _, stored, err := f.views.DatabaseUsage(ctx(t), tenant); err != nil || stored != f.view(t, tenant, d.ID()).StorageBytes {
		t.Errorf("tenant usage %d, %v; want the database's bytes", stored, err)
	}

	t.Run("creation is refused once the storage is used up", func(t *testing.T) {
		cur := f.load(t, tenant, d.ID())
		cur.MeasureStorage(1<<30, f.clock.Now())
		if _, err := f.store.Append(ctx(t), eventstore.Append{Streams: []eventstore.Stream{{ID: d.ID().Stream(), Type: "database", ExpectedVersion: cur.Version(), Events: cur.PendingEvents()}}}); err != nil {
			t.Fatal(err)
		}
		f.settle(t)
		var quota *domain.QuotaExceededError
		if _, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: owner, Name: "more", Meta: meta}); !errors.As(err, &quota) || quota.Resource != "storage" {
			t.Errorf("create with the storage used up: %v, want *QuotaExceededError for storage", err)
		}
		// The next sample measures the real size again, and creation works again.
		if n, err := f.dbs.SampleStorage(ctx(t)); err != nil || n != 1 {
			t.Errorf("SampleStorage: %d, %v; want 1", n, err)
		}
		f.settle(t)
		if _, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: owner, Name: "more", Meta: meta}); err != nil {
			t.Errorf("create after the storage dropped: %v", err)
		}
	})
}

// measure records a size of a database's schema as the storage sampler would (which would record
// the real size instead), and waits for the read model.
func (f *dbFixture) measure(t *testing.T, tenant domain.TenantID, id domain.DatabaseID, bytes int64) {
	t.Helper()
	d := f.load(t, tenant, id)
	d.MeasureStorage(bytes, f.clock.Now())
	if _, err := f.store.Append(ctx(t), eventstore.Append{Streams: []eventstore.Stream{{ID: id.Stream(), Type: "database",
		ExpectedVersion: d.Version(), Events: d.PendingEvents()}}}); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
}

// enforce runs EnforceStorage and fails the test unless it changed want databases.
func (f *dbFixture) enforce(t *testing.T, want int) {
	t.Helper()
	if n, err := f.dbs.EnforceStorage(ctx(t)); err != nil || n != want {
		t.Fatalf("EnforceStorage: %d, %v; want %d", n, err, want)
	}
}

// TestDatabaseEnforceStorage: a tenant at its plan's storage (the free plan's 1 GiB, summed over
// its databases) has the writes of every database restricted on the server, stopped ones included,
// until its usage drops under the limit; another tenant is untouched.
func TestDatabaseEnforceStorage(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "full@example.com")
	otherOwner, otherTenant := f.owner(t, "roomy@example.com")
	big := f.running(t, tenant, owner, "big", "")
	small := f.running(t, tenant, owner, "small", "")
	parked := f.running(t, tenant, owner, "parked", "")
	bystander := f.running(t, otherTenant, otherOwner, "bystander", "")
	dbs := map[string]*sql.DB{}
	for _, d := range []struct {
		tenant domain.TenantID
		db     *domain.Database
	}{{tenant, big}, {tenant, small}, {tenant, parked}, {otherTenant, bystander}} {
		db := mustDial(t, f.conn(t, d.tenant, d.db.ID()))
		for _, stmt := range []string{`CREATE TABLE t (x INT)`, `INSERT INTO t VALUES (1), (2), (3)`} {
			if _, err := db.ExecContext(ctx(t), stmt); err != nil {
				t.Fatal(err)
			}
		}
		dbs[d.db.Name()] = db
	}
	if _, err := f.dbs.Stop(ctx(t), tenant, parked.ID(), "manual", meta); err != nil {
		t.Fatal(err)
	}
	held, err := dbs["big"].Conn(ctx(t)) // opened before the restriction
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := held.PingContext(ctx(t)); err != nil {
		t.Fatal(err)
	}
	f.enforce(t, 0) // nothing measured: nothing to do

	// Half a GiB each: exactly the limit, which restricts.
	f.measure(t, tenant, big.ID(), 1<<29)
	f.enforce(t, 0)
	f.measure(t, tenant, small.ID(), 1<<29)
	f.measure(t, otherTenant, bystander.ID(), 1<<29)
	f.clock.Advance(time.Minute)
	f.enforce(t, 3)
	for _, d := range []*domain.Database{big, small, parked} {
		events := f.events(t, d.ID().Stream())
		want := domain.DatabaseWritesRestricted{Reason: "storage_quota", Used: 1 << 30, Limit: 1 << 30, At: f.clock.Now()}
		if got, ok := events[len(events)-1].(domain.DatabaseWritesRestricted); !ok || got.Reason != want.Reason ||
			got.Used != want.Used || got.Limit != want.Limit || !got.At.Equal(want.At) {
			t.Errorf("%s: last event %#v, want %#v", d.Name(), events[len(events)-1], want)
		}
		if v := f.view(t, tenant, d.ID()); !v.WritesRestricted() {
			t.Errorf("%s: the read model does not show the restriction", d.Name())
		}
	}
	if v := f.view(t, tenant, parked.ID()); v.State != domain.StateStopped {
		t.Errorf("parked is %s after the restriction, want stopped", v.State)
	}
	if types, _ := f.stream(t, bystander.ID().Stream()); count(types, domain.DatabaseWritesRestricted{}.EventType()) != 0 || f.view(t, otherTenant, bystander.ID()).WritesRestricted() {
		t.Errorf("the other tenant's database was restricted: %v", types)
	}
	if _, err := held.ExecContext(ctx(t), `INSERT INTO t VALUES (4)`); err == nil {
		t.Error("a connection opened before the restriction still inserts")
	}
	restricted := func(name string, db *sql.DB) {
		t.Helper()
		for _, stmt := range []string{`INSERT INTO t VALUES (5)`, `UPDATE t SET x = x + 1`, `CREATE TABLE more (x INT)`} {
			if _, err := db.ExecContext(ctx(t), stmt); errno(err) != 1142 {
				t.Errorf("%s: %s while restricted: %v, want error 1142", name, stmt, err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx(t), `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
			t.Errorf("%s: SELECT while restricted: %v", name, err)
		}
	}
	restricted("big", dbs["big"])
	restricted("small", dbs["small"])
	if _, err := dbs["big"].ExecContext(ctx(t), `DELETE FROM t WHERE x = 1`); err != nil {
		t.Errorf("DELETE while restricted: %v", err)
	}
	if _, err := dbs["bystander"].ExecContext(ctx(t), `INSERT INTO t VALUES (5)`); err != nil {
		t.Errorf("the other tenant cannot insert: %v", err)
	}

	before := map[domain.DatabaseID]int{}
	for _, d := range []*domain.Database{big, small, parked} {
		types, _ := f.stream(t, d.ID().Stream())
		before[d.ID()] = len(types)
	}
	f.enforce(t, 0)
	// Starting the stopped database does not undo its restriction.
	if _, err := f.dbs.Start(ctx(t), tenant, parked.ID(), meta); err != nil {
		t.Fatal(err)
	}
	before[parked.ID()]++
	for _, d := range []*domain.Database{big, small, parked} {
		if types, _ := f.stream(t, d.ID().Stream()); len(types) != before[d.ID()] {
			t.Errorf("%s: stream %v after a second EnforceStorage, want %d events", d.Name(), types, before[d.ID()])
		}
	}
	restricted("parked after its start", mustDial(t, f.conn(t, tenant, parked.ID())))

	// One byte under the limit: every database gets its writes back.
	f.measure(t, tenant, small.ID(), 1<<29-1)
	f.enforce(t, 3)
	for _, d := range []*domain.Database{big, small, parked} {
		events := f.events(t, d.ID().Stream())
		if _, ok := events[len(events)-1].(domain.DatabaseWritesRestored); !ok {
			t.Errorf("%s: last event %#v, want database.writes_restored.v1", d.Name(), events[len(events)-1])
		}
		if f.view(t, tenant, d.ID()).WritesRestricted() {
			t.Errorf("%s: the read model still shows the restriction", d.Name())
		}
		db := mustDial(t, f.conn(t, tenant, d.ID()))
		if _, err := db.ExecContext(ctx(t), `CREATE TABLE more (x INT)`); err != nil {
			t.Errorf("%s: CREATE TABLE after the restore: %v", d.Name(), err)
		}
		if _, err := db.ExecContext(ctx(t), `INSERT INTO t VALUES (6)`); err != nil {
			t.Errorf("%s: INSERT after the restore: %v", d.Name(), err)
		}
	}
	f.enforce(t, 0)
}

// TestDatabaseRestrictionLostToDelete: EnforceStorage restricts a database's writes on the server
// while a Delete records first. Retried, the restriction has nothing to do on a deleted database;
// the server must not keep it unrecorded, or the database, restored under the quota, would stay
// read-only for good.
func TestDatabaseRestrictionLostToDelete(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "lost@example.com")
	d := f.running(t, tenant, owner, "contested", "")
	appends := 0
	store := &dbHookedStore{Store: f.store,
		beforeRead: func(context.Context, string) {},
		beforeAppend: func(c context.Context, a eventstore.Append) {
			if c.Value(actorKey{}) == "enforce" {
				if appends++; appends == 1 { // restricted on the server, not yet recorded
					if _, err := f.dbs.Delete(ctx(t), tenant, d.ID(), "contested", time.Hour, meta); err != nil {
						t.Errorf("Delete: %v", err)
					}
				}
			}
		},
	}
	dbs := commands.NewDatabases(store, f.vault, f.fleet, f.runtime, f.views, f.db, f.clock.Now, quiet())
	f.measure(t, tenant, d.ID(), 2<<30)
	if n, err := dbs.EnforceStorage(context.WithValue(ctx(t), actorKey{}, "enforce")); err != nil || n != 0 {
		t.Fatalf("EnforceStorage: %d, %v; want 0 (the database was deleted meanwhile)", n, err)
	}
	if appends != 1 {
		t.Fatalf("%d appends, want the one that lost", appends)
	}
	if loaded := f.events(t, d.ID().Stream()); count(typesOf(loaded), domain.DatabaseWritesRestricted{}.EventType()) != 0 {
		t.Fatalf("stream %v, want no restriction recorded", typesOf(loaded))
	}
	f.measure(t, tenant, d.ID(), 1000)
	if _, err := f.dbs.Restore(ctx(t), tenant, d.ID(), meta); err != nil {
		t.Fatal(err)
	}
	db := mustDial(t, f.conn(t, tenant, d.ID()))
	if _, err := db.ExecContext(ctx(t), `CREATE TABLE t (x INT)`); err != nil {
		t.Errorf("the restored database, under its quota, cannot create a table: %v", err)
	}
	f.enforce(t, 0)
}

func typesOf(events []domain.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.EventType()
	}
	return out
}

func TestDatabaseProvisioningFailure(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "fail@example.com")
	server := f.fleet.Servers()[0]
	d := f.create(t, tenant, owner, "broken", domain.TemplateSample)
	r := d.Requested()
	// An attempt that created schema and accounts, and a table the sample cannot fill: loading
	// the sample fails with a server error (not an unreachable server), so provisioning gives up.
	if _, _, err := server.Provision(ctx(t), sandbox.Spec{ID: string(d.ID()), Charset: r.Charset, Collation: r.Collation, MaxUserConnections: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.ExecContext(ctx(t), "CREATE TABLE `"+sandbox.SchemaName(f.prefix, string(d.ID()))+"`.customers (x INT)"); err != nil {
		t.Fatal(err)
	}
	f.provisionAll(t)
	v := f.view(t, tenant, d.ID())
	if v.State != domain.StateFailed || v.FailureReason == "" {
		t.Fatalf("state %s, reason %q; want failed", v.State, v.FailureReason)
	}
	if q := f.quota(t, tenant); q.Databases() != 0 {
		t.Errorf("quota counts %d after the failure, want 0", q.Databases())
	}

	t.Run("no working account is left behind", func(t *testing.T) {
		c, err := f.dbs.Connection(ctx(t), f.load(t, tenant, d.ID()), "", 0)
		if err != nil {
			return // no stored password: no account that anyone was given
		}
		if db, err := dial(t, c); err == nil {
			var n int
			db.QueryRowContext(ctx(t), `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()`).Scan(&n)
			t.Errorf("the failed database (quota released) still accepts its read-write account (%d tables); schema exists %v",
				n, f.schemaExists(t, d.ID()))
		}
	})

	t.Run("restoring a failed database does not count it", func(t *testing.T) {
		if _, err := f.dbs.Delete(ctx(t), tenant, d.ID(), "broken", time.Hour, meta); err != nil {
			t.Fatalf("Delete of the failed database: %v", err)
		}
		restored, err := f.dbs.Restore(ctx(t), tenant, d.ID(), meta)
		if err != nil {
			t.Fatal(err)
		}
		if restored.State() != domain.StateFailed {
			t.Errorf("restored to %s, want failed", restored.State())
		}
		used, _, _ := f.views.DatabaseUsage(ctx(t), tenant)
		if q := f.quota(t, tenant); q.Databases() != used {
			t.Errorf("the quota stream counts %d databases, the read model's usage %d (a failed database counts in one only)", q.Databases(), used)
		}
	})
}

// dbHookedStore lets a test hold an EventStore call of one command until another reached a point.
type dbHookedStore struct {
	*eventstore.Store
	beforeRead   func(ctx context.Context, streamID string)
	beforeAppend func(ctx context.Context, a eventstore.Append)
}

func (s *dbHookedStore) ReadStream(ctx context.Context, streamID string, after int64) ([]eventstore.Envelope, error) {
	s.beforeRead(ctx, streamID)
	return s.Store.ReadStream(ctx, streamID, after)
}

func (s *dbHookedStore) Append(ctx context.Context, a eventstore.Append) (eventstore.Appended, error) {
	s.beforeAppend(ctx, a)
	return s.Store.Append(ctx, a)
}

type actorKey struct{}

// TestDatabaseStartDeleteRace: a stopped database, Start and Delete at once. Each acts on the
// server before recording; the loser's decision is made again on the winner's state. Forced
// order: Delete locks, Start unlocks, Delete records, Start's record conflicts and Start, retried
// on a deleted database, gives up. The accounts must not stay unlocked on a deleted database.
func TestDatabaseStartDeleteRace(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "race@example.com")
	d := f.running(t, tenant, owner, "contested", "")
	if _, err := f.dbs.Stop(ctx(t), tenant, d.ID(), "manual", meta); err != nil {
		t.Fatal(err)
	}
	c := f.conn(t, tenant, d.ID())

	deleteActed, startActed, deleteRecorded := make(chan struct{}), make(chan struct{}), make(chan struct{})
	wait := func(ch chan struct{}) {
		select {
		case <-ch:
		case <-time.After(10 * time.Second): // a broken schedule fails below instead of hanging
			t.Error("the forced schedule did not happen")
		}
	}
	var startReads int
	store := &dbHookedStore{Store: f.store,
		beforeRead: func(c context.Context, streamID string) {
			if c.Value(actorKey{}) == "start" && streamID == d.ID().Stream() {
				if startReads++; startReads == 1 {
					wait(deleteActed) // Start decides after Delete locked
				}
			}
		},
		beforeAppend: func(c context.Context, a eventstore.Append) {
			switch c.Value(actorKey{}) {
			case "delete":
				close(deleteActed)
				wait(startActed)
			case "start":
				if startReads == 1 {
					close(startActed)
					wait(deleteRecorded)
				}
			}
		},
	}
	dbs := commands.NewDatabases(store, f.vault, f.fleet, f.runtime, f.views, f.db, f.clock.Now, quiet())
	var deleteErr, startErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, startErr = dbs.Start(context.WithValue(ctx(t), actorKey{}, "start"), tenant, d.ID(), meta)
	}()
	_, deleteErr = dbs.Delete(context.WithValue(ctx(t), actorKey{}, "delete"), tenant, d.ID(), "contested", time.Hour, meta)
	close(deleteRecorded)
	<-done
	if deleteErr != nil {
		t.Fatalf("Delete: %v", deleteErr)
	}
	if !errors.Is(startErr, domain.ErrConflict) {
		t.Errorf("Start: %v, want ErrConflict (the database is deleted)", startErr)
	}
	if v := f.view(t, tenant, d.ID()); v.State != domain.StateDeleted {
		t.Fatalf("state %s, want deleted", v.State)
	}
	if _, err := dial(t, c); errno(err) != errAccountLocked {
		t.Errorf("connection to the deleted database: %v, want error %d (locked)", err, errAccountLocked)
	}
}

func TestSetSubQuotaLimitsAMembersDatabases(t *testing.T) {
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "quota@example.com")
	meta := eventstore.Metadata{}
	stranger := domain.UserID(uuid.NewString())
	if err := f.dbs.SetSubQuota(ctx(t), tenant, stranger, domain.MemberQuota{MaxDatabases: ptr(int64(1))}, meta); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("sub-quota of a non-member = %v, want ErrNotFound", err)
	}
	if err := f.dbs.SetSubQuota(ctx(t), tenant, owner, domain.MemberQuota{MaxDatabases: ptr(int64(6))}, meta); err == nil {
		t.Fatal("a sub-quota above the free plan's 5 databases was accepted")
	}
	if err := f.dbs.SetSubQuota(ctx(t), tenant, owner, domain.MemberQuota{MaxDatabases: ptr(int64(1))}, meta); err != nil {
		t.Fatal(err)
	}
	f.create(t, tenant, owner, "first", domain.TemplateBlank)
	_, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: owner, Name: "second"})
	var quota *domain.QuotaExceededError
	if !errors.As(err, &quota) || quota.Resource != "user_databases" || quota.Limit != 1 {
		t.Fatalf("create over the sub-quota = %v, want quota_exceeded on user_databases (limit 1)", err)
	}
	if err := f.dbs.SetSubQuota(ctx(t), tenant, owner, domain.MemberQuota{}, meta); err != nil {
		t.Fatal(err)
	}
	f.create(t, tenant, owner, "second", domain.TemplateBlank)
	q, err := f.dbs.Quota(ctx(t), tenant)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.SubQuota(owner); ok || q.DatabasesOf(owner) != 2 {
		t.Fatalf("after removing the sub-quota: sub-quota set %v, owner has %d databases; want none and 2", ok, q.DatabasesOf(owner))
	}
}

func TestSchemaTemplateRunsTheCreatorsDDLOnTheDatabasesOwnAccount(t *testing.T) {
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "ddl@example.com")
	create := func(name, ddl string) (*domain.Database, error) {
		d, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: owner, Role: domain.RoleTenantAdmin,
			Name: name, Template: domain.TemplateSchema, SchemaSQL: ddl, Meta: meta})
		return d, err
	}
	t.Run("refused before anything is created", func(t *testing.T) {
		for _, ddl := range []string{
			"CREATE TABLE mysql.evil (a INT)",
			"CREATE USER bob",
			"INSERT INTO a VALUES (1)",
			"CREATE TABLE a (id INT); DROP TABLE a",
			"CREATE PROCEDURE p() BEGIN SELECT 1; END", // the tenant does not allow procedures
			// ... however the statement is written (issue 10, item 12): the same checker as /query
			"CREATE DEFINER=CURRENT_USER PROCEDURE p() SELECT 1",
			"CREATE /*x*/ FUNCTION f() RETURNS INT RETURN 1",
			"CREATE TABLE a (id INT); CREATE DEFINER = CURRENT_USER() TRIGGER tr BEFORE INSERT ON a FOR EACH ROW SET NEW.id = 1",
			"CREATE AGGREGATE FUNCTION g(x INT) RETURNS INT BEGIN RETURN 1; END",
			"CREATE TABLE a (id INT) DATA DIRECTORY = '/tmp'",
			"CREATE VIEW v AS SELECT GET_LOCK('clouddb.rebuild.users', 0) AS l",
			"CREATE TABLE a (id INT) /*!99999 , b INT */",
		} {
			var invalid *domain.ValidationError
			if _, err := create("refused", ddl); !errors.As(err, &invalid) || invalid.Fields["schema_sql"] == "" {
				t.Errorf("schema_sql %q: %v, want a validation error on schema_sql", ddl, err)
			}
		}
		if q := f.quota(t, tenant); q.Databases() != 0 {
			t.Fatalf("refused templates counted %d databases", q.Databases())
		}
	})
	t.Run("built as the database's account", func(t *testing.T) {
		if _, err := f.tenants.ChangeSettings(ctx(t), tenant, commands.SettingsPatch{AllowProcedures: ptr(true)}, meta); err != nil {
			t.Fatal(err)
		}
		d, err := create("built", `CREATE TABLE a (id INT PRIMARY KEY, name VARCHAR(20));
			CREATE TABLE b (id INT PRIMARY KEY, a_id INT, FOREIGN KEY (a_id) REFERENCES a (id));
			CREATE VIEW v AS SELECT id FROM a;
			CREATE PROCEDURE p() BEGIN SELECT COUNT(*) FROM a; END`)
		if err != nil {
			t.Fatal(err)
		}
		f.provisionAll(t)
		if v := f.view(t, tenant, d.ID()); v.State != domain.StateRunning {
			t.Fatalf("state %s (%s), want running", v.State, v.FailureReason)
		}
		c := f.conn(t, tenant, d.ID())
		db := mustDial(t, c)
		var definer string
		if err := db.QueryRowContext(ctx(t), `SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_NAME = 'p'`).Scan(&definer); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(definer, c.Username+"@") {
			t.Fatalf("the procedure's definer is %s, want the database's own account %s", definer, c.Username)
		}
		var tables int
		if err := db.QueryRowContext(ctx(t), `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()`).Scan(&tables); err != nil || tables != 3 {
			t.Fatalf("%d tables and views (%v), want 3", tables, err)
		}
	})
	t.Run("a failing statement fails the database and keeps nothing", func(t *testing.T) {
		d, err := create("broken", "CREATE TABLE t (a INT); CREATE TABLE t (a INT)")
		if err != nil {
			t.Fatal(err)
		}
		f.provisionAll(t)
		v := f.view(t, tenant, d.ID())
		if v.State != domain.StateFailed || !strings.Contains(v.FailureReason, "statement 2") {
			t.Fatalf("state %s, reason %q; want failed naming statement 2", v.State, v.FailureReason)
		}
		var schemas int
		schema := sandbox.SchemaName(f.prefix, string(d.ID()))
		if err := f.admin.QueryRowContext(ctx(t), `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`, schema).Scan(&schemas); err != nil || schemas != 0 {
			t.Fatalf("the failed database's schema is still there (%d, %v)", schemas, err)
		}
	})
}

// A plan downgrade lowers the members' sub-quotas to fit the smaller plan in the same append, also
// when a sub-quota is being set at the same moment: whichever commits second decides again.
func TestChangePlanFitsSubQuotas(t *testing.T) {
	f := newDBFixture(t)
	owner, tenant := f.owner(t, "downgrade@example.com")
	meta := eventstore.Metadata{}
	const gib = int64(1) << 30
	if _, err := f.tenants.ChangePlan(ctx(t), tenant, domain.PlanPro, meta); err != nil {
		t.Fatal(err)
	}
	if err := f.dbs.SetSubQuota(ctx(t), tenant, owner, domain.MemberQuota{MaxDatabases: ptr(int64(40)),
		MaxStorageBytes: ptr(40 * gib), MaxConnections: ptr(int64(80))}, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.tenants.ChangePlan(ctx(t), tenant, domain.PlanFree, meta); err != nil {
		t.Fatal(err)
	}
	got := f.quota(t, tenant).MemberQuota(owner)
	if *got.MaxDatabases != 5 || *got.MaxStorageBytes != gib || *got.MaxConnections != 10 {
		t.Fatalf("after the downgrade: databases %d, storage %d, connections %d; want the free plan's 5, %d, 10",
			*got.MaxDatabases, *got.MaxStorageBytes, *got.MaxConnections, gib)
	}

	for round := range 5 {
		if _, err := f.tenants.ChangePlan(ctx(t), tenant, domain.PlanPro, meta); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := f.dbs.SetSubQuota(ctx(t), tenant, owner, domain.MemberQuota{MaxDatabases: ptr(int64(50))}, meta); err != nil &&
				!errors.As(err, new(*domain.QuotaExceededError)) {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := f.tenants.ChangePlan(ctx(t), tenant, domain.PlanFree, meta); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		if n, ok := f.quota(t, tenant).SubQuota(owner); !ok || n > 5 {
			t.Fatalf("round %d: the owner's database sub-quota is %d (set %v) on the free plan's 5", round, n, ok)
		}
	}
}
