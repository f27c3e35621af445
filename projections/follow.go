package projections

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/backoffs"
)

// readBatch is how many events one read of the log's tail returns, unless a projector that takes
// part in the read asks for more (Batcher).
const readBatch = 500

// lazyCheckpoint is how stale a projector's stored checkpoint may be when the events it passed over
// were none of its own: passing over them then writes nothing (no statement, no log flush), so busy
// event types a projector ignores (executed queries, say) cost it no disk write per batch. Events
// passed over without a write are read again after a restart, to no effect; the position in memory
// advances either way.
const lazyCheckpoint = time.Second

// applyTimeout bounds one batch's transaction.
const applyTimeout = time.Minute

// cursor is what the loop alone knows of a projector; only the loop's goroutine touches it.
type cursor struct {
	heldUntil   time.Time                   // after a failure, no attempt before this
	hold        *backoff.ExponentialBackOff // how long the holds of the current run of failures last
	lingerUntil time.Time                   // unhurried events found or appended wait until then (zero: none waits)
	written     time.Time                   // when the stored checkpoint was last written
}

// follow is the runtime's one loop: it reads the log's tail once for all the projectors that are
// behind, applies each one's share in a transaction of its own, and sleeps while nothing is
// appended. This process's appends wake it at once; other processes' appends are found by one
// read of the head every Poll.
func (r *Runtime) follow() {
	defer close(r.stopped)
	var head int64
	readFailures := 0
	readWait := backoffs.Exponential(100*time.Millisecond, 5*time.Second, 0)
	for {
		local, appended := r.store.LocalHead()
		head = max(head, local)
		more, err := r.round(head)
		if r.isStopping() {
			return
		}
		if err != nil {
			readFailures++
			wait := readWait.NextBackOff()
			if readFailures%20 == 1 {
				r.log.Error("projections cannot read the event log, retrying", "attempt", readFailures, "retry_in_ms", wait.Milliseconds(), "err", err)
			}
			if !r.sleep(wait) {
				return
			}
			continue
		}
		readFailures = 0
		readWait.Reset()
		if more {
			continue
		}
		if !r.idle(appended, &head) {
			return
		}
	}
}

// idle waits until a round may find work: a local append one projector must apply at once, the
// poll finding a head beyond what the loop knew, or a held or lingering projector's time. It
// returns false when the runtime stops.
func (r *Runtime) idle(appended <-chan struct{}, head *int64) bool {
	poll := time.NewTimer(r.opts.Poll)
	defer poll.Stop()
	deadline := time.NewTimer(0)
	defer deadline.Stop()
	for {
		deadline.Stop()
		var due <-chan time.Time
		if at, ok := r.nextDeadline(); ok {
			deadline.Reset(time.Until(at))
			due = deadline.C
		}
		select {
		case <-appended:
			var local int64
			local, appended = r.store.LocalHead()
			*head = max(*head, local)
			if r.noteLocalAppends() {
				return true
			}
		case <-poll.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			polled, err := r.store.Head(ctx)
			cancel()
			if err != nil || polled > *head {
				*head = max(*head, polled)
				return true // a failed poll is retried by the round's read, with its backoff
			}
			poll.Reset(r.opts.Poll)
		case <-due:
			return true
		case <-r.stopping:
			return false
		}
	}
}

// noteLocalAppends looks at what this process appended: it reports whether a projector must apply
// some of it at once, and starts the linger of projectors that only got unhurried events.
func (r *Runtime) noteLocalAppends() bool {
	urgent := false
	for _, st := range r.states {
		position, _ := st.position.Load()
		lazy, linger := st.lazy()
		switch {
		case st.urgentHead(r.store) > position:
			urgent = true
		case linger > 0 && st.lingerUntil.IsZero() && r.store.LocalHeadOf(lazy) > position:
			st.lingerUntil = time.Now().Add(linger)
		}
	}
	return urgent
}

