package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/idempotency"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// idemServer is a Server with an idempotency store on a test database and test routes behind
// s.idempotent, as mount puts authenticated POSTs. The principal comes from X-Test-User (or
// X-Test-Key for an API key) instead of a session. Each route counts its runs.
type idemServer struct {
	*Server
	runs    atomic.Int64
	release chan struct{} // /test/idem/slow waits for it
	started chan struct{} // /test/idem/slow signals it has begun
	db      *sql.DB
}

// keptKeys counts the rows of the idempotency store.
func (s *idemServer) keptKeys(t *testing.T) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM idempotency_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func newIdemServer(t *testing.T, maxBody int64) *idemServer {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	db := testdb.New(t)
	store, err := idempotency.New(db, key)
	if err != nil {
		t.Fatal(err)
	}
	s := &idemServer{db: db, Server: New(Config{Idempotency: store, MaxBodyBytes: maxBody, Logger: slog.New(slog.DiscardHandler)}),
		release: make(chan struct{}), started: make(chan struct{}, 1)}
	handle := func(path string, h http.HandlerFunc) {
		wrapped := s.idempotent(func(w http.ResponseWriter, r *http.Request) {
			s.runs.Add(1)
			h(w, r)
		})
		s.API().HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			p := Principal{UserID: domain.UserID(r.Header.Get("X-Test-User")), APIKeyID: domain.APIKeyID(r.Header.Get("X-Test-Key"))}
			wrapped(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		}).Methods(http.MethodPost)
	}
	// create echoes its body and run number, with a Location: a new resource per run.
	handle("/test/idem/create", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := decodeJSON(w, r, &body); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Location", fmt.Sprintf("/api/v1/things/%d", s.runs.Load()))
		writeJSON(w, http.StatusCreated, map[string]any{"run": s.runs.Load(), "body": body})
	})
	// status answers ?status= (the first run), then 201.
	handle("/test/idem/status", func(w http.ResponseWriter, r *http.Request) {
		if s.runs.Load() == 1 {
			var code int
			fmt.Sscan(r.URL.Query().Get("status"), &code)
			if code == 0 {
				panic("first run panics")
			}
			s.respond(w, r, &Error{Status: code, Code: "test", Message: "first run"})
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"run": s.runs.Load()})
	})
	handle("/test/idem/slow", func(w http.ResponseWriter, r *http.Request) {
		s.started <- struct{}{}
		<-s.release
		writeJSON(w, http.StatusOK, map[string]any{"run": s.runs.Load()})
	})
	handle("/test/idem/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(bytes.Repeat([]byte("x"), idempotency.MaxBodySize))
		w.Write([]byte("and more"))
	})
	// read answers like a read query: its answer is not to be kept.
	handle("/test/idem/read", func(w http.ResponseWriter, r *http.Request) {
		dontKeepAnswer(r)
		writeJSON(w, http.StatusOK, map[string]any{"run": s.runs.Load()})
	})
	handle("/test/idem/empty", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	return s
}

func (s *idemServer) post(t *testing.T, path, body string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json", "X-Test-User": "user-1"}
	for k, v := range header {
		h[k] = v
	}
	return do(t, s, http.MethodPost, path, strings.NewReader(body), h)
}

