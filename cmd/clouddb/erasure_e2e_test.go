package main

// End-to-end test of the erasure of a person's personal data (issue 12, "Erasure with the log
// intact"): crypto-shredding of the fields the log keeps sealed, the read models, the mail files,
// the exports and the process log, with the chains still verifying and every read model
// rebuilding.

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/mgmtdb"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/migrations"
)

func TestE2EErasureOfPersonalData(t *testing.T) {
	rootEmail, rootPassword := uniqueEmail("root"), strongPassword()
	env := startE2E(t, e2eOptions{BootstrapEmail: rootEmail, BootstrapPassword: rootPassword})
	admin := newTenantAdmin(env, "127.0.0.1", "Erasure Co")

	// The person: invited, signed up from 127.0.0.93 with a browser of their own, active.
	agent, name := "ErasedBrowser/"+randomHex(6), "Erin Erasable "+randomHex(4)
	viewer := dbMember{email: uniqueEmail("erasable"), password: strongPassword(), tenantID: admin.tenantID}
	admin.c.do("POST", "/invitations", map[string]any{"emails": []string{viewer.email}, "role": "viewer"}).expect(t, 201, "")
	viewer.c = env.client("127.0.0.93")
	viewer.c.headers["User-Agent"] = agent
	// A failed login to the address before it has an account: the address's stream, its own key.
	viewer.c.do("POST", "/auth/login", map[string]any{"email": viewer.email, "password": "not yet an account 1"}).expect(t, 401, "")
	accepted := viewer.c.do("POST", "/invitations/accept", map[string]any{"token": env.waitMail(viewer.email, "invited").token,
		"name": name, "password": viewer.password}).expect(t, 200, "")
	viewer.userID = accepted.str("user_id")
	viewer.c = viewer.c.with(viewer.c.login(viewer.email, viewer.password, "").access)
	viewer.c.do("GET", "/me", nil).expect(t, 200, "")
	viewer.c.do("POST", "/auth/login", map[string]any{"email": viewer.email, "password": "wrong password 1"}).expect(t, 401, "")
	clear := []string{viewer.email, name, "127.0.0.93", agent}
	if r := admin.c.do("GET", "/users", nil).expect(t, 200, ""); !strings.Contains(string(r.body), viewer.email) {
		t.Fatalf("GET /users before the erasure lacks the viewer: %s", r.body)
	}

	root := env.client("127.0.0.1")
	root = root.with(root.login(rootEmail, rootPassword, "").access)
	admin.c.do("DELETE", "/admin/users/"+viewer.userID+"/personal-data", nil).expect(t, 403, "forbidden")
	root.do("DELETE", "/admin/users/00000000-0000-4000-8000-000000000000/personal-data", nil).expect(t, 404, "not_found")
	root.do("DELETE", "/admin/users/nonsense/personal-data", nil).expect(t, 404, "not_found")
	r := root.do("DELETE", "/admin/users/"+viewer.userID+"/personal-data", nil).expect(t, 200, "")
	erased := "erased-user-" + viewer.userID
	if r.str("erased_as") != erased || r.get("already_erased") != false || r.num("sessions_ended") != 1 || r.num("mails_removed") < 1 {
		t.Errorf("the erasure answered %s", r.body)
	}
	// Idempotent: a second erasure records nothing and answers what is done.
	if r := root.do("DELETE", "/admin/users/"+viewer.userID+"/personal-data", nil).expect(t, 200, ""); r.get("already_erased") != true || r.num("sessions_ended") != 0 {
		t.Errorf("the second erasure answered %s", r.body)
	}

	viewer.c.do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	viewer.c.do("POST", "/auth/login", map[string]any{"email": viewer.email, "password": viewer.password}).expect(t, 401, "")

	users := admin.c.do("GET", "/users", nil).expect(t, 200, "")
	if !strings.Contains(string(users.body), `"email":"`+erased+`"`) || !strings.Contains(string(users.body), `"name":"`+erased+`"`) {
		t.Errorf("GET /users after the erasure: %s, want the viewer as %s", users.body, erased)
	}
	audit := admin.c.do("GET", "/audit?limit=500", nil).expect(t, 200, "")
	if !strings.Contains(string(audit.body), `"email":"`+erased+`"`) {
		t.Errorf("GET /audit after the erasure does not name the viewer's actions' actor %s: %s", erased, truncateForLog(audit.body))
	}
	rootAudit := root.do("GET", "/audit?tenant_id=platform&action=user.", nil).expect(t, 200, "")
	if !strings.Contains(string(rootAudit.body), `"user.personal_data_erased"`) {
		t.Errorf("the platform's trail lacks the erasure: %s", truncateForLog(rootAudit.body))
	}
	answers := map[string][]byte{"GET /users": users.body, "GET /audit": audit.body}
	for _, format := range []string{"ndjson", "json", "csv"} {
		status, _, body := download(t, admin.c, "/audit/export?format="+format)
		if status != 200 {
			t.Fatalf("%s export: %d %s", format, status, body)
		}
		answers["the "+format+" export"] = body
		if format == "ndjson" {
			key := admin.c.do("GET", "/audit/public-key", nil).expect(t, 200, "").str("public_key")
			pub, _ := base64.StdEncoding.DecodeString(key)
			if _, err := eventstore.VerifyFile(strings.NewReader(string(body)), []ed25519.PublicKey{pub}); err != nil {
				t.Errorf("the export after the erasure does not verify: %v", err)
			}
		}
	}
	var events strings.Builder
	for after := "0"; ; {
		page := root.do("GET", "/admin/events?limit=500&after="+after, nil).expect(t, 200, "")
		events.Write(page.body)
		if len(page.items("items")) < 500 {
			break
		}
		after = page.str("next_after")
	}
	answers["GET /admin/events"] = []byte(events.String())
	for what, body := range answers {
		for _, v := range clear {
			if strings.Contains(string(body), v) {
				t.Errorf("%s after the erasure holds %q", what, v)
			}
		}
	}

	ctx := context.Background()
	scanManagementDatabase(t, env.app.DB, clear)
	files, _ := filepath.Glob(filepath.Join(env.app.Config.MailDir, "*.eml"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), viewer.email) {
			t.Errorf("the mail file %s is still there", f)
		}
	}
	_, pub := env.app.HeadSigner.PublicKey()
	if _, err := env.app.HeadSigner.Sign(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := eventstore.VerifyLive(ctx, env.app.DB, []ed25519.PublicKey{pub}, nil); err != nil {
		t.Errorf("clouddb audit verify --live after the erasure: %v", err)
	}
	// The erasure rewrote the person's rows in place: a rebuild from the log gives the same tables.
	personal := []string{"users", "sessions", "invitations", "mail_deliveries", "audit_log", "audit_log_emails"}
	rewritten := map[string]string{}
	for _, table := range personal {
		rewritten[table] = dumpTable(t, env.app.DB, table)
	}
	for _, name := range env.app.Projections.Names() {
		if err := env.app.Projections.Rebuild(ctx, name); err != nil {
			t.Errorf("rebuild %s after the erasure: %v", name, err)
		}
	}
	for _, table := range personal {
		if rebuilt := dumpTable(t, env.app.DB, table); rebuilt != rewritten[table] {
			t.Errorf("%s rewritten by the erasure differs from its rebuild:\n%s\nrebuilt:\n%s", table, rewritten[table], rebuilt)
		}
	}
	scanManagementDatabase(t, env.app.DB, clear)
	for _, v := range clear {
		if strings.Contains(env.logs.String(), v) {
			t.Errorf("the process log holds %q", v)
		}
	}

	// The address is free again: the person may sign up anew, as a new account.
	again := env.client("127.0.0.94")
	if id := again.register(viewer.email, "Back Again", strongPassword()); id == viewer.userID {
		t.Errorf("signing up again gave the erased account %s", id)
	}
}

