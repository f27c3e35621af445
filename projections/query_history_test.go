package projections_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/projections"
)

// queryRun builds the QueryExecuted of the n-th query of a test, at t0 + n seconds.
func queryRun(tenant domain.TenantID, user domain.UserID, db domain.DatabaseID, n int) domain.QueryExecuted {
	return domain.QueryExecuted{
		QueryID: newID(), TenantID: tenant, UserID: user, DatabaseID: db,
		SQL: fmt.Sprintf("SELECT * FROM t WHERE id = %d", n), Fingerprint: "SELECT * FROM t WHERE id = ?",
		StatementType: "read", Tables: []string{"t"}, Status: domain.QuerySucceeded,
		ExecutionMS: float64(n) + 0.125, RowCount: int64(n), At: t0.Add(time.Duration(n) * time.Second),
	}
}

// recordQueries appends each query in its own stream, all in one append (as a multi-statement
// request is recorded), and returns the position of the last.
func recordQueries(t *testing.T, f *identityFixture, queries ...domain.QueryExecuted) int64 {
	t.Helper()
	streams := make([]eventstore.Stream, len(queries))
	for i, q := range queries {
		streams[i] = eventstore.Stream{ID: domain.QueryStream(q.QueryID), Type: "query", ExpectedVersion: 0, Events: []domain.Event{q}}
	}
	f.clock.set(queries[len(queries)-1].At)
	res, err := f.store.Append(context.Background(), eventstore.Append{Streams: streams})
	if err != nil {
		t.Fatal(err)
	}
	return res.LastPosition
}

func historyIDs(items []projections.QueryHistoryItem) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.QueryID
	}
	return ids
}

func TestQueryHistoryKeepsEachUsersLast100NewestFirst(t *testing.T) {
	f := newIdentityFixture(t)
	history := projections.NewQueryHistory(production)
	r := f.start(t, history)
	q := projections.NewViews(f.db)
	ctx := context.Background()
	acme, globex := domain.TenantID(newID()), domain.TenantID(newID())
	alice, bob := domain.UserID(newID()), domain.UserID(newID())
	db1, db2, db3 := domain.DatabaseID(newID()), domain.DatabaseID(newID()), domain.DatabaseID(newID())

	// Alice runs 130 queries in acme on two databases, interleaved with bob's 5 in acme and her
	// own 3 in globex; some fail, time out or are denied.
	var aliceAcme, bobAcme, aliceGlobex []string
	recorded := map[string]domain.QueryExecuted{}
	var last int64
	n := 0
	for round := range 13 {
		var batch []domain.QueryExecuted
		for i := range 10 {
			n++
			db := db1
			if i%2 == 1 {
				db = db2
			}
			e := queryRun(acme, alice, db, n)
			switch len(aliceAcme) + 1 {
			case 129:
				e.Status, e.ErrorCode, e.Error, e.MySQLCode = domain.QueryFailed, "syntax_error", "You have an error in your SQL syntax", 1064
				e.RowCount, e.StatementType = 0, ""
			case 128:
				e.Status, e.ErrorCode, e.Error = domain.QueryTimedOut, "query_timeout", "the query ran longer than 30 s"
			case 127:
				e.Status, e.ErrorCode, e.Error, e.StatementType = domain.QueryDenied, "statement_not_allowed", "viewers may only read", "ddl"
				e.SQL = "DROP TABLE t"
			}
			e.AffectedRows = int64(i)
			batch = append(batch, e)
			aliceAcme = append(aliceAcme, e.QueryID)
			recorded[e.QueryID] = e
		}
		if round < 5 {
			n++
			e := queryRun(acme, bob, db1, n)
			batch = append(batch, e)
			bobAcme = append(bobAcme, e.QueryID)
		}
		if round < 3 {
			n++
			e := queryRun(globex, alice, db3, n)
			batch = append(batch, e)
			aliceGlobex = append(aliceGlobex, e.QueryID)
		}
		last = recordQueries(t, f, batch...)
	}
	wait(t, r, last, "query_history")

	newestFirst := func(ids []string) []string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[len(ids)-1-i] = id
		}
		return out
	}
	check := func(tenant domain.TenantID, user domain.UserID, limit int, want []string) []projections.QueryHistoryItem {
		t.Helper()
		items, err := q.QueryHistory(ctx, tenant, user, limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := historyIDs(items); !reflect.DeepEqual(got, want) {
			t.Fatalf("history of %s in %s (limit %d): %d items\n got %v\nwant %v", user, tenant, limit, len(got), got, want)
		}
		return items
	}
	items := check(acme, alice, 0, newestFirst(aliceAcme)[:100])
	check(acme, alice, 1000, newestFirst(aliceAcme)[:100])
	check(acme, alice, 7, newestFirst(aliceAcme)[:7])
	check(acme, bob, 0, newestFirst(bobAcme))
	check(globex, alice, 0, newestFirst(aliceGlobex))
	check(globex, bob, 0, []string{})
	if items, _ := q.QueryHistory(ctx, acme, domain.UserID(newID()), 0); items == nil {
		t.Error("an empty history is nil, want an empty slice (JSON [])")
	}
	var rows int
	if err := f.db.QueryRow(`SELECT COUNT(*) FROM query_history WHERE tenant_id = ? AND user_id = ?`, acme, alice).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 100 {
		t.Errorf("query_history holds %d rows of alice in acme, want exactly 100", rows)
	}

	// Every item shows what was recorded: successes, the failure, the timeout, the denial.
	statuses := map[string]int{}
	for _, got := range items {
		e := recorded[got.QueryID]
		want := projections.QueryHistoryItem{QueryID: e.QueryID, DatabaseID: string(e.DatabaseID), SQL: e.SQL,
			StatementType: e.StatementType, Status: string(e.Status), ErrorCode: e.ErrorCode, Error: e.Error,
			ExecutionMS: e.ExecutionMS, RowCount: e.RowCount, AffectedRows: e.AffectedRows, ExecutedAt: e.At}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("item:\n got %+v\nwant %+v", got, want)
		}
		statuses[got.Status]++
	}
	if want := map[string]int{"succeeded": 97, "failed": 1, "timeout": 1, "denied": 1}; !reflect.DeepEqual(statuses, want) {
		t.Errorf("statuses = %v, want %v", statuses, want)
	}
	failed := recorded[aliceAcme[128]]
	if failed.Status != domain.QueryFailed || items[1].QueryID != failed.QueryID || items[1].Error != "You have an error in your SQL syntax" ||
		items[1].ErrorCode != "syntax_error" || items[1].StatementType != "" {
		t.Errorf("the failure, second newest, reads %+v", items[1])
	}

	t.Run("rebuild and redelivery change nothing", func(t *testing.T) {
		checkReplay(t, f, r, history, map[string]string{"query_history": "tenant_id, user_id, slot"})
	})
}

