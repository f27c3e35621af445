package api

import (
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// A User-Agent reaches the event log (metadata, sessions, failed logins) as valid UTF-8 of at most
// maxUserAgent bytes, cut at a rune boundary; the request id is bounded by withRequestID.
func TestRecordedUserAgentIsBounded(t *testing.T) {
	for name, ua := range map[string]string{
		"short":             "curl/8.5",
		"huge":              strings.Repeat("A", 900_000),
		"multi-byte at cut": strings.Repeat("a", maxUserAgent-1) + "é" + strings.Repeat("b", 100),
		"invalid utf-8":     "agent\xff\xfe" + strings.Repeat("€", 400),
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/v1/auth/login", nil)
			r.Header.Set("User-Agent", ua)
			got := metadata(r.Context(), r).UserAgent
			if len(got) > maxUserAgent || !utf8.ValidString(got) {
				t.Fatalf("recorded user agent: %d bytes, valid UTF-8 %v; want at most %d, valid", len(got), utf8.ValidString(got), maxUserAgent)
			}
			if valid := strings.ToValidUTF8(ua, "\uFFFD"); !strings.HasPrefix(valid, got) || (len(valid) > maxUserAgent && len(got) < maxUserAgent-3) {
				t.Errorf("recorded %q, want the longest prefix of %d bytes of the header", got, maxUserAgent)
			}
		})
	}
}
