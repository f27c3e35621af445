package results

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// ErrExpired: the result was evicted or is past its TTL (the API answers 410 expired).
var ErrExpired = errors.New("queryexec: result expired")

// ErrNoRoom: the result does not fit in what the disk budget leaves the tenant now (its fair share,
// less its results being written and the evicted ones still being read). Nothing is kept.
var ErrNoRoom = errors.New("queryexec: the result store has no room for this result now")

var (
	errResultStoreClosed = errors.New("queryexec: result store closed")
	errResultWriterDone  = errors.New("queryexec: result already committed or aborted")
)

// Defaults and limits of the result store.
const (
	defaultResultMemoryBudget = 64 << 20
	defaultResultSpillAbove   = 1 << 20
	defaultResultDiskBudget   = 2 << 30
	defaultResultTTL          = 15 * time.Minute

	// resultRowOverhead is what a row kept in memory costs beyond its bytes (its slice header in
	// the rows slice); memory accounting and SpillAbove count len(row)+resultRowOverhead.
	resultRowOverhead = 24
	// resultIndexEvery: a spilled result remembers the file offset of every 256th row.
	resultIndexEvery = 256
	// resultMaxPageRows caps the limit of one Page (a page is read into memory), and
	// resultMaxPageBytes its rows' bytes (a page has at least one row).
	resultMaxPageRows  = 10000
	resultMaxPageBytes = 8 << 20
	// resultMaxTombstones bounds the memory of expired ids.
	resultMaxTombstones = 100000
	// resultDiskChunk is how much disk budget a writer reserves at a time (less for tiny budgets).
	resultDiskChunk = 256 << 10
	// resultFilePrefix and resultFileSuffix name spill files; Open removes leftovers
	// with exactly this shape and nothing else from the directory.
	resultFilePrefix = "result-"
	resultFileSuffix = ".rows"
)

// StoreOptions configures Open. Zero values mean the defaults.
type StoreOptions struct {
	Dir          string           // spill directory (created; files are removed on expiry and on Close; leftover files from a previous run are removed at open); empty: a new temporary directory, removed on Close
	MemoryBudget int64            // bytes of rows kept in memory across all results (default 64 MiB)
	SpillAbove   int64            // a result whose rows exceed this many bytes goes to a file (default 1 MiB)
	DiskBudget   int64            // bytes of spilled files (default 2 GiB); results are evicted to make room, each tenant's share first
	TTL          time.Duration    // default 15 minutes
	Now          func() time.Time // default time.Now
	Log          *slog.Logger
}

// Store keeps the results of queries so their owner can page through them and export them
// for a TTL after they were committed (not extended by reads).
//
// Rows are counted as len(row)+24 bytes. A result stays in memory until its rows exceed
// SpillAbove; from then on it is written to a spill file in Dir (each row as a uvarint length and
// the bytes, with the offset of every 256th row kept in memory so a page is one seek and a short
// read). Results being written count against the budgets too, and so do evicted results that a
// reader (Rows: an export, an archive) still holds, until it lets go: the spill directory never
// holds more than the disk budget.
//
// Each budget is shared fairly among the tenants that hold something in it: when it is full, a
// tenant's share is the budget divided by the number of such tenants. A tenant that needs room
// while it holds more than its share evicts its own oldest committed results; one within its
// share evicts the oldest results of the tenants over theirs; nobody evicts the results of a
// tenant within its share. When that is not enough, a writer short of memory spills early, and
// one short of disk fails with ErrNoRoom. A budget that is not full is anyone's to use.
//
// Expiry is checked lazily on every call (a sweep from the oldest result, which is cheap since
// results are kept in commit order) and by one janitor goroutine (every minute, or TTL/2 when
// shorter) so that spill files of an idle store do not outlive their TTL by much. Close stops it.
//
// Evicted and expired ids are remembered, with their owner, for a TTL (at most 100,000 of them)
// so that Page and Rows can answer ErrExpired instead of ErrNotFound.
//
// One store per directory: a second store on the same Dir would delete the first one's files.
// A Store is safe for concurrent use; a Writer is used by one goroutine.
type Store struct {
	dir        string
	ownDir     bool
	spillAbove int64
	diskChunk  int64
	ttl        time.Duration
	now        func() time.Time
	log        *slog.Logger

	stop    chan struct{}
	stopped chan struct{}
	shut    atomic.Bool // closed, for writers that do not take the lock on every row

	mu        sync.Mutex
	closed    bool
	byID      map[string]*storedResult
	oldest    *storedResult // commit order, oldest first
	newest    *storedResult
	mem       budget // in-memory rows
	disk      budget // spill files (reservations of the writers)
	tombs     map[string]resultTomb
	tombQueue []resultTombEntry // oldest first, from tombHead
	tombHead  int
	doomed    []string // spill files to remove once the lock is released
}

