package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/internal/config"
	"github.com/clouddbmanager/clouddb/internal/secrets"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.FromEnv(func(name string) string {
		switch name {
		case "CLOUDDB_MGMT_DSN":
			return testdb.DSN(t)
		case "CLOUDDB_HTTP_ADDR", "CLOUDDB_METRICS_ADDR":
			return "127.0.0.1:0"
		case "CLOUDDB_DATA_DIR":
			return t.TempDir()
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startApp(t *testing.T) (*App, string) {
	t.Helper()
	app, err := Open(context.Background(), testConfig(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := app.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := app.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
	return app, "http://" + app.Addr()
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestServedSystemAnswersItsOperationalRoutes(t *testing.T) {
	app, base := startApp(t)

	if resp, body := get(t, base+"/healthz"); resp.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz = %d %s", resp.StatusCode, body)
	}
	resp, body := get(t, base+"/readyz")
	if resp.StatusCode != 200 || !strings.Contains(body, "management_database") || !strings.Contains(body, "projections") {
		t.Fatalf("/readyz = %d %s", resp.StatusCode, body)
	}
	resp, body = get(t, base+"/api/v1/openapi.json")
	var doc map[string]any
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &doc) != nil || doc["openapi"] == nil {
		t.Fatalf("/api/v1/openapi.json = %d, not an OpenAPI document", resp.StatusCode)
	}
	resp, body = get(t, base+"/api/v1/no-such-thing")
	var envelope struct {
		Error struct {
			Code      string `json:"code"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if resp.StatusCode != 404 || json.Unmarshal([]byte(body), &envelope) != nil || envelope.Error.Code != "not_found" ||
		envelope.Error.RequestID == "" || envelope.Error.RequestID != resp.Header.Get("X-Request-Id") {
		t.Fatalf("unknown route = %d %s (X-Request-Id %q)", resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
	}
	// The metrics are served on the operator address only.
	if resp, body := get(t, base+"/metrics"); resp.StatusCode != 404 || !strings.Contains(body, `"not_found"`) {
		t.Errorf("/metrics on the public address = %d %s, want 404 not_found", resp.StatusCode, body)
	}
	resp, body = get(t, "http://"+app.MetricsAddr()+"/metrics")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics on the operator address = %d", resp.StatusCode)
	}
	for _, want := range []string{
		`clouddb_projection_lag_events{projection="streams"} `, // its value: whatever the reactors appended meanwhile
		`clouddb_projection_position{projection="streams"}`,
		`clouddb_http_requests_total{`,
		`clouddb_http_request_duration_seconds_bucket{`,
		`go_goroutines`,
		`go_sql_open_connections{db_name="mgmt"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestShutdownStopsServing(t *testing.T) {
	app, base := startApp(t)
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("the server still answers after Close")
	}
}

// The start says which management database the process uses, without its credentials.
func TestStartNamesTheManagementDatabase(t *testing.T) {
	cfg := testConfig(t)
	parsed, err := mysql.ParseDSN(cfg.MgmtDSN)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	app, err := Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	line := `"msg":"management database (CLOUDDB_MGMT_DSN): ` + parsed.Net + "(" + parsed.Addr + ")/" + parsed.DBName + `"`
	if !strings.Contains(logs.String(), line) || (parsed.Passwd != "" && strings.Contains(logs.String(), parsed.Passwd)) {
		t.Errorf("the start does not name the management database as %s:\n%s", line, logs.String())
	}
}

func TestUnreachableManagementDatabaseFailsWithAClearError(t *testing.T) {
	defer func(wait time.Duration) { startupWait = wait }(startupWait)
	startupWait = time.Second
	cfg := testConfig(t)
	cfg.MgmtDSN = "root@tcp(127.0.0.1:1)/clouddb"
	started := time.Now()
	_, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("Open = %v, want an error naming the address", err)
	}
	// One that ignored the 1 s wait would retry for the default 30 s: 20 s tells the two apart
	// however busy the machine.
	if took := time.Since(started); took > 20*time.Second {
		t.Fatalf("gave up after %v, want about the startup wait", took)
	}
}

func TestCommandLine(t *testing.T) {
	dsn := testdb.DSN(t)
	dataDir := t.TempDir() // one for all: its generated secret.key sealed the database's vault
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		stdout     string
		stderrLine string
	}{
		{name: "version", args: []string{"version"}, code: 0, stdout: "clouddb "},
		{name: "--version", args: []string{"--version"}, code: 0, stdout: ", built "},
		{name: "help", args: []string{"help"}, code: 0, stdout: "projections rebuild NAME"},
		{name: "-h", args: []string{"-h"}, code: 0, stdout: "Run the HTTP API"},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: "--version"},
		{name: "help of a command", args: []string{"help", "serve"}, code: 0, stdout: "Usage: clouddb serve"},
		{name: "a command's --help", args: []string{"projections", "rebuild", "--help"}, code: 0, stdout: "Usage: clouddb projections rebuild NAME"},
		{name: "unknown command", args: []string{"bogus"}, code: 2, stderrLine: `unknown command "bogus"`},
		{name: "unknown projections command", args: []string{"projections", "list"}, code: 2, stderrLine: "projections takes status or rebuild"},
		{name: "rebuild without a name", args: []string{"projections", "rebuild"}, code: 2, stderrLine: "clouddb projections rebuild NAME"},
		{name: "migrate with an argument", args: []string{"migrate", "now"}, code: 2, stderrLine: `(got "now")`},
		{name: "invalid configuration", args: []string{"migrate"}, env: map[string]string{"CLOUDDB_HTTP_ADDR": "8080"}, code: 2, stderrLine: "CLOUDDB_HTTP_ADDR"},
		{name: "a URL for a DSN", args: []string{"migrate"}, env: map[string]string{"CLOUDDB_MGMT_DSN": "mysql://root@127.0.0.1:3306/x"}, code: 2,
			stderrLine: "is a URL, not a DSN: the form is the Go MySQL driver's DSN, user:password@tcp(host:port)/database"},
		{name: "migrate", args: []string{"migrate"}, code: 0},
		{name: "projections status", args: []string{"projections", "status"}, code: 0, stdout: `"status": "stopped"`},
		{name: "rebuild", args: []string{"projections", "rebuild", "streams"}, code: 0, stdout: `"name": "streams"`},
		{name: "rebuild of an unknown projection", args: []string{"projections", "rebuild", "nope"}, code: 1, stderrLine: `"nope" (they are streams, users, `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}
			env["CLOUDDB_DATA_DIR"] = dataDir
			code := run(context.Background(), tt.args, func(name string) string { return envOr(env, name, dsn) }, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Fatalf("stdout %q lacks %q", stdout.String(), tt.stdout)
			}
			if tt.stderrLine != "" && !strings.Contains(stderr.String(), tt.stderrLine) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), tt.stderrLine)
			}
			if strings.HasPrefix(strings.TrimSpace(stdout.String()), "[") && !json.Valid(stdout.Bytes()) {
				t.Fatalf("stdout is not JSON alone (log lines belong on stderr):\n%s", stdout.String())
			}
		})
	}

	// While a server runs, status reads it from the management database: running.
	getenv := func(name string) string {
		return envOr(map[string]string{"CLOUDDB_DATA_DIR": dataDir, "CLOUDDB_HTTP_ADDR": "127.0.0.1:0", "CLOUDDB_METRICS_ADDR": "off"}, name, dsn)
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	app, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := app.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"projections", "status"}, getenv, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), `"status": "running"`) {
		t.Errorf("projections status beside a server = %d:\n%s\n%s", code, stdout.String(), stderr.String())
	}

	// A port that is taken fails serve at once, in one line, before anything starts.
	busy := map[string]string{"CLOUDDB_DATA_DIR": dataDir, "CLOUDDB_HTTP_ADDR": app.Addr(), "CLOUDDB_METRICS_ADDR": "off"}
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"serve"}, func(name string) string { return envOr(busy, name, dsn) }, &stdout, &stderr); code != 1 ||
		strings.Count(stderr.String(), "\n") != 1 || !strings.HasPrefix(stderr.String(), "clouddb: cannot listen on "+app.Addr()+" (CLOUDDB_HTTP_ADDR)") {
		t.Errorf("serve on a taken port = %d, stderr:\n%s\nwant exit 1 and one line saying so", code, stderr.String())
	}
}