func TestQueryHistoryCutsOversizedValues(t *testing.T) {
	f := newIdentityFixture(t)
	r := f.start(t, projections.NewQueryHistory(production))
	tenant, user, db := domain.TenantID(newID()), domain.UserID(newID()), domain.DatabaseID(newID())
	e := queryRun(tenant, user, db, 1)
	// A producer that ignored RecordedSQL, and a long error message: the projector must not fail.
	e.SQL = "SELECT '" + strings.Repeat("é", domain.MaxRecordedSQL) + "'"
	e.Status, e.ErrorCode, e.Error = domain.QueryFailed, "query_failed", strings.Repeat("ø", 3000)
	last := recordQueries(t, f, e)
	wait(t, r, last, "query_history")
	items, err := projections.NewViews(f.db).QueryHistory(context.Background(), tenant, user, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 {
		t.Fatalf("history = %+v, want one item", items)
	}
	got := items[0]
	if want, _ := domain.RecordedSQL(e.SQL); got.SQL != want || !got.SQLTruncated {
		t.Errorf("sql: %d bytes (truncated %v), want the first %d bytes and truncated", len(got.SQL), got.SQLTruncated, len(want))
	}
	if got.Error != strings.Repeat("ø", 1000) {
		t.Errorf("error: %d characters, want the first 1000", len([]rune(got.Error)))
	}
}

func TestQueryHistoryItemJSON(t *testing.T) {
	data, err := json.Marshal(projections.QueryHistoryItem{QueryID: "q", DatabaseID: "d", SQL: "SELECT 1", StatementType: "read",
		Status: "succeeded", ExecutionMS: 0.5, RowCount: 1, ExecutedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"query_id":"q","database_id":"d","sql":"SELECT 1","statement_type":"read","status":"succeeded",` +
		`"execution_ms":0.5,"row_count":1,"affected_rows":0,"executed_at":"2026-03-01T09:00:00Z"}`
	if string(data) != want {
		t.Errorf("JSON\n got %s\nwant %s", data, want)
	}
}

func TestDatabasesLastUsedAtFollowsQueriesByTheMinute(t *testing.T) {
	f := newIdentityFixture(t)
	databases := projections.NewDatabases(production)
	r := f.start(t, databases)
	tenant, owner := domain.TenantID(newID()), domain.UserID(newID())
	used, idle := domain.DatabaseID(newID()), domain.DatabaseID(newID())
	for _, id := range []domain.DatabaseID{used, idle} {
		f.appendAt(t, t0, id.Stream(), domain.DatabaseRequested{DatabaseID: id, TenantID: tenant, Name: "db_" + string(id[:8]),
			Charset: "utf8mb4", Collation: "utf8mb4_general_ci", Template: domain.TemplateBlank, OwnerID: owner, Server: "s1", At: t0})
		f.appendAt(t, t0.Add(time.Second), id.Stream(), domain.DatabaseProvisioned{At: t0.Add(time.Second)})
	}
	base := t0.Add(time.Hour)
	lastUsed := func(id domain.DatabaseID) string {
		t.Helper()
		rows, _ := query(t, f.db, `SELECT last_used_at FROM database_list WHERE database_id = ?`, string(id))
		return rows[0]["last_used_at"]
	}
	steps := []struct {
		name   string
		offset time.Duration
		change func(*domain.QueryExecuted)
		want   time.Duration // last_used_at after the step, as an offset from base
	}{
		{"first query", 0, nil, 0},
		{"30 s later: too soon", 30 * time.Second, nil, 0},
		{"just under a minute", time.Minute - time.Microsecond, nil, 0},
		{"a minute later", time.Minute, nil, time.Minute},
		{"denied does not count", 10 * time.Minute, func(e *domain.QueryExecuted) {
			e.Status, e.ErrorCode = domain.QueryDenied, "statement_not_allowed"
		}, time.Minute},
		{"stopped does not count", 11 * time.Minute, func(e *domain.QueryExecuted) {
			e.Status, e.ErrorCode = domain.QueryFailed, "database_stopped"
		}, time.Minute},
		{"unavailable does not count", 11 * time.Minute, func(e *domain.QueryExecuted) {
			e.Status, e.ErrorCode = domain.QueryFailed, "database_unavailable"
		}, time.Minute},
		{"another tenant's claim does not count", 12 * time.Minute, func(e *domain.QueryExecuted) {
			e.TenantID = domain.TenantID(newID())
		}, time.Minute},
		{"a failed query counts", 5 * time.Minute, func(e *domain.QueryExecuted) {
			e.Status, e.ErrorCode, e.MySQLCode = domain.QueryFailed, "query_failed", 1146
		}, 5 * time.Minute},
		{"a query recorded late never moves it back", 2 * time.Minute, nil, 5 * time.Minute},
		{"a timeout counts", 7 * time.Minute, func(e *domain.QueryExecuted) {
			e.Status, e.ErrorCode = domain.QueryTimedOut, "query_timeout"
		}, 7 * time.Minute},
	}
	for i, step := range steps {
		e := queryRun(tenant, owner, used, i)
		e.At = base.Add(step.offset)
		if step.change != nil {
			step.change(&e)
		}
		wait(t, r, recordQueries(t, f, e), "databases")
		if got, want := lastUsed(used), ts(base.Add(step.want)); got != want {
			t.Fatalf("after %q: last_used_at = %s, want %s", step.name, got, want)
		}
	}
	if got := lastUsed(idle); got != "NULL" {
		t.Errorf("a database nobody queried has last_used_at %s, want NULL", got)
	}
	// Use is not a change of the database: updated_at and version stay.
	rows, _ := query(t, f.db, `SELECT updated_at, version FROM database_list WHERE database_id = ?`, string(used))
	if rows[0]["updated_at"] != ts(t0.Add(time.Second)) || rows[0]["version"] != "2" {
		t.Errorf("queries changed the database row: %v", rows[0])
	}
	view, err := projections.NewViews(f.db).Database(context.Background(), tenant, used)
	if err != nil {
		t.Fatal(err)
	}
	if view.LastUsedAt == nil || !view.LastUsedAt.Equal(base.Add(7*time.Minute)) {
		t.Errorf("DatabaseView.LastUsedAt = %v, want %v", view.LastUsedAt, base.Add(7*time.Minute))
	}

	t.Run("rebuild and redelivery change nothing", func(t *testing.T) {
		checkReplay(t, f, r, databases, map[string]string{"database_list": "database_id"})
	})
}

// TestQueryHistoryRebuildsLargeBatches makes a rebuild apply more users, rows and bytes in one
// batch than one statement takes, so every statement of Apply is split.
func TestQueryHistoryRebuildsLargeBatches(t *testing.T) {
	f := newIdentityFixture(t)
	history := projections.NewQueryHistory(production)
	r := f.start(t, history)
	tenant, db := domain.TenantID(newID()), domain.DatabaseID(newID())
	users := make([]domain.UserID, 1200)
	for i := range users {
		users[i] = domain.UserID(newID())
	}
	var last int64
	n := 0
	for from := 0; from < len(users); from += 200 {
		var batch []domain.QueryExecuted
		for _, u := range users[from : from+200] {
			n++
			e := queryRun(tenant, u, db, n)
			if n%4 == 0 {
				e.SQL, _ = domain.RecordedSQL("SELECT '" + strings.Repeat("x", domain.MaxRecordedSQL) + "'")
				e.SQLTruncated = true
			}
			batch = append(batch, e)
		}
		last = recordQueries(t, f, batch...)
	}
	wait(t, r, last, "query_history")
	var rows int
	if err := f.db.QueryRow(`SELECT COUNT(*) FROM query_history`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != len(users) {
		t.Fatalf("%d history rows, want %d", rows, len(users))
	}
	checkReplay(t, f, r, history, map[string]string{"query_history": "tenant_id, user_id, slot"})
}

// BenchmarkQueryRecording measures how many recorded queries per second the query_history and
// databases projectors follow live (each alone, both, and the streams projector as the yardstick
// of the runtime), with 16 concurrent recorders over 200 users and 20 databases. projected/s
// counts from the first append until the projectors have applied the last.
func BenchmarkQueryRecording(b *testing.B) {
	for _, name := range []string{"streams", "query_history", "databases", "both"} {
		b.Run(name, func(b *testing.B) {
			var ps []projections.Projector
			switch name {
			case "streams":
				ps = []projections.Projector{projections.Streams{}}
			case "query_history":
				ps = []projections.Projector{projections.NewQueryHistory(production)}
			case "databases":
				ps = []projections.Projector{projections.NewDatabases(production)}
			default:
				ps = []projections.Projector{projections.NewQueryHistory(production), projections.NewDatabases(production)}
			}
			benchmarkQueryRecording(b, ps...)
		})
	}
}

func benchmarkQueryRecording(b *testing.B, ps ...projections.Projector) {
	db := testdb.New(b)
	store := eventstore.New(db, production, eventstore.Options{Logger: quiet()})
	defer store.Close()
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name()
	}
	r, err := projections.New(db, store, projections.Options{Logger: quiet()}, ps...)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	tenant := domain.TenantID(newID())
	users := make([]domain.UserID, 200)
	for i := range users {
		users[i] = domain.UserID(newID())
	}
	dbs := make([]domain.DatabaseID, 20)
	for i := range dbs {
		dbs[i] = domain.DatabaseID(newID())
		_, err := store.Append(context.Background(), eventstore.Append{Streams: []eventstore.Stream{{ID: dbs[i].Stream(), Type: "database",
			Events: []domain.Event{domain.DatabaseRequested{DatabaseID: dbs[i], TenantID: tenant, Name: fmt.Sprintf("db%d", i), OwnerID: users[0], At: t0}}}}})
		if err != nil {
			b.Fatal(err)
		}
	}
	const recorders = 16
	var wg sync.WaitGroup
	var last atomic.Int64
	b.ResetTimer()
	started := time.Now()
	for g := range recorders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < b.N; i += recorders {
				e := queryRun(tenant, users[i%len(users)], dbs[i%len(dbs)], i)
				e.At = time.Now().UTC()
				res, err := store.Append(context.Background(), eventstore.Append{Streams: []eventstore.Stream{{
					ID: domain.QueryStream(e.QueryID), Type: "query", Events: []domain.Event{e}}}})
				if err != nil {
					b.Error(err)
					return
				}
				for {
					cur := last.Load()
					if res.LastPosition <= cur || last.CompareAndSwap(cur, res.LastPosition) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	appended := time.Since(started)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := r.WaitFor(ctx, last.Load(), names...); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(started)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/appended.Seconds(), "appended/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "projected/s")
}

// BenchmarkQueryHistoryApply measures Apply alone, one event at a time as the live runtime calls
// it (in a savepoint, 200 to a transaction), over 200 users.
func BenchmarkQueryHistoryApply(b *testing.B) {
	db := testdb.New(b)
	p := projections.NewQueryHistory(production)
	for _, table := range p.Tables() {
		if _, err := db.Exec(strings.ReplaceAll(table.DDL, "{{table}}", table.Name)); err != nil {
			b.Fatal(err)
		}
	}
	tenant := domain.TenantID(newID())
	users := make([]domain.UserID, 200)
	for i := range users {
		users[i] = domain.UserID(newID())
	}
	envs := make([]eventstore.Envelope, b.N)
	for i := range envs {
		data, err := json.Marshal(queryRun(tenant, users[i%len(users)], domain.DatabaseID(users[0]), i))
		if err != nil {
			b.Fatal(err)
		}
		envs[i] = eventstore.Envelope{Position: int64(i + 1), EventType: domain.QueryExecuted{}.EventType(), Payload: data}
	}
	names := projections.Tables{"query_history": "query_history"}
	ctx := context.Background()
	b.ResetTimer()
	var tx *sql.Tx
	for i := range envs {
		if i%200 == 0 {
			if tx != nil {
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			var err error
			if tx, err = db.BeginTx(ctx, nil); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT apply`); err != nil {
			b.Fatal(err)
		}
		if err := p.Apply(ctx, tx, names, envs[i:i+1]); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