// budget accounts one resource of the store (memory or disk), in total and per tenant.
type budget struct {
	limit   int64
	used    int64            // committed, being written, and evicted but still read (pinned)
	kept    int64            // committed: the part of used eviction can free
	tenants map[string]int64 // used per tenant; no entry at 0
}

func newBudget(limit int64) budget { return budget{limit: limit, tenants: map[string]int64{}} }

// add counts n more (or, negative, fewer) bytes of tenant.
func (b *budget) add(tenant string, n int64) {
	b.used += n
	if v := b.tenants[tenant] + n; v != 0 {
		b.tenants[tenant] = v
	} else {
		delete(b.tenants, tenant)
	}
}

// share is what each tenant holding something in b may hold of it when it is full.
func (b *budget) share() int64 { return b.limit / int64(max(len(b.tenants), 1)) }

// over reports whether tenant holds more than its share.
func (b *budget) over(tenant string) bool { return b.tenants[tenant] > b.share() }

// storedResult is one committed result.
type storedResult struct {
	id, tenant, owner string
	cols              []Column
	truncated         bool
	total             int64
	expires           time.Time
	rows              []json.RawMessage // in memory (path == "")
	size              int64             // of the rows in memory, or of the spill file
	path              string            // spill file
	index             []int64           // index[k]: offset of row k*resultIndexEvery
	refs              int               // readers (Rows, and Page of a spilled result)
	gone              bool              // evicted; its bytes are freed when refs drops to 0
	prev, next        *storedResult
}

// spilled reports whether r is kept in a file.
func (r *storedResult) spilled() bool { return r.path != "" }

type resultTomb struct {
	owner string
	until time.Time
}

type resultTombEntry struct {
	id    string
	until time.Time
}

// Open creates (or cleans) the spill directory and returns an empty store.
func Open(opts StoreOptions) (*Store, error) {
	if opts.MemoryBudget < 0 || opts.SpillAbove < 0 || opts.DiskBudget < 0 || opts.TTL < 0 {
		return nil, errors.New("queryexec: result store options must not be negative")
	}
	s := &Store{
		dir:        opts.Dir,
		spillAbove: opts.SpillAbove,
		ttl:        opts.TTL,
		now:        opts.Now,
		log:        opts.Log,
		byID:       map[string]*storedResult{},
		tombs:      map[string]resultTomb{},
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	if opts.MemoryBudget == 0 {
		opts.MemoryBudget = defaultResultMemoryBudget
	}
	if s.spillAbove == 0 {
		s.spillAbove = defaultResultSpillAbove
	}
	if opts.DiskBudget == 0 {
		opts.DiskBudget = defaultResultDiskBudget
	}
	s.mem, s.disk = newBudget(opts.MemoryBudget), newBudget(opts.DiskBudget)
	s.diskChunk = min(resultDiskChunk, max(opts.DiskBudget/64, 1))
	if s.ttl == 0 {
		s.ttl = defaultResultTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.dir == "" {
		dir, err := os.MkdirTemp("", "clouddb-results-")
		if err != nil {
			return nil, fmt.Errorf("queryexec: result store directory: %w", err)
		}
		s.dir, s.ownDir = dir, true
	} else {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, fmt.Errorf("queryexec: result store directory: %w", err)
		}
		entries, err := os.ReadDir(s.dir)
		if err != nil {
			return nil, fmt.Errorf("queryexec: result store directory: %w", err)
		}
		for _, e := range entries {
			if name := e.Name(); e.Type().IsRegular() && strings.HasPrefix(name, resultFilePrefix) && strings.HasSuffix(name, resultFileSuffix) {
				if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
					s.log.Warn("result store: remove leftover spill file", "file", name, "err", err)
				}
			}
		}
	}
	go s.janitor(min(time.Minute, max(s.ttl/2, time.Second)))
	return s, nil
}

