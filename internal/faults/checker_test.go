package faults

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// check compares every answer with the rows in MySQL and the events in the log, once the last
// process has run its reconcilers:
//
//	(a) every row of a tenant's table has the intent (query.started.v1) of a statement that
//	    inserts it: nothing ran unrecorded;
//	(b) every INSERT answered 2xx has its row exactly once, and no value is there twice;
//	(c) every intent has an outcome; a 2xx answer's is succeeded;
//	(d) the accounts on RDS-B are what the log says (lock, MAX_USER_CONNECTIONS, grants), and a
//	    failed provisioning left nothing;
//	(e) no Idempotency-Key is stuck: a retry of every key gets a final answer, never 409 retry
//	    later, and a key whose first answer was kept replays it.
func (h *harness) check() {
	t := h.t
	h.waitForDeadLeases()
	until(t, 10*leaseTTL, "every intent has an outcome", func() bool { return len(h.openIntents()) == 0 })
	h.checkAccounts()
	h.retryEveryKey()
	until(t, 10*leaseTTL, "every retry's intent has an outcome", func() bool { return len(h.openIntents()) == 0 })
	h.checkRowsAndLog()
}

// waitForDeadLeases waits until only the last process holds a live lease.
func (h *harness) waitForDeadLeases() {
	until(h.t, 5*leaseTTL, "the killed processes' leases expire", func() bool {
		var n int
		h.mgmt.QueryRow(`SELECT COUNT(*) FROM process_leases WHERE expires_at > UTC_TIMESTAMP(6)`).Scan(&n)
		return n == 1
	})
}

func (h *harness) openIntents() []string {
	rows, err := h.mgmt.Query(`SELECT i.stream_id FROM events i WHERE i.event_type = 'query.started.v1'
		AND NOT EXISTS (SELECT 1 FROM events o WHERE o.stream_id = i.stream_id AND o.stream_version = 2)`)
	if err != nil {
		h.t.Fatal(err)
	}
	return scanStrings(h.t, rows)
}

func scanStrings(t *testing.T, rows *sql.Rows) []string {
	t.Helper()
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
	return out
}

// retryEveryKey sends every request again with its key and body, 8 at a time (e).
func (h *harness) retryEveryKey() {
	t := h.t
	var wg sync.WaitGroup
	next := make(chan *request)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range next {
				r.retry = h.call(r.token, r.key, "POST", "/databases/"+r.database+"/query", map[string]any{"sql": r.sql})
			}
		}()
	}
	for _, r := range h.load.requests {
		next <- r
	}
	close(next)
	wg.Wait()
	unrecorded := h.unrecordedKeys()
	for _, r := range h.load.requests {
		h.figures.retried++
		kept := r.first.status >= 200 && r.first.status < 500 && r.first.status != 429
		switch {
		case kept && unrecorded[r.key] && r.retry.code == "outcome_unknown":
			// The answer was true, but RDS-A did not take the key's record of it: the retry
			// cannot know the outcome and says so.
			h.figures.unrecordedKeys++
		case r.retry.status == 409 && r.retry.code == "conflict":
			t.Errorf("(e) key %s is stuck: %d %v (first answer %d %s)", r.key, r.retry.status, r.retry.doc, r.first.status, r.first.code)
		case r.retry.status == 0 || r.retry.status >= 500:
			t.Errorf("(e) key %s: retry = %d %v %v", r.key, r.retry.status, r.retry.doc, r.retry.err)
		case kept && (!r.retry.replayed || r.retry.status != r.first.status):
			t.Errorf("(e) key %s: first answer %d %s, retry %d %s (replayed %v), want the first replayed",
				r.key, r.first.status, r.first.code, r.retry.status, r.retry.code, r.retry.replayed)
		case !r.retry.replayed:
			h.figures.retriesAnswered++
			if r.retry.code == "outcome_unknown" {
				h.figures.retriesRefused++
			}
		}
	}
}

