package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
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
	// An executed query's outcome leaves the request's metadata to its intent: its entry still
	// says who ran it, through which session, from where, as the database's creation (the same
	// client) does.
	executed, created, str := seen["query.executed"], seen["database.created"], func(s *string) string {
		if s == nil {
			return "<nil>"
		}
		return *s
	}
	if str(executed.Actor.ID) != admin.userID || str(executed.Actor.Via) != "session" || executed.Actor.SessionID != created.Actor.SessionID ||
		executed.Actor.SessionID == "" || str(executed.IP) != str(created.IP) || executed.IP == nil ||
		str(executed.UserAgent) != str(created.UserAgent) || executed.UserAgent == nil {
		t.Errorf("query.executed entry: actor %s via %s %s, ip %s, user agent %s; want %s via session %s, ip %s, user agent %s",
			str(executed.Actor.ID), str(executed.Actor.Via), executed.Actor.SessionID, str(executed.IP), str(executed.UserAgent),
			admin.userID, created.Actor.SessionID, str(created.IP), str(created.UserAgent))
	}
	if via := seen["database.provisioned"].Actor.Via; via == nil || *via != "system" {
		t.Errorf("provisioning is the server's: %+v", seen["database.provisioned"].Actor)
	}
}

// TestAuditEndpoints: GET /audit shows a tenant admin their tenant's trail at once, filtered and
// paged, and nothing of other tenants; a super admin sees any; bad filters are refused. The
// exports stream it: NDJSON and JSON verify with the served key alone and break where changed,
// CSV neutralises formulas, an empty period is a valid empty export.
func TestAuditEndpoints(t *testing.T) {
	rootEmail, rootPassword := uniqueEmail("root"), strongPassword()
	env := startE2E(t, e2eOptions{BootstrapEmail: rootEmail, BootstrapPassword: rootPassword})
	admin := newTenantAdmin(env, "127.0.61.5", "Audited Co")
	other := newTenantAdmin(env, "127.0.61.6", "Other Co")
	viewer := invite(env, admin, "127.0.61.7", "viewer")
	admin.c.headers["User-Agent"] = "=HYPERLINK(\"http://evil\")"
	admin.c.do("PATCH", "/tenant/settings", map[string]any{"row_limit": 500}).expect(t, 200, "")

	// At once, newest first, the tenant's own only.
	r := admin.c.do("GET", "/audit", nil).expect(t, 200, "")
	if r.str("items.0.action") != "tenant.settings_changed" || r.str("items.0.actor.id") != admin.userID ||
		r.str("items.0.actor.email") != admin.email || r.str("items.0.actor.via") != "session" || r.str("items.0.tenant_id") != admin.tenantID ||
		r.str("items.0.target.type") != "tenant" || r.str("items.0.user_agent") != admin.c.headers["User-Agent"] {
		t.Fatalf("GET /audit = %s", truncateForLog(r.body))
	}
	for _, item := range r.items("items") {
		if item.(map[string]any)["tenant_id"] != admin.tenantID {
			t.Errorf("an entry of another tenant: %v", item)
		}
	}
	if got := admin.c.do("GET", "/audit?action=invitation.", nil).expect(t, 200, "").items("items"); len(got) != 2 { // created, accepted
		t.Errorf("invitation entries: %v", got)
	}
	if got := admin.c.do("GET", "/audit?actor_id="+viewer.userID+"&action=auth.signed_in", nil).expect(t, 200, "").items("items"); len(got) != 1 {
		t.Errorf("the viewer's sign-ins: %v", got)
	}
	page := admin.c.do("GET", "/audit?limit=2", nil).expect(t, 200, "")
	next := admin.c.do("GET", "/audit?limit=2&cursor="+page.str("next_cursor"), nil).expect(t, 200, "")
	if len(page.items("items")) != 2 || page.str("next_cursor") == "" || next.str("items.0.id") == page.str("items.1.id") {
		t.Errorf("pages %s then %s", page.body, next.body)
	}
	admin.c.do("GET", "/audit?action=bogus", nil).expect(t, 400, "validation_failed")
	admin.c.do("GET", "/audit?from=2026-12-07T10:00:00Z&to=2026-12-06T10:00:00Z", nil).expect(t, 400, "validation_failed")
	admin.c.do("GET", "/audit?tenant_id="+other.tenantID, nil).expect(t, 404, "not_found")
	viewer.c.do("GET", "/audit", nil).expect(t, 403, "forbidden")
	if got := admin.c.do("GET", "/audit?from=2099-01-01T00:00:00Z", nil).expect(t, 200, "").items("items"); len(got) != 0 {
		t.Errorf("a period with nothing: %v", got)
	}
	root := env.client("127.0.61.8")
	root = root.with(root.login(rootEmail, rootPassword, "").access)
	if r := root.do("GET", "/audit?tenant_id="+other.tenantID, nil).expect(t, 200, ""); r.str("items.0.tenant_id") != other.tenantID {
		t.Errorf("the super admin reads another tenant: %s", truncateForLog(r.body))
	}
	tenants := map[any]bool{}
	for _, item := range root.do("GET", "/audit?limit=500", nil).expect(t, 200, "").items("items") {
		tenants[item.(map[string]any)["tenant_id"]] = true
	}
	if !tenants[admin.tenantID] || !tenants[other.tenantID] || !tenants[nil] {
		t.Errorf("the super admin's trail covers %v", tenants)
	}

	key := admin.c.do("GET", "/audit/public-key", nil).expect(t, 200, "").str("public_key")
	pub, _ := base64.StdEncoding.DecodeString(key)
	for _, format := range []string{"ndjson", "json"} {
		status, h, body := download(t, admin.c, "/audit/export?format="+format)
		if status != 200 || !strings.Contains(h.Get("Content-Disposition"), "attachment") {
			t.Fatalf("%s export: %d %s", format, status, body)
		}
		s, err := eventstore.VerifyFile(bytes.NewReader(body), []ed25519.PublicKey{pub})
		if err != nil || s.AuditEntries < 5 || len(s.Chains) != 1 || s.Chains[0].ChainID != admin.tenantID || s.SignaturesMatched == 0 {
			t.Fatalf("%s export verifies as %+v, %v", format, s, err)
		}
		changed := bytes.Replace(body, []byte(`"row_limit":500`), []byte(`"row_limit":501`), 1)
		var broken *eventstore.BrokenLink
		if _, err := eventstore.VerifyFile(bytes.NewReader(changed), []ed25519.PublicKey{pub}); !errors.As(err, &broken) || broken.ChainID != admin.tenantID {
			t.Errorf("%s export with a byte changed: %v", format, err)
		}
	}
	if status, _, body := download(t, admin.c, "/audit/export?format=ndjson&from=2099-01-01T00:00:00Z"); status != 200 || bytes.Count(body, []byte("\n")) != 1 {
		t.Errorf("an empty period: %d %s", status, body)
	} else if s, err := eventstore.VerifyFile(bytes.NewReader(body), []ed25519.PublicKey{pub}); err != nil || s.Records != 0 {
		t.Errorf("an empty export verifies as %+v, %v", s, err)
	}
	status, _, csvBody := download(t, admin.c, "/audit/export?format=csv")
	rows, err := csv.NewReader(bytes.NewReader(csvBody)).ReadAll()
	if status != 200 || err != nil || len(rows) < 6 || rows[0][3] != "action" {
		t.Fatalf("CSV export: %d %v\n%s", status, err, csvBody)
	}
	if last := rows[len(rows)-1]; last[3] != "tenant.settings_changed" || last[10] != "'"+admin.c.headers["User-Agent"] {
		t.Errorf("the last CSV row %q: the user agent must start with ' (a formula otherwise)", last)
	}
	admin.c.do("GET", "/audit/export?format=xml", nil).expect(t, 400, "validation_failed")
}

