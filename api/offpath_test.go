package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Work left running after an answer (mailing a link) does not hold the answer back, and the
// shutdown drain waits for it like for a request.
func TestOffPathWorkRunsAfterTheAnswerAndHoldsTheDrain(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	release, ran := make(chan struct{}), make(chan struct{})
	s.API().HandleFunc("/test/later", func(w http.ResponseWriter, r *http.Request) {
		err := s.offPath(r, "test", func(ctx context.Context) error {
			<-release
			close(ran)
			return ctx.Err()
		})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}).Methods(http.MethodPost)

	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/test/later", nil))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("answer %d before the work ran, want 202", rec.Code)
	}
	idle := s.Drain()
	select {
	case <-idle:
		t.Fatal("the drain ended while work after an answer was still running")
	default:
	}
	close(release)
	<-ran
	<-idle
}

// The work left running is bounded: past maxOffPath jobs a request is refused, not queued.
func TestOffPathWorkIsBounded(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	release := make(chan struct{})
	defer close(release)
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	for i := 0; i < maxOffPath; i++ {
		if err := s.offPath(r, "test", func(context.Context) error { <-release; return nil }); err != nil {
			t.Fatalf("job %d refused: %v", i, err)
		}
	}
	err := s.offPath(r, "test", func(context.Context) error { return nil })
	if e, ok := err.(*Error); !ok || e.Status != http.StatusTooManyRequests {
		t.Errorf("job %d: %v, want 429", maxOffPath+1, err)
	}
}
