package main

import (
	"database/sql"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// TestPlanAndSettingsReachTheAccounts: PUT /admin/tenants/{id}/plan to enterprise gives the
// existing accounts the enterprise MAX_USER_CONNECTIONS, and PATCH /tenant/settings with
// allow_procedures lets the read-write account create a procedure over a direct connection, both
// through the running reconciler, without waiting for its periodic pass.
func TestPlanAndSettingsReachTheAccounts(t *testing.T) {
	adminEmail, adminPassword := uniqueEmail("root"), strongPassword()
	env, prefix := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{BootstrapEmail: adminEmail, BootstrapPassword: adminPassword}})
	owner := newTenantAdmin(env, "127.0.0.1", "Convergent")
	r := createDatabase(t, owner.c, map[string]any{"name": "grown"})
	id := r.str("id")
	rw, _ := sandbox.AccountNames(prefix, id)
	root, err := sql.Open("mysql", testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	limit := func() int {
		var n int
		if err := root.QueryRow(`SELECT max_user_connections FROM mysql.user WHERE User = ?`, rw).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := limit(); n != 10 {
		t.Fatalf("free plan: MAX_USER_CONNECTIONS %d, want 10", n)
	}
	direct, err := sql.Open("mysql", rw+":"+r.str("connection.password")+"@tcp("+testServerAddr(t)+")/"+r.str("connection.database"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if _, err := direct.Exec("CREATE PROCEDURE p() SELECT 1"); err == nil {
		t.Fatal("CREATE PROCEDURE over a direct connection worked while procedures are not allowed")
	}

	admin := env.client("127.0.0.9")
	a := admin.with(admin.login(adminEmail, adminPassword, "").access)
	a.do("PUT", "/admin/tenants/"+owner.tenantID+"/plan", map[string]any{"plan": "enterprise"}).expect(t, 200, "")
	owner.c.do("PATCH", "/tenant/settings", map[string]any{"allow_procedures": true}).expect(t, 200, "")
	deadline := time.Now().Add(20 * time.Second) // the periodic pass is a minute away
	for limit() != 1000 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := limit(); n != 1000 {
		t.Fatalf("enterprise plan: MAX_USER_CONNECTIONS %d, want 1000", n)
	}
	var created error
	for time.Now().Before(deadline) {
		if _, created = direct.Exec("CREATE PROCEDURE p() SELECT 1"); created == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if created != nil {
		t.Errorf("CREATE PROCEDURE once procedures are allowed: %v", created)
	}
}
