package main

// End-to-end tests of sign-up, verification, login, sessions, passwords, tenants and platform
// administration: real HTTP against a started App, real MariaDB, bcrypt at cost 4, real JWTs,
// real mails read back from CLOUDDB_MAIL_DIR. Every test starts its own App on a fresh database.
// Helpers are in e2e_helpers_test.go.

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/pquerna/otp/totp"

	"github.com/clouddbmanager/clouddb/internal/config"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// 1. Register → verify → login.
func TestE2ERegisterVerifyLogin(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	password := strongPassword()
	mixed := "Alice.Smith-" + randomHex(3) + "@Example.COM"
	email := strings.ToLower(mixed)

	c.headers["X-Request-Id"] = "e2e-request-1"
	r := c.do("POST", "/auth/register", map[string]any{"email": mixed, "password": password, "name": "  Alice Smith "}).expect(t, 201, "")
	delete(c.headers, "X-Request-Id")
	if got := r.header.Get("X-Request-Id"); got != "e2e-request-1" {
		t.Errorf("X-Request-Id = %q, want the client's e2e-request-1 echoed", got)
	}
	userID := r.str("user_id")
	if _, err := uuid.Parse(userID); err != nil {
		t.Errorf("user_id %q is not a uuid", userID)
	}
	if r.str("email") != email || r.str("status") != "pending_verification" {
		t.Errorf("register = %s, want email %s (lower-cased) and status pending_verification", r.body, email)
	}

	m := env.waitMail(email, "verif")
	if !strings.Contains(strings.ToLower(m.subject), "verif") {
		t.Errorf("subject %q does not say verification", m.subject)
	}
	if !strings.HasPrefix(m.link, e2ePublicURL+"/verify?token=") || m.token == "" {
		t.Fatalf("mail link %q, want %s/verify?token=...; body:\n%s", m.link, e2ePublicURL, m.body)
	}
	if !strings.Contains(m.body, "Alice Smith") {
		t.Errorf("the mail does not greet the user by name:\n%s", m.body)
	}
	if raw, err := os.ReadFile(m.file); err != nil || !strings.Contains(string(raw), "\r\n"+m.link+"\r\n") {
		t.Errorf("the link is not whole on a line of its own in %s (%v): a person copies it from there", m.file, err)
	}
	env.waitMailLinkLogged(m.link) // no SMTP here: the development mail path prints it

	c.do("POST", "/auth/login", map[string]any{"email": email, "password": password}).expect(t, 403, "email_not_verified")

	tampered := m.token[:len(m.token)-1] + "A"
	if strings.HasSuffix(m.token, "A") {
		tampered = m.token[:len(m.token)-1] + "B"
	}
	for name, token := range map[string]string{
		"tampered secret": tampered,
		"other user id":   strings.ReplaceAll(uuid.NewString(), "-", "") + m.token[strings.IndexByte(m.token, '.'):],
		"no dot":          strings.ReplaceAll(m.token, ".", ""),
		"empty":           "",
	} {
		if r := c.do("POST", "/auth/verify", map[string]any{"token": token}); r.status != 410 || r.str("error.code") != "expired" {
			t.Errorf("verify with a %s token = %d %s, want 410 expired", name, r.status, r.body)
		}
	}

	r = c.do("POST", "/auth/verify", map[string]any{"token": m.token}).expect(t, 200, "")
	if r.str("status") != "active" {
		t.Errorf("verify = %s, want status active", r.body)
	}
	c.do("POST", "/auth/verify", map[string]any{"token": m.token}).expect(t, 410, "expired")

	before := env.clock.Now()
	r = c.do("POST", "/auth/login", map[string]any{"email": mixed, "password": password}).expect(t, 200, "")
	access, refresh, csrf := r.str("access_token"), r.str("refresh_token"), r.str("csrf_token")
	if access == "" || refresh == "" || csrf == "" || access == refresh {
		t.Fatalf("login = %s, want access_token, refresh_token and csrf_token", r.body)
	}
	if r.str("token_type") != "Bearer" {
		t.Errorf("token_type = %q, want Bearer", r.str("token_type"))
	}
	if in := r.num("expires_in"); in < 43190 || in > 43200 {
		t.Errorf("expires_in = %v, want about 43200 (12 h)", in)
	}
	if r.str("user.id") != userID || r.str("user.email") != email || r.str("user.name") != "Alice Smith" {
		t.Errorf("login user = %v, want id %s, email %s, name Alice Smith (trimmed)", r.get("user"), userID, email)
	}
	if tenant, ok := r.doc.(map[string]any)["tenant"]; !ok || tenant != nil {
		t.Errorf("login tenant = %v (present %v), want null", tenant, ok)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("login Cache-Control = %q, want no-store", cc)
	}
	var cookie *http.Cookie
	for _, ck := range r.cookies {
		if ck.Name == "clouddb_session" {
			cookie = ck
		}
	}
	switch {
	case cookie == nil:
		t.Errorf("login set no clouddb_session cookie: %v", r.header["Set-Cookie"])
	case cookie.Value != access || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode:
		t.Errorf("cookie %q, want the access token, HttpOnly and SameSite=Strict", r.header.Get("Set-Cookie"))
	case !cookie.Secure:
		t.Errorf("cookie %q is not Secure although CLOUDDB_PUBLIC_URL is https", r.header.Get("Set-Cookie"))
	}

	// The access token is an HS256 JWT for this user that expires in 12 h.
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(access, claims); err != nil {
		t.Fatalf("access token is not a JWT: %v", err)
	}
	if exp, err := claims.GetExpirationTime(); err != nil || exp == nil || exp.Sub(before) < 12*time.Hour-time.Minute || exp.Sub(before) > 12*time.Hour+time.Minute {
		t.Errorf("access token exp = %v, want 12 h after login", exp)
	}
	if sub, _ := claims.GetSubject(); sub != userID {
		t.Errorf("access token sub = %q, want %s", sub, userID)
	}

	me := c.with(access).do("GET", "/me", nil).expect(t, 200, "")
	if me.str("user.status") != "active" || me.str("user.email") != email {
		t.Errorf("GET /me = %s", me.body)
	}
}