// nextDeadline is when the earliest held or lingering projector may go on.
func (r *Runtime) nextDeadline() (time.Time, bool) {
	var next time.Time
	for _, st := range r.states {
		for _, at := range []time.Time{st.heldUntil, st.lingerUntil} {
			if !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
	}
	return next, !next.IsZero()
}

// due reports whether a projector takes part in a round now.
func (r *Runtime) due(st *state, position int64, now time.Time) bool {
	if now.Before(st.heldUntil) {
		return false
	}
	if st.lingerUntil.IsZero() || !now.Before(st.lingerUntil) {
		return true
	}
	return st.urgentHead(r.store) > position // an urgent local append ends the linger
}

// round brings every due projector behind head up to the end of one read: it reads from the
// position of the furthest behind, lets each projector apply its share, and reads again from the
// position of those that were ahead of that read, so projectors at one place (the usual case) cost
// one read. more reports that a read was full: the loop goes on without sleeping.
func (r *Runtime) round(head int64) (more bool, err error) {
	now := time.Now()
	var due []*state
	for _, st := range r.states {
		if position, _ := st.position.Load(); position < head && r.due(st, position, now) {
			due = append(due, st)
		}
	}
	for len(due) > 0 && !r.isStopping() {
		slices.SortFunc(due, func(a, b *state) int { return cmp.Compare(a.at(), b.at()) })
		types, except := readFilter(due)
		limit := readBatch
		for _, st := range due {
			limit = max(limit, st.batchSize())
		}
		ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
		events, err := r.store.ReadTail(ctx, due[0].at(), limit, types, except)
		cancel()
		if err != nil || len(events) == 0 {
			return more, err
		}
		last := events[len(events)-1].Position
		full := len(events) == limit
		more = more || full
		var ahead []*state
		for _, st := range due {
			switch position := st.at(); {
			case position > last:
				ahead = append(ahead, st)
			case position < last:
				r.advance(st, position, events, last, full, now)
			}
		}
		due = ahead
	}
	return more, nil
}

// at is the position a projector has reached, as far as this process knows.
func (st *state) at() int64 {
	position, _ := st.position.Load()
	return position
}

// readFilter is what one read must return for all of due: the union of their types, or every type
// but those all of them ignore.
func readFilter(due []*state) (types, except []string) {
	var all []*state
	for _, st := range due {
		if st.types() == nil {
			all = append(all, st)
		} else {
			types = append(types, st.types()...)
		}
	}
	if len(all) == 0 {
		return types, nil
	}
	for _, ignored := range all[0].ignores {
		everyone := !slices.Contains(types, ignored)
		for _, st := range all[1:] {
			everyone = everyone && slices.Contains(st.ignores, ignored)
		}
		if everyone {
			except = append(except, ignored)
		}
	}
	return nil, except
}

// advance lets one projector apply the events after position of a read that ends at last.
func (r *Runtime) advance(st *state, position int64, events []eventstore.Envelope, last int64, full bool, now time.Time) {
	mine := st.share(events, position)
	if len(mine) == 0 {
		r.passOver(st, last, now)
		return
	}
	if st.onlyLazy(mine) {
		if st.lingerUntil.IsZero() {
			_, linger := st.lazy()
			st.lingerUntil = now.Add(linger)
		}
		if now.Before(st.lingerUntil) {
			return // applied with what comes meanwhile, when the linger ends
		}
	}
	// A read larger than the projector's batch (made for another projector) is applied in batches.
	for size := st.batchSize(); len(mine) > size; mine = mine[size:] {
		if !r.apply(st, mine[:size], mine[size-1].Position) {
			return
		}
	}
	if r.apply(st, mine, last) && !full {
		st.lingerUntil = time.Time{}
	}
}

// share is the projector's share of a read: the events after position that it handles. When
// they are one run of the read (a read of its own types, and the log's last event that every read
// returns), they are the read's, not a copy: the projectors only read the events they are given.
func (p *projector) share(events []eventstore.Envelope, position int64) []eventstore.Envelope {
	first := 0
	for first < len(events) && events[first].Position <= position {
		first++
	}
	after := events[first:]
	for i := range after {
		if !p.handlesType(after[i].EventType) {
			if !slices.ContainsFunc(after[i+1:], func(e eventstore.Envelope) bool { return p.handlesType(e.EventType) }) {
				return after[:i] // none handled after i: the read's last event, say, which every read returns
			}
			mine := make([]eventstore.Envelope, i, len(after)-1)
			copy(mine, after[:i])
			for _, e := range after[i+1:] {
				if p.handlesType(e.EventType) {
					mine = append(mine, e)
				}
			}
			return mine
		}
	}
	return after
}

// onlyLazy reports whether every event is of the projector's unhurried types.
func (p *projector) onlyLazy(events []eventstore.Envelope) bool {
	lazy, _ := p.lazy()
	for _, e := range events {
		if !slices.Contains(lazy, e.EventType) {
			return false
		}
	}
	return true
}

// passOver moves a projector past events none of which it handles. The stored checkpoint follows at
// most once per lazyCheckpoint, with one statement that never lowers it and leaves a paused
// checkpoint to its rebuild.
func (r *Runtime) passOver(st *state, last int64, now time.Time) {
	st.position.Advance(last)
	if now.Sub(st.written) < lazyCheckpoint {
		return
	}
	st.written = now
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	if _, err := r.db.ExecContext(ctx, `UPDATE `+st.quotedCheckpoint()+` SET position = GREATEST(position, ?), updated_at = UTC_TIMESTAMP(6)
		WHERE id = 1 AND (paused_until IS NULL OR paused_until < UTC_TIMESTAMP(6))`, last); err != nil {
		r.log.Warn("projection could not store its checkpoint; it is stored with its next batch", "projection", st.Name(), "err", err)
	}
}

// apply applies events, the projector's share of a read that ends at last, in one transaction with
// its checkpoint: the checkpoint row is locked first, so of several processes one applies a batch
// and the others find the checkpoint past it. When the batch fails, its events are applied one by
// one and the checkpoint stays just before the first that fails, which holds the projector. It
// reports whether the projector reached last.
func (r *Runtime) apply(st *state, events []eventstore.Envelope, last int64) bool {
	err := r.applyTx(st, events, last, false)
	var held *heldError
	if err != nil && !errors.As(err, &held) {
		err = r.applyTx(st, events, last, true)
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, errPaused):
		st.heldUntil = time.Now().Add(r.opts.Poll) // looked at again after a poll's time, not failing
	case errors.As(err, &held):
		r.failed(st, held.at, held.err)
	default:
		r.failed(st, events[0], err)
	}
	return false
}

