package eventstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// Test events: value types with value-receiver EventType, as the domain's are.

type itemAdded struct {
	Item string `json:"item"`
	Qty  int    `json:"qty"`
}

func (itemAdded) EventType() string { return "test.item_added.v1" }

type itemRemoved struct {
	Item string `json:"item"`
}

func (itemRemoved) EventType() string { return "test.item_removed.v1" }

// blob carries arbitrary JSON, to make payloads the server refuses.
type blob struct {
	Data any `json:"data"`
}

func (blob) EventType() string { return "test.blob.v1" }

// unregistered is never put in a registry.
type unregistered struct{}

func (unregistered) EventType() string { return "test.unregistered.v1" }

func newRegistry() *eventstore.Registry {
	return eventstore.NewRegistry(itemAdded{}, itemRemoved{}, blob{})
}

// settableClock is an injected clock the test moves by hand.
type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *settableClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newStore returns a store on a fresh migrated database, closed when the test ends.
func newStore(t testing.TB, opts eventstore.Options) (*eventstore.Store, *sql.DB) {
	t.Helper()
	db := testdb.New(t)
	return openStore(t, db, opts), db
}

// openStore starts another store on db, as another process would; closed when the test ends.
func openStore(t testing.TB, db *sql.DB, opts eventstore.Options) *eventstore.Store {
	t.Helper()
	s := eventstore.New(db, newRegistry(), opts)
	t.Cleanup(func() { s.Close() })
	return s
}

// one is an append of events to a single stream.
func one(streamID string, expected int64, events ...domain.Event) eventstore.Append {
	return eventstore.Append{Streams: []eventstore.Stream{{ID: streamID, Type: "item", ExpectedVersion: expected, Events: events}}}
}

func items(n int) []domain.Event {
	evs := make([]domain.Event, n)
	for i := range evs {
		evs[i] = itemAdded{Item: fmt.Sprintf("item-%d", i), Qty: i}
	}
	return evs
}

func mustAppend(t testing.TB, s *eventstore.Store, a eventstore.Append) eventstore.Appended {
	t.Helper()
	res, err := s.Append(context.Background(), a)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return res
}

func countRows(t testing.TB, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// logShape returns the number of events and the lowest and highest position in the log.
func logShape(t testing.TB, db *sql.DB) (count, lo, hi int64) {
	t.Helper()
	if err := db.QueryRow(`SELECT COUNT(*), COALESCE(MIN(position), 0), COALESCE(MAX(position), 0) FROM events`).Scan(&count, &lo, &hi); err != nil {
		t.Fatalf("log shape: %v", err)
	}
	return count, lo, hi
}

// assertLog fails unless the log holds exactly n events at positions 1..n and the head is n.
func assertLog(t testing.TB, s *eventstore.Store, db *sql.DB, n int64) {
	t.Helper()
	count, lo, hi := logShape(t, db)
	if count != n || (n > 0 && (lo != 1 || hi != n)) || (n == 0 && hi != 0) {
		t.Fatalf("log has %d events at positions %d..%d, want %d at 1..%d", count, lo, hi, n, n)
	}
	head, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if head != n {
		t.Fatalf("head = %d, want %d", head, n)
	}
}

func streamVersion(t testing.TB, db *sql.DB, streamID string) int {
	t.Helper()
	return countRows(t, db, `SELECT COUNT(*) FROM events WHERE stream_id = ?`, streamID)
}

// holdSequence takes the sequence row lock from outside the store, so the store's writer blocks on
// its next transaction and every append made meanwhile queues up behind it: releasing the lock
// then lets the writer commit the queued appends as one group. release is idempotent.
func holdSequence(t testing.TB, db *sql.DB) (release func()) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var pos int64
	if err := tx.QueryRow(`SELECT last_position FROM event_sequence WHERE id = 1 FOR UPDATE`).Scan(&pos); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { tx.Rollback() }) }
	t.Cleanup(release)
	return release
}

// waitUntil polls cond until it holds; a minute without is a failure.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writerBlocked waits until the store's writer has taken its next append and waits, in its
// transaction, for the sequence lock that holdSequence holds (its locking read is running), with
// want appends queued behind it.
func writerBlocked(t testing.TB, db *sql.DB, s *eventstore.Store, want int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("the writer waits for the lock with %d appends queued", want), func() bool {
		// The processlist is live (innodb_trx is a cache refreshed now and then).
		var waiting int
		if err := db.QueryRow(`SELECT COUNT(*) FROM information_schema.processlist
			WHERE db = DATABASE() AND info LIKE 'SELECT last_position FROM event_sequence%FOR UPDATE'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		return waiting == 1 && eventstore.Queued(s) == want
	})
}

// batches is how many group commits the store's metrics have seen.
func batches(t testing.TB, reg *prometheus.Registry) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "clouddb_eventstore_group_commit_appends" {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("no clouddb_eventstore_group_commit_appends metric")
	return 0
}

func isConflict(err error) bool {
	var vc *eventstore.VersionConflictError
	var ct *eventstore.ClaimTakenError
	return errors.As(err, &vc) || errors.As(err, &ct)
}

// logBuffer collects a store's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
