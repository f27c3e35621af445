package results

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// resultClock is a settable clock for the result store.
type resultClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *resultClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *resultClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openTestResultStore(t *testing.T, opts StoreOptions) (*Store, *resultClock) {
	t.Helper()
	clock := &resultClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clock
}

var testResultCols = []Column{{Name: "n", Type: "INT"}, {Name: "s", Type: "VARCHAR"}}

// testResultRow is row i of test results; pad makes it longer.
func testResultRow(i int, pad int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`[%d,"row %d%s"]`, i, i, strings.Repeat("x", pad)))
}

func storeTestResult(t *testing.T, s *Store, id, owner string, rows, pad int) {
	t.Helper()
	w := s.Begin(id, "t", owner, testResultCols)
	for i := range rows {
		if err := w.Add(testResultRow(i, pad)); err != nil {
			t.Fatalf("add row %d of %s: %v", i, id, err)
		}
	}
	if err := w.Commit(false); err != nil {
		t.Fatal(err)
	}
}

// storeUsage is a snapshot of a store's accounting.
type storeUsage struct{ mem, disk budget }

func usage(s *Store) storeUsage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return storeUsage{mem: s.mem, disk: s.disk}
}

func spillFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "result-*.rows"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// checkPage checks that the page holds rows [offset, offset+n) of a test result.
func checkPage(t *testing.T, p Page, offset int64, n int, pad int) {
	t.Helper()
	if len(p.Rows) != n {
		t.Fatalf("page at %d: %d rows, want %d", offset, len(p.Rows), n)
	}
	for i, row := range p.Rows {
		if want := testResultRow(int(offset)+i, pad); string(row) != string(want) {
			t.Fatalf("page at %d, row %d: %s, want %s", offset, i, row, want)
		}
	}
}

func testResultPaging(t *testing.T, spill bool) {
	opts := StoreOptions{}
	if spill {
		opts.SpillAbove = 1 << 10
	}
	s, _ := openTestResultStore(t, opts)
	const total = 2000
	w := s.Begin("q1", "t", "u1", testResultCols)
	for i := range total {
		if err := w.Add(testResultRow(i, 3)); err != nil {
			t.Fatal(err)
		}
	}
	// Not visible before Commit.
	if _, err := s.Page("q1", "u1", 0, 10); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("uncommitted result: %v, want ErrNotFound", err)
	}
	if err := w.Commit(true); err != nil {
		t.Fatal(err)
	}
	if got := len(spillFiles(t, s.dir)); got != map[bool]int{false: 0, true: 1}[spill] {
		t.Fatalf("%d spill files (spill=%v)", got, spill)
	}
	for _, tc := range []struct {
		offset, limit int64
		n             int
	}{
		{0, 10, 10}, {0, 1, 1}, {1, 255, 255}, {255, 2, 2}, {256, 256, 256}, {257, 600, 600},
		{511, 3, 3}, {1990, 100, 10}, {1999, 1, 1}, {2000, 5, 0}, {5000, 5, 0}, {0, total, total},
	} {
		p, err := s.Page("q1", "u1", tc.offset, tc.limit)
		if err != nil {
			t.Fatalf("page %d+%d: %v", tc.offset, tc.limit, err)
		}
		checkPage(t, p, tc.offset, tc.n, 3)
		if p.Total != total || !p.Truncated || p.Offset != tc.offset || p.Limit != tc.limit || len(p.Columns) != 2 {
			t.Fatalf("page %d+%d: %+v", tc.offset, tc.limit, p)
		}
	}
	p, err := s.Page("q1", "u1", 0, 1_000_000)
	if err != nil || p.Limit != resultMaxPageRows || len(p.Rows) != total {
		t.Fatalf("huge limit: limit %d, %d rows, %v", p.Limit, len(p.Rows), err)
	}
	if p, _ := s.Page("q1", "u1", total, 1); p.Rows == nil {
		t.Error("past the end: rows must be [] not null")
	}
	var verr *domain.ValidationError
	if _, err := s.Page("q1", "u1", -1, 10); !errors.As(err, &verr) || verr.Fields["offset"] == "" {
		t.Errorf("negative offset: %v", err)
	}
	if _, err := s.Page("q1", "u1", 0, 0); !errors.As(err, &verr) || verr.Fields["limit"] == "" {
		t.Errorf("zero limit: %v", err)
	}
}

