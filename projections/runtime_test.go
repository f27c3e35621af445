package projections_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
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

type ticked struct {
	N int `json:"n"`
}

func (ticked) EventType() string { return "test.ticked.v1" }

type ignored struct{}

func (ignored) EventType() string { return "test.ignored.v1" }

// ledger records every ticked event it applies under its position, so a second application of the
// same event fails on the primary key and shows up as a projector failure.
type ledger struct {
	name string
	ddl  string
	// failAt makes Apply fail while the counter is positive at that position.
	failAt    int64
	failsLeft atomic.Int32
	// afterRow, when set, runs inside Apply after each event's row is written.
	afterRow func(ctx context.Context, tx *sql.Tx, e eventstore.Envelope)
}

func newLedger(name string) *ledger {
	return &ledger{name: name, ddl: `CREATE TABLE IF NOT EXISTS {{table}} (
		position BIGINT NOT NULL PRIMARY KEY,
		stream_id VARCHAR(255) NOT NULL,
		n INT NOT NULL
	) ENGINE = InnoDB`}
}

func (l *ledger) Name() string      { return l.name }
func (l *ledger) Handles() []string { return []string{ticked{}.EventType()} }
func (l *ledger) Tables() []projections.Table {
	return []projections.Table{{Name: l.name + "_rows", DDL: l.ddl}}
}
func (l *ledger) table(t projections.Tables) string { return t.Name(l.name + "_rows") }

func (l *ledger) Apply(ctx context.Context, tx *sql.Tx, t projections.Tables, events []eventstore.Envelope) error {
	for _, e := range events {
		if e.Position == l.failAt && l.failsLeft.Load() > 0 {
			// Write first, then fail: the savepoint must undo the write.
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+l.table(t)+` (position, stream_id, n) VALUES (?, ?, -1)`, e.Position, e.StreamID); err != nil {
				return err
			}
			l.failsLeft.Add(-1)
			return errors.New("injected failure")
		}
		var ev ticked
		if err := decode(e, &ev); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+l.table(t)+` (position, stream_id, n) VALUES (?, ?, ?)`, e.Position, e.StreamID, ev.N); err != nil {
			return err
		}
		if l.afterRow != nil {
			l.afterRow(ctx, tx, e)
		}
	}
	return nil
}

var registry = eventstore.NewRegistry(ticked{}, ignored{})

func decode(e eventstore.Envelope, into *ticked) error {
	ev, err := registry.Decode(e)
	if err != nil {
		return err
	}
	*into = ev.(ticked)
	return nil
}

