package main

import (
	"bytes"
	"fmt"
	"maps"
	"testing"
	"time"
)

// withHeader returns a copy of c that sends the header on every request.
func (c *e2eClient) withHeader(name, value string) *e2eClient {
	d := *c
	d.headers = maps.Clone(c.headers)
	d.headers[name] = value
	return &d
}

// Idempotency-Key on authenticated POSTs: a retry gets the first answer and the work is done
// once; the key is the principal's own, is bound to its request and lives 24 h; public POSTs
// ignore it.
func TestIdempotencyKeys(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Idem Corp")
	body := map[string]any{"name": "shop"}

	// Create twice with one key: one database, the second answer is the first, marked replayed.
	keyed := owner.c.withHeader("Idempotency-Key", "create-shop-1")
	first := createDatabase(t, keyed, body)
	second := keyed.do("POST", "/databases", body).expect(t, 201, "")
	if first.header.Get("Idempotent-Replayed") != "" || second.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("Idempotent-Replayed: first %q, second %q; want none, true",
			first.header.Get("Idempotent-Replayed"), second.header.Get("Idempotent-Replayed"))
	}
	if !bytes.Equal(first.body, second.body) || second.str("id") != first.str("id") ||
		second.header.Get("Location") != first.header.Get("Location") || second.header.Get("Location") == "" ||
		second.header.Get("X-Request-Id") == first.header.Get("X-Request-Id") {
		t.Errorf("replay differs from the first answer:\n%s %v\n%s %v", first.body, first.header, second.body, second.header)
	}
	id := first.str("id")
	if items := owner.c.do("GET", "/databases", nil).expect(t, 200, "").items("items"); len(items) != 1 {
		t.Errorf("%d databases after two creates with one key, want 1", len(items))
	}
	// The same key with another body is refused, and creates nothing.
	r := keyed.do("POST", "/databases", map[string]any{"name": "other"}).expect(t, 409, "conflict")
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("the refusal is marked replayed")
	}
	// The stored answer holds the connection password sealed, never in plain text.
	var rows, plain int
	if err := env.app.DB.QueryRow(`SELECT COUNT(*), COALESCE(SUM(LOCATE(?, body) > 0), 0) FROM idempotency_keys`,
		[]byte(first.str("connection.password"))).Scan(&rows, &plain); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || plain != 0 {
		t.Errorf("idempotency_keys: %d rows, %d holding the password in plain text; want 1, 0", rows, plain)
	}

	// A query with a key runs once: the retry replays its query_id.
	query(owner.c, id, "CREATE TABLE t (a INT)", nil).expect(t, 200, "")
	q := owner.c.withHeader("Idempotency-Key", "insert-1")
	ins := query(q, id, "INSERT INTO t VALUES (1)", nil).expect(t, 200, "")
	again := query(q, id, "INSERT INTO t VALUES (1)", nil).expect(t, 200, "")
	if again.str("query_id") != ins.str("query_id") || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retried INSERT: query_id %s (first %s), replayed %q", again.str("query_id"), ins.str("query_id"), again.header.Get("Idempotent-Replayed"))
	}
	count := query(owner.c, id, "SELECT COUNT(*) FROM t", nil).expect(t, 200, "")
	if got := fmt.Sprint(resultRows(t, count)); got != "[[1]]" {
		t.Errorf("rows after an INSERT and its replay: %s, want [[1]]", got)
	}
	hist := waitHistory(t, owner.c, 3)
	if items := hist.items("items"); len(items) != 3 || hist.str("items.1.query_id") != ins.str("query_id") {
		t.Errorf("history after an INSERT and its replay = %s; want CREATE, INSERT, SELECT once each", truncateForLog(hist.body))
	}

	// Keys are per principal: another user, and an API key of the owner, get fresh requests.
	stranger := newTenantAdmin(env, "127.0.0.2", "Other Corp")
	theirs := createDatabase(t, stranger.c.withHeader("Idempotency-Key", "create-shop-1"), body)
	if theirs.str("id") == id || theirs.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("another user's create with the same key = %s %v", theirs.body, theirs.header)
	}
	apiKey := owner.c.do("POST", "/me/api-keys", map[string]any{"name": "ci"}).expect(t, 201, "").str("key")
	env.secret(apiKey, "API key")
	r = env.client("127.0.0.1").with(apiKey).withHeader("Idempotency-Key", "create-shop-1").do("POST", "/databases", body)
	r.expect(t, 409, "name_taken") // run afresh: the name is the owner's database's already
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("an API key replayed its owner's session key")
	}

	// 25 h later the key is a new request: the create runs again (and finds the name taken).
	env.clock.Advance(25 * time.Hour)
	c := env.client("127.0.0.1")
	// Public POSTs ignore the header: two logins with one key are two sessions.
	login := c.withHeader("Idempotency-Key", "login-1")
	s1, s2 := login.login(owner.email, owner.password, owner.tenantID), login.login(owner.email, owner.password, owner.tenantID)
	if s1.access == s2.access || s2.resp.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("two logins with one Idempotency-Key gave one answer")
	}
	r = c.with(s2.access).withHeader("Idempotency-Key", "create-shop-1").do("POST", "/databases", body).expect(t, 409, "name_taken")
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("a key past 24 h was replayed")
	}
	if items := c.with(s2.access).do("GET", "/databases", nil).expect(t, 200, "").items("items"); len(items) != 1 {
		t.Errorf("%d databases, want 1", len(items))
	}
}
