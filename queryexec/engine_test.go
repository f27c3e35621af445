package queryexec

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/queryexec/results"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox/sandboxtest"
	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// engineFixture is an Engine on a Fleet of the test server with a physical name prefix of its
// own, and one provisioned database (display name "shop") whose passwords the engine reads from
// a map, as the vault would give them.
type engineFixture struct {
	prefix  string
	fleet   *sandbox.Fleet
	server  *sandbox.Sandbox
	engine  *Engine
	results *results.Store
	root    *sql.DB // root on the test server, default schema the database's physical one

	id     domain.DatabaseID
	tenant domain.TenantID
	user   domain.UserID
	name   string
	schema string
	rwUser string
	roUser string
	limits domain.Limits

	mu        sync.Mutex
	passwords map[string]string // "<id>/rw", "<id>/ro"
	warnings  *warnLog
}

// warnLog keeps the warnings the engine logs (a failed KILL QUERY, say) for failure messages;
// it does not log through t, which the engine's goroutines may outlive.
type warnLog struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnLog) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, line)
	return nil
}
func (w *warnLog) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnLog) WithGroup(string) slog.Handler      { return w }
func (w *warnLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "; ")
}

// enginePrefix is "q" + 6 random lower-case letters + "_": unique per test, within the 9
// characters a sandbox prefix may have.
func enginePrefix() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 6)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return "q" + string(b) + "_"
}

func passwordKey(id domain.DatabaseID, readOnly bool) string {
	if readOnly {
		return string(id) + "/ro"
	}
	return string(id) + "/rw"
}

// newEngineFixture opens the fleet, provisions the database and builds the engine; everything is
// closed and the schema and accounts dropped when the test ends.
func newEngineFixture(t *testing.T) *engineFixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	f := &engineFixture{prefix: enginePrefix(), name: "shop", limits: domain.Plans[0].Limits, passwords: map[string]string{},
		id: domain.DatabaseID(uuid.NewString()), tenant: domain.TenantID(uuid.NewString()), user: domain.UserID(uuid.NewString())}
	ctx := sandboxtest.Context(t)
	fleet, err := sandbox.OpenFleet(ctx, []string{testdb.ServerDSN()}, f.prefix, log)
	if err != nil {
		t.Fatalf("open fleet (set CLOUDDB_TEST_DSN or start MariaDB): %v", err)
	}
	t.Cleanup(func() { fleet.Close() }) // registered first: runs last
	f.fleet, f.server = fleet, fleet.Servers()[0]
	f.schema = sandbox.SchemaName(f.prefix, string(f.id))
	f.rwUser, f.roUser = sandbox.AccountNames(f.prefix, string(f.id))

	sandboxtest.CleanupDrop(t, f.server, string(f.id))
	rw, ro, err := f.server.Provision(ctx, sandbox.Spec{ID: string(f.id), Charset: "utf8mb4", Collation: "utf8mb4_general_ci",
		MaxUserConnections: int(f.limits.MaxConnections)})
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	f.passwords[passwordKey(f.id, false)], f.passwords[passwordKey(f.id, true)] = rw, ro

	cfg, err := mysql.ParseDSN(testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = f.schema
	if f.root, err = sql.Open("mysql", cfg.FormatDSN()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.root.Close() })

	if f.results, err = results.Open(results.StoreOptions{Dir: t.TempDir(), Log: log}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.results.Close() })
	f.warnings = &warnLog{}
	f.engine = NewEngine(EngineOptions{Fleet: fleet, Passwords: f.Passwords, Results: f.results, Log: slog.New(f.warnings)})
	t.Cleanup(f.engine.Close) // registered last: runs first, before the drop
	return f
}

// Passwords is the fixture's vault.
func (f *engineFixture) Passwords(_ context.Context, id domain.DatabaseID, readOnly bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.passwords[passwordKey(id, readOnly)]
	if !ok {
		return "", fmt.Errorf("no password for %s: %w", id, domain.ErrNotFound)
	}
	return p, nil
}

func (f *engineFixture) setPassword(readOnly bool, password string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passwords[passwordKey(f.id, readOnly)] = password
}

// request is a request of role on the fixture's database, under the free plan's limits.
func (f *engineFixture) request(role domain.Role, query string) Request {
	return Request{
		User: f.user, Role: role, SQL: query,
		Target: Target{ID: f.id, Tenant: f.tenant, Name: f.name, Server: f.server.Name(), State: domain.StateRunning},
		Policy: Policy{Settings: domain.DefaultSettings(f.limits), Limits: f.limits},
	}
}

func (f *engineFixture) run(t *testing.T, req Request) ([]Result, []domain.QueryExecuted, error) {
	t.Helper()
	return f.engine.Run(sandboxtest.Context(t), req)
}

// mustRun runs one statement as a developer and fails the test unless it succeeds.
func (f *engineFixture) mustRun(t *testing.T, query string) (Result, domain.QueryExecuted) {
	t.Helper()
	return f.mustRunReq(t, f.request(domain.RoleDeveloper, query))
}

func (f *engineFixture) mustRunReq(t *testing.T, req Request) (Result, domain.QueryExecuted) {
	t.Helper()
	results, records, err := f.run(t, req)
	if err != nil {
		t.Fatalf("%s: %v", req.SQL, err)
	}
	if len(results) != 1 || len(records) != 1 {
		t.Fatalf("%s: %d results, %d records; want 1 and 1", req.SQL, len(results), len(records))
	}
	checkRecord(t, f, records[0], req.SQL, domain.QuerySucceeded, "")
	if records[0].QueryID != results[0].QueryID {
		t.Errorf("%s: record query id %s, result query id %s", req.SQL, records[0].QueryID, results[0].QueryID)
	}
	return results[0], records[0]
}

// exec runs statements as root in the database's schema, behind the engine's back.
func (f *engineFixture) exec(t *testing.T, queries ...string) {
	t.Helper()
	for _, q := range queries {
		if _, err := f.root.ExecContext(sandboxtest.Context(t), q); err != nil {
			t.Fatalf("root: %s: %v", q, err)
		}
	}
}

// count is SELECT COUNT(*) of table, as root.
func (f *engineFixture) count(t *testing.T, table string) int64 {
	t.Helper()
	var n int64
	if err := f.root.QueryRowContext(sandboxtest.Context(t), "SELECT COUNT(*) FROM "+sqlcheck.QuoteIdent(table)).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// fill creates table (id auto-increment, v INT, b VARCHAR) with v = 1..n, and analyzes it so the
// server's row estimates are right.
func (f *engineFixture) fill(t *testing.T, table string, n int) {
	t.Helper()
	f.exec(t, "CREATE TABLE "+sqlcheck.QuoteIdent(table)+" (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, b VARCHAR(20))")
	for from := 1; from <= n; from += 1000 {
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + sqlcheck.QuoteIdent(table) + " (v, b) VALUES ")
		for i := from; i < from+1000 && i <= n; i++ {
			if i > from {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "(%d, 'b%d')", i, i)
		}
		f.exec(t, sb.String())
	}
	f.exec(t, "ANALYZE TABLE "+sqlcheck.QuoteIdent(table))
}

// running counts the statements of the database's accounts whose text contains pattern.
func (f *engineFixture) running(t *testing.T, pattern string) int {
	t.Helper()
	var n int
	err := f.root.QueryRowContext(sandboxtest.Context(t), `SELECT COUNT(*) FROM information_schema.PROCESSLIST
		WHERE USER IN (?, ?) AND INFO LIKE ?`, f.rwUser, f.roUser, "%"+pattern+"%").Scan(&n)
	if err != nil {
		t.Fatalf("processlist: %v", err)
	}
	return n
}

