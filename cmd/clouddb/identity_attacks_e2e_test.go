package main

// The identity attacks of issue 10 (items 7, 9, 10, 16, 17), each performed against a started
// server and MariaDB; docs/SECURITY.md "Identity" says what each defence is.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Item 17: an address a reader cannot tell from another is the same account, or refused.
func TestE2ELookAlikeAddressesAreOneAccountOrRefused(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	local, password := "alice-"+randomHex(4), strongPassword()
	c.signUp(local+"@example.com", "Alice", password)

	// Fullwidth letters fold into the same address: the same account, not a second one.
	fullwidth := "Ａ" + strings.ToUpper(local[1:]) + "@ｅxample.com"
	c.do("POST", "/auth/register", map[string]any{"email": fullwidth, "password": strongPassword(), "name": "Mallory"}).expect(t, 409, "email_taken")
	c.login(fullwidth, password, "")

	// A Cyrillic "е" in the domain or an "а" in the local part is refused, not a new account.
	for _, lookAlike := range []string{local + "@\u0435xample.com", "\u0430" + local[1:] + "@example.com"} {
		r := c.do("POST", "/auth/register", map[string]any{"email": lookAlike, "password": strongPassword(), "name": "Mallory"}).expect(t, 400, "validation_failed")
		if r.str("error.details.fields.email") == "" {
			t.Errorf("register %q: no message on the email field: %s", lookAlike, r.body)
		}
	}
	// A punycode spelling of a Unicode domain is that domain.
	unicodeLocal := "jose-" + randomHex(4)
	c.register(unicodeLocal+"@exämple.com", "José", strongPassword())
	c.do("POST", "/auth/register", map[string]any{"email": unicodeLocal + "@xn--exmple-cua.com", "password": strongPassword(), "name": "Mallory"}).expect(t, 409, "email_taken")
}

// Item 17: letters that NFKC leaves alone but a reader takes for Latin ones — a dotless "ı", a
// small capital, a Cyrillic or Greek word made of Latin-shaped letters — are refused, so the
// victim's address has no look-alike account; an internationalised domain still registers.
func TestE2ELetterLookAlikesAreRefused(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	local := "victim" + randomHex(4)
	c.signUp(local+"@good.example", "Victim", strongPassword())
	for _, lookAlike := range []string{
		strings.Replace(local, "i", "\u0131", 1) + "@good.example", // dotless ı
		strings.Replace(local, "v", "\u1d20", 1) + "@good.example", // small capital ᴠ
		local + "@g\u03bf\u03bfd.example",                          // Greek ο in "good": mixed scripts
		"\u0430\u0441\u0435@good.example",                          // all-Cyrillic "асе"
		local + "@\u0440\u0430\u0443\u0440\u0430\u04cf.example",    // all-Cyrillic "раураӏ"
	} {
		r := c.do("POST", "/auth/register", map[string]any{"email": lookAlike, "password": strongPassword(), "name": "Mallory"}).expect(t, 400, "validation_failed")
		if r.str("error.details.fields.email") == "" {
			t.Errorf("register %q: no message on the email field: %s", lookAlike, r.body)
		}
	}
	idn := "ada-" + randomHex(4)
	c.register(idn+"@münchen.de", "Ada", strongPassword())
	c.do("POST", "/auth/register", map[string]any{"email": idn + "@xn--mnchen-3ya.de", "password": strongPassword(), "name": "Mallory"}).expect(t, 409, "email_taken")
}

// Item 17: an account registered before addresses were normalised holds its claim under the
// lower-cased form it was typed in; it still logs in, and its look-alike cannot register beside it.
func TestE2ELegacyClaimKeepsLoggingIn(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	legacy, password := "ｌegacy-"+randomHex(4)+"@example.com", strongPassword()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), 4)
	if err != nil {
		t.Fatal(err)
	}
	id := domain.UserID(uuid.NewString())
	user := domain.RegisterUser(id, legacy, "Legacy", string(hash), true)
	if _, err := env.app.Store.Append(context.Background(), eventstore.Append{
		Streams: []eventstore.Stream{{ID: id.Stream(), Type: "user", Events: user.PendingEvents()}},
		Claims:  []eventstore.Claim{{Key: domain.EmailClaim(legacy), StreamID: id.Stream()}},
	}); err != nil {
		t.Fatal(err)
	}
	c.login(legacy, password, "")
	normalized, err := domain.NormalizeEmail(legacy)
	if err != nil || normalized == legacy {
		t.Fatalf("test setup: %q normalises to %q, %v", legacy, normalized, err)
	}
	c.do("POST", "/auth/register", map[string]any{"email": legacy, "password": strongPassword(), "name": "Mallory"}).expect(t, 409, "email_taken")
}

