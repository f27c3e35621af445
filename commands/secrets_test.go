package commands_test

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
)

// TestNoSecretInTheLog runs every identity flow that handles a secret and then looks for each
// secret in every event (payload and metadata), and in every read model table.
func TestNoSecretInTheLog(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := ctx(t)
	secrets := map[string]string{} // secret → what it is
	keep := func(what, secret string) {
		t.Helper()
		if secret == "" {
			t.Fatalf("%s is empty", what)
		}
		secrets[secret] = what
	}
	keepToken := func(what, token string) {
		t.Helper()
		_, secret, ok := strings.Cut(token, ".")
		if !ok {
			t.Fatalf("%s %q has no secret part", what, token)
		}
		keep(what, token)
		keep(what+" (secret part)", secret)
	}
	const (
		first    = "First-Plaintext-1!"
		reset    = "Reset-Plaintext-2!"
		changed  = "Changed-Plaintext-3!"
		invitee  = "Invitee-Plaintext-4!"
		bootPass = "Bootstrap-Plaintext-5!"
	)
	for what, pw := range map[string]string{"registration password": first, "reset password": reset, "changed password": changed, "invitee password": invitee, "bootstrap password": bootPass} {
		keep(what, pw)
	}
	// Who asks, and how, is in the metadata: it carries no secret either.
	m := meta
	m.UserAgent = "secrets-test/1.0"

	id, _, err := f.identity.Register(c, commands.Register{Email: "Keeper@Example.com", Password: first, Name: "Keeper", Meta: m})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second) // the resent mail is due after the first one
	if err := f.identity.ResendVerification(c, "keeper@example.com", m); err != nil {
		t.Fatal(err)
	}
	verify := f.token(t, "keeper@example.com", "/verify")
	keepToken("verification token", verify)
	if err := f.identity.Verify(c, verify, m); err != nil {
		t.Fatal(err)
	}
	for _, mail := range f.sender.Delivered("keeper@example.com") {
		keepToken("verification token (first mail)", link(t, mail).Query().Get("token"))
	}

	res, err := f.identity.Login(c, commands.Login{Email: "keeper@example.com", Password: first, IP: "203.0.113.9", UserAgent: "browser", Meta: m})
	if err != nil {
		t.Fatal(err)
	}
	keepToken("refresh token", res.RefreshToken)
	f.clock.Advance(time.Minute)
	_, rotated, err := f.identity.Refresh(c, res.RefreshToken, m)
	if err != nil {
		t.Fatal(err)
	}
	keepToken("rotated refresh token", rotated)
	if _, err := f.identity.Login(c, commands.Login{Email: "keeper@example.com", Password: "Wrong-" + first, Meta: m}); err == nil {
		t.Fatal("a wrong password logged in")
	}

	if err := f.identity.ForgotPassword(c, "keeper@example.com", m); err != nil {
		t.Fatal(err)
	}
	resetToken := f.token(t, "keeper@example.com", "/reset-password")
	keepToken("reset token", resetToken)
	if err := f.identity.ResetPassword(c, resetToken, reset, m); err != nil {
		t.Fatal(err)
	}

	who := commands.Caller{User: id, Session: f.login(t, "keeper@example.com", reset, "").Session.SessionID}
	secret, _, err := f.identity.StartTOTP(c, who, m)
	if err != nil {
		t.Fatal(err)
	}
	keep("TOTP secret", secret)
	recovery, err := f.identity.EnableTOTP(c, who, f.totpCode(t, secret), m)
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range recovery {
		keep("recovery code", code)
		keep("recovery code (normalized)", strings.ReplaceAll(code, "-", ""))
	}
	f.clock.Advance(30 * time.Second)
	code := f.totpCode(t, secret)
	res, err = f.identity.Login(c, commands.Login{Email: "keeper@example.com", Password: reset, TOTPCode: code, Meta: m})
	if err != nil {
		t.Fatal(err)
	}
	keepToken("refresh token (two factors)", res.RefreshToken)
	if _, err := f.identity.Login(c, commands.Login{Email: "keeper@example.com", Password: reset, TOTPCode: recovery[3], Meta: m}); err != nil {
		t.Fatal(err)
	}

	_, key, err := f.identity.CreateAPIKey(c, who, "", "ci", nil, m)
	if err != nil {
		t.Fatal(err)
	}
	keep("API key", key)
	keep("API key (secret part)", key[len(commands.APIKeyPrefix)+33:])

	tenant, err := f.tenants.CreateTenant(c, commands.CreateTenant{Name: "Vault Co", Plan: domain.PlanFree, Creator: id, Meta: m})
	if err != nil {
		t.Fatal(err)
	}
	invited, failures, err := f.identity.Invite(c, commands.Invite{Tenant: tenant.ID(), Actor: id, ActorRole: domain.RoleTenantAdmin, Emails: []string{"guest@example.com"}, Role: "developer", Meta: m})
	if err != nil || len(invited) != 1 {
		t.Fatalf("invite: %v %+v %v", invited, failures, err)
	}
	invitation := f.token(t, "guest@example.com", "/invitations/accept")
	keepToken("invitation token", invitation)
	if _, _, err := f.identity.AcceptInvitation(c, invitation, "Guest", invitee, m); err != nil {
		t.Fatal(err)
	}

	if err := f.identity.ChangePassword(c, who, reset, changed, m); err != nil {
		t.Fatal(err)
	}
	if _, err := f.identity.Bootstrap(c, "boot@example.com", bootPass); err != nil {
		t.Fatal(err)
	}
	f.deliver(t)
	f.settle(t)

	for s, what := range secrets {
		assertNowhere(t, f, what, s)
	}
	assertNotInReadModels(t, f.db, secrets)
}

// assertNotInReadModels scans every table but the vault's for the secrets.
func assertNotInReadModels(t *testing.T, db *sql.DB, secrets map[string]string) {
	t.Helper()
	c := ctx(t)
	rows, err := db.QueryContext(c, `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name <> 'secrets'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) < 8 {
		t.Fatalf("only %d tables: %v", len(tables), tables)
	}
	for _, table := range tables {
		rows, err := db.QueryContext(c, "SELECT * FROM `"+table+"`")
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		values := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range values {
				for s, what := range secrets {
					if strings.Contains(string(v), s) {
						t.Errorf("%s appears in %s.%s", what, table, cols[i])
					}
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
}
