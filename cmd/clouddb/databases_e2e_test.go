package main

// End-to-end tests of tenant databases (POST /databases, GET /databases, GET /databases/{id}):
// real HTTP against a started App whose sandbox server (RDS-B) is the local MariaDB, and real
// MySQL connections with the connection details the API hands out.
//
// Every test starts its own App with its own CLOUDDB_SANDBOX_PREFIX ("t" + 6 random letters +
// "_"), so the schemas and accounts of tests running side by side (or of other packages' tests on
// the same server) never meet, and drops every schema and account with that prefix from the
// server when it ends, after the App is closed, then checks that nothing is left.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// ---- sandbox prefix and clean-up ----

// newSandboxPrefix is a CLOUDDB_SANDBOX_PREFIX no other test uses: "t", 6 random lower-case
// letters, "_" (8 characters: account names stay within MySQL's 32).
func newSandboxPrefix() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return "t" + string(b) + "_"
}

// likePrefix is a LIKE pattern matching names that start with prefix ('_' and '%' escaped).
func likePrefix(prefix string) string {
	return strings.NewReplacer(`\`, `\\`, "_", `\_`, "%", `\%`).Replace(prefix) + "%"
}

// testServerAddr is host:port of the test server, the App's default sandbox server: what
// connection details name (127.0.0.1:3306 on a machine whose MariaDB answers there).
func testServerAddr(tb testing.TB) string {
	tb.Helper()
	cfg, err := mysql.ParseDSN(testdb.ServerDSN())
	if err != nil || cfg.Net != "tcp" {
		tb.Fatalf("the test server %q is not on TCP: %v", testdb.ServerDSN(), err)
	}
	return cfg.Addr
}

// openSandboxAdmin opens a root pool on the test server (the App's default sandbox server).
func openSandboxAdmin(tb testing.TB) *sql.DB {
	tb.Helper()
	cfg, err := mysql.ParseDSN(testdb.ServerDSN())
	if err != nil {
		tb.Fatal(err)
	}
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// sandboxAccount is a MySQL account of the server.
type sandboxAccount struct{ user, host string }

// sandboxObjects lists the schemas and the accounts on the server whose names start with prefix.
func sandboxObjects(ctx context.Context, db *sql.DB, prefix string) (schemas []string, accounts []sandboxAccount, err error) {
	rows, err := db.QueryContext(ctx, `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?`, likePrefix(prefix))
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, nil, err
		}
		if strings.HasPrefix(s, prefix) { // information_schema compares case-insensitively
			schemas = append(schemas, s)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows, err = db.QueryContext(ctx, `SELECT user, host FROM mysql.user WHERE user LIKE ?`, likePrefix(prefix))
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var a sandboxAccount
		if err := rows.Scan(&a.user, &a.host); err != nil {
			return nil, nil, err
		}
		if strings.HasPrefix(a.user, prefix) {
			accounts = append(accounts, a)
		}
	}
	sort.Strings(schemas)
	return schemas, accounts, rows.Err()
}

func backquote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// dropSandboxObjects drops every account and schema of prefix from the server and checks that
// none is left. It returns how many schemas and accounts it dropped.
func dropSandboxObjects(tb testing.TB, prefix string) (int, int) {
	tb.Helper()
	db := openSandboxAdmin(tb)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	schemas, accounts, err := sandboxObjects(ctx, db, prefix)
	if err != nil {
		tb.Errorf("clean-up of sandbox prefix %s: %v", prefix, err)
		return 0, 0
	}
	for _, a := range accounts {
		if _, err := db.ExecContext(ctx, "DROP USER IF EXISTS "+backquote(a.user)+"@"+backquote(a.host)); err != nil {
			tb.Errorf("clean-up: drop account %s@%s: %v", a.user, a.host, err)
		}
	}
	for _, s := range schemas {
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+backquote(s)); err != nil {
			tb.Errorf("clean-up: drop schema %s: %v", s, err)
		}
	}
	left, leftAccounts, err := sandboxObjects(ctx, db, prefix)
	if err != nil {
		tb.Errorf("clean-up of sandbox prefix %s: %v", prefix, err)
	} else if len(left) > 0 || len(leftAccounts) > 0 {
		tb.Errorf("clean-up of sandbox prefix %s left schemas %v and accounts %v", prefix, left, leftAccounts)
	}
	return len(schemas), len(accounts)
}

// ---- the App ----

// dbEnvOptions tune startDatabaseE2E.
type dbEnvOptions struct {
	e2eOptions
	SandboxDSN string // CLOUDDB_SANDBOX_DSN; empty: the management server
}

// startDatabaseE2E is startE2E (same App, clock, log capture and leak scan of the event log and
// the process log) with a sandbox prefix of the test's own. Every schema and account of that
// prefix is dropped from the server when the test ends, after the App is closed.
func startDatabaseE2E(t *testing.T, opts dbEnvOptions) (*e2eEnv, string) {
	t.Helper()
	prefix := newSandboxPrefix()
	// Registered first, so it runs last: after the App (and its provisioning reactor) is closed.
	t.Cleanup(func() { dropSandboxObjects(t, prefix) })
	env := map[string]string{"CLOUDDB_SANDBOX_PREFIX": prefix, "CLOUDDB_SANDBOX_DSN": opts.SandboxDSN}
	for name, value := range opts.Env {
		env[name] = value
	}
	opts.Env = env
	started := startE2E(t, opts.e2eOptions)
	return started, prefix
}

// dbMember is a verified user logged in to a tenant.
type dbMember struct {
	userID, email, password, tenantID string
	c                                 *e2eClient // authenticated in the tenant
}

// newTenantAdmin signs a user up from ip, lets them create a tenant (they become its
// tenant_admin, on the free plan) and logs them in to it.
func newTenantAdmin(env *e2eEnv, ip, tenantName string) dbMember {
	t := env.t
	t.Helper()
	c := env.client(ip)
	m := dbMember{email: uniqueEmail("dbowner"), password: strongPassword()}
	m.userID = c.signUp(m.email, "Owner of "+tenantName, m.password)
	s := c.login(m.email, m.password, "")
	m.tenantID = c.with(s.access).do("POST", "/tenants", map[string]any{"name": tenantName}).expect(t, 201, "").str("id")
	s = c.login(m.email, m.password, m.tenantID)
	if s.resp.str("tenant.role") != "tenant_admin" {
		t.Fatalf("login to the new tenant: tenant = %v", s.resp.get("tenant"))
	}
	m.c = c.with(s.access)
	return m
}

// invite has admin invite email with role; the invitee (a new account) accepts from ip and logs in.
func invite(env *e2eEnv, admin dbMember, ip, role string) dbMember {
	t := env.t
	t.Helper()
	m := dbMember{email: uniqueEmail(role), password: strongPassword(), tenantID: admin.tenantID}
	r := admin.c.do("POST", "/invitations", map[string]any{"emails": []string{m.email}, "role": role}).expect(t, 201, "")
	if len(r.items("items")) != 1 {
		t.Fatalf("POST /invitations = %s", r.body)
	}
	mail := env.waitMail(m.email, "invited")
	c := env.client(ip)
	r = c.do("POST", "/invitations/accept", map[string]any{"token": mail.token, "name": "A " + role, "password": m.password}).expect(t, 200, "")
	m.userID = r.str("user_id")
	s := c.login(m.email, m.password, "")
	if s.resp.str("tenant.id") != admin.tenantID || s.resp.str("tenant.role") != role {
		t.Fatalf("login of the invited %s: tenant = %v", role, s.resp.get("tenant"))
	}
	m.c = c.with(s.access)
	return m
}

// createDatabase posts a database and expects 201; the password of the connection becomes a
// secret of the leak scan.
func createDatabase(t *testing.T, c *e2eClient, body map[string]any) *e2eResponse {
	t.Helper()
	r := c.do("POST", "/databases", body)
	if pw := r.str("connection.password"); pw != "" {
		c.env.secret(pw, "database password")
	}
	r.expect(t, 201, "")
	if r.str("state") != "running" {
		t.Fatalf("POST /databases %v = 201 in state %q: %s", body, r.str("state"), r.body)
	}
	return r
}

// connect opens a pool with the connection details of a create response (one connection, so
// that USE and session state carry from one statement to the next).
func connect(t *testing.T, r *e2eResponse) *sql.DB {
	t.Helper()
	db, err := openWith(r, r.str("connection.password"))
	if err != nil {
		t.Fatalf("connect as %s to %s: %v", r.str("connection.username"), r.str("connection.database"), err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// openWith connects to the database of a create response with password, and pings it.
func openWith(r *e2eResponse, password string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = r.str("connection.username"), password
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(r.str("connection.host"), fmt.Sprint(r.num("connection.port")))
	cfg.DBName = r.str("connection.database")
	cfg.Timeout = 5 * time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// mysqlCode is the server's error number of err, 0 if none.
func mysqlCode(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func queryStrings(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func queryInt(t *testing.T, db *sql.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// databaseFields are the fields of the database object of API.md (recoverable_until only once
// deleted).
var databaseFields = []string{"id", "name", "state", "charset", "collation", "owner_id", "created_at", "updated_at", "last_used_at", "storage_bytes"}

// checkDatabaseObject checks the database object at path of r ("" for the body itself).
func checkDatabaseObject(t *testing.T, r *e2eResponse, path string) map[string]any {
	t.Helper()
	doc, ok := jsonPath(r.doc, path).(map[string]any)
	if !ok {
		t.Fatalf("%s %s: %q is not a database object: %s", r.method, r.path, path, r.body)
	}
	for _, f := range databaseFields {
		if _, ok := doc[f]; !ok {
			t.Errorf("%s %s: the database object lacks %s: %v", r.method, r.path, f, doc)
		}
	}
	if _, err := uuid.Parse(describe(doc["id"])); err != nil {
		t.Errorf("%s %s: id %v is not a UUID", r.method, r.path, doc["id"])
	}
	for _, f := range []string{"created_at", "updated_at"} {
		s, _ := doc[f].(string)
		if at, err := time.Parse(time.RFC3339, s); err != nil || !strings.HasSuffix(s, "Z") || time.Since(at) > 10*time.Minute || time.Until(at) > 10*time.Minute {
			t.Errorf("%s %s: %s = %v, want a recent RFC 3339 UTC time", r.method, r.path, f, doc[f])
		}
	}
	if doc["last_used_at"] != nil {
		t.Errorf("%s %s: last_used_at = %v, want null (never queried)", r.method, r.path, doc["last_used_at"])
	}
	if doc["storage_bytes"] != 0.0 {
		t.Errorf("%s %s: storage_bytes = %v, want 0", r.method, r.path, doc["storage_bytes"])
	}
	if doc["writes_restricted"] != false {
		t.Errorf("%s %s: writes_restricted = %v, want false", r.method, r.path, doc["writes_restricted"])
	}
	if _, ok := doc["recoverable_until"]; ok {
		t.Errorf("%s %s: recoverable_until on a database that is not deleted: %v", r.method, r.path, doc)
	}
	if _, ok := doc["failure_reason"]; ok && doc["state"] != "failed" {
		t.Errorf("%s %s: failure_reason on a database in state %v", r.method, r.path, doc["state"])
	}
	return doc
}

// ---- tests ----

// Create answers 201 with the database object and connection details that work with a MySQL
// client, see only their own schema, and nothing of the server or of other databases.
func TestDatabaseCreateAndConnect(t *testing.T) {
	env, prefix := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Acme Data")

	owner.c.headers["X-Request-Id"] = "db-create-1"
	r := createDatabase(t, owner.c, map[string]any{"name": "orders_db"})
	delete(owner.c.headers, "X-Request-Id")
	if got := r.header.Get("X-Request-Id"); got != "db-create-1" {
		t.Errorf("X-Request-Id = %q, want the client's db-create-1", got)
	}
	doc := checkDatabaseObject(t, r, "")
	id := r.str("id")
	if r.str("name") != "orders_db" || r.str("charset") != "utf8mb4" || r.str("collation") != "utf8mb4_general_ci" ||
		r.str("owner_id") != owner.userID || r.str("template") != "blank" {
		t.Errorf("POST /databases = %s, want orders_db, utf8mb4 with the server's default collation utf8mb4_general_ci, owned by %s", r.body, owner.userID)
	}
	if _, ok := doc["failure_reason"]; ok {
		t.Errorf("failure_reason on a running database: %v", doc)
	}
	if got := r.header.Get("Location"); got != "/api/v1/databases/"+id {
		t.Errorf("Location = %q", got)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("Cache-Control = %q, want no-store: the response carries a password", cc)
	}
	schema := sandbox.SchemaName(prefix, id)
	rw, ro := sandbox.AccountNames(prefix, id)
	conn, _ := r.get("connection").(map[string]any)
	addr := testServerAddr(t)
	if len(conn) != 6 || r.str("connection.account") != "read_write" || net.JoinHostPort(r.str("connection.host"), fmt.Sprint(r.num("connection.port"))) != addr ||
		r.str("connection.database") != schema || r.str("connection.username") != rw || len(r.str("connection.password")) < 20 {
		t.Errorf("connection = %v, want the server %s, database %s, username %s and a strong password", conn, addr, schema, rw)
	}

	// GET shows the same database, with its connection details but not the password.
	g := owner.c.do("GET", "/databases/"+id, nil).expect(t, 200, "")
	checkDatabaseObject(t, g, "")
	for _, f := range append(databaseFields, "template") {
		if f != "updated_at" && describe(g.get(f)) != describe(r.get(f)) {
			t.Errorf("GET /databases/{id} %s = %v, POST answered %v", f, g.get(f), r.get(f))
		}
	}
	if g.str("connection.username") != rw || g.num("connection.port") != r.num("connection.port") || bytes.Contains(g.body, []byte(r.str("connection.password"))) {
		t.Errorf("GET /databases/{id} = %s, want the read-write connection details without the password", g.body)
	}
	list := owner.c.do("GET", "/databases", nil).expect(t, 200, "")
	if items := list.items("items"); len(items) != 1 || list.str("items.0.id") != id || list.get("items.0.connection") != nil {
		t.Errorf("GET /databases = %s, want the one database without connection details", list.body)
	}

	// The physical schema and accounts on the server.
	admin := openSandboxAdmin(t)
	defer admin.Close()
	var charset, collation string
	if err := admin.QueryRow(`SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA
		WHERE SCHEMA_NAME = ?`, schema).Scan(&charset, &collation); err != nil {
		t.Fatalf("schema %s on the server: %v", schema, err)
	}
	if charset != "utf8mb4" || collation != "utf8mb4_general_ci" {
		t.Errorf("schema %s is %s/%s, want utf8mb4/utf8mb4_general_ci", schema, charset, collation)
	}
	if users := queryStrings(t, admin, `SELECT CONCAT(user, '@', host, ' max ', max_user_connections) FROM mysql.user WHERE user IN (?, ?)`, rw, ro); !slices.Equal(users, []string{
		ro + "@% max 10", rw + "@% max 10"}) {
		t.Errorf("accounts = %v, want %s and %s @%% with MAX_USER_CONNECTIONS 10 (the free plan's max_connections)", users, rw, ro)
	}

	// The details work: DDL, DML and queries in the database's own schema.
	db := connect(t, r)
	if tables := queryStrings(t, db, "SHOW TABLES"); len(tables) != 0 {
		t.Errorf("a blank database has tables %v", tables)
	}
	for _, stmt := range []string{
		"CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(100) NOT NULL)",
		"INSERT INTO notes VALUES (1, 'first'), (2, 'second ✓')",
		"UPDATE notes SET body = CONCAT(body, '!') WHERE id = 1",
		"CREATE INDEX notes_body ON notes (body)",
		"CREATE VIEW note_bodies AS SELECT body FROM notes",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if got := queryStrings(t, db, "SELECT body FROM note_bodies"); !slices.Equal(got, []string{"first!", "second ✓"}) {
		t.Errorf("SELECT = %v", got)
	}
	if got := queryStrings(t, db, "SHOW DATABASES"); !slices.Equal(got, []string{"information_schema", schema}) {
		t.Errorf("SHOW DATABASES = %v, want only information_schema and %s", got, schema)
	}

	// A second database of the same tenant, with a table of its own.
	r2 := createDatabase(t, owner.c, map[string]any{"name": "analytics"})
	other := r2.str("connection.database")
	db2 := connect(t, r2)
	if _, err := db2.Exec("CREATE TABLE secrets (v VARCHAR(10))"); err != nil {
		t.Fatal(err)
	}
	if got := queryStrings(t, db2, "SHOW DATABASES"); !slices.Equal(got, []string{"information_schema", other}) {
		t.Errorf("SHOW DATABASES of the second database = %v", got)
	}

	// Nothing else is reachable from the first database's account.
	for _, tc := range []struct {
		stmt  string
		codes []uint16
	}{
		{"SELECT user FROM mysql.user", []uint16{1142}}, // SELECT command denied
		{"SELECT * FROM mysql.global_priv", []uint16{1142}},
		{"SELECT * FROM " + backquote(other) + ".secrets", []uint16{1142}}, // the other database's table
		{"USE " + backquote(other), []uint16{1044}},                        // access denied to database
		{"CREATE TABLE " + backquote(other) + ".x (i INT)", []uint16{1142}},
		{"CREATE DATABASE " + backquote(schema+"x"), []uint16{1044}},
		// The grant is on the exact name: its '_' is no LIKE wildcard matching another character.
		{"CREATE DATABASE " + backquote(strings.Replace(schema, "_", "x", 1)), []uint16{1044}},
		{"CREATE DATABASE " + backquote(prefix+"other"), []uint16{1044}},
		{"CREATE USER intruder IDENTIFIED BY 'x'", []uint16{1227}}, // needs CREATE USER
		{"GRANT SELECT ON *.* TO " + backquote(rw) + "@'%'", []uint16{1044, 1045, 1142, 1227}},
		{"SHOW PROCESSLIST", nil},
	} {
		_, err := db.Exec(tc.stmt)
		if tc.codes == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.stmt, err)
			}
			continue
		}
		if !slices.Contains(tc.codes, mysqlCode(err)) {
			t.Errorf("%s as %s = %v, want MySQL error %v", tc.stmt, rw, err, tc.codes)
		}
	}
	var file sql.NullString
	if err := db.QueryRow("SELECT LOAD_FILE('/etc/passwd')").Scan(&file); err == nil && file.Valid {
		t.Errorf("LOAD_FILE reads the server's files")
	}
	if got := queryStrings(t, db, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", other); len(got) != 0 {
		t.Errorf("information_schema shows the other database's tables %v", got)
	}
	// performance_schema's session_status, global_status and session_account_connect_attrs are
	// readable by every account on MariaDB: not a schema of the platform.
	if got := queryStrings(t, db, `SELECT DISTINCT TABLE_SCHEMA FROM information_schema.TABLES
		WHERE TABLE_SCHEMA NOT IN ('information_schema', 'performance_schema')`); !slices.Equal(got, []string{schema}) {
		t.Errorf("information_schema.TABLES shows schemas %v, want only %s", got, schema)
	}
	if got := queryStrings(t, db, "SELECT USER FROM information_schema.PROCESSLIST"); slices.ContainsFunc(got, func(u string) bool { return u != rw }) {
		t.Errorf("the processlist shows other users' sessions: %v", got)
	}
}

// The sample template: customers, products and orders with data.
func TestDatabaseSampleTemplate(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Sample Shop")
	r := createDatabase(t, owner.c, map[string]any{"name": "shop", "template": "sample"})
	checkDatabaseObject(t, r, "")
	if r.str("template") != "sample" {
		t.Errorf("template = %q, want sample", r.str("template"))
	}
	db := connect(t, r)
	if got := queryStrings(t, db, "SHOW TABLES"); !slices.Equal(got, []string{"customers", "orders", "products"}) {
		t.Errorf("SHOW TABLES = %v, want customers, orders, products", got)
	}
	for table, want := range map[string]int64{"orders": 300, "customers": 100, "products": 10} {
		if n := queryInt(t, db, "SELECT COUNT(*) FROM "+table); n != want {
			t.Errorf("%s has %d rows, want %d", table, n, want)
		}
	}
	// The rows hang together: every order has its customer and product.
	if n := queryInt(t, db, `SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id
		JOIN products p ON p.id = o.product_id`); n != 300 {
		t.Errorf("orders joined with customers and products = %d rows, want 300", n)
	}
	// The data belongs to the tenant: it can change it.
	if _, err := db.Exec("DELETE FROM orders WHERE id <= 10"); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, db, "SELECT COUNT(*) FROM orders"); n != 290 {
		t.Errorf("orders after deleting 10 = %d", n)
	}
	// A second sample database starts full again, not from the first one's data.
	r2 := createDatabase(t, owner.c, map[string]any{"name": "shop2", "template": "sample"})
	if n := queryInt(t, connect(t, r2), "SELECT COUNT(*) FROM orders"); n != 300 {
		t.Errorf("the second sample database has %d orders, want 300", n)
	}
}

// ?dry_run=true validates and answers the quota impact; nothing is created.
func TestDatabaseDryRun(t *testing.T) {
	env, prefix := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Dry Corp")

	r := owner.c.do("POST", "/databases?dry_run=true", map[string]any{"name": "preview", "charset": "latin1"}).expect(t, 200, "")
	want := map[string]any{"used": 0.0, "after": 1.0, "limit": 5.0}
	if describe(r.get("impact.databases")) != describe(want) {
		t.Errorf("impact.databases = %v, want %v", r.get("impact.databases"), want)
	}
	if impact, _ := r.get("impact").(map[string]any); impact == nil || impact["user_databases"] != nil {
		t.Errorf("impact = %v, want user_databases null (no sub-quota)", r.get("impact"))
	}
	if r.str("impact.charset") != "latin1" || r.str("impact.collation") != "latin1_swedish_ci" || r.str("impact.server") != testServerAddr(t) {
		t.Errorf("impact = %v, want charset latin1, its default collation and the server %s", r.get("impact"), testServerAddr(t))
	}
	if r.get("id") != nil || r.get("connection") != nil {
		t.Errorf("the dry run answered a database: %s", r.body)
	}

	// Nothing was created: no database, no event, nothing on the server, the name is free.
	if items := owner.c.do("GET", "/databases", nil).expect(t, 200, "").items("items"); len(items) != 0 {
		t.Errorf("GET /databases after a dry run = %v", items)
	}
	events := openEventsDB(t, env.dsn)
	var n int
	if err := events.QueryRow(`SELECT COUNT(*) FROM events WHERE event_type LIKE 'database.%' OR event_type LIKE 'quota.%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the dry run recorded %d database or quota events", n)
	}
	admin := openSandboxAdmin(t)
	defer admin.Close()
	if schemas, accounts, err := sandboxObjects(context.Background(), admin, prefix); err != nil || len(schemas)+len(accounts) != 0 {
		t.Errorf("the dry run created schemas %v and accounts %v (%v)", schemas, accounts, err)
	}

	// A dry run validates like a create.
	owner.c.do("POST", "/databases?dry_run=true", map[string]any{"name": "bad name"}).expect(t, 400, "invalid_name")
	r = owner.c.do("POST", "/databases?dry_run=true", map[string]any{"name": "x", "charset": "klingon"}).expect(t, 400, "validation_failed")
	if r.str("error.details.fields.charset") == "" {
		t.Errorf("unknown charset in a dry run: details = %v", r.get("error.details"))
	}
	r = owner.c.do("POST", "/databases?dry_run=maybe", map[string]any{"name": "preview"}).expect(t, 400, "validation_failed")
	if r.str("error.details.fields.dry_run") == "" {
		t.Errorf("dry_run=maybe: details = %v", r.get("error.details"))
	}

	// dry_run=false creates; the impact then counts it.
	createDatabase(t, owner.c, map[string]any{"name": "preview"})
	r = owner.c.do("POST", "/databases?dry_run=1", map[string]any{"name": "another"}).expect(t, 200, "")
	if want := (map[string]any{"used": 1.0, "after": 2.0, "limit": 5.0}); describe(r.get("impact.databases")) != describe(want) {
		t.Errorf("impact.databases with one database = %v, want %v", r.get("impact.databases"), want)
	}
	// "validates everything" (issue 4): a name that is taken would fail the create with 409.
	if r := owner.c.do("POST", "/databases?dry_run=true", map[string]any{"name": "PREVIEW"}); r.status != 409 || r.str("error.code") != "name_taken" {
		t.Errorf("dry run with a taken name = %d %s, want 409 name_taken like the create", r.status, r.body)
	}
}