// 2. Registration validation, duplicates and concurrent registrations of one email.
func TestE2ERegistrationValidation(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	weak := env.client("127.0.0.2")  // weak passwords
	bad := env.client("127.0.0.3")   // malformed requests
	owner := env.client("127.0.0.4") // the account and its duplicate
	email := uniqueEmail("dup")

	for _, tc := range []struct{ password, rule string }{
		{"Ab1!xyz", "length"},
		{"Abcdefghij1!" + strings.Repeat("x", 61), "length"}, // 73 bytes: over bcrypt's 72
		{"ABCDEFG1!", "lower"},
		{"abcdefg1!", "upper"},
		{"Abcdefgh!", "digit"},
		{"Abcdefg12", "symbol"},
	} {
		r := weak.do("POST", "/auth/register", map[string]any{"email": uniqueEmail("weak"), "password": tc.password, "name": "W"})
		if r.status != 400 || r.str("error.code") != "weak_password" || r.str("error.details.rule") != tc.rule {
			t.Errorf("password %q = %d %s, want 400 weak_password with details.rule %s", tc.password, r.status, r.body, tc.rule)
		}
	}

	good := strongPassword()
	r := bad.do("POST", "/auth/register", map[string]any{"email": "not-an-email", "password": good, "name": "Bad"}).expect(t, 400, "validation_failed")
	if r.str("error.details.fields.email") == "" {
		t.Errorf("bad email: details = %v, want fields.email", r.get("error.details"))
	}
	r = bad.do("POST", "/auth/register", map[string]any{"email": uniqueEmail("noname"), "password": good, "name": "   "}).expect(t, 400, "validation_failed")
	if r.str("error.details.fields.name") == "" {
		t.Errorf("empty name: details = %v, want fields.name", r.get("error.details"))
	}
	r = bad.do("POST", "/auth/register", map[string]any{"email": "x@", "password": good, "name": ""}).expect(t, 400, "validation_failed")
	if r.str("error.details.fields.email") == "" || r.str("error.details.fields.name") == "" {
		t.Errorf("bad email and empty name: details = %v, want both fields", r.get("error.details"))
	}
	r = bad.do("POST", "/auth/register", map[string]any{"email": uniqueEmail("x"), "password": good, "name": "X", "role": "super_admin"}).expect(t, 400, "invalid_request")
	if r.str("error.details.field") != "role" {
		t.Errorf("unknown field: details = %v, want field role", r.get("error.details"))
	}
	bad.do("POST", "/auth/register", `{"email": "a@example.com", "password": 12345678, "name": "X"}`).expect(t, 400, "invalid_request")
	bad.do("POST", "/auth/register", `{"email": "a@example.com",`).expect(t, 400, "invalid_request")

	huge := `{"email": "big@example.com", "password": "` + good + `", "name": "` + strings.Repeat("a", 1<<20) + `"}`
	r = bad.do("POST", "/auth/register", []byte(huge)).expect(t, 413, "payload_too_large")
	if r.num("error.details.limit_bytes") != 1<<20 {
		t.Errorf("413 details = %v, want limit_bytes 1048576", r.get("error.details"))
	}
	r = bad.do("POST", "/auth/register", struct{ io.Reader }{strings.NewReader(huge)}).expect(t, 413, "payload_too_large") // chunked, no length

	password := strongPassword()
	owner.register(email, "Owner", password)
	r = owner.do("POST", "/auth/register", map[string]any{"email": strings.ToUpper(email), "password": strongPassword(), "name": "Thief"}).expect(t, 409, "email_taken")

	// Ten at once for one new email, from one client IP (its burst is 10 registrations): one wins.
	racer := env.client("127.0.0.5")
	raced := uniqueEmail("race")
	statuses := make([]int, 10)
	codes := make([]string, 10)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			variant := raced
			if i%2 == 1 {
				variant = strings.ToUpper(raced)
			}
			r := racer.do("POST", "/auth/register", map[string]any{"email": variant, "password": strongPassword(), "name": "Racer " + strconv.Itoa(i)})
			statuses[i], codes[i] = r.status, r.str("error.code")
		}()
	}
	wg.Wait()
	created := 0
	for i, s := range statuses {
		switch {
		case s == 201:
			created++
		case s == 409 && codes[i] == "email_taken":
		default:
			t.Errorf("concurrent registration %d = %d %s, want 201 or 409 email_taken", i, s, codes[i])
		}
	}
	if created != 1 {
		t.Errorf("%d of 10 concurrent registrations of one email succeeded (%v), want exactly 1", created, statuses)
	}
	link := env.waitMail(raced, "verif")
	if n := env.mailsTo(raced); n != 1 {
		t.Errorf("%d verification mails went to %s, want 1", n, raced)
	}

	// The eleventh registration from that IP is over its limit.
	r = racer.do("POST", "/auth/register", map[string]any{"email": uniqueEmail("late"), "password": strongPassword(), "name": "Late"}).expect(t, 429, "rate_limited")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("rate limited: Retry-After %q, want 1 to 60 s", r.header.Get("Retry-After"))
	}

	// The verification link lives 24 h; a password reset verifies the address instead.
	env.clock.Advance(25 * time.Hour)
	owner.do("POST", "/auth/verify", map[string]any{"token": link.token}).expect(t, 410, "expired")
	owner.do("POST", "/auth/password/forgot", map[string]any{"email": raced}).expect(t, 202, "")
	stale := env.waitMail(raced, "reset")
	env.clock.Advance(61 * time.Minute) // a reset link lives one hour
	owner.do("POST", "/auth/password/reset", map[string]any{"token": stale.token, "new_password": strongPassword()}).expect(t, 410, "expired")
	owner.do("POST", "/auth/password/forgot", map[string]any{"email": raced}).expect(t, 202, "")
	reset := env.waitMail(raced, "reset")
	fresh := strongPassword()
	owner.do("POST", "/auth/password/reset", map[string]any{"token": reset.token, "new_password": fresh}).expect(t, 204, "")
	owner.login(raced, fresh, "")
}

// 3. Lockout after five failed logins, and unknown emails answered like wrong passwords.
func TestE2ELoginLockout(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	email, password := uniqueEmail("locked"), strongPassword()
	c.signUp(email, "Locked Out", password)

	for i := 1; i <= 4; i++ {
		c.do("POST", "/auth/login", map[string]any{"email": email, "password": "Wrong-Pass-" + strconv.Itoa(i) + "!"}).expect(t, 401, "invalid_credentials")
	}
	r := c.do("POST", "/auth/login", map[string]any{"email": email, "password": "Wrong-Pass-5!"}).expect(t, 423, "account_locked")
	assertRetryAfter(t, r, 890, 900)
	if _, err := time.Parse(time.RFC3339, r.str("error.details.locked_until")); err != nil {
		t.Errorf("details.locked_until = %q, want an RFC 3339 time", r.str("error.details.locked_until"))
	}
	r = c.do("POST", "/auth/login", map[string]any{"email": email, "password": password}).expect(t, 423, "account_locked")
	assertRetryAfter(t, r, 880, 900)

	r = c.do("POST", "/auth/login", map[string]any{"email": uniqueEmail("nobody"), "password": password}).expect(t, 401, "invalid_credentials")
	if r.str("error.message") != c.do("POST", "/auth/login", map[string]any{"email": uniqueEmail("nobody"), "password": "Other-Guess-7!"}).str("error.message") {
		t.Errorf("unknown email and wrong password answer differently")
	}

	env.clock.Advance(16 * time.Minute)
	c.login(email, password, "")

	// Failures are recorded with IP and user agent: the five wrong passwords, and the right one
	// refused during the lock.
	var wrong, duringLock int
	for _, e := range openedEvents(t, env.app) { // sealed in the log: read through the store
		if e.EventType == "user.login_failed.v1" && openedField(e, "ip") == "127.0.0.1" && openedField(e, "user_agent") == "clouddb-e2e-test" {
			switch openedField(e, "reason") {
			case "password":
				wrong++
			case "locked":
				duringLock++
			}
		}
	}
	if wrong != 5 || duringLock != 1 {
		t.Errorf("%d wrong passwords and %d attempts during the lock recorded with IP and user agent, want 5 and 1", wrong, duringLock)
	}

	// Only failures within 15 minutes count: four, a quarter of an hour, one more is no lockout.
	for i := 0; i < 4; i++ {
		c.do("POST", "/auth/login", map[string]any{"email": email, "password": "Wrong-Again-" + strconv.Itoa(i) + "!"}).expect(t, 401, "invalid_credentials")
	}
	env.clock.Advance(16 * time.Minute)
	c.do("POST", "/auth/login", map[string]any{"email": email, "password": "Wrong-Again-9!"}).expect(t, 401, "invalid_credentials")
	c.login(email, password, "")

	// A password reset lifts a lockout at once.
	for i := 1; i <= 5; i++ {
		c.do("POST", "/auth/login", map[string]any{"email": email, "password": "Wrong-Third-" + strconv.Itoa(i) + "!"})
	}
	c.do("POST", "/auth/login", map[string]any{"email": email, "password": password}).expect(t, 423, "account_locked")
	c.do("POST", "/auth/password/forgot", map[string]any{"email": email}).expect(t, 202, "")
	m := env.waitMail(email, "reset")
	fresh := strongPassword()
	c.do("POST", "/auth/password/reset", map[string]any{"token": m.token, "new_password": fresh}).expect(t, 204, "")
	c.login(email, fresh, "")
}

