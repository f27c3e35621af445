package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// A rebuild reads and applies rebuildBatch events in its first transaction; then it sizes each
// batch so that reading and applying it takes about rebuildBatchTime at the rate the previous one
// ran, between rebuildBatch and maxRebuildBatch events, at most doubling from one to the next.
// Projectors that rewrite the same aggregate rows in every batch (metrics) gain most from large
// batches; a rebuild writes tables no one else does, so a long transaction holds up nobody, and a
// loaded machine that makes batches slow shrinks them back.
const (
	rebuildBatch     = 5000
	maxRebuildBatch  = 50_000
	rebuildBatchTime = 10 * time.Second
)

// nextRebuildBatch is the size of the batch after one of n events that took took.
func nextRebuildBatch(n int, took time.Duration) int {
	next := int(float64(n) * float64(rebuildBatchTime) / float64(max(took, time.Millisecond)))
	return min(max(next, rebuildBatch), 2*n, maxRebuildBatch)
}

// lockTimeout bounds how long taking a rebuild's lock may wait on the management database.
const lockTimeout = 10 * time.Second

// StartRebuild takes the projector's rebuild lock, then rebuilds it in the background and returns
// at once; Close waits for it. A rebuild of the same projector already running, in this process
// or another, is domain.ErrConflict (answered before anything starts). A rebuild that fails
// later is logged and shown as the projector's last error (GET /admin/projections).
func (r *Runtime) StartRebuild(name string) error {
	st, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("projections: no projection %q (they are %s): %w", name, strings.Join(r.Names(), ", "), domain.ErrNotFound)
	}
	st.mu.Lock()
	if st.status == "rebuilding" || st.rebuildStarted {
		st.mu.Unlock()
		return fmt.Errorf("projections: %s is already being rebuilt: %w", name, domain.ErrConflict)
	}
	st.rebuildStarted = true // claimed now, so a second request cannot slip in before the goroutine runs
	st.mu.Unlock()
	unclaim := func() {
		st.mu.Lock()
		st.rebuildStarted = false
		st.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(r.background, lockTimeout)
	unlock, err := r.lockRebuild(ctx, name)
	cancel()
	if err != nil {
		unclaim()
		return err
	}
	r.rebuilds.Add(1)
	go func() {
		defer r.rebuilds.Done()
		defer unclaim()
		defer unlock()
		if err := r.rebuildLocked(r.background, st); err != nil {
			st.mu.Lock()
			st.lastError, st.lastErrorAt = err.Error(), time.Now().UTC()
			st.mu.Unlock()
		}
	}()
	return nil
}

// Rebuild builds the named read model from position zero into fresh tables beside the live ones,
// then swaps them in with one RENAME TABLE that includes the checkpoint, while the live projector
// keeps serving the old model. Only one rebuild of a projector runs at a time across all
// processes; a second gets an error wrapping domain.ErrConflict, an unknown name
// domain.ErrNotFound.
func (r *Runtime) Rebuild(ctx context.Context, name string) error {
	st, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("projections: no projection %q (they are %s): %w", name, strings.Join(r.Names(), ", "), domain.ErrNotFound)
	}
	unlock, err := r.lockRebuild(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	return r.rebuildLocked(ctx, st)
}

