package api

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/domain"
)

func TestWriteErrorMapping(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		status  int
		code    string
		details map[string]any
		logged  bool
	}{
		{"validation", fmt.Errorf("create database: %w", &domain.ValidationError{Fields: map[string]string{"name": "must match ^[A-Za-z0-9_]{1,64}$"}}),
			http.StatusBadRequest, "validation_failed", map[string]any{"fields": map[string]any{"name": "must match ^[A-Za-z0-9_]{1,64}$"}}, false},
		{"validation without fields", &domain.ValidationError{},
			http.StatusBadRequest, "validation_failed", map[string]any{"fields": map[string]any{}}, false},
		{"not found", fmt.Errorf("database 42: %w", domain.ErrNotFound), http.StatusNotFound, "not_found", map[string]any{}, false},
		{"version conflict", fmt.Errorf("append: %w", domain.ErrVersionConflict), http.StatusConflict, "version_conflict", map[string]any{}, false},
		{"version conflict wins over conflict", errors.Join(domain.ErrConflict, domain.ErrVersionConflict), http.StatusConflict, "version_conflict", map[string]any{}, false},
		{"conflict", fmt.Errorf("claim name: %w", domain.ErrConflict), http.StatusConflict, "conflict", map[string]any{}, false},
		{"unavailable", fmt.Errorf("dial sandbox: %w", domain.ErrUnavailable), http.StatusServiceUnavailable, "unavailable", map[string]any{"retry_after_s": float64(5)}, true},
		{"management database refuses connections", fmt.Errorf("eventstore: append: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}),
			http.StatusServiceUnavailable, "unavailable", map[string]any{"retry_after_s": float64(5)}, true},
		{"management database connection lost", fmt.Errorf("load user: %w", mysql.ErrInvalidConn), http.StatusServiceUnavailable, "unavailable", map[string]any{"retry_after_s": float64(5)}, true},
		{"management database bad connection", fmt.Errorf("idempotency: begin: %w", driver.ErrBadConn), http.StatusServiceUnavailable, "unavailable", map[string]any{"retry_after_s": float64(5)}, true},
		{"management database too busy", fmt.Errorf("read: %w", &mysql.MySQLError{Number: 1040, Message: "Too many connections"}), http.StatusServiceUnavailable, "unavailable", map[string]any{"retry_after_s": float64(5)}, true},
		{"management database deadline", fmt.Errorf("append: %w", context.DeadlineExceeded), http.StatusServiceUnavailable, "unavailable", map[string]any{"retry_after_s": float64(5)}, true},
		{"other mysql errors are internal", fmt.Errorf("read: %w", &mysql.MySQLError{Number: 1146, Message: "Table doesn't exist"}), http.StatusInternalServerError, "internal", map[string]any{}, true},
		{"api error passes through", &Error{Status: http.StatusLocked, Code: "account_locked", Message: "Locked.", Details: map[string]any{"retry_after_s": 900}},
			http.StatusLocked, "account_locked", map[string]any{"retry_after_s": float64(900)}, false},
		{"wrapped api error", fmt.Errorf("login: %w", &Error{Status: http.StatusForbidden, Code: "quota_exceeded", Message: "Quota."}),
			http.StatusForbidden, "quota_exceeded", map[string]any{}, false},
		{"api error without status", &Error{Code: "invalid_request", Message: "Bad."}, http.StatusBadRequest, "invalid_request", map[string]any{}, false},
		{"max bytes", fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 10}), http.StatusRequestEntityTooLarge, "payload_too_large", map[string]any{"limit_bytes": float64(10)}, false},
		{"anything else", errors.New("dial tcp 10.1.2.3:3306: password=hunter2"), http.StatusInternalServerError, "internal", map[string]any{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, logs := newTestServer(t, Config{})
			s.API().HandleFunc("/test/fail", func(w http.ResponseWriter, r *http.Request) {
				s.writeError(w, r, tt.err)
			})
			rec := do(t, s, http.MethodGet, "/api/v1/test/fail", nil, map[string]string{"X-Request-Id": "err-1"})
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			e := envelope(t, rec)
			if e.Code != tt.code {
				t.Errorf("code = %q, want %q", e.Code, tt.code)
			}
			if !reflect.DeepEqual(e.Details, tt.details) {
				t.Errorf("details = %#v, want %#v", e.Details, tt.details)
			}
			if e.Message == "" {
				t.Error("empty message")
			}
			if wantRetry := tt.code == "unavailable"; (rec.Header().Get("Retry-After") == "5") != wantRetry {
				t.Errorf("Retry-After = %q, want 5 only on unavailable", rec.Header().Get("Retry-After"))
			}
			if tt.code == "internal" {
				if e.Message != errInternal.Message || strings.Contains(rec.Body.String(), "hunter2") {
					t.Errorf("internal error text reached the client: %s", rec.Body.String())
				}
			}
			var logged bool
			for _, l := range logs.logLines(t) {
				if l["msg"] == "request failed" {
					logged = true
					if l["request_id"] != "err-1" || !strings.Contains(fmt.Sprint(l["err"]), tt.err.Error()) {
						t.Errorf("error log %v lacks the request id or the error", l)
					}
				}
			}
			if logged != tt.logged {
				t.Errorf("logged = %v, want %v; logs:\n%s", logged, tt.logged, logs.String())
			}
		})
	}
}