// janitor expires results every interval until Close.
func (s *Store) janitor(interval time.Duration) {
	defer close(s.stopped)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			s.sweepLocked(s.now())
			s.unlock()
		}
	}
}

// Close evicts every result and removes the spill files (a file still being read is removed
// when that read ends; a writer that has not committed or aborted removes its own file
// on its next call). Later calls fail; Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.shut.Store(true)
	for s.oldest != nil {
		s.evictLocked(s.oldest, "closed", time.Time{})
	}
	s.tombs, s.tombQueue, s.tombHead = map[string]resultTomb{}, nil, 0
	s.unlock()
	close(s.stop)
	<-s.stopped
	if s.ownDir {
		if err := os.Remove(s.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("result store: remove directory", "dir", s.dir, "err", err)
		}
	}
	return nil
}

// unlock releases s.mu and then removes the spill files evicted meanwhile.
func (s *Store) unlock() {
	doomed := s.doomed
	s.doomed = nil
	s.mu.Unlock()
	for _, path := range doomed {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("result store: remove spill file", "file", path, "err", err)
		}
	}
}

// sweepLocked evicts expired results (oldest first) and forgets old tombstones.
func (s *Store) sweepLocked(now time.Time) {
	for s.oldest != nil && !now.Before(s.oldest.expires) {
		s.evictLocked(s.oldest, "expired", now)
	}
	for s.tombHead < len(s.tombQueue) && !now.Before(s.tombQueue[s.tombHead].until) {
		s.popTombLocked()
	}
}

// popTombLocked forgets the oldest tombstone (unless its id was committed or evicted again since).
func (s *Store) popTombLocked() {
	e := s.tombQueue[s.tombHead]
	s.tombQueue[s.tombHead] = resultTombEntry{}
	s.tombHead++
	if t, ok := s.tombs[e.id]; ok && t.until.Equal(e.until) {
		delete(s.tombs, e.id)
	}
	if s.tombHead > 1024 && s.tombHead*2 > len(s.tombQueue) {
		s.tombQueue = append(s.tombQueue[:0], s.tombQueue[s.tombHead:]...)
		s.tombHead = 0
	}
}

// evictLocked removes r from the store; unless the store closes, its id is remembered as
// expired until now+TTL. Its bytes stay counted until its last reader lets go.
func (s *Store) evictLocked(r *storedResult, reason string, now time.Time) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		s.oldest = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		s.newest = r.prev
	}
	r.prev, r.next = nil, nil
	if s.byID[r.id] == r {
		delete(s.byID, r.id)
	}
	s.budgetOf(r).kept -= r.size
	r.gone = true
	if r.refs == 0 {
		s.freeLocked(r)
	}
	if reason != "closed" {
		until := now.Add(s.ttl)
		s.tombs[r.id] = resultTomb{owner: r.owner, until: until}
		s.tombQueue = append(s.tombQueue, resultTombEntry{id: r.id, until: until})
		for len(s.tombs) > resultMaxTombstones && s.tombHead < len(s.tombQueue) {
			s.popTombLocked()
		}
	}
	s.log.Debug("result evicted", "query_id", r.id, "tenant_id", r.tenant, "reason", reason, "rows", r.total, "spilled", r.spilled(), "read", r.refs > 0)
}

