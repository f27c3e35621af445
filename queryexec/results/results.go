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

var (
	errResultStoreClosed = errors.New("queryexec: result store closed")
	errResultTooLarge    = errors.New("queryexec: result does not fit in the disk budget of the result store")
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
	// resultMaxPageRows caps the limit of one Page (a page is read into memory).
	resultMaxPageRows = 10000
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
	DiskBudget   int64            // bytes of spilled files (default 2 GiB); oldest results are evicted to make room
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
// read). Results being written count against the budgets too: when memory is short the oldest
// committed in-memory results are evicted, and if that is not enough the writer spills early;
// when disk is short the oldest committed spilled results are evicted, and if that is not enough
// (the result alone is bigger than what is left for it) Add fails.
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
	memBudget  int64
	spillAbove int64
	diskBudget int64
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
	memUsed   int64 // in-memory rows, committed or being written
	diskUsed  int64 // spill files, committed or being written (reservations)
	memKept   int64 // rows of committed in-memory results (the part of memUsed eviction can free)
	diskKept  int64 // spill files of committed results (the part of diskUsed eviction can free)
	tombs     map[string]resultTomb
	tombQueue []resultTombEntry // oldest first, from tombHead
	tombHead  int
	doomed    []string // spill files to remove once the lock is released
}

// storedResult is one committed result.
type storedResult struct {
	id, owner  string
	cols       []Column
	truncated  bool
	total      int64
	expires    time.Time
	rows       []json.RawMessage // in memory (path == "")
	memBytes   int64
	path       string // spill file
	fileSize   int64
	index      []int64 // index[k]: offset of row k*resultIndexEvery
	refs       int     // readers of the spill file
	gone       bool    // evicted; the file is removed when refs drops to 0
	prev, next *storedResult
}

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
		memBudget:  opts.MemoryBudget,
		spillAbove: opts.SpillAbove,
		diskBudget: opts.DiskBudget,
		ttl:        opts.TTL,
		now:        opts.Now,
		log:        opts.Log,
		byID:       map[string]*storedResult{},
		tombs:      map[string]resultTomb{},
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	if s.memBudget == 0 {
		s.memBudget = defaultResultMemoryBudget
	}
	if s.spillAbove == 0 {
		s.spillAbove = defaultResultSpillAbove
	}
	if s.diskBudget == 0 {
		s.diskBudget = defaultResultDiskBudget
	}
	s.diskChunk = min(resultDiskChunk, max(s.diskBudget/64, 1))
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

// Close evicts every result and removes the spill files (a file still being read by Rows is
// removed when that read ends; a writer that has not committed or aborted removes its own file
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
// expired until now+TTL.
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
	if r.path == "" {
		s.memUsed -= r.memBytes
		s.memKept -= r.memBytes
		r.rows = nil
	} else {
		s.diskUsed -= r.fileSize
		s.diskKept -= r.fileSize
		r.gone = true
		if r.refs == 0 {
			s.doomed = append(s.doomed, r.path)
		}
	}
	if reason != "closed" {
		until := now.Add(s.ttl)
		s.tombs[r.id] = resultTomb{owner: r.owner, until: until}
		s.tombQueue = append(s.tombQueue, resultTombEntry{id: r.id, until: until})
		for len(s.tombs) > resultMaxTombstones && s.tombHead < len(s.tombQueue) {
			s.popTombLocked()
		}
	}
	s.log.Debug("result evicted", "query_id", r.id, "reason", reason, "rows", r.total, "spilled", r.path != "")
}

// evictForMemoryLocked evicts the oldest committed in-memory results until memory fits the
// budget or none is left; it reports whether memory fits.
func (s *Store) evictForMemoryLocked(now time.Time) bool {
	for r := s.oldest; r != nil && s.memUsed > s.memBudget; {
		next := r.next
		if r.path == "" {
			s.evictLocked(r, "memory", now)
		}
		r = next
	}
	return s.memUsed <= s.memBudget
}

// evictForDiskLocked is evictForMemoryLocked for spilled results and the disk budget.
func (s *Store) evictForDiskLocked(now time.Time) bool {
	for r := s.oldest; r != nil && s.diskUsed > s.diskBudget; {
		next := r.next
		if r.path != "" {
			s.evictLocked(r, "disk", now)
		}
		r = next
	}
	return s.diskUsed <= s.diskBudget
}