// Names: ^[A-Za-z0-9_]{1,64}$, unique case-insensitively in the tenant; charset and collation
// checked against the server.
func TestDatabaseNameAndCharsetValidation(t *testing.T) {
	env, prefix := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Name Check")
	c := owner.c

	for _, name := range []string{
		"", "o'brien", `say"hi`, "drop`table", "x`; DROP DATABASE mysql; --", "café", "名前", "ｓｅｌｅｃｔ", "naïve",
		"my db", " orders", "orders\n", "a-b", "a.b", "100%", `back\slash`, "emoji_🙂", strings.Repeat("a", 65),
	} {
		r := c.do("POST", "/databases", map[string]any{"name": name}).expect(t, 400, "invalid_name")
		if !strings.Contains(r.str("error.message"), "64") {
			t.Errorf("invalid name %q: message %q does not say the rule", name, r.str("error.message"))
		}
	}
	c.do("POST", "/databases", map[string]any{}).expect(t, 400, "invalid_name")
	c.do("POST", "/databases", map[string]any{"name": 42}).expect(t, 400, "invalid_request")
	c.do("POST", "/databases", `{"name": "a", "name2": "b"}`).expect(t, 400, "invalid_request")

	// Unique among the tenant's databases, whatever the case.
	first := createDatabase(t, c, map[string]any{"name": "Orders"})
	for _, name := range []string{"Orders", "ORDERS", "orders", "oRdErS"} {
		r := c.do("POST", "/databases", map[string]any{"name": name}).expect(t, 409, "name_taken")
		if r.get("error.details") == nil {
			t.Errorf("name_taken without details")
		}
	}
	if items := c.do("GET", "/databases", nil).expect(t, 200, "").items("items"); len(items) != 1 {
		t.Errorf("after the refused duplicates GET /databases has %d items", len(items))
	}

	// A reserved word is a valid name: the schema's name derives from the id, never the name.
	sel := createDatabase(t, c, map[string]any{"name": "select"})
	if sel.str("connection.database") != sandbox.SchemaName(prefix, sel.str("id")) {
		t.Errorf("schema of %q = %s", "select", sel.str("connection.database"))
	}
	c.do("POST", "/databases", map[string]any{"name": "SELECT"}).expect(t, 409, "name_taken")
	long := createDatabase(t, c, map[string]any{"name": strings.Repeat("a", 64)})
	if long.str("name") != strings.Repeat("a", 64) || first.str("name") != "Orders" {
		t.Errorf("names are not kept as given: %q, %q", long.str("name"), first.str("name"))
	}

	// Charset and collation.
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "cs1", "charset": "klingon"}, "charset"},
		{map[string]any{"name": "cs2", "collation": "klingon_ci"}, "collation"},
		{map[string]any{"name": "cs3", "charset": "latin1", "collation": "utf8mb4_bin"}, "collation"},
		{map[string]any{"name": "cs4", "charset": "utf8mb4", "collation": "latin1_swedish_ci"}, "collation"},
		{map[string]any{"name": "cs5", "charset": "klingon", "collation": "utf8mb4_bin"}, "charset"},
		{map[string]any{"name": "cs6", "charset": "utf8mb4 COLLATE utf8mb4_bin"}, "charset"},
		{map[string]any{"name": "cs7", "collation": "utf8mb4_bin'; DROP DATABASE mysql; --"}, "collation"},
		{map[string]any{"name": "cs8", "template": "bogus"}, "template"},
	} {
		r := c.do("POST", "/databases", tc.body).expect(t, 400, "validation_failed")
		if r.str("error.details.fields."+tc.field) == "" {
			t.Errorf("POST %v: details = %v, want fields.%s", tc.body, r.get("error.details"), tc.field)
		}
	}
	latin := createDatabase(t, c, map[string]any{"name": "legacy", "charset": "LATIN1"})
	if latin.str("charset") != "latin1" || latin.str("collation") != "latin1_swedish_ci" {
		t.Errorf("charset LATIN1 = %s/%s, want latin1/latin1_swedish_ci", latin.str("charset"), latin.str("collation"))
	}
	uni := createDatabase(t, c, map[string]any{"name": "unicode", "collation": "utf8mb4_unicode_ci"})
	if uni.str("charset") != "utf8mb4" || uni.str("collation") != "utf8mb4_unicode_ci" {
		t.Errorf("collation utf8mb4_unicode_ci = %s/%s", uni.str("charset"), uni.str("collation"))
	}
	admin := openSandboxAdmin(t)
	defer admin.Close()
	for _, r := range []*e2eResponse{latin, uni} {
		var set, coll string
		if err := admin.QueryRow(`SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA
			WHERE SCHEMA_NAME = ?`, r.str("connection.database")).Scan(&set, &coll); err != nil {
			t.Fatal(err)
		}
		if set != r.str("charset") || coll != r.str("collation") {
			t.Errorf("schema %s is %s/%s, the API says %s/%s", r.str("connection.database"), set, coll, r.str("charset"), r.str("collation"))
		}
	}
	// Five databases, no more: the refused requests created nothing on the server.
	schemas, accounts, err := sandboxObjects(context.Background(), admin, prefix)
	if err != nil || len(schemas) != 5 || len(accounts) != 10 {
		t.Errorf("server has %d schemas and %d accounts of the test (%v), want 5 and 10", len(schemas), len(accounts), err)
	}
}