// processes describes the sessions of the database's accounts, for failure messages.
func (f *engineFixture) processes(t *testing.T) string {
	rows, err := f.root.QueryContext(sandboxtest.Context(t), `SELECT ID, COMMAND, TIME_MS, COALESCE(STATE, ''), COALESCE(INFO, '')
		FROM information_schema.PROCESSLIST WHERE USER IN (?, ?)`, f.rwUser, f.roUser)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		var command, state, info string
		var ms float64
		if err := rows.Scan(&id, &command, &ms, &state, &info); err != nil {
			return err.Error()
		}
		out = append(out, fmt.Sprintf("#%d %s %.0f ms %q %q", id, command, ms, state, info))
	}
	return strings.Join(out, "; ")
}

// openTransactions counts the InnoDB transactions of the database's accounts.
func (f *engineFixture) openTransactions(t *testing.T) int {
	t.Helper()
	var n int
	err := f.root.QueryRowContext(sandboxtest.Context(t), `SELECT COUNT(*) FROM information_schema.INNODB_TRX x
		JOIN information_schema.PROCESSLIST p ON p.ID = x.trx_mysql_thread_id WHERE p.USER IN (?, ?)`, f.rwUser, f.roUser).Scan(&n)
	if err != nil {
		t.Fatalf("innodb_trx: %v", err)
	}
	return n
}

// eventually polls cond every 10 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkRecord checks what every record says, and its status and error code.
func checkRecord(t *testing.T, f *engineFixture, r domain.QueryExecuted, query string, status domain.QueryStatus, code string) {
	t.Helper()
	if r.Status != status || r.ErrorCode != code {
		t.Errorf("%s: record status %q code %q (error %q), want %q %q", query, r.Status, r.ErrorCode, r.Error, status, code)
	}
	if _, err := uuid.Parse(r.QueryID); err != nil {
		t.Errorf("%s: record query id %q", query, r.QueryID)
	}
	if r.TenantID != f.tenant || r.UserID != f.user || r.DatabaseID != f.id {
		t.Errorf("%s: record tenant %s user %s database %s", query, r.TenantID, r.UserID, r.DatabaseID)
	}
	if r.Fingerprint == "" || r.At.IsZero() || r.At.Location() != time.UTC {
		t.Errorf("%s: record fingerprint %q at %v", query, r.Fingerprint, r.At)
	}
	if (status == domain.QuerySucceeded) != (r.Error == "") {
		t.Errorf("%s: record status %s with error %q", query, r.Status, r.Error)
	}
	if !strings.Contains(query, "IDENTIFIED") && !strings.Contains(query, "hunter2") && r.SQL != query {
		t.Errorf("record SQL %q, want %q", r.SQL, query)
	}
	// Server messages show the database's display name, never its physical schema. (Account
	// names are no secret: the connection details hand them to the user.)
	if strings.Contains(r.Error, f.schema) || strings.Contains(r.SQL, f.schema) {
		t.Errorf("%s: record names the physical schema %s: %+v", query, f.schema, r)
	}
}

func rowsJSON(rows []json.RawMessage) string {
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = string(r)
	}
	return strings.Join(parts, ",")
}

func wantNotAllowed(t *testing.T, err error, reason string) *sqlcheck.NotAllowedError {
	t.Helper()
	var na *sqlcheck.NotAllowedError
	if !errors.As(err, &na) || na.Reason != reason {
		t.Fatalf("error %v (%T), want a *sqlcheck.NotAllowedError with reason %s", err, err, reason)
	}
	return na
}

func wantConfirmation(t *testing.T, err error, reason string) *sqlcheck.ConfirmationError {
	t.Helper()
	var ce *sqlcheck.ConfirmationError
	if !errors.As(err, &ce) || ce.Reason != reason {
		t.Fatalf("error %v (%T), want a *sqlcheck.ConfirmationError with reason %s", err, err, reason)
	}
	return ce
}

func wantQueryError(t *testing.T, err error, code uint16) *QueryError {
	t.Helper()
	var qe *QueryError
	if !errors.As(err, &qe) || qe.MySQLCode != code {
		t.Fatalf("error %v (%T), want a *QueryError %d", err, err, code)
	}
	return qe
}

// oneRecord checks that a refused or failed request is recorded as one statement.
func oneRecord(t *testing.T, f *engineFixture, query string, results []Result, records []domain.QueryExecuted, status domain.QueryStatus, code string) domain.QueryExecuted {
	t.Helper()
	if len(results) != 0 || len(records) != 1 {
		t.Fatalf("%s: %d results, %d records; want 0 and 1", query, len(results), len(records))
	}
	checkRecord(t, f, records[0], query, status, code)
	return records[0]
}

