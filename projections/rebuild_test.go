package projections_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

// expectedLedger computes from the log what the ledger must contain.
func expectedLedger(t *testing.T, f *fixture) []string {
	t.Helper()
	var out []string
	for after := int64(0); ; {
		events, err := f.store.ReadAll(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 {
			return out
		}
		for _, e := range events {
			if e.EventType == (ticked{}).EventType() {
				var ev ticked
				if err := decode(e, &ev); err != nil {
					t.Fatal(err)
				}
				out = append(out, fmt.Sprintf("%d:%s:%d", e.Position, e.StreamID, ev.N))
			}
		}
		after = events[len(events)-1].Position
	}
}

func dumpStreams(t *testing.T, f *fixture) string {
	t.Helper()
	rows, err := f.db.Query(`SELECT stream_id, stream_type, version, last_position, created_at, updated_at FROM streams ORDER BY stream_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, typ string
		var version, last int64
		var created, updated time.Time
		if err := rows.Scan(&id, &typ, &version, &last, &created, &updated); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %d %d %s %s\n", id, typ, version, last, created.Format(time.RFC3339Nano), updated.Format(time.RFC3339Nano))
	}
	return b.String()
}

func TestRebuildSwapsInAnIdenticalModelWhileAppendsAndReadsGoOn(t *testing.T) {
	f := newFixture(t)
	r := f.start(t, newLedger("ledger"), projections.Streams{})
	var last eventstore.Appended
	for i := 1; i <= 300; i++ {
		last = f.tick(t, fmt.Sprintf("tick-%d", i%13), i)
	}
	waitFor(t, r, last.LastPosition)
	streamsBefore := dumpStreams(t, f)

	// While the rebuild runs, appends go on and readers must never see an empty or shrinking model.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var readerErr atomic.Value
	var appended atomic.Int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		seen := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int
			if err := f.db.QueryRow(`SELECT COUNT(*) FROM ledger_rows`).Scan(&n); err != nil {
				readerErr.Store(err)
				return
			}
			if n < seen || n < 300 {
				readerErr.Store(fmt.Errorf("reader saw %d rows after %d", n, seen))
				return
			}
			seen = n
		}
	}()
	go func() {
		defer wg.Done()
		for i := 1000; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			appended.Store(f.tick(t, "during-rebuild", i).LastPosition)
		}
	}()
	for _, name := range []string{"ledger", "streams"} {
		if err := r.Rebuild(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if err, _ := readerErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	if appended.Load() == 0 {
		t.Fatal("no append went through during the rebuild")
	}
	final := f.tick(t, "after-rebuild", 1)
	waitFor(t, r, final.LastPosition)

	if got, want := dump(t, f.db, "ledger_rows"), expectedLedger(t, f); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after rebuild the ledger has %d rows, the log says %d", len(got), len(want))
	}
	// The streams that no append touched during the rebuild are exactly as they were.
	streamsAfter := dumpStreams(t, f)
	for _, line := range strings.Split(strings.TrimSpace(streamsBefore), "\n") {
		if !strings.Contains(streamsAfter, line+"\n") {
			t.Fatalf("stream row %q changed or vanished in the rebuild:\n%s", line, streamsAfter)
		}
	}
	var leftovers int
	if err := f.db.QueryRow(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()
		AND (table_name LIKE '%\_rebuild' OR table_name LIKE '%\_old')`).Scan(&leftovers); err != nil {
		t.Fatal(err)
	}
	if leftovers != 0 {
		t.Fatalf("%d rebuild tables left behind", leftovers)
	}
}

func TestRebuiltStreamsEqualLiveStreams(t *testing.T) {
	f := newFixture(t)
	r := f.start(t, projections.Streams{})
	var last eventstore.Appended
	for i := 1; i <= 200; i++ {
		last = f.tick(t, fmt.Sprintf("tick-%d", i%17), i)
	}
	waitFor(t, r, last.LastPosition)
	live := dumpStreams(t, f)
	if err := r.Rebuild(context.Background(), "streams"); err != nil {
		t.Fatal(err)
	}
	if rebuilt := dumpStreams(t, f); rebuilt != live {
		t.Fatalf("rebuilt model differs from the live one:\nlive:\n%s\nrebuilt:\n%s", live, rebuilt)
	}
	if strings.Count(live, "\n") != 17 {
		t.Fatalf("streams has %d rows, want 17", strings.Count(live, "\n"))
	}
}

func TestOnlyOneRebuildOfAProjectorRunsAtATime(t *testing.T) {
	f := newFixture(t)
	r := f.runtime(t, newLedger("ledger"))
	if err := r.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A tenant account on the same server takes the name the rebuild lock once had (issue 10,
	// item 6): named locks are the server's, the rebuild's lock is not one of them.
	tenant, err := f.db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tenant.Close()
	if _, err := tenant.ExecContext(context.Background(), `DO GET_LOCK('clouddb.rebuild.ledger', 0)`); err != nil {
		t.Fatal(err)
	}
	if err := r.Rebuild(context.Background(), "ledger"); err != nil {
		t.Fatalf("Rebuild while a named lock of its old name is held = %v, want it to run", err)
	}
	// Another process's rebuild holds the lock: refused at once, before anything starts.
	other, err := f.db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback() //nolint:errcheck // ends the other rebuild
	var name string
	if err := other.QueryRow(`SELECT name FROM projection_rebuild_locks WHERE name = 'ledger' FOR UPDATE`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if err := r.Rebuild(context.Background(), "ledger"); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("Rebuild during another rebuild = %v, want ErrConflict", err)
	}
	if err := r.StartRebuild("ledger"); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("StartRebuild during another rebuild = %v, want ErrConflict (the API's 409)", err)
	}
	if err := r.Rebuild(context.Background(), "nope"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("Rebuild of an unknown projection = %v, want ErrNotFound", err)
	}
	if err := other.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := r.Rebuild(context.Background(), "ledger"); err != nil {
		t.Fatalf("Rebuild after the other one ended = %v", err)
	}
}

// A rebuild started in the background that fails says so in the projector's status, where the
// operator who started it looks.
func TestFailedBackgroundRebuildShowsItsError(t *testing.T) {
	f := newFixture(t)
	l := newLedger("ledger")
	r := f.start(t, l)
	last := f.tick(t, "tick-a", 1)
	waitFor(t, r, last.LastPosition)
	l.failAt = last.FirstPosition // the ticked event, which the live projector has applied: only the rebuild fails
	l.failsLeft.Store(1_000)
	if err := r.StartRebuild("ledger"); err != nil {
		t.Fatal(err)
	}
	s := waitForStatus(t, r, "ledger", func(s projections.Status) bool { return strings.Contains(s.LastError, "injected failure") })
	if !strings.Contains(s.LastError, "rebuild") || s.LastErrorAt == nil {
		t.Errorf("status after a failed rebuild = %+v, want its error and when", s)
	}
}

func TestChangedTableDefinitionRebuildsAtPrepare(t *testing.T) {
	f := newFixture(t)
	old := f.start(t, newLedger("ledger"))
	last := f.tick(t, "tick-1", 7)
	waitFor(t, old, last.LastPosition)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	changed := newLedger("ledger")
	changed.ddl = strings.Replace(changed.ddl, "n INT NOT NULL", "n INT NOT NULL, note VARCHAR(20) NULL", 1)
	r := f.runtime(t, changed)
	if err := r.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	var note *string
	var n int
	if err := f.db.QueryRow(`SELECT n, note FROM ledger_rows`).Scan(&n, &note); err != nil {
		t.Fatalf("the new column or the old row is missing after the rebuild: %v", err)
	}
	if n != 7 {
		t.Fatalf("n = %d, want 7", n)
	}
}
