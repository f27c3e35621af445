package queryexec

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Process-wide bounds of the query engine and their defaults (EngineOptions).
const (
	// MaxRowBytes bounds one row of a result (its JSON): the answer to a query and a page of
	// results carry at least one row, so no answer needs more than this and inlineBytes.
	MaxRowBytes = 8 << 20
	// DefaultMaxResultBytes bounds the rows of one result (their JSON), kept for pages and exports.
	DefaultMaxResultBytes = 256 << 20
	// DefaultQueriesInFlight bounds the statements the process runs at once, all tenants together
	// (each tenant's plan bounds its own first).
	DefaultQueriesInFlight = 256
	// DefaultQueryMemory bounds the bytes of rows the running statements hold in memory together:
	// the row each is reading and the rows they answer inline.
	DefaultQueryMemory = 128 << 20
	// DefaultAdmissionWait is how long a statement waits for a place or for memory before it is
	// refused as busy.
	DefaultAdmissionWait = 2 * time.Second
)

// TooLargeError: a result, or one of its rows, is larger than the engine keeps or answers; the
// statement was stopped as soon as it was, and nothing of it is kept. Reason is "row_too_large"
// or "result_too_large".
type TooLargeError struct {
	Reason string
	Limit  int64 // bytes
}

func (e *TooLargeError) Error() string {
	if e.Reason == "row_too_large" {
		return fmt.Sprintf("queryexec: a row of the result is larger than %d bytes", e.Limit)
	}
	return fmt.Sprintf("queryexec: the result is larger than %d bytes", e.Limit)
}

// admission bounds what the running statements of the process hold together: how many run, and
// the bytes of rows they hold in memory.
type admission struct {
	wait   time.Duration
	places chan struct{}
	memory *byteBudget
}

func newAdmission(queries int, memory int64, wait time.Duration) *admission {
	return &admission{wait: wait, places: make(chan struct{}, queries), memory: newByteBudget(memory)}
}

// enter takes a place for one statement, waiting up to a.wait; the returned func gives it back.
func (a *admission) enter(ctx context.Context) (func(), error) {
	select {
	case a.places <- struct{}{}:
		return func() { <-a.places }, nil
	default:
	}
	t := time.NewTimer(a.wait)
	defer t.Stop()
	select {
	case a.places <- struct{}{}:
		return func() { <-a.places }, nil
	case <-t.C:
		return nil, &BusyError{Scope: "server", Message: fmt.Sprintf("the server runs %d queries at once, its limit", cap(a.places))}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// hold takes n bytes of memory for a row, waiting up to a.wait for others to give some back.
func (a *admission) hold(ctx context.Context, n int64) error {
	if a.memory.tryTake(n) {
		return nil
	}
	waitCtx, cancel := context.WithTimeout(ctx, a.wait)
	defer cancel()
	if a.memory.take(waitCtx, n) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return &BusyError{Scope: "server", Message: fmt.Sprintf("the rows of the running queries fill the server's %d bytes for them", a.memory.size)}
}

// byteBudget is a counting semaphore of bytes.
type byteBudget struct {
	size  int64
	mu    sync.Mutex
	free  int64
	freed chan struct{} // closed (and replaced) whenever bytes are given back
}

func newByteBudget(size int64) *byteBudget {
	return &byteBudget{size: size, free: size, freed: make(chan struct{})}
}

// tryTake takes n bytes if they are free.
func (b *byteBudget) tryTake(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.free < n {
		return false
	}
	b.free -= n
	return true
}

// take takes n bytes, waiting for them until ctx ends; false when they never came (at once when n
// is more than the whole budget).
func (b *byteBudget) take(ctx context.Context, n int64) bool {
	if n > b.size {
		return false
	}
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return true
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return false
		}
	}
}

// give gives back n bytes.
func (b *byteBudget) give(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	close(b.freed)
	b.freed = make(chan struct{})
}