func TestResultPagingInMemory(t *testing.T) { testResultPaging(t, false) }
func TestResultPagingSpilled(t *testing.T)  { testResultPaging(t, true) }

func TestResultSpilledPageSeeks(t *testing.T) {
	s, _ := openTestResultStore(t, StoreOptions{SpillAbove: 1})
	storeTestResult(t, s, "q", "u", 5000, 10)
	files := spillFiles(t, s.dir)
	if len(files) != 1 {
		t.Fatalf("%d spill files", len(files))
	}
	// Spoil the first block of rows: a page far from it must not read it.
	f, err := os.OpenFile(files[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xff", 300)), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p, err := s.Page("q", "u", 4000, 300)
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, p, 4000, 300, 10)
	if _, err := s.Page("q", "u", 0, 1); err == nil {
		t.Fatal("reading the spoilt block should fail")
	}
}

func TestResultOwnerIsolation(t *testing.T) {
	s, clock := openTestResultStore(t, StoreOptions{})
	storeTestResult(t, s, "q1", "alice", 3, 0)
	noop := func([]Column, json.RawMessage) error { return nil }
	for _, tc := range []struct{ id, owner string }{{"q1", "bob"}, {"q1", ""}, {"nope", "alice"}} {
		if _, err := s.Page(tc.id, tc.owner, 0, 10); !errors.Is(err, domain.ErrNotFound) || errors.Is(err, ErrExpired) {
			t.Errorf("Page(%s, %s): %v, want ErrNotFound", tc.id, tc.owner, err)
		}
		if err := s.Rows(context.Background(), tc.id, tc.owner, noop); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Rows(%s, %s): %v, want ErrNotFound", tc.id, tc.owner, err)
		}
	}
	if _, err := s.Page("q1", "alice", 0, 10); err != nil {
		t.Fatal(err)
	}
	// Once expired, the owner learns it expired; anyone else still sees nothing.
	clock.Advance(16 * time.Minute)
	if _, err := s.Page("q1", "alice", 0, 10); !errors.Is(err, ErrExpired) {
		t.Errorf("owner after expiry: %v", err)
	}
	if _, err := s.Page("q1", "bob", 0, 10); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("other after expiry: %v", err)
	}
}

func TestResultExpiry(t *testing.T) {
	s, clock := openTestResultStore(t, StoreOptions{SpillAbove: 100, TTL: 10 * time.Minute})
	storeTestResult(t, s, "mem", "u", 2, 0)
	storeTestResult(t, s, "disk", "u", 100, 10)
	if n := len(spillFiles(t, s.dir)); n != 1 {
		t.Fatalf("%d spill files", n)
	}
	clock.Advance(9*time.Minute + 59*time.Second)
	for _, id := range []string{"mem", "disk"} {
		if _, err := s.Page(id, "u", 0, 1); err != nil {
			t.Fatalf("%s before TTL: %v", id, err)
		}
	}
	storeTestResult(t, s, "later", "u", 2, 0)
	clock.Advance(time.Second)
	for _, id := range []string{"mem", "disk"} {
		if _, err := s.Page(id, "u", 0, 1); !errors.Is(err, ErrExpired) {
			t.Fatalf("%s at TTL: %v, want ErrExpired", id, err)
		}
		if err := s.Rows(context.Background(), id, "u", func([]Column, json.RawMessage) error { return nil }); !errors.Is(err, ErrExpired) {
			t.Fatalf("Rows %s at TTL: %v", id, err)
		}
	}
	if n := len(spillFiles(t, s.dir)); n != 0 {
		t.Fatalf("%d spill files after expiry", n)
	}
	if _, err := s.Page("later", "u", 0, 1); err != nil {
		t.Fatalf("later result: %v", err)
	}
	// Expired ids are remembered for a TTL, then forgotten.
	clock.Advance(9 * time.Minute)
	if _, err := s.Page("mem", "u", 0, 1); !errors.Is(err, ErrExpired) {
		t.Fatalf("tombstone: %v", err)
	}
	clock.Advance(2 * time.Minute)
	if _, err := s.Page("mem", "u", 0, 1); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("forgotten: %v", err)
	}
	// A second commit under the same id replaces the result and forgets the tombstone.
	storeTestResult(t, s, "mem", "u", 5, 0)
	if p, err := s.Page("mem", "u", 0, 10); err != nil || p.Total != 5 {
		t.Fatalf("re-committed: %+v %v", p, err)
	}
}

