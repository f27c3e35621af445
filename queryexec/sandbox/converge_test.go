package sandbox_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox/sandboxtest"
)

// TestConvergeRepairsDrift: every way an account can drift from what the log says — unlocked while
// stopped, another connection limit, a password the vault does not hold, routine privileges while
// the tenant forbids them, a grant on another schema — is found by Inspect and repaired by one
// Converge, and a second Converge finds nothing to do.
func TestConvergeRepairsDrift(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	root := admin(t)
	ctx := sandboxtest.Context(t)
	id, rwPass, roPass := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	schema := sandbox.SchemaName(sandboxtest.Prefix, id)
	rwUser, roUser := sandbox.AccountNames(sandboxtest.Prefix, id)
	rwAccount, roAccount := sandbox.QuoteAccount(rwUser), sandbox.QuoteAccount(roUser)
	for _, stmt := range []string{
		"ALTER USER " + rwAccount + " IDENTIFIED BY 'stolen-Password-1' WITH MAX_USER_CONNECTIONS 99",
		"ALTER USER " + roAccount + " WITH MAX_USER_CONNECTIONS 98",
		"GRANT SELECT ON `mysql`.* TO " + roAccount,
	} {
		sandboxtest.MustExec(t, root, stmt)
	}
	held := sandboxtest.ConnectAs(t, s, rwUser, "stolen-Password-1", schema)
	want := sandbox.Intent{Exists: true, Locked: true, Grants: sandbox.Grants{NoRoutines: true}, MaxUserConnections: 7,
		RWPassword: rwPass, ROPassword: roPass}

	repairs, err := s.Converge(ctx, id, want)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{sandbox.RepairLock, sandbox.RepairMaxUserConnections, sandbox.RepairPassword, sandbox.RepairGrants} {
		if !slices.Contains(repairs, kind) {
			t.Errorf("repairs %v lack %s", repairs, kind)
		}
	}
	if err := held.PingContext(ctx); err == nil {
		t.Error("a connection with the stolen password survived the repair")
	}
	st, err := s.Inspect(ctx, id, rwPass, roPass)
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]*sandbox.Account{"rw": st.RW, "ro": st.RO} {
		if a == nil || !a.Locked || a.MaxUserConnections != 7 || a.Password != "match" || len(a.Stray) > 0 {
			t.Errorf("%s account after Converge: %+v, want locked, 7 connections, the vault's password, no stray grant", name, a)
		}
	}
	for _, p := range []string{"CREATE ROUTINE", "ALTER ROUTINE", "TRIGGER", "EVENT"} {
		if slices.Contains(st.RW.Privileges, p) {
			t.Errorf("read-write privileges %v hold %s while routines are not allowed", st.RW.Privileges, p)
		}
	}
	if again, err := s.Converge(ctx, id, want); err != nil || len(again) > 0 {
		t.Errorf("second Converge: %v, %v; want nothing to repair", again, err)
	}

	want.Locked, want.Grants = false, sandbox.Grants{}
	if repairs, err := s.Converge(ctx, id, want); err != nil || !slices.Contains(repairs, sandbox.RepairUnlock) || !slices.Contains(repairs, sandbox.RepairGrants) {
		t.Fatalf("Converge to running with routines: %v, %v", repairs, err)
	}
	rw := sandboxtest.ConnectAs(t, s, rwUser, rwPass, schema)
	sandboxtest.MustExec(t, rw, "CREATE PROCEDURE p() SELECT 1")
}

// TestConvergeDropsLeftovers: a database the log says does not exist (its provisioning failed)
// loses the schema and locked accounts a crash left behind; one without leftovers needs nothing.
func TestConvergeDropsLeftovers(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	root := admin(t)
	ctx := sandboxtest.Context(t)
	id, _, _ := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	if err := s.Lock(ctx, id); err != nil {
		t.Fatal(err)
	}
	repairs, err := s.Converge(ctx, id, sandbox.Intent{})
	if err != nil || !slices.Equal(repairs, []string{sandbox.RepairLeftoverDropped}) {
		t.Fatalf("Converge of a failed database's leftovers: %v, %v", repairs, err)
	}
	rwUser, _ := sandbox.AccountNames(sandboxtest.Prefix, id)
	var n int
	if err := root.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM mysql.user WHERE User = ?)
		+ (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?)`, rwUser, sandbox.SchemaName(sandboxtest.Prefix, id)).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d accounts and schemas left (%v), want none", n, err)
	}
	if repairs, err := s.Converge(ctx, uuid.NewString(), sandbox.Intent{}); err != nil || len(repairs) > 0 {
		t.Errorf("Converge of nothing: %v, %v", repairs, err)
	}
}

func TestNativePasswordHash(t *testing.T) {
	// SELECT PASSWORD('x') on MariaDB.
	if got := sandbox.NativePasswordHash("x"); got != "*B69027D44F6E5EDC07F1AEAD1477967B16F28227" {
		t.Errorf("hash of x: %s", got)
	}
}
