package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// On the pro plan a user archives the results to keep: listed, paged and exported after the result
// store has forgotten them, by their owner only, until deleted. The free plan has no archive.
func TestQueryResultArchive(t *testing.T) {
	adminEmail, adminPassword := uniqueEmail("root"), strongPassword()
	env, _ := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{BootstrapEmail: adminEmail, BootstrapPassword: adminPassword}})
	owner := newTenantAdmin(env, "127.0.0.1", "Archive Corp")
	admin := env.client("127.0.0.9")
	a := admin.with(admin.login(adminEmail, adminPassword, "").access)
	a.do("PUT", "/admin/tenants/"+owner.tenantID+"/plan", map[string]any{"plan": "pro"}).expect(t, 200, "")
	free := newTenantAdmin(env, "127.0.0.3", "Free Corp")
	developer := invite(env, owner, "127.0.0.2", "developer")

	freeDB := createDatabase(t, free.c, map[string]any{"name": "plain"}).str("id")
	freeQID := query(free.c, freeDB, "SELECT 1 AS one", nil).expect(t, 200, "").str("query_id")

	id := createDatabase(t, owner.c, map[string]any{"name": "kept"}).str("id")
	query(owner.c, id, "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), raw VARBINARY(4))", nil).expect(t, 200, "")
	query(owner.c, id, `INSERT INTO t WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
		SELECT i, CONCAT('name ', i), X'00FF' FROM n`, nil).expect(t, 200, "")
	const selectSQL = "SELECT id, name, raw FROM t ORDER BY id"
	r := query(owner.c, id, selectSQL, map[string]any{"page_size": 100}).expect(t, 200, "")
	qid := r.str("query_id")
	if r.num("row_count") != 300 || len(r.items("rows")) != 100 {
		t.Fatalf("SELECT = row_count %v, %d rows inline", r.get("row_count"), len(r.items("rows")))
	}
	showQID := query(owner.c, id, "SHOW TABLES", nil).expect(t, 200, "").str("query_id")

	// Archived on request, listed newest first; archiving again changes nothing.
	r = owner.c.do("POST", "/queries/"+qid+"/archive", nil).expect(t, 201, "")
	if r.str("query_id") != qid || r.num("row_count") != 300 {
		t.Errorf("POST /queries/{id}/archive = %s", r.body)
	}
	owner.c.do("POST", "/queries/"+qid+"/archive", nil).expect(t, 201, "")
	owner.c.do("POST", "/queries/"+showQID+"/archive", nil).expect(t, 201, "")
	developer.c.do("POST", "/queries/"+qid+"/archive", nil).expect(t, 404, "not_found")
	free.c.do("POST", "/queries/"+freeQID+"/archive", nil).expect(t, 403, "forbidden")
	list := owner.c.do("GET", "/queries/archive", nil).expect(t, 200, "")
	items := list.items("items")
	if len(items) != 2 || list.str("items.0.query_id") != showQID || list.str("items.1.query_id") != qid || list.get("next_cursor") != nil {
		t.Fatalf("GET /queries/archive = %s, want the SHOW then the SELECT", truncateForLog(list.body))
	}
	item := items[1].(map[string]any)
	archivedAt, err := time.Parse(time.RFC3339Nano, describe(item["archived_at"]))
	if item["database_id"] != id || item["sql"] != selectSQL || item["row_count"] != float64(300) || item["truncated"] != false ||
		list.str("items.1.columns.2.name") != "raw" || list.str("items.1.columns.0.type") != "INT" || list.num("items.1.bytes") < 300*10 ||
		err != nil || time.Since(archivedAt) > time.Minute {
		t.Errorf("archived SELECT = %v", item)
	}
	// Pages of the list.
	first := owner.c.do("GET", "/queries/archive?limit=1", nil).expect(t, 200, "")
	cursor := first.str("next_cursor")
	if len(first.items("items")) != 1 || first.str("items.0.query_id") != showQID || cursor == "" {
		t.Fatalf("first page of 1 = %s", first.body)
	}
	second := owner.c.do("GET", "/queries/archive?limit=1&cursor="+cursor, nil).expect(t, 200, "")
	if len(second.items("items")) != 1 || second.str("items.0.query_id") != qid || second.get("next_cursor") != nil {
		t.Errorf("second page of 1 = %s", second.body)
	}
	owner.c.do("GET", "/queries/archive?cursor=nonsense", nil).expect(t, 400, "validation_failed")
	owner.c.do("GET", "/queries/archive?limit=501", nil).expect(t, 400, "validation_failed")

	// Nobody else sees it: another member of the tenant, another tenant.
	for _, other := range []*e2eClient{developer.c, free.c} {
		if items := other.do("GET", "/queries/archive", nil).expect(t, 200, "").items("items"); len(items) != 0 {
			t.Errorf("another user's archive list = %v", items)
		}
	}

	// The result store forgets everything after 15 minutes; the archive keeps it.
	env.clock.Advance(16 * time.Minute)
	p := owner.c.do("GET", "/queries/"+qid+"/results?offset=250&limit=100", nil).expect(t, 200, "")
	if len(p.items("rows")) != 50 || p.num("rows.0.0") != 251 || p.str("rows.0.1") != "name 251" || p.str("rows.0.2") != "AP8=" ||
		p.num("page.offset") != 250 || p.num("page.total") != 300 || p.num("page.limit") != 50 || p.get("truncated") != false ||
		p.str("columns.1.name") != "name" || p.str("query_id") != qid {
		t.Errorf("archived page at 250 = %s", truncateForLog(p.body))
	}
	owner.c.do("GET", "/queries/"+qid+"/results?offset=-1", nil).expect(t, 400, "validation_failed")
	status, h, body := download(t, owner.c, "/queries/"+qid+"/export?format=csv")
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if status != 200 || err != nil || len(records) != 301 || strings.Join(records[0], ",") != "id,name,raw" ||
		strings.Join(records[300], ",") != "300,name 300,AP8=" || !strings.Contains(h.Get("Content-Disposition"), "query-"+qid+".csv") {
		t.Errorf("archived CSV export: %d %v, %d records, headers %v", status, err, len(records), h)
	}
	status, _, body = download(t, owner.c, "/queries/"+qid+"/export?format=json")
	var objects []map[string]any
	if err := json.Unmarshal(body, &objects); status != 200 || err != nil || len(objects) != 300 || objects[299]["name"] != "name 300" {
		t.Errorf("archived JSON export: %d %v, %d objects", status, err, len(objects))
	}
	if p := owner.c.do("GET", "/queries/"+showQID+"/results", nil).expect(t, 200, ""); p.num("page.total") != 1 || p.str("rows.0.0") != "t" {
		t.Errorf("archived SHOW TABLES = %s", p.body)
	}

	// Still the owner's only; the free tenant's result is simply gone.
	developer.c.do("GET", "/queries/"+qid+"/results", nil).expect(t, 404, "not_found")
	if status, _, _ := download(t, developer.c, "/queries/"+qid+"/export"); status != 404 {
		t.Errorf("another member's export of an archived result = %d, want 404", status)
	}
	developer.c.do("DELETE", "/queries/"+qid+"/archive", nil).expect(t, 404, "not_found")
	free.c.do("GET", "/queries/"+qid+"/results", nil).expect(t, 404, "not_found")
	free.c.do("DELETE", "/queries/"+qid+"/archive", nil).expect(t, 404, "not_found")
	free.c.do("GET", "/queries/"+freeQID+"/results", nil).expect(t, 410, "expired")
	if items := free.c.do("GET", "/queries/archive", nil).expect(t, 200, "").items("items"); len(items) != 0 {
		t.Errorf("the free tenant's archive = %v, want nothing", items)
	}
	var freeArchives int
	if err := env.app.DB.QueryRow(`SELECT COUNT(*) FROM result_archives WHERE tenant_id = ?`, free.tenantID).Scan(&freeArchives); err != nil || freeArchives != 0 {
		t.Errorf("%d archives of the free tenant (%v)", freeArchives, err)
	}

	// Deleted: no longer listed, and the result is expired (the store forgot it too).
	owner.c.do("DELETE", "/queries/"+qid+"/archive", nil).expect(t, 204, "")
	if l := owner.c.do("GET", "/queries/archive", nil).expect(t, 200, ""); len(l.items("items")) != 1 || l.str("items.0.query_id") != showQID {
		t.Errorf("archive after deleting the SELECT = %s", l.body)
	}
	owner.c.do("GET", "/queries/"+qid+"/results", nil).expect(t, 410, "expired")
	if status, _, _ := download(t, owner.c, "/queries/"+qid+"/export"); status != 410 {
		t.Errorf("export of a deleted archive = %d, want 410", status)
	}
	owner.c.do("DELETE", "/queries/"+qid+"/archive", nil).expect(t, 404, "not_found")
	owner.c.do("DELETE", "/queries/not-a-query/archive", nil).expect(t, 404, "not_found")

	// Archived at once after the answer, while its outcome may still wait to ride into the log with
	// the next append: the intent names the query, and the outcome is recorded all the same.
	for range 3 {
		quick := query(owner.c, id, "SELECT 2 AS two", nil).expect(t, 200, "").str("query_id")
		owner.c.do("POST", "/queries/"+quick+"/archive", nil).expect(t, 201, "")
		owner.c.do("DELETE", "/queries/"+quick+"/archive", nil).expect(t, 204, "")
		envs, err := env.app.Store.ReadStream(context.Background(), "query-"+quick, 0)
		var types []string
		for _, e := range envs {
			types = append(types, e.EventType)
		}
		if want := "[query.started.v1 query.executed.v1 query.result_archived.v1 query.result_archive_deleted.v1]"; err != nil || fmt.Sprint(types) != want {
			t.Errorf("the stream of a query archived at once = %v (%v), want %s", types, err, want)
		}
	}

	// The query's stream records its intent and outcome, then who kept the result, the two exports
	// of the archived rows (CSV, then JSON) and who deleted it, once each.
	envs, err := env.app.Store.ReadStream(context.Background(), "query-"+qid, 0)
	var recorded []string
	for _, e := range envs {
		recorded = append(recorded, e.EventType)
		if e.EventType != "query.executed.v1" && (e.Metadata.ActorID != owner.userID || e.Metadata.TenantID != owner.tenantID) {
			t.Errorf("%s recorded for actor %q in tenant %q, want the owner", e.EventType, e.Metadata.ActorID, e.Metadata.TenantID)
		}
	}
	if want := "query.started.v1 query.executed.v1 query.result_archived.v1 query.result_exported.v1 query.result_exported.v1 query.result_archive_deleted.v1"; err != nil || strings.Join(recorded, " ") != want {
		t.Errorf("stream of the archived query = %v, %v; want %s", recorded, err, want)
	}

	// Neither rows nor SQL reach the process log.
	logs := env.logs.String()
	for _, s := range []string{"name 137", selectSQL} {
		if strings.Contains(logs, s) {
			t.Errorf("the process log contains %q", s)
		}
	}
}