// Item 9: a stolen API key or access token cannot mint keys, turn two factors on or change the
// password, and a password reset revokes every key and session.
func TestE2EStolenCredentialsCannotTakeTheAccountOver(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	owner := env.client("127.0.0.1")
	thief := env.client("127.0.0.66")
	email, password := uniqueEmail("owner"), strongPassword()
	owner.signUp(email, "Owner", password)
	s := owner.login(email, password, "")
	me := owner.with(s.access)
	key := me.do("POST", "/me/api-keys", map[string]any{"name": "ci"}).expect(t, 201, "").str("key")
	env.secret(key, "API key")

	// A stolen key may not change credentials at all.
	withKey := thief.with(key)
	withKey.do("POST", "/me/api-keys", map[string]any{"name": "mine"}).expect(t, 403, "forbidden")
	withKey.do("POST", "/me/totp/setup", nil).expect(t, 403, "forbidden")
	withKey.do("PUT", "/me/password", map[string]any{"current_password": password, "new_password": strongPassword()}).expect(t, 403, "forbidden")
	withKey.do("POST", "/me/reauth", map[string]any{"password": password}).expect(t, 403, "forbidden")

	// A stolen access token, once the owner's login is more than five minutes old, may not either;
	// refreshing it does not count as an authentication.
	env.clock.Advance(6 * time.Minute)
	refreshed := thief.do("POST", "/auth/refresh", map[string]any{"refresh_token": s.refresh}).expect(t, 200, "")
	for _, token := range []string{s.access, refreshed.str("access_token")} {
		stolen := thief.with(token)
		stolen.do("POST", "/me/api-keys", map[string]any{"name": "mine"}).expect(t, 401, "reauthentication_required")
		stolen.do("POST", "/me/totp/setup", nil).expect(t, 401, "reauthentication_required")
		stolen.do("POST", "/me/totp/disable", map[string]any{"code": "123456"}).expect(t, 401, "reauthentication_required")
	}
	stolen := thief.with(refreshed.str("access_token"))
	// Guessing the password through reauthentication counts towards the lockout.
	stolen.do("POST", "/me/reauth", map[string]any{"password": "Guess-One-1!"}).expect(t, 401, "invalid_credentials")
	var failures int
	if err := openEventsDB(t, env.dsn).QueryRow(`SELECT COUNT(*) FROM events WHERE event_type = 'user.login_failed.v1'`).Scan(&failures); err != nil || failures != 1 {
		t.Errorf("a wrong password at /me/reauth recorded %d failed logins (%v), want 1", failures, err)
	}

	// The owner confirms the password and may change credentials for five minutes.
	fresh := owner.login(email, password, "")
	env.clock.Advance(6 * time.Minute)
	mine := owner.with(fresh.access)
	mine.do("POST", "/me/api-keys", map[string]any{"name": "late"}).expect(t, 401, "reauthentication_required")
	r := mine.do("POST", "/me/reauth", map[string]any{"password": password}).expect(t, 200, "")
	if _, err := time.Parse(time.RFC3339, r.str("reauthenticated_until")); err != nil {
		t.Errorf("reauthenticated_until = %q", r.str("reauthenticated_until"))
	}
	second := mine.do("POST", "/me/api-keys", map[string]any{"name": "second"}).expect(t, 201, "").str("key")
	env.secret(second, "API key")

	// The owner resets the password: every key and every session stops working.
	owner.do("POST", "/auth/password/forgot", map[string]any{"email": email}).expect(t, 202, "")
	m := env.waitMail(email, "reset")
	owner.do("POST", "/auth/password/reset", map[string]any{"token": m.token, "new_password": strongPassword()}).expect(t, 204, "")
	for _, token := range []string{key, second, s.access, refreshed.str("access_token"), fresh.access} {
		thief.with(token).do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	}
	var revoked int
	if err := openEventsDB(t, env.dsn).QueryRow(`SELECT COUNT(*) FROM events WHERE event_type = 'user.api_key_revoked.v1'`).Scan(&revoked); err != nil || revoked != 2 {
		t.Errorf("%d API key revocations recorded (%v), want 2", revoked, err)
	}
}

