// Package watch broadcasts a position that only grows, such as the head of the event log or the
// checkpoint of a projector, to goroutines waiting for it to move.
package watch

import "sync"

// Position is a monotonically growing int64 that can be waited on. The zero value is ready.
type Position struct {
	mu      sync.Mutex
	value   int64
	changed chan struct{}
}

// Advance raises the position to v; lower values are ignored.
func (p *Position) Advance(v int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v <= p.value {
		return
	}
	p.value = v
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// Load returns the position and a channel closed at its next advance.
func (p *Position) Load() (int64, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.value, p.changed
}

// Reset sets the position to v even if lower (after a rebuild replaced a read model) and wakes
// the waiters.
func (p *Position) Reset(v int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.value = v
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}
