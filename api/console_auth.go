package api

import (
	"net/http"
	"time"
)

// The web console keeps its access token in memory only and its refresh token in an httpOnly
// cookie that script cannot read (docs/SECURITY.md, "The web console"). The console marks its
// requests with consoleHeader: a cross-site form, link or image cannot send a custom header, and
// cross-origin script may not without a CORS grant this API never gives, so the cookie is honoured
// only for the console's own same-origin script. SameSite=Strict and the JSON Content-Type
// POST /auth/refresh demands are two more walls against a forged refresh.
const (
	consoleHeader      = "X-CloudDB-Console"
	refreshCookieName  = "clouddb_refresh"
	refreshCookiePath  = "/api/v1/auth/" // refresh and logout, nothing else
	consoleHeaderValue = "1"
)

// fromConsole reports whether r was sent by the web console's own script.
func fromConsole(r *http.Request) bool { return r.Header.Get(consoleHeader) == consoleHeaderValue }

// keepRefreshInCookie moves the refresh token of pair out of the body into the console's cookie,
// living as long as the session may.
func (s *Server) keepRefreshInCookie(w http.ResponseWriter, pair *tokenPair, expires time.Time) {
	c := &http.Cookie{Name: refreshCookieName, Value: pair.RefreshToken, Path: refreshCookiePath,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.identity.SecureCookie}
	if !expires.IsZero() {
		c.Expires = expires
	}
	http.SetCookie(w, c)
	pair.RefreshToken = ""
}

// consoleRefreshToken is the refresh token of the console's cookie, "" when r is not the
// console's or carries none.
func consoleRefreshToken(r *http.Request) string {
	if !fromConsole(r) {
		return ""
	}
	c, err := r.Cookie(refreshCookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// clearRefreshCookie ends the console's cookie (logout).
func (s *Server) clearRefreshCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: refreshCookieName, Value: "", Path: refreshCookiePath, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.identity.SecureCookie})
}
