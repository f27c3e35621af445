package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
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
		`clouddb_projection_lag_events{projection="streams"} 0`,
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
	if took := time.Since(started); took > 10*time.Second {
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
		{name: "version", args: []string{"version"}, code: 0},
		{name: "help", args: []string{"help"}, code: 0, stdout: "usage: clouddb"},
		{name: "unknown command", args: []string{"bogus"}, code: 2},
		{name: "rebuild without a name", args: []string{"projections", "rebuild"}, code: 2},
		{name: "invalid configuration", args: []string{"migrate"}, env: map[string]string{"CLOUDDB_HTTP_ADDR": "8080"}, code: 2, stderrLine: "CLOUDDB_HTTP_ADDR"},
		{name: "migrate", args: []string{"migrate"}, code: 0},
		{name: "projections status", args: []string{"projections", "status"}, code: 0, stdout: `"name": "streams"`},
		{name: "rebuild", args: []string{"projections", "rebuild", "streams"}, code: 0, stdout: `"name": "streams"`},
		{name: "rebuild of an unknown projection", args: []string{"projections", "rebuild", "nope"}, code: 1, stderrLine: "nope"},
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
		})
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