// Writer records one result, row by row; nothing is visible before Commit. It is not safe
// for concurrent use.
type Writer struct {
	s         *Store
	id, owner string
	cols      []Column

	rows     []json.RawMessage // before spilling
	memBytes int64             // reserved in s.memUsed

	file     *os.File // after spilling
	bw       *bufio.Writer
	fileRows int64
	size     int64 // bytes written to the file
	reserved int64 // disk budget reserved in s.diskUsed (≥ size)
	index    []int64
	hdr      [binary.MaxVarintLen64]byte

	err  error // sticky: once Add fails the writer is dead
	done bool
}

// Begin starts recording the result of query id, owned by owner (a user id). cols is kept (not
// copied). A commit under an id already in the store replaces the older result.
func (s *Store) Begin(id, owner string, cols []Column) *Writer {
	return &Writer{s: s, id: id, owner: owner, cols: cols}
}

// Add appends the next row. The row is kept as is (not copied): the caller must not modify it
// afterwards (RowReader.Next returns fresh slices). Once the rows exceed SpillAbove the result
// is written to a spill file. Add fails when the store is closed, when the result alone does not
// fit in the disk budget, or on an I/O error; the writer is then dead: later calls return the
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
	s.memUsed += size
	w.memBytes += size
	spill := w.memBytes > s.spillAbove
	if !spill && s.memUsed > s.memBudget {
		// Spill this writer rather than evict results when evicting all of them would not do.
		spill = s.memUsed-s.memKept > s.memBudget || !s.evictForMemoryLocked(s.now())
	}
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
// to take the lock less often), evicting the oldest spilled results if needed. It fails, evicting
// nothing, when the space of results being written plus need exceeds the budget.
func (w *Writer) reserveDisk(need int64) error {
	s := w.s
	s.mu.Lock()
	defer s.unlock()
	if s.closed {
		return errResultStoreClosed
	}
	if s.diskUsed-s.diskKept+need > s.diskBudget {
		return fmt.Errorf("queryexec: result %s: %w", w.id, errResultTooLarge)
	}
	n := need
	if free := s.diskBudget - s.diskUsed; free > n {
		n = min(free, max(need, s.diskChunk))
	}
	s.diskUsed += n
	w.reserved += n
	if s.diskUsed > s.diskBudget {
		s.evictForDiskLocked(s.now())
	}
	return nil
}

// releaseMemory gives back the memory reserved by the writer.
func (w *Writer) releaseMemory() {
	if w.memBytes == 0 {
		return
	}
	w.s.mu.Lock()
	w.s.memUsed -= w.memBytes
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
		w.s.diskUsed -= w.reserved
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
	r := &storedResult{id: w.id, owner: w.owner, cols: w.cols, truncated: truncated, total: w.count()}
	if w.file != nil {
		r.path, r.fileSize, r.index = w.file.Name(), w.size, w.index
	} else {
		r.rows, r.memBytes = w.rows, w.memBytes
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
	if r.path != "" {
		s.diskUsed -= w.reserved - w.size // give back the unused reservation
		s.diskKept += w.size
	} else {
		s.memKept += w.memBytes
	}
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
// end); limit is capped at 10,000 and Limit in the page is the one applied. Columns and rows are
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
	if r.path == "" {
		page.Rows = append(make([]json.RawMessage, 0, end-offset), r.rows[offset:end]...)
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
	page.Rows = make([]json.RawMessage, 0, end-offset)
	for i := offset; i < end; i++ {
		row, err := readSpilledRow(br, nil)
		if err != nil {
			return Page{}, s.readErr(r, err)
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
	if r.path == "" {
		s.unlock()
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
	r.refs++
	s.unlock()
	defer s.release(r)

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

// release ends a read of a spilled result; the last reader of an evicted one removes its file.
func (s *Store) release(r *storedResult) {
	s.mu.Lock()
	r.refs--
	if r.refs == 0 && r.gone {
		s.doomed = append(s.doomed, r.path)
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
	br := bufio.NewReaderSize(io.NewSectionReader(f, start, r.fileSize-start), 32<<10)
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