// Item 10: an attacker registers the victim's address before the victim is invited. The victim
// who follows the invitation link ends up in control of the account and the membership; the
// pre-registrant's password stops working.
func TestE2EInvitationOfAPreRegisteredAddressGoesToTheInvitee(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	admin := newTenantAdmin(env, "127.0.0.1", "Victim Co")
	attacker := env.client("127.0.0.66")
	victim := env.client("127.0.0.2")
	victimEmail, attackerPassword := uniqueEmail("victim"), strongPassword()
	squatted := attacker.register(victimEmail, "Not The Victim", attackerPassword)

	admin.c.do("POST", "/invitations", map[string]any{"emails": []string{victimEmail}, "role": "developer"}).expect(t, 201, "")
	m := env.waitMail(victimEmail, "invited")
	// The link proves the mailbox, not the password chosen by whoever registered first.
	victim.do("POST", "/invitations/accept", map[string]any{"token": m.token}).expect(t, 400, "validation_failed")
	victimPassword := strongPassword()
	r := victim.do("POST", "/invitations/accept", map[string]any{"token": m.token, "password": victimPassword}).expect(t, 200, "")
	if r.str("user_id") != squatted {
		t.Errorf("the invitation joined %s, want the address's account %s", r.str("user_id"), squatted)
	}
	attacker.do("POST", "/auth/login", map[string]any{"email": victimEmail, "password": attackerPassword}).expect(t, 401, "invalid_credentials")
	s := victim.login(victimEmail, victimPassword, "")
	if s.resp.str("tenant.id") != admin.tenantID || s.resp.str("tenant.role") != "developer" {
		t.Errorf("the invitee's login: tenant = %v", s.resp.get("tenant"))
	}
	var reason string
	if err := openEventsDB(t, env.dsn).QueryRow(`SELECT JSON_VALUE(payload, '$.reason') FROM events
		WHERE event_type = 'user.password_changed.v2' AND stream_id = ?`, "user-"+squatted).Scan(&reason); err != nil || reason != "invitation" {
		t.Errorf("password change of the claimed account: reason %q (%v), want invitation", reason, err)
	}
}

// Item 7: invitations cannot make the platform a mail relay: a free tenant sends no text of its
// own, one address gets at most 3 invitations a day from all tenants together, and one tenant
// sends at most 50 a day, revoked ones included.
func TestE2EInvitationsAreNoMailRelay(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	spammer := newTenantAdmin(env, "127.0.0.66", "Spam Co")
	accomplice := newTenantAdmin(env, "127.0.0.67", "Spam Two")
	target := uniqueEmail("target")

	spammer.c.do("POST", "/invitations", map[string]any{"emails": []string{target}, "role": "viewer", "message": "cheap pills at http://spam.example"}).expect(t, 403, "forbidden")
	invite := func(admin dbMember, emails ...string) *e2eResponse {
		return admin.c.do("POST", "/invitations", map[string]any{"emails": emails, "role": "viewer"})
	}
	revokeAll := func(admin dbMember, r *e2eResponse) {
		for _, item := range r.items("items") {
			admin.c.do("DELETE", "/invitations/"+describe(item.(map[string]any)["id"]), nil).expect(t, 204, "")
		}
	}
	// Invite, revoke, invite again: the third from another tenant is the last one the target gets.
	revokeAll(spammer, invite(spammer, target).expect(t, 201, ""))
	revokeAll(spammer, invite(spammer, target).expect(t, 201, ""))
	invite(accomplice, target).expect(t, 201, "")
	r := invite(spammer, target).expect(t, 429, "rate_limited")
	assertRetryAfter(t, r, 86000, 86400)
	other := uniqueEmail("bystander")
	r = invite(spammer, target, other).expect(t, 201, "")
	if len(r.items("items")) != 1 || r.str("errors.0.email") != target || r.str("errors.0.code") != "rate_limited" {
		t.Errorf("a batch with the limited address: %s", r.body)
	}
	revokeAll(spammer, r)
	if n := env.mailsTo(target); n > 3 {
		t.Errorf("%d invitations reached the target, want at most 3", n)
	}

	// The tenant's own bound: 50 a day (it has sent 3 so far), revoked ones count.
	for sent := 3; sent < 50; {
		batch := []string{}
		for i := 0; i < 4 && sent+i < 50; i++ {
			batch = append(batch, uniqueEmail("filler"))
		}
		revokeAll(spammer, invite(spammer, batch...).expect(t, 201, ""))
		sent += len(batch)
	}
	r = invite(spammer, uniqueEmail("one-too-many")).expect(t, 429, "rate_limited")
	assertRetryAfter(t, r, 86000, 86400)
	env.clock.Advance(24 * time.Hour)
	spammer.c = spammer.c.with(spammer.c.login(spammer.email, spammer.password, spammer.tenantID).access)
	invite(spammer, uniqueEmail("next-day")).expect(t, 201, "")
}