// Ten concurrent creates on the free plan (5 databases): exactly five win.
func TestDatabaseQuotaUnderConcurrentCreates(t *testing.T) {
	env, prefix := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Quota Corp")

	const creators = 10
	responses := make([]*e2eResponse, creators)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			responses[i] = owner.c.do("POST", "/databases", map[string]any{"name": fmt.Sprintf("db_%d", i)})
			if pw := responses[i].str("connection.password"); pw != "" {
				env.secret(pw, "database password")
			}
		}()
	}
	close(start)
	wg.Wait()

	var created, refused []string
	for i, r := range responses {
		switch {
		case r.status == 201 && r.str("state") == "running":
			created = append(created, r.str("connection.database"))
		case r.status == 403 && r.str("error.code") == "quota_exceeded":
			refused = append(refused, r.str("error.message"))
			want := map[string]any{"resource": "databases", "used": 5.0, "limit": 5.0}
			if describe(r.get("error.details")) != describe(want) {
				t.Errorf("create %d: quota_exceeded details = %v, want %v", i, r.get("error.details"), want)
			}
		default:
			t.Errorf("create %d = %d %s, want 201 running or 403 quota_exceeded", i, r.status, r.body)
		}
	}
	if len(created) != 5 || len(refused) != 5 {
		t.Fatalf("%d creates: %d created, %d refused with quota_exceeded; want 5 and 5", creators, len(created), len(refused))
	}
	admin := openSandboxAdmin(t)
	defer admin.Close()
	schemas, accounts, err := sandboxObjects(context.Background(), admin, prefix)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(created)
	if !slices.Equal(schemas, created) || len(accounts) != 10 {
		t.Errorf("server schemas %v (%d accounts), want exactly the 5 created %v and their 10 accounts", schemas, len(accounts), created)
	}
	list := owner.c.do("GET", "/databases", nil).expect(t, 200, "")
	if items := list.items("items"); len(items) != 5 {
		t.Errorf("GET /databases has %d items, want 5", len(items))
	}
	// At the limit, a dry run and a create are refused the same way.
	for _, path := range []string{"/databases?dry_run=true", "/databases"} {
		r := owner.c.do("POST", path, map[string]any{"name": "one_more"}).expect(t, 403, "quota_exceeded")
		if r.str("error.details.resource") != "databases" || r.num("error.details.used") != 5 || r.num("error.details.limit") != 5 {
			t.Errorf("POST %s at the limit: details = %v", path, r.get("error.details"))
		}
	}
	// GET /tenant reports the usage (API.md: usage.databases).
	if r := owner.c.do("GET", "/tenant", nil).expect(t, 200, ""); r.num("usage.databases") != 5 {
		t.Errorf("GET /tenant usage.databases = %v with 5 databases, want 5", r.get("usage.databases"))
	}
}

