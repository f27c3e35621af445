package api

import (
	"context"
	"net/http"
	"time"
)

// Work that a request leaves running after its answer (mailing a link: whether there is an account
// to mail must not show in the answer's time) is bounded in time and number, and the shutdown
// drain waits for it like for a request.
const (
	offPathTimeout = 30 * time.Second
	// maxOffPath is how many such jobs one process runs at once; past it a request is refused
	// with 429 (the per-IP and per-account rate limits keep that rare).
	maxOffPath = 64
)

// offPath runs work after the request is answered, on a context that outlives the request (with
// its values, such as the request id) for at most offPathTimeout. It returns a *Error when
// maxOffPath jobs are running already. A failure of the work is logged: the client was answered.
func (s *Server) offPath(r *http.Request, what string, work func(ctx context.Context) error) error {
	d := &s.drain
	d.mu.Lock()
	if d.offPath >= maxOffPath {
		d.mu.Unlock()
		return rateLimited(time.Second)
	}
	d.running++
	d.offPath++
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), offPathTimeout)
	go func() {
		defer cancel()
		defer d.finished(true)
		if err := work(ctx); err != nil {
			s.log.ErrorContext(ctx, "work after the answer failed", "work", what, "err", err)
		}
	}()
	return nil
}
