package sandbox_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox/sandboxtest"
	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// admin is a plain root pool on the test server for checks.
func admin(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// connectErr returns the error of a new connection as user.
func connectErr(t *testing.T, s *sandbox.Sandbox, user, password string) error {
	t.Helper()
	db, err := sql.Open("mysql", sandboxtest.DSNAs(t, s, user, password, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return db.PingContext(sandboxtest.Context(t))
}

func lockedErrno(s *sandbox.Sandbox) uint16 {
	if s.Flavor() == sandbox.FlavorMariaDB {
		return 4151
	}
	return 3118
}

func TestOpenSandbox(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	if s.Name() != "test" || s.Prefix() != sandboxtest.Prefix {
		t.Errorf("name %q prefix %q", s.Name(), s.Prefix())
	}
	if s.Flavor() != sandbox.FlavorMariaDB && s.Flavor() != sandbox.FlavorMySQL {
		t.Errorf("flavor %q", s.Flavor())
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(s.Version()) {
		t.Errorf("version %q", s.Version())
	}
	cfg, _ := mysql.ParseDSN(testdb.ServerDSN())
	if host, port := s.Host(); cfg.Net == "tcp" && net.JoinHostPort(host, fmt.Sprint(port)) != cfg.Addr {
		t.Errorf("Host() = %s %d, DSN address %s", host, port, cfg.Addr)
	}
	t.Logf("server: %s %s", s.Flavor(), s.Version())

	for _, prefix := range []string{"", "Cdb_", "cdb-", "toolongprefix_"} {
		if _, err := sandbox.Open(sandboxtest.Context(t), "test", testdb.ServerDSN(), prefix, slog.New(slog.DiscardHandler)); err == nil || errors.Is(err, domain.ErrUnavailable) {
			t.Errorf("prefix %q: %v, want a configuration error", prefix, err)
		}
	}
	if _, err := sandbox.Open(sandboxtest.Context(t), "test", "not a dsn", sandboxtest.Prefix, slog.New(slog.DiscardHandler)); err == nil || errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("bad DSN: %v, want a configuration error", err)
	}
}

func TestOpenSandboxUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// A refused connection fails at once; an Open that waited or retried until its context ended
	// would take the two minutes given it, so 30 s tells the two apart on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	_, err = sandbox.Open(ctx, "down", "root@tcp("+addr+")/", sandboxtest.Prefix, slog.New(slog.DiscardHandler))
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Open on closed port: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
	if !strings.Contains(err.Error(), "down") {
		t.Errorf("error does not name the sandbox: %v", err)
	}
}

func TestOpenSandboxBadCredentials(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	_, err := sandbox.Open(sandboxtest.Context(t), "test", sandboxtest.DSNAs(t, s, "cdbt_nobody", "wrong", ""), sandboxtest.Prefix, slog.New(slog.DiscardHandler))
	if err == nil || errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("refused credentials: %v, want an error that is not ErrUnavailable", err)
	}
	sandboxtest.WantErrno(t, "refused credentials", err, 1045)
}

// TestProvision checks what Provision leaves on the server: the schema with its charset and
// collation, two accounts with their connection limit, and grants on that schema only.
func TestProvision(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	root := admin(t)
	ctx := sandboxtest.Context(t)
	id, rwPass, roPass := sandboxtest.Provision(t, s, "latin1", "latin1_swedish_ci", 7)
	schema := sandbox.SchemaName(sandboxtest.Prefix, id)
	rw, ro := sandbox.AccountNames(sandboxtest.Prefix, id)
	if rwPass == roPass || len(rwPass) < 24 || len(roPass) < 24 {
		t.Errorf("passwords %d and %d characters, equal: %v", len(rwPass), len(roPass), rwPass == roPass)
	}

	var charset, collation string
	err := root.QueryRowContext(ctx, `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA
		WHERE SCHEMA_NAME = ?`, schema).Scan(&charset, &collation)
	if err != nil || charset != "latin1" || collation != "latin1_swedish_ci" {
		t.Errorf("schema %s: %q %q %v", schema, charset, collation, err)
	}

	wantPrivileges := map[string][]string{
		rw: strings.Split(sandbox.RWPrivileges, ", "),
		ro: strings.Split(sandbox.ROPrivileges, ", "),
	}
	escaped := regexp.QuoteMeta("`" + strings.ReplaceAll(schema, "_", `\_`) + "`")
	for account, want := range wantPrivileges {
		var maxConns int
		if err := root.QueryRowContext(ctx, `SELECT max_user_connections FROM mysql.user WHERE user = ? AND host = '%'`, account).Scan(&maxConns); err != nil || maxConns != 7 {
			t.Errorf("%s: max_user_connections %d, %v", account, maxConns, err)
		}
		var createUser string
		if err := root.QueryRowContext(ctx, "SHOW CREATE USER "+sandbox.QuoteAccount(account)).Scan(&createUser); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(createUser, "MAX_USER_CONNECTIONS 7") || strings.Contains(createUser, "ACCOUNT LOCK") {
			t.Errorf("SHOW CREATE USER %s: %s", account, createUser)
		}

		rows, err := root.QueryContext(ctx, "SHOW GRANTS FOR "+sandbox.QuoteAccount(account))
		if err != nil {
			t.Fatal(err)
		}
		var grants []string
		for rows.Next() {
			var g string
			if err := rows.Scan(&g); err != nil {
				t.Fatal(err)
			}
			grants = append(grants, g)
		}
		rows.Close()
		acct := regexp.QuoteMeta("`" + account + "`@`%`")
		usage := regexp.MustCompile(`^GRANT USAGE ON \*\.\* TO ` + acct + `( IDENTIFIED BY PASSWORD '[^']*')?( WITH MAX_USER_CONNECTIONS 7)?$`)
		onSchema := regexp.MustCompile(`^GRANT (.+) ON ` + escaped + `\.\* TO ` + acct + `$`)
		var sawUsage, sawSchema bool
		for _, g := range grants {
			switch {
			case usage.MatchString(g):
				sawUsage = true
			case onSchema.MatchString(g):
				sawSchema = true
				got := strings.Split(onSchema.FindStringSubmatch(g)[1], ", ")
				sort.Strings(got)
				w := slices.Clone(want)
				sort.Strings(w)
				if !slices.Equal(got, w) {
					t.Errorf("%s privileges on its schema:\n got %v\nwant %v", account, got, w)
				}
			default:
				t.Errorf("%s: unexpected grant %s", account, g)
			}
		}
		if !sawUsage || !sawSchema || len(grants) != 2 {
			t.Errorf("%s grants: %q", account, grants)
		}

		var global []string
		rows, err = root.QueryContext(ctx, `SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?`, "'"+account+"'@'%'")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var p string
			rows.Scan(&p)
			global = append(global, p)
		}
		rows.Close()
		if !slices.Equal(global, []string{"USAGE"}) {
			t.Errorf("%s global privileges: %v", account, global)
		}
		var grantable int
		root.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ? AND IS_GRANTABLE = 'YES'`, "'"+account+"'@'%'").Scan(&grantable)
		if grantable != 0 {
			t.Errorf("%s has GRANT OPTION", account)
		}
	}
}

// TestProvisionedCredentials uses the accounts the way a tenant would: they work in their own
// schema and nowhere else.
func TestProvisionedCredentials(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	ctx := sandboxtest.Context(t)
	id, rwPass, roPass := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	other, otherRW, _ := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	schema, otherSchema := sandbox.SchemaName(sandboxtest.Prefix, id), sandbox.SchemaName(sandboxtest.Prefix, other)
	rwUser, roUser := sandbox.AccountNames(sandboxtest.Prefix, id)
	otherRWUser, _ := sandbox.AccountNames(sandboxtest.Prefix, other)

	rw := sandboxtest.ConnectAs(t, s, rwUser, rwPass, schema)
	sandboxtest.MustExec(t, rw, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))")
	sandboxtest.MustExec(t, rw, "INSERT INTO t (v) VALUES ('a'), ('b')")
	sandboxtest.MustExec(t, rw, "CREATE VIEW v AS SELECT v FROM t")
	var n int
	if err := rw.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("select in own schema: %d, %v", n, err)
	}
	otherDB := sandboxtest.ConnectAs(t, s, otherRWUser, otherRW, otherSchema)
	sandboxtest.MustExec(t, otherDB, "CREATE TABLE secret (x INT)")

	rows, err := rw.QueryContext(ctx, "SHOW DATABASES")
	if err != nil {
		t.Fatal(err)
	}
	var dbs []string
	for rows.Next() {
		var d string
		rows.Scan(&d)
		dbs = append(dbs, d)
	}
	rows.Close()
	sort.Strings(dbs)
	want := []string{"information_schema", schema}
	sort.Strings(want)
	if !slices.Equal(dbs, want) {
		t.Errorf("SHOW DATABASES as rw: %v", dbs)
	}

	_, err = rw.ExecContext(ctx, "SELECT * FROM "+sqlcheck.QuoteIdent(otherSchema)+".secret")
	sandboxtest.WantErrno(t, "select from another schema", err, 1142, 1044)
	_, err = rw.ExecContext(ctx, "INSERT INTO "+sqlcheck.QuoteIdent(otherSchema)+".secret VALUES (1)")
	sandboxtest.WantErrno(t, "insert into another schema", err, 1142, 1044)
	_, err = rw.ExecContext(ctx, "CREATE TABLE "+sqlcheck.QuoteIdent(otherSchema)+".mine (x INT)")
	sandboxtest.WantErrno(t, "create in another schema", err, 1142, 1044)
	_, err = rw.ExecContext(ctx, "SELECT user FROM mysql.user")
	sandboxtest.WantErrno(t, "read mysql.user", err, 1142, 1044)
	_, err = rw.ExecContext(ctx, "LOCK TABLES t READ")
	sandboxtest.WantErrno(t, "lock tables", err, 1044)
	_, err = rw.ExecContext(ctx, "CREATE USER cdbt_evil IDENTIFIED BY 'x'")
	sandboxtest.WantErrno(t, "create user", err, 1227)
	_, err = rw.ExecContext(ctx, "GRANT SELECT ON "+sqlcheck.QuoteIdent(schema)+".* TO "+sandbox.QuoteAccount(otherRWUser))
	sandboxtest.WantErrno(t, "grant", err, 1044, 1142)

	// '_' is a wildcard in a database-level grant: unescaped, the grant on cdbt_<hex> would let the
	// account create cdbtX<hex>.
	lookalike := strings.Replace(schema, "_", "x", 1)
	_, err = rw.ExecContext(ctx, "CREATE DATABASE "+sqlcheck.QuoteIdent(lookalike))
	if err == nil {
		admin(t).ExecContext(ctx, "DROP DATABASE "+sqlcheck.QuoteIdent(lookalike))
	}
	sandboxtest.WantErrno(t, "create a look-alike schema", err, 1044)

	ro := sandboxtest.ConnectAs(t, s, roUser, roPass, schema)
	if err := ro.QueryRowContext(ctx, "SELECT COUNT(*) FROM v").Scan(&n); err != nil || n != 2 {
		t.Errorf("read-only select: %d, %v", n, err)
	}
	_, err = ro.ExecContext(ctx, "INSERT INTO t (v) VALUES ('c')")
	sandboxtest.WantErrno(t, "read-only insert", err, 1142)
	_, err = ro.ExecContext(ctx, "CREATE TABLE u (x INT)")
	sandboxtest.WantErrno(t, "read-only create", err, 1142)
	_, err = ro.ExecContext(ctx, "DELETE FROM t")
	sandboxtest.WantErrno(t, "read-only delete", err, 1142)
	_, err = ro.ExecContext(ctx, "SELECT * FROM "+sqlcheck.QuoteIdent(otherSchema)+".secret")
	sandboxtest.WantErrno(t, "read-only select from another schema", err, 1142, 1044)
}

// TestProvisionRetry simulates a crash after the accounts were created (locked, with passwords
// the caller never learnt, and a stray grant) and checks that a retry, and a second full run,
// converge to working credentials.
func TestProvisionRetry(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	root := admin(t)
	ctx := sandboxtest.Context(t)
	id := uuid.NewString()
	sandboxtest.CleanupDrop(t, s, id)
	schema := sandbox.SchemaName(sandboxtest.Prefix, id)
	rwUser, roUser := sandbox.AccountNames(sandboxtest.Prefix, id)
	sandboxtest.MustExec(t, root, "CREATE DATABASE "+sqlcheck.QuoteIdent(schema)+" CHARACTER SET latin1")
	sandboxtest.MustExec(t, root, "CREATE USER "+sandbox.QuoteAccount(rwUser)+" IDENTIFIED BY 'lost-1', "+sandbox.QuoteAccount(roUser)+" IDENTIFIED BY 'lost-2' ACCOUNT LOCK")
	sandboxtest.MustExec(t, root, "GRANT LOCK TABLES ON "+sandbox.GrantPattern(schema)+".* TO "+sandbox.QuoteAccount(rwUser))

	spec := sandbox.Spec{ID: id, Charset: "utf8mb4", Collation: "utf8mb4_unicode_ci", MaxUserConnections: 3}
	rw1, ro1, err := s.Provision(ctx, spec)
	if err != nil {
		t.Fatalf("resume provisioning: %v", err)
	}
	var collation string
	root.QueryRowContext(ctx, `SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`, schema).Scan(&collation)
	if collation != "utf8mb4_unicode_ci" {
		t.Errorf("collation after resume: %q", collation)
	}
	rw := sandboxtest.ConnectAs(t, s, rwUser, rw1, schema)
	sandboxtest.MustExec(t, rw, "CREATE TABLE t (x INT)")
	_, err = rw.ExecContext(ctx, "LOCK TABLES t READ")
	sandboxtest.WantErrno(t, "stray LOCK TABLES grant after resume", err, 1044)
	sandboxtest.ConnectAs(t, s, roUser, ro1, schema)

	rw2, ro2, err := s.Provision(ctx, spec)
	if err != nil {
		t.Fatalf("second provisioning: %v", err)
	}
	if rw2 == rw1 || ro2 == ro1 {
		t.Error("a retry returned the same passwords")
	}
	sandboxtest.WantErrno(t, "first rw password after retry", connectErr(t, s, rwUser, rw1), 1045)
	sandboxtest.WantErrno(t, "first ro password after retry", connectErr(t, s, roUser, ro1), 1045)
	rw = sandboxtest.ConnectAs(t, s, rwUser, rw2, schema)
	sandboxtest.MustExec(t, rw, "INSERT INTO t VALUES (1)") // the data of the first run is still there
	sandboxtest.ConnectAs(t, s, roUser, ro2, schema)
}

func TestProvisionBadSpec(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	ctx := sandboxtest.Context(t)
	var verr *domain.ValidationError
	if _, _, err := s.Provision(ctx, sandbox.Spec{ID: "nope", Charset: "utf8mb4", Collation: "utf8mb4_bin", MaxUserConnections: 1}); !errors.As(err, &verr) {
		t.Errorf("bad id: %v", err)
	}
	for _, spec := range []sandbox.Spec{
		{Charset: "", Collation: "utf8mb4_bin", MaxUserConnections: 1},
		{Charset: "utf8mb4; DROP DATABASE mysql", Collation: "utf8mb4_bin", MaxUserConnections: 1},
		{Charset: "utf8mb4", Collation: "utf8mb4_bin", MaxUserConnections: 0},
	} {
		spec.ID = uuid.NewString()
		if _, _, err := s.Provision(ctx, spec); err == nil {
			s.Drop(ctx, spec.ID)
			t.Errorf("Provision(%+v) succeeded", spec)
		}
	}
	id := uuid.NewString()
	sandboxtest.CleanupDrop(t, s, id)
	if _, _, err := s.Provision(ctx, sandbox.Spec{ID: id, Charset: "klingon", Collation: "klingon_ci", MaxUserConnections: 1}); !errors.As(err, &verr) {
		t.Errorf("unknown charset: %v, want a validation error", err)
	}
}

func TestLockUnlock(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	ctx := sandboxtest.Context(t)
	id, rwPass, roPass := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	schema := sandbox.SchemaName(sandboxtest.Prefix, id)
	rwUser, roUser := sandbox.AccountNames(sandboxtest.Prefix, id)

	open := sandboxtest.ConnectAs(t, s, rwUser, rwPass, schema)
	conn, err := open.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	roOpen := sandboxtest.ConnectAs(t, s, roUser, roPass, schema)
	roOpen.SetMaxIdleConns(1)

	if err := s.Lock(ctx, id); err != nil {
		t.Fatalf("lock: %v", err)
	}
	if err := s.Lock(ctx, id); err != nil {
		t.Errorf("lock twice: %v", err)
	}
	sandboxtest.WantErrno(t, "rw connect while locked", connectErr(t, s, rwUser, rwPass), lockedErrno(s))
	sandboxtest.WantErrno(t, "ro connect while locked", connectErr(t, s, roUser, roPass), lockedErrno(s))
	if _, err := conn.ExecContext(ctx, "SELECT 1"); err == nil {
		t.Error("a connection open before the lock still answers")
	}
	if err := roOpen.PingContext(ctx); err == nil {
		t.Error("the read-only pool still reaches the server after the lock")
	}

	if err := s.Unlock(ctx, id); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if err := connectErr(t, s, rwUser, rwPass); err != nil {
		t.Errorf("rw connect after unlock: %v", err)
	}
	if err := connectErr(t, s, roUser, roPass); err != nil {
		t.Errorf("ro connect after unlock: %v", err)
	}

	missing := uuid.NewString()
	if err := s.Lock(ctx, missing); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("lock of a missing database: %v, want ErrNotFound", err)
	}
	if err := s.Unlock(ctx, missing); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("unlock of a missing database: %v, want ErrNotFound", err)
	}
}

// schemaPrivileges lists the privileges account holds on schema, sorted, from SHOW GRANTS.
func schemaPrivileges(t *testing.T, root *sql.DB, account, schema string) []string {
	t.Helper()
	rows, err := root.QueryContext(sandboxtest.Context(t), "SHOW GRANTS FOR "+sandbox.QuoteAccount(account))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	onSchema := regexp.MustCompile(`^GRANT (.+) ON ` + regexp.QuoteMeta(sandbox.GrantPattern(schema)) + `\.\* TO `)
	var got []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			t.Fatal(err)
		}
		if m := onSchema.FindStringSubmatch(g); m != nil {
			got = append(got, strings.Split(m[1], ", ")...)
		}
	}
	sort.Strings(got)
	return got
}

func sortedList(list string) []string {
	out := strings.Split(list, ", ")
	sort.Strings(out)
	return out
}

func TestRestrictedPrivilegesAreReadWriteOnes(t *testing.T) {
	rw := sortedList(sandbox.RWPrivileges)
	for _, p := range sortedList(sandbox.RestrictedPrivileges) {
		if !slices.Contains(rw, p) {
			t.Errorf("restricted privilege %s is not a read-write one %v", p, rw)
		}
	}
}

// TestConvergeRestrictsWrites narrows the read-write account to reading and freeing space, and back.
func TestConvergeRestrictsWrites(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	root := admin(t)
	ctx := sandboxtest.Context(t)
	id, rwPass, roPass := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	converge := func(restrict, locked bool) error {
		_, err := s.Converge(ctx, id, sandbox.Intent{Exists: true, Locked: locked, Grants: sandbox.Grants{WritesRestricted: restrict},
			MaxUserConnections: 5, RWPassword: rwPass, ROPassword: roPass})
		return err
	}
	schema := sandbox.SchemaName(sandboxtest.Prefix, id)
	rwUser, roUser := sandbox.AccountNames(sandboxtest.Prefix, id)
	rw := sandboxtest.ConnectAs(t, s, rwUser, rwPass, schema)
	sandboxtest.MustExec(t, rw, "CREATE TABLE t (x INT)")
	sandboxtest.MustExec(t, rw, "CREATE TABLE scratch (x INT)")
	sandboxtest.MustExec(t, rw, "INSERT INTO t VALUES (1), (2), (3)")
	sandboxtest.MustExec(t, rw, "CREATE PROCEDURE grow() INSERT INTO t VALUES (100)") // runs as its definer, this account
	held, err := rw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := held.ExecContext(ctx, "INSERT INTO t VALUES (4)"); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 2; i++ {
		if err := converge(true, false); err != nil {
			t.Fatalf("restrict #%d: %v", i+1, err)
		}
	}
	if got := schemaPrivileges(t, root, rwUser, schema); !slices.Equal(got, sortedList(sandbox.RestrictedPrivileges)) {
		t.Errorf("restricted privileges %v, want %v", got, sortedList(sandbox.RestrictedPrivileges))
	}
	if _, err := held.ExecContext(ctx, "INSERT INTO t VALUES (5)"); err == nil {
		t.Error("a connection opened before the restriction still inserts")
	}
	fresh := sandboxtest.ConnectAs(t, s, rwUser, rwPass, schema)
	var n int
	if err := fresh.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 4 {
		t.Errorf("SELECT while restricted: %d rows, %v; want 4", n, err)
	}
	sandboxtest.MustExec(t, fresh, "DELETE FROM t WHERE x = 1")
	sandboxtest.MustExec(t, fresh, "TRUNCATE TABLE scratch")
	sandboxtest.MustExec(t, fresh, "DROP TABLE scratch")
	for _, stmt := range []string{
		"INSERT INTO t VALUES (6)", "UPDATE t SET x = x + 1", "REPLACE INTO t VALUES (7)",
		"CREATE TABLE u (x INT)", "ALTER TABLE t ADD COLUMN y TEXT", "CREATE INDEX tx ON t (x)",
		"CREATE VIEW v AS SELECT x FROM t", "CREATE TEMPORARY TABLE tmp (x INT)", "CALL grow()",
		"CREATE PROCEDURE p2() SELECT 1",
	} {
		_, err := fresh.ExecContext(ctx, stmt)
		sandboxtest.WantErrno(t, stmt+" while restricted", err, 1142, 1044)
	}
	roDB := sandboxtest.ConnectAs(t, s, roUser, roPass, schema)
	if err := roDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 3 {
		t.Errorf("read-only SELECT while restricted: %d, %v", n, err)
	}
	// Stopping and starting leaves the restriction alone.
	if err := s.Lock(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := converge(true, true); err != nil {
		t.Errorf("restrict a locked database: %v", err)
	}
	if err := s.Unlock(ctx, id); err != nil {
		t.Fatal(err)
	}
	afterStart := sandboxtest.ConnectAs(t, s, rwUser, rwPass, schema)
	_, err = afterStart.ExecContext(ctx, "INSERT INTO t VALUES (8)")
	sandboxtest.WantErrno(t, "INSERT after a stop and start while restricted", err, 1142)
	heldRestricted, err := afterStart.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer heldRestricted.Close()
	if err := heldRestricted.PingContext(ctx); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 2; i++ {
		if err := converge(false, false); err != nil {
			t.Fatalf("restore #%d: %v", i+1, err)
		}
	}
	if got := schemaPrivileges(t, root, rwUser, schema); !slices.Equal(got, sortedList(sandbox.RWPrivileges)) {
		t.Errorf("restored privileges %v, want %v", got, sortedList(sandbox.RWPrivileges))
	}
	if _, err := heldRestricted.ExecContext(ctx, "SELECT 1"); err == nil {
		t.Error("a connection opened while restricted survived the restore (it would keep the narrow privileges)")
	}
	restored := sandboxtest.ConnectAs(t, s, rwUser, rwPass, schema)
	sandboxtest.MustExec(t, restored, "INSERT INTO t VALUES (9)")
	sandboxtest.MustExec(t, restored, "CALL grow()")
	sandboxtest.MustExec(t, restored, "CREATE TABLE u (x INT)")

}

func TestRotatePassword(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	ctx := sandboxtest.Context(t)
	id, oldPass, roPass := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	schema := sandbox.SchemaName(sandboxtest.Prefix, id)
	rwUser, roUser := sandbox.AccountNames(sandboxtest.Prefix, id)

	pool := sandboxtest.ConnectAs(t, s, rwUser, oldPass, schema)
	conn, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	newPass, err := s.RotatePassword(ctx, id)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if newPass == oldPass || len(newPass) < 24 {
		t.Errorf("new password %q", newPass)
	}
	sandboxtest.WantErrno(t, "old password after rotation", connectErr(t, s, rwUser, oldPass), 1045)
	if _, err := conn.ExecContext(ctx, "SELECT 1"); err == nil {
		t.Error("a connection with the old password still answers")
	}
	rw := sandboxtest.ConnectAs(t, s, rwUser, newPass, schema)
	sandboxtest.MustExec(t, rw, "CREATE TABLE t (x INT)")
	sandboxtest.ConnectAs(t, s, roUser, roPass, schema) // the read-only account is untouched

	if _, err := s.RotatePassword(ctx, uuid.NewString()); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("rotate a missing database: %v, want ErrNotFound", err)
	}
}

func TestDrop(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	root := admin(t)
	ctx := sandboxtest.Context(t)
	id, rwPass, _ := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	schema := sandbox.SchemaName(sandboxtest.Prefix, id)
	rwUser, roUser := sandbox.AccountNames(sandboxtest.Prefix, id)
	rw := sandboxtest.ConnectAs(t, s, rwUser, rwPass, schema)
	sandboxtest.MustExec(t, rw, "CREATE TABLE t (x INT)")
	conn, err := rw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	if err := s.Drop(ctx, id); err != nil {
		t.Fatalf("drop: %v", err)
	}
	var n int
	root.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`, schema).Scan(&n)
	if n != 0 {
		t.Error("schema still there")
	}
	root.QueryRowContext(ctx, `SELECT COUNT(*) FROM mysql.user WHERE user IN (?, ?)`, rwUser, roUser).Scan(&n)
	if n != 0 {
		t.Errorf("%d accounts still there", n)
	}
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+sqlcheck.QuoteIdent(schema)); err == nil {
		t.Error("a session open before the drop recreated the schema")
	}
	if err := s.Drop(ctx, id); err != nil {
		t.Errorf("drop twice: %v", err)
	}
	if _, err := s.Schema(ctx, id); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("schema of a dropped database: %v, want ErrNotFound", err)
	}
	if err := s.Lock(ctx, id); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("lock of a dropped database: %v, want ErrNotFound", err)
	}
}