// lockRebuild takes the rebuild lock of projector name: its row of projection_rebuild_locks, held
// FOR UPDATE by a transaction that unlock ends (see migrations/0006). Not GET_LOCK: a named lock
// is the server's, and tenant accounts on the same server could take it. Returns an error wrapping
// domain.ErrConflict when another rebuild holds it.
func (r *Runtime) lockRebuild(ctx context.Context, name string) (unlock func(), err error) {
	// The row is made once. INSERT IGNORE alone would wait for a held lock on it: look first.
	var rows int
	if err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM projection_rebuild_locks WHERE name = ?`, name).Scan(&rows); err != nil {
		return nil, fmt.Errorf("projections: rebuild %s: lock: %w", name, err)
	}
	if rows == 0 {
		if _, err := r.db.ExecContext(ctx, `INSERT IGNORE INTO projection_rebuild_locks (name) VALUES (?)`, name); err != nil {
			return nil, fmt.Errorf("projections: rebuild %s: lock: %w", name, err)
		}
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("projections: rebuild %s: lock: %w", name, err)
	}
	var locked string
	err = tx.QueryRowContext(ctx, `SELECT name FROM projection_rebuild_locks WHERE name = ? FOR UPDATE SKIP LOCKED`, name).Scan(&locked)
	if err != nil {
		tx.Rollback() //nolint:errcheck // the lock was not taken
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("projections: %s is already being rebuilt: %w", name, domain.ErrConflict)
		}
		return nil, fmt.Errorf("projections: rebuild %s: lock: %w", name, err)
	}
	return func() { tx.Rollback() }, nil //nolint:errcheck // the lock also ends with the connection
}

// rebuildLocked rebuilds st while its rebuild lock is held.
func (r *Runtime) rebuildLocked(ctx context.Context, st *state) error {
	name := st.Name()
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("projections: rebuild %s: %w", name, err)
	}
	defer conn.Close()

	st.mu.Lock()
	previous := st.status
	st.status = "rebuilding"
	st.mu.Unlock()
	defer st.setStatus(previous)

	started := time.Now()
	r.log.Info("rebuild started", "projection", name)
	position, err := r.rebuild(ctx, conn, st)
	if err != nil {
		r.log.Error("rebuild failed; the live read model is untouched", "projection", name, "err", err)
		return fmt.Errorf("projections: rebuild %s: %w", name, err)
	}
	st.position.Reset(position)
	st.applied.Reset(position) // the read model is new: what follows it looks again
	r.log.Info("rebuild finished", "projection", name, "position", position, "took_ms", time.Since(started).Milliseconds())
	return nil
}

func (r *Runtime) rebuild(ctx context.Context, conn *sql.Conn, st *state) (int64, error) {
	if err := st.create(ctx, r.db, ""); err != nil {
		return 0, err
	}
	if err := r.dropTables(ctx, st, rebuildSuffix, oldSuffix); err != nil {
		return 0, err
	}
	if err := st.create(ctx, r.db, rebuildSuffix); err != nil {
		return 0, err
	}
	// A projector that keeps state across a rebuild's batches (rebuilder) gets one session for
	// both passes below.
	var session rebuildSession
	if rb, ok := st.Projector.(rebuilder); ok {
		session = rb.startRebuild(st.tables(rebuildSuffix))
	}
	catchUp := func(position int64) (int64, error) {
		if session != nil {
			return r.catchUpSession(ctx, st, session, position)
		}
		return r.catchUp(ctx, st, position)
	}
	position, err := catchUp(0)
	if err != nil {
		return 0, err
	}
	// Hold the live projector for the last few events and the swap. The pause is a lease: should
	// this process die here, the live projector resumes on its own.
	checkpoint := "`" + st.checkpointTable() + "`"
	if _, err := conn.ExecContext(ctx, `UPDATE `+checkpoint+` SET paused_until = UTC_TIMESTAMP(6) + INTERVAL 60 SECOND WHERE id = 1`); err != nil {
		return 0, fmt.Errorf("pause live projector: %w", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			conn.ExecContext(context.Background(), `UPDATE `+checkpoint+` SET paused_until = NULL WHERE id = 1`) //nolint:errcheck // the lease expires anyway
		}
	}()
	if position, err = catchUp(position); err != nil {
		return 0, err
	}
	var renames []string
	for _, name := range append(tableNames(st), st.checkpointTable()) {
		renames = append(renames, fmt.Sprintf("`%[1]s` TO `%[1]s%[2]s`, `%[1]s%[3]s` TO `%[1]s`", name, oldSuffix, rebuildSuffix))
	}
	if _, err := conn.ExecContext(ctx, `SET SESSION lock_wait_timeout = 20`); err != nil {
		return 0, err
	}
	if _, err := conn.ExecContext(ctx, `RENAME TABLE `+strings.Join(renames, ", ")); err != nil {
		return 0, fmt.Errorf("swap in the rebuilt tables: %w", err)
	}
	swapped = true
	return position, r.dropTables(ctx, st, oldSuffix)
}

// catchUp applies the log after position to the rebuild's tables, logging progress, until it
// reaches the head.
func (r *Runtime) catchUp(ctx context.Context, st *state, position int64) (int64, error) {
	shadow := st.tables(rebuildSuffix)
	checkpoint := "`" + st.checkpointTable() + rebuildSuffix + "`"
	started, lastLog, from, batch := time.Now(), time.Now(), position, rebuildBatch
	for {
		began := time.Now()
		events, err := r.store.ReadAll(ctx, position, batch)
		if err != nil {
			return 0, err
		}
		if len(events) == 0 {
			return position, nil
		}
		last := events[len(events)-1].Position
		if err := r.applyBatch(ctx, st, shadow, checkpoint, events, last); err != nil {
			return 0, err
		}
		position = last
		if len(events) == batch {
			batch = nextRebuildBatch(batch, time.Since(began))
		}
		if time.Since(lastLog) > 2*time.Second {
			lastLog = time.Now()
			r.log.Info("rebuild progress", "projection", st.Name(), "position", position, "batch", batch,
				"events_per_s", int(float64(position-from)/time.Since(started).Seconds()))
		}
	}
}

// rebuilder is a projector whose rebuild keeps state across its batches: it writes rows once
// their buckets can no longer change (metrics), rather than upserting them in every batch.
type rebuilder interface {
	// startRebuild begins a rebuild into the tables t, empty.
	startRebuild(t Tables) rebuildSession
}

// rebuildSession is one rebuild of a rebuilder. The runtime runs its steps as a pipeline: one
// goroutine reads and decodes the next batch, another folds the one before, while the batch
// before that is written; each step sees the batches in log order.
type rebuildSession interface {
	// decode decodes the events of a batch (those the projector handles, in log order, read
	// by eventstore's ReadAllBodies: without metadata, stream type and version, or chain): it
	// depends on no other batch.
	decode(events []eventstore.Envelope) (any, error)
	// fold takes a decoded batch into the session and returns what the batch writes. It does no
	// I/O.
	fold(decoded any) (rebuildWrite, error)
	// flush returns the writes of everything the session still holds: the rebuild reached the
	// head. Events folded afterwards (the last ones, while the live projector waits) are
	// written by their own batches.
	flush() rebuildWrite
}

// rebuildWrite is what one batch of a rebuildSession writes, in the batch's transaction.
type rebuildWrite interface {
	write(ctx context.Context, tx *sql.Tx) error
}

// sessionBatch is how many events a rebuild session reads at a time: its writes do not depend on
// the batch's size. A variable for the tests.
var sessionBatch = 20_000

// catchUpSession is catchUp for a rebuilder, as a pipeline of three goroutines: reading and
// decoding, folding, writing (this one). At the head, the session's flush is written too.
func (r *Runtime) catchUpSession(ctx context.Context, st *state, session rebuildSession, position int64) (int64, error) {
	checkpoint := "`" + st.checkpointTable() + rebuildSuffix + "`"
	type batch struct {
		decoded any
		w       rebuildWrite
		last    int64
		head    bool // the head was reached: flush
		err     error
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	send := func(ch chan<- batch, b batch) bool {
		select {
		case ch <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	read, folded := make(chan batch, 1), make(chan batch, 1)
	wg.Go(func() {
		defer close(read)
		from := position
		for {
			events, err := r.store.ReadAllBodies(ctx, from, sessionBatch)
			if err != nil {
				send(read, batch{err: err})
				return
			}
			if len(events) == 0 {
				send(read, batch{last: from, head: true})
				return
			}
			b := batch{last: events[len(events)-1].Position}
			if relevant := keepRelevant(st.projector, events); len(relevant) > 0 {
				if b.decoded, err = session.decode(relevant); err != nil {
					b.err = fmt.Errorf("apply events %d..%d: %w", events[0].Position, b.last, err)
				}
			}
			if !send(read, b) || b.err != nil {
				return
			}
			from = b.last
		}
	})
	wg.Go(func() {
		defer close(folded)
		for b := range read {
			switch {
			case b.err != nil:
			case b.head:
				b.w = session.flush()
			case b.decoded != nil:
				var err error
				if b.w, err = session.fold(b.decoded); err != nil {
					b.err = fmt.Errorf("apply events up to %d: %w", b.last, err)
				}
			}
			if !send(folded, b) || b.err != nil {
				return
			}
		}
	})
	started, lastLog, from := time.Now(), time.Now(), position
	for b := range folded {
		if b.err != nil {
			return 0, b.err
		}
		if err := r.writeBatch(ctx, checkpoint, b.w, b.last); err != nil {
			return 0, err
		}
		position = b.last
		if time.Since(lastLog) > 2*time.Second {
			lastLog = time.Now()
			r.log.Info("rebuild progress", "projection", st.Name(), "position", position,
				"events_per_s", int(float64(position-from)/time.Since(started).Seconds()))
		}
	}
	return position, ctx.Err()
}

// keepRelevant is relevant in place: events is the caller's to change, and a rebuild's batch of
// thousands is then not copied.
func keepRelevant(p *projector, events []eventstore.Envelope) []eventstore.Envelope {
	kept := 0
	for i := range events {
		if p.handlesType(events[i].EventType) {
			if kept != i {
				events[kept] = events[i]
			}
			kept++
		}
	}
	return events[:kept]
}

// writeBatch writes w (nil: nothing) and the checkpoint at last in one transaction.
func (r *Runtime) writeBatch(ctx context.Context, checkpoint string, w rebuildWrite, last int64) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if w != nil {
		if err := w.write(ctx, tx); err != nil {
			return fmt.Errorf("write events up to %d: %w", last, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+checkpoint+` SET position = ?, updated_at = UTC_TIMESTAMP(6) WHERE id = 1`, last); err != nil {
		return err
	}
	return tx.Commit()
}

func (r *Runtime) applyBatch(ctx context.Context, st *state, shadow Tables, checkpoint string, events []eventstore.Envelope, last int64) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if relevant := st.relevant(events); len(relevant) > 0 {
		if err := st.Apply(ctx, tx, shadow, relevant); err != nil {
			return fmt.Errorf("apply events %d..%d: %w", events[0].Position, last, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+checkpoint+` SET position = ?, updated_at = UTC_TIMESTAMP(6) WHERE id = 1`, last); err != nil {
		return err
	}
	return tx.Commit()
}

func (r *Runtime) dropTables(ctx context.Context, st *state, suffixes ...string) error {
	var names []string
	for _, suffix := range suffixes {
		for _, name := range append(tableNames(st), st.checkpointTable()) {
			names = append(names, "`"+name+suffix+"`")
		}
	}
	if _, err := r.db.ExecContext(ctx, `DROP TABLE IF EXISTS `+strings.Join(names, ", ")); err != nil {
		return fmt.Errorf("drop %s: %w", strings.Join(names, ", "), err)
	}
	return nil
}

func tableNames(st *state) []string {
	var names []string
	for _, t := range st.Tables() {
		names = append(names, t.Name)
	}
	return names
}
