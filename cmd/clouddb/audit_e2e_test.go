package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

// TestAuditPublicKey: members read the key that signs the chain heads (the one configured), and
// the heads the server signs verify with it.
func TestAuditPublicKey(t *testing.T) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	env := startE2E(t, e2eOptions{Env: map[string]string{"CLOUDDB_AUDIT_SIGNING_KEY": base64.StdEncoding.EncodeToString(key.Seed())}})
	admin := newTenantAdmin(env, "127.0.61.1", "Audited")
	env.client("127.0.61.2").do("GET", "/audit/public-key", nil).expect(t, 401, "unauthenticated")

	r := admin.c.do("GET", "/audit/public-key", nil).expect(t, 200, "")
	pub := key.Public().(ed25519.PublicKey)
	if r.str("key_id") != eventstore.KeyID(pub) || r.str("algorithm") != "Ed25519" ||
		r.str("public_key") != base64.StdEncoding.EncodeToString(pub) || r.str("public_key_pem") == "" {
		t.Fatalf("public key answer %s, want the configured key %x", r.body, pub)
	}
	if _, err := env.app.HeadSigner.Sign(context.Background()); err != nil {
		t.Fatal(err)
	}
	sigs, err := eventstore.ReadSignatures(context.Background(), env.app.DB, admin.tenantID, 1)
	if err != nil || len(sigs) == 0 {
		t.Fatalf("the tenant's chain head is not signed: %v, %v", sigs, err)
	}
	for _, sig := range sigs {
		if !sig.Verify(pub) {
			t.Errorf("signature of %s at %d does not verify with the served key", sig.ChainID, sig.ChainSeq)
		}
	}
}

// TestAuditVerifyCommand: `clouddb audit verify FILE` passes an export of a tenant's chain and names
// the entry where a changed one breaks; `--live` verifies the management database's whole log
// with the server's key.
func TestAuditVerifyCommand(t *testing.T) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	seed := base64.StdEncoding.EncodeToString(key.Seed())
	env := startE2E(t, e2eOptions{Env: map[string]string{"CLOUDDB_AUDIT_SIGNING_KEY": seed}})
	admin := newTenantAdmin(env, "127.0.61.3", "Verified")
	admin.c.do("PATCH", "/tenant/settings", map[string]any{"row_limit": 500}).expect(t, 200, "")
	ctx := context.Background()
	if _, err := env.app.HeadSigner.Sign(ctx); err != nil {
		t.Fatal(err)
	}
	var head int64
	if err := env.app.DB.QueryRow(`SELECT MAX(chain_seq) FROM events WHERE chain_id = ?`, admin.tenantID).Scan(&head); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	keyID, pub := env.app.HeadSigner.PublicKey()
	w, err := eventstore.NewExportWriter(&file, false, eventstore.ExportHeader{ExportedAt: time.Now(), TenantID: admin.tenantID,
		PublicKeys: []eventstore.ExportKey{{KeyID: keyID, Algorithm: "Ed25519", PublicKey: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := eventstore.ReadSignatures(ctx, env.app.DB, admin.tenantID, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range sigs {
		if err := w.SignedHead(sig); err != nil {
			t.Fatal(err)
		}
	}
	if err := eventstore.ReadChain(ctx, env.app.DB, admin.tenantID, 1, head, func(r eventstore.ChainRecord) error {
		return w.Event(r, eventstore.Withheld(r.Data), nil)
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	intact, changed := filepath.Join(dir, "export.ndjson"), filepath.Join(dir, "changed.ndjson")
	if err := os.WriteFile(intact, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(file.Bytes(), []byte(`"row_limit":500`), []byte(`"row_limit":900`), 1)
	if bytes.Equal(tampered, file.Bytes()) {
		t.Fatal("the settings change is not in the export")
	}
	if err := os.WriteFile(changed, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	cmd := func(getenv func(string) string, args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(ctx, append([]string{"audit", "verify"}, args...), getenv, &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	if code, out := cmd(noEnv, "--key", base64.StdEncoding.EncodeToString(pub), intact); code != 0 || !strings.Contains(out, fmt.Sprintf("verified: %d events in 1 chains", head)) {
		t.Errorf("verify of an intact export: %d\n%s", code, out)
	}
	if code, out := cmd(noEnv, changed); code != 1 || !strings.Contains(out, "BROKEN: chain "+admin.tenantID) || !strings.Contains(out, "data does not match") {
		t.Errorf("verify of a changed export: %d\n%s", code, out)
	}
	if code, out := cmd(noEnv); code != 2 {
		t.Errorf("verify without a file: %d\n%s", code, out)
	}
	live := map[string]string{"CLOUDDB_MGMT_DSN": env.dsn, "CLOUDDB_AUDIT_SIGNING_KEY": seed, "CLOUDDB_DATA_DIR": t.TempDir(), "CLOUDDB_METRICS_ADDR": "off"}
	if code, out := cmd(func(name string) string { return live[name] }, "--live"); code != 0 || !strings.Contains(out, "verified:") {
		t.Errorf("verify --live: %d\n%s", code, out)
	}
}

// TestAuditLogRecordsExports: a download of a query's result is recorded (who, which query, which
// format, how many rows) and shows in the tenant's audit log with the query and the database's
// lifecycle, the provisioning the server did included.
func TestAuditLogRecordsExports(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	admin := newTenantAdmin(env, "127.0.61.4", "Exporters")
	db := createDatabase(t, admin.c, map[string]any{"name": "exported"}).str("id")
	qid := query(admin.c, db, "SELECT 1 AS one UNION SELECT 2", nil).expect(t, 200, "").str("query_id")
	if status, _, body := download(t, admin.c, "/queries/"+qid+"/export?format=csv"); status != 200 || string(body) != "one\r\n1\r\n2\r\n" {
		t.Fatalf("export: %d %q", status, body)
	}
	ctx := context.Background()
	head, _ := env.app.Store.LocalHead()
	if err := env.app.Projections.WaitFor(ctx, head, "audit_log"); err != nil {
		t.Fatal(err)
	}
	entries, _, err := env.app.views.Audit(ctx, projections.AuditFilter{Chain: admin.tenantID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]projections.AuditEntry{}
	for _, e := range entries {
		seen[e.Action] = e
	}
	exported, ok := seen["query.result_exported"]
	var details map[string]any
	if !ok || json.Unmarshal(exported.Details, &details) != nil || details["format"] != "csv" || details["row_count"] != 2.0 ||
		details["source"] != "results" || details["database_id"] != db || exported.Target.ID != qid || *exported.Actor.ID != admin.userID {
		t.Fatalf("export entry %+v (%s)", exported, exported.Details)
	}
	for _, action := range []string{"query.executed", "database.created", "database.provisioned", "tenant.created", "auth.signed_in"} {
		if _, ok := seen[action]; !ok {
			t.Errorf("no %s in the tenant's audit log", action)
		}
	}
	if via := seen["database.provisioned"].Actor.Via; via == nil || *via != "system" {
		t.Errorf("provisioning is the server's: %+v", seen["database.provisioned"].Actor)
	}
}