// lockOut is an attacker locking email with five wrong passwords from five addresses; it returns
// the fifth answer.
func lockOut(env *e2eEnv, email string) *e2eResponse {
	var r *e2eResponse
	for i := 1; i <= domain.MaxLoginFailures; i++ {
		r = env.client(fmt.Sprintf("127.0.0.%d", 70+i)).do("POST", "/auth/login", map[string]any{"email": email, "password": fmt.Sprintf("Wrong-Guess-%d!", i)})
	}
	return r
}

// unlocks returns how each user.unlocked.v1 of the user's stream says the lock was lifted.
func unlocks(t *testing.T, env *e2eEnv, user string) []string {
	t.Helper()
	rows, err := openEventsDB(t, env.dsn).Query(`SELECT JSON_VALUE(payload, '$.how') FROM events
		WHERE event_type = 'user.unlocked.v1' AND stream_id = ? ORDER BY position`, "user-"+user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var how []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		how = append(how, h)
	}
	return how
}

// Item 16: anyone can lock any account — the super admin's too — with five wrong passwords from
// five addresses, but the lock keeps out guesses, not the owner: the owner follows the unlock link
// mailed when it started and logs in with the password. The attacker's further guesses get 423,
// and do not stretch the lock.
func TestE2EALockDoesNotKeepTheOwnerOut(t *testing.T) {
	email, password := uniqueEmail("root"), strongPassword()
	env := startE2E(t, e2eOptions{BootstrapEmail: email, BootstrapPassword: password})
	owner := env.client("127.0.0.1")
	attacker := env.client("127.0.0.66")

	assertRetryAfter(t, lockOut(env, email).expect(t, 423, "account_locked"), 890, 900)
	// The right password alone is answered like a guess: the lock must not tell that it hit.
	owner.do("POST", "/auth/login", map[string]any{"email": email, "password": password}).expect(t, 423, "account_locked")
	m := env.waitMail(email, "locked")

	env.clock.Advance(10 * time.Minute)
	for i := 0; i < 3; i++ {
		r := attacker.do("POST", "/auth/login", map[string]any{"email": email, "password": fmt.Sprintf("Wrong-Again-%d!", i)}).expect(t, 423, "account_locked")
		assertRetryAfter(t, r, 290, 300) // the lock's end stays where it was
	}

	owner.do("POST", "/auth/unlock", map[string]any{"token": m.token}).expect(t, 204, "")
	s := owner.login(email, password, "")
	owner.with(s.access).do("GET", "/me", nil).expect(t, 200, "")
	owner.do("POST", "/auth/unlock", map[string]any{"token": m.token}).expect(t, 410, "expired")
	if how := unlocks(t, env, s.resp.str("user.id")); len(how) != 1 || how[0] != "link" {
		t.Errorf("user.unlocked.v1 recorded %v, want [link]", how)
	}
	if n := env.mailsTo(email); n != 1 {
		t.Errorf("%d mails to the owner, want the one unlock link", n)
	}

	// An address without an account locks alike, and mails nobody.
	nobody := uniqueEmail("nobody")
	lockOut(env, nobody).expect(t, 423, "account_locked")
	attacker.do("POST", "/auth/login", map[string]any{"email": nobody, "password": password}).expect(t, 423, "account_locked")
}

