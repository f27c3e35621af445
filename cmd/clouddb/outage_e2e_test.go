package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// An outage of the management database (RDS-A) reaches clients as 503 unavailable with
// Retry-After, whatever the request needed from it, and /readyz names the component that is down
// without showing its address or the driver's error; both come back when the database does.
func TestE2EManagementDatabaseOutage(t *testing.T) {
	dsn, err := mysql.ParseDSN(testdb.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startSandboxProxy(t, dsn.Addr)
	viaProxy := *dsn
	viaProxy.Addr = proxy.ln.Addr().String()
	env := startE2E(t, e2eOptions{DSN: viaProxy.FormatDSN()})
	c := env.client("127.0.0.1")
	email, password := uniqueEmail("outage"), strongPassword()
	c.signUp(email, "Olga", password)
	me := c.with(c.login(email, password, "").access)
	me.do("GET", "/me", nil).expect(t, 200, "")

	proxy.set("kill", "") // every connection to RDS-A dies at its next write, new ones too
	for _, r := range []*e2eResponse{
		me.do("GET", "/me", nil),
		me.do("POST", "/tenants", map[string]any{"name": "Outage"}),
		c.do("POST", "/auth/login", map[string]any{"email": email, "password": password}),
	} {
		r.expect(t, 503, "unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", r.method, r.path)
		}
	}
	status, body := readyz(t, env)
	if status != 503 {
		t.Errorf("/readyz during the outage = %d %s, want 503", status, body)
	}
	var doc struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("/readyz body %s: %v", body, err)
	}
	if doc.Checks["management_database"] != "down" {
		t.Errorf("/readyz checks = %v, want management_database down", doc.Checks)
	}
	for _, leak := range []string{proxy.ln.Addr().String(), dsn.Addr, "127.0.0.1", "tcp", "invalid connection", "EOF"} {
		if strings.Contains(body, leak) {
			t.Errorf("/readyz shows %q: %s", leak, body)
		}
	}
	if !strings.Contains(env.logs.String(), "readiness check failed") {
		t.Error("the reason the management database is not ready is not logged")
	}

	proxy.set("pass", "")
	me.do("GET", "/me", nil).expect(t, 200, "")
	// The projections resume after their backoff: ready again once they have.
	waitUntil(t, time.Minute, "/readyz answers 200 after the outage", func() bool {
		status, _ := readyz(t, env)
		return status == 200
	})
}

func readyz(t *testing.T, env *e2eEnv) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + env.app.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