// budgetOf is the budget r counts against.
func (s *Store) budgetOf(r *storedResult) *budget {
	if r.spilled() {
		return &s.disk
	}
	return &s.mem
}

// freeLocked gives back the bytes of an evicted result nobody reads any more.
func (s *Store) freeLocked(r *storedResult) {
	s.budgetOf(r).add(r.tenant, -r.size)
	r.rows, r.size = nil, 0
	if r.spilled() {
		s.doomed = append(s.doomed, r.path)
	}
}

// fitLocked evicts committed results of b (the memory or the disk budget) until it is within its
// limit, for tenant, which needs the room: first tenant's own oldest while it holds more than its
// share, then the oldest of the tenants that hold more than theirs. It evicts nothing when what
// cannot be evicted (results being written or read) is over the limit, and reports whether b fits.
func (s *Store) fitLocked(b *budget, tenant string, now time.Time) bool {
	if b.used <= b.limit {
		return true
	}
	if b.used-b.kept > b.limit {
		return false
	}
	spilled, reason := b == &s.disk, map[bool]string{false: "memory", true: "disk"}[b == &s.disk]
	for r := s.oldest; r != nil && b.used > b.limit && b.over(tenant); {
		next := r.next
		if r.tenant == tenant && r.spilled() == spilled {
			s.evictLocked(r, reason, now)
		}
		r = next
	}
	if b.used <= b.limit || b.over(tenant) {
		return b.used <= b.limit
	}
	for r := s.oldest; r != nil && b.used > b.limit; {
		next := r.next
		if r.spilled() == spilled && b.over(r.tenant) {
			s.evictLocked(r, reason, now)
		}
		r = next
	}
	return b.used <= b.limit
}

// Writer records one result, row by row; nothing is visible before Commit. It is not safe
// for concurrent use.
type Writer struct {
	s                 *Store
	id, tenant, owner string
	cols              []Column

	rows     []json.RawMessage // before spilling
	memBytes int64             // reserved in s.mem

	file     *os.File // after spilling
	bw       *bufio.Writer
	fileRows int64
	size     int64 // bytes written to the file
	reserved int64 // disk budget reserved in s.disk (≥ size)
	index    []int64
	hdr      [binary.MaxVarintLen64]byte

	err  error // sticky: once Add fails the writer is dead
	done bool
}

// Begin starts recording the result of query id, owned by owner (a user id) of tenant (whose
// share of the budgets it counts against). cols is kept (not copied). A commit under an id
// already in the store replaces the older result.
func (s *Store) Begin(id, tenant, owner string, cols []Column) *Writer {
	return &Writer{s: s, id: id, tenant: tenant, owner: owner, cols: cols}
}

// Add appends the next row. The row is kept as is (not copied): the caller must not modify it
// afterwards (RowReader.Next returns fresh slices). Once the rows exceed SpillAbove the result
// is written to a spill file. Add fails when the store is closed, with ErrNoRoom when the result
// does not fit in what the disk budget leaves its tenant, or on an I/O error; the writer is then dead: later calls return the
// same error and the caller should Abort (and may serve the query without a stored result).
func (w *Writer) Add(row json.RawMessage) error {
	if w.done {
		return errResultWriterDone
	}
	if w.err != nil {
		return w.err
	}
	if w.file != nil {
		return w.writeRow(row)
	}
	s, size := w.s, int64(len(row))+resultRowOverhead
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return w.fail(errResultStoreClosed)
	}
	s.mem.add(w.tenant, size)
	w.memBytes += size
	spill := w.memBytes > s.spillAbove || !s.fitLocked(&s.mem, w.tenant, s.now())
	s.unlock()
	w.rows = append(w.rows, row)
	if spill {
		return w.spill()
	}
	return nil
}

// count is the number of rows added so far.
func (w *Writer) count() int64 {
	if w.file != nil {
		return w.fileRows
	}
	return int64(len(w.rows))
}

