package main

// Helpers of the end-to-end identity tests (identity_e2e_test.go): an App started on :0 against a
// fresh database with a movable clock and a captured JSON log, an HTTP client that checks what
// every response must carry, the mail box read back from CLOUDDB_MAIL_DIR, and the scan for
// secrets in the event log and the process log.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/internal/config"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// e2ePublicURL is CLOUDDB_PUBLIC_URL of the tests: https (the cookie must then be Secure) with a
// path prefix that the links in mails must keep.
const e2ePublicURL = "https://console.clouddb.test/app"

// e2eSecretKey is CLOUDDB_SECRET_KEY of every App of the tests: an App started again on the same
// management database, with another data dir, must have the key that sealed its secrets.
var e2eSecretKey = base64.StdEncoding.EncodeToString([]byte(randomHex(16)))

// e2eMailWait bounds how long a test waits for a mail to be delivered: milliseconds on an idle
// machine (the reactor follows the read model), seconds on a loaded CI machine; the poll returns
// as soon as the mail is there.
const e2eMailWait = 30 * time.Second

// e2eClock is the process clock of an App under test: real time plus an offset that tests move
// forward. Its Now is safe to call from any goroutine.
type e2eClock struct{ offset atomic.Int64 }

func (c *e2eClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *e2eClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// syncBuffer is the process log: the JSON lines of the App's slog logger.
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

// e2eOptions tune startE2E.
type e2eOptions struct {
	// DSN reuses the management database of an earlier App; empty means a fresh one.
	DSN                               string
	BootstrapEmail, BootstrapPassword string
	// Env adds or overrides configuration variables.
	Env map[string]string
}

// e2eEnv is one started App and what the test knows about it.
type e2eEnv struct {
	t     *testing.T
	app   *App
	dsn   string
	base  string // http://127.0.0.1:port/api/v1
	clock *e2eClock
	logs  *syncBuffer

	mu      sync.Mutex
	secrets map[string]string // secret → what it is, for the leak scan
	seen    map[string]bool   // mail files already handed to the test
}

// startE2E opens and serves an App on 127.0.0.1:0 with bcrypt cost 4, its clock movable through
// env.clock and its log captured in env.logs. When the test ends (after the App is closed) the
// event log and the process log are scanned for every secret the test used.
func startE2E(t *testing.T, opts e2eOptions) *e2eEnv {
	t.Helper()
	dsn := opts.DSN
	if dsn == "" {
		dsn = testdb.DSN(t)
	}
	vars := map[string]string{
		"CLOUDDB_MGMT_DSN":                 dsn,
		"CLOUDDB_HTTP_ADDR":                "127.0.0.1:0",
		"CLOUDDB_METRICS_ADDR":             "127.0.0.1:0",
		"CLOUDDB_DATA_DIR":                 t.TempDir(),
		"CLOUDDB_BCRYPT_COST":              "4",
		"CLOUDDB_SECRET_KEY":               e2eSecretKey,
		"CLOUDDB_PUBLIC_URL":               e2ePublicURL,
		"CLOUDDB_LOG_LEVEL":                "debug",
		"CLOUDDB_BOOTSTRAP_ADMIN_EMAIL":    opts.BootstrapEmail,
		"CLOUDDB_BOOTSTRAP_ADMIN_PASSWORD": opts.BootstrapPassword,
	}
	for name, value := range opts.Env {
		vars[name] = value
	}
	cfg, err := config.FromEnv(func(name string) string { return vars[name] })
	if err != nil {
		t.Fatal(err)
	}
	env := &e2eEnv{t: t, dsn: dsn, clock: &e2eClock{}, logs: &syncBuffer{},
		secrets: map[string]string{}, seen: map[string]bool{}}
	if opts.BootstrapPassword != "" {
		env.secret(opts.BootstrapPassword, "bootstrap admin password")
	}
	// Registered before the App's Close, so it runs after it: the log is complete by then.
	t.Cleanup(env.assertNoSecretLeaked)

	log := slog.New(slog.NewJSONHandler(env.logs, &slog.HandlerOptions{Level: cfg.LogLevel}))
	app, err := Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := app.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	app.Now = env.clock.Now // before Serve: nothing runs yet that reads it
	if err := app.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
	env.app = app
	env.base = "http://" + app.Addr() + "/api/v1"
	return env
}

// secret remembers a value that must never appear in the event log or the process log.
func (e *e2eEnv) secret(value, what string) {
	if len(value) < 6 { // too short to mean anything when found
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets[value] = what
}

// assertNoSecretLeaked scans every event's payload and metadata, and the process log, for the
// plaintext passwords, refresh tokens and link token secrets the test used.
func (e *e2eEnv) assertNoSecretLeaked() {
	t := e.t
	db, err := sql.Open("mysql", e.dsn)
	if err != nil {
		t.Errorf("leak scan: %v", err)
		return
	}
	defer db.Close()
	rows, err := db.Query(`SELECT position, event_type, payload, metadata FROM events ORDER BY position`)
	if err != nil {
		t.Errorf("leak scan: %v", err)
		return
	}
	defer rows.Close()
	e.mu.Lock()
	secrets := make(map[string]string, len(e.secrets))
	for k, v := range e.secrets {
		secrets[k] = v
	}
	e.mu.Unlock()
	events := 0
	for rows.Next() {
		var position int64
		var typ, payload, metadata string
		if err := rows.Scan(&position, &typ, &payload, &metadata); err != nil {
			t.Errorf("leak scan: %v", err)
			return
		}
		events++
		for s, what := range secrets {
			if strings.Contains(payload, s) || strings.Contains(metadata, s) {
				t.Errorf("event %d (%s) contains the %s %q:\npayload %s\nmetadata %s", position, typ, what, s, payload, metadata)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Errorf("leak scan: %v", err)
	}
	logs := e.withoutMailLinks()
	for s, what := range secrets {
		if i := strings.Index(logs, s); i >= 0 {
			start := strings.LastIndexByte(logs[:i], '\n') + 1
			end := i + strings.IndexByte(logs[i:]+"\n", '\n')
			t.Errorf("the process log contains the %s %q:\n%s", what, s, logs[start:end])
		}
	}
	if events == 0 || logs == "" {
		t.Errorf("leak scan saw %d events and %d bytes of log: nothing to scan?", events, len(logs))
	}
}

// mailLinkLine marks the log lines of the development mail path (no SMTP): the only ones allowed
// to carry a mail's token (docs/SECURITY.md, "Mail without SMTP").
var mailLinkLine = `"msg":"` + commands.MailLinkLogged + `"`

// withoutMailLinks is the process log without the lines of the development mail path.
func (e *e2eEnv) withoutMailLinks() string {
	var kept strings.Builder
	for _, line := range strings.SplitAfter(e.logs.String(), "\n") {
		if !strings.Contains(line, mailLinkLine) {
			kept.WriteString(line)
		}
	}
	return kept.String()
}

// waitMailLinkLogged waits (with a deadline) for the log line that prints a mail's link when
// there is no SMTP.
func (e *e2eEnv) waitMailLinkLogged(link string) {
	e.t.Helper()
	want := `"link":"` + link + `"`
	deadline := time.Now().Add(e2eMailWait)
	for !strings.Contains(e.logs.String(), want) {
		if time.Now().After(deadline) {
			e.t.Fatalf("no log line %s with %s within %v", mailLinkLine, want, e2eMailWait)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronization: the deadline decides
	}
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, want) && (!strings.Contains(line, mailLinkLine) || !strings.Contains(line, `"level":"INFO"`)) {
			e.t.Errorf("the link is logged by another line than the INFO %s: %s", mailLinkLine, line)
		}
	}
}

// strongPassword returns a fresh password that satisfies the policy.
func strongPassword() string {
	return "Pw-" + randomHex(6) + "-Zq7!"
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// uniqueEmail returns an address no other test uses.
func uniqueEmail(who string) string {
	return who + "-" + randomHex(4) + "@example.com"
}

// ---- HTTP ----

// e2eClient talks to the API from one source IP (127.0.0.0/8 is all loopback, so each client can
// have its own address and its own per-IP rate limits), with an optional bearer token or cookie.
type e2eClient struct {
	env     *e2eEnv
	hc      *http.Client
	token   string // Authorization: Bearer
	cookie  string // clouddb_session cookie
	csrf    string // X-CSRF-Token
	headers map[string]string
}

// client returns a client that connects from ip ("127.0.0.x").
func (e *e2eEnv) client(ip string) *e2eClient {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	transport := &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 16}
	e.t.Cleanup(transport.CloseIdleConnections)
	return &e2eClient{env: e, hc: &http.Client{Transport: transport, Timeout: 20 * time.Second}, headers: map[string]string{}}
}

// with returns a copy of c that authenticates with the bearer token.
func (c *e2eClient) with(token string) *e2eClient {
	d := *c
	d.token, d.cookie, d.csrf = token, "", ""
	return &d
}

// withCookie returns a copy of c that authenticates with the session cookie only.
func (c *e2eClient) withCookie(access, csrf string) *e2eClient {
	d := *c
	d.token, d.cookie, d.csrf = "", access, csrf
	return &d
}

// e2eResponse is a response read whole.
type e2eResponse struct {
	method, path string
	status       int
	header       http.Header
	cookies      []*http.Cookie
	body         []byte
	doc          any // the decoded JSON body, nil if none
}

// do sends one request. body is JSON-encoded unless it is a string or []byte (sent as is). Every
// value of a field named like a password in a JSON object body becomes a secret of the leak scan,
// as does every refresh token in a response. Every response must carry X-Request-Id, every error
// response the envelope of API.md with that id, and every response must be one api/openapi.json
// describes (checkOpenAPI).
func (c *e2eClient) do(method, path string, body any) *e2eResponse {
	t := c.env.t
	t.Helper()
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = strings.NewReader(b)
	case []byte:
		reader = bytes.NewReader(b)
	case io.Reader:
		reader = b // no length known: sent chunked
	default:
		if m, ok := body.(map[string]any); ok {
			for k, v := range m {
				if s, ok := v.(string); ok && strings.Contains(k, "password") {
					c.env.secret(s, "password ("+k+")")
				}
			}
		}
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.env.base+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "clouddb-e2e-test")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "clouddb_session", Value: c.cookie})
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	checkOpenAPI(t, req, resp, data)
	r := &e2eResponse{method: method, path: path, status: resp.StatusCode, header: resp.Header, cookies: resp.Cookies(), body: data}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &r.doc); err != nil {
			t.Errorf("%s %s = %d with a body that is not JSON: %q", method, path, resp.StatusCode, truncateForLog(data))
		}
	}
	id := resp.Header.Get("X-Request-Id")
	if id == "" {
		t.Errorf("%s %s = %d without X-Request-Id", method, path, resp.StatusCode)
	}
	if resp.StatusCode >= 400 {
		replayed := resp.Header.Get("Idempotent-Replayed") == "true" // keeps the first request's id
		if r.str("error.code") == "" || r.str("error.message") == "" || (r.str("error.request_id") != id && !replayed) {
			t.Errorf("%s %s = %d without the error envelope (request id %q): %s", method, path, resp.StatusCode, id, truncateForLog(data))
		}
		if _, ok := r.get("error.details").(map[string]any); !ok {
			t.Errorf("%s %s = %d: error.details is not an object: %s", method, path, resp.StatusCode, truncateForLog(data))
		}
	} else if ct := resp.Header.Get("Content-Type"); len(data) > 0 && !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s = %d with Content-Type %q", method, path, resp.StatusCode, ct)
	}
	if s := r.str("refresh_token"); s != "" {
		c.env.secret(s, "refresh token")
		if _, secret, ok := strings.Cut(s, "."); ok {
			c.env.secret(secret, "refresh token secret")
		}
	}
	return r
}