// Several logins of one account at once (a user with a few devices, a script) all get an answer
// about their credentials, never a storage conflict.
func TestE2EConcurrentLoginsOfOneAccount(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	good, goodPassword := uniqueEmail("devices"), strongPassword()
	bad, badPassword := uniqueEmail("guessed"), strongPassword()
	c.register(good, "Many Devices", goodPassword)
	c.register(bad, "Guessed At", badPassword)
	c.verify(good)
	c.verify(bad)

	run := func(email string, password func(i int) string, ok func(status int, code string) bool) {
		t.Helper()
		var wg sync.WaitGroup
		answers := make([]string, 8)
		for i := range answers {
			cl := env.client("127.0.1." + strconv.Itoa(i+1)) // distinct IPs: per-IP limits stay out of it
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := cl.do("POST", "/auth/login", map[string]any{"email": email, "password": password(i)})
				answers[i] = strconv.Itoa(r.status) + " " + r.str("error.code")
			}()
		}
		wg.Wait()
		for i, a := range answers {
			status, code, _ := strings.Cut(a, " ")
			n, _ := strconv.Atoi(status)
			if !ok(n, code) {
				t.Errorf("concurrent login %d of %s = %s (all: %v)", i, email, a, answers)
			}
		}
	}
	run(good, func(int) string { return goodPassword }, func(status int, _ string) bool { return status == 200 })
	run(bad, func(i int) string { return "Wrong-Guess-" + strconv.Itoa(i) + "!" }, func(status int, code string) bool {
		return status == 401 && code == "invalid_credentials" || status == 423 && code == "account_locked"
	})
	env.client("127.0.2.1").do("POST", "/auth/login", map[string]any{"email": bad, "password": badPassword}).expect(t, 423, "account_locked")
}

// The lockout's Retry-After counts on the process clock (App.Now), like the lockout itself.
func TestE2ELockoutRetryAfterFollowsTheProcessClock(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	email, password := uniqueEmail("clock"), strongPassword()
	c.signUp(email, "Clock", password)
	env.clock.Advance(2 * time.Hour)
	for i := 1; i <= 4; i++ {
		c.do("POST", "/auth/login", map[string]any{"email": email, "password": "Wrong-Pass-" + strconv.Itoa(i) + "!"}).expect(t, 401, "invalid_credentials")
	}
	r := c.do("POST", "/auth/login", map[string]any{"email": email, "password": "Wrong-Pass-5!"}).expect(t, 423, "account_locked")
	assertRetryAfter(t, r, 890, 900)
}

func assertRetryAfter(t *testing.T, r *e2eResponse, lo, hi int) {
	t.Helper()
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < lo || ra > hi {
		t.Errorf("%s %s: Retry-After %q, want %d to %d seconds", r.method, r.path, r.header.Get("Retry-After"), lo, hi)
	}
}

func openEventsDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// 4. Sessions: /me, what is not a valid token, refresh rotation and reuse, ending sessions, idle.
func TestE2ESessions(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	email, password := uniqueEmail("sessions"), strongPassword()
	stranger := env.client("127.0.0.3")
	strangerEmail, strangerPassword := uniqueEmail("stranger"), strongPassword()
	userID := c.register(email, "Sam Sessions", password)
	stranger.register(strangerEmail, "Stranger", strangerPassword)
	c.verify(email)
	stranger.verify(strangerEmail)
	s1 := c.login(email, password, "")
	s2 := env.client("127.0.0.2").login(email, password, "")

	me := c.with(s1.access).do("GET", "/me", nil).expect(t, 200, "")
	if me.str("user.id") != userID || me.str("user.email") != email || me.str("user.name") != "Sam Sessions" ||
		me.str("user.status") != "active" || me.get("user.totp_enabled") != false {
		t.Errorf("GET /me user = %v", me.get("user"))
	}
	if tenant, ok := me.doc.(map[string]any)["tenant"]; !ok || tenant != nil {
		t.Errorf("GET /me tenant = %v (present %v), want null", tenant, ok)
	}
	perms := me.items("permissions")
	if !slices.Contains(perms, any("tenants:create")) || slices.Contains(perms, any("platform:admin")) || slices.Contains(perms, any("tenant:read")) {
		t.Errorf("GET /me permissions = %v, want tenants:create and no tenant or platform permissions", perms)
	}
	sid := me.str("session.id")
	if _, err := uuid.Parse(sid); err != nil {
		t.Errorf("session.id %q is not a uuid", sid)
	}
	if expires, err := time.Parse(time.RFC3339, me.str("session.expires_at")); err != nil || expires.Before(env.clock.Now()) {
		t.Errorf("session.expires_at = %q, want a future RFC 3339 time", me.str("session.expires_at"))
	}
	if me.num("session.idle_timeout_s") != 1800 {
		t.Errorf("session.idle_timeout_s = %v, want 1800", me.get("session.idle_timeout_s"))
	}
	if steps := me.items("next_steps"); len(steps) == 0 {
		t.Errorf("GET /me without a tenant has no next_steps: %s", me.body)
	}

	// What is not a live access token.
	otherKey := signWith(t, s1.access, jwt.SigningMethodHS256, []byte(strings.Repeat("k", 32)))
	none := signWith(t, s1.access, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType)
	header, payload, _ := strings.Cut(s1.access, ".")
	payload, signature, _ := strings.Cut(payload, ".")
	forged := forgeClaims(t, header, payload, signature) // claims changed, signature kept
	for name, token := range map[string]string{
		"garbage":           "garbage",
		"signed elsewhere":  otherKey,
		"alg none":          none,
		"claims changed":    forged,
		"refresh as access": s1.refresh,
	} {
		if r := c.with(token).do("GET", "/me", nil); r.status != 401 || r.str("error.code") != "unauthenticated" {
			t.Errorf("GET /me with a %s token = %d %s, want 401 unauthenticated", name, r.status, r.body)
		}
	}
	c.do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	c.headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(email+":"+password))
	c.do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	delete(c.headers, "Authorization")

	// Live sessions, and ending another one.
	list := c.with(s1.access).do("GET", "/me/sessions", nil).expect(t, 200, "")
	var s2id string
	current := 0
	for _, it := range list.items("items") {
		m := it.(map[string]any)
		if m["current"] == true {
			current++
			if m["id"] != sid {
				t.Errorf("the current session is %v, want %s", m["id"], sid)
			}
		} else {
			s2id, _ = m["id"].(string)
		}
	}
	if len(list.items("items")) != 2 || current != 1 || s2id == "" {
		t.Fatalf("GET /me/sessions = %s, want two sessions, this one current", list.body)
	}
	c.with(s2.access).do("GET", "/me", nil).expect(t, 200, "")
	c.with(s1.access).do("DELETE", "/me/sessions/"+s2id, nil).expect(t, 204, "")
	c.with(s2.access).do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	c.do("POST", "/auth/refresh", map[string]any{"refresh_token": s2.refresh}).expect(t, 401, "unauthenticated")
	if n := len(c.with(s1.access).do("GET", "/me/sessions", nil).expect(t, 200, "").items("items")); n != 1 {
		t.Errorf("%d live sessions after ending one of two, want 1", n)
	}
	c.with(s1.access).do("DELETE", "/me/sessions/"+uuid.NewString(), nil).expect(t, 404, "not_found")
	c.with(s1.access).do("DELETE", "/me/sessions/not-a-uuid", nil).expect(t, 404, "not_found")

	// Someone else's session cannot be ended, nor even seen.
	ss := stranger.login(strangerEmail, strangerPassword, "")
	stranger.with(ss.access).do("DELETE", "/me/sessions/"+sid, nil).expect(t, 404, "not_found")
	c.with(s1.access).do("GET", "/me", nil).expect(t, 200, "")

	// Refresh rotates; the spent token presented again revokes the whole session.
	r := c.do("POST", "/auth/refresh", map[string]any{"refresh_token": s1.refresh}).expect(t, 200, "")
	access2, refresh2 := r.str("access_token"), r.str("refresh_token")
	if access2 == "" || refresh2 == "" || refresh2 == s1.refresh || r.str("token_type") != "Bearer" || r.num("expires_in") < 43190 {
		t.Fatalf("refresh = %s, want a new pair", r.body)
	}
	if c.with(access2).do("GET", "/me", nil).expect(t, 200, "").str("session.id") != sid {
		t.Errorf("the refreshed token belongs to another session")
	}
	c.do("POST", "/auth/refresh", map[string]any{"refresh_token": s1.refresh}).expect(t, 401, "unauthenticated")
	c.with(access2).do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	c.with(s1.access).do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	c.do("POST", "/auth/refresh", map[string]any{"refresh_token": refresh2}).expect(t, 401, "unauthenticated")
	c.do("POST", "/auth/refresh", map[string]any{"refresh_token": "nonsense"}).expect(t, 401, "unauthenticated")

	// Logout ends access and refresh token at once, and clears the cookie.
	s3 := c.login(email, password, "")
	out := c.with(s3.access).do("POST", "/auth/logout", nil).expect(t, 204, "")
	cleared := false
	for _, ck := range out.cookies {
		cleared = cleared || (ck.Name == "clouddb_session" && ck.MaxAge < 0)
	}
	if !cleared {
		t.Errorf("logout did not clear the cookie: %v", out.header["Set-Cookie"])
	}
	c.with(s3.access).do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	c.do("POST", "/auth/refresh", map[string]any{"refresh_token": s3.refresh}).expect(t, 401, "unauthenticated")

	// The access token lives 12 h even while the session stays active.
	s4 := c.login(email, password, "")
	for i := 0; i < 24; i++ { // 24 × 29 min = 11 h 36 min, never idle for 30 min
		env.clock.Advance(29 * time.Minute)
		c.with(s4.access).do("GET", "/me", nil).expect(t, 200, "")
	}
	env.clock.Advance(29 * time.Minute) // 12 h 05 min
	c.with(s4.access).do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	r = c.do("POST", "/auth/refresh", map[string]any{"refresh_token": s4.refresh}).expect(t, 200, "") // the session lives on
	c.with(r.str("access_token")).do("GET", "/me", nil).expect(t, 200, "")

	// Thirteen hours later any access token of then is dead.
	s5 := c.login(email, password, "")
	env.clock.Advance(13 * time.Hour)
	c.with(s5.access).do("GET", "/me", nil).expect(t, 401, "unauthenticated")

	// 31 minutes without a request: the session is over.
	s6 := c.login(email, password, "")
	c.with(s6.access).do("GET", "/me", nil).expect(t, 200, "")
	env.clock.Advance(31 * time.Minute)
	c.with(s6.access).do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	c.do("POST", "/auth/refresh", map[string]any{"refresh_token": s6.refresh}).expect(t, 401, "unauthenticated")
}