// Ctrl-C stops a serving process cleanly: exit 0 and no ERROR in its log.
func TestInterruptedServeLogsNoError(t *testing.T) {
	port, err := net.Listen("tcp", "127.0.0.1:0") // a free port, let go just before serve binds it
	if err != nil {
		t.Fatal(err)
	}
	addr := port.Addr().String()
	port.Close()
	env := map[string]string{"CLOUDDB_DATA_DIR": t.TempDir(), "CLOUDDB_HTTP_ADDR": addr, "CLOUDDB_METRICS_ADDR": "off"}
	dsn := testdb.DSN(t)
	ctx, interrupt := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, func(name string) string { return envOr(env, name, dsn) }, &stdout, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready within 30 s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronization: the deadline decides
	}
	interrupt()
	if code := <-done; code != 0 {
		t.Errorf("exit code %d after Ctrl-C, want 0", code)
	}
	if logs := stderr.String(); strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("Ctrl-C logged errors, or did not stop:\n%s", logs)
	}
}

func envOr(env map[string]string, name, dsn string) string {
	if v, ok := env[name]; ok {
		return v
	}
	if name == "CLOUDDB_MGMT_DSN" {
		return dsn
	}
	return ""
}

// A management database whose vault another key sealed (the data dir deleted, its secret.key
// regenerated) is refused at start with one line that says how to recover; the old key given as
// CLOUDDB_SECRET_KEY_PREVIOUS starts the rotation instead.
func TestVaultSealedWithAnotherKeyRefusesToStart(t *testing.T) {
	cfg := testConfig(t)
	first, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := cfg
	again.DataDir, again.SecretKey = t.TempDir(), nil // a new data dir: a new key is generated
	_, err = Open(context.Background(), again, slog.New(slog.DiscardHandler))
	var mismatch *secrets.KeyMismatchError
	if !errors.As(err, &mismatch) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "CLOUDDB_SECRET_KEY_PREVIOUS") {
		t.Fatalf("Open with another key: %v, want one line saying the vault has another key and how to recover", err)
	}
	rotating := again
	rotating.SecretKeyPrevious = first.Config.SecretKey
	app, err := Open(context.Background(), rotating, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open with the old key as CLOUDDB_SECRET_KEY_PREVIOUS: %v", err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
}