func truncateForLog(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// expect fails the test unless the response has status and, for errors, error code.
func (r *e2eResponse) expect(t *testing.T, status int, code string) *e2eResponse {
	t.Helper()
	if r.status != status || (code != "" && r.str("error.code") != code) {
		want := strconv.Itoa(status)
		if code != "" {
			want += " " + code
		}
		t.Fatalf("%s %s = %d %s, want %s", r.method, r.path, r.status, truncateForLog(r.body), want)
	}
	return r
}

// get returns the value at a dotted path ("user.email", "items.0.id") of the JSON body.
func (r *e2eResponse) get(path string) any { return jsonPath(r.doc, path) }

// str returns the string at path, "" if it is missing or not a string.
func (r *e2eResponse) str(path string) string {
	s, _ := r.get(path).(string)
	return s
}

// num returns the number at path, -1 if it is missing or not a number.
func (r *e2eResponse) num(path string) float64 {
	n, ok := r.get(path).(float64)
	if !ok {
		return -1
	}
	return n
}

// items returns the array at path.
func (r *e2eResponse) items(path string) []any {
	a, _ := r.get(path).([]any)
	return a
}

func jsonPath(v any, path string) any {
	if path == "" {
		return v
	}
	for _, key := range strings.Split(path, ".") {
		switch node := v.(type) {
		case map[string]any:
			v = node[key]
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(node) {
				return nil
			}
			v = node[i]
		default:
			return nil
		}
	}
	return v
}

// ---- mail ----

// e2eMail is a delivered mail as the recipient reads it.
type e2eMail struct {
	file, to, subject, body, link, token string
}

var linkPattern = regexp.MustCompile(`https?://\S+\?token=\S+`)

// waitMail waits (with a deadline, no fixed sleep) for a mail to `to` whose subject contains
// subject that the test has not taken yet, and returns it with the link and token it carries.
// The token's secret (after the '.') becomes a secret of the leak scan.
func (e *e2eEnv) waitMail(to, subject string) e2eMail {
	t := e.t
	t.Helper()
	deadline := time.Now().Add(e2eMailWait)
	for {
		files, err := filepath.Glob(filepath.Join(e.app.Config.MailDir, "*.eml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			e.mu.Lock()
			seen := e.seen[f]
			e.mu.Unlock()
			if seen {
				continue
			}
			m := readMail(t, f)
			if !strings.EqualFold(m.to, to) || !strings.Contains(strings.ToLower(m.subject), strings.ToLower(subject)) {
				continue
			}
			e.mu.Lock()
			e.seen[f] = true
			e.mu.Unlock()
			if _, secret, ok := strings.Cut(m.token, "."); ok {
				e.secret(secret, "mail link token secret")
			}
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail %q to %s within %v (mail dir holds %d files)", subject, to, e2eMailWait, len(files))
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronization: the deadline decides
	}
}

// mailsTo counts the mails delivered to an address so far.
func (e *e2eEnv) mailsTo(to string) int {
	files, _ := filepath.Glob(filepath.Join(e.app.Config.MailDir, "*.eml"))
	n := 0
	for _, f := range files {
		if strings.EqualFold(readMail(e.t, f).to, to) {
			n++
		}
	}
	return n
}

// readMail parses an .eml file with net/mail and reads its text body: as it is (7bit, 8bit), or
// decoded when quoted-printable.
func readMail(t *testing.T, file string) e2eMail {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("%s: subject: %v", file, err)
	}
	to, err := mail.ParseAddress(msg.Header.Get("To"))
	if err != nil {
		t.Fatalf("%s: To: %v", file, err)
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(msg.Body)
	}
	text, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("%s: body: %v", file, err)
	}
	m := e2eMail{file: file, to: to.Address, subject: subject, body: string(text)}
	if link := linkPattern.FindString(m.body); link != "" {
		m.link = link
		if u, err := url.Parse(link); err == nil {
			m.token = u.Query().Get("token")
		}
	}
	return m
}

// ---- flows ----

// e2eSession is what a login returned.
type e2eSession struct {
	access, refresh, csrf string
	resp                  *e2eResponse
}

// register signs up and returns the user id; it checks the 201 answer.
func (c *e2eClient) register(email, name, password string) string {
	t := c.env.t
	t.Helper()
	r := c.do("POST", "/auth/register", map[string]any{"email": email, "password": password, "name": name}).expect(t, 201, "")
	return r.str("user_id")
}

// signUp registers and verifies an account through the link of its mail; it returns the user id.
func (c *e2eClient) signUp(email, name, password string) string {
	t := c.env.t
	t.Helper()
	id := c.register(email, name, password)
	c.verify(email)
	return id
}

// verify follows the link of the verification mail to email. Registering several accounts first
// and verifying them afterwards waits for their mails together.
func (c *e2eClient) verify(email string) {
	t := c.env.t
	t.Helper()
	m := c.env.waitMail(email, "verify")
	c.do("POST", "/auth/verify", map[string]any{"token": m.token}).expect(t, 200, "")
}

// login logs in (tenant "" for none) and checks the 200 answer.
func (c *e2eClient) login(email, password, tenant string) e2eSession {
	t := c.env.t
	t.Helper()
	body := map[string]any{"email": email, "password": password}
	if tenant != "" {
		body["tenant"] = tenant
	}
	r := c.do("POST", "/auth/login", body).expect(t, 200, "")
	s := e2eSession{access: r.str("access_token"), refresh: r.str("refresh_token"), csrf: r.str("csrf_token"), resp: r}
	if s.access == "" || s.refresh == "" || s.csrf == "" {
		t.Fatalf("login answered without tokens: %s", r.body)
	}
	return s
}

// login2FA logs in with a second factor (a TOTP code or a recovery code).
func (c *e2eClient) login2FA(email, password, code string) e2eSession {
	t := c.env.t
	t.Helper()
	r := c.do("POST", "/auth/login", map[string]any{"email": email, "password": password, "totp_code": code}).expect(t, 200, "")
	return e2eSession{access: r.str("access_token"), refresh: r.str("refresh_token"), csrf: r.str("csrf_token"), resp: r}
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond) // polling interval; the deadline decides
	}
}

func describe(v any) string { return fmt.Sprintf("%v", v) }