// heldError is an event the projector failed on, or a checkpoint paused by a rebuild (at is then
// the first event waiting).
type heldError struct {
	at  eventstore.Envelope
	err error
}

func (e *heldError) Error() string { return e.err.Error() }
func (e *heldError) Unwrap() error { return e.err }

// errPaused holds a projector whose rebuild is swapping in a new model.
var errPaused = errors.New("paused by a rebuild")

func (r *Runtime) applyTx(st *state, events []eventstore.Envelope, last int64, oneByOne bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	tx, err := r.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var stored int64
	var paused bool
	if err := tx.QueryRowContext(ctx, `SELECT position, COALESCE(paused_until > UTC_TIMESTAMP(6), FALSE) FROM `+
		st.quotedCheckpoint()+` WHERE id = 1 FOR UPDATE`).Scan(&stored, &paused); err != nil {
		return fmt.Errorf("lock checkpoint: %w", err)
	}
	if paused {
		return &heldError{at: events[0], err: errPaused}
	}
	if stored >= last { // another process applied them
		st.position.Advance(stored)
		st.applied.Advance(stored)
		return nil
	}
	todo := events
	for len(todo) > 0 && todo[0].Position <= stored {
		todo = todo[1:]
	}
	reached, held := last, (*heldError)(nil)
	if oneByOne {
		reached, held = applyOneByOne(ctx, tx, st, todo, last)
	} else if len(todo) > 0 {
		if err := st.Apply(ctx, tx, st.live, todo); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+st.quotedCheckpoint()+` SET position = ?, updated_at = UTC_TIMESTAMP(6) WHERE id = 1`, reached); err != nil {
		return fmt.Errorf("store checkpoint: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	st.written = time.Now()
	applied := len(todo)
	if held != nil {
		applied = slices.IndexFunc(todo, func(e eventstore.Envelope) bool { return e.Position == held.at.Position })
	}
	r.metrics.applied.WithLabelValues(st.Name()).Add(float64(applied))
	if held == nil {
		r.recovered(st) // before the position moves: whoever waits for it sees the projector running
	}
	st.position.Advance(reached)
	st.applied.Advance(reached)
	if held != nil {
		return held
	}
	return nil
}

// applyOneByOne applies events each in a savepoint and stops at the first that fails: reached is
// then the position just before it.
func applyOneByOne(ctx context.Context, tx *sql.Tx, st *state, events []eventstore.Envelope, last int64) (reached int64, held *heldError) {
	for _, e := range events {
		if err := applyInSavepoint(ctx, tx, st, e); err != nil {
			return e.Position - 1, &heldError{at: e, err: err}
		}
	}
	return last, nil
}

func applyInSavepoint(ctx context.Context, tx *sql.Tx, st *state, e eventstore.Envelope) error {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT apply`); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if err := st.Apply(ctx, tx, st.live, []eventstore.Envelope{e}); err != nil {
		if _, rbErr := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT apply`); rbErr != nil {
			return fmt.Errorf("%w (and rollback to savepoint: %v)", err, rbErr)
		}
		return err
	}
	return nil
}

// sleep waits d unless the runtime stops first; it reports whether it did not.
func (r *Runtime) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.stopping:
		return false
	}
}

func (r *Runtime) isStopping() bool {
	select {
	case <-r.stopping:
		return true
	default:
		return false
	}
}