func TestEngineHappyPath(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)

	t.Run("read typed values", func(t *testing.T) {
		const q = "SELECT 1 AS i, 'x' AS s, NULL AS n, CAST(1.5 AS DECIMAL(3,1)) AS d, 9007199254740993 AS big, DATE '2024-02-29' AS day"
		res, rec := f.mustRun(t, q)
		if res.StatementType != sqlcheck.TypeRead || rec.StatementType != "read" {
			t.Errorf("statement type %q, record %q", res.StatementType, rec.StatementType)
		}
		names := []string{}
		for _, c := range res.Columns {
			names = append(names, c.Name)
		}
		if strings.Join(names, ",") != "i,s,n,d,big,day" {
			t.Errorf("columns %+v", res.Columns)
		}
		if got, want := rowsJSON(res.Rows), `[1,"x",null,"1.5","9007199254740993","2024-02-29"]`; got != want {
			t.Errorf("rows %s, want %s", got, want)
		}
		if res.RowCount != 1 || res.Truncated || res.Page != (PageInfo{Offset: 0, Limit: 1, Total: 1}) || rec.RowCount != 1 {
			t.Errorf("row count %d truncated %v page %+v; record row count %d", res.RowCount, res.Truncated, res.Page, rec.RowCount)
		}
		page, err := f.engine.Results().Page(res.QueryID, string(f.user), 0, 10)
		if err != nil || len(page.Rows) != 1 || page.Total != 1 {
			t.Errorf("stored result: %+v, %v", page, err)
		}
		if _, err := f.engine.Results().Page(res.QueryID, uuid.NewString(), 0, 10); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("another user's page: %v, want ErrNotFound", err)
		}
	})

	t.Run("ddl and dml", func(t *testing.T) {
		const create = "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, b VARCHAR(10))"
		res, rec := f.mustRun(t, create)
		if res.StatementType != sqlcheck.TypeDDL || rec.StatementType != "ddl" || !slices.Equal(rec.Tables, []string{"t"}) {
			t.Errorf("CREATE: type %q record %q tables %v", res.StatementType, rec.StatementType, rec.Tables)
		}

		const insert = "INSERT INTO t (v, b) VALUES (10, 'a'), (20, 'b'), (30, 'c')"
		res, rec = f.mustRun(t, insert)
		if res.StatementType != sqlcheck.TypeDML || res.AffectedRows != 3 || res.LastInsertID != 1 || len(res.Rows) != 0 {
			t.Errorf("INSERT: %+v", res)
		}
		if rec.StatementType != "dml" || rec.AffectedRows != 3 || rec.RowCount != 0 || !slices.Equal(rec.Tables, []string{"t"}) {
			t.Errorf("INSERT record: %+v", rec)
		}
		res, _ = f.mustRun(t, "INSERT INTO t (v) VALUES (40)")
		if res.LastInsertID != 4 || res.AffectedRows != 1 {
			t.Errorf("second INSERT: last insert id %d affected %d, want 4 and 1", res.LastInsertID, res.AffectedRows)
		}

		const update = "UPDATE t SET v = v + 1 WHERE id <= 2"
		res, rec = f.mustRun(t, update)
		if res.AffectedRows != 2 || rec.AffectedRows != 2 {
			t.Errorf("UPDATE: affected %d, record %d; want 2", res.AffectedRows, rec.AffectedRows)
		}
		res, rec = f.mustRun(t, "DELETE FROM t WHERE id = 4")
		if res.AffectedRows != 1 || rec.AffectedRows != 1 {
			t.Errorf("DELETE: affected %d, record %d; want 1", res.AffectedRows, rec.AffectedRows)
		}

		res, rec = f.mustRun(t, "SELECT id, v, b FROM t ORDER BY id")
		if got, want := rowsJSON(res.Rows), `[1,11,"a"],[2,21,"b"],[3,30,"c"]`; got != want {
			t.Errorf("rows %s, want %s", got, want)
		}
		if res.RowCount != 3 || rec.RowCount != 3 || !slices.Equal(rec.Tables, []string{"t"}) {
			t.Errorf("SELECT: row count %d, record %+v", res.RowCount, rec)
		}
		if len(res.Columns) != 3 || res.Columns[0] != (results.Column{Name: "id", Type: "INT"}) || res.Columns[2].Type != "VARCHAR" {
			t.Errorf("columns %+v", res.Columns)
		}

		// Multi: one result and one record per statement, in order.
		req := f.request(domain.RoleDeveloper, "INSERT INTO t (v) VALUES (50);\nSELECT COUNT(*) FROM t;\nDROP TABLE t")
		req.Multi, req.Confirm = true, true
		results, records, err := f.run(t, req)
		if err != nil || len(results) != 3 || len(records) != 3 {
			t.Fatalf("multi: %d results, %d records, %v", len(results), len(records), err)
		}
		for i, want := range []string{"INSERT INTO t (v) VALUES (50)", "SELECT COUNT(*) FROM t", "DROP TABLE t"} {
			checkRecord(t, f, records[i], want, domain.QuerySucceeded, "")
			if records[i].QueryID != results[i].QueryID {
				t.Errorf("multi %d: record %s result %s", i, records[i].QueryID, results[i].QueryID)
			}
		}
		if rowsJSON(results[1].Rows) != "[4]" || results[2].StatementType != sqlcheck.TypeDDL {
			t.Errorf("multi results: %s, %q", rowsJSON(results[1].Rows), results[2].StatementType)
		}
	})

	t.Run("bad request", func(t *testing.T) {
		for _, req := range []Request{
			f.request(domain.RoleDeveloper, "  "),
			func() Request { r := f.request(domain.RoleDeveloper, "SELECT 1"); r.TimeoutS = 31; return r }(),
			func() Request { r := f.request(domain.RoleDeveloper, "SELECT 1"); r.RowLimit = 1001; return r }(),
			func() Request { r := f.request(domain.RoleDeveloper, "SELECT 1"); r.PageSize = -1; return r }(),
		} {
			results, records, err := f.run(t, req)
			var ve *domain.ValidationError
			if !errors.As(err, &ve) || len(results) != 0 || len(records) != 0 {
				t.Errorf("%+v: %v, %d results, %d records; want a ValidationError and nothing recorded", req, err, len(results), len(records))
			}
		}
	})
}

func TestEngineRoleWall(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	f.exec(t, "CREATE TABLE t (id INT PRIMARY KEY)")

	for role, account := range map[domain.Role]string{domain.RoleViewer: f.roUser, domain.RoleDeveloper: f.rwUser, domain.RoleTenantAdmin: f.rwUser} {
		res, _ := f.mustRunReq(t, f.request(role, "SELECT CURRENT_USER()"))
		if got := rowsJSON(res.Rows); got != `["`+account+`@%"]` {
			t.Errorf("%s runs as %s, want %s@%%", role, got, account)
		}
	}

	for _, tt := range []struct {
		query string
		typ   sqlcheck.StatementType
	}{
		{"INSERT INTO t VALUES (1)", sqlcheck.TypeDML},
		{"SELECT * FROM t FOR UPDATE", sqlcheck.TypeDML},
		{"CREATE TABLE u (a INT)", sqlcheck.TypeDDL},
		{"DROP TABLE t", sqlcheck.TypeDDL},
	} {
		req := f.request(domain.RoleViewer, tt.query)
		req.Confirm = true
		results, records, err := f.run(t, req)
		na := wantNotAllowed(t, err, "read_only_role")
		if na.StatementType != tt.typ {
			t.Errorf("%s: statement type %q, want %q", tt.query, na.StatementType, tt.typ)
		}
		rec := oneRecord(t, f, tt.query, results, records, domain.QueryDenied, "statement_not_allowed")
		if rec.StatementType != string(tt.typ) {
			t.Errorf("%s: record statement type %q", tt.query, rec.StatementType)
		}
	}
	if n := f.count(t, "t"); n != 0 {
		t.Errorf("t has %d rows after the viewer's refused INSERT", n)
	}

	// The wall behind the parser: the read-only account itself may not write.
	ro := sandboxtest.ConnectAs(t, f.server, f.roUser, f.passwords[passwordKey(f.id, true)], f.schema)
	_, err := ro.ExecContext(sandboxtest.Context(t), "INSERT INTO t VALUES (1)")
	sandboxtest.WantErrno(t, "INSERT as the read-only account", err, 1142)
	_, err = ro.ExecContext(sandboxtest.Context(t), "CREATE TABLE u (a INT)")
	sandboxtest.WantErrno(t, "CREATE TABLE as the read-only account", err, 1142)
	_, err = ro.ExecContext(sandboxtest.Context(t), "DELETE FROM t")
	sandboxtest.WantErrno(t, "DELETE as the read-only account", err, 1142)
}

func TestEngineServerSideTimeout(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)

	t.Run("sleep", func(t *testing.T) {
		// SLEEP(60) against 0.3 s: a statement that ran to its end would take 200 times the
		// timeout, so a bound of 30 s tells the two apart on the busiest machine.
		req := f.request(domain.RoleDeveloper, "SELECT SLEEP(60)")
		req.TimeoutS = 0.3
		start := time.Now()
		results, records, err := f.run(t, req)
		elapsed := time.Since(start)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("SLEEP(60) with a 0.3 s timeout: %v, want ErrTimeout", err)
		}
		if elapsed > 30*time.Second {
			t.Errorf("took %v: the statement was not stopped at its timeout", elapsed)
		}
		rec := oneRecord(t, f, req.SQL, results, records, domain.QueryTimedOut, "query_timeout")
		if rec.StatementType != "read" || rec.ExecutionMS < 250 {
			t.Errorf("record %+v", rec)
		}
		eventually(t, 30*time.Second, "SLEEP still runs on the server", func() bool { return f.running(t, "SLEEP(60)") == 0 })
	})

	t.Run("cpu bound", func(t *testing.T) {
		// A trillion-row join runs for hours: 30 s tells a stopped one from one that ran on, however
		// busy the machine.
		f.fill(t, "n", 1000)
		req := f.request(domain.RoleDeveloper, "SELECT COUNT(*) FROM n a, n b, n c, n d WHERE a.v + b.v + c.v + d.v = 7")
		req.TimeoutS = 0.3
		start := time.Now()
		results, records, err := f.run(t, req)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("a trillion-row join with a 0.3 s timeout: %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("took %v", d)
		}
		oneRecord(t, f, req.SQL, results, records, domain.QueryTimedOut, "query_timeout")
		eventually(t, 30*time.Second, "the join still runs on the server", func() bool { return f.running(t, "n a, n b, n c, n d") == 0 })
	})

	// MariaDB's BENCHMARK() stops when its statement is interrupted (max_statement_time or KILL
	// QUERY) but returns 0 instead of an error: the server reports success, and so, unless the
	// engine notices, does the record. The statement must be stopped all the same. A billion MD5s
	// take minutes: 30 s tells a stopped BENCHMARK from one that ran on.
	t.Run("benchmark", func(t *testing.T) {
		req := f.request(domain.RoleDeveloper, "SELECT BENCHMARK(1000000000, MD5('x'))")
		req.TimeoutS = 0.3
		start := time.Now()
		results, records, err := f.run(t, req)
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("took %v: the server did not stop it", d)
		}
		eventually(t, 30*time.Second, "BENCHMARK still runs on the server", func() bool { return f.running(t, "BENCHMARK(") == 0 })
		if !errors.Is(err, ErrTimeout) {
			rows, status := "", domain.QueryStatus("")
			if len(results) > 0 {
				rows = rowsJSON(results[0].Rows)
			}
			if len(records) > 0 {
				status = records[0].Status
			}
			t.Errorf("BENCHMARK stopped at its 0.3 s timeout: error %v, rows %s, record status %q; want ErrTimeout and status timeout",
				err, rows, status)
			return
		}
		oneRecord(t, f, req.SQL, results, records, domain.QueryTimedOut, "query_timeout")
	})
}

