package projections_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/projections"
)

// production is the registry the server runs with.
var production = eventstore.NewDomainRegistry()

// t0 is where the identity tests' clocks start.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// clock is the store's clock in the identity tests: recorded_at is whatever the test set last.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// identityFixture is a fresh database with a store on the production registry and a settable
// clock.
type identityFixture struct {
	*fixture
	clock *clock
}

func newIdentityFixture(t *testing.T) *identityFixture {
	t.Helper()
	db := testdb.New(t)
	clk := &clock{now: t0}
	store := eventstore.New(db, production, eventstore.Options{Logger: quiet(), Clock: clk.Now})
	t.Cleanup(func() { store.Close() })
	return &identityFixture{fixture: &fixture{db: db, store: store}, clock: clk}
}

// appendAt appends events to one stream, recorded at the given time.
func (f *identityFixture) appendAt(t *testing.T, at time.Time, stream string, events ...domain.Event) eventstore.Appended {
	t.Helper()
	f.clock.set(at)
	typ, _, _ := strings.Cut(stream, "-")
	res, err := f.store.Append(context.Background(), eventstore.Append{Streams: []eventstore.Stream{{
		ID: stream, Type: typ, ExpectedVersion: eventstore.AnyVersion, Events: events,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// wait waits until the named projector has applied position, which takes milliseconds; 30 s, as
// waitFor gives, leaves a loaded machine room. On failure it shows the projector's status, last
// error included.
func wait(t *testing.T, r *projections.Runtime, position int64, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, position, name); err != nil {
		statuses, _ := r.Status(context.Background())
		t.Fatalf("%v; status: %+v", err, statuses)
	}
}

func newID() string { return uuid.NewString() }

// ts is t as the tests read a DATETIME(6) back.
func ts(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000000") }

// text renders a column value read with parseTime: NULL, a DATETIME(6) as ts does, the rest as
// MySQL sends it.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case time.Time:
		return ts(v)
	case []byte:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	default:
		return fmt.Sprint(v)
	}
}

type row map[string]string

// query returns the rows of query as column → text, and the column names.
func query(t *testing.T, db *sql.DB, q string, args ...any) ([]row, []string) {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	columns, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []row
	for rows.Next() {
		values := make([]any, len(columns))
		ptrs := make([]any, len(columns))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		r := row{}
		for i, c := range columns {
			r[c] = text(values[i])
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out, columns
}

// assertRow checks the one row of table where key = id against want, column by column; want
// must name every column the table has.
func assertRow(t *testing.T, db *sql.DB, table, key, id string, want row) {
	t.Helper()
	rows, columns := query(t, db, "SELECT * FROM `"+table+"` WHERE "+key+" = ?", id)
	if len(rows) != 1 {
		t.Errorf("%s has %d rows with %s = %s, want 1", table, len(rows), key, id)
		return
	}
	for _, c := range columns {
		if _, ok := want[c]; !ok {
			t.Errorf("%s has a column %q the test does not expect", table, c)
		}
	}
	for c, w := range want {
		got, ok := rows[0][c]
		switch {
		case !ok:
			t.Errorf("%s has no column %q", table, c)
		case got != w:
			t.Errorf("%s %s: %s = %q, want %q", table, id, c, got, w)
		}
	}
}

// dumpTable renders every row of table, ordered by orderBy, one line each.
func dumpTable(t *testing.T, db *sql.DB, table, orderBy string) string {
	t.Helper()
	rows, columns := query(t, db, "SELECT * FROM `"+table+"` ORDER BY "+orderBy)
	var b strings.Builder
	for _, r := range rows {
		for _, c := range columns {
			fmt.Fprintf(&b, "%s=%s ", c, r[c])
		}
		b.WriteString("\n")
	}
	return b.String()
}

// checkReplay shows that a projector's read model is a function of the log: a rebuild yields
// tables identical to the live ones, and delivering every event again to the live tables (all of
// them in order, twice, then each alone from the newest to the oldest) changes nothing. tables
// maps each table to its ORDER BY.
func checkReplay(t *testing.T, f *identityFixture, r *projections.Runtime, p projections.Projector, tables map[string]string) {
	t.Helper()
	ctx := context.Background()
	dump := func() string {
		var b strings.Builder
		for _, table := range slices.Sorted(maps.Keys(tables)) {
			fmt.Fprintf(&b, "%s:\n%s", table, dumpTable(t, f.db, table, tables[table]))
		}
		return b.String()
	}
	live := dump()
	if strings.Count(live, "\n") <= len(tables) {
		t.Fatalf("the live model is empty:\n%s", live)
	}

	if err := r.Rebuild(ctx, p.Name()); err != nil {
		t.Fatal(err)
	}
	if rebuilt := dump(); rebuilt != live {
		t.Fatalf("the rebuilt model differs from the live one:\nlive:\n%s\nrebuilt:\n%s", live, rebuilt)
	}

	events, err := f.store.ReadAll(ctx, 0, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	handles := map[string]bool{}
	for _, typ := range p.Handles() {
		handles[typ] = true
	}
	var relevant []eventstore.Envelope
	for _, e := range events {
		if handles[e.EventType] {
			relevant = append(relevant, e)
		}
	}
	names := projections.Tables{}
	for _, table := range p.Tables() {
		names[table.Name] = table.Name
	}
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for range 2 {
		if err := p.Apply(ctx, tx, names, relevant); err != nil {
			t.Fatalf("redelivery failed: %v", err)
		}
	}
	// Stale deliveries: each event alone, newest first, so every one is older than what its row
	// already shows.
	for i := len(relevant) - 1; i >= 0; i-- {
		if err := p.Apply(ctx, tx, names, relevant[i:i+1]); err != nil {
			t.Fatalf("redelivery of position %d failed: %v", relevant[i].Position, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if redelivered := dump(); redelivered != live {
		t.Fatalf("redelivered events changed the model:\nbefore:\n%s\nafter:\n%s", live, redelivered)
	}
}

// signedIn records a user (ada@example.com) and a session of theirs, and waits until the users'
// and sessions' models show both.
func (f *identityFixture) signedIn(t *testing.T, r *projections.Runtime) (domain.UserID, domain.SessionID) {
	t.Helper()
	user, session := domain.UserID(newID()), domain.SessionID(newID())
	f.appendAt(t, t0, user.Stream(), domain.UserRegistered{UserID: user, Email: "ada@example.com", Name: "Ada", PasswordHash: "h"})
	last := f.appendAt(t, t0, session.Stream(), domain.SessionStarted{SessionID: session, UserID: user, RefreshHash: "r0",
		StartedAt: t0, ExpiresAt: t0.Add(time.Hour), IdleTimeout: 600, IP: "203.0.113.7", UserAgent: "curl/8.5"})
	wait(t, r, last.LastPosition, "users")
	wait(t, r, last.LastPosition, "sessions")
	return user, session
}