func TestStorageBytes(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	ctx := sandboxtest.Context(t)
	id, rwPass, _ := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	empty, _, _ := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	missing := uuid.NewString()
	rwUser, _ := sandbox.AccountNames(sandboxtest.Prefix, id)
	rw := sandboxtest.ConnectAs(t, s, rwUser, rwPass, sandbox.SchemaName(sandboxtest.Prefix, id))
	sandboxtest.MustExec(t, rw, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, payload VARCHAR(600), KEY (payload(20)))")
	sandboxtest.MustExec(t, rw, "ANALYZE TABLE t")

	before, err := s.StorageBytes(ctx, []string{id, empty, missing})
	if err != nil {
		t.Fatal(err)
	}
	if before[id] <= 0 {
		t.Errorf("a schema with a table measures %d", before[id])
	}
	if v, ok := before[empty]; !ok || v != 0 {
		t.Errorf("a schema without tables: %d, %v", v, ok)
	}
	if _, ok := before[missing]; ok {
		t.Error("a missing schema is in the map")
	}

	values := strings.TrimSuffix(strings.Repeat("(REPEAT(UUID(), 16)),", 1000), ",")
	for range 3 {
		sandboxtest.MustExec(t, rw, "INSERT INTO t (payload) VALUES "+values)
	}
	sandboxtest.MustExec(t, rw, "ANALYZE TABLE t")
	after, err := s.StorageBytes(ctx, []string{id})
	if err != nil {
		t.Fatal(err)
	}
	if after[id] <= before[id] || after[id] < 1<<20 {
		t.Errorf("storage %d → %d after writing ~1.7 MB", before[id], after[id])
	}
	t.Logf("storage %d → %d", before[id], after[id])

	if m, err := s.StorageBytes(ctx, nil); err != nil || len(m) != 0 {
		t.Errorf("no ids: %v, %v", m, err)
	}
	var verr *domain.ValidationError
	if _, err := s.StorageBytes(ctx, []string{id, "nope"}); !errors.As(err, &verr) {
		t.Errorf("bad id: %v", err)
	}
}