// Roles and tenants: a viewer reads but cannot create, a developer creates, another tenant sees
// nothing (404), and anonymous callers get 401.
func TestDatabaseAccessByRoleAndTenant(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Role Corp")
	viewer := invite(env, owner, "127.0.0.2", "viewer")
	developer := invite(env, owner, "127.0.0.3", "developer")
	stranger := newTenantAdmin(env, "127.0.0.4", "Other Corp")

	shared := createDatabase(t, owner.c, map[string]any{"name": "shared"})
	id := shared.str("id")

	r := viewer.c.do("POST", "/databases", map[string]any{"name": "mine"}).expect(t, 403, "forbidden")
	viewer.c.do("POST", "/databases?dry_run=true", map[string]any{"name": "mine"}).expect(t, 403, "forbidden")
	if r.get("connection") != nil {
		t.Errorf("refused create answered connection details")
	}
	list := viewer.c.do("GET", "/databases", nil).expect(t, 200, "")
	if items := list.items("items"); len(items) != 1 || list.str("items.0.id") != id {
		t.Errorf("viewer GET /databases = %s, want the tenant's database", list.body)
	}
	g := viewer.c.do("GET", "/databases/"+id, nil).expect(t, 200, "")
	checkDatabaseObject(t, g, "")
	if g.str("connection.account") != "read_only" || !strings.HasSuffix(g.str("connection.username"), "_ro") || g.get("connection.password") != nil {
		t.Errorf("viewer GET /databases/{id}: connection = %v, want the read-only account without password", g.get("connection"))
	}
	viewer.c.do("GET", "/databases?state=running", nil).expect(t, 200, "")

	mine := createDatabase(t, developer.c, map[string]any{"name": "devs_own"})
	if mine.str("owner_id") != developer.userID {
		t.Errorf("developer's database owner_id = %q, want %s", mine.str("owner_id"), developer.userID)
	}
	checkConnectionDetails(t, env, owner, viewer, developer, shared, mine)
	if items := viewer.c.do("GET", "/databases", nil).expect(t, 200, "").items("items"); len(items) != 2 {
		t.Errorf("viewer sees %d databases, want 2", len(items))
	}

	// Another tenant: not found, never forbidden, and nothing in its list.
	r = stranger.c.do("GET", "/databases/"+id, nil).expect(t, 404, "not_found")
	if bytes.Contains(r.body, []byte("shared")) {
		t.Errorf("404 reveals the database: %s", r.body)
	}
	if items := stranger.c.do("GET", "/databases", nil).expect(t, 200, "").items("items"); len(items) != 0 {
		t.Errorf("another tenant lists %v", items)
	}
	stranger.c.do("GET", "/databases/"+id+"/connection?reveal=password", nil).expect(t, 404, "not_found")
	createDatabase(t, stranger.c, map[string]any{"name": "shared"}) // names are per tenant
	stranger.c.do("GET", "/databases/"+uuid.NewString(), nil).expect(t, 404, "not_found")
	stranger.c.do("GET", "/databases/not-a-uuid", nil).expect(t, 404, "not_found")
	if r := owner.c.do("GET", "/databases/"+strings.ToUpper(id), nil).expect(t, 200, ""); r.str("id") != id {
		t.Errorf("GET with the id in upper case = %s, want the database with its canonical id", r.body)
	}

	// Without credentials, or without a tenant in the session.
	anon := env.client("127.0.0.5")
	anon.do("GET", "/databases", nil).expect(t, 401, "unauthenticated")
	anon.do("GET", "/databases/"+id, nil).expect(t, 401, "unauthenticated")
	anon.do("POST", "/databases", map[string]any{"name": "anon"}).expect(t, 401, "unauthenticated")
	loner := env.client("127.0.0.6")
	email, password := uniqueEmail("loner"), strongPassword()
	loner.signUp(email, "Loner", password)
	noTenant := loner.with(loner.login(email, password, "").access)
	noTenant.do("GET", "/databases", nil).expect(t, 403, "forbidden")
	noTenant.do("POST", "/databases", map[string]any{"name": "x"}).expect(t, 403, "forbidden")
}