func TestResultJanitorRemovesFiles(t *testing.T) {
	// The janitor runs every second when the TTL is short; the clock is real here.
	s, err := Open(StoreOptions{Dir: t.TempDir(), SpillAbove: 1, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storeTestResult(t, s, "q", "u", 10, 0)
	if n := len(spillFiles(t, s.dir)); n != 1 {
		t.Fatalf("%d spill files", n)
	}
	// The file goes within about two seconds; a minute leaves a loaded machine room to spare.
	deadline := time.Now().Add(time.Minute)
	for len(spillFiles(t, s.dir)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the janitor did not remove the expired spill file")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestResultMemoryBudget(t *testing.T) {
	// Rows are 24+~110 bytes: 30 rows ≈ 4 KiB per result, 10 KiB hold two.
	s, _ := openTestResultStore(t, StoreOptions{MemoryBudget: 10 << 10, SpillAbove: 8 << 10})
	for _, id := range []string{"a", "b", "c"} {
		storeTestResult(t, s, id, "u", 30, 100)
	}
	if _, err := s.Page("a", "u", 0, 1); !errors.Is(err, ErrExpired) {
		t.Fatalf("oldest result: %v, want ErrExpired (evicted)", err)
	}
	for _, id := range []string{"b", "c"} {
		p, err := s.Page(id, "u", 0, 100)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		checkPage(t, p, 0, 30, 100)
	}
	if n := len(spillFiles(t, s.dir)); n != 0 {
		t.Fatalf("%d spill files", n)
	}
	used := usage(s).mem.used
	if used > 10<<10 {
		t.Fatalf("memory used %d over the budget", used)
	}
	// A newer result evicts as many of the oldest as it needs: "d" (40 rows) makes "b" go.
	storeTestResult(t, s, "d", "u", 40, 100)
	if _, err := s.Page("b", "u", 0, 1); !errors.Is(err, ErrExpired) {
		t.Fatalf("b: %v, want ErrExpired (evicted)", err)
	}
	for _, id := range []string{"c", "d"} {
		if _, err := s.Page(id, "u", 0, 1); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}

	// A result bigger than the whole memory budget ends up in a file (having evicted the older
	// ones to make room while it could still fit).
	s2, _ := openTestResultStore(t, StoreOptions{MemoryBudget: 4 << 10, SpillAbove: 1 << 20})
	storeTestResult(t, s2, "x", "u", 10, 100)
	storeTestResult(t, s2, "y", "u", 40, 100)
	if n := len(spillFiles(t, s2.dir)); n != 1 {
		t.Fatalf("%d spill files, want 1", n)
	}
	p, err := s2.Page("y", "u", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, p, 0, 40, 100)
	if _, err := s2.Page("x", "u", 0, 1); !errors.Is(err, ErrExpired) {
		t.Fatalf("x: %v, want ErrExpired (evicted)", err)
	}
	mem := usage(s2).mem.used
	if mem != 0 {
		t.Fatalf("memory used %d, want 0", mem)
	}
}

func TestResultDiskBudget(t *testing.T) {
	// Each result: 200 rows of ~120 bytes ≈ 24 KiB on disk; 64 KiB hold two.
	s, _ := openTestResultStore(t, StoreOptions{SpillAbove: 1 << 10, DiskBudget: 64 << 10})
	for _, id := range []string{"a", "b", "c"} {
		storeTestResult(t, s, id, "u", 200, 100)
	}
	if _, err := s.Page("a", "u", 0, 1); !errors.Is(err, ErrExpired) {
		t.Fatalf("oldest result: %v, want ErrExpired (evicted)", err)
	}
	for _, id := range []string{"b", "c"} {
		p, err := s.Page(id, "u", 150, 50)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		checkPage(t, p, 150, 50, 100)
	}
	if n := len(spillFiles(t, s.dir)); n != 2 {
		t.Fatalf("%d spill files, want 2", n)
	}
	var size int64
	for _, f := range spillFiles(t, s.dir) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	disk := usage(s).disk
	used, kept := disk.used, disk.kept
	if used != size || kept != size || size > 64<<10 {
		t.Fatalf("disk used %d, kept %d, files %d", used, kept, size)
	}

	// A result bigger than the whole budget fails once it is (having evicted the older ones to
	// make room while it could still fit) and leaves nothing behind.
	w := s.Begin("huge", "t", "u", testResultCols)
	var err error
	for i := 0; err == nil && i < 10000; i++ {
		err = w.Add(testResultRow(i, 100))
	}
	if !errors.Is(err, ErrNoRoom) {
		t.Fatalf("huge result: %v", err)
	}
	if err := w.Add(testResultRow(0, 0)); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("dead writer: %v", err)
	}
	if err := w.Commit(false); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("commit of a dead writer: %v", err)
	}
	w.Abort()
	if _, err := s.Page("huge", "u", 0, 1); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("huge: %v", err)
	}
	if n := len(spillFiles(t, s.dir)); n != 0 {
		t.Fatalf("%d spill files, want 0", n)
	}
	used = usage(s).disk.used
	if used != 0 {
		t.Fatalf("disk used %d after the failed result, want 0", used)
	}
	// The store works on.
	storeTestResult(t, s, "after", "u", 200, 100)
	if _, err := s.Page("after", "u", 199, 1); err != nil {
		t.Fatal(err)
	}
}

