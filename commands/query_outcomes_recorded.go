package commands

import (
	"context"
	"sync"
)

// unrecorded is the outcomes a QueryRunner queued into the log's group commit and does not know
// to be committed (or given up) yet. A statement is answered once its outcome is queued, before
// the flush; a read that follows the answer (the history, the audit log) waits for it here.
type unrecorded struct {
	mu      sync.Mutex
	next    uint64              // the ticket of the next outcome queued
	open    map[uint64]struct{} // tickets of outcomes not yet recorded
	settled chan struct{}       // closed when one is recorded; nil while nobody waits
}

// add returns the ticket of an outcome about to be queued.
func (u *unrecorded) add() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.open == nil {
		u.open = map[uint64]struct{}{}
	}
	n := u.next
	u.next++
	u.open[n] = struct{}{}
	return n
}

// done says the outcome of ticket n is committed, or given up.
func (u *unrecorded) done(n uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.open, n)
	if u.settled != nil {
		close(u.settled)
		u.settled = nil
	}
}

// wait waits until every outcome queued before the call is done, or ctx ends.
func (u *unrecorded) wait(ctx context.Context) error {
	u.mu.Lock()
	before := u.next
	u.mu.Unlock()
	for {
		u.mu.Lock()
		pending := false
		for n := range u.open {
			if n < before {
				pending = true
				break
			}
		}
		if !pending {
			u.mu.Unlock()
			return nil
		}
		if u.settled == nil {
			u.settled = make(chan struct{})
		}
		settled := u.settled
		u.mu.Unlock()
		select {
		case <-settled:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// OutcomesRecorded waits until the outcomes of the statements this process answered before the
// call are in the log (or given up after their retries), or ctx ends. A read model that follows
// the log then holds them once it reaches this process's head (eventstore.Store.LocalHead).
func (h *QueryRunner) OutcomesRecorded(ctx context.Context) error { return h.unrecorded.wait(ctx) }