// Item 16: an owner with two factors logs in during a lock with the password and a code, which
// lifts the lock; the password alone, or with a wrong code, is still refused like a guess.
func TestE2ETwoFactorOwnerLogsInDuringALock(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	owner := env.client("127.0.0.1")
	email, password := uniqueEmail("twofactor"), strongPassword()
	owner.signUp(email, "Two Factor", password)
	me := owner.with(owner.login(email, password, "").access)
	secret := me.do("POST", "/me/totp/setup", nil).expect(t, 200, "").str("secret")
	env.secret(secret, "TOTP secret")
	code := func() string {
		c, err := totp.GenerateCode(secret, env.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	me.do("POST", "/me/totp/enable", map[string]any{"code": code()}).expect(t, 200, "")

	lockOut(env, email).expect(t, 423, "account_locked")
	env.clock.Advance(time.Minute) // a new time step: a code is never accepted twice
	owner.do("POST", "/auth/login", map[string]any{"email": email, "password": password}).expect(t, 423, "account_locked")
	owner.do("POST", "/auth/login", map[string]any{"email": email, "password": password, "totp_code": "000000"}).expect(t, 423, "account_locked")
	owner.do("POST", "/auth/login", map[string]any{"email": email, "password": "Wrong-Guess-9!", "totp_code": code()}).expect(t, 423, "account_locked")
	s := owner.login2FA(email, password, code())
	if how := unlocks(t, env, s.resp.str("user.id")); len(how) != 1 || how[0] != "totp" {
		t.Errorf("user.unlocked.v1 recorded %v, want [totp]", how)
	}
	// The lock is lifted: a guess is a guess again, not a 423.
	env.client("127.0.0.66").do("POST", "/auth/login", map[string]any{"email": email, "password": "Wrong-Guess-10!"}).expect(t, 401, "invalid_credentials")
}

// Issue 10, sibling of item 9: a stolen API key or access token cannot hand out access that
// outlasts it — no invitations (a tenant_admin's or any other), no role changes, no database
// owner changes, no new tenants — while the owner, with a recently confirmed password, can.
func TestE2EAStolenKeyCannotHandOutLastingAccess(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	admin := newTenantAdmin(env, "127.0.0.1", "Keyed Co")
	developer := invite(env, admin, "127.0.0.2", "developer")
	key := admin.c.do("POST", "/me/api-keys", map[string]any{"name": "ci"}).expect(t, 201, "").str("key")
	env.secret(key, "API key")
	thief := env.client("127.0.0.66")
	attackerInvite := map[string]any{"emails": []string{uniqueEmail("zz")}, "role": "tenant_admin"}
	promote := map[string]any{"role": "tenant_admin"}
	transfer := map[string]any{"user_id": developer.userID}
	database := "/databases/" + uuid.NewString() + "/owner" // the guard answers before the database is looked up

	withKey := thief.with(key)
	withKey.do("POST", "/invitations", attackerInvite).expect(t, 403, "forbidden")
	withKey.do("POST", "/invitations", map[string]any{"emails": []string{uniqueEmail("zz")}, "role": "viewer"}).expect(t, 403, "forbidden")
	withKey.do("PUT", "/users/"+developer.userID+"/role", promote).expect(t, 403, "forbidden")
	withKey.do("PUT", database, transfer).expect(t, 403, "forbidden")
	withKey.do("POST", "/tenants", map[string]any{"name": "Thief Co"}).expect(t, 403, "forbidden")
	// What grants no one anything stays open to automation.
	withKey.do("GET", "/users", nil).expect(t, 200, "")
	withKey.do("PATCH", "/tenant/settings", map[string]any{"row_limit": 500}).expect(t, 200, "")

	// A token stolen from a session whose password was checked more than five minutes ago.
	env.clock.Advance(6 * time.Minute)
	stolen := thief.with(admin.c.token)
	stolen.do("POST", "/invitations", attackerInvite).expect(t, 401, "reauthentication_required")
	stolen.do("PUT", "/users/"+developer.userID+"/role", promote).expect(t, 401, "reauthentication_required")
	stolen.do("PUT", database, transfer).expect(t, 401, "reauthentication_required")
	if n := len(admin.c.do("GET", "/invitations", nil).expect(t, 200, "").items("items")); n != 1 {
		t.Errorf("%d invitations after the refused ones, want the developer's only", n)
	}
	if role := developer.c.do("GET", "/me", nil).expect(t, 200, "").str("tenant.role"); role != "developer" {
		t.Errorf("the developer's role is %q after the refused promotion", role)
	}

	// The owner confirms the password, and may.
	admin.c.do("POST", "/me/reauth", map[string]any{"password": admin.password}).expect(t, 200, "")
	admin.c.do("POST", "/invitations", map[string]any{"emails": []string{uniqueEmail("cto")}, "role": "tenant_admin"}).expect(t, 201, "")
	admin.c.do("PUT", "/users/"+developer.userID+"/role", promote).expect(t, 200, "")
}