func TestResultRowsStreamsSpilled(t *testing.T) {
	s, _ := openTestResultStore(t, StoreOptions{SpillAbove: 1 << 20, MemoryBudget: 4 << 20})
	const total = 100_000
	storeTestResult(t, s, "big", "u", total, 20)
	if n := len(spillFiles(t, s.dir)); n != 1 {
		t.Fatalf("%d spill files", n)
	}
	mem := usage(s).mem.used
	if mem != 0 {
		t.Fatalf("memory used by a spilled result: %d", mem)
	}
	next := 0
	err := s.Rows(context.Background(), "big", "u", func(cols []Column, row json.RawMessage) error {
		if len(cols) != 2 {
			return fmt.Errorf("%d columns", len(cols))
		}
		if want := testResultRow(next, 20); string(row) != string(want) {
			return fmt.Errorf("row %d: %s, want %s", next, row, want)
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != total {
		t.Fatalf("%d rows, want %d", next, total)
	}
	// fn's error stops the walk and comes back; so does a cancelled context.
	stop := errors.New("stop")
	n := 0
	if err := s.Rows(context.Background(), "big", "u", func([]Column, json.RawMessage) error {
		if n++; n == 10 {
			return stop
		}
		return nil
	}); !errors.Is(err, stop) || n != 10 {
		t.Fatalf("stop: %v after %d rows", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	if err := s.Rows(ctx, "big", "u", func([]Column, json.RawMessage) error {
		if n++; n == 1000 {
			cancel()
		}
		return nil
	}); !errors.Is(err, context.Canceled) || n > 1000+resultIndexEvery {
		t.Fatalf("cancel: %v after %d rows", err, n)
	}
}

func TestResultRowsKeepsFileWhileReading(t *testing.T) {
	s, clock := openTestResultStore(t, StoreOptions{SpillAbove: 1})
	storeTestResult(t, s, "q", "u", 1000, 0)
	n := 0
	err := s.Rows(context.Background(), "q", "u", func(_ []Column, row json.RawMessage) error {
		if n == 0 {
			clock.Advance(time.Hour)
			if _, err := s.Page("q", "u", 0, 1); !errors.Is(err, ErrExpired) {
				return fmt.Errorf("page during the read: %v", err)
			}
			if len(spillFiles(t, s.dir)) != 1 {
				return errors.New("the file was removed during the read")
			}
		}
		if want := testResultRow(n, 0); string(row) != string(want) {
			return fmt.Errorf("row %d: %s", n, row)
		}
		n++
		return nil
	})
	if err != nil || n != 1000 {
		t.Fatalf("%v after %d rows", err, n)
	}
	if len(spillFiles(t, s.dir)) != 0 {
		t.Fatal("the file of the expired result outlived the read")
	}
}

func TestResultAbort(t *testing.T) {
	s, _ := openTestResultStore(t, StoreOptions{SpillAbove: 1 << 10})
	for _, rows := range []int{5, 500} { // in memory, spilled
		w := s.Begin("q", "t", "u", testResultCols)
		for i := range rows {
			if err := w.Add(testResultRow(i, 10)); err != nil {
				t.Fatal(err)
			}
		}
		w.Abort()
		w.Abort()
		if err := w.Commit(false); err == nil {
			t.Fatal("commit after abort")
		}
		if err := w.Add(testResultRow(0, 0)); err == nil {
			t.Fatal("add after abort")
		}
		if _, err := s.Page("q", "u", 0, 1); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("aborted result: %v", err)
		}
		if n := len(spillFiles(t, s.dir)); n != 0 {
			t.Fatalf("%d spill files after abort", n)
		}
		mem, disk := usage(s).mem.used, usage(s).disk.used
		if mem != 0 || disk != 0 {
			t.Fatalf("after abort: memory %d, disk %d", mem, disk)
		}
	}
	// Abort after Commit is a no-op.
	w := s.Begin("kept", "t", "u", testResultCols)
	w.Add(testResultRow(0, 0))
	if err := w.Commit(false); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if p, err := s.Page("kept", "u", 0, 1); err != nil || len(p.Rows) != 1 {
		t.Fatalf("abort after commit: %v", err)
	}
	if err := w.Commit(false); err == nil {
		t.Fatal("second commit")
	}
	// An empty result is a result.
	w = s.Begin("empty", "t", "u", testResultCols)
	if err := w.Commit(false); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Page("empty", "u", 0, 10); err != nil || p.Total != 0 || p.Rows == nil {
		t.Fatalf("empty: %+v, %v", p, err)
	}
}

func TestResultOpenAndClose(t *testing.T) {
	dir := t.TempDir()
	leftover := filepath.Join(dir, "result-123.rows")
	other := filepath.Join(dir, "notes.txt")
	for _, f := range []string{leftover, other} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(StoreOptions{Dir: dir, SpillAbove: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover spill file: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("an unrelated file was touched: %v", err)
	}
	storeTestResult(t, s, "a", "u", 10, 0)
	storeTestResult(t, s, "b", "u", 10, 0)
	pending := s.Begin("c", "t", "u", testResultCols)
	if err := pending.Add(testResultRow(0, 0)); err != nil {
		t.Fatal(err)
	}
	if n := len(spillFiles(t, dir)); n != 3 {
		t.Fatalf("%d spill files", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(spillFiles(t, dir)); n != 1 {
		t.Fatalf("%d spill files after Close, want the one still being written", n)
	}
	if err := pending.Add(testResultRow(1, 0)); !errors.Is(err, errResultStoreClosed) {
		t.Fatalf("add after close: %v", err)
	}
	if n := len(spillFiles(t, dir)); n != 0 {
		t.Fatalf("%d spill files after the writer noticed the close", n)
	}
	if _, err := s.Page("a", "u", 0, 1); err == nil {
		t.Fatal("page after close")
	}

	// Without a Dir the store makes its own directory and removes it on Close.
	s2, err := Open(StoreOptions{SpillAbove: 1})
	if err != nil {
		t.Fatal(err)
	}
	storeTestResult(t, s2, "a", "u", 10, 0)
	own := s2.dir
	s2.Close()
	if _, err := os.Stat(own); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("own directory after Close: %v", err)
	}
}

func TestResultConcurrent(t *testing.T) {
	s, clock := openTestResultStore(t, StoreOptions{MemoryBudget: 64 << 10, SpillAbove: 4 << 10, DiskBudget: 256 << 10})
	const workers, perWorker = 8, 30
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("u%d", g)
			for k := range perWorker {
				id := fmt.Sprintf("%s-q%d", owner, k)
				rows := (k % 5) * 40 // 0 … 160 rows, some spill
				w := s.Begin(id, "t", owner, testResultCols)
				for i := range rows {
					if err := w.Add(testResultRow(i, 20)); err != nil {
						errs <- err
						return
					}
				}
				if k%7 == 3 {
					w.Abort()
					continue
				}
				if err := w.Commit(false); err != nil {
					errs <- err
					return
				}
				if k%10 == 0 {
					clock.Advance(time.Minute)
				}
				// Read back this and an earlier result: each is there, or evicted/expired.
				for _, j := range []int{k, k / 2} {
					qid := fmt.Sprintf("%s-q%d", owner, j)
					p, err := s.Page(qid, owner, 0, 50)
					switch {
					case errors.Is(err, ErrExpired), j%7 == 3 && errors.Is(err, domain.ErrNotFound):
						continue
					case err != nil:
						errs <- fmt.Errorf("page %s: %w", qid, err)
						return
					}
					for i, row := range p.Rows {
						if string(row) != string(testResultRow(i, 20)) {
							errs <- fmt.Errorf("%s row %d: %s", qid, i, row)
							return
						}
					}
					n := 0
					err = s.Rows(context.Background(), qid, owner, func(_ []Column, row json.RawMessage) error {
						if string(row) != string(testResultRow(n, 20)) {
							return fmt.Errorf("%s row %d: %s", qid, n, row)
						}
						n++
						return nil
					})
					if err != nil && !errors.Is(err, ErrExpired) {
						errs <- err
						return
					}
					if _, err := s.Page(qid, "intruder", 0, 1); !errors.Is(err, domain.ErrNotFound) {
						errs <- fmt.Errorf("intruder on %s: %v", qid, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	u := usage(s)
	mem, disk, memKept, diskKept := u.mem.used, u.disk.used, u.mem.kept, u.disk.kept
	if mem != memKept || disk != diskKept || mem > 64<<10 || disk > 256<<10 {
		t.Fatalf("accounting: memory %d (kept %d), disk %d (kept %d)", mem, memKept, disk, diskKept)
	}
	s.Close()
	if n := len(spillFiles(t, s.dir)); n != 0 {
		t.Fatalf("%d spill files after Close", n)
	}
}

// storeTenantResult stores a result of rows rows padded by pad for owner "u" of tenant.
func storeTenantResult(t *testing.T, s *Store, id, tenant string, rows, pad int) {
	t.Helper()
	w := s.Begin(id, tenant, "u", testResultCols)
	for i := range rows {
		if err := w.Add(testResultRow(i, pad)); err != nil {
			t.Fatalf("add row %d of %s: %v", i, id, err)
		}
	}
	if err := w.Commit(false); err != nil {
		t.Fatal(err)
	}
}

// spillDirSize is the bytes of the spill files in dir.
func spillDirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var size int64
	for _, f := range spillFiles(t, dir) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	return size
}

// One tenant's many big results evict its own older ones, not the other tenants' (issue 10: 90
// big queries of one tenant made every other tenant's next page 410), on disk and in memory.
func TestResultFairShareAmongTenants(t *testing.T) {
	// Disk: ~24 KiB per result of "big", ~6 KiB for "small"; 64 KiB in all.
	s, _ := openTestResultStore(t, StoreOptions{SpillAbove: 1 << 10, DiskBudget: 64 << 10})
	storeTenantResult(t, s, "small", "quiet", 50, 100)
	for i := range 20 {
		storeTenantResult(t, s, fmt.Sprintf("big-%d", i), "noisy", 200, 100)
	}
	if _, err := s.Page("small", "u", 0, 1); err != nil {
		t.Fatalf("the quiet tenant's result after 20 big results of another: %v", err)
	}
	if _, err := s.Page("big-19", "u", 0, 1); err != nil {
		t.Fatalf("the newest big result: %v", err)
	}
	if _, err := s.Page("big-0", "u", 0, 1); !errors.Is(err, ErrExpired) {
		t.Fatalf("the oldest big result: %v, want ErrExpired (evicted within its tenant)", err)
	}
	if size := spillDirSize(t, s.dir); size > 64<<10 {
		t.Fatalf("spill files hold %d bytes, over the 64 KiB budget", size)
	}

	// A tenant within its share may take room from one over its share: "quiet" stores two more.
	storeTenantResult(t, s, "small-2", "quiet", 200, 100)
	for _, id := range []string{"small", "small-2", "big-19"} {
		if _, err := s.Page(id, "u", 0, 1); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}

	// Memory: rows of ~130 bytes, 30 per result ≈ 4 KiB; 12 KiB in all, nothing spills early.
	m, _ := openTestResultStore(t, StoreOptions{MemoryBudget: 12 << 10, SpillAbove: 8 << 10})
	storeTenantResult(t, m, "small", "quiet", 10, 100)
	for i := range 10 {
		storeTenantResult(t, m, fmt.Sprintf("big-%d", i), "noisy", 30, 100)
	}
	if _, err := m.Page("small", "u", 0, 1); err != nil {
		t.Fatalf("the quiet tenant's result in memory after 10 results of another: %v", err)
	}
	if got := usage(m).mem.used; got > 12<<10 {
		t.Fatalf("memory used %d, over the budget", got)
	}
}

// An evicted result that a reader still holds (a stalled export) counts against the disk budget
// until the read ends: three of them took the spill directory to twice its budget (issue 10).
func TestResultPinnedFilesCountAgainstTheBudget(t *testing.T) {
	s, _ := openTestResultStore(t, StoreOptions{SpillAbove: 1 << 10, DiskBudget: 64 << 10})
	storeTenantResult(t, s, "read", "t", 200, 100)
	rows := 0
	err := s.Rows(context.Background(), "read", "u", func([]Column, json.RawMessage) error {
		if rows++; rows > 1 {
			return nil
		}
		for i := range 6 { // while the export stalls, more results come and evict it
			storeTenantResult(t, s, fmt.Sprintf("next-%d", i), "t", 200, 100)
			if size := spillDirSize(t, s.dir); size > 64<<10 {
				return fmt.Errorf("after %d more results the spill files hold %d bytes, over the 64 KiB budget", i+1, size)
			}
		}
		if _, err := s.Page("read", "u", 0, 1); !errors.Is(err, ErrExpired) {
			return fmt.Errorf("the result being read: %v, want ErrExpired (evicted)", err)
		}
		return nil
	})
	if err != nil || rows != 200 {
		t.Fatalf("%v after %d rows", err, rows)
	}
	disk := usage(s).disk
	if size := spillDirSize(t, s.dir); disk.used != size || disk.kept != size {
		t.Fatalf("after the read: disk used %d, kept %d, files %d", disk.used, disk.kept, size)
	}
}

// A page stops before its rows pass 8 MiB, with at least one row, so that GET /results of a
// result of big rows answers a bounded page (limit 10,000 of 8 MiB rows was 80 GB).
func TestResultPageBytesAreBounded(t *testing.T) {
	for _, spill := range []bool{false, true} {
		opts := StoreOptions{MemoryBudget: 64 << 20, SpillAbove: 32 << 20}
		if spill {
			opts.SpillAbove = 1
		}
		s, _ := openTestResultStore(t, opts)
		storeTenantResult(t, s, "big", "t", 3, 5<<20)
		p, err := s.Page("big", "u", 0, 10)
		if err != nil || len(p.Rows) != 1 {
			t.Fatalf("spill=%v: page of 5 MiB rows: %d rows, %v; want 1", spill, len(p.Rows), err)
		}
		if p, err := s.Page("big", "u", 2, 10); err != nil || len(p.Rows) != 1 || string(p.Rows[0]) != string(testResultRow(2, 5<<20)) {
			t.Fatalf("spill=%v: last row: %d rows, %v", spill, len(p.Rows), err)
		}
	}
}