// An idle session is over: its refresh token must not bring it back.
func TestE2EIdleSessionCannotBeRevivedByRefresh(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	email, password := uniqueEmail("idle"), strongPassword()
	c.signUp(email, "Idle", password)
	s := c.login(email, password, "")
	env.clock.Advance(31 * time.Minute)
	r := c.do("POST", "/auth/refresh", map[string]any{"refresh_token": s.refresh})
	if r.status != 401 || r.str("error.code") != "unauthenticated" {
		t.Errorf("refresh after 31 idle minutes = %d %s, want 401 unauthenticated", r.status, r.body)
		if next := r.str("access_token"); next != "" {
			if me := c.with(next).do("GET", "/me", nil); me.status == 200 {
				t.Errorf("and the revived session serves GET /me again")
			}
		}
	}
}

// A refresh token that does not verify must not count as activity of the session it names: whoever
// knows a session id (it is the JWT's sid, and listed by GET /me/sessions and the event log) could
// otherwise keep that session from ever idling out.
func TestE2EInvalidRefreshTokenDoesNotKeepASessionAlive(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	email, password := uniqueEmail("keepalive"), strongPassword()
	c.signUp(email, "Left Alone", password)
	s := c.login(email, password, "")
	sid := c.with(s.access).do("GET", "/me", nil).expect(t, 200, "").str("session.id")
	bogus := strings.ReplaceAll(sid, "-", "") + "." + strings.Repeat("A", 43)
	attacker := env.client("127.0.0.66")
	for range 3 { // every 20 minutes, for an hour
		env.clock.Advance(20 * time.Minute)
		attacker.do("POST", "/auth/refresh", map[string]any{"refresh_token": bogus}).expect(t, 401, "unauthenticated")
	}
	if r := c.with(s.access).do("GET", "/me", nil); r.status != 401 {
		t.Errorf("GET /me after 60 minutes without a request of its owner = %d, want 401: invalid refresh tokens kept the session alive", r.status)
	}
}

// GET /me/sessions lists live sessions: not one that has been idle past its timeout.
func TestE2ESessionListOmitsIdleSessions(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	email, password := uniqueEmail("list"), strongPassword()
	c.signUp(email, "Lister", password)
	active := c.login(email, password, "")
	c.login(email, password, "") // used once at login, then left alone
	env.clock.Advance(20 * time.Minute)
	c.with(active.access).do("GET", "/me", nil).expect(t, 200, "")
	env.clock.Advance(20 * time.Minute) // the other one has been idle for 40 minutes
	list := c.with(active.access).do("GET", "/me/sessions", nil).expect(t, 200, "")
	if n := len(list.items("items")); n != 1 {
		t.Errorf("GET /me/sessions lists %d sessions, want 1: the other has been idle for 40 minutes (timeout 30): %s", n, list.body)
	}
}

