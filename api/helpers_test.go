package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"
)

// testPayload is what the test-only route /api/v1/test/decode decodes.
type testPayload struct {
	Name   string `json:"name"`
	Count  int    `json:"count"`
	Nested struct {
		Flag bool `json:"flag"`
	} `json:"nested"`
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logLines decodes the JSON log lines written so far.
func (b *syncBuffer) logLines(t *testing.T) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// newTestServer is a Server with test-only routes under /api/v1/test, logging as JSON into the
// returned buffer.
func newTestServer(t *testing.T, cfg Config) (*Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s := New(cfg)
	api := s.API()
	api.HandleFunc("/test/decode", func(w http.ResponseWriter, r *http.Request) {
		var p testPayload
		if err := decodeJSON(w, r, &p); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	}).Methods(http.MethodPost)
	api.HandleFunc("/test/raw", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int64{"read": n})
	}).Methods(http.MethodPost)
	api.HandleFunc("/test/panic", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", "attachment; filename=x.csv")
		panic("secret-password-42 leaked")
	}).Methods(http.MethodGet)
	api.HandleFunc("/test/panic-after-write", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("partial"))
		panic("too late")
	}).Methods(http.MethodGet)
	api.HandleFunc("/test/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"id": mux.Vars(r)["id"], "request_id": RequestID(r.Context())})
	}).Methods(http.MethodGet, http.MethodPut)
	return s, logs
}

// do serves one request through h and returns the recorded response.
func do(t *testing.T, h http.Handler, method, target string, body io.Reader, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// envelope checks that rec holds exactly the error envelope of API.md and returns its body.
func envelope(t *testing.T, rec *httptest.ResponseRecorder) errorBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q, want application/json; charset=utf-8", ct)
	}
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatalf("body %q is not an error envelope: %v", rec.Body.String(), err)
	}
	if len(raw) != 1 || raw["error"] == nil {
		t.Fatalf("body %q: want exactly the key \"error\"", rec.Body.String())
	}
	for _, k := range []string{"code", "message", "details", "request_id"} {
		if _, ok := raw["error"][k]; !ok {
			t.Errorf("envelope %s lacks %q", rec.Body.String(), k)
		}
	}
	if len(raw["error"]) != 4 {
		t.Errorf("envelope %s: want exactly code, message, details, request_id", rec.Body.String())
	}
	var e errorBody
	dec := json.NewDecoder(bytes.NewReader(raw["error"]["details"]))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Errorf("details = %s, want an object", raw["error"]["details"])
	}
	if err := json.Unmarshal(mustMarshal(t, raw["error"]), &e); err != nil {
		t.Fatalf("envelope %s: %v", rec.Body.String(), err)
	}
	if e.RequestID == "" || e.RequestID != rec.Header().Get("X-Request-Id") {
		t.Errorf("request_id = %q, X-Request-Id = %q; want both equal and set", e.RequestID, rec.Header().Get("X-Request-Id"))
	}
	return e
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