// spill moves the rows kept in memory to a new spill file.
func (w *Writer) spill() error {
	f, err := os.CreateTemp(w.s.dir, resultFilePrefix+"*"+resultFileSuffix)
	if err != nil {
		w.s.log.Warn("result store: create spill file", "query_id", w.id, "err", err)
		return w.fail(fmt.Errorf("queryexec: spill result %s: %w", w.id, err))
	}
	w.file, w.bw = f, bufio.NewWriterSize(f, 64<<10)
	rows := w.rows
	w.rows = nil
	w.releaseMemory()
	for _, row := range rows {
		if err := w.writeRow(row); err != nil {
			return err
		}
	}
	return nil
}

// writeRow appends a row to the spill file: its length as a uvarint, then its bytes.
func (w *Writer) writeRow(row json.RawMessage) error {
	if w.s.shut.Load() {
		return w.fail(errResultStoreClosed)
	}
	hdr := binary.AppendUvarint(w.hdr[:0], uint64(len(row)))
	n := int64(len(hdr) + len(row))
	if w.size+n > w.reserved {
		if err := w.reserveDisk(w.size + n - w.reserved); err != nil {
			return w.fail(err)
		}
	}
	if w.fileRows%resultIndexEvery == 0 {
		w.index = append(w.index, w.size)
	}
	_, err := w.bw.Write(hdr)
	if err == nil {
		_, err = w.bw.Write(row)
	}
	if err != nil {
		w.s.log.Warn("result store: write spill file", "query_id", w.id, "err", err)
		return w.fail(fmt.Errorf("queryexec: spill result %s: %w", w.id, err))
	}
	w.size += n
	w.fileRows++
	return nil
}

// reserveDisk reserves at least need more bytes of the disk budget (a chunk when there is room,
// to take the lock less often), evicting spilled results as fitLocked does if needed. It fails
// with ErrNoRoom, evicting nothing, when the space of results being written or read plus need
// exceeds the budget, or when the writer's tenant is over its share with nothing of its own left
// to evict.
func (w *Writer) reserveDisk(need int64) error {
	s := w.s
	s.mu.Lock()
	defer s.unlock()
	if s.closed {
		return errResultStoreClosed
	}
	if s.disk.used-s.disk.kept+need > s.disk.limit {
		return fmt.Errorf("queryexec: result %s: %w", w.id, ErrNoRoom)
	}
	n := need
	if free := s.disk.limit - s.disk.used; free > n {
		n = min(free, max(need, s.diskChunk))
	}
	s.disk.add(w.tenant, n)
	if !s.fitLocked(&s.disk, w.tenant, s.now()) {
		s.disk.add(w.tenant, -n)
		return fmt.Errorf("queryexec: result %s: %w", w.id, ErrNoRoom)
	}
	w.reserved += n
	return nil
}

// releaseMemory gives back the memory reserved by the writer.
func (w *Writer) releaseMemory() {
	if w.memBytes == 0 {
		return
	}
	w.s.mu.Lock()
	w.s.mem.add(w.tenant, -w.memBytes)
	w.s.mu.Unlock()
	w.memBytes = 0
}

// releaseDisk closes and removes the spill file and gives back its reservation.
func (w *Writer) releaseDisk() {
	if w.file != nil {
		w.file.Close()
		if err := os.Remove(w.file.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
			w.s.log.Warn("result store: remove spill file", "query_id", w.id, "file", w.file.Name(), "err", err)
		}
		w.file, w.bw = nil, nil
	}
	if w.reserved != 0 {
		w.s.mu.Lock()
		w.s.disk.add(w.tenant, -w.reserved)
		w.s.mu.Unlock()
		w.reserved = 0
	}
}

// fail makes err sticky and frees what the writer holds.
func (w *Writer) fail(err error) error {
	w.err = err
	w.rows = nil
	w.releaseMemory()
	w.releaseDisk()
	return err
}