// checkRowsAndLog checks (a), (b) and (c) and counts statements, unknown and cancelled.
func (h *harness) checkRowsAndLog() {
	t := h.t
	type intent struct {
		database, sql, status string
	}
	rows, err := h.mgmt.Query(`SELECT i.stream_id, JSON_VALUE(i.payload, '$.database_id'), JSON_VALUE(i.payload, '$.statements[0].sql'),
			COALESCE(JSON_VALUE(o.payload, '$.status'), '')
		FROM events i LEFT JOIN events o ON o.stream_id = i.stream_id AND o.stream_version = 2
		WHERE i.event_type = 'query.started.v1'`)
	if err != nil {
		t.Fatal(err)
	}
	intents := map[string]intent{}    // by stream
	recorded := map[string][]string{} // database + sql → streams
	for rows.Next() {
		var stream string
		var i intent
		if err := rows.Scan(&stream, &i.database, &i.sql, &i.status); err != nil {
			t.Fatal(err)
		}
		intents[stream] = i
		recorded[i.database+" "+i.sql] = append(recorded[i.database+" "+i.sql], stream)
		h.figures.statements++
		switch i.status {
		case "unknown":
			h.figures.unknown++
		case "cancelled":
			h.figures.cancelled++
		case "succeeded", "failed", "timeout":
		default: // (c)
			t.Errorf("intent %s (%s) has outcome %q", stream, i.sql, i.status)
		}
	}
	rows.Close()

	requests := map[string]*request{} // database + value
	for _, r := range h.load.requests {
		requests[fmt.Sprintf("%s %d", r.database, r.value)] = r
	}
	counts := map[string]int{}
	for _, id := range h.databases {
		schema := sandbox.SchemaName(h.prefix, id)
		rows, err := h.admin.Query("SELECT v, COUNT(*) FROM `" + schema + "`.t GROUP BY v")
		if err != nil {
			t.Fatalf("rows of %s: %v", id, err)
		}
		for rows.Next() {
			var v int64
			var n int
			if err := rows.Scan(&v, &n); err != nil {
				t.Fatal(err)
			}
			k := fmt.Sprintf("%s %d", id, v)
			counts[k] = n
			h.figures.rows += n
			r := requests[k]
			switch {
			case r == nil:
				t.Errorf("(a) database %s holds value %d that no request of the load sent", id, v)
			case len(recorded[id+" "+r.sql]) == 0:
				t.Errorf("(a) database %s holds value %d without an intent in the log: ran unrecorded", id, v)
			}
			if n > 1 {
				t.Errorf("(b) database %s holds value %d %d times (first answer %d %s, retry %d %s)",
					id, v, n, r.first.status, r.first.code, r.retry.status, r.retry.code)
			}
		}
		rows.Close()
	}
	for _, r := range h.load.requests {
		h.figures.requests++
		if r.first.status == 0 {
			h.figures.noAnswer++
		}
		for i, a := range []answer{r.first, r.retry} {
			if a.status < 200 || a.status > 299 {
				continue
			}
			if i == 0 {
				h.figures.answered2xx++
			}
			if n := counts[fmt.Sprintf("%s %d", r.database, r.value)]; n != 1 {
				t.Errorf("(b) %s answered %d has its row %d times", r.sql, a.status, n)
			}
			// The outcome of an answered statement is queued before the answer, not flushed: a
			// process killed in between leaves it to the reconciler, which cannot know it.
			switch status := intents[domain.QueryStream(a.str("query_id"))].status; {
			case status == "unknown" && i == 0:
				h.figures.answeredThenUnknown++
			case status != "succeeded" && status != "unknown":
				t.Errorf("(c) %s answered %d: its outcome in the log is %q", r.sql, a.status, status)
			}
		}
		if r.first.code == "outcome_unknown" {
			unknown := false
			for _, s := range recorded[r.database+" "+r.sql] {
				unknown = unknown || intents[s].status == "unknown"
			}
			if !unknown {
				t.Errorf("(c) %s answered outcome_unknown but the log has no unknown outcome", r.sql)
			}
		}
	}
}

