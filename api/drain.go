package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ErrShuttingDown is the cause with which the process cancels the requests still running at the
// end of its shutdown drain (http.Server.BaseContext): their statements are killed on the server
// and recorded as cancelled, and they are answered 503 unavailable. It wraps context.Canceled.
var ErrShuttingDown = fmt.Errorf("the server is shutting down: %w", context.Canceled)

// drainRetryAfter is the Retry-After of a request refused while the process drains: by then
// another process (or this one restarted) takes it.
const drainRetryAfter = 2 * time.Second

// errDraining answers the requests that arrive while the process drains.
var errDraining = &Error{
	Status:     http.StatusServiceUnavailable,
	Code:       "unavailable",
	Message:    "This server is shutting down; retry in a moment (another one takes the request).",
	Details:    map[string]any{"retry_after_s": int(drainRetryAfter / time.Second)},
	RetryAfter: drainRetryAfter,
}

// drain counts the requests in flight and, once Drain was called, refuses new ones.
type drain struct {
	draining atomic.Bool
	mu       sync.Mutex
	running  int           // requests in flight, and the work they left running (offPath)
	offPath  int           // of which work left running after an answer
	idle     chan struct{} // closed when running drops to 0 while draining
}

// finished counts the end of a request, or of work it left running (offPath).
func (d *drain) finished(offPath bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if offPath {
		d.offPath--
	}
	if d.running--; d.running == 0 && d.idle != nil {
		close(d.idle)
	}
}

// Drain starts the shutdown drain: GET /readyz answers 503 at once, and every request that arrives
// from now on is answered 503 unavailable with Retry-After (the listener stays open, so clients
// are told rather than refused). It returns a channel closed once the requests in flight before
// it have all been answered.
func (s *Server) Drain() <-chan struct{} {
	d := &s.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.idle == nil {
		d.idle = make(chan struct{})
		if d.running == 0 {
			close(d.idle)
		}
	}
	d.draining.Store(true)
	return d.idle
}

// refuseWhileDraining is the outermost handler under the middleware: it counts the requests it lets
// through and refuses new ones during the drain.
func (s *Server) refuseWhileDraining(next http.Handler) http.Handler {
	d := &s.drain
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		if d.draining.Load() && r.URL.Path != "/healthz" { // the process lives on until it exits
			d.mu.Unlock()
			w.Header().Set("Connection", "close")
			s.respond(w, r, errDraining)
			return
		}
		d.running++
		d.mu.Unlock()
		defer d.finished(false)
		next.ServeHTTP(w, r)
	})
}

// shuttingDown reports whether err, or the end of r's context, comes from the shutdown.
func shuttingDown(r *http.Request, err error) bool {
	return errors.Is(err, ErrShuttingDown) || errors.Is(context.Cause(r.Context()), ErrShuttingDown)
}