// signWith re-signs the claims of a token with another method and key.
func signWith(t *testing.T, token string, method jwt.SigningMethod, key any) string {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// forgeClaims makes a token claim super admin rights and keeps its signature.
func forgeClaims(t *testing.T, header, payload, signature string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sa"] = true
	raw, _ = json.Marshal(claims)
	return header + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + signature
}

// 5. Cookie authentication and CSRF.
func TestE2ECookieAuthentication(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	email, password := uniqueEmail("cookie"), strongPassword()
	c.signUp(email, "Cookie Monster", password)
	s := c.login(email, password, "")
	other := c.login(email, password, "")

	cookieOnly := c.withCookie(s.access, "")
	if r := cookieOnly.do("GET", "/me", nil).expect(t, 200, ""); r.str("user.email") != email {
		t.Errorf("GET /me by cookie = %s", r.body)
	}
	r := cookieOnly.do("POST", "/tenants", map[string]any{"name": "Cookie Jar"}).expect(t, 403, "forbidden")
	if !strings.Contains(r.str("error.message"), "CSRF") {
		t.Errorf("the 403 does not say what is missing: %s", r.body)
	}
	c.withCookie(s.access, "not-the-token").do("POST", "/tenants", map[string]any{"name": "Cookie Jar"}).expect(t, 403, "forbidden")
	c.withCookie(s.access, other.csrf).do("POST", "/tenants", map[string]any{"name": "Cookie Jar"}).expect(t, 403, "forbidden")
	c.withCookie(s.access, s.csrf).do("POST", "/tenants", map[string]any{"name": "Cookie Jar"}).expect(t, 201, "")
	c.with(s.access).do("POST", "/tenants", map[string]any{"name": "Bearer Jar"}).expect(t, 201, "")
	if n := len(c.with(s.access).do("GET", "/me/tenants", nil).expect(t, 200, "").items("items")); n != 2 {
		t.Errorf("%d tenants after two successful creations, want 2 (the refused ones must not create any)", n)
	}

	cookieOnly.do("POST", "/auth/logout", nil).expect(t, 403, "forbidden")
	c.withCookie(s.access, s.csrf).do("POST", "/auth/logout", nil).expect(t, 204, "")
	cookieOnly.do("GET", "/me", nil).expect(t, 401, "unauthenticated")
}

// 6. Changing and resetting the password.
func TestE2EPasswordChangeAndReset(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	email, pw0 := uniqueEmail("pw"), strongPassword()
	c.signUp(email, "Pat Password", pw0)
	s1 := c.login(email, pw0, "")
	me := c.with(s1.access)

	pw1 := strongPassword()
	me.do("PUT", "/me/password", map[string]any{"current_password": "Not-The-One-1!", "new_password": pw1}).expect(t, 401, "invalid_credentials")
	me.do("PUT", "/me/password", map[string]any{"current_password": pw0, "new_password": pw0}).expect(t, 400, "password_reused")
	me.do("PUT", "/me/password", map[string]any{"current_password": pw0, "new_password": "weakweak"}).expect(t, 400, "weak_password")
	me.do("GET", "/me", nil).expect(t, 200, "") // nothing changed so far
	me.do("PUT", "/me/password", map[string]any{"current_password": pw0, "new_password": pw1}).expect(t, 204, "")
	me.do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	c.do("POST", "/auth/refresh", map[string]any{"refresh_token": s1.refresh}).expect(t, 401, "unauthenticated")
	c.do("POST", "/auth/login", map[string]any{"email": email, "password": pw0}).expect(t, 401, "invalid_credentials")
	s2 := c.login(email, pw1, "")

	known := c.do("POST", "/auth/password/forgot", map[string]any{"email": strings.ToUpper(email)}).expect(t, 202, "")
	unknownEmail := uniqueEmail("ghost")
	unknown := c.do("POST", "/auth/password/forgot", map[string]any{"email": unknownEmail}).expect(t, 202, "")
	if string(known.body) != string(unknown.body) {
		t.Errorf("forgot answers differ for known (%s) and unknown (%s) emails", known.body, unknown.body)
	}
	m := env.waitMail(email, "reset")
	if !strings.HasPrefix(m.link, e2ePublicURL+"/reset-password?token=") || m.token == "" {
		t.Fatalf("reset link %q, want %s/reset-password?token=...", m.link, e2ePublicURL)
	}
	if n := env.mailsTo(unknownEmail); n != 0 {
		t.Errorf("%d mails went to an email without an account", n)
	}

	c.do("POST", "/auth/password/reset", map[string]any{"token": m.token, "new_password": pw0}).expect(t, 400, "password_reused")
	c.do("POST", "/auth/password/reset", map[string]any{"token": m.token, "new_password": pw1}).expect(t, 400, "password_reused")
	c.do("POST", "/auth/password/reset", map[string]any{"token": m.token, "new_password": "short"}).expect(t, 400, "weak_password")
	c.do("POST", "/auth/password/reset", map[string]any{"token": m.token[:len(m.token)-2] + "zz", "new_password": strongPassword()}).expect(t, 410, "expired")
	c.with(s2.access).do("GET", "/me", nil).expect(t, 200, "") // refusals change nothing

	pw2 := strongPassword()
	c.do("POST", "/auth/password/reset", map[string]any{"token": m.token, "new_password": pw2}).expect(t, 204, "")
	c.do("POST", "/auth/password/reset", map[string]any{"token": m.token, "new_password": strongPassword()}).expect(t, 410, "expired")
	c.with(s2.access).do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	c.do("POST", "/auth/refresh", map[string]any{"refresh_token": s2.refresh}).expect(t, 401, "unauthenticated")
	c.do("POST", "/auth/login", map[string]any{"email": email, "password": pw1}).expect(t, 401, "invalid_credentials")
	c.login(email, pw2, "")

}

// 7. Tenants: creation, slugs, logging in to a tenant, the tenant document and its settings.
func TestE2ETenants(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	email, password := uniqueEmail("acme"), strongPassword()
	outsider := env.client("127.0.0.2")
	outEmail, outPassword := uniqueEmail("outsider"), strongPassword()
	c.register(email, "Ada Acme", password)
	outsider.register(outEmail, "Outsider", outPassword)
	c.verify(email)
	outsider.verify(outEmail)
	s := c.login(email, password, "")
	me := c.with(s.access)

	plans := env.client("127.0.0.9").do("GET", "/plans", nil).expect(t, 200, "")
	var planIDs []string
	for _, p := range plans.items("items") {
		p := p.(map[string]any)
		planIDs = append(planIDs, describe(p["id"]))
		limits, _ := p["limits"].(map[string]any)
		for _, k := range []string{"max_databases", "max_storage_bytes", "max_connections", "max_users", "max_query_timeout_s", "max_row_limit", "result_archiving"} {
			if _, ok := limits[k]; !ok {
				t.Errorf("plan %v lacks limits.%s", p["id"], k)
			}
		}
		if p["name"] == nil || p["name"] == "" {
			t.Errorf("plan %v has no name", p["id"])
		}
	}
	if !slices.Equal(planIDs, []string{"free", "pro", "enterprise"}) {
		t.Errorf("GET /plans ids = %v, want free, pro, enterprise", planIDs)
	}
	freeLimits := plans.get("items.0.limits")

	r := me.do("POST", "/tenants", map[string]any{"name": "Acme Corp"}).expect(t, 201, "")
	first := r.str("id")
	if _, err := uuid.Parse(first); err != nil || r.str("slug") != "acme-corp" || r.str("name") != "Acme Corp" || r.str("plan") != "free" {
		t.Errorf("POST /tenants = %s, want a uuid id, slug acme-corp, name Acme Corp, plan free", r.body)
	}
	me.do("GET", "/tenant", nil).expect(t, 403, "forbidden")
	me.do("PATCH", "/tenant/settings", map[string]any{"query_timeout_s": 20}).expect(t, 403, "forbidden")

	s = c.login(email, password, "") // one tenant: picked without asking
	if s.resp.str("tenant.id") != first || s.resp.str("tenant.slug") != "acme-corp" || s.resp.str("tenant.name") != "Acme Corp" ||
		s.resp.str("tenant.role") != "tenant_admin" {
		t.Errorf("login with one tenant: tenant = %v, want acme-corp as tenant_admin", s.resp.get("tenant"))
	}
	me = c.with(s.access)
	if r := me.do("GET", "/me", nil).expect(t, 200, ""); r.str("tenant.id") != first || r.str("tenant.role") != "tenant_admin" ||
		!slices.Contains(r.items("permissions"), any("tenant:settings")) {
		t.Errorf("GET /me in the tenant = %s", r.body)
	}

	doc := me.do("GET", "/tenant", nil).expect(t, 200, "")
	if doc.str("id") != first || doc.str("slug") != "acme-corp" || doc.str("name") != "Acme Corp" || doc.str("plan") != "free" {
		t.Errorf("GET /tenant = %s", doc.body)
	}
	if describe(doc.get("limits")) != describe(freeLimits) {
		t.Errorf("GET /tenant limits = %v, want the free plan's %v", doc.get("limits"), freeLimits)
	}
	if doc.num("usage.users") != 1 || doc.num("usage.databases") != 0 || doc.num("usage.storage_bytes") != 0 || doc.num("usage.connections") != 0 {
		t.Errorf("GET /tenant usage = %v, want 1 user and nothing else", doc.get("usage"))
	}
	wantSettings := map[string]any{"query_timeout_s": 30.0, "row_limit": 1000.0, "idle_timeout_minutes": 30.0, "auto_stop_minutes": 60.0,
		"allow_procedures": false, "allow_foreign_keys": true, "allow_high_impact_alter": false}
	if describe(doc.get("settings")) != describe(wantSettings) {
		t.Errorf("GET /tenant settings = %v, want the defaults %v", doc.get("settings"), wantSettings)
	}

	r = me.do("PATCH", "/tenant/settings", map[string]any{"query_timeout_s": 31}).expect(t, 400, "validation_failed")
	if r.str("error.details.fields.query_timeout_s") == "" {
		t.Errorf("query_timeout_s 31 on free: details = %v, want fields.query_timeout_s", r.get("error.details"))
	}
	me.do("PATCH", "/tenant/settings", map[string]any{"query_timeout_s": "20"}).expect(t, 400, "invalid_request")
	r = me.do("PATCH", "/tenant/settings", map[string]any{"query_timeout_s": 20}).expect(t, 200, "")
	if r.num("settings.query_timeout_s") != 20 {
		t.Errorf("PATCH /tenant/settings = %s, want query_timeout_s 20", r.body)
	}
	if doc := me.do("GET", "/tenant", nil).expect(t, 200, ""); doc.num("settings.query_timeout_s") != 20 || doc.num("settings.row_limit") != 1000 {
		t.Errorf("GET /tenant after PATCH: settings = %v, want query_timeout_s 20 and the rest unchanged", doc.get("settings"))
	}

	// The tenant's idle timeout applies to the sessions started after it changed.
	me.do("PATCH", "/tenant/settings", map[string]any{"idle_timeout_minutes": 4}).expect(t, 400, "validation_failed")
	me.do("PATCH", "/tenant/settings", map[string]any{"idle_timeout_minutes": 5}).expect(t, 200, "")
	short := c.login(email, password, "")
	if r := c.with(short.access).do("GET", "/me", nil).expect(t, 200, ""); r.num("session.idle_timeout_s") != 300 {
		t.Errorf("session.idle_timeout_s = %v after setting 5 minutes, want 300", r.get("session.idle_timeout_s"))
	}
	me.do("GET", "/me", nil).expect(t, 200, "")
	env.clock.Advance(6 * time.Minute)
	c.with(short.access).do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	me.do("GET", "/me", nil).expect(t, 200, "") // started under 30 minutes
	me.do("PATCH", "/tenant/settings", map[string]any{"idle_timeout_minutes": 30}).expect(t, 200, "")

	r = me.do("POST", "/tenants", map[string]any{"name": "Acme Corp"}).expect(t, 201, "")
	second, secondSlug := r.str("id"), r.str("slug")
	if second == first || !strings.HasPrefix(secondSlug, "acme-corp-") || len(secondSlug) <= len("acme-corp-") {
		t.Errorf("a second Acme Corp = %s, want its own id and a slug acme-corp-<suffix>", r.body)
	}
	me.do("POST", "/tenants", map[string]any{"name": "Someone Else", "slug": "acme-corp"}).expect(t, 409, "name_taken")
	r = me.do("POST", "/tenants", map[string]any{"name": "Bad Slug", "slug": "Not A Slug"}).expect(t, 400, "validation_failed")
	if r.str("error.details.fields.slug") == "" {
		t.Errorf("bad slug: details = %v", r.get("error.details"))
	}
	me.do("POST", "/tenants", map[string]any{"name": ""}).expect(t, 400, "validation_failed")

	r = c.do("POST", "/auth/login", map[string]any{"email": email, "password": password}).expect(t, 400, "validation_failed")
	if r.str("error.details.fields.tenant") == "" {
		t.Errorf("login with two tenants and none named: details = %v, want fields.tenant", r.get("error.details"))
	}
	var offered []string // the tenants to choose from, so that the next login can name one
	for _, it := range r.items("error.details.tenants") {
		m, _ := it.(map[string]any)
		offered = append(offered, fmt.Sprint(m["id"], " ", m["slug"], " ", m["name"], " ", m["role"]))
	}
	slices.Sort(offered)
	wantOffered := []string{first + " acme-corp Acme Corp tenant_admin", second + " " + secondSlug + " Acme Corp tenant_admin"}
	slices.Sort(wantOffered)
	if !slices.Equal(offered, wantOffered) {
		t.Errorf("login with two tenants and none named: details.tenants = %v, want %v", offered, wantOffered)
	}
	bySlug := c.login(email, password, secondSlug)
	if bySlug.resp.str("tenant.id") != second || bySlug.resp.str("tenant.role") != "tenant_admin" {
		t.Errorf("login to %s: tenant = %v", secondSlug, bySlug.resp.get("tenant"))
	}
	byID := c.login(email, password, first)
	if byID.resp.str("tenant.slug") != "acme-corp" {
		t.Errorf("login to %s: tenant = %v", first, byID.resp.get("tenant"))
	}
	if doc := c.with(bySlug.access).do("GET", "/tenant", nil).expect(t, 200, ""); doc.str("id") != second || doc.num("settings.query_timeout_s") != 30 {
		t.Errorf("GET /tenant in the second tenant = %s", doc.body)
	}
	c.do("POST", "/auth/login", map[string]any{"email": email, "password": password, "tenant": "no-such-tenant"}).expect(t, 400, "validation_failed")

	mine := c.with(byID.access).do("GET", "/me/tenants", nil).expect(t, 200, "")
	var ids []string
	for _, it := range mine.items("items") {
		m := it.(map[string]any)
		ids = append(ids, describe(m["id"]))
		if m["role"] != "tenant_admin" || m["name"] != "Acme Corp" {
			t.Errorf("GET /me/tenants item = %v", m)
		}
	}
	slices.Sort(ids)
	want := []string{first, second}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("GET /me/tenants ids = %v, want %v", ids, want)
	}

	// Another user is no member: the tenant is not theirs to log in to.
	outsider.do("POST", "/auth/login", map[string]any{"email": outEmail, "password": outPassword, "tenant": "acme-corp"}).expect(t, 400, "validation_failed")
}

