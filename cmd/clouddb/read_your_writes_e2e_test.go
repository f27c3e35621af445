package main

import (
	"fmt"
	"testing"
)

// TestHistoryAndAuditListTheQueryJustAnswered: a query's outcome is queued into the log's group
// commit, not flushed, when its answer goes out, and the history's and the audit log's projectors
// apply executed queries in batches (every 20 ms); a read right after the answer still lists it,
// as it waits for this process's queued outcomes and then for its read model (Server.caughtUp).
// Without that wait, most of these reads miss the query.
func TestHistoryAndAuditListTheQueryJustAnswered(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	admin := newTenantAdmin(env, "127.0.62.1", "Read Your Writes")
	db := createDatabase(t, admin.c, map[string]any{"name": "ryw"}).str("id")
	history := func(qid string) {
		if got := admin.c.do("GET", "/queries/history?limit=1", nil).expect(t, 200, "").str("items.0.query_id"); got != qid {
			t.Errorf("the history's newest query is %q, not %s, answered just before", got, qid)
		}
	}
	audit := func(qid string) {
		if got := admin.c.do("GET", "/audit?action=query.executed&limit=1", nil).expect(t, 200, "").str("items.0.target.id"); got != qid {
			t.Errorf("the audit log's newest executed query is %q, not %s, answered just before", got, qid)
		}
	}
	for i := range 10 {
		qid := query(admin.c, db, fmt.Sprintf("SELECT %d AS n", i), nil).expect(t, 200, "").str("query_id")
		if i%2 == 0 { // each read first in turn: the other one may find its read model caught up already
			history(qid)
			audit(qid)
		} else {
			audit(qid)
			history(qid)
		}
	}
}