// TestEngineClientCancel cancels requests while their statement runs: Run returns at once with
// context.Canceled, and the KILL QUERY watchdog ends the statement on the server (cancelling the
// context only closes the socket; MariaDB would sleep on). Several requests are cancelled at
// once too, which makes a lost kill more likely to show.
func TestEngineClientCancel(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	for _, n := range []int{1, 4} { // the pool holds half the plan's 10 connections
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx, cancel := context.WithCancel(sandboxtest.Context(t))
			defer cancel()
			type outcome struct {
				results []Result
				records []domain.QueryExecuted
				err     error
			}
			done := make(chan outcome, n)
			for i := range n {
				req := f.request(domain.RoleDeveloper, fmt.Sprintf("SELECT SLEEP(60) AS s%d", i))
				go func() {
					results, records, err := f.engine.Run(ctx, req)
					done <- outcome{results, records, err}
				}()
			}
			eventually(t, 30*time.Second, "the statements never all showed in the processlist", func() bool {
				if len(done) > 0 {
					t.Fatalf("a request ended early: %v", (<-done).err)
				}
				return f.running(t, "SLEEP(60)") == n
			})
			cancel()
			// Run returns once the server let go of the killed statements; a statement that
			// ran on would keep it 60 s, so 30 s tells the two apart on the busiest machine.
			for range n {
				var o outcome
				select {
				case o = <-done:
				case <-time.After(30 * time.Second):
					t.Fatal("Run did not return within 30 s of the cancel: the statement was not killed")
				}
				if !errors.Is(o.err, context.Canceled) {
					t.Errorf("Run: %v, want context.Canceled", o.err)
				}
				if len(o.results) != 0 || len(o.records) != 1 || o.records[0].Status == domain.QuerySucceeded {
					t.Errorf("%d results, records %+v", len(o.results), o.records)
				}
			}
			eventually(t, 30*time.Second, "the cancelled statements leave the server", func() bool { return f.running(t, "SLEEP(60)") == 0 })
			// The engine is still usable.
			f.mustRun(t, "SELECT 1")
		})
	}
}

func TestEngineRowLimit(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	f.fill(t, "t", 1500)

	req := f.request(domain.RoleDeveloper, "SELECT v FROM t ORDER BY v")
	req.RowLimit, req.PageSize = 1000, 250
	res, rec := f.mustRunReq(t, req)
	if res.RowCount != 1000 || !res.Truncated || rec.RowCount != 1000 {
		t.Errorf("row count %d truncated %v, record row count %d; want 1000, true", res.RowCount, res.Truncated, rec.RowCount)
	}
	if len(res.Rows) != 250 || res.Page != (PageInfo{Offset: 0, Limit: 250, Total: 1000}) {
		t.Fatalf("%d inline rows, page %+v; want 250 of 1000", len(res.Rows), res.Page)
	}
	if string(res.Rows[0]) != "[1]" || string(res.Rows[249]) != "[250]" {
		t.Errorf("inline rows %s … %s", res.Rows[0], res.Rows[249])
	}
	page, err := f.engine.Results().Page(res.QueryID, string(f.user), 900, 200)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Rows) != 100 || page.Total != 1000 || !page.Truncated {
		t.Fatalf("page 900+200: %d rows, total %d, truncated %v; want 100 of 1000, truncated", len(page.Rows), page.Total, page.Truncated)
	}
	if string(page.Rows[0]) != "[901]" || string(page.Rows[99]) != "[1000]" {
		t.Errorf("page 900+200: rows %s … %s, want [901] … [1000]", page.Rows[0], page.Rows[99])
	}

	// The tenant's row limit (1,000 on the free plan) applies by default; the inline page is 100.
	res, _ = f.mustRun(t, "SELECT v FROM t")
	if res.RowCount != 1000 || !res.Truncated || len(res.Rows) != DefaultPageSize {
		t.Errorf("default limits: row count %d truncated %v, %d inline", res.RowCount, res.Truncated, len(res.Rows))
	}
	// A lower limit; a result that fits is not truncated.
	req = f.request(domain.RoleDeveloper, "SELECT v FROM t WHERE v <= 10")
	req.RowLimit = 10
	if res, _ = f.mustRunReq(t, req); res.RowCount != 10 || res.Truncated || len(res.Rows) != 10 {
		t.Errorf("10 rows at limit 10: row count %d truncated %v", res.RowCount, res.Truncated)
	}
}

