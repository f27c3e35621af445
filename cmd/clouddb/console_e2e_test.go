package main

// End-to-end tests of the web console's side of the API: the refresh token it keeps in an
// httpOnly cookie (docs/SECURITY.md, "The web console").

import (
	"net/http"
	"testing"
)

// consoleClient returns a copy of c that sends the console's header and, when refresh is not
// empty, its refresh cookie.
func consoleClient(c *e2eClient, refresh string) *e2eClient {
	d := *c
	d.headers = map[string]string{"X-CloudDB-Console": "1"}
	if refresh != "" {
		d.headers["Cookie"] = "clouddb_refresh=" + refresh
	}
	return &d
}

// refreshCookie returns the clouddb_refresh cookie r sets, failing the test without one.
func refreshCookie(t *testing.T, r *e2eResponse) *http.Cookie {
	t.Helper()
	for _, c := range r.cookies {
		if c.Name == "clouddb_refresh" {
			return c
		}
	}
	t.Fatalf("%s %s set no clouddb_refresh cookie: %v", r.method, r.path, r.header["Set-Cookie"])
	return nil
}

// TestConsoleRefreshCookie: with the console's header, login keeps the refresh token out of the
// body, in an httpOnly SameSite=Strict cookie on the auth paths; refresh reads it only when the
// header comes with it, rotates it, and logout clears it. API clients keep the JSON refresh token.
func TestConsoleRefreshCookie(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.61")
	email, password := uniqueEmail("console"), strongPassword()
	c.signUp(email, "Console user", password)

	r := consoleClient(c, "").do("POST", "/auth/login", map[string]any{"email": email, "password": password}).expect(t, 200, "")
	if r.get("refresh_token") != nil || r.str("access_token") == "" {
		t.Fatalf("console login answered %s, want an access token and no refresh token", r.body)
	}
	cookie := refreshCookie(t, r)
	env.secret(cookie.Value, "refresh token of the cookie")
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/api/v1/auth/" || !cookie.Secure || cookie.Expires.IsZero() {
		t.Errorf("refresh cookie = %+v, want HttpOnly, SameSite=Strict, Path=/api/v1/auth/, Secure (https public URL), an expiry", cookie)
	}

	// Without the header, as a forged cross-site request would come, the cookie is not read.
	plain := *c
	plain.headers = map[string]string{"Cookie": "clouddb_refresh=" + cookie.Value}
	plain.do("POST", "/auth/refresh", map[string]any{}).expect(t, 401, "unauthenticated")

	r = consoleClient(c, cookie.Value).do("POST", "/auth/refresh", map[string]any{}).expect(t, 200, "")
	next := refreshCookie(t, r)
	env.secret(next.Value, "refresh token of the cookie")
	if next.Value == cookie.Value || r.get("refresh_token") != nil {
		t.Errorf("refresh kept the cookie's token or answered one: %s", r.body)
	}
	access := r.str("access_token")
	c.with(access).do("GET", "/me", nil).expect(t, 200, "")

	r = consoleClient(c.with(access), next.Value).do("POST", "/auth/logout", nil).expect(t, 204, "")
	if cleared := refreshCookie(t, r); cleared.MaxAge >= 0 || cleared.Value != "" {
		t.Errorf("logout's refresh cookie = %+v, want it cleared", cleared)
	}
	consoleClient(c, next.Value).do("POST", "/auth/refresh", map[string]any{}).expect(t, 401, "unauthenticated")

	// An API client's login is what it was.
	if s := c.login(email, password, ""); s.refresh == "" {
		t.Fatal("login without the console header answered no refresh token")
	}
}
