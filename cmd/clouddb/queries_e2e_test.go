package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/queryexec"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// query posts sql to the database's query endpoint with extra fields.
func query(c *e2eClient, id, sql string, extra map[string]any) *e2eResponse {
	body := map[string]any{"sql": sql}
	for k, v := range extra {
		body[k] = v
	}
	return c.do("POST", "/databases/"+id+"/query", body)
}

// rows decodes a result's rows as JSON values (numbers kept exact).
func resultRows(t *testing.T, r *e2eResponse) [][]any {
	t.Helper()
	var doc struct {
		Rows [][]any `json:"rows"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("result %s: %v", r.body, err)
	}
	return doc.Rows
}

// download GETs an export and returns its status, headers and body.
func download(t *testing.T, c *e2eClient, path string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", c.env.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// waitHistory polls GET /queries/history until it lists n queries (the read model follows the
// log within milliseconds), or gives up after 30 s, room for a loaded machine, and returns what
// it shows.
func waitHistory(t *testing.T, c *e2eClient, n int) *e2eResponse {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.do("GET", "/queries/history", nil).expect(t, 200, "")
		if len(r.items("items")) >= n || time.Now().After(deadline) {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLastUsed polls the database until its last_used_at is set (executed queries reach the
// databases read model within a second), failing the test after 30 s, room for a loaded machine.
func waitLastUsed(t *testing.T, c *e2eClient, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d := c.do("GET", "/databases/"+id, nil).expect(t, 200, "")
		if d.get("last_used_at") != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("last_used_at not set after queries: %s", d.body)
		}
		time.Sleep(20 * time.Millisecond) // polling interval; the deadline decides
	}
}

// A developer builds a table and reads it back: types keep their meaning, writes say what they
// changed, pages and exports give the whole result, history lists it all, newest first.
func TestQueryWriteReadPageExportHistory(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Query Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "shop"}).str("id")

	r := query(owner.c, id, "CREATE TABLE items (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2), added DATETIME, data VARBINARY(8), big BIGINT)", nil).expect(t, 200, "")
	if r.str("statement_type") != "ddl" || r.str("query_id") == "" {
		t.Errorf("CREATE TABLE = %s", r.body)
	}
	r = query(owner.c, id, `INSERT INTO items (name, price, added, data, big) VALUES
		('tea', 3.50, '2026-01-02 03:04:05', X'00FF', 9007199254740993), ('café "noir"', 12.00, NULL, NULL, 5)`, nil).expect(t, 200, "")
	if r.str("statement_type") != "dml" || r.num("affected_rows") != 2 || r.num("last_insert_id") != 1 {
		t.Errorf("INSERT = %s, want dml, 2 affected rows, last_insert_id 1", r.body)
	}
	r = query(owner.c, id, "SELECT id, name, price, added, data, big FROM items ORDER BY id", nil).expect(t, 200, "")
	if r.str("statement_type") != "read" || r.num("row_count") != 2 || r.get("truncated") != false ||
		r.str("columns.0.name") != "id" || r.str("columns.2.type") != "DECIMAL" {
		t.Errorf("SELECT = %s", r.body)
	}
	rows := resultRows(t, r)
	want := fmt.Sprint([][]any{{json.Number("1"), "tea", "3.50", "2026-01-02T03:04:05", "AP8=", "9007199254740993"},
		{json.Number("2"), `café "noir"`, "12.00", nil, nil, json.Number("5")}})
	if fmt.Sprint(rows) != want {
		t.Errorf("rows = %v, want %v", rows, want)
	}

	// Row limit, pages of the rest, and exports of the whole result.
	query(owner.c, id, `INSERT INTO items (name) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
		SELECT CONCAT('item ', i) FROM n`, nil).expect(t, 200, "")
	r = query(owner.c, id, "SELECT id, name FROM items ORDER BY id", map[string]any{"row_limit": 250, "page_size": 100}).expect(t, 200, "")
	if r.num("row_count") != 250 || r.get("truncated") != true || len(r.items("rows")) != 100 ||
		r.num("page.total") != 250 || r.num("page.limit") != 100 || r.num("page.offset") != 0 {
		t.Errorf("SELECT with row_limit 250, page_size 100 = row_count %v truncated %v rows %d page %v",
			r.get("row_count"), r.get("truncated"), len(r.items("rows")), r.get("page"))
	}
	qid := r.str("query_id")
	p := owner.c.do("GET", "/queries/"+qid+"/results?offset=200&limit=100", nil).expect(t, 200, "")
	if len(p.items("rows")) != 50 || p.num("page.offset") != 200 || p.num("page.total") != 250 || p.num("rows.0.0") != 201 {
		t.Errorf("page at 200 = %s", truncateForLog(p.body))
	}
	owner.c.do("GET", "/queries/"+qid+"/results?offset=-1", nil).expect(t, 400, "validation_failed")
	status, h, body := download(t, owner.c, "/queries/"+qid+"/export?format=csv")
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if status != 200 || err != nil || len(records) != 251 || records[0][1] != "name" || records[250][0] != "250" ||
		!strings.HasPrefix(h.Get("Content-Type"), "text/csv") || !strings.Contains(h.Get("Content-Disposition"), "attachment") {
		t.Errorf("CSV export: %d %v, %d records (%v), headers %v", status, err, len(records), err, h)
	}
	status, _, body = download(t, owner.c, "/queries/"+qid+"/export?format=json")
	var objects []map[string]any
	if err := json.Unmarshal(body, &objects); status != 200 || err != nil || len(objects) != 250 || objects[1]["name"] != `café "noir"` {
		t.Errorf("JSON export: %d %v, %d objects", status, err, len(objects))
	}
	status, _, body = download(t, owner.c, "/queries/"+qid+"/export?format=sql&table=items_copy")
	if status != 200 || !bytes.Contains(body, []byte("INSERT INTO `items_copy`")) {
		t.Errorf("SQL export: %d %s", status, truncateForLog(body))
	}
	status, _, _ = download(t, owner.c, "/queries/"+qid+"/export?format=xml")
	if status != 400 {
		t.Errorf("export as xml = %d, want 400", status)
	}

	// Only the user who ran a query sees its results.
	developer := invite(env, owner, "127.0.0.2", "developer")
	developer.c.do("GET", "/queries/"+qid+"/results", nil).expect(t, 404, "not_found")
	if status, _, _ := download(t, developer.c, "/queries/"+qid+"/export"); status != 404 {
		t.Errorf("another member's export = %d, want 404", status)
	}

	// A failure is recorded too; history is newest first and per user.
	query(owner.c, id, "SELECT nope FROM items", nil).expect(t, 422, "query_failed")
	hist := waitHistory(t, owner.c, 6)
	items := hist.items("items")
	if len(items) != 6 || hist.str("items.0.status") != "failed" || hist.str("items.0.sql") != "SELECT nope FROM items" ||
		hist.str("items.5.statement_type") != "ddl" || hist.str("items.1.query_id") != qid || hist.str("items.0.database_id") != id {
		t.Errorf("history = %s", truncateForLog(hist.body))
	}
	if items := developer.c.do("GET", "/queries/history", nil).expect(t, 200, "").items("items"); len(items) != 0 {
		t.Errorf("another member's history = %v", items)
	}
	waitLastUsed(t, owner.c, id)
}

// Viewers read on the read-only account; nobody reaches beyond the database.
func TestQueryRolesAndTheWall(t *testing.T) {
	env, prefix := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Wall Corp")
	viewer := invite(env, owner, "127.0.0.2", "viewer")
	stranger := newTenantAdmin(env, "127.0.0.3", "Other Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "walled"}).str("id")
	query(owner.c, id, "CREATE TABLE t (a INT)", nil).expect(t, 200, "")
	query(owner.c, id, "INSERT INTO t VALUES (1), (2)", nil).expect(t, 200, "")

	rw, ro := sandbox.AccountNames(prefix, id)
	r := query(viewer.c, id, "SELECT CURRENT_USER()", nil).expect(t, 200, "")
	if got := fmt.Sprint(resultRows(t, r)); !strings.Contains(got, ro) {
		t.Errorf("a viewer's query runs as %s, want the read-only account %s", got, ro)
	}
	r = query(owner.c, id, "SELECT CURRENT_USER()", nil).expect(t, 200, "")
	if got := fmt.Sprint(resultRows(t, r)); !strings.Contains(got, rw) {
		t.Errorf("a tenant admin's query runs as %s, want the read-write account %s", got, rw)
	}
	r = query(viewer.c, id, "DELETE FROM t WHERE a = 1", nil).expect(t, 403, "statement_not_allowed")
	if r.str("error.details.statement_type") != "dml" || r.str("error.details.reason") != "read_only_role" {
		t.Errorf("viewer DELETE = %s", r.body)
	}
	// The comment trick: MariaDB would run the hidden UNION, so it never reaches the server.
	r = query(owner.c, id, "SELECT a FROM t /*M! UNION SELECT user FROM mysql.user */", nil).expect(t, 403, "statement_not_allowed")
	if bytes.Contains(r.body, []byte("root")) {
		t.Errorf("the comment trick leaked mysql.user: %s", r.body)
	}
	for _, sql := range []string{"SELECT * FROM mysql.user", "USE mysql", "GRANT ALL ON *.* TO x", "SET GLOBAL max_connections = 1",
		"SELECT LOAD_FILE('/etc/passwd')", "SHUTDOWN", "LOCK TABLES t WRITE", "KILL 1"} {
		query(owner.c, id, sql, nil).expect(t, 403, "statement_not_allowed")
	}
	// The wall itself: the read-only account cannot write even where the classifier would let it.
	if n := queryInt(t, openSandboxAdmin(t), "SELECT COUNT(*) FROM mysql.tables_priv WHERE user = ?", ro); n != 0 {
		t.Errorf("read-only account has %d table privileges", n)
	}
	query(stranger.c, id, "SELECT 1", nil).expect(t, 404, "not_found")
	if n := queryInt(t, openSandboxAdmin(t), "SELECT COUNT(*) FROM "+backquote(sandbox.SchemaName(prefix, id))+".t"); n != 2 {
		t.Errorf("rows after the refused writes = %d, want 2", n)
	}
	hist := waitHistory(t, viewer.c, 2)
	if hist.str("items.0.status") != "denied" {
		t.Errorf("viewer history = %s, want the refused DELETE first, denied", truncateForLog(hist.body))
	}
}

// Confirmations, timeouts on the server, multi statements, errors with positions, and the
// states a database can be in.
func TestQuerySafetyNets(t *testing.T) {
	// Housekeeping measures every database at start and then not for 24 hours: once its first
	// round is over, nothing measures a database that no statement writes to.
	env, prefix := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{Env: map[string]string{"CLOUDDB_HOUSEKEEPING_INTERVAL": "24h"}}})
	owner := newTenantAdmin(env, "127.0.0.1", "Safe Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "safe"}).str("id")
	unwritten := createDatabase(t, owner.c, map[string]any{"name": "unwritten"}).str("id")

	r := query(owner.c, id, "CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2), (3); SELECT COUNT(*) FROM t", map[string]any{"multi": true}).expect(t, 200, "")
	if len(r.items("results")) != 3 || r.num("results.1.affected_rows") != 3 || r.num("results.2.rows.0.0") != 3 {
		t.Errorf("multi = %s", r.body)
	}
	query(owner.c, id, "SELECT 1; SELECT 2", nil).expect(t, 403, "statement_not_allowed")
	r = query(owner.c, id, "INSERT INTO t VALUES (4); INSERT INTO nope VALUES (1); INSERT INTO t VALUES (5)", map[string]any{"multi": true}).expect(t, 422, "query_failed")
	if r.num("error.details.statement") != 2 || r.num("error.details.mysql_code") != 1146 || !strings.Contains(r.str("error.message"), "safe.nope") ||
		len(r.items("error.details.results")) != 1 || r.num("error.details.results.0.affected_rows") != 1 {
		t.Errorf("multi failing at 2 = %s, want statement 2, 1146 naming safe.nope, and the result of statement 1", r.body)
	}
	r = query(owner.c, id, "SELECT 1; DROP TABLE t", map[string]any{"multi": true}).expect(t, 409, "confirmation_required")
	if r.num("error.details.statement") != 2 || r.get("error.details.results") != nil {
		t.Errorf("multi refused at 2 before running = %s, want statement 2 and nothing run", r.body)
	}
	if strings.Contains(string(r.body), prefix) {
		t.Errorf("an error shows the physical schema: %s", r.body)
	}
	if r := query(owner.c, id, "SELECT COUNT(*) FROM t", nil).expect(t, 200, ""); r.num("rows.0.0") != 4 {
		t.Errorf("after the failed multi: %s rows, want 4 (the third statement must not run)", r.body)
	}
	many := strings.Repeat("SELECT 1;", queryexec.MaxStatements+1)
	query(owner.c, id, many, map[string]any{"multi": true}).expect(t, 400, "validation_failed")

	r = query(owner.c, id, "DROP TABLE t", nil).expect(t, 409, "confirmation_required")
	if r.str("error.details.reason") != "drop" {
		t.Errorf("DROP without confirm = %s", r.body)
	}
	query(owner.c, id, "DELETE FROM t", nil).expect(t, 409, "confirmation_required")
	query(owner.c, id, "UPDATE t SET a = 0", nil).expect(t, 409, "confirmation_required")
	query(owner.c, id, "DELETE FROM t WHERE a = 4", nil).expect(t, 200, "")

	r = query(owner.c, id, "SELECT *\nFROM t\nWHERE a = = 1", nil).expect(t, 400, "syntax_error")
	if r.num("error.details.position.line") != 3 || r.num("error.details.position.column") != 11 {
		t.Errorf("syntax error = %s, want line 3 column 11", r.body)
	}

	// The timeout ends the statement on the server, not only the request. A statement that ran on
	// would take 60 s: 15 s (the client gives up at 20) tells the two apart on a busy machine.
	start := time.Now()
	query(owner.c, id, "SELECT SLEEP(60)", map[string]any{"timeout_s": 0.5}).expect(t, 504, "query_timeout")
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("a 0.5 s timeout answered after %v", took)
	}
	rw, _ := sandbox.AccountNames(prefix, id)
	admin := openSandboxAdmin(t)
	defer admin.Close()
	waitUntil(t, 30*time.Second, "the timed-out statement leaves the server", func() bool {
		return queryInt(t, admin, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE '%SLEEP%'", rw) == 0
	})
	query(owner.c, id, "SELECT 1", map[string]any{"timeout_s": 31}).expect(t, 400, "validation_failed")
	query(owner.c, id, "SELECT 1", map[string]any{"row_limit": 1001}).expect(t, 400, "validation_failed")

	// Bad input.
	query(owner.c, id, "", nil).expect(t, 400, "validation_failed")
	query(owner.c, id, "SELECT 'a\x00b'", nil).expect(t, 403, "statement_not_allowed")
	query(owner.c, id, "SELECT 'unterminated", nil).expect(t, 400, "syntax_error")
	query(owner.c, id, "SELECT "+strings.Repeat("x", 1<<20), nil).expect(t, 413, "payload_too_large")
	owner.c.do("POST", "/databases/"+id+"/query", map[string]any{"sql": "SELECT 1", "bogus": true}).expect(t, 400, "invalid_request")

	// Writes are refused while the tenant is over its storage quota; reads and clean-ups are not.
	// The tenant's other database holds the 2 GiB: no statement writes to it, so the sampler that
	// follows writes never measures it, and housekeeping's round at start is over first.
	waitUntil(t, 30*time.Second, "housekeeping's round at start", func() bool {
		return strings.Contains(env.logs.String(), `"msg":"housekeeping round done"`)
	})
	measured, err := env.app.Store.Append(context.Background(), eventstore.Append{Streams: []eventstore.Stream{{
		ID: domain.DatabaseID(unwritten).Stream(), Type: "database", ExpectedVersion: eventstore.AnyVersion,
		Events: []domain.Event{domain.DatabaseStorageMeasured{Bytes: 2 << 30, At: env.clock.Now()}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.app.Projections.WaitFor(context.Background(), measured.LastPosition, "databases"); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Second) // past the second for which the process keeps a query's target
	r = query(owner.c, id, "INSERT INTO t VALUES (9)", nil).expect(t, 403, "quota_exceeded")
	if r.str("error.details.resource") != "storage" {
		t.Errorf("write over the storage quota = %s", r.body)
	}
	query(owner.c, id, "SELECT COUNT(*) FROM t", nil).expect(t, 200, "")
	query(owner.c, id, "DELETE FROM t WHERE a = 1", nil).expect(t, 200, "")

	// Stopped, deleted: locked.
	owner.c.do("POST", "/databases/"+id+"/stop", nil).expect(t, 200, "")
	query(owner.c, id, "SELECT 1", nil).expect(t, 423, "database_stopped")
	owner.c.do("POST", "/databases/"+id+"/start", nil).expect(t, 200, "")
	query(owner.c, id, "SELECT 1", nil).expect(t, 200, "")
	owner.c.do("DELETE", "/databases/"+id, map[string]any{"confirm_name": "safe"}).expect(t, 200, "")
	query(owner.c, id, "SELECT 1", nil).expect(t, 423, "database_unavailable")
}

// Validate answers without running anything: errors with positions, suggestions from the plan.
func TestQueryValidate(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Valid Corp")
	viewer := invite(env, owner, "127.0.0.2", "viewer")
	id := createDatabase(t, owner.c, map[string]any{"name": "valid"}).str("id")
	query(owner.c, id, "CREATE TABLE big (a INT, b INT)", nil).expect(t, 200, "")
	query(owner.c, id, `INSERT INTO big WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
		SELECT x.i * 100 + y.i, x.i FROM n x, n y WHERE y.i <= 40`, nil).expect(t, 200, "")
	query(owner.c, id, "ANALYZE TABLE big", nil).expect(t, 200, "")

	validate := func(c *e2eClient, sql string) *e2eResponse {
		return c.do("POST", "/databases/"+id+"/validate", map[string]any{"sql": sql}).expect(t, 200, "")
	}
	r := validate(owner.c, "SELECT a FROM big WHERE b = 5 ORDER BY a")
	if r.get("valid") != true || r.str("statement_type") != "read" || !strings.Contains(string(r.body), "full_scan") {
		t.Errorf("validate full scan = %s", r.body)
	}
	r = validate(owner.c, "SELECT a FROM\nbig WHERE")
	if r.get("valid") != false || r.num("errors.0.position.line") != 2 {
		t.Errorf("validate syntax error = %s", r.body)
	}
	r = validate(owner.c, "SELECT nope FROM big")
	if r.get("valid") != false || !strings.Contains(r.str("errors.0.message"), "nope") {
		t.Errorf("validate unknown column = %s", r.body)
	}
	r = validate(viewer.c, "DELETE FROM big")
	if r.get("valid") != false || r.str("errors.0.code") != "statement_not_allowed" {
		t.Errorf("viewer validates a DELETE = %s", r.body)
	}
	r = validate(owner.c, "DELETE FROM big")
	if r.get("valid") != true || !strings.Contains(string(r.body), "no_where") {
		t.Errorf("validate DELETE without WHERE = %s", r.body)
	}
	if n := query(owner.c, id, "SELECT COUNT(*) FROM big", nil).expect(t, 200, "").num("rows.0.0"); n != 2000 {
		t.Errorf("validate changed the table: %v rows", n)
	}
}

// Large, deep and odd input: a 10 MB value comes back whole, deeply nested subqueries run or fail
// cleanly, bytes that are not UTF-8 never reach the server as such, and a user past the query
// rate gets 429 with Retry-After.
func TestQueryLargeDeepOddAndRateLimited(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{Env: map[string]string{"CLOUDDB_QUERY_RATE": "5"}}})
	owner := newTenantAdmin(env, "127.0.0.1", "Odd Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "odd"}).str("id")

	query(owner.c, id, "CREATE TABLE blobs (b LONGBLOB)", nil).expect(t, 200, "")
	query(owner.c, id, "INSERT INTO blobs VALUES (REPEAT('x', 6000000))", nil).expect(t, 200, "")
	r := query(owner.c, id, "SELECT b FROM blobs", nil).expect(t, 200, "")
	if got := len(r.str("rows.0.0")); got != 8000000 { // base64 of 6 MB: a row just under the 8 MiB a row may have
		t.Errorf("a 6 MB BLOB came back as %d base64 characters, want 8000000", got)
	}

	deep := "SELECT 1"
	for range 60 {
		deep = "SELECT * FROM (" + deep + ") AS d"
	}
	if r := query(owner.c, id, deep, nil); r.status != 200 && r.status != 422 && r.status != 403 {
		t.Errorf("60 nested subqueries = %d %s, want a result or a clean refusal", r.status, truncateForLog(r.body))
	}

	req, err := http.NewRequest("POST", env.base+"/databases/"+id+"/query", strings.NewReader("{\"sql\": \"SELECT '\xff\xfe'\"}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+owner.c.token)
	resp, err := owner.c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "\ufffd") {
		t.Errorf("invalid UTF-8 in the JSON string = %d %s, want the replacement character (JSON decoding replaces such bytes)", resp.StatusCode, body)
	}

	// 40 queries at once, empty ones that the rate counts before they are refused: 5 a second in
	// bursts of 10 lets through at most 10 plus 5 for each second they take to arrive, so all would
	// pass only if the machine spread them over 6 s. One after another, slow ones did pass.
	answers := make(chan *e2eResponse, 40)
	var wg sync.WaitGroup
	for range cap(answers) {
		wg.Go(func() { answers <- query(owner.c, id, "", nil) })
	}
	wg.Wait()
	close(answers)
	limited := 0
	for r := range answers {
		if r.status != 429 {
			r.expect(t, 400, "validation_failed")
			continue
		}
		r.expect(t, 429, "rate_limited")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
		limited++
	}
	if limited == 0 {
		t.Errorf("40 queries at once passed a rate of 5 a second (bursts of 10)")
	}
}

// A database whose server stops answering is 423 database_unavailable, and works again when the
// server is back.
func TestQueryOnAServerThatIsDown(t *testing.T) {
	env, _, proxy := startProxiedDatabaseE2E(t)
	owner := newTenantAdmin(env, "127.0.0.1", "Down Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "flaky"}).str("id")
	query(owner.c, id, "SELECT 1", nil).expect(t, 200, "")

	proxy.set("kill", "") // every connection dies at its next write
	r := query(owner.c, id, "SELECT 1", nil).expect(t, 423, "database_unavailable")
	if strings.Contains(string(r.body), proxy.ln.Addr().String()) {
		t.Errorf("the answer shows the server's address: %s", r.body)
	}
	proxy.set("pass", "")
	query(owner.c, id, "SELECT 1", nil).expect(t, 200, "")
	hist := waitHistory(t, owner.c, 3)
	if hist.str("items.1.status") != "failed" || hist.str("items.1.error_code") != "database_unavailable" {
		t.Errorf("history = %s, want the failure while the server was down", truncateForLog(hist.body))
	}
}

// Auto-stop counts idle time from the last query: a database queried 20 minutes ago stays up
// past its hour, and stops an hour after that query.
func TestQueryKeepsADatabaseFromAutoStop(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Busy Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "busy"}).str("id")
	ctx := context.Background()

	relogin := func() { owner.c = owner.c.with(owner.c.login(owner.email, owner.password, owner.tenantID).access) } // sessions idle out
	env.clock.Advance(50 * time.Minute)
	relogin()
	query(owner.c, id, "SELECT 1", nil).expect(t, 200, "")
	waitLastUsed(t, owner.c, id)
	env.clock.Advance(20 * time.Minute) // 70 minutes after creation, 20 after the query
	if n, err := env.app.Databases.StopIdle(ctx); err != nil || n != 0 {
		t.Fatalf("StopIdle 20 minutes after a query: %d, %v; want 0", n, err)
	}
	env.clock.Advance(41 * time.Minute)
	if n, err := env.app.Databases.StopIdle(ctx); err != nil || n != 1 {
		t.Fatalf("StopIdle 61 minutes after the query: %d, %v; want 1", n, err)
	}
	relogin()
	if d := owner.c.do("GET", "/databases/"+id, nil).expect(t, 200, ""); d.str("state") != "stopped" {
		t.Errorf("after auto-stop: %s", d.body)
	}
	query(owner.c, id, "SELECT 1", nil).expect(t, 423, "database_stopped")
}