// TestAuditExportOfAPeriod: an export of a period that starts inside the chain carries, from the
// period's first entry to a signed head, the events as ReadChain reads them, each with its entry
// as the audit log holds it when that entry is in the period.
func TestAuditExportOfAPeriod(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	admin := newTenantAdmin(env, "127.0.61.9", "Period Co")
	for _, limit := range []int{500, 600, 700} {
		admin.c.do("PATCH", "/tenant/settings", map[string]any{"row_limit": limit}).expect(t, 200, "")
	}
	at := admin.c.do("GET", "/audit?limit=2", nil).expect(t, 200, "").str("items.1.at")
	status, _, body := download(t, admin.c, "/audit/export?format=ndjson&from="+at)
	if status != 200 {
		t.Fatalf("export: %d %s", status, body)
	}
	var events [][]byte
	for _, line := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
		if bytes.HasPrefix(line, []byte(`{"kind":"event"`)) {
			events = append(events, line)
		}
	}
	ctx := context.Background()
	from, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := env.app.views.AuditRanges(ctx, admin.tenantID, from, time.Time{})
	if err != nil || len(ranges) != 1 || ranges[0].First < 2 || len(events) < 2 {
		t.Fatalf("the period's entries %+v, %v; %d events exported", ranges, err, len(events))
	}
	first := ranges[0].First
	entries, err := env.app.views.AuditBySeq(ctx, admin.tenantID, first, first+int64(len(events))-1, from, time.Time{})
	if err != nil || len(entries) < 2 {
		t.Fatalf("the period's entries: %v, %v", entries, err)
	}
	i := 0
	if err := eventstore.ReadChain(ctx, env.app.DB, admin.tenantID, first, first+int64(len(events))-1, func(r eventstore.ChainRecord) error {
		var entry []byte
		for _, e := range entries {
			if e.ChainSeq == r.ChainSeq {
				entry = e.AppendJSON(nil)
			}
		}
		if want := eventstore.AppendEvent(nil, r, eventstore.Withheld(r.Data), entry); !bytes.Equal(events[i], want) {
			t.Errorf("event %d exported as\n%s\nwant\n%s", r.ChainSeq, events[i], want)
		}
		i++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
