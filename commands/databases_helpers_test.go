package commands_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/projections"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// dbFixture is the identity fixture plus the databases side as cmd/clouddb wires it: the
// databases projector in the runtime, a sandbox.Fleet on the test server (RDS-B) with a physical
// name prefix of its own, and the Databases handlers, all on the fixture's settable clock. Every
// schema and account with the prefix is dropped when the test ends.
type dbFixture struct {
	*fixture
	prefix string
	fleet  *sandbox.Fleet
	dbs    *commands.Databases
	admin  *sql.DB // root on the test server, for looking behind the handlers' backs
}

// newPrefix is "t" + 6 random lower-case letters + "_": unique per test, within the 9 characters
// a sandbox prefix may have.
func newPrefix() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 6)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return "t" + string(b) + "_"
}

// newDBFixture wires the databases side on a fleet of dsns (the test server alone when none).
func newDBFixture(t *testing.T, dsns ...string) *dbFixture {
	t.Helper()
	if len(dsns) == 0 {
		dsns = []string{testdb.ServerDSN()}
	}
	prefix := newPrefix()
	admin, err := sql.Open("mysql", testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after the projections stopped and the fleet closed.
	t.Cleanup(func() {
		defer admin.Close()
		dropPrefixed(t, admin, prefix)
	})

	f := newFixture(t)
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fleet, err := sandbox.OpenFleet(c, dsns, prefix, quiet())
	if err != nil {
		t.Fatalf("open fleet %v: %v", dsns, err)
	}
	t.Cleanup(func() { fleet.Close() })
	return &dbFixture{
		fixture: f, prefix: prefix, fleet: fleet, admin: admin,
		dbs: commands.NewDatabases(f.store, f.vault, fleet, f.runtime, f.views, f.db, f.clock.Now, quiet()),
	}
}

// likePrefix is prefix as a LIKE pattern matching the names that start with it ('_' escaped).
func likePrefix(prefix string) string {
	return strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`).Replace(prefix) + "%"
}

// dropPrefixed drops every account and schema whose name starts with prefix.
func dropPrefixed(t *testing.T, admin *sql.DB, prefix string) {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := admin.QueryContext(c, `SELECT User, Host FROM mysql.user WHERE User LIKE ?`, likePrefix(prefix))
	if err != nil {
		t.Errorf("cleanup: list accounts: %v", err)
		return
	}
	var accounts []string
	for rows.Next() {
		var user, host string
		if err := rows.Scan(&user, &host); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		accounts = append(accounts, "`"+user+"`@`"+host+"`")
	}
	rows.Close()
	for _, a := range accounts {
		if _, err := admin.ExecContext(c, "DROP USER IF EXISTS "+a); err != nil {
			t.Errorf("cleanup: drop user %s: %v", a, err)
		}
	}
	rows, err = admin.QueryContext(c, `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?`, likePrefix(prefix))
	if err != nil {
		t.Errorf("cleanup: list schemas: %v", err)
		return
	}
	var schemas []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		schemas = append(schemas, s)
	}
	rows.Close()
	for _, s := range schemas {
		if _, err := admin.ExecContext(c, "DROP DATABASE IF EXISTS `"+s+"`"); err != nil {
			t.Errorf("cleanup: drop schema %s: %v", s, err)
		}
	}
}

// owner signs up a verified user and gives them a free tenant.
func (f *dbFixture) owner(t *testing.T, email string) (domain.UserID, domain.TenantID) {
	t.Helper()
	u := f.user(t, email)
	return u, f.tenant(t, u)
}

// member signs up a user and makes them a developer of tenant.
func (f *dbFixture) member(t *testing.T, tenant domain.TenantID, admin domain.UserID, email string) domain.UserID {
	t.Helper()
	u := f.user(t, email)
	f.invite(t, tenant, admin, email, domain.RoleDeveloper)
	if _, joined, err := f.identity.AcceptInvitation(ctx(t), f.token(t, email, "/invitations/accept"), "", "", meta); err != nil || joined != u {
		t.Fatalf("accept invitation of %s: joined %s, %v", email, joined, err)
	}
	return u
}

// create requests a database and fails the test unless it is recorded.
func (f *dbFixture) create(t *testing.T, tenant domain.TenantID, owner domain.UserID, name, template string) *domain.Database {
	t.Helper()
	d, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: owner, Name: name, Template: template, Meta: meta})
	if err != nil {
		t.Fatalf("create database %q: %v", name, err)
	}
	return d
}

// provisionAll runs the provisioning reactor until it finds nothing left to do and returns how
// many databases it handled; the read model has caught up when it returns.
func (f *dbFixture) provisionAll(t *testing.T) int {
	t.Helper()
	total := 0
	for {
		n, err := f.dbs.ProvisionDue(ctx(t))
		if err != nil && !errors.Is(err, commands.ErrWorkWaits) {
			t.Fatalf("ProvisionDue: %v", err)
		}
		total += n
		f.settle(t)
		if n < 10 {
			return total
		}
	}
}

// running creates a database and provisions it, and fails the test unless it is running.
func (f *dbFixture) running(t *testing.T, tenant domain.TenantID, owner domain.UserID, name, template string) *domain.Database {
	t.Helper()
	d := f.create(t, tenant, owner, name, template)
	f.provisionAll(t)
	if v := f.view(t, tenant, d.ID()); v.State != domain.StateRunning {
		t.Fatalf("database %q is %s after provisioning, want running (reason %q)", name, v.State, v.FailureReason)
	}
	return f.load(t, tenant, d.ID())
}

// load reads a database from its stream.
func (f *dbFixture) load(t *testing.T, tenant domain.TenantID, id domain.DatabaseID) *domain.Database {
	t.Helper()
	d, err := f.dbs.Database(ctx(t), tenant, id)
	if err != nil {
		t.Fatalf("load database %s: %v", id, err)
	}
	return d
}

// view is the read model's row of a database, once the projectors caught up.
func (f *dbFixture) view(t *testing.T, tenant domain.TenantID, id domain.DatabaseID) projections.DatabaseView {
	t.Helper()
	f.settle(t)
	v, err := f.views.Database(ctx(t), tenant, id)
	if err != nil {
		t.Fatalf("read model of database %s: %v", id, err)
	}
	return v
}

// conn returns the read-write connection details of a database.
func (f *dbFixture) conn(t *testing.T, tenant domain.TenantID, id domain.DatabaseID) commands.Connection {
	t.Helper()
	c, err := f.dbs.Connection(ctx(t), f.load(t, tenant, id), "", 0)
	if err != nil {
		t.Fatalf("connection of %s: %v", id, err)
	}
	return c
}

// quota rebuilds a tenant's quota from its stream.
func (f *dbFixture) quota(t *testing.T, tenant domain.TenantID) *domain.Quota {
	t.Helper()
	envs, err := f.store.ReadStream(ctx(t), tenant.QuotaStream(), 0)
	if err != nil {
		t.Fatal(err)
	}
	history := make([]domain.Event, len(envs))
	for i, env := range envs {
		if history[i], err = f.store.Registry().Decode(env); err != nil {
			t.Fatal(err)
		}
	}
	var version int64
	if len(envs) > 0 {
		version = envs[len(envs)-1].StreamVersion
	}
	q, err := domain.RebuildQuota(history, version)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// events decodes a stream's events.
func (f *dbFixture) events(t *testing.T, stream string) []domain.Event {
	t.Helper()
	envs, err := f.store.ReadStream(ctx(t), stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]domain.Event, len(envs))
	for i, env := range envs {
		if out[i], err = f.store.Registry().Decode(env); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// schemaExists and accounts look at the server with root.
func (f *dbFixture) schemaExists(t *testing.T, id domain.DatabaseID) bool {
	t.Helper()
	var n int
	if err := f.admin.QueryRowContext(ctx(t), `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`,
		sandbox.SchemaName(f.prefix, string(id))).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func (f *dbFixture) accounts(t *testing.T, id domain.DatabaseID) int {
	t.Helper()
	rw, ro := sandbox.AccountNames(f.prefix, string(id))
	var n int
	if err := f.admin.QueryRowContext(ctx(t), `SELECT COUNT(*) FROM mysql.user WHERE User IN (?, ?)`, rw, ro).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// tenantDSN is the go-sql-driver DSN of connection details.
func tenantDSN(c commands.Connection) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net = c.Username, c.Password, "tcp"
	cfg.Addr = net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	cfg.DBName = c.Database
	cfg.Timeout = 5 * time.Second
	return cfg.FormatDSN()
}

// dial opens a pool with connection details and pings it; the error is the ping's.
func dial(t *testing.T, c commands.Connection) (*sql.DB, error) {
	t.Helper()
	db, err := sql.Open("mysql", tenantDSN(c))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctx(t)); err != nil {
		db.Close()
		return nil, err
	}
	t.Cleanup(func() { db.Close() })
	return db, nil
}

// mustDial opens a pool that works with connection details.
func mustDial(t *testing.T, c commands.Connection) *sql.DB {
	t.Helper()
	db, err := dial(t, c)
	if err != nil {
		t.Fatalf("connect as %s to %s:%d/%s: %v", c.Username, c.Host, c.Port, c.Database, err)
	}
	return db
}

// errno is the server error number of err, or 0.
func errno(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func ptr[T any](v T) *T { return &v }

// tcpProxy forwards a local port to the test server and can be taken down and brought back on the
// same port: a sandbox server that stops answering, which OpenFleet does not accept at start.
type tcpProxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, addr: "127.0.0.1:0", conns: map[net.Conn]struct{}{}}
	p.up(t)
	t.Cleanup(p.down)
	return p
}

// up listens again on the proxy's address.
func (p *tcpProxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy listen %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.accept(ln)
}

func (p *tcpProxy) accept(ln net.Listener) {
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // went down meanwhile
			p.mu.Unlock()
			client.Close()
			server.Close()
			return
		}
		p.conns[client], p.conns[server] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src) //nolint:errcheck // ends when either side closes
			dst.Close()
			src.Close()
		}
		go pipe(client, server)
		go pipe(server, client)
	}
}

// down stops listening (new connections are refused) and cuts every forwarded connection.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// dsn is an admin DSN reaching the test server through the proxy.
func (p *tcpProxy) dsn(t *testing.T) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", p.addr, ""
	return cfg.FormatDSN()
}