func TestIdempotencyReplay(t *testing.T) {
	s := newIdemServer(t, 0)
	key := map[string]string{"Idempotency-Key": "create-1"}
	first := s.post(t, "/api/v1/test/idem/create", `{"name":"a"}`, key)
	if first.Code != http.StatusCreated || first.Header().Get(replayedHeader) != "" {
		t.Fatalf("first = %d %s, %v", first.Code, first.Body, first.Header())
	}
	second := s.post(t, "/api/v1/test/idem/create", `{"name":"a"}`, map[string]string{"Idempotency-Key": "create-1", "X-Request-Id": "retry-1"})
	if second.Code != http.StatusCreated || second.Body.String() != first.Body.String() ||
		second.Header().Get("Location") != first.Header().Get("Location") || second.Header().Get("Location") == "" ||
		second.Header().Get("Content-Type") != contentTypeJSON || second.Header().Get(replayedHeader) != "true" ||
		second.Header().Get("X-Request-Id") != "retry-1" {
		t.Errorf("replay = %d %s %v; first %d %s %v", second.Code, second.Body, second.Header(), first.Code, first.Body, first.Header())
	}
	if n := s.runs.Load(); n != 1 {
		t.Errorf("the handler ran %d times, want once", n)
	}
	// The handler read the whole body although the check read it first.
	if !strings.Contains(first.Body.String(), `"body":{"name":"a"}`) {
		t.Errorf("the handler saw another body: %s", first.Body)
	}

	// Another body, query or path with the key: 409 conflict, nothing runs.
	for _, c := range []struct{ path, body string }{
		{"/api/v1/test/idem/create", `{"name":"b"}`},
		{"/api/v1/test/idem/create?confirm=true", `{"name":"a"}`},
		{"/api/v1/test/idem/status", `{"name":"a"}`},
	} {
		rec := s.post(t, c.path, c.body, key)
		if e := envelope(t, rec); rec.Code != http.StatusConflict || e.Code != "conflict" || !strings.Contains(e.Message, "another request") {
			t.Errorf("%s %s with a used key = %d %s", c.path, c.body, rec.Code, rec.Body)
		}
	}
	// Without the header, or for another principal, the request is new.
	if rec := s.post(t, "/api/v1/test/idem/create", `{"name":"a"}`, nil); rec.Code != http.StatusCreated || rec.Header().Get(replayedHeader) != "" {
		t.Errorf("without a key = %d %v", rec.Code, rec.Header())
	}
	for _, who := range []map[string]string{{"X-Test-User": "user-2"}, {"X-Test-Key": "user-1"}} {
		who["Idempotency-Key"] = "create-1"
		if rec := s.post(t, "/api/v1/test/idem/create", `{"name":"a"}`, who); rec.Code != http.StatusCreated || rec.Header().Get(replayedHeader) != "" {
			t.Errorf("the key of another principal %v = %d %v", who, rec.Code, rec.Header())
		}
	}
	if n := s.runs.Load(); n != 4 {
		t.Errorf("the handler ran %d times, want 4", n)
	}
	// A 204 replays without a body.
	s.post(t, "/api/v1/test/idem/empty", ``, map[string]string{"Idempotency-Key": "empty"})
	if rec := s.post(t, "/api/v1/test/idem/empty", ``, map[string]string{"Idempotency-Key": "empty"}); rec.Code != http.StatusNoContent ||
		rec.Body.Len() != 0 || rec.Header().Get(replayedHeader) != "true" {
		t.Errorf("replay of a 204 = %d %q %v", rec.Code, rec.Body, rec.Header())
	}
}

func TestIdempotencyKeyValidation(t *testing.T) {
	s := newIdemServer(t, 0)
	for name, value := range map[string]string{
		"too long":  strings.Repeat("k", 256),
		"non-ASCII": "clé",
		"control":   "a\x01b",
	} {
		rec := s.post(t, "/api/v1/test/idem/create", `{}`, map[string]string{"Idempotency-Key": value})
		e := envelope(t, rec)
		fields, _ := e.Details["fields"].(map[string]any)
		if rec.Code != http.StatusBadRequest || e.Code != "validation_failed" || fields["Idempotency-Key"] == nil {
			t.Errorf("%s key = %d %s", name, rec.Code, rec.Body)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/test/idem/create", strings.NewReader(`{}`))
	req.Header.Set("X-Test-User", "u")
	req.Header["Idempotency-Key"] = []string{""}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("an empty key = %d %s", rec.Code, rec.Body)
	}
	req.Header["Idempotency-Key"] = []string{"a", "b"}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("two keys = %d %s", rec.Code, rec.Body)
	}
	if rec := s.post(t, "/api/v1/test/idem/create", `{}`, map[string]string{"Idempotency-Key": strings.Repeat("~", 255) + ""}); rec.Code != http.StatusCreated {
		t.Errorf("a 255-character key = %d %s", rec.Code, rec.Body)
	}
	if rec := s.post(t, "/api/v1/test/idem/create", `{}`, map[string]string{"Idempotency-Key": "with spaces inside"}); rec.Code != http.StatusCreated {
		t.Errorf("a key with spaces = %d %s", rec.Code, rec.Body)
	}
	if n := s.runs.Load(); n != 2 {
		t.Errorf("the handler ran %d times, want 2 (invalid keys never reach it)", n)
	}
}