func TestEngineSessionIsolation(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	f.exec(t, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")

	t.Run("open transaction", func(t *testing.T) {
		req := f.request(domain.RoleDeveloper, "START TRANSACTION; INSERT INTO t (v) VALUES (1)")
		req.Multi = true
		results, records, err := f.run(t, req)
		if err != nil || len(results) != 2 || len(records) != 2 {
			t.Fatalf("%d results, %d records, %v", len(results), len(records), err)
		}
		checkRecord(t, f, records[0], "START TRANSACTION", domain.QuerySucceeded, "")
		checkRecord(t, f, records[1], "INSERT INTO t (v) VALUES (1)", domain.QuerySucceeded, "")
		if records[0].StatementType != "other" || results[1].AffectedRows != 1 {
			t.Errorf("START TRANSACTION type %q, INSERT affected %d", records[0].StatementType, results[1].AffectedRows)
		}
		eventually(t, 30*time.Second, "the request's transaction is still open", func() bool { return f.openTransactions(t) == 0 })
		if n := f.count(t, "t"); n != 0 {
			t.Errorf("t has %d rows: the uncommitted INSERT was not rolled back", n)
		}
		// The next requests do not run in that transaction: what they write is committed.
		res, _ := f.mustRun(t, "SELECT COUNT(*) FROM t")
		if rowsJSON(res.Rows) != "[0]" {
			t.Errorf("the next request sees %s rows, want 0", rowsJSON(res.Rows))
		}
		f.mustRun(t, "INSERT INTO t (v) VALUES (2)")
		if n := f.count(t, "t"); n != 1 {
			t.Errorf("t has %d rows after a committed INSERT, want 1", n)
		}
		if n := f.openTransactions(t); n != 0 {
			t.Errorf("%d transactions open after the autocommitted INSERT", n)
		}
	})

	t.Run("autocommit off", func(t *testing.T) {
		f.exec(t, "CREATE TABLE ac (v INT)")
		f.mustRun(t, "SET autocommit = 0")
		f.mustRun(t, "INSERT INTO ac (v) VALUES (3)")
		if n := f.count(t, "ac"); n != 1 {
			t.Errorf("ac has %d rows: an INSERT after SET autocommit = 0 in an earlier request was not committed", n)
		}
	})

	t.Run("user variables", func(t *testing.T) {
		f.mustRun(t, "SET @x = 1")
		if res, _ := f.mustRun(t, "SELECT @x"); rowsJSON(res.Rows) != "[null]" {
			t.Errorf("SELECT @x in the next request: %s, want [null]", rowsJSON(res.Rows))
		}
		req := f.request(domain.RoleDeveloper, "SET @y = 7; SELECT @y")
		req.Multi = true
		results, _, err := f.run(t, req)
		if err != nil || len(results) != 2 || rowsJSON(results[1].Rows) != "[7]" {
			t.Errorf("within one multi request: %v, %+v", err, results)
		}
		if res, _ := f.mustRun(t, "SELECT @y"); rowsJSON(res.Rows) != "[null]" {
			t.Errorf("SELECT @y after the multi request: %s, want [null]", rowsJSON(res.Rows))
		}
	})

	t.Run("user-level locks", func(t *testing.T) {
		// GET_LOCK itself never reaches the server; a function made behind the classifier's back
		// (over a direct connection) takes the lock in a plain SELECT, whose session would go
		// back to the pool holding it.
		name := "clouddb-test-" + uuid.NewString()
		_, _, err := f.run(t, f.request(domain.RoleViewer, "SELECT GET_LOCK('"+name+"', 0)"))
		wantNotAllowed(t, err, "server_function")
		f.exec(t, "CREATE FUNCTION take_lock() RETURNS INT SQL SECURITY INVOKER RETURN GET_LOCK('"+name+"', 0)")
		if res, _ := f.mustRun(t, "SELECT take_lock()"); rowsJSON(res.Rows) != "[1]" {
			t.Fatalf("SELECT take_lock() = %s, want [1]", rowsJSON(res.Rows))
		}
		var holder sql.NullInt64
		if err := f.root.QueryRowContext(sandboxtest.Context(t), "SELECT IS_USED_LOCK(?)", name).Scan(&holder); err != nil {
			t.Fatal(err)
		}
		if holder.Valid {
			t.Errorf("connection %d still holds the lock the request took", holder.Int64)
		}
	})

	t.Run("temporary table", func(t *testing.T) {
		f.mustRun(t, "CREATE TEMPORARY TABLE tmp (a INT)")
		results, records, err := f.run(t, f.request(domain.RoleDeveloper, "SELECT * FROM tmp"))
		wantQueryError(t, err, 1146)
		oneRecord(t, f, "SELECT * FROM tmp", results, records, domain.QueryFailed, "query_failed")
	})
}

// TestEngineLockReleaseAfterStoredCodeOnly: a session goes back to its pool without a
// RELEASE_ALL_LOCKS round trip after a SELECT of literals, which runs no stored code and so can take
// no lock; after any other statement it gives up whatever it holds.
func TestEngineLockReleaseAfterStoredCodeOnly(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	ctx := sandboxtest.Context(t)
	f.mustRun(t, "SELECT 1") // the account's one session, idle in its pool
	c, err := f.engine.session(ctx, f.request(domain.RoleDeveloper, "SELECT 1"), sqlcheck.ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	name := "clouddb-test-" + uuid.NewString()
	var took sql.NullInt64
	if err := c.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", name).Scan(&took); err != nil || took.Int64 != 1 {
		t.Fatalf("GET_LOCK = %v, %v", took, err)
	}
	f.engine.pools.release(c, false, false) // back to the pool holding the lock, unseen
	holder := func() sql.NullInt64 {
		t.Helper()
		var h sql.NullInt64
		if err := f.root.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", name).Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	f.mustRun(t, "SELECT 1, 'a', (2 + 3) * 4")
	if h := holder(); !h.Valid || uint64(h.Int64) != c.id {
		t.Fatalf("after a SELECT of literals the lock is held by %v, want the session's %d: nothing runs after it", h, c.id)
	}
	f.mustRun(t, "SELECT 1 FROM dual")
	if h := holder(); h.Valid {
		t.Errorf("after SELECT 1 FROM dual connection %d still holds the lock", h.Int64)
	}
}

func TestEngineConfirmations(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	f.fill(t, "small", 10)
	f.fill(t, "big", 2000)

	for _, tt := range []struct{ query, reason string }{
		{"DROP TABLE small", "drop"},
		{"TRUNCATE TABLE small", "drop"},
		{"DELETE FROM small", "no_where"},
		{"UPDATE small SET v = 0", "no_where"},
	} {
		results, records, err := f.run(t, f.request(domain.RoleDeveloper, tt.query))
		wantConfirmation(t, err, tt.reason)
		oneRecord(t, f, tt.query, results, records, domain.QueryDenied, "confirmation_required")
	}
	if n := f.count(t, "small"); n != 10 {
		t.Fatalf("small has %d rows after refused statements, want 10", n)
	}

	t.Run("large write", func(t *testing.T) {
		const update = "UPDATE big SET v = v + 1 WHERE v >= 0"
		results, records, err := f.run(t, f.request(domain.RoleDeveloper, update))
		ce := wantConfirmation(t, err, "large_write")
		if ce.EstimatedRows <= sqlcheck.ConfirmWriteRows || ce.EstimatedRows > 4000 {
			t.Errorf("estimated %d rows, want about 2,000", ce.EstimatedRows)
		}
		oneRecord(t, f, update, results, records, domain.QueryDenied, "confirmation_required")
		var sum int64
		if err := f.root.QueryRow("SELECT SUM(v) FROM big").Scan(&sum); err != nil || sum != 2000*2001/2 {
			t.Errorf("sum %d, %v: the refused UPDATE changed rows", sum, err)
		}

		req := f.request(domain.RoleDeveloper, update)
		req.Confirm = true
		if res, _ := f.mustRunReq(t, req); res.AffectedRows != 2000 {
			t.Errorf("confirmed UPDATE: affected %d, want 2000", res.AffectedRows)
		}
		// A write through the primary key is estimated at one row.
		f.mustRun(t, "UPDATE big SET v = 0 WHERE id = 5")
	})

	t.Run("too large for the plan", func(t *testing.T) {
		for _, q := range []string{"UPDATE big SET v = v + 1 WHERE v >= 0", "DELETE FROM big WHERE v >= 0"} {
			req := f.request(domain.RoleDeveloper, q)
			req.Confirm = true
			req.Policy.Limits.MaxWriteRows = 100
			results, records, err := f.run(t, req)
			na := wantNotAllowed(t, err, "too_large")
			if na.StatementType != sqlcheck.TypeDML {
				t.Errorf("%s: statement type %q", q, na.StatementType)
			}
			oneRecord(t, f, q, results, records, domain.QueryDenied, "statement_not_allowed")
		}
		if n := f.count(t, "big"); n != 2000 {
			t.Errorf("big has %d rows, want 2000", n)
		}
		req := f.request(domain.RoleDeveloper, "DELETE FROM big WHERE id = 7")
		req.Policy.Limits.MaxWriteRows = 100
		if res, _ := f.mustRunReq(t, req); res.AffectedRows != 1 {
			t.Errorf("DELETE by primary key under MaxWriteRows 100: affected %d", res.AffectedRows)
		}
	})

	t.Run("confirmed", func(t *testing.T) {
		for _, q := range []string{"DELETE FROM small", "TRUNCATE TABLE small", "DROP TABLE small"} {
			req := f.request(domain.RoleDeveloper, q)
			req.Confirm = true
			f.mustRunReq(t, req)
		}
		var n int
		if err := f.root.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'small'").Scan(&n); err != nil || n != 0 {
			t.Errorf("small still exists (%d, %v)", n, err)
		}
	})
}

func TestEngineStorageQuota(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	f.fill(t, "t", 10)
	over := func(q string) Request {
		req := f.request(domain.RoleDeveloper, q)
		req.Policy.StorageBytes = req.Policy.Limits.MaxStorageBytes
		return req
	}
	for _, q := range []string{"INSERT INTO t (v) VALUES (11)", "UPDATE t SET v = 0 WHERE id = 1", "CREATE TABLE u (a INT)"} {
		results, records, err := f.run(t, over(q))
		var quota *domain.QuotaExceededError
		if !errors.As(err, &quota) || quota.Resource != "storage" || quota.Used != f.limits.MaxStorageBytes || quota.Limit != f.limits.MaxStorageBytes {
			t.Fatalf("%s over quota: %v, want a storage QuotaExceededError", q, err)
		}
		oneRecord(t, f, q, results, records, domain.QueryDenied, "quota_exceeded")
	}
	if n := f.count(t, "t"); n != 10 {
		t.Errorf("t has %d rows, want 10", n)
	}
	if res, _ := f.mustRunReq(t, over("SELECT COUNT(*) FROM t")); rowsJSON(res.Rows) != "[10]" {
		t.Errorf("SELECT over quota: %s", rowsJSON(res.Rows))
	}
	if res, _ := f.mustRunReq(t, over("DELETE FROM t WHERE id <= 3")); res.AffectedRows != 3 {
		t.Errorf("DELETE over quota: affected %d", res.AffectedRows)
	}
	req := over("DROP TABLE t")
	req.Confirm = true
	f.mustRunReq(t, req)
	// Just under the limit, writes run.
	req = f.request(domain.RoleDeveloper, "CREATE TABLE u (a INT)")
	req.Policy.StorageBytes = f.limits.MaxStorageBytes - 1
	f.mustRunReq(t, req)
}

func TestEngineHighImpactAlter(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	f.fill(t, "t", 10)

	const drop = "ALTER TABLE t DROP COLUMN b"
	results, records, err := f.run(t, f.request(domain.RoleDeveloper, drop))
	na := wantNotAllowed(t, err, "high_impact_alter")
	if na.StatementType != sqlcheck.TypeDDL {
		t.Errorf("statement type %q", na.StatementType)
	}
	rec := oneRecord(t, f, drop, results, records, domain.QueryDenied, "statement_not_allowed")
	if rec.StatementType != "ddl" || !slices.Equal(rec.Tables, []string{"t"}) {
		t.Errorf("record %+v", rec)
	}
	columns := func() int {
		var n int
		if err := f.root.QueryRow("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := columns(); n != 3 {
		t.Fatalf("t has %d columns after the refused DROP COLUMN, want 3", n)
	}
	f.mustRun(t, "ALTER TABLE t ADD COLUMN c INT")
	if n := columns(); n != 4 {
		t.Errorf("t has %d columns after ADD COLUMN, want 4", n)
	}
	req := f.request(domain.RoleTenantAdmin, drop)
	req.Policy.Settings.AllowHighImpactAlter = true
	f.mustRunReq(t, req)
	if n := columns(); n != 3 {
		t.Errorf("t has %d columns after an allowed DROP COLUMN, want 3", n)
	}
}

func TestEngineErrors(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	f.exec(t, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")

	t.Run("unknown table", func(t *testing.T) {
		const q = "SELECT * FROM nope"
		results, records, err := f.run(t, f.request(domain.RoleDeveloper, q))
		qe := wantQueryError(t, err, 1146)
		if !strings.Contains(qe.Message, "'shop.nope'") || strings.Contains(err.Error(), f.schema) || strings.Contains(qe.Message, f.prefix) {
			t.Errorf("message %q (error %q): want the display name shop, never the schema %s", qe.Message, err, f.schema)
		}
		if qe.Syntax() || qe.Explanation == "" {
			t.Errorf("syntax %v explanation %q", qe.Syntax(), qe.Explanation)
		}
		rec := oneRecord(t, f, q, results, records, domain.QueryFailed, "query_failed")
		if rec.MySQLCode != 1146 || rec.Error != qe.Message || !slices.Equal(rec.Tables, []string{"nope"}) {
			t.Errorf("record %+v", rec)
		}
	})

	t.Run("duplicate key and another schema", func(t *testing.T) {
		const q = "INSERT INTO t (id, v) VALUES (1, 1), (1, 2)"
		results, records, err := f.run(t, f.request(domain.RoleDeveloper, q))
		wantQueryError(t, err, 1062)
		oneRecord(t, f, q, results, records, domain.QueryFailed, "query_failed")
		const q2 = "SELECT * FROM other.t"
		results, records, err = f.run(t, f.request(domain.RoleDeveloper, q2))
		wantNotAllowed(t, err, "other_schema")
		oneRecord(t, f, q2, results, records, domain.QueryDenied, "statement_not_allowed")
	})

	t.Run("syntax error", func(t *testing.T) {
		const q = "SELECT * FORM t"
		results, records, err := f.run(t, f.request(domain.RoleDeveloper, q))
		qe := wantQueryError(t, err, 1064)
		if !qe.Syntax() || qe.Position == nil || *qe.Position != (Position{Line: 1, Column: 10, Offset: 9}) {
			t.Errorf("syntax %v position %+v, want 1:10 (offset 9)", qe.Syntax(), qe.Position)
		}
		if strings.Contains(qe.Message, "SET STATEMENT") || strings.Contains(qe.Message, "max_statement_time") {
			t.Errorf("message %q shows the engine's prefix", qe.Message)
		}
		rec := oneRecord(t, f, q, results, records, domain.QueryFailed, "syntax_error")
		if rec.MySQLCode != 1064 {
			t.Errorf("record %+v", rec)
		}
	})

	t.Run("unterminated string", func(t *testing.T) {
		const q = "SELECT 'unterminated"
		results, records, err := f.run(t, f.request(domain.RoleDeveloper, q))
		qe := wantQueryError(t, err, 1064)
		if !qe.Syntax() || qe.Position == nil || qe.Position.Line != 1 {
			t.Errorf("syntax %v position %+v", qe.Syntax(), qe.Position)
		}
		rec := oneRecord(t, f, q, results, records, domain.QueryFailed, "syntax_error")
		if rec.MySQLCode != 1064 {
			t.Errorf("record %+v", rec)
		}
	})

	t.Run("unterminated string in a multi request", func(t *testing.T) {
		req := f.request(domain.RoleDeveloper, "SELECT 1; SELECT 'unterminated")
		req.Multi = true
		results, records, err := f.run(t, req)
		if qe := wantQueryError(t, err, 1064); !qe.Syntax() {
			t.Errorf("%+v", qe)
		}
		oneRecord(t, f, req.SQL, results, records, domain.QueryFailed, "syntax_error")
	})

	t.Run("multi stops at the first failure", func(t *testing.T) {
		req := f.request(domain.RoleDeveloper, "INSERT INTO t (v) VALUES (1);\nSELECT * FROM nope;\nINSERT INTO t (v) VALUES (2)")
		req.Multi = true
		results, records, err := f.run(t, req)
		var se *StatementError
		if !errors.As(err, &se) || se.Index != 2 {
			t.Fatalf("%v, want a *StatementError for statement 2", err)
		}
		wantQueryError(t, err, 1146)
		if len(results) != 1 || results[0].AffectedRows != 1 || len(records) != 2 {
			t.Fatalf("%d results, %d records; want 1 and 2", len(results), len(records))
		}
		checkRecord(t, f, records[0], "INSERT INTO t (v) VALUES (1)", domain.QuerySucceeded, "")
		checkRecord(t, f, records[1], "SELECT * FROM nope", domain.QueryFailed, "query_failed")
		if n := f.count(t, "t"); n != 1 {
			t.Errorf("t has %d rows, want 1: the statement after the failure ran", n)
		}

		// A refusal in prepare: nothing runs, the refused statement is recorded.
		req = f.request(domain.RoleDeveloper, "INSERT INTO t (v) VALUES (3); DROP TABLE t")
		req.Multi = true
		results, records, err = f.run(t, req)
		wantConfirmation(t, err, "drop")
		if !errors.As(err, &se) || se.Index != 2 {
			t.Errorf("%v, want a *StatementError for statement 2", err)
		}
		if len(results) != 0 || len(records) != 1 {
			t.Fatalf("%d results, %d records; want 0 and 1", len(results), len(records))
		}
		checkRecord(t, f, records[0], "DROP TABLE t", domain.QueryDenied, "confirmation_required")
		if n := f.count(t, "t"); n != 1 {
			t.Errorf("t has %d rows, want 1: a statement ran before a later one was refused", n)
		}

		// Without multi, two statements are one refused request.
		const two = "SELECT 1; SELECT 2"
		results, records, err = f.run(t, f.request(domain.RoleDeveloper, two))
		wantNotAllowed(t, err, "multiple_statements")
		oneRecord(t, f, two, results, records, domain.QueryDenied, "statement_not_allowed")
	})

	t.Run("database state", func(t *testing.T) {
		req := f.request(domain.RoleDeveloper, "SELECT 1")
		req.Target.State = domain.StateStopped
		results, records, err := f.run(t, req)
		if !errors.Is(err, domain.ErrDatabaseStopped) {
			t.Errorf("stopped: %v", err)
		}
		oneRecord(t, f, "SELECT 1", results, records, domain.QueryFailed, "database_stopped")
		req.Target.State = domain.StateProvisioning
		results, records, err = f.run(t, req)
		if !errors.Is(err, domain.ErrDatabaseUnavailable) {
			t.Errorf("provisioning: %v", err)
		}
		oneRecord(t, f, "SELECT 1", results, records, domain.QueryFailed, "database_unavailable")
	})
}

// TestEngineTenantConcurrencyCap: a tenant runs at most its plan's connections at once; a query
// past them waits for a place (here: SLEEP(0.5) ends well within the wait) and is refused as
// busy only when none comes within the admission's wait.
func TestEngineTenantConcurrencyCap(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	req := f.request(domain.RoleDeveloper, "SELECT SLEEP(0.5)")
	req.Policy.Limits.MaxConnections = 2
	run3 := func() (results [3][]Result, records [3][]domain.QueryExecuted, errs [3]error) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], records[i], errs[i] = f.engine.Run(sandboxtest.Context(t), req)
			}()
		}
		close(start)
		wg.Wait()
		return
	}
	// The third waits for a place and then for the account's only session (half the plan's 2
	// connections): about a second on an idle machine, more on a loaded one; 30 s is the bound.
	f.engine.admission.wait = 30 * time.Second
	if _, _, errs := run3(); errors.Join(errs[:]...) != nil {
		t.Fatalf("three queries at a cap of 2, the third waiting for a place: %v", errors.Join(errs[:]...))
	}

	// With a wait too short for SLEEP(0.5): one runs; the two others wait for the tenant's
	// places or the account's only session (half the plan's 2 connections), and are refused.
	f.engine.admission.wait = 10 * time.Millisecond
	results, records, errs := run3()
	busy := 0
	for i, err := range errs {
		switch {
		case errors.As(err, new(*BusyError)):
			busy++
			oneRecord(t, f, req.SQL, results[i], records[i], domain.QueryDenied, "rate_limited")
		case err != nil:
			t.Errorf("request %d: %v", i, err)
		default:
			if len(results[i]) != 1 || rowsJSON(results[i][0].Rows) != "[0]" {
				t.Errorf("request %d: %+v", i, results[i])
			}
		}
	}
	if busy != 2 {
		t.Errorf("three queries at a cap of 2 with a short wait: %d busy, want 2", busy)
	}
	// The cap is released: the next query runs.
	f.mustRunReq(t, req)
}