type fixture struct {
	db    *sql.DB
	store *eventstore.Store
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	db := testdb.New(t)
	store := eventstore.New(db, registry, eventstore.Options{Logger: quiet()})
	t.Cleanup(func() { store.Close() })
	return &fixture{db: db, store: store}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (f *fixture) runtime(t *testing.T, ps ...projections.Projector) *projections.Runtime {
	t.Helper()
	r, err := projections.New(f.db, f.store, projections.Options{Logger: quiet(), Poll: 20 * time.Millisecond}, ps...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) start(t *testing.T, ps ...projections.Projector) *projections.Runtime {
	t.Helper()
	r := f.runtime(t, ps...)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func (f *fixture) tick(t testing.TB, stream string, n int) eventstore.Appended {
	t.Helper()
	res, err := f.store.Append(context.Background(), eventstore.Append{Streams: []eventstore.Stream{{
		ID: stream, Type: "tick", ExpectedVersion: eventstore.AnyVersion, Events: []domain.Event{ticked{N: n}, ignored{}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func waitFor(t *testing.T, r *projections.Runtime, position int64, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, position, names...); err != nil {
		t.Fatal(err)
	}
}

// dump returns the ledger's rows as "position:stream:n" in position order.
func dump(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query("SELECT position, stream_id, n FROM " + table + " ORDER BY position")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var pos int64
		var stream string
		var n int
		if err := rows.Scan(&pos, &stream, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%s:%d", pos, stream, n))
	}
	return out
}

func TestLiveProjectionAppliesEveryEventExactlyOnceUnderConcurrentAppends(t *testing.T) {
	f := newFixture(t)
	l := newLedger("ledger")
	r := f.start(t, l)

	const appenders, total = 32, 20_000
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	for range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > total {
					return
				}
				_, err := f.store.Append(context.Background(), eventstore.Append{Streams: []eventstore.Stream{{
					ID: fmt.Sprintf("tick-%d", rand.IntN(500)), Type: "tick", ExpectedVersion: eventstore.AnyVersion,
					Events: []domain.Event{ticked{N: int(n)}},
				}}})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	head, err := f.store.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if head != total {
		t.Fatalf("head = %d, want %d", head, total)
	}
	waitFor(t, r, head)

	var count, distinctN, sumPos int64
	if err := f.db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT n), SUM(position) FROM ledger_rows`).Scan(&count, &distinctN, &sumPos); err != nil {
		t.Fatal(err)
	}
	if count != total || distinctN != total || sumPos != total*(total+1)/2 {
		t.Fatalf("ledger has %d rows, %d distinct events, position sum %d; want %d, %d, %d", count, distinctN, sumPos, total, total, total*(total+1)/2)
	}
	statuses, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := statuses[0]; s.Status != "running" || s.Lag != 0 || s.Position != total || s.LastError != "" {
		t.Fatalf("status = %+v, want running at %d without lag or errors", s, total)
	}
}

func TestProjectorCatchesUpOnEventsAppendedWhileItWasDown(t *testing.T) {
	f := newFixture(t)
	first := f.start(t, newLedger("ledger"))
	res := f.tick(t, "tick-1", 1)
	waitFor(t, first, res.LastPosition)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	// Appended while no projector runs: the crash between append and projection.
	var last eventstore.Appended
	for i := 2; i <= 50; i++ {
		last = f.tick(t, fmt.Sprintf("tick-%d", i%7), i)
	}
	second := f.start(t, newLedger("ledger"))
	waitFor(t, second, last.LastPosition)
	rows := dump(t, f.db, "ledger_rows")
	if len(rows) != 50 {
		t.Fatalf("ledger has %d rows after restart, want 50: %v", len(rows), rows)
	}
}

func TestFailingEventHoldsTheProjectorUntilItSucceeds(t *testing.T) {
	f := newFixture(t)
	before := f.tick(t, "tick-a", 1) // positions 1 (ticked) and 2 (ignored)
	l := newLedger("ledger")
	l.failAt = before.LastPosition + 1 // the next ticked event
	// It fails until the test has seen it fail three times: a failure that lasted only three
	// attempts' backoff (some 300 ms) could pass unseen between two polls on a busy machine.
	const fails = math.MaxInt32
	l.failsLeft.Store(fails)
	r := f.start(t, l)
	waitFor(t, r, before.LastPosition)

	after := f.tick(t, "tick-b", 2)
	s := waitForStatus(t, r, "ledger", func(s projections.Status) bool {
		return s.Status == "failing" && l.failsLeft.Load() <= fails-3
	})
	if s.Position >= l.failAt || s.LastError == "" {
		t.Fatalf("a failing projector moved past the failing event or hides its error: %+v", s)
	}
	l.failsLeft.Store(0)
	waitFor(t, r, after.LastPosition)
	got := dump(t, f.db, "ledger_rows")
	want := []string{"1:tick-a:1", fmt.Sprintf("%d:tick-b:2", l.failAt)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ledger = %v, want %v (the failed attempts' writes must be rolled back)", got, want)
	}
	// WaitFor may return on the committed checkpoint (its poll for other processes) a moment before
	// this process marks the projector running: the status is awaited, not read once.
	waitForStatus(t, r, "ledger", func(s projections.Status) bool {
		return s.Status == "running" && s.Position >= after.LastPosition
	})
}

func TestWaitForGivesUpWhenTheContextEnds(t *testing.T) {
	f := newFixture(t)
	r := f.runtime(t, newLedger("ledger")) // never started: nothing applies
	if err := r.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := f.tick(t, "tick-1", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := r.WaitFor(ctx, res.LastPosition); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor = %v, want a deadline error", err)
	}
	if err := r.WaitFor(context.Background(), 1, "nope"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("WaitFor of an unknown projector = %v, want ErrNotFound", err)
	}
}

func TestRegistrationRejectsBadProjectors(t *testing.T) {
	f := newFixture(t)
	bad := newLedger("Bad-Name")
	if _, err := projections.New(f.db, f.store, projections.Options{}, bad); err == nil {
		t.Error("a projector name with capitals and dashes was accepted")
	}
	noPlaceholder := newLedger("ledger")
	noPlaceholder.ddl = "CREATE TABLE ledger_rows (id INT)"
	if _, err := projections.New(f.db, f.store, projections.Options{}, noPlaceholder); err == nil {
		t.Error("a table DDL without {{table}} was accepted")
	}
	if _, err := projections.New(f.db, f.store, projections.Options{}, newLedger("twice"), newLedger("twice")); err == nil {
		t.Error("two projectors with one name were accepted")
	}
}

// waitForStatus polls the runtime's status until the named projector's satisfies ok.
func waitForStatus(t *testing.T, r *projections.Runtime, name string, ok func(projections.Status) bool) projections.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		statuses, err := r.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range statuses {
			if s.Name == name && ok(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached the expected status: %+v", name, statuses)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCheckpointFailureUndoesTheBatchItFollows makes the checkpoint write fail after the read
// model's writes: none of them may stay, and the retry applies each event once. Were the read
// model committed before the checkpoint (say by a library that acks after it commits), the retry
// would write the rows a second time and the ledger's primary key would refuse them.
func TestCheckpointFailureUndoesTheBatchItFollows(t *testing.T) {
	f := newFixture(t)
	r := f.start(t, newLedger("ledger"))
	first := f.tick(t, "tick-1", 1)
	waitFor(t, r, first.LastPosition)
	for _, stmt := range []string{
		`CREATE TABLE crash_switch (armed BOOL NOT NULL)`,
		`INSERT INTO crash_switch VALUES (TRUE)`,
		`CREATE TRIGGER ledger_checkpoint_crash BEFORE UPDATE ON ledger_checkpoint FOR EACH ROW
		BEGIN
			IF (SELECT armed FROM crash_switch) THEN
				SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected crash before the checkpoint';
			END IF;
		END`,
	} {
		if _, err := f.db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	var last eventstore.Appended
	for i := 2; i <= 5; i++ {
		last = f.tick(t, fmt.Sprintf("tick-%d", i), i)
	}
	s := waitForStatus(t, r, "ledger", func(s projections.Status) bool { return s.Status == "failing" })
	if !strings.Contains(s.LastError, "injected crash") || s.Position != first.LastPosition {
		t.Fatalf("status = %+v, want failing on the injected crash at %d", s, first.LastPosition)
	}
	if rows := dump(t, f.db, "ledger_rows"); len(rows) != 1 {
		t.Fatalf("the batch whose checkpoint failed left rows behind: %v", rows)
	}
	if _, err := f.db.Exec(`UPDATE crash_switch SET armed = FALSE`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, last.LastPosition)
	if got, want := dump(t, f.db, "ledger_rows"), expectedLedger(t, f); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ledger = %v, want %v", got, want)
	}
	waitForStatus(t, r, "ledger", func(s projections.Status) bool { return s.Status == "running" })
}

// TestProcessKilledMidBatchIsTakenOverExactlyOnce kills the database connection of a process in the
// middle of a batch (rows of it written, checkpoint not yet): another process must apply the
// whole batch, once, and the first one, coming back, must find it applied.
func TestProcessKilledMidBatchIsTakenOverExactlyOnce(t *testing.T) {
	f := newFixture(t)
	var last eventstore.Appended
	for i := 1; i <= 50; i++ {
		last = f.tick(t, fmt.Sprintf("tick-%d", i%7), i)
	}
	middle := last.LastPosition / 2
	killed := make(chan int64, 1)
	release := make(chan struct{})
	var once sync.Once
	doomed := newLedger("ledger")
	doomed.afterRow = func(ctx context.Context, tx *sql.Tx, e eventstore.Envelope) {
		if e.Position < middle {
			return
		}
		once.Do(func() {
			var conn int64
			if err := tx.QueryRowContext(ctx, `SELECT CONNECTION_ID()`).Scan(&conn); err != nil {
				t.Error(err)
			}
			killed <- conn
			<-release
		})
	}
	first := f.start(t, doomed)
	var released sync.Once
	t.Cleanup(func() { released.Do(func() { close(release) }) }) // before Close, should the test fail early
	conn := <-killed

	// Another process: its own store, so it learns of the log only by polling the head.
	other := &fixture{db: f.db, store: eventstore.New(f.db, registry, eventstore.Options{Logger: quiet()})}
	t.Cleanup(func() { other.store.Close() })
	second := other.start(t, newLedger("ledger"))
	if _, err := f.db.Exec(fmt.Sprintf(`KILL CONNECTION %d`, conn)); err != nil {
		t.Fatal(err)
	}
	waitForStatus(t, second, "ledger", func(s projections.Status) bool { return s.Position == last.LastPosition })
	released.Do(func() { close(release) })
	waitFor(t, first, last.LastPosition)

	if got, want := dump(t, f.db, "ledger_rows"), expectedLedger(t, f); len(got) != 50 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ledger = %v, want %v", got, want)
	}
	for _, r := range []*projections.Runtime{first, second} {
		if s := waitForStatus(t, r, "ledger", func(projections.Status) bool { return true }); s.Status != "running" {
			t.Fatalf("status = %+v, want running", s)
		}
	}
}