// checkConnectionDetails: GET /databases/{id}/connection shows each member the account their role
// uses, without password; ?reveal=password gives the read-write password to the owner and the
// admins only, records who read it, and the details work with a MySQL client.
func checkConnectionDetails(t *testing.T, env *e2eEnv, admin, viewer, developer dbMember, shared, devsOwn *e2eResponse) {
	t.Helper()
	id := shared.str("id")
	path := "/databases/" + id + "/connection"
	if r := viewer.c.do("GET", path, nil).expect(t, 200, ""); r.str("account") != "read_only" || r.str("username") != strings.TrimSuffix(shared.str("connection.username"), "_rw")+"_ro" ||
		r.str("database") != shared.str("connection.database") || r.num("port") != shared.num("connection.port") || r.get("password") != nil {
		t.Errorf("viewer GET %s = %s, want the read-only account of %v", path, r.body, shared.get("connection"))
	}
	if r := developer.c.do("GET", path, nil).expect(t, 200, ""); r.str("account") != "read_write" || r.str("username") != shared.str("connection.username") || r.get("password") != nil {
		t.Errorf("developer GET %s = %s, want the read-write account without password", path, r.body)
	}
	viewer.c.do("GET", path+"?reveal=password", nil).expect(t, 403, "forbidden")
	developer.c.do("GET", path+"?reveal=password", nil).expect(t, 403, "forbidden") // not the owner
	viewer.c.do("GET", path+"?reveal=yes", nil).expect(t, 400, "validation_failed")

	r := admin.c.do("GET", path+"?reveal=password", nil).expect(t, 200, "")
	if r.str("password") != shared.str("connection.password") || r.str("account") != "read_write" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("admin reveal = %s (Cache-Control %q), want the password given at creation", r.body, r.header.Get("Cache-Control"))
	}
	own := devsOwn.str("id")
	r = developer.c.do("GET", "/databases/"+own+"/connection?reveal=password", nil).expect(t, 200, "")
	connect(t, &e2eResponse{doc: map[string]any{"connection": r.doc}}).Close() // the revealed details connect

	events := openEventsDB(t, env.dsn)
	rows, err := events.Query(`SELECT stream_id, JSON_UNQUOTE(JSON_EXTRACT(metadata, '$.actor_id')) FROM events
		WHERE event_type = 'database.credentials_revealed.v1' ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var stream, actor string
		if err := rows.Scan(&stream, &actor); err != nil {
			t.Fatal(err)
		}
		got = append(got, stream+" by "+actor)
	}
	if want := []string{"database-" + id + " by " + admin.userID, "database-" + own + " by " + developer.userID}; !slices.Equal(got, want) {
		t.Errorf("recorded reveals = %v, want %v", got, want)
	}
}

// GET /databases?state= filters; an unknown state is 400.
func TestDatabaseListStateFilter(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "List Corp")
	createDatabase(t, owner.c, map[string]any{"name": "zeta"})
	createDatabase(t, owner.c, map[string]any{"name": "alpha"})

	for query, want := range map[string][]string{
		"":                                     {"alpha", "zeta"},
		"?state=running":                       {"alpha", "zeta"},
		"?state=provisioning":                  {},
		"?state=stopped":                       {},
		"?state=failed":                        {},
		"?state=deleted":                       {},
		"?include_deleted=true":                {"alpha", "zeta"},
		"?state=running&include_deleted=true":  {"alpha", "zeta"},
		"?state=stopped&include_deleted=false": {},
	} {
		r := owner.c.do("GET", "/databases"+query, nil).expect(t, 200, "")
		items, ok := r.get("items").([]any)
		if !ok {
			t.Errorf("GET /databases%s: items is not an array: %s", query, r.body)
			continue
		}
		var names []string
		for i := range items {
			checkDatabaseObject(t, r, fmt.Sprintf("items.%d", i))
			names = append(names, r.str(fmt.Sprintf("items.%d.name", i)))
		}
		if !slices.Equal(names, want) && !(len(names) == 0 && len(want) == 0) {
			t.Errorf("GET /databases%s = %v, want %v (by name)", query, names, want)
		}
		if doc, _ := r.doc.(map[string]any); doc == nil || doc["next_cursor"] != nil || len(doc) != 2 {
			t.Errorf("GET /databases%s = %s, want {items, next_cursor: null}", query, r.body)
		}
	}
	for _, query := range []string{"?state=bogus", "?state=RUNNING", "?state=purged", "?state=running%27%20OR%201=1"} {
		r := owner.c.do("GET", "/databases"+query, nil).expect(t, 400, "validation_failed")
		if r.str("error.details.fields.state") == "" {
			t.Errorf("GET /databases%s: details = %v, want fields.state", query, r.get("error.details"))
		}
	}
}

// ---- provisioning that is slow or fails ----

// sandboxProxy forwards TCP connections to the sandbox server and, in hold or kill mode, holds or
// cuts the connection that sends a statement containing its pattern: provisioning can then be
// made slower than POST /databases waits, or fail as if the server went away.
type sandboxProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	mode    string // "pass", "hold", "kill" (drop the write) or "cut" (forward it, then drop the connection)
	pattern []byte
	release chan struct{}
	hits    chan struct{}
	closed  atomic.Bool
	wg      sync.WaitGroup
}

// startProxiedDatabaseE2E is startDatabaseE2E with the sandbox server reached through a proxy the
// test controls.
func startProxiedDatabaseE2E(t *testing.T) (*e2eEnv, string, *sandboxProxy) {
	t.Helper()
	server, err := mysql.ParseDSN(testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	proxy := startSandboxProxy(t, server.Addr)
	viaProxy := *server
	viaProxy.Addr, viaProxy.DBName = proxy.ln.Addr().String(), ""
	env, prefix := startDatabaseE2E(t, dbEnvOptions{SandboxDSN: viaProxy.FormatDSN()})
	return env, prefix, proxy
}

func startSandboxProxy(t *testing.T, target string) *sandboxProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &sandboxProxy{ln: ln, target: target, mode: "pass", release: make(chan struct{}), hits: make(chan struct{}, 16)}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		p.closed.Store(true)
		ln.Close()
		p.set("pass", "")
		p.wg.Wait()
	})
	return p
}

// set switches the mode; leaving hold mode releases what is held.
func (p *sandboxProxy) set(mode, pattern string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "hold" && mode != "hold" {
		close(p.release)
		p.release = make(chan struct{})
	}
	p.mode, p.pattern = mode, []byte(pattern)
	for len(p.hits) > 0 { // hits of an earlier mode are not this one's
		<-p.hits
	}
}

func (p *sandboxProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			io.Copy(client, server)
			client.Close()
		}()
		go func() {
			defer p.wg.Done()
			defer server.Close()
			defer client.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					p.mu.Lock()
					mode, pattern, release := p.mode, p.pattern, p.release
					p.mu.Unlock()
					if mode != "pass" && bytes.Contains(buf[:n], pattern) {
						select {
						case p.hits <- struct{}{}:
						default:
						}
						if mode == "kill" {
							return
						}
						if mode == "cut" { // the bytes reach the server, its answer never comes back
							client.Close()
							server.Write(buf[:n])
							return
						}
						<-release
					}
					if _, err := server.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// POST /databases answers 202 provisioning when provisioning takes longer than 5 s, and 201 with
// state failed and a reason when it fails; a failure releases the quota and the name.
func TestDatabaseProvisioningSlowOrFailing(t *testing.T) {
	env, prefix, proxy := startProxiedDatabaseE2E(t)
	owner := newTenantAdmin(env, "127.0.0.1", "Flaky Corp")
	admin := openSandboxAdmin(t)
	defer admin.Close()
	schemaExists := func(id string) bool {
		var n int
		if err := admin.QueryRow(`SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`,
			sandbox.SchemaName(prefix, id)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	// Slower than 5 s: 202 provisioning, running once the server answers.
	{
		proxy.set("hold", "CREATE DATABASE")
		began := time.Now()
		// The client gives up at 20 s, which bounds a server that waited on: a bound tighter than
		// that would only measure the machine's load.
		r := owner.c.do("POST", "/databases", map[string]any{"name": "slow"}).expect(t, 202, "")
		if took := time.Since(began); took < 5*time.Second {
			t.Errorf("202 after %v, want after the 5 s wait", took)
		}
		checkDatabaseObject(t, r, "")
		if r.str("state") != "provisioning" || r.get("connection") != nil || r.header.Get("Location") != "" {
			t.Errorf("202 = %s (Location %q), want state provisioning without connection", r.body, r.header.Get("Location"))
		}
		id := r.str("id")
		if g := owner.c.do("GET", "/databases/"+id, nil).expect(t, 200, ""); g.str("state") != "provisioning" {
			t.Errorf("GET while provisioning: state %q", g.str("state"))
		}
		if items := owner.c.do("GET", "/databases?state=provisioning", nil).expect(t, 200, "").items("items"); len(items) != 1 {
			t.Errorf("?state=provisioning lists %d", len(items))
		}
		proxy.set("pass", "")
		waitUntil(t, 30*time.Second, "provisioning finishes once the server answers", func() bool {
			return owner.c.do("GET", "/databases/"+id, nil).expect(t, 200, "").str("state") == "running"
		})
		if !schemaExists(id) {
			t.Errorf("running database without its schema")
		}
	}

	// A failure: the connection to the server is lost after the schema was created, for longer
	// than provisioning waits for it. 201 with state failed and its reason; the quota and the name
	// are released, and nothing is left on the server.
	{
		proxy.set("kill", "CREATE USER")
		go func() {
			<-proxy.hits
			env.clock.Advance(3 * time.Minute) // past the 2-minute provisioning deadline
		}()
		r := owner.c.do("POST", "/databases", map[string]any{"name": "broken"}).expect(t, 201, "")
		checkDatabaseObject(t, r, "")
		if r.str("state") != "failed" || r.str("failure_reason") == "" || r.get("connection") != nil {
			t.Fatalf("failed provisioning = %s, want 201 state failed with failure_reason and no connection", r.body)
		}
		id := r.str("id")
		proxy.set("pass", "")
		g := owner.c.do("GET", "/databases/"+id, nil).expect(t, 200, "")
		if g.str("state") != "failed" || g.str("failure_reason") != r.str("failure_reason") {
			t.Errorf("GET failed database = %s", g.body)
		}
		if items := owner.c.do("GET", "/databases?state=failed", nil).expect(t, 200, "").items("items"); len(items) != 1 {
			t.Errorf("?state=failed lists %d", len(items))
		}
		impact := owner.c.do("POST", "/databases?dry_run=true", map[string]any{"name": "broken"}).expect(t, 200, "")
		if impact.num("impact.databases.used") != 1 {
			t.Errorf("quota after a failed provisioning: %v, want only the running database counted", impact.get("impact.databases"))
		}
		again := createDatabase(t, owner.c, map[string]any{"name": "broken"}) // the name is free again
		if again.str("id") == id || !schemaExists(again.str("id")) {
			t.Errorf("re-created %s: schema exists %v", again.str("id"), schemaExists(again.str("id")))
		}
		rw, ro := sandbox.AccountNames(prefix, id)
		accounts := queryStrings(t, admin, `SELECT user FROM mysql.user WHERE user IN (?, ?)`, rw, ro)
		if schemaExists(id) || len(accounts) != 0 {
			t.Errorf("the failed database left its schema (%v) and accounts %v on the server", schemaExists(id), accounts)
		}
	}
}

// The connection to the server is lost while CREATE DATABASE runs. Provision once took any error
// that is not a MySQL error for success and called RowsAffected on a nil result: a panic that
// ended the whole server process.
func TestDatabaseProvisioningConnectionLostAtCreateSchema(t *testing.T) {
	env, _, proxy := startProxiedDatabaseE2E(t)
	owner := newTenantAdmin(env, "127.0.0.1", "Crash Corp")
	proxy.set("kill", "CREATE DATABASE")
	go func() {
		<-proxy.hits
		env.clock.Advance(3 * time.Minute)
	}()
	r := owner.c.do("POST", "/databases", map[string]any{"name": "lost"}).expect(t, 201, "")
	if r.str("state") != "failed" {
		t.Errorf("state = %q, want failed", r.str("state"))
	}
}
