package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestHealthz(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	rec := do(t, s, http.MethodGet, "/healthz", nil, nil)
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Errorf("GET /healthz = %d %s, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("dial tcp 127.0.0.1:3307: connection refused") }
	blocked := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name   string
		checks []ReadinessCheck
		status int
		doc    readiness
	}{
		{"no checks", nil, http.StatusOK, readiness{"ready", map[string]string{}}},
		{"all pass", []ReadinessCheck{{"management_db", ok}, {"sandbox_db", ok}}, http.StatusOK,
			readiness{"ready", map[string]string{"management_db": "ok", "sandbox_db": "ok"}}},
		{"one fails", []ReadinessCheck{{"management_db", ok}, {"sandbox_db", down}}, http.StatusServiceUnavailable,
			readiness{"not_ready", map[string]string{"management_db": "ok", "sandbox_db": "down"}}},
		{"one times out", []ReadinessCheck{{"management_db", ok}, {"projections", blocked}}, http.StatusServiceUnavailable,
			readiness{"not_ready", map[string]string{"management_db": "ok", "projections": "timed_out"}}},
		{"check panics", []ReadinessCheck{{"x", func(context.Context) error { panic("boom") }}}, http.StatusServiceUnavailable,
			readiness{"not_ready", map[string]string{"x": "down"}}},
		{"error without text", []ReadinessCheck{{"x", func(context.Context) error { return errors.New("") }}}, http.StatusServiceUnavailable,
			readiness{"not_ready", map[string]string{"x": "down"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, logs := newTestServer(t, Config{Ready: tt.checks})
			s.readyTimeout = 50 * time.Millisecond
			// The answer comes by the readiness timeout; 30 s, 600 times that, leaves a loaded
			// machine room and turns a handler that waits on a check into a failure, not a hang.
			answered := make(chan *httptest.ResponseRecorder, 1)
			go func() { answered <- do(t, s, http.MethodGet, "/readyz", nil, nil) }()
			var rec *httptest.ResponseRecorder
			select {
			case rec = <-answered:
			case <-time.After(30 * time.Second):
				t.Fatal("GET /readyz did not answer within 30 s, want it bounded by the readiness timeout")
			}
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			var got readiness
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %s: %v", rec.Body.String(), err)
			}
			// The document is public: the reasons (addresses, driver errors) go to the log only.
			if strings.Contains(rec.Body.String(), "127.0.0.1") || strings.Contains(rec.Body.String(), "boom") {
				t.Errorf("GET /readyz shows the reason: %s", rec.Body.String())
			}
			if tt.name == "one fails" && !strings.Contains(logs.String(), "127.0.0.1:3307: connection refused") {
				t.Errorf("the reason of a failed check is not logged:\n%s", logs.String())
			}
			if !reflect.DeepEqual(got, tt.doc) {
				t.Errorf("GET /readyz = %+v, want %+v", got, tt.doc)
			}
		})
	}
}

func TestReadyzDefaultTimeout(t *testing.T) {
	if s := New(Config{}); s.readyTimeout != 2*time.Second {
		t.Errorf("readiness timeout = %v, want 2s", s.readyTimeout)
	}
}

func TestNewPanicsOnBadReadinessCheck(t *testing.T) {
	ok := func(context.Context) error { return nil }
	for _, checks := range [][]ReadinessCheck{
		{{Name: "x"}},
		{{Check: ok}},
		{{"db", ok}, {"db", ok}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New accepted %+v", checks)
				}
			}()
			New(Config{Ready: checks})
		}()
	}
}

// TestNoGoroutineLeak serves a mix of requests, readiness checks that time out among them, and
// waits for the goroutine count to come back.
func TestNoGoroutineLeak(t *testing.T) {
	returned := make(chan struct{}, 10)
	slow := func(ctx context.Context) error {
		<-ctx.Done()
		returned <- struct{}{}
		return ctx.Err()
	}
	s, _ := newTestServer(t, Config{Ready: []ReadinessCheck{{"slow", slow}}})
	s.readyTimeout = 20 * time.Millisecond
	before := runtime.NumGoroutine()
	for range 10 {
		do(t, s, http.MethodGet, "/readyz", nil, nil)
		do(t, s, http.MethodGet, "/api/v1/test/panic", nil, nil)
		do(t, s, http.MethodGet, "/nope", nil, nil)
	}
	for range 10 {
		select {
		case <-returned:
		case <-time.After(5 * time.Second):
			t.Fatal("a readiness check was not cancelled")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}