func TestEnginePasswordRotation(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	f.mustRun(t, "SELECT 1") // the pool is open, with an idle session
	viewer := f.request(domain.RoleViewer, "SELECT 1")
	f.mustRunReq(t, viewer)

	rw, err := f.server.RotatePassword(sandboxtest.Context(t), string(f.id))
	if err != nil {
		t.Fatal(err)
	}
	f.setPassword(false, rw)
	if res, _ := f.mustRun(t, "SELECT 2"); rowsJSON(res.Rows) != "[2]" {
		t.Errorf("after the rotation: %s", rowsJSON(res.Rows))
	}
	f.mustRunReq(t, viewer) // the read-only account was not rotated
	f.mustRun(t, "SELECT 3")

	// A rotation the vault does not know yet: the database is unavailable, then works again.
	if _, err := f.server.RotatePassword(sandboxtest.Context(t), string(f.id)); err != nil {
		t.Fatal(err)
	}
	results, records, err := f.run(t, f.request(domain.RoleDeveloper, "SELECT 4"))
	if !errors.Is(err, domain.ErrDatabaseUnavailable) {
		t.Fatalf("with a stale password: %v, want ErrDatabaseUnavailable", err)
	}
	oneRecord(t, f, "SELECT 4", results, records, domain.QueryFailed, "database_unavailable")
	if strings.Contains(err.Error(), f.passwords[passwordKey(f.id, false)]) {
		t.Errorf("error shows the password: %v", err)
	}
	rw, err = f.server.RotatePassword(sandboxtest.Context(t), string(f.id))
	if err != nil {
		t.Fatal(err)
	}
	f.setPassword(false, rw)
	f.mustRun(t, "SELECT 5")
}