// checkAccounts checks (d): what the server has of every database against what the log says.
// The reconciler of the last process runs at its start; the check waits for it (a deadline).
func (h *harness) checkAccounts() {
	t := h.t
	ctx := context.Background()
	fleet, err := sandbox.OpenFleet(ctx, []string{testdb.ServerDSN()}, h.prefix, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	server, err := fleet.Place(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var drift []string
	deadline := time.Now().Add(40 * time.Second) // a provisioning cut short waits for its 30 s work lease
	for {
		drift = h.drift(ctx, server)
		if len(drift) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling interval; the deadline decides
	}
	for _, d := range drift {
		t.Errorf("(d) %s", d)
	}
	for _, line := range h.allLogs() {
		if strings.Contains(line, "the server differed from the log and was repaired") {
			var entry struct{ Repairs []string }
			json.Unmarshal([]byte(line), &entry)
			h.figures.repairs += len(entry.Repairs)
		}
	}
}

// unrecordedKeys are the Idempotency-Keys whose answer the processes logged they could not record.
func (h *harness) unrecordedKeys() map[string]bool {
	keys := map[string]bool{}
	for _, line := range h.allLogs() {
		if strings.Contains(line, "could not record the outcome of an idempotency key") {
			var entry struct {
				Key string `json:"idempotency_key"`
			}
			json.Unmarshal([]byte(line), &entry)
			keys[entry.Key] = true
		}
	}
	return keys
}

func (h *harness) allLogs() []string {
	data, err := os.ReadFile(h.logFile.Name())
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.Split(string(data), "\n")
}

// drift lists how the server differs from what the log says of each database.
func (h *harness) drift(ctx context.Context, server *sandbox.Sandbox) []string {
	t := h.t
	rows, err := h.mgmt.Query(`SELECT stream_id, event_type FROM events WHERE stream_id LIKE 'database-%' ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]string{}
	var order []string
	for rows.Next() {
		var stream, typ string
		if err := rows.Scan(&stream, &typ); err != nil {
			t.Fatal(err)
		}
		id := strings.TrimPrefix(stream, "database-")
		if _, seen := state[id]; !seen {
			order = append(order, id)
		}
		switch typ {
		case "database.requested.v1":
			state[id] = "provisioning"
		case "database.provisioned.v1", "database.started.v1":
			state[id] = "running"
		case "database.stopped.v1":
			state[id] = "stopped"
		case "database.provisioning_failed.v1":
			state[id] = "failed"
		case "database.deleted.v1", "database.restored.v1", "database.purged.v1":
			t.Fatalf("the suite does not delete databases, yet the log has %s", typ)
		}
	}
	rows.Close()
	pro, err := domain.PlanByID(domain.PlanPro)
	if err != nil {
		t.Fatal(err)
	}
	maxConnections := int(pro.Limits.MaxConnections)
	h.figures.provisioned, h.figures.provisionedFailed = 0, 0
	var drift, rwGrants, roGrants []string
	for _, id := range order {
		st, err := server.Inspect(ctx, id, "", "")
		if err != nil {
			return []string{fmt.Sprintf("inspect %s: %v", id, err)}
		}
		switch state[id] {
		case "provisioning":
			drift = append(drift, fmt.Sprintf("database %s is still provisioning", id))
		case "failed":
			h.figures.provisionedFailed++
			if st.Schema || st.RW != nil || st.RO != nil {
				drift = append(drift, fmt.Sprintf("failed database %s left schema %v, accounts %v %v", id, st.Schema, st.RW != nil, st.RO != nil))
			}
		case "running", "stopped":
			h.figures.provisioned++
			if !st.Schema || st.RW == nil || st.RO == nil {
				drift = append(drift, fmt.Sprintf("%s database %s lacks its schema or an account: %+v", state[id], id, st))
				continue
			}
			locked := state[id] == "stopped"
			for name, a := range map[string]*sandbox.Account{"rw": st.RW, "ro": st.RO} {
				if a.Locked != locked || a.MaxUserConnections != maxConnections || len(a.Stray) > 0 {
					drift = append(drift, fmt.Sprintf("%s database %s: account %s locked %v, MAX_USER_CONNECTIONS %d, stray grants %v; want locked %v, %d, none",
						state[id], id, name, a.Locked, a.MaxUserConnections, a.Stray, locked, maxConnections))
				}
			}
			rwGrants = append(rwGrants, strings.Join(st.RW.Privileges, ","))
			roGrants = append(roGrants, strings.Join(st.RO.Privileges, ","))
		}
	}
	for what, grants := range map[string][]string{"read-write": rwGrants, "read-only": roGrants} {
		if sorted := slices.Compact(slices.Sorted(slices.Values(grants))); len(sorted) > 1 {
			drift = append(drift, fmt.Sprintf("the %s accounts do not all have the same grants: %v", what, sorted))
		}
	}
	sort.Strings(drift)
	return drift
}

// dropSandboxObjects drops every schema and account of prefix from the sandbox server.
func dropSandboxObjects(t *testing.T, prefix string) {
	db, err := sql.Open("mysql", testdb.ServerDSN())
	if err != nil {
		t.Error(err)
		return
	}
	defer db.Close()
	like := strings.ReplaceAll(prefix, "_", `\_`) + "%"
	rows, err := db.Query("SELECT CONCAT('DROP USER IF EXISTS ', QUOTE(User), '@', QUOTE(Host)) FROM mysql.user WHERE User LIKE ?"+
		" UNION ALL SELECT CONCAT('DROP DATABASE IF EXISTS `', SCHEMA_NAME, '`') FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", like, like)
	if err != nil {
		t.Error(err)
		return
	}
	for _, stmt := range scanStrings(t, rows) {
		if _, err := db.Exec(stmt); err != nil {
			t.Errorf("clean-up: %s: %v", stmt, err)
		}
	}
}