func TestNotFoundEnvelope(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	for _, path := range []string{"/nope", "/api/v1/nope", "/api/v1/test/items/1/extra", "/api/v2/openapi.json"} {
		t.Run(path, func(t *testing.T) {
			rec := do(t, s, http.MethodGet, path, nil, nil)
			if rec.Code != http.StatusNotFound {
				t.Fatalf("status = %d, want 404", rec.Code)
			}
			if e := envelope(t, rec); e.Code != "not_found" {
				t.Errorf("code = %q, want not_found", e.Code)
			}
		})
	}
}

func TestMethodNotAllowedEnvelope(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	tests := []struct {
		method, path, allow string
	}{
		{http.MethodPost, "/healthz", "GET"},
		{http.MethodDelete, "/readyz", "GET"},
		{http.MethodPost, "/api/v1/openapi.json", "GET"},
		{http.MethodDelete, "/api/v1/test/items/9", "GET, PUT"},
		{http.MethodGet, "/api/v1/test/decode", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := do(t, s, tt.method, tt.path, nil, nil)
			if rec.Code != http.StatusMethodNotAllowed {
				t.Fatalf("status = %d, want 405", rec.Code)
			}
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			e := envelope(t, rec)
			if e.Code != "method_not_allowed" {
				t.Errorf("code = %q, want method_not_allowed", e.Code)
			}
			if got := fmt.Sprint(e.Details["allowed"]); got != "["+strings.ReplaceAll(tt.allow, ", ", " ")+"]" {
				t.Errorf("details.allowed = %s, want %s", got, tt.allow)
			}
		})
	}
}

func TestWriteJSONUnencodable(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	s.API().HandleFunc("/test/unencodable", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"f": func() {}})
	})
	rec := do(t, s, http.MethodGet, "/api/v1/test/unencodable", nil, nil)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	if e := envelope(t, rec); e.Code != "internal" {
		t.Errorf("code = %q, want internal", e.Code)
	}
}

// Every error message is a sentence, whatever wrote it: the fixed ones, a password rule, a MySQL
// error's text.
func TestErrorMessagesAreSentences(t *testing.T) {
	errs := []error{&domain.WeakPasswordError{Rule: "length"}, &domain.WeakPasswordError{Rule: "symbol"},
		&domain.TenantChoiceError{}, &domain.QuotaExceededError{Resource: "databases"}, &domain.ValidationError{}}
	for _, k := range errorKinds {
		errs = append(errs, k.kind)
	}
	s, _ := newTestServer(t, Config{})
	for _, err := range errs {
		e, _ := toError(err, time.Now())
		rec := httptest.NewRecorder()
		s.respond(rec, httptest.NewRequest(http.MethodGet, "/api/v1/x", nil), e)
		var body errorEnvelope
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		got := body.Error.Message
		if first, _ := utf8.DecodeRuneInString(got); !unicode.IsUpper(first) || !strings.HasSuffix(got, ".") {
			t.Errorf("%v: message %q is not a sentence", err, got)
		}
	}
	for in, want := range map[string]string{"a password needs a digit": "A password needs a digit.", "Unknown column 'x' in 'field list'": "Unknown column 'x' in 'field list'.",
		"élan": "Élan.", "Done!": "Done!", "": ""} {
		if got := sentence(in); got != want {
			t.Errorf("sentence(%q) = %q, want %q", in, got, want)
		}
	}
}