func TestEngineUnreachableServer(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	// A refused connection fails at once; an engine that waited or retried until its context
	// ended would take the two minutes given it, so 30 s tells the two apart on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, server := range []string{"127.0.0.1:1", ""} {
		req := f.request(domain.RoleDeveloper, "SELECT 1")
		req.Target.Server = server
		start := time.Now()
		results, records, err := f.engine.Run(ctx, req)
		if !errors.Is(err, domain.ErrDatabaseUnavailable) {
			t.Errorf("server %q: %v, want an error wrapping ErrDatabaseUnavailable", server, err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("server %q: took %v", server, d)
		}
		oneRecord(t, f, "SELECT 1", results, records, domain.QueryFailed, "database_unavailable")
	}
}

func TestEngineValidate(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	f.fill(t, "big", 2000)
	f.fill(t, "small", 10)
	cols := make([]string, 22)
	for i := range cols {
		cols[i] = fmt.Sprintf("c%d INT", i+1)
	}
	f.exec(t, "CREATE TABLE wide ("+strings.Join(cols, ", ")+")")

	validate := func(req Request) Validation {
		t.Helper()
		v, err := f.engine.Validate(sandboxtest.Context(t), req)
		if err != nil {
			t.Fatalf("Validate %q: %v", req.SQL, err)
		}
		if v.Valid != (len(v.Errors) == 0) {
			t.Errorf("%q: valid %v with errors %+v", req.SQL, v.Valid, v.Errors)
		}
		return v
	}
	codes := func(ss []Suggestion) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Code)
		}
		return out
	}
	dev := func(q string) Request { return f.request(domain.RoleDeveloper, q) }

	t.Run("errors", func(t *testing.T) {
		v := validate(dev("SELECT * FORM small"))
		if v.Valid || len(v.Errors) != 1 || v.Errors[0].Code != "syntax_error" || v.Errors[0].Position == nil ||
			*v.Errors[0].Position != (Position{Line: 1, Column: 10, Offset: 9}) {
			t.Errorf("syntax error: %+v", v)
		}
		multi := dev("SELECT 1;\nSELECT * FORM small")
		multi.Multi = true
		v = validate(multi)
		if v.Valid || len(v.Errors) != 1 || v.Errors[0].Position == nil || *v.Errors[0].Position != (Position{Line: 2, Column: 10, Offset: 19}) {
			t.Errorf("syntax error in statement 2: %+v", v.Errors)
		}
		v = validate(dev("SELECT * FROM nope"))
		if v.Valid || len(v.Errors) != 1 || v.Errors[0].Code != "query_failed" || !strings.Contains(v.Errors[0].Message, "shop.nope") ||
			strings.Contains(v.Errors[0].Message, f.schema) {
			t.Errorf("unknown table: %+v", v.Errors)
		}
		v = validate(f.request(domain.RoleViewer, "DELETE FROM small WHERE id = 1"))
		if v.Valid || len(v.Errors) != 1 || v.Errors[0].Code != "statement_not_allowed" || v.Errors[0].Reason != "read_only_role" || v.StatementType != sqlcheck.TypeDML {
			t.Errorf("viewer's DELETE: %+v", v)
		}
		v = validate(dev("SELECT 1; SELECT 2"))
		if v.Valid || len(v.Errors) == 0 || v.Errors[0].Reason != "multiple_statements" {
			t.Errorf("two statements without multi: %+v", v.Errors)
		}
		if _, err := f.engine.Validate(sandboxtest.Context(t), dev(" ")); err == nil {
			t.Error("empty SQL validated")
		}
	})

	// Text the splitter cannot cut (an unterminated string) goes to the server as one statement,
	// as in Run: a syntax error with its position, not a refusal.
	t.Run("unterminated string is a syntax error", func(t *testing.T) {
		v := validate(dev("SELECT 'unterminated"))
		if v.Valid || len(v.Errors) != 1 || v.Errors[0].Code != "syntax_error" || v.Errors[0].Position == nil {
			t.Errorf("unterminated string: %+v, want one syntax_error with a position (as Run answers)", v.Errors)
		}
	})

	t.Run("suggestions", func(t *testing.T) {
		v := validate(dev("SELECT id FROM big WHERE v = 5"))
		if !v.Valid || v.StatementType != sqlcheck.TypeRead || !slices.Contains(codes(v.Suggestions), "full_scan") {
			t.Errorf("full scan of 2,000 rows: %+v", v)
		}
		if v := validate(dev("SELECT id FROM big WHERE id = 5")); !v.Valid || slices.Contains(codes(v.Suggestions), "full_scan") {
			t.Errorf("primary key lookup: %+v", v)
		}
		if v := validate(dev("SELECT id FROM small WHERE v = 5")); !v.Valid || slices.Contains(codes(v.Suggestions), "full_scan") {
			t.Errorf("full scan of 10 rows: %+v", v)
		}
		v = validate(dev("DELETE FROM big"))
		if !v.Valid || v.StatementType != sqlcheck.TypeDML || !slices.Contains(codes(v.Suggestions), "no_where") {
			t.Errorf("DELETE without WHERE: %+v", v)
		}
		v = validate(dev("SELECT * FROM wide"))
		if !v.Valid || !slices.Contains(codes(v.Suggestions), "select_star") {
			t.Errorf("SELECT * on 22 columns: %+v", v)
		}
		if v := validate(dev("SELECT c1 FROM wide")); slices.Contains(codes(v.Suggestions), "select_star") {
			t.Errorf("SELECT c1: %+v", v)
		}
		if v := validate(dev("SELECT * FROM small")); slices.Contains(codes(v.Suggestions), "select_star") {
			t.Errorf("SELECT * on 3 columns: %+v", v)
		}
	})

	t.Run("nothing runs", func(t *testing.T) {
		for _, q := range []string{"DELETE FROM big", "INSERT INTO small (v) VALUES (99)", "UPDATE small SET v = 0 WHERE id = 1", "DROP TABLE small", "TRUNCATE TABLE big"} {
			validate(dev(q))
		}
		if n := f.count(t, "big"); n != 2000 {
			t.Errorf("big has %d rows after validations, want 2000", n)
		}
		if n := f.count(t, "small"); n != 10 {
			t.Errorf("small has %d rows after validations, want 10", n)
		}
		var v int
		if err := f.root.QueryRow("SELECT v FROM small WHERE id = 1").Scan(&v); err != nil || v != 1 {
			t.Errorf("small row 1: v %d, %v", v, err)
		}
	})
}