// A 5xx, a 429 and a panic leave the key free for a retry; a 4xx is the key's answer.
func TestIdempotencyOutcomes(t *testing.T) {
	for _, c := range []struct {
		status  int
		replays bool
	}{{500, false}, {503, false}, {429, false}, {0, false}, {403, true}, {409, true}, {400, true}} {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			s := newIdemServer(t, 0)
			path := fmt.Sprintf("/api/v1/test/idem/status?status=%d", c.status)
			key := map[string]string{"Idempotency-Key": "k"}
			first := s.post(t, path, `{}`, key)
			want := c.status
			if want == 0 {
				want = http.StatusInternalServerError // the panic
			}
			if first.Code != want {
				t.Fatalf("first = %d %s, want %d", first.Code, first.Body, want)
			}
			second := s.post(t, path, `{}`, key)
			if c.replays {
				if second.Code != c.status || second.Body.String() != first.Body.String() || second.Header().Get(replayedHeader) != "true" {
					t.Errorf("retry = %d %s %v, want the first %d replayed", second.Code, second.Body, second.Header(), c.status)
				}
			} else if second.Code != http.StatusCreated || second.Header().Get(replayedHeader) != "" {
				t.Errorf("retry = %d %s, want a new run (201)", second.Code, second.Body)
			}
			if third := s.post(t, path, `{}`, key); third.Code != second.Code || third.Body.String() != second.Body.String() {
				t.Errorf("third = %d %s, want the second replayed", third.Code, third.Body)
			}
		})
	}
}

func TestIdempotencyRunning(t *testing.T) {
	s := newIdemServer(t, 0)
	key := map[string]string{"Idempotency-Key": "slow"}
	var wg sync.WaitGroup
	var first *httptest.ResponseRecorder
	wg.Go(func() { first = s.post(t, "/api/v1/test/idem/slow", `{}`, key) })
	select {
	case <-s.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow handler did not start")
	}
	rec := s.post(t, "/api/v1/test/idem/slow", `{}`, key)
	e := envelope(t, rec)
	if rec.Code != http.StatusConflict || e.Code != "conflict" || !strings.Contains(e.Message, "still running") || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("while running = %d %s %v", rec.Code, rec.Body, rec.Header())
	}
	close(s.release)
	wg.Wait()
	if first.Code != http.StatusOK {
		t.Fatalf("first = %d %s", first.Code, first.Body)
	}
	if rec := s.post(t, "/api/v1/test/idem/slow", `{}`, key); rec.Code != http.StatusOK || rec.Body.String() != first.Body.String() {
		t.Errorf("after it finished = %d %s", rec.Code, rec.Body)
	}
}

func TestIdempotencyLimits(t *testing.T) {
	s := newIdemServer(t, 64)
	// A body over the limit is refused before the key is used; a later fitting one may use it.
	key := map[string]string{"Idempotency-Key": "k"}
	big := io.MultiReader(strings.NewReader(`{"name":"`), strings.NewReader(strings.Repeat("a", 100)), strings.NewReader(`"}`))
	req := httptest.NewRequest(http.MethodPost, "/api/v1/test/idem/create", big)
	req.ContentLength = -1 // unknown: the limit is found while reading
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-User", "u")
	req.Header.Set("Idempotency-Key", "k")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if e := envelope(t, rec); rec.Code != http.StatusRequestEntityTooLarge || e.Code != "payload_too_large" {
		t.Errorf("a body over the limit = %d %s", rec.Code, rec.Body)
	}
	if rec := s.post(t, "/api/v1/test/idem/create", `{"name":"a"}`, key); rec.Code != http.StatusCreated {
		t.Errorf("a fitting body with the key = %d %s", rec.Code, rec.Body)
	}

	// A response over 64 KiB is answered, but a replay cannot give it (nor run it again): 409
	// naming its status, and the key keeps no body.
	key = map[string]string{"Idempotency-Key": "big"}
	if rec := s.post(t, "/api/v1/test/idem/big", ``, key); rec.Code != http.StatusOK || rec.Body.Len() != idempotency.MaxBodySize+8 {
		t.Fatalf("big = %d, %d bytes", rec.Code, rec.Body.Len())
	}
	rec = s.post(t, "/api/v1/test/idem/big", ``, key)
	e := envelope(t, rec)
	if rec.Code != http.StatusConflict || e.Code != "conflict" || !strings.Contains(e.Message, "too large") || !strings.Contains(e.Message, "200") ||
		e.Details["limit_bytes"] != float64(64<<10) {
		t.Errorf("replay of a big response = %d %s", rec.Code, rec.Body)
	}
	var stored sql.NullInt64
	if err := s.db.QueryRow(`SELECT LENGTH(body) FROM idempotency_keys WHERE idem_key = 'big'`).Scan(&stored); err != nil || stored.Valid {
		t.Errorf("the big answer is stored: %v bytes, %v", stored, err)
	}
}