// 8. The bootstrap super admin and the platform administration routes.
func TestE2ESuperAdmin(t *testing.T) {
	adminEmail, adminPassword := uniqueEmail("root"), strongPassword()
	env := startE2E(t, e2eOptions{BootstrapEmail: strings.ToUpper(adminEmail), BootstrapPassword: adminPassword})
	admin := env.client("127.0.0.1")
	user := env.client("127.0.0.2")

	email, password := uniqueEmail("tenant-owner"), strongPassword()
	user.signUp(email, "Owner", password)
	us := user.login(email, password, "")
	tenantID := user.with(us.access).do("POST", "/tenants", map[string]any{"name": "Globex"}).expect(t, 201, "").str("id")
	us = user.login(email, password, "")

	as := admin.login(adminEmail, adminPassword, "")
	if as.resp.get("tenant") != nil {
		t.Errorf("admin login tenant = %v, want null", as.resp.get("tenant"))
	}
	a := admin.with(as.access)
	if r := a.do("GET", "/me", nil).expect(t, 200, ""); !slices.Contains(r.items("permissions"), any("platform:admin")) || r.str("user.email") != adminEmail {
		t.Errorf("GET /me of the admin = %s", r.body)
	}

	list := a.do("GET", "/admin/tenants", nil).expect(t, 200, "")
	found := false
	for _, it := range list.items("items") {
		m := it.(map[string]any)
		if m["id"] == tenantID {
			found = m["slug"] == "globex" && m["plan"] == "free"
		}
	}
	if !found {
		t.Errorf("GET /admin/tenants = %s, lacks Globex on free", list.body)
	}

	r := a.do("PUT", "/admin/tenants/"+tenantID+"/plan", map[string]any{"plan": "pro"}).expect(t, 200, "")
	if r.str("plan") != "pro" || r.num("limits.max_databases") != 50 || r.num("limits.max_query_timeout_s") != 300 || r.get("limits.result_archiving") != true {
		t.Errorf("PUT plan pro = %s, want the pro limits", r.body)
	}
	if doc := user.with(us.access).do("GET", "/tenant", nil).expect(t, 200, ""); doc.str("plan") != "pro" || doc.num("limits.max_databases") != 50 {
		t.Errorf("GET /tenant after the plan change = %s", doc.body)
	}
	user.with(us.access).do("PATCH", "/tenant/settings", map[string]any{"query_timeout_s": 120}).expect(t, 200, "")
	a.do("PUT", "/admin/tenants/"+tenantID+"/plan", map[string]any{"plan": "platinum"}).expect(t, 400, "validation_failed")
	// Down to free again: settings above the free limits come down with it.
	r = a.do("PUT", "/admin/tenants/"+tenantID+"/plan", map[string]any{"plan": "free"}).expect(t, 200, "")
	if r.num("settings.query_timeout_s") != 30 || r.num("limits.max_query_timeout_s") != 30 {
		t.Errorf("back to free: %s, want query_timeout_s lowered to 30", r.body)
	}
	a.do("PUT", "/admin/tenants/"+tenantID+"/plan", map[string]any{"plan": "pro"}).expect(t, 200, "")

	// Pages of tenants.
	user.with(us.access).do("POST", "/tenants", map[string]any{"name": "Initech"}).expect(t, 201, "")
	var paged []string
	cursor := ""
	for range 5 {
		page := a.do("GET", "/admin/tenants?limit=1"+cursor, nil).expect(t, 200, "")
		for _, it := range page.items("items") {
			paged = append(paged, describe(it.(map[string]any)["id"]))
		}
		next, _ := page.get("next_cursor").(string)
		if next == "" {
			break
		}
		cursor = "&cursor=" + next
	}
	if len(paged) != 2 || paged[0] == paged[1] {
		t.Errorf("paging through the tenants one at a time gave %v, want the two tenants", paged)
	}
	a.do("PUT", "/admin/tenants/"+uuid.NewString()+"/plan", map[string]any{"plan": "pro"}).expect(t, 404, "not_found")

	// The event log, in order, page by page.
	page := a.do("GET", "/admin/events?after=0&limit=5", nil).expect(t, 200, "")
	items := page.items("items")
	if len(items) != 5 {
		t.Fatalf("GET /admin/events?limit=5 = %d items, want 5", len(items))
	}
	if first := items[0].(map[string]any); first["type"] != "user.registered.v1" {
		t.Fatalf("the first event is %v, want the bootstrap admin's registration (with its password hash)", first["type"])
	}
	last := 0.0
	for i, it := range items {
		m := it.(map[string]any)
		pos, _ := m["position"].(float64)
		if pos <= last {
			t.Errorf("event %d at position %v after %v: not in order", i, pos, last)
		}
		last = pos
		for _, k := range []string{"stream_id", "stream_type", "type", "recorded_at"} {
			if s, _ := m[k].(string); s == "" {
				t.Errorf("event %v lacks %s: %v", pos, k, m)
			}
		}
		data, ok := m["data"].(map[string]any)
		if !ok {
			t.Errorf("event %v data = %v, want an object", pos, m["data"])
		}
		for field, value := range data {
			if strings.Contains(field, "hash") && value != "[redacted]" {
				t.Errorf("event %v shows %s = %v to the reader of the event log, want it redacted", pos, field, value)
			}
		}
		if _, ok := m["metadata"].(map[string]any); !ok {
			t.Errorf("event %v metadata = %v, want an object", pos, m["metadata"])
		}
		if v, _ := m["version"].(float64); v < 1 {
			t.Errorf("event %v version = %v", pos, m["version"])
		}
	}
	if items[0].(map[string]any)["position"] != 1.0 || page.num("next_after") != last {
		t.Errorf("first page starts at %v, next_after %v; want 1 and %v", items[0].(map[string]any)["position"], page.get("next_after"), last)
	}
	next := a.do("GET", "/admin/events?after="+strconv.Itoa(int(last))+"&limit=5", nil).expect(t, 200, "")
	if p := next.num("items.0.position"); p != last+1 {
		t.Errorf("the next page starts at %v, want %v", p, last+1)
	}
	a.do("GET", "/admin/events?after=-1", nil).expect(t, 400, "validation_failed")
	a.do("GET", "/admin/events?limit=501", nil).expect(t, 400, "validation_failed")

	// Projections and a rebuild over the API.
	statuses := projectionStatuses(t, a)
	for _, name := range []string{"users", "tenants", "sessions", "mail_deliveries", "streams"} {
		st, ok := statuses[name]
		if !ok {
			t.Errorf("GET /admin/projections lacks %s", name)
			continue
		}
		if _, ok := st["lag"].(float64); !ok {
			t.Errorf("projection %s: lag = %v", name, st["lag"])
		}
		if _, ok := st["position"].(float64); !ok {
			t.Errorf("projection %s: position = %v", name, st["position"])
		}
	}
	a.do("POST", "/admin/projections/users/rebuild", nil).expect(t, 202, "")
	waitUntil(t, 30*time.Second, "the users rebuild finishes", func() bool {
		return strings.Contains(env.logs.String(), `"msg":"rebuild finished","projection":"users"`)
	})
	waitUntil(t, 30*time.Second, "users running with lag 0", func() bool {
		st := projectionStatuses(t, a)["users"]
		return st["status"] == "running" && st["lag"] == 0.0
	})
	a.do("POST", "/admin/projections/nope/rebuild", nil).expect(t, 404, "not_found")
	// The rebuilt read model serves and keeps up.
	if r := user.with(us.access).do("GET", "/me", nil).expect(t, 200, ""); r.str("user.email") != email || r.str("user.status") != "active" {
		t.Errorf("GET /me after the rebuild = %s", r.body)
	}
	env.client("127.0.0.3").register(uniqueEmail("after-rebuild"), "Late Comer", strongPassword()) // waits for the users read model
	waitUntil(t, 30*time.Second, "users lag 0 after new events", func() bool {
		return projectionStatuses(t, a)["users"]["lag"] == 0.0
	})

	// A normal user may not.
	u := user.with(us.access)
	u.do("GET", "/admin/tenants", nil).expect(t, 403, "forbidden")
	u.do("PUT", "/admin/tenants/"+tenantID+"/plan", map[string]any{"plan": "enterprise"}).expect(t, 403, "forbidden")
	u.do("GET", "/admin/events?after=0&limit=5", nil).expect(t, 403, "forbidden")
	u.do("GET", "/admin/projections", nil).expect(t, 403, "forbidden")
	u.do("POST", "/admin/projections/users/rebuild", nil).expect(t, 403, "forbidden")
	env.client("127.0.0.4").do("GET", "/admin/tenants", nil).expect(t, 401, "unauthenticated")
	if doc := u.do("GET", "/tenant", nil).expect(t, 200, ""); doc.str("plan") != "pro" {
		t.Errorf("a refused plan change changed the plan: %s", doc.body)
	}

	// Bootstrapping again on the same database keeps the one account.
	if err := env.app.Close(); err != nil {
		t.Fatal(err)
	}
	again := startE2E(t, e2eOptions{DSN: env.dsn, BootstrapEmail: adminEmail, BootstrapPassword: adminPassword})
	again.client("127.0.0.1").login(adminEmail, adminPassword, "")
	db := openEventsDB(t, env.dsn)
	var accounts, registered int
	if err := db.QueryRow(`SELECT COUNT(*) FROM users WHERE email = ?`, adminEmail).Scan(&accounts); err != nil {
		t.Fatal(err)
	}
	for _, e := range openedEvents(t, again.app) {
		if e.EventType == "user.registered.v1" && openedField(e, "email") == adminEmail {
			registered++
		}
	}
	if accounts != 1 || registered != 1 {
		t.Errorf("after two bootstraps: %d accounts and %d registrations of %s, want 1 and 1", accounts, registered, adminEmail)
	}
}

