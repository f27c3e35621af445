package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

func TestRequestIDOnEveryResponse(t *testing.T) {
	s, _ := newTestServer(t, Config{MaxBodyBytes: 16})
	routes := []struct {
		name, method, path string
		body               string
		status             int
	}{
		{"ok", http.MethodGet, "/healthz", "", http.StatusOK},
		{"not found", http.MethodGet, "/nope", "", http.StatusNotFound},
		{"method not allowed", http.MethodPost, "/healthz", "", http.StatusMethodNotAllowed},
		{"panic", http.MethodGet, "/api/v1/test/panic", "", http.StatusInternalServerError},
		{"too large", http.MethodPost, "/api/v1/test/raw", strings.Repeat("x", 17), http.StatusRequestEntityTooLarge},
	}
	ids := []struct {
		name, sent string
		echoed     bool
	}{
		{"sane id echoed", "abc-123.X_y", true},
		{"128 chars echoed", strings.Repeat("a", 128), true},
		{"none sent", "", false},
		{"129 chars replaced", strings.Repeat("a", 129), false},
		{"bad characters replaced", "bad id!", false},
		{"header injection replaced", "a\tb", false},
	}
	for _, rt := range routes {
		for _, id := range ids {
			t.Run(rt.name+"/"+id.name, func(t *testing.T) {
				header := map[string]string{}
				if id.sent != "" {
					header["X-Request-Id"] = id.sent
				}
				rec := do(t, s, rt.method, rt.path, strings.NewReader(rt.body), header)
				if rec.Code != rt.status {
					t.Fatalf("status = %d, want %d", rec.Code, rt.status)
				}
				got := rec.Header().Get("X-Request-Id")
				if id.echoed {
					if got != id.sent {
						t.Errorf("X-Request-Id = %q, want %q echoed", got, id.sent)
					}
				} else if _, err := uuid.Parse(got); err != nil {
					t.Errorf("X-Request-Id = %q, want a new uuid", got)
				}
				if rec.Code >= 400 {
					envelope(t, rec) // checks request_id == X-Request-Id
				}
			})
		}
	}
}

func TestRequestIDInContext(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	rec := do(t, s, http.MethodGet, "/api/v1/test/items/7", nil, map[string]string{"X-Request-Id": "req-1"})
	if !strings.Contains(rec.Body.String(), `"request_id":"req-1"`) {
		t.Errorf("body = %s, want the handler to see request id req-1", rec.Body.String())
	}
	if RequestID(t.Context()) != "" {
		t.Error("RequestID outside a request should be empty")
	}
}

func TestPanicRecovery(t *testing.T) {
	s, logs := newTestServer(t, Config{})
	rec := do(t, s, http.MethodGet, "/api/v1/test/panic", nil, nil)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	e := envelope(t, rec)
	if e.Code != "internal" || e.Message != errInternal.Message {
		t.Errorf("envelope = %+v, want internal with the fixed message", e)
	}
	if strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("panic text leaked to the client: %s", rec.Body.String())
	}
	if cd := rec.Header().Get("Content-Disposition"); cd != "" {
		t.Errorf("Content-Disposition %q of the panicking handler survived", cd)
	}
	var logged bool
	for _, l := range logs.logLines(t) {
		if l["msg"] == "panic serving request" {
			logged = true
			if !strings.Contains(l["panic"].(string), "secret-password-42") || !strings.Contains(l["stack"].(string), "goroutine") {
				t.Errorf("panic log %v lacks the panic value or the stack", l)
			}
			if l["request_id"] != e.RequestID {
				t.Errorf("panic log request_id = %v, want %s", l["request_id"], e.RequestID)
			}
		}
	}
	if !logged {
		t.Errorf("no panic log in %s", logs.String())
	}
}

func TestPanicAfterWriteAbortsConnection(t *testing.T) {
	s, logs := newTestServer(t, Config{})
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler so net/http drops the connection", p)
		}
		if !strings.Contains(logs.String(), "too late") {
			t.Errorf("the panic was not logged: %s", logs.String())
		}
	}()
	do(t, s, http.MethodGet, "/api/v1/test/panic-after-write", nil, nil)
}