func TestEngineRedactsSecrets(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	const secret = "hunter2secret"
	for _, tt := range []struct{ query, reason string }{
		{"CREATE USER 'x'@'%' IDENTIFIED BY 'hunter2secret'", "account_management"},
		{"ALTER USER CURRENT_USER() IDENTIFIED BY 'hunter2secret'", "account_management"},
		{"SET PASSWORD = PASSWORD('hunter2secret')", "set_global"},
	} {
		results, records, err := f.run(t, f.request(domain.RoleDeveloper, tt.query))
		wantNotAllowed(t, err, tt.reason)
		rec := oneRecord(t, f, tt.query, results, records, domain.QueryDenied, "statement_not_allowed")
		if strings.Contains(rec.SQL, secret) || strings.Contains(rec.Error, secret) || !strings.Contains(rec.SQL, "***") {
			t.Errorf("record of %q: sql %q error %q", tt.query, rec.SQL, rec.Error)
		}
	}

	// In a multi request, the refused statement's record is redacted too.
	req := f.request(domain.RoleDeveloper, "SELECT 1; CREATE USER u IDENTIFIED BY 'hunter2secret'")
	req.Multi = true
	_, records, err := f.run(t, req)
	wantNotAllowed(t, err, "account_management")
	for _, rec := range records {
		if strings.Contains(rec.SQL, secret) || strings.Contains(rec.Error, secret) {
			t.Errorf("multi record: %+v", rec)
		}
	}

	// Statements the server refuses as syntax errors: MySQL's message quotes the text "near" the
	// error, secret included; the record must not keep it.
	t.Run("syntax error messages", func(t *testing.T) {
		for _, q := range []string{
			"CREATE USER u IDENTIFIED BY 'hunter2secret", // unparsable: the engine asks the server
			"SELECT 1 FORM t WHERE AES_ENCRYPT('a', 'hunter2secret')",
		} {
			_, records, err := f.run(t, f.request(domain.RoleDeveloper, q))
			if err == nil || len(records) != 1 {
				t.Fatalf("%q: %v, %d records", q, err, len(records))
			}
			if rec := records[0]; strings.Contains(rec.SQL, secret) || strings.Contains(rec.Error, secret) {
				t.Errorf("record of %q keeps the secret: status %s, sql %q, error %q", q, rec.Status, rec.SQL, rec.Error)
			}
		}
	})
}