func TestSchema(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	ctx := sandboxtest.Context(t)
	id, rwPass, _ := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	other, otherPass, _ := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	rwUser, _ := sandbox.AccountNames(sandboxtest.Prefix, id)
	otherUser, _ := sandbox.AccountNames(sandboxtest.Prefix, other)
	rw := sandboxtest.ConnectAs(t, s, rwUser, rwPass, sandbox.SchemaName(sandboxtest.Prefix, id))
	sandboxtest.MustExec(t, rw, `CREATE TABLE customers (
		id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
		email VARCHAR(100) NOT NULL,
		name VARCHAR(50) DEFAULT 'it''s anon',
		note TEXT,
		created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
		UNIQUE KEY uq_email (email),
		KEY idx_name_created (name, created))`)
	sandboxtest.MustExec(t, rw, "INSERT INTO customers (email) VALUES ('a@x'), ('b@x'), ('c@x')")
	sandboxtest.MustExec(t, rw, "CREATE VIEW active AS SELECT id, email FROM customers")
	sandboxtest.MustExec(t, rw, "ANALYZE TABLE customers")
	otherDB := sandboxtest.ConnectAs(t, s, otherUser, otherPass, sandbox.SchemaName(sandboxtest.Prefix, other))
	sandboxtest.MustExec(t, otherDB, "CREATE TABLE not_mine (x INT)")

	tables, err := s.Schema(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 || tables[0].Name != "active" || tables[1].Name != "customers" {
		t.Fatalf("tables: %+v", tables)
	}
	view, table := tables[0], tables[1]
	if view.Type != "view" || view.RowsEstimate != 0 || len(view.Columns) != 2 || view.Columns[1].Name != "email" || len(view.Indexes) != 0 {
		t.Errorf("view: %+v", view)
	}
	if table.Type != "table" || table.RowsEstimate < 1 || table.RowsEstimate > 10 {
		t.Errorf("table: type %q rows %d", table.Type, table.RowsEstimate)
	}
	str := func(s string) *string { return &s }
	wantColumns := []sandbox.Column{
		{Name: "id", Type: "int(10) unsigned", Key: "PRI"},
		{Name: "email", Type: "varchar(100)", Key: "UNI"},
		{Name: "name", Type: "varchar(50)", Nullable: true, Key: "MUL", Default: str("it's anon")},
		{Name: "note", Type: "text", Nullable: true},
		{Name: "created", Type: "timestamp", Default: str("current_timestamp()")},
	}
	if len(table.Columns) != len(wantColumns) {
		t.Fatalf("columns: %+v", table.Columns)
	}
	for i, want := range wantColumns {
		got := table.Columns[i]
		if s.Flavor() == sandbox.FlavorMySQL { // MySQL 8 drops display widths and spells CURRENT_TIMESTAMP
			want.Type = strings.Replace(want.Type, "int(10)", "int", 1)
			if want.Name == "created" {
				want.Default = str("CURRENT_TIMESTAMP")
			}
		}
		if got.Name != want.Name || got.Type != want.Type || got.Nullable != want.Nullable || got.Key != want.Key ||
			(got.Default == nil) != (want.Default == nil) || (got.Default != nil && *got.Default != *want.Default) {
			t.Errorf("column %d: %+v (default %v), want %+v (default %v)", i, got, deref(got.Default), want, deref(want.Default))
		}
	}
	wantIndexes := []sandbox.Index{
		{Name: "PRIMARY", Unique: true, Columns: []string{"id"}},
		{Name: "idx_name_created", Columns: []string{"name", "created"}},
		{Name: "uq_email", Unique: true, Columns: []string{"email"}},
	}
	if fmt.Sprint(table.Indexes) != fmt.Sprint(wantIndexes) {
		t.Errorf("indexes:\n got %+v\nwant %+v", table.Indexes, wantIndexes)
	}

	if tables, err := s.Schema(ctx, other); err != nil || len(tables) != 1 || tables[0].Name != "not_mine" {
		t.Errorf("other schema: %+v, %v", tables, err)
	}
	if _, err := s.Schema(ctx, uuid.NewString()); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("missing schema: %v", err)
	}
}

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestValidateCharset(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	ctx := sandboxtest.Context(t)
	var serverCharset, serverCollation, utf8mb4Default string
	admin(t).QueryRowContext(ctx, `SELECT @@character_set_server, @@collation_server,
		(SELECT DEFAULT_COLLATE_NAME FROM information_schema.CHARACTER_SETS WHERE CHARACTER_SET_NAME = 'utf8mb4')`).Scan(&serverCharset, &serverCollation, &utf8mb4Default)
	wantDefault := utf8mb4Default
	if serverCharset == "utf8mb4" {
		wantDefault = serverCollation
	}

	ok := []struct{ charset, collation, wantCharset, wantCollation string }{
		{"", "", "utf8mb4", wantDefault},
		{"utf8mb4", "", "utf8mb4", wantDefault},
		{"UTF8MB4", "UTF8MB4_BIN", "utf8mb4", "utf8mb4_bin"},
		{"latin1", "latin1_swedish_ci", "latin1", "latin1_swedish_ci"},
		{"latin1", "", "latin1", "latin1_swedish_ci"},
		{"", "latin1_german2_ci", "latin1", "latin1_german2_ci"},
	}
	for _, tt := range ok {
		cs, co, err := s.ValidateCharset(ctx, tt.charset, tt.collation)
		if err != nil || cs != tt.wantCharset || co != tt.wantCollation {
			t.Errorf("ValidateCharset(%q, %q) = %q, %q, %v; want %q, %q", tt.charset, tt.collation, cs, co, err, tt.wantCharset, tt.wantCollation)
		}
	}
	bad := []struct{ charset, collation, field string }{
		{"utf8mb4", "latin1_swedish_ci", "collation"},
		{"klingon", "", "charset"},
		{"klingon", "latin1_swedish_ci", "charset"},
		{"utf8mb4", "utf8mb4_klingon_ci", "collation"},
		{"", "klingon_ci", "collation"},
		{"utf8mb4' OR '1'='1", "", "charset"},
		{"utf8mb4", "x; DROP DATABASE mysql", "collation"},
	}
	for _, tt := range bad {
		_, _, err := s.ValidateCharset(ctx, tt.charset, tt.collation)
		var verr *domain.ValidationError
		if !errors.As(err, &verr) || verr.Fields[tt.field] == "" {
			t.Errorf("ValidateCharset(%q, %q) = %v, want a validation error on %s", tt.charset, tt.collation, err, tt.field)
		}
	}
}