// mailIDsTo lists the ids of the mails requested for an address, in the order of the log (read
// through the store: the address is sealed in the log).
func mailIDsTo(t *testing.T, env *e2eEnv, to string) []string {
	t.Helper()
	var ids []string
	for _, e := range openedEvents(t, env.app) {
		if e.EventType == "mail.requested.v1" && openedField(e, "to") == to {
			ids = append(ids, openedField(e, "mail_id"))
		}
	}
	return ids
}

// Processes starting at once on one database agree on one bootstrap admin.
func TestE2EBootstrapByProcessesStartingAtOnce(t *testing.T) {
	dsn := testdb.DSN(t)
	email, password := uniqueEmail("root"), strongPassword()
	apps := make([]*App, 3)
	errs := make([]error, len(apps))
	var wg sync.WaitGroup
	for i := range apps {
		vars := map[string]string{"CLOUDDB_MGMT_DSN": dsn, "CLOUDDB_HTTP_ADDR": "127.0.0.1:0", "CLOUDDB_METRICS_ADDR": "off", "CLOUDDB_DATA_DIR": t.TempDir(),
			"CLOUDDB_SECRET_KEY": e2eSecretKey, "CLOUDDB_BCRYPT_COST": "4", "CLOUDDB_BOOTSTRAP_ADMIN_EMAIL": email, "CLOUDDB_BOOTSTRAP_ADMIN_PASSWORD": password}
		cfg, err := config.FromEnv(func(name string) string { return vars[name] })
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			app, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				apps[i] = app
				err = app.Serve(context.Background())
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, app := range apps {
			if app != nil {
				if err := app.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
	}
	db := openEventsDB(t, dsn)
	var registered, granted int
	if err := db.QueryRow(`SELECT COUNT(*) FROM events WHERE event_type = 'user.registered.v1'`).Scan(&registered); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM events WHERE event_type = 'user.super_admin_granted.v1'`).Scan(&granted); err != nil {
		t.Fatal(err)
	}
	if registered != 1 || granted != 1 {
		t.Errorf("three processes bootstrapping at once: %d accounts registered, %d grants; want 1 and 1", registered, granted)
	}
	for i, app := range apps { // every process serves the one account
		body := strings.NewReader(`{"email": "` + email + `", "password": "` + password + `"}`)
		resp, err := http.Post("http://"+app.Addr()+"/api/v1/auth/login", "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("process %d: admin login = %d", i, resp.StatusCode)
		}
	}
}

func projectionStatuses(t *testing.T, admin *e2eClient) map[string]map[string]any {
	t.Helper()
	r := admin.do("GET", "/admin/projections", nil).expect(t, 200, "")
	out := map[string]map[string]any{}
	for _, it := range r.items("items") {
		m := it.(map[string]any)
		out[describe(m["name"])] = m
	}
	return out
}

// 9. Secrets never leak: a run through every flow that handles one, then the event log and the
// process log are scanned for them. (Every other test ends with the same scan.)
func TestE2ESecretsNeverLeak(t *testing.T) {
	adminEmail, adminPassword := uniqueEmail("root"), strongPassword()
	env := startE2E(t, e2eOptions{BootstrapEmail: adminEmail, BootstrapPassword: adminPassword})
	c := env.client("127.0.0.1")

	email, pw0 := uniqueEmail("secretive"), strongPassword()
	c.register(email, "Sec Retive", pw0)
	c.do("POST", "/auth/verify/resend", map[string]any{"email": email}).expect(t, 202, "")
	c.do("POST", "/auth/verify/resend", map[string]any{"email": uniqueEmail("ghost")}).expect(t, 202, "")
	first, second := env.waitMail(email, "verif"), env.waitMail(email, "verif")
	if requested := mailIDsTo(t, env, email); len(requested) != 2 {
		t.Fatalf("%d mails requested for %s, want 2", len(requested), email)
	} else if !strings.Contains(first.file, requested[0]) {
		first, second = second, first // the log knows which came first
	}
	c.do("POST", "/auth/verify", map[string]any{"token": first.token}).expect(t, 410, "expired") // replaced by the resend
	c.do("POST", "/auth/verify", map[string]any{"token": second.token}).expect(t, 200, "")
	c.do("POST", "/auth/verify/resend", map[string]any{"email": email}).expect(t, 202, "") // verified: nothing to send
	if n := len(mailIDsTo(t, env, email)); n != 2 {
		t.Errorf("%d mails requested after a resend for a verified account, want still 2", n)
	}

	s := c.login(email, pw0, "")
	c.do("POST", "/auth/login", map[string]any{"email": email, "password": "Wrong-Guess-1!"}).expect(t, 401, "invalid_credentials")
	c.do("POST", "/auth/refresh", map[string]any{"refresh_token": s.refresh}).expect(t, 200, "")
	c.do("POST", "/auth/refresh", map[string]any{"refresh_token": s.refresh}).expect(t, 401, "unauthenticated") // reuse

	s = c.login(email, pw0, "")
	pw1 := strongPassword()
	c.with(s.access).do("PUT", "/me/password", map[string]any{"current_password": pw0, "new_password": pw1}).expect(t, 204, "")
	c.do("POST", "/auth/password/forgot", map[string]any{"email": email}).expect(t, 202, "")
	reset := env.waitMail(email, "reset")
	pw2 := strongPassword()
	c.do("POST", "/auth/password/reset", map[string]any{"token": reset.token, "new_password": pw0}).expect(t, 400, "password_reused")
	c.do("POST", "/auth/password/reset", map[string]any{"token": reset.token, "new_password": pw2}).expect(t, 204, "")
	s = c.login(email, pw2, "")
	c.with(s.access).do("POST", "/tenants", map[string]any{"name": "Secret Corp"}).expect(t, 201, "")
	s = c.login(email, pw2, "")

	// Two factors and API keys carry secrets too.
	me := c.with(s.access)
	setup := me.do("POST", "/me/totp/setup", nil).expect(t, 200, "")
	totpSecret := setup.str("secret")
	env.secret(totpSecret, "TOTP secret")
	code, err := totp.GenerateCode(totpSecret, env.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	recovery := me.do("POST", "/me/totp/enable", map[string]any{"code": code}).expect(t, 200, "").items("recovery_codes")
	if len(recovery) == 0 {
		t.Fatal("no recovery codes")
	}
	for _, rc := range recovery {
		env.secret(describe(rc), "recovery code")
	}
	c.do("POST", "/auth/login", map[string]any{"email": email, "password": pw2}).expect(t, 401, "totp_required")
	c.do("POST", "/auth/login", map[string]any{"email": email, "password": pw2, "totp_code": "000000"}).expect(t, 401, "invalid_totp")
	s = c.login2FA(email, pw2, describe(recovery[0]))
	key := c.with(s.access).do("POST", "/me/api-keys", map[string]any{"name": "ci"}).expect(t, 201, "").str("key")
	env.secret(key, "API key")
	if i := strings.LastIndexByte(key, '_'); i > 0 {
		env.secret(key[i+1:], "API key secret")
	}
	c.with(key).do("GET", "/me", nil).expect(t, 200, "")
	if keys := c.with(s.access).do("GET", "/me/api-keys", nil).expect(t, 200, ""); strings.Contains(string(keys.body), key[strings.LastIndexByte(key, '_')+1:]) {
		t.Errorf("GET /me/api-keys shows the key's secret: %s", keys.body)
	}
	c.with(s.access).do("POST", "/auth/logout", nil).expect(t, 204, "")

	as := env.client("127.0.0.2").login(adminEmail, adminPassword, "")
	admin := env.client("127.0.0.2").with(as.access)
	events := admin.do("GET", "/admin/events?after=0&limit=500", nil).expect(t, 200, "")

	// The admin's view of the event log shows no secret either.
	env.mu.Lock()
	for secret, what := range env.secrets {
		if strings.Contains(string(events.body), secret) {
			t.Errorf("GET /admin/events shows the %s", what)
		}
	}
	n := len(env.secrets)
	env.mu.Unlock()
	if n < 8 {
		t.Errorf("only %d secrets collected; the scan would prove little", n)
	}
	// The scan itself runs when the test ends, after the App has closed and logged its last line.
}
