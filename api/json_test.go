package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDecodeJSON(t *testing.T) {
	const jsonCT = "application/json"
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
		details     map[string]any // the keys to check, when set
		message     string         // a substring of the message, when set
	}{
		{"ok", jsonCT, `{"name":"a","count":2,"nested":{"flag":true}}`, http.StatusOK, "", nil, ""},
		{"ok with charset and trailing whitespace", "application/json; charset=UTF-8", "{\"name\":\"a\"}\n\t ", http.StatusOK, "", nil, ""},
		{"no content type", "", `{"name":"a"}`, http.StatusUnsupportedMediaType, "unsupported_media_type", map[string]any{"content_type": ""}, ""},
		{"text/plain", "text/plain", `{"name":"a"}`, http.StatusUnsupportedMediaType, "unsupported_media_type", map[string]any{"content_type": "text/plain"}, ""},
		{"other charset", "application/json; charset=latin1", `{"name":"a"}`, http.StatusUnsupportedMediaType, "unsupported_media_type", nil, ""},
		{"json lookalike", "application/jsonp", `{"name":"a"}`, http.StatusUnsupportedMediaType, "unsupported_media_type", nil, ""},
		{"unknown field", jsonCT, `{"name":"a","nmae":"b"}`, http.StatusBadRequest, "invalid_request", map[string]any{"field": "nmae"}, `"nmae"`},
		{"wrong type", jsonCT, `{"count":"two"}`, http.StatusBadRequest, "invalid_request", map[string]any{"field": "count", "expected": "integer"}, `"count"`},
		{"wrong nested type", jsonCT, `{"nested":{"flag":1}}`, http.StatusBadRequest, "invalid_request", map[string]any{"field": "nested.flag", "expected": "boolean"}, `"nested.flag"`},
		{"not an object", jsonCT, `[1,2]`, http.StatusBadRequest, "invalid_request", map[string]any{"expected": "object"}, "JSON object"},
		{"null", jsonCT, `null`, http.StatusBadRequest, "invalid_request", nil, "null"},
		{"malformed", jsonCT, `{"name": "a",}`, http.StatusBadRequest, "invalid_request", map[string]any{"offset": float64(14)}, "offset 14"},
		{"truncated", jsonCT, `{"name": "a"`, http.StatusBadRequest, "invalid_request", map[string]any{"offset": float64(12)}, "offset 12"},
		{"empty", jsonCT, ``, http.StatusBadRequest, "invalid_request", nil, "empty"},
		{"blank", jsonCT, " \n ", http.StatusBadRequest, "invalid_request", nil, "empty"},
		{"second object", jsonCT, `{"name":"a"} {"name":"b"}`, http.StatusBadRequest, "invalid_request", map[string]any{"offset": float64(13)}, "after the JSON object"},
		{"trailing garbage", jsonCT, `{"name":"a"}x`, http.StatusBadRequest, "invalid_request", map[string]any{"offset": float64(12)}, "after the JSON object"},
		{"oversize", jsonCT, `{"name":"` + strings.Repeat("x", 200) + `"}`, http.StatusRequestEntityTooLarge, "payload_too_large", map[string]any{"limit_bytes": float64(128)}, ""},
	}
	for _, tt := range tests {
		for _, declared := range []bool{true, false} {
			name := tt.name
			if !declared {
				name += " (chunked)"
			}
			t.Run(name, func(t *testing.T) {
				s, _ := newTestServer(t, Config{MaxBodyBytes: 128})
				req := httptest.NewRequest(http.MethodPost, "/api/v1/test/decode", strings.NewReader(tt.body))
				if !declared {
					req.ContentLength = -1
					req.Body = io.NopCloser(req.Body)
				}
				if tt.contentType != "" {
					req.Header.Set("Content-Type", tt.contentType)
				}
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != tt.status {
					t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body.String())
				}
				if tt.status == http.StatusOK {
					return
				}
				e := envelope(t, rec)
				if e.Code != tt.code {
					t.Errorf("code = %q, want %q", e.Code, tt.code)
				}
				for k, v := range tt.details {
					if e.Details[k] != v {
						t.Errorf("details.%s = %#v, want %#v (message %q)", k, e.Details[k], v, e.Message)
					}
				}
				if !strings.Contains(e.Message, tt.message) {
					t.Errorf("message = %q, want it to mention %q", e.Message, tt.message)
				}
			})
		}
	}
}

func TestDecodeJSONValue(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	rec := do(t, s, http.MethodPost, "/api/v1/test/decode", bytes.NewBufferString(`{"name":"db_1","count":3,"nested":{"flag":true}}`),
		map[string]string{"Content-Type": "application/json"})
	want := `{"name":"db_1","count":3,"nested":{"flag":true}}` + "\n"
	if rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Errorf("got %d %s, want 200 %s", rec.Code, rec.Body.String(), want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestDecodeJSONBadTarget(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	var notAPointer testPayload
	err := decodeJSON(httptest.NewRecorder(), req, notAPointer)
	if e, _ := toError(err, time.Now()); e.Code != "internal" {
		t.Errorf("decoding into a non-pointer: %v maps to %q, want internal", err, e.Code)
	}
}
