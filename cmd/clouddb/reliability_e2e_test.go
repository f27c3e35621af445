package main

// End-to-end tests of docs/RELIABILITY.md: no statement reaches a tenant's database without a
// durable intent, an outcome that cannot be known is said and recorded so, intents of a dead
// process are resolved, Idempotency-Keys of a dead process are released, and a shutdown kills and
// records the statements still running.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// queryEvents is the types of the events of query stream queryID, in order.
func queryEvents(t *testing.T, env *e2eEnv, queryID string) []string {
	t.Helper()
	envs, err := env.app.Store.ReadStream(context.Background(), domain.QueryStream(queryID), 0)
	if err != nil {
		t.Fatal(err)
	}
	types := make([]string, len(envs))
	for i, e := range envs {
		types[i] = e.EventType
	}
	return types
}

// openIntents lists the query.started.v1 events of the log whose stream has no outcome.
func openIntents(t *testing.T, env *e2eEnv) []string {
	t.Helper()
	rows, err := env.app.DB.Query(`SELECT i.stream_id FROM events i WHERE i.event_type = 'query.started.v1'
		AND NOT EXISTS (SELECT 1 FROM events o WHERE o.stream_id = i.stream_id AND o.stream_version = 2)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var open []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		open = append(open, id)
	}
	return open
}

// The intent of a statement is in the log before the statement reaches the server: while the
// proxy holds the INSERT, the log already has its query.started.v1; the outcome follows it in
// the same stream.
func TestQueryIntentIsDurableBeforeTheStatementRuns(t *testing.T) {
	env, _, proxy := startProxiedDatabaseE2E(t)
	owner := newTenantAdmin(env, "127.0.0.1", "Intent Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "intent"}).str("id")
	query(owner.c, id, "CREATE TABLE t (v INT)", nil).expect(t, 200, "")

	proxy.set("hold", "INSERT INTO t")
	answered := make(chan *e2eResponse, 1)
	go func() { answered <- query(owner.c, id, "INSERT INTO t VALUES (7)", nil) }()
	<-proxy.hits // the INSERT is at the server's door
	var intents int
	if err := env.app.DB.QueryRow(`SELECT COUNT(*) FROM events WHERE event_type = 'query.started.v1'
		AND JSON_VALUE(payload, '$.statements[0].sql') = 'INSERT INTO t VALUES (7)'`).Scan(&intents); err != nil {
		t.Fatal(err)
	}
	if intents != 1 {
		t.Fatalf("%d intents of the INSERT in the log while it waits to be sent, want 1", intents)
	}
	proxy.set("pass", "")
	r := (<-answered).expect(t, 200, "")
	waitUntil(t, 30*time.Second, "the outcome follows the intent", func() bool {
		return strings.Join(queryEvents(t, env, r.str("query_id")), ",") == "query.started.v1,query.executed.v1"
	})
	if open := openIntents(t, env); len(open) != 0 {
		t.Errorf("intents without outcome after every answer: %v", open)
	}
}

// A connection that drops after an INSERT was sent answers 409 outcome_unknown (no Retry-After),
// the history shows the statement as unknown, and a retry with the same Idempotency-Key replays
// that answer instead of inserting again.
func TestQueryCutAfterTheStatementWasSentIsOutcomeUnknown(t *testing.T) {
	env, prefix, proxy := startProxiedDatabaseE2E(t)
	owner := newTenantAdmin(env, "127.0.0.1", "Cut Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "cut"}).str("id")
	query(owner.c, id, "CREATE TABLE t (v INT)", nil).expect(t, 200, "")

	keyed := owner.c.withHeader("Idempotency-Key", "insert-once")
	proxy.set("cut", "INSERT INTO t")
	r := query(keyed, id, "INSERT INTO t VALUES (1)", nil).expect(t, 409, "outcome_unknown")
	if r.header.Get("Retry-After") != "" {
		t.Errorf("outcome_unknown invites a retry: Retry-After %q", r.header.Get("Retry-After"))
	}
	if !strings.Contains(r.str("error.message"), "may or may not have been applied") {
		t.Errorf("message %q", r.str("error.message"))
	}
	proxy.set("pass", "")
	replay := query(keyed, id, "INSERT INTO t VALUES (1)", nil).expect(t, 409, "outcome_unknown")
	if replay.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the retry with the key was not a replay: %s", replay.body)
	}
	rows := queryInt(t, openSandboxAdmin(t), "SELECT COUNT(*) FROM "+sandbox.SchemaName(prefix, id)+".t")
	if rows > 1 {
		t.Errorf("%d rows after an unknown outcome and its keyed retry, want at most 1", rows)
	}
	t.Logf("rows after the cut INSERT: %d", rows)
	hist := waitHistory(t, owner.c, 2)
	if hist.str("items.0.status") != "unknown" || hist.str("items.0.error_code") != "outcome_unknown" {
		t.Errorf("history = %s, want the INSERT as unknown", truncateForLog(hist.body))
	}
	// A read that loses its connection is safe to run again: 423, as before.
	proxy.set("cut", "SELECT v FROM t")
	query(owner.c, id, "SELECT v FROM t", nil).expect(t, 423, "database_unavailable")
}

// appendIntent records an intent of instance as a process would just before sending sql.
func appendIntent(t *testing.T, env *e2eEnv, owner dbMember, databaseID, instance, sql string) string {
	t.Helper()
	queryID := uuid.NewString()
	intent := domain.QueryStarted{QueryID: queryID, TenantID: domain.TenantID(owner.tenantID), UserID: domain.UserID(owner.userID),
		DatabaseID: domain.DatabaseID(databaseID), Server: "default", Account: "rw", Instance: instance, TimeoutS: 30, At: env.clock.Now().UTC(),
		Statements: []domain.StartedStatement{{QueryID: queryID, SQL: sql, Fingerprint: sql, StatementType: "dml"}}}
	if _, err := env.app.Store.Append(context.Background(), eventstore.Append{Metadata: eventstore.Metadata{ActorID: owner.userID},
		Streams: []eventstore.Stream{{ID: domain.QueryStream(queryID), Type: "query", Events: []domain.Event{intent}}}}); err != nil {
		t.Fatal(err)
	}
	return queryID
}

// An intent whose process died (no live lease) is recorded as unknown by the reconciler, once;
// one of a live process is left to it until its timeout has long passed.
func TestQueryOutcomeReconcilerResolvesIntentsOfDeadProcesses(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Crash Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "crash"}).str("id")
	ctx := context.Background()

	dead := appendIntent(t, env, owner, id, uuid.NewString(), "INSERT INTO t VALUES (42)")
	live := appendIntent(t, env, owner, id, env.app.Lease.ID(), "INSERT INTO t VALUES (43)")
	if n, err := env.app.QueryOutcomes.Round(ctx); err != nil || n != 1 {
		t.Fatalf("reconciler round: %d resolved, %v; want 1", n, err)
	}
	if got := strings.Join(queryEvents(t, env, dead), ","); got != "query.started.v1,query.executed.v1" {
		t.Errorf("the dead process's intent: %s", got)
	}
	if got := strings.Join(queryEvents(t, env, live), ","); got != "query.started.v1" {
		t.Errorf("the live process's intent: %s, want it left open", got)
	}
	if n, err := env.app.QueryOutcomes.Round(ctx); err != nil || n != 0 {
		t.Errorf("second round: %d resolved, %v; want nothing left to do", n, err)
	}
	hist := waitHistory(t, owner.c, 1)
	if hist.str("items.0.query_id") != dead || hist.str("items.0.status") != "unknown" || hist.str("items.0.sql") != "INSERT INTO t VALUES (42)" {
		t.Errorf("history = %s, want the dead process's INSERT as unknown", truncateForLog(hist.body))
	}
	env.clock.Advance(30*time.Second + 3*time.Minute) // past its timeout and the margin
	if n, err := env.app.QueryOutcomes.Round(ctx); err != nil || n != 1 {
		t.Errorf("round long past the live intent's timeout: %d resolved, %v; want 1", n, err)
	}
}

// A running Idempotency-Key left by a process that died (its lease expired) is taken over by the
// retry: a write is not run again (its first run may have applied it) and answers 409
// outcome_unknown, kept under the key; a read runs. One of a live process still answers 409 retry
// later.
func TestIdempotencyKeyOfADeadProcessIsReleased(t *testing.T) {
	env, prefix := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Keys Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "keys"}).str("id")
	query(owner.c, id, "CREATE TABLE t (v INT)", nil).expect(t, 200, "")

	body := map[string]any{"sql": "INSERT INTO t VALUES (1)"}
	read := map[string]any{"sql": "SELECT COUNT(*) AS n FROM t"}
	hashOf := func(body map[string]any) [32]byte {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(data)
	}
	dead, now := uuid.NewString(), env.clock.Now().UTC()
	if _, err := env.app.DB.Exec(`INSERT INTO process_leases (instance_id, host, started_at, expires_at) VALUES (?, 'gone', ?, ?)`,
		dead, now.Add(-time.Hour), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	leave := func(key, instance string, body map[string]any) { // a row as the process left it when it died mid-request
		hash := hashOf(body)
		if _, err := env.app.DB.Exec(`INSERT INTO idempotency_keys (principal, idem_key, method, path, body_sha256, created_at, owner)
			VALUES (?, ?, 'POST', ?, ?, ?, ?)`, owner.userID, key, "/api/v1/databases/"+id+"/query", hash[:], now, instance); err != nil {
			t.Fatal(err)
		}
	}
	leave("left-by-dead", dead, body)
	leave("read-left-by-dead", dead, read)
	leave("held-by-live", env.app.Lease.ID(), body)

	keyed := owner.c.withHeader("Idempotency-Key", "left-by-dead")
	r := query(keyed, id, "INSERT INTO t VALUES (1)", nil).expect(t, 409, "outcome_unknown")
	if !strings.Contains(r.str("error.message"), "were not run again") || r.header.Get("Retry-After") != "" {
		t.Errorf("the retry of a dead process's write = %s (Retry-After %q)", r.body, r.header.Get("Retry-After"))
	}
	if replay := query(keyed, id, "INSERT INTO t VALUES (1)", nil).expect(t, 409, "outcome_unknown"); replay.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the answer is not kept under the key: %s", replay.body)
	}
	if rows := queryInt(t, openSandboxAdmin(t), "SELECT COUNT(*) FROM "+sandbox.SchemaName(prefix, id)+".t"); rows != 0 {
		t.Errorf("%d rows: the write of a dead process's key ran again", rows)
	}
	if n := query(owner.c.withHeader("Idempotency-Key", "read-left-by-dead"), id, "SELECT COUNT(*) AS n FROM t", nil).expect(t, 200, ""); n.get("rows.0") == nil {
		t.Errorf("the read of a dead process's key did not run: %s", n.body)
	}
	r = query(owner.c.withHeader("Idempotency-Key", "held-by-live"), id, "INSERT INTO t VALUES (1)", nil).expect(t, 409, "conflict")
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("a key of a live process: Retry-After %q, want 1", r.header.Get("Retry-After"))
	}
}

// On shutdown, /readyz turns unready and new requests answer 503 with Retry-After at once; a
// statement still running at the end of the drain is killed on the server and recorded as
// cancelled; Close returns no error and the log holds no error.
func TestShutdownDrainsAndCancelsRunningStatements(t *testing.T) {
	// What the drain is checked for must happen within it: 5 s, not 1 s, for a few local requests
	// on a busy machine. The statement would run on for a minute.
	env, prefix := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{Env: map[string]string{"CLOUDDB_SHUTDOWN_DRAIN": "5s"}}})
	owner := newTenantAdmin(env, "127.0.0.1", "Drain Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "drain"}).str("id")
	rw, _ := sandbox.AccountNames(prefix, id)
	admin := openSandboxAdmin(t)
	sleeping := func() int64 {
		return queryInt(t, admin, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE '%SLEEP(60)%'", rw)
	}

	answered := make(chan *e2eResponse, 1)
	go func() { answered <- query(owner.c, id, "SELECT SLEEP(60)", nil) }()
	waitUntil(t, 30*time.Second, "the statement runs on the server", func() bool { return sleeping() == 1 })

	closed := make(chan error, 1)
	go func() { closed <- env.app.Close() }()
	readyz := "http://" + env.app.Addr() + "/readyz"
	waitUntil(t, 5*time.Second, "/readyz turns unready", func() bool {
		resp, err := http.Get(readyz)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	r := owner.c.do("GET", "/me", nil).expect(t, 503, "unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("a request during the drain has no Retry-After")
	}
	(<-answered).expect(t, 503, "unavailable")
	if err := <-closed; err != nil {
		t.Errorf("close: %v", err)
	}
	if n := sleeping(); n != 0 {
		t.Errorf("%d statements still run on the server after the shutdown", n)
	}
	mgmt, err := sql.Open("mysql", env.dsn) // the App's pool is closed
	if err != nil {
		t.Fatal(err)
	}
	defer mgmt.Close()
	var status, errorCode string
	if err := mgmt.QueryRow(`SELECT JSON_VALUE(payload, '$.status'), JSON_VALUE(payload, '$.error_code') FROM events
		WHERE event_type = 'query.executed.v1' AND JSON_VALUE(payload, '$.sql') = 'SELECT SLEEP(60)'`).Scan(&status, &errorCode); err != nil {
		t.Fatalf("the cancelled statement's outcome: %v", err)
	}
	if status != "cancelled" || errorCode != "cancelled" {
		t.Errorf("recorded as %s/%s, want cancelled", status, errorCode)
	}
	for _, line := range strings.Split(env.logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("the log has an error: %s", line)
		}
	}
}