// Commit makes the result visible to Page and Rows, for TTL from now. truncated records that the
// rows stop at a row limit. It fails if Add failed (with that error), on an I/O error, when the
// store is closed, or when called twice; on failure nothing is kept.
func (w *Writer) Commit(truncated bool) error {
	if w.done {
		return errResultWriterDone
	}
	w.done = true
	if w.err != nil {
		return w.err
	}
	if w.file != nil {
		err := w.bw.Flush()
		if cerr := w.file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			w.s.log.Warn("result store: write spill file", "query_id", w.id, "err", err)
			return w.fail(fmt.Errorf("queryexec: spill result %s: %w", w.id, err))
		}
	}
	r := &storedResult{id: w.id, tenant: w.tenant, owner: w.owner, cols: w.cols, truncated: truncated, total: w.count()}
	if w.file != nil {
		r.path, r.size, r.index = w.file.Name(), w.size, w.index
	} else {
		r.rows, r.size = w.rows, w.memBytes
		if r.rows == nil {
			r.rows = []json.RawMessage{}
		}
	}
	s := w.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return w.fail(errResultStoreClosed)
	}
	now := s.now()
	if r.spilled() {
		s.disk.add(w.tenant, -(w.reserved - w.size)) // give back the unused reservation
	}
	s.budgetOf(r).kept += r.size
	w.file, w.bw, w.rows, w.memBytes, w.reserved = nil, nil, nil, 0, 0 // now the store's
	if old := s.byID[r.id]; old != nil {
		s.evictLocked(old, "replaced", now)
	}
	delete(s.tombs, r.id)
	r.expires = now.Add(s.ttl)
	r.prev = s.newest
	if s.newest != nil {
		s.newest.next = r
	} else {
		s.oldest = r
	}
	s.newest = r
	s.byID[r.id] = r
	s.sweepLocked(now)
	s.unlock()
	return nil
}

// Abort discards the result being written and frees what it holds. It is a no-op after Commit
// (or a second Abort).
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	if w.err == nil {
		w.fail(errResultWriterDone)
	}
}

// Page is one page of a stored result.
type Page struct {
	Columns   []Column          `json:"columns"`
	Rows      []json.RawMessage `json:"rows"`
	Offset    int64             `json:"offset"`
	Limit     int64             `json:"limit"`
	Total     int64             `json:"total"`
	Truncated bool              `json:"truncated"`
}

// Page returns rows [offset, offset+limit) of the result of query id (fewer, or none, past the
// end, and fewer when they would hold more than 8 MiB, though at least one); limit is capped at
// 10,000 and Limit in the page is the one applied. Columns and rows are
// shared with the store: do not modify them.
//
// Returns an error wrapping domain.ErrNotFound when id is unknown or owned by someone else,
// wrapping ErrExpired when the owner's result was evicted or expired, and a
// *domain.ValidationError for a negative offset or a limit below 1.
func (s *Store) Page(id, owner string, offset, limit int64) (Page, error) {
	if offset < 0 {
		return Page{}, domain.NewValidationError("offset", "must not be negative")
	}
	if limit < 1 {
		return Page{}, domain.NewValidationError("limit", "must be at least 1")
	}
	limit = min(limit, resultMaxPageRows)
	s.mu.Lock()
	r, err := s.lookupLocked(id, owner)
	if err != nil {
		s.unlock()
		return Page{}, err
	}
	page := Page{Columns: r.cols, Rows: []json.RawMessage{}, Offset: offset, Limit: limit, Total: r.total, Truncated: r.truncated}
	if offset >= r.total {
		s.unlock()
		return page, nil
	}
	end := min(offset+limit, r.total)
	if !r.spilled() {
		var bytes int
		for _, row := range r.rows[offset:end] {
			if bytes += len(row); bytes > resultMaxPageBytes && len(page.Rows) > 0 {
				break
			}
			page.Rows = append(page.Rows, row)
		}
		s.unlock()
		return page, nil
	}
	r.refs++
	s.unlock()
	defer s.release(r)

	f, br, err := s.openAt(r, offset)
	if err != nil {
		return Page{}, err
	}
	defer f.Close()
	var bytes int
	for i := offset; i < end; i++ {
		row, err := readSpilledRow(br, nil)
		if err != nil {
			return Page{}, s.readErr(r, err)
		}
		if bytes += len(row); bytes > resultMaxPageBytes && len(page.Rows) > 0 {
			break
		}
		page.Rows = append(page.Rows, row)
	}
	return page, nil
}