func TestBodyLimit(t *testing.T) {
	tests := []struct {
		name          string
		max           int64
		size          int
		unknownLength bool
		status        int
	}{
		{"default limit is 1 MiB: at the limit", 0, 1 << 20, false, http.StatusOK},
		{"default limit is 1 MiB: one byte over", 0, 1<<20 + 1, false, http.StatusRequestEntityTooLarge},
		{"declared length over the limit", 100, 101, false, http.StatusRequestEntityTooLarge},
		{"undeclared length over the limit", 100, 101, true, http.StatusRequestEntityTooLarge},
		{"undeclared length within the limit", 100, 100, true, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, Config{MaxBodyBytes: tt.max})
			req := httptest.NewRequest(http.MethodPost, "/api/v1/test/raw", bytes.NewReader(make([]byte, tt.size)))
			if tt.unknownLength {
				req.ContentLength = -1
				req.Body = io.NopCloser(req.Body)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body.String())
			}
			if tt.status == http.StatusRequestEntityTooLarge {
				e := envelope(t, rec)
				limit := tt.max
				if limit == 0 {
					limit = DefaultMaxBodyBytes
				}
				if e.Code != "payload_too_large" || e.Details["limit_bytes"] != float64(limit) {
					t.Errorf("envelope = %+v, want payload_too_large with limit_bytes %d", e, limit)
				}
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, _ := newTestServer(t, Config{Metrics: reg, Version: "1.2.3"})
	do(t, s, http.MethodGet, "/api/v1/test/items/42", nil, nil)
	do(t, s, http.MethodGet, "/api/v1/test/items/43", nil, nil)
	do(t, s, http.MethodGet, "/no/such/path", nil, nil)
	do(t, s, "BREW", "/healthz", nil, nil)

	rec := do(t, s.MetricsHandler(), http.MethodGet, "/metrics", nil, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`clouddb_http_requests_total{method="GET",route="/api/v1/test/items/{id}",status="200"} 2`,
		`clouddb_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`clouddb_http_requests_total{method="OTHER",route="unmatched",status="405"} 1`,
		`clouddb_http_request_duration_seconds_count{method="GET",route="/api/v1/test/items/{id}"} 2`,
		`clouddb_build_info{version="1.2.3"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "/api/v1/test/items/42") {
		t.Error("/metrics has a raw path as a label; want the route template")
	}
	// The public handler does not serve the metrics: they belong on the operator address.
	if rec := do(t, s, http.MethodGet, "/metrics", nil, nil); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"not_found"`) {
		t.Errorf("GET /metrics on the public handler = %d %s, want 404 not_found", rec.Code, rec.Body.String())
	}
}

func TestMetricsSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, _ := newTestServer(t, Config{Metrics: reg})
	b, _ := newTestServer(t, Config{Metrics: reg}) // must not panic: the collectors are shared
	do(t, a, http.MethodGet, "/healthz", nil, nil)
	do(t, b, http.MethodGet, "/healthz", nil, nil)
	rec := do(t, a.MetricsHandler(), http.MethodGet, "/metrics", nil, nil)
	if !strings.Contains(rec.Body.String(), `clouddb_http_requests_total{method="GET",route="/healthz",status="200"} 2`) {
		t.Errorf("want both servers counted in one registry:\n%s", rec.Body.String())
	}
}

func TestMetricsGatherer(t *testing.T) {
	reg := prometheus.NewRegistry()
	other := prometheus.NewRegistry()
	other.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "other_total", Help: "x"}))
	s := New(Config{Metrics: reg, Gatherer: other})
	rec := do(t, s.MetricsHandler(), http.MethodGet, "/metrics", nil, nil)
	if !strings.Contains(rec.Body.String(), "other_total") {
		t.Errorf("/metrics does not serve Config.Gatherer:\n%s", rec.Body.String())
	}
}

func TestAccessLog(t *testing.T) {
	s, logs := newTestServer(t, Config{})
	req := httptest.NewRequest(http.MethodGet, "/api/v1/test/items/42?token=query-secret", nil)
	req.Header.Set("Authorization", "Bearer header-secret")
	req.Header.Set("X-Request-Id", "log-1")
	req.RemoteAddr = "192.0.2.7:51234"
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)

	if strings.Contains(logs.String(), "secret") {
		t.Errorf("the log holds a secret from the query string or a header:\n%s", logs.String())
	}
	var line map[string]any
	for _, l := range logs.logLines(t) {
		if l["msg"] == "http request" {
			line = l
		}
	}
	if line == nil {
		t.Fatalf("no access log line in %s", logs.String())
	}
	want := map[string]any{
		"method":     "GET",
		"route":      "/api/v1/test/items/{id}",
		"path":       "/api/v1/test/items/42",
		"status":     float64(200),
		"bytes":      float64(rec.Body.Len()),
		"request_id": "log-1",
		"level":      "INFO",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access log %s = %v, want %v", k, line[k], v)
		}
	}
	if _, ok := line["remote_ip"]; ok || strings.Contains(logs.String(), "192.0.2.7") {
		t.Errorf("the access log holds the client's address (personal data): %v", line)
	}
	if _, ok := line["duration_ms"].(float64); !ok {
		t.Errorf("access log duration_ms = %v, want a number", line["duration_ms"])
	}
}

func TestResponseRecorderFlushes(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	s.API().HandleFunc("/test/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("a"))
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through the middleware: %v", err)
		}
		w.(http.Flusher).Flush()
	})
	rec := do(t, s, http.MethodGet, "/api/v1/test/stream", nil, nil)
	if !rec.Flushed {
		t.Error("the response was not flushed")
	}
}
