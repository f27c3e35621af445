package main

import (
	"fmt"
	"strings"
	"testing"
)

// What one request can write into the management database is bounded (issue 10 item 2), attacked
// as a client would: a 900,000-character User-Agent on failed logins (unauthenticated, and of an
// existing account), a keyed read query whose answer is large, and a statement naming 5,000
// tables.
func TestE2EBoundsOfWhatARequestWrites(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Bounds Corp")
	huge := strings.Repeat("A", 900_000)
	attacker := env.client("127.0.0.2").withHeader("User-Agent", huge)
	attacker.do("POST", "/auth/login", map[string]any{"email": owner.email, "password": "Wrong-pass-1!"}).expect(t, 401, "invalid_credentials")
	attacker.do("POST", "/auth/login", map[string]any{"email": uniqueEmail("nobody"), "password": "Wrong-pass-1!"}).expect(t, 401, "invalid_credentials")
	var events, longestUA, longestMetadata, longestPayloadUA int
	if err := env.app.DB.QueryRow(`SELECT COUNT(*), MAX(LENGTH(metadata)) FROM events`).Scan(&events, &longestMetadata); err != nil {
		t.Fatal(err)
	}
	for _, e := range openedEvents(t, env.app) { // user agents are sealed in the log: measured as read
		longestUA = max(longestUA, len(e.Metadata.UserAgent))
		longestPayloadUA = max(longestPayloadUA, len(openedField(e, "user_agent")))
	}
	if longestUA > 512 || longestPayloadUA > 512 || longestMetadata > 2048 {
		t.Errorf("after failed logins with a 900,000-byte User-Agent, of %d events: user_agent up to %d bytes in metadata, %d in payloads, metadata up to %d; want at most 512, 512, 2048",
			events, longestUA, longestPayloadUA, longestMetadata)
	}

	id := createDatabase(t, owner.c, map[string]any{"name": "bounds"}).expect(t, 201, "").str("id")
	// A keyed read keeps no answer: a retry reads again, and nothing is stored.
	keyed := owner.c.withHeader("Idempotency-Key", "read-1")
	big := "SELECT REPEAT('x', 60000) AS a, REPEAT('y', 60000) AS b"
	first := query(keyed, id, big, nil).expect(t, 200, "")
	again := query(keyed, id, big, nil).expect(t, 200, "")
	if again.header.Get("Idempotent-Replayed") != "" || again.str("query_id") == first.str("query_id") {
		t.Errorf("a keyed read was replayed: query_id %s then %s", first.str("query_id"), again.str("query_id"))
	}
	var kept int
	if err := env.app.DB.QueryRow(`SELECT COUNT(*) FROM idempotency_keys`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != 0 {
		t.Errorf("%d idempotency keys kept for reads, want 0", kept)
	}

	// A statement naming 5,000 tables is recorded with the first 64 of them.
	var sql strings.Builder
	sql.WriteString("SELECT 1 FROM ")
	for i := range 5_000 {
		if i > 0 {
			sql.WriteString(",")
		}
		fmt.Fprintf(&sql, "t%d", i)
	}
	r := query(owner.c, id, sql.String(), nil)
	if r.status/100 == 5 {
		t.Fatalf("a statement naming 5,000 tables = %d %s", r.status, truncateForLog(r.body))
	}
	var tables, payload int
	if err := env.app.DB.QueryRow(`SELECT COALESCE(MAX(JSON_LENGTH(payload, '$.tables')), 0), MAX(LENGTH(payload))
		FROM events WHERE event_type = 'query.executed.v1'`).Scan(&tables, &payload); err != nil {
		t.Fatal(err)
	}
	if tables > 64 || payload > 64<<10 {
		t.Errorf("the record of a statement naming 5,000 tables: %d tables, %d bytes; want at most 64 tables and 64 KiB", tables, payload)
	}
}