// Rows calls fn for every row of the result of query id in order, for exports, without loading
// a spilled result into memory. cols and row are shared: row is only valid during the call
// (copy it to keep it) and neither may be modified. It stops at the first error of fn or of ctx
// and returns it; otherwise the errors are those of Page. The result stays readable to the end
// even if it expires meanwhile.
func (s *Store) Rows(ctx context.Context, id, owner string, fn func(cols []Column, row json.RawMessage) error) error {
	s.mu.Lock()
	r, err := s.lookupLocked(id, owner)
	if err != nil {
		s.unlock()
		return err
	}
	cols, rows := r.cols, r.rows
	r.refs++ // an evicted result keeps counting against the budgets while it is read
	s.unlock()
	defer s.release(r)
	if !r.spilled() {
		for i, row := range rows {
			if i%resultIndexEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := fn(cols, row); err != nil {
				return err
			}
		}
		return nil
	}
	f, br, err := s.openAt(r, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var buf []byte
	for i := int64(0); i < r.total; i++ {
		if i%resultIndexEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if buf, err = readSpilledRow(br, buf[:0]); err != nil {
			return s.readErr(r, err)
		}
		if err := fn(cols, buf); err != nil {
			return err
		}
	}
	return nil
}

// lookupLocked finds the live result id of owner, expiring what is due.
func (s *Store) lookupLocked(id, owner string) (*storedResult, error) {
	if s.closed {
		return nil, errResultStoreClosed
	}
	now := s.now()
	s.sweepLocked(now)
	if r := s.byID[id]; r != nil {
		if r.owner != owner {
			return nil, fmt.Errorf("queryexec: result %s: %w", id, domain.ErrNotFound)
		}
		if !now.Before(r.expires) { // a clock that went backwards can leave one behind the sweep
			s.evictLocked(r, "expired", now)
			return nil, fmt.Errorf("queryexec: result %s: %w", id, ErrExpired)
		}
		return r, nil
	}
	if t, ok := s.tombs[id]; ok && t.owner == owner {
		return nil, fmt.Errorf("queryexec: result %s: %w", id, ErrExpired)
	}
	return nil, fmt.Errorf("queryexec: result %s: %w", id, domain.ErrNotFound)
}

// release ends a read of a result; the last reader of an evicted one frees it.
func (s *Store) release(r *storedResult) {
	s.mu.Lock()
	r.refs--
	if r.refs == 0 && r.gone {
		s.freeLocked(r)
	}
	s.unlock()
}

// openAt opens the spill file of r positioned at row `row` (< r.total), using the sparse index.
func (s *Store) openAt(r *storedResult, row int64) (*os.File, *bufio.Reader, error) {
	f, err := os.Open(r.path)
	if err != nil {
		return nil, nil, s.readErr(r, err)
	}
	block := row / resultIndexEvery
	start := r.index[block]
	br := bufio.NewReaderSize(io.NewSectionReader(f, start, r.size-start), 32<<10)
	for skip := row - block*resultIndexEvery; skip > 0; skip-- {
		n, err := binary.ReadUvarint(br)
		if err == nil {
			_, err = br.Discard(int(n))
		}
		if err != nil {
			f.Close()
			return nil, nil, s.readErr(r, err)
		}
	}
	return f, br, nil
}

// readSpilledRow reads one row into buf (grown as needed); a nil buf gets a fresh slice.
func readSpilledRow(br *bufio.Reader, buf []byte) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// readErr logs and wraps an error reading the spill file of r.
func (s *Store) readErr(r *storedResult, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	s.log.Warn("result store: read spill file", "query_id", r.id, "file", r.path, "err", err)
	return fmt.Errorf("queryexec: read result %s: %w", r.id, err)
}
