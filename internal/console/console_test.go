package console_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/api"
	"github.com/clouddbmanager/clouddb/internal/console"
)

func get(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConsoleRoutes: the page answers every client-side route with its security headers and no
// cache, the hashed assets are cached for a year, and the API's and the operational paths keep
// their own answers.
func TestConsoleRoutes(t *testing.T) {
	srv := api.New(api.Config{Console: console.New()})

	var page string
	for _, path := range []string{"/", "/login", "/verify?token=abc", "/reset-password?token=x",
		"/invitations/accept?token=y", "/databases/0b8e2c1a-4a57-4c39-9d0e-2f8f6f1c2d3e"} {
		resp := get(t, srv, http.MethodGet, path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		want := map[string]string{
			"Content-Type":           "text/html; charset=utf-8",
			"Cache-Control":          "no-cache",
			"X-Content-Type-Options": "nosniff",
			"X-Frame-Options":        "DENY",
			"Referrer-Policy":        "no-referrer",
		}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", path, k, got, v)
			}
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, directive := range []string{"script-src 'self';", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, directive) {
				t.Errorf("GET %s: the CSP %q lacks %q", path, csp, directive)
			}
		}
		if strings.Contains(csp, "unsafe-eval") || strings.Contains(strings.Split(csp, "script-src")[1], "unsafe-inline;") {
			t.Errorf("GET %s: the CSP allows inline or eval'd script: %q", path, csp)
		}
		page = body(t, resp)
	}
	if strings.Contains(page, "<script>") || regexp.MustCompile(`<script(?: [^>]*)?>[^<]`).MatchString(page) {
		t.Errorf("the page has an inline script:\n%s", page)
	}

	assets := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(assets) < 2 {
		t.Fatalf("the page names %d assets, want its script and stylesheet:\n%s", len(assets), page)
	}
	for _, m := range assets {
		path := m[1]
		if !regexp.MustCompile(`-[A-Z0-9]{8}\.(js|css)$`).MatchString(path) {
			t.Errorf("%s has no content hash in its name", path)
		}
		resp := get(t, srv, http.MethodGet, path, "Accept-Encoding", "gzip, br")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s = %d, Cache-Control %q", path, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		// Every script is large enough to gain from compression.
		if strings.HasSuffix(path, ".js") && (resp.Header.Get("Content-Encoding") != "gzip" || len(body(t, resp)) == 0) {
			t.Errorf("GET %s with gzip accepted: Content-Encoding %q", path, resp.Header.Get("Content-Encoding"))
		}
		plain := get(t, srv, http.MethodGet, path)
		if plain.Header.Get("Content-Encoding") != "" || !bytes.Contains([]byte(plain.Header.Get("Content-Type")), []byte("charset=utf-8")) {
			t.Errorf("GET %s without Accept-Encoding: Content-Encoding %q, Content-Type %q", path,
				plain.Header.Get("Content-Encoding"), plain.Header.Get("Content-Type"))
		}
		etag := plain.Header.Get("ETag")
		if again := get(t, srv, http.MethodGet, path, "If-None-Match", etag); etag == "" || again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %q = %d, want 304", path, etag, again.StatusCode)
		}
	}

	// A stale tab asking for an asset of an older build gets a 404, never the page as script.
	if resp := get(t, srv, http.MethodGet, "/assets/main-OLDHASH0.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of a missing asset = %d, want 404", resp.StatusCode)
	}
	for _, path := range []string{"/api/v1/nothing-here", "/api/nothing", "/metrics"} {
		resp := get(t, srv, http.MethodGet, path)
		if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s = %d %s, want the API's JSON 404", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if resp := get(t, srv, http.MethodGet, "/healthz"); resp.StatusCode != http.StatusOK || !strings.Contains(body(t, resp), `"ok"`) {
		t.Errorf("GET /healthz = %d", resp.StatusCode)
	}
	if resp := get(t, srv, http.MethodGet, "/api/v1/openapi.json"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/v1/openapi.json = %d", resp.StatusCode)
	}
	if resp := get(t, srv, http.MethodPost, "/login"); resp.StatusCode == http.StatusOK {
		t.Errorf("POST /login = 200, want the console to answer GET and HEAD only")
	}
}