// Requests that change nothing keep no answer, so a viewer's reads cannot fill the management
// database: a dry run ignores the header, and an answer marked dontKeepAnswer releases its key.
func TestIdempotencyKeepsNoAnswerToReads(t *testing.T) {
	s := newIdemServer(t, 0)
	for _, path := range []string{"/api/v1/test/idem/create?dry_run=true", "/api/v1/test/idem/read"} {
		for range 2 {
			if rec := s.post(t, path, `{"name":"a"}`, map[string]string{"Idempotency-Key": "k-" + path}); rec.Code/100 != 2 ||
				rec.Header().Get(replayedHeader) != "" {
				t.Errorf("%s = %d %v, want it run, not replayed", path, rec.Code, rec.Header())
			}
		}
	}
	if n := s.runs.Load(); n != 4 {
		t.Errorf("the handlers ran %d times, want 4", n)
	}
	if n := s.keptKeys(t); n != 0 {
		t.Errorf("%d keys kept for requests that change nothing, want 0", n)
	}
}

// Public POSTs ignore the header; mount gives it to the others.
func TestIdempotencyOnlyAuthenticatedPOSTs(t *testing.T) {
	s := newIdemServer(t, 0)
	var runs atomic.Int64
	count := func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"run": runs.Load()})
	}
	s.mount([]route{{"POST", "/test/public", public, count}})
	for range 2 {
		rec := s.post(t, "/api/v1/test/public", `{}`, map[string]string{"Idempotency-Key": "k"})
		if rec.Code != http.StatusOK || rec.Header().Get(replayedHeader) != "" {
			t.Errorf("public POST = %d %v", rec.Code, rec.Header())
		}
	}
	if runs.Load() != 2 {
		t.Errorf("the public route ran %d times, want 2", runs.Load())
	}
	// An authenticated route without credentials is refused by the guard before any key is used.
	s.mount([]route{{"POST", "/test/private", authenticated, count}})
	rec := s.post(t, "/api/v1/test/private", `{}`, map[string]string{"Idempotency-Key": "k"})
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("authenticated POST without credentials = %d", rec.Code)
	}
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
}

func TestIdempotencyErrorMapping(t *testing.T) {
	for err, want := range map[error]string{
		idempotency.ErrKeyReused:                      "another request",
		idempotency.ErrInProgress:                     "still running",
		&idempotency.TooLargeError{Status: 201}:       "it was 201",
		fmt.Errorf("x: %w", idempotency.ErrKeyReused): "another request",
	} {
		e, logIt := toError(err, time.Now())
		if e.Status != http.StatusConflict || e.Code != "conflict" || !strings.Contains(e.Message, want) || logIt {
			t.Errorf("toError(%v) = %+v, %v", err, e, logIt)
		}
	}
	full := &idempotency.FullError{Scope: "principal", Limit: 1000, RetryAfter: 90 * time.Minute}
	if e, logIt := toError(full, time.Now()); e.Status != http.StatusTooManyRequests || e.Code != "rate_limited" ||
		e.RetryAfter != 90*time.Minute || e.Details["retry_after_s"] != int64(5400) || e.Details["limit"] != int64(1000) || logIt {
		t.Errorf("toError(FullError) = %+v, %v; want 429 rate_limited with Retry-After", e, logIt)
	}
	if e, _ := toError(idempotency.ErrInProgress, time.Now()); e.RetryAfter != time.Second {
		t.Errorf("still running: Retry-After %v, want 1 s", e.RetryAfter)
	}
	if e, _ := toError(errors.New("db down"), time.Now()); e.Status != http.StatusInternalServerError {
		t.Errorf("another error = %d", e.Status)
	}
}

// TestIdempotencyKeyHoldsTheAnswerBeforeTheClient: the key has recorded the answer before the
// client gets its first byte, so a process that dies in between leaves a key whose retry replays
// the answer instead of one whose outcome is unknown.
func TestIdempotencyKeyHoldsTheAnswerBeforeTheClient(t *testing.T) {
	s := newIdemServer(t, 0)
	kept := -1
	w := &firstWriteHook{ResponseRecorder: httptest.NewRecorder(), hook: func() {
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM idempotency_keys WHERE idem_key = 'before-1' AND status IS NOT NULL`).Scan(&kept); err != nil {
			t.Error(err)
		}
	}}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/test/idem/create", strings.NewReader(`{"name":"a"}`))
	for k, v := range map[string]string{"Content-Type": "application/json", "X-Test-User": "user-1", "Idempotency-Key": "before-1"} {
		req.Header.Set(k, v)
	}
	s.ServeHTTP(w, req)
	if w.Code != http.StatusCreated || kept != 1 {
		t.Errorf("answer %d; keys holding the answer when the client got its status: %d, want 1", w.Code, kept)
	}
}

// firstWriteHook calls hook when the response's status is written.
type firstWriteHook struct {
	*httptest.ResponseRecorder
	hook func()
}

func (w *firstWriteHook) WriteHeader(code int) {
	if w.hook != nil {
		w.hook()
		w.hook = nil
	}
	w.ResponseRecorder.WriteHeader(code)
}