// TestQuoteStringOnServer checks quoteString against the server in both SQL modes: the literal
// reads back as the original bytes.
func TestQuoteStringOnServer(t *testing.T) {
	t.Parallel()
	root := admin(t)
	ctx := sandboxtest.Context(t)
	inputs := []string{"", "plain", "it's", `back\slash`, `trailing\`, `\'`, `'\`, `"`, "nul\x00lf\ncr\rsub\x1a", "ünï–code", "a''b\\\\c", "' OR 1=1 -- "}
	for _, noBackslash := range []bool{false, true} {
		conn, err := root.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mode := "REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')"
		if noBackslash {
			mode = "CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'NO_BACKSLASH_ESCAPES')"
		}
		if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = "+mode); err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			var out []byte
			if err := conn.QueryRowContext(ctx, "SELECT BINARY "+sandbox.QuoteString(in, noBackslash)).Scan(&out); err != nil {
				t.Errorf("no_backslash_escapes=%v: SELECT %s: %v", noBackslash, sandbox.QuoteString(in, noBackslash), err)
			} else if string(out) != in {
				t.Errorf("no_backslash_escapes=%v: %q reads back as %q", noBackslash, in, out)
			}
		}
		conn.Raw(func(any) error { return driver.ErrBadConn }) // do not return a connection with a changed sql_mode to the pool
		conn.Close()
	}
}