// scanManagementDatabase fails t for each table of the management database that holds one of
// values in any column (the vault's ciphertexts are random bytes and cannot).
func scanManagementDatabase(t *testing.T, db *sql.DB, values []string) {
	t.Helper()
	rows, err := db.Query(`SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		rows.Scan(&name)
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		cols, err := db.Query(`SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?`, table)
		if err != nil {
			t.Fatal(err)
		}
		var exprs []string
		for cols.Next() {
			var c string
			cols.Scan(&c)
			exprs = append(exprs, "COALESCE(CAST(`"+c+"` AS CHAR), '')")
		}
		cols.Close()
		for _, v := range values {
			var n int
			q := fmt.Sprintf("SELECT COUNT(*) FROM `%s` WHERE LOCATE(?, CONCAT_WS(' ', %s)) > 0", table, strings.Join(exprs, ", "))
			if err := db.QueryRow(q, v).Scan(&n); err != nil {
				t.Fatalf("scan %s: %v", table, err)
			}
			if n > 0 {
				t.Errorf("table %s holds %q in %d rows after the erasure", table, v, n)
			}
		}
	}
}

// dumpTable returns every row of table, each column as its bytes, in the order of its primary key.
func dumpTable(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM `" + table + "` ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out strings.Builder
	for rows.Next() {
		values := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			fmt.Fprintf(&out, "%s=%q ", cols[i], v)
		}
		out.WriteString("\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// openedEvents reads the whole log through the app's event store, which opens the sealed personal
// data: what a test that looks for an address, an IP or a user agent in the log must read (the
// events table holds them sealed).
func openedEvents(t *testing.T, app *App) []eventstore.Envelope {
	t.Helper()
	var all []eventstore.Envelope
	for after := int64(0); ; {
		envs, err := app.Store.ReadAll(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, envs...)
		if len(envs) < 1000 {
			return all
		}
		after = envs[len(envs)-1].Position
	}
}

// openedField is a string field of an opened event's payload ("" when absent).
func openedField(env eventstore.Envelope, name string) string {
	var doc map[string]any
	json.Unmarshal(env.Payload, &doc)
	s, _ := doc[name].(string)
	return s
}

// A management database from before the sealing (migrations 29, 30 and later not applied, an account
// and its sign-up recorded in clear): the server's start seals them, the account still logs in
// through its migrated claim, the log verifies, and the account can be erased.
func TestE2EStartSealsWhatWasRecordedInClear(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t)
	log := slog.New(slog.DiscardHandler)
	db, err := mgmtdb.Open(ctx, dsn, 10*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := migrations.Apply(ctx, db, log); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version_id >= 29`); err != nil {
		t.Fatal(err)
	}
	email, password := uniqueEmail("before"), strongPassword()
	hash, _ := bcrypt.GenerateFromPassword([]byte(password), 4)
	user := domain.UserID(uuid.NewString())
	old := eventstore.New(db, eventstore.NewDomainRegistry(), eventstore.Options{Logger: log})
	if _, err := old.Append(ctx, eventstore.Append{Metadata: eventstore.Metadata{IP: "127.0.0.95", UserAgent: "Before/1.0", ActorID: string(user)},
		Streams: []eventstore.Stream{{ID: user.Stream(), Type: "user", Events: []domain.Event{
			domain.UserRegistered{UserID: user, Email: email, Name: "Bea Before", PasswordHash: string(hash), Verified: true}}}},
		Claims: []eventstore.Claim{{Key: domain.EmailClaim(email), StreamID: user.Stream()}}}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	rootEmail, rootPassword := uniqueEmail("root"), strongPassword()
	env := startE2E(t, e2eOptions{DSN: dsn, BootstrapEmail: rootEmail, BootstrapPassword: rootPassword})
	clear := []string{email, "Bea Before", "127.0.0.95", "Before/1.0"}
	var raw string
	if err := env.app.DB.QueryRow(`SELECT CONCAT((SELECT GROUP_CONCAT(CONCAT(payload, metadata)) FROM events),
		(SELECT GROUP_CONCAT(claim_key) FROM claims))`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	for _, v := range clear {
		if strings.Contains(raw, v) {
			t.Errorf("after the start the log or the claims hold %q", v)
		}
	}
	c := env.client("127.0.0.1")
	c.login(email, password, "") // 200: the account is found through its migrated claim
	if _, err := env.app.HeadSigner.Sign(ctx); err != nil {
		t.Fatal(err)
	}
	_, pub := env.app.HeadSigner.PublicKey()
	if _, err := eventstore.VerifyLive(ctx, env.app.DB, []ed25519.PublicKey{pub}, nil); err != nil {
		t.Errorf("verify after the start's sealing: %v", err)
	}
	root := env.client("127.0.0.1")
	root = root.with(root.login(rootEmail, rootPassword, "").access)
	root.do("DELETE", "/admin/users/"+string(user)+"/personal-data", nil).expect(t, 200, "")
	for _, e := range openedEvents(t, env.app) {
		for _, v := range clear {
			if strings.Contains(string(e.Payload)+e.Metadata.IP+e.Metadata.UserAgent, v) {
				t.Errorf("event %d (%s) reads %q after the erasure", e.Position, e.EventType, v)
			}
		}
	}
}
