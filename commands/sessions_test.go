package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// live reports whether the sessions read model shows the session open.
func (f *fixture) live(t *testing.T, id domain.SessionID) bool {
	t.Helper()
	view, err := f.views.Session(ctx(t), id)
	if errors.Is(err, domain.ErrNotFound) {
		return false
	} else if err != nil {
		t.Fatal(err)
	}
	return view.EndedAt == nil
}

// endedInStream returns why the session's own stream says it ended, "" while it says it is live.
func (f *fixture) endedInStream(t *testing.T, id domain.SessionID) string {
	t.Helper()
	_, envs := f.stream(t, id.Stream())
	for _, env := range envs {
		e, err := f.store.Registry().Decode(env)
		if err != nil {
			t.Fatal(err)
		}
		if ended, ok := e.(domain.SessionEnded); ok {
			return ended.Reason
		}
	}
	return ""
}

func TestRefreshRotatesAndReuseEndsTheSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.user(t, "rotate@example.com")
	res := f.login(t, "rotate@example.com", password, "")
	session := res.Session.SessionID
	first := res.RefreshToken

	f.clock.Advance(time.Minute)
	started, second, err := f.identity.Refresh(ctx(t), first, meta)
	if err != nil {
		t.Fatal(err)
	}
	if started.SessionID != session || second == first || second == "" {
		t.Fatalf("refresh: session %s token changed %v, want the same session with a new token", started.SessionID, second != first)
	}
	f.clock.Advance(time.Minute)
	_, third, err := f.identity.Refresh(ctx(t), second, meta)
	if err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
	// A token of the right session that it never issued is refused, and ends nothing.
	forged := strings.Split(third, ".")[0] + "." + strings.Repeat("A", 43)
	if _, _, err := f.identity.Refresh(ctx(t), forged, meta); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Errorf("unknown token: %v, want ErrUnauthenticated", err)
	}
	if !f.live(t, session) {
		t.Fatal("an unknown token ended the session")
	}

	// The first token is spent: presenting it again is theft, and ends the session.
	f.clock.Advance(time.Minute)
	if _, _, err := f.identity.Refresh(ctx(t), first, meta); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("spent token: %v, want ErrUnauthenticated", err)
	}
	types, envs := f.stream(t, session.Stream())
	if types[len(types)-1] != "session.ended.v1" {
		t.Fatalf("session stream %v, want it to end", types)
	}
	var ended domain.SessionEnded
	if err := json.Unmarshal(envs[len(envs)-1].Payload, &ended); err != nil {
		t.Fatal(err)
	}
	if ended.Reason != domain.EndRefreshReuse {
		t.Errorf("ended with reason %q, want %q", ended.Reason, domain.EndRefreshReuse)
	}
	f.settle(t)
	if f.live(t, session) {
		t.Error("the sessions read model still shows the session live")
	}
	// The thief's and the owner's current tokens are dead alike.
	for _, token := range []string{third, second, first} {
		if _, _, err := f.identity.Refresh(ctx(t), token, meta); !errors.Is(err, domain.ErrUnauthenticated) {
			t.Errorf("refresh of an ended session: %v, want ErrUnauthenticated", err)
		}
	}
	if again, _ := f.stream(t, session.Stream()); len(again) != len(types) {
		t.Errorf("refreshes of an ended session recorded %v", again[len(types):])
	}
}

func TestPasswordChangeEndsEverySession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.user(t, "change@example.com")
	other := f.user(t, "bystander@example.com")
	sessions := []commands.LoginResult{f.login(t, "change@example.com", password, ""), f.login(t, "change@example.com", password, "")}
	bystander := f.login(t, "bystander@example.com", password, "")

	f.clock.Advance(time.Second)
	owner := commands.Caller{User: id, Session: sessions[0].Session.SessionID}
	if err := f.identity.ChangePassword(ctx(t), owner, "Wrong-Horse-42", "Battery-Staple-7", meta); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Errorf("wrong current password: %v, want ErrInvalidCredentials", err)
	}
	if err := f.identity.ChangePassword(ctx(t), owner, password, password, meta); !errors.Is(err, domain.ErrPasswordReused) {
		t.Errorf("same password again: %v, want ErrPasswordReused", err)
	}
	for _, s := range sessions {
		if !f.live(t, s.Session.SessionID) {
			t.Fatal("a refused password change ended a session")
		}
	}
	if err := f.identity.ChangePassword(ctx(t), owner, password, "Battery-Staple-7", meta); err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if f.live(t, s.Session.SessionID) {
			t.Errorf("session %s is live after the password change", s.Session.SessionID)
		}
		if reason := f.endedInStream(t, s.Session.SessionID); reason != domain.EndPasswordChanged {
			t.Errorf("session %s: its stream says ended for %q, want %q", s.Session.SessionID, reason, domain.EndPasswordChanged)
		}
		view, err := f.views.Session(ctx(t), s.Session.SessionID)
		if err != nil || view.EndReason != domain.EndPasswordChanged {
			t.Errorf("session %s: end reason %q, %v", s.Session.SessionID, view.EndReason, err)
		}
		if _, _, err := f.identity.Refresh(ctx(t), s.RefreshToken, meta); !errors.Is(err, domain.ErrUnauthenticated) {
			t.Errorf("refresh after the password change: %v, want ErrUnauthenticated", err)
		}
	}
	if !f.live(t, bystander.Session.SessionID) || f.endedInStream(t, bystander.Session.SessionID) != "" {
		t.Errorf("another user's session %s ended", other)
	}
	if _, err := f.identity.Login(ctx(t), commands.Login{Email: "change@example.com", Password: password}); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Errorf("login with the old password: %v, want ErrInvalidCredentials", err)
	}
	if res := f.login(t, "change@example.com", "Battery-Staple-7", ""); !f.live(t, res.Session.SessionID) {
		t.Error("a session started after the change is not live")
	}
}

func TestPasswordResetEndsEverySession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.user(t, "reset@example.com")
	sessions := []commands.LoginResult{f.login(t, "reset@example.com", password, ""), f.login(t, "reset@example.com", password, "")}
	f.clock.Advance(time.Second)
	if err := f.identity.ForgotPassword(ctx(t), "reset@example.com", meta); err != nil {
		t.Fatal(err)
	}
	if err := f.identity.ResetPassword(ctx(t), f.token(t, "reset@example.com", "/reset-password"), "Battery-Staple-7", meta); err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if reason := f.endedInStream(t, s.Session.SessionID); reason != domain.EndPasswordChanged || f.live(t, s.Session.SessionID) {
			t.Errorf("session %s: stream says ended for %q, read model live %v; want ended for %q", s.Session.SessionID, reason, f.live(t, s.Session.SessionID), domain.EndPasswordChanged)
		}
		if _, _, err := f.identity.Refresh(ctx(t), s.RefreshToken, meta); !errors.Is(err, domain.ErrUnauthenticated) {
			t.Errorf("refresh after the reset: %v, want ErrUnauthenticated", err)
		}
	}
}

func TestRoleChangeEndsTheMembersSessionsInTheTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := f.user(t, "role-admin@example.com")
	member := f.user(t, "role-member@example.com")
	acme, globex := f.tenant(t, admin), f.tenant(t, admin)
	for _, tenant := range []domain.TenantID{acme, globex} {
		f.invite(t, tenant, admin, "role-member@example.com", domain.RoleDeveloper)
		if _, _, err := f.identity.AcceptInvitation(ctx(t), f.token(t, "role-member@example.com", "/invitations/accept"), "", "", meta); err != nil {
			t.Fatal(err)
		}
	}
	loginTo := func(tenant domain.TenantID) commands.LoginResult {
		res, err := f.identity.Login(ctx(t), commands.Login{Email: "role-member@example.com", Password: password, Tenant: string(tenant), Meta: meta})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	inAcme := []commands.LoginResult{loginTo(acme), loginTo(acme)}
	inGlobex := loginTo(globex)
	adminInAcme, err := f.identity.Login(ctx(t), commands.Login{Email: "role-admin@example.com", Password: password, Tenant: string(acme), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)

	dry, err := f.identity.ChangeRole(ctx(t), acme, admin, domain.RoleTenantAdmin, member, string(domain.RoleViewer), true, meta)
	if err != nil || dry != (commands.RoleChange{From: domain.RoleDeveloper, To: domain.RoleViewer, SessionsEnded: 2}) {
		t.Fatalf("dry run = %+v, %v; want developer → viewer ending 2 sessions", dry, err)
	}
	for _, s := range inAcme {
		if f.endedInStream(t, s.Session.SessionID) != "" {
			t.Fatal("a dry run ended a session")
		}
	}

	change, err := f.identity.ChangeRole(ctx(t), acme, admin, domain.RoleTenantAdmin, member, string(domain.RoleViewer), false, meta)
	if err != nil || change != dry {
		t.Fatalf("change = %+v, %v; want what the dry run announced, %+v", change, err, dry)
	}
	for _, s := range inAcme {
		if reason := f.endedInStream(t, s.Session.SessionID); reason != domain.EndRoleChanged {
			t.Errorf("session %s in the tenant: its stream says ended for %q, want %q", s.Session.SessionID, reason, domain.EndRoleChanged)
		}
		if f.live(t, s.Session.SessionID) {
			t.Errorf("session %s in the tenant is live in the read model", s.Session.SessionID)
		}
		if _, _, err := f.identity.Refresh(ctx(t), s.RefreshToken, meta); !errors.Is(err, domain.ErrUnauthenticated) {
			t.Errorf("refresh after the role change: %v, want ErrUnauthenticated", err)
		}
	}
	for what, s := range map[string]commands.LoginResult{"the member's session in another tenant": inGlobex, "the admin's session": adminInAcme} {
		if f.endedInStream(t, s.Session.SessionID) != "" || !f.live(t, s.Session.SessionID) {
			t.Errorf("%s ended", what)
		}
		if _, _, err := f.identity.Refresh(ctx(t), s.RefreshToken, meta); err != nil {
			t.Errorf("%s: refresh: %v", what, err)
		}
	}
	if again, err := f.identity.ChangeRole(ctx(t), acme, admin, domain.RoleTenantAdmin, member, string(domain.RoleViewer), true, meta); err != nil || again.SessionsEnded != 0 {
		t.Errorf("dry run of the same role again = %+v, %v; want no session ended", again, err)
	}
}

// hookedStore is the event store with a hook that runs before each ReadStream.
type hookedStore struct {
	commands.EventStore
	beforeRead func(stream string)
}

func (s hookedStore) ReadStream(ctx context.Context, stream string, after int64) ([]eventstore.Envelope, error) {
	s.beforeRead(stream)
	return s.EventStore.ReadStream(ctx, stream, after)
}

// TestLoginRacingAPasswordChange: a login checks the password on the user it loaded first; when
// the password changes before the login records its session, the session must not outlive the
// change, since the login proved only the old password.
func TestLoginRacingAPasswordChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.user(t, "toctou@example.com")
	owner := f.caller(t, id, "toctou@example.com")
	var reads int
	var mu sync.Mutex
	hooked := hookedStore{EventStore: f.store, beforeRead: func(stream string) {
		if stream != id.Stream() {
			return
		}
		mu.Lock()
		reads++
		n := reads
		mu.Unlock()
		if n == 2 { // the login checked the old password on its first read; the owner changes it now
			f.clock.Advance(time.Second)
			if err := f.identity.ChangePassword(ctx(t), owner, password, "Battery-Staple-7", meta); err != nil {
				t.Errorf("change password: %v", err)
			}
			f.clock.Advance(time.Second)
		}
	}}
	attacker := commands.NewIdentity(hooked, f.vault, f.views, f.runtime, f.clock.Now, bcryptCost)
	res, err := attacker.Login(ctx(t), commands.Login{Email: "toctou@example.com", Password: password, Meta: meta})
	if err != nil {
		return // refused: fine
	}
	f.settle(t)
	if f.live(t, res.Session.SessionID) {
		t.Errorf("a login with the old password (checked before the change, recorded after it) holds a live session %s", res.Session.SessionID)
	}
}

func TestTOTP(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.user(t, "twofactor@example.com")
	login := func(code string) (commands.LoginResult, error) {
		return f.identity.Login(ctx(t), commands.Login{Email: "twofactor@example.com", Password: password, TOTPCode: code, Meta: meta})
	}

	owner := f.caller(t, id, "twofactor@example.com")
	if _, err := f.identity.EnableTOTP(ctx(t), owner, "123456", meta); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("enable without setup: %v, want ErrConflict", err)
	}
	secret, otpauth, err := f.identity.StartTOTP(ctx(t), owner, meta)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(otpauth, "otpauth://totp/") || !strings.Contains(otpauth, secret) {
		t.Errorf("otpauth URL %q", otpauth)
	}
	// Not on until a code confirms it.
	f.login(t, "twofactor@example.com", password, "")
	if _, err := f.identity.EnableTOTP(ctx(t), owner, "000000", meta); !errors.Is(err, domain.ErrInvalidTOTP) {
		t.Errorf("enable with a wrong code: %v, want ErrInvalidTOTP", err)
	}
	recovery, err := f.identity.EnableTOTP(ctx(t), owner, f.totpCode(t, secret), meta)
	if err != nil {
		t.Fatal(err)
	}
	if len(recovery) != commands.RecoveryCodes {
		t.Fatalf("%d recovery codes, want %d", len(recovery), commands.RecoveryCodes)
	}
	if _, err := f.vault.Get(ctx(t), "totp-pending:"+string(id)); err == nil {
		t.Error("the pending secret is still in the vault after enabling")
	}
	f.settle(t)
	if u, _ := f.views.User(ctx(t), id); !u.TOTPEnabled {
		t.Error("read model: two-factor authentication off")
	}

	if _, err := login(""); !errors.Is(err, domain.ErrTOTPRequired) {
		t.Errorf("login without a code: %v, want ErrTOTPRequired", err)
	}
	// The code that enabled it was seen: it does not log in.
	if _, err := login(f.totpCode(t, secret)); !errors.Is(err, domain.ErrInvalidTOTP) {
		t.Errorf("login with the enabling code: %v, want ErrInvalidTOTP", err)
	}
	f.clock.Advance(30 * time.Second)
	code := f.totpCode(t, secret)
	if _, err := login(code); err != nil {
		t.Fatalf("login with a fresh code: %v", err)
	}
	if _, err := login(code); !errors.Is(err, domain.ErrInvalidTOTP) {
		t.Errorf("the same code again: %v, want ErrInvalidTOTP", err)
	}
	if _, err := login("999999"); !errors.Is(err, domain.ErrInvalidTOTP) {
		t.Errorf("a wrong code: %v, want ErrInvalidTOTP", err)
	}

	// Two logins with one fresh code at once: the user's stream lets one through.
	f.clock.Advance(30 * time.Second)
	code = f.totpCode(t, secret)
	errs := race(2, func(int) error { _, err := login(code); return err })
	if ok := (errs[0] == nil) != (errs[1] == nil); !ok {
		t.Errorf("two logins with one code: %v, want exactly one to succeed", errs)
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, domain.ErrInvalidTOTP) {
			t.Errorf("the replayed code: %v, want ErrInvalidTOTP", err)
		}
	}

	// A recovery code works once, in any spelling.
	if _, err := login(strings.ToUpper(recovery[0])); err != nil {
		t.Errorf("login with a recovery code: %v", err)
	}
	if _, err := login(recovery[0]); !errors.Is(err, domain.ErrInvalidTOTP) {
		t.Errorf("the recovery code again: %v, want ErrInvalidTOTP", err)
	}
	if _, err := login(recovery[1]); err != nil {
		t.Errorf("another recovery code: %v", err)
	}
	types, _ := f.stream(t, id.Stream())
	if n := count(types, "user.recovery_code_used.v1"); n != 2 {
		t.Errorf("%d recovery codes recorded as used, want 2", n)
	}
	// Five refused codes (the enabling one, the replay, the wrong one, the loser of the race, the
	// spent recovery code) are recorded as failed logins, like wrong passwords.
	if n := count(types, "user.login_failed.v1"); n != 5 {
		t.Errorf("%d failed logins recorded, want 5", n)
	}

	// Turning it off takes a valid code, and shreds the secret.
	if err := f.identity.DisableTOTP(ctx(t), owner, "", meta); !errors.Is(err, domain.ErrInvalidTOTP) {
		t.Errorf("disable without a code: %v, want ErrInvalidTOTP", err)
	}
	f.clock.Advance(30 * time.Second)
	if err := f.identity.DisableTOTP(ctx(t), owner, f.totpCode(t, secret), meta); err != nil {
		t.Fatalf("disable: %v", err)
	}
	if _, err := f.vault.Get(ctx(t), "totp:"+string(id)); err == nil {
		t.Error("the TOTP secret is still in the vault after disabling")
	}
	f.login(t, "twofactor@example.com", password, "")

	assertNowhere(t, f, "the TOTP secret", secret)
	for _, c := range recovery {
		assertNowhere(t, f, "a recovery code", c)
	}
}

// assertNowhere fails if any event's payload or metadata contains secret.
func assertNowhere(t *testing.T, f *fixture, what, secret string) {
	t.Helper()
	if secret == "" {
		t.Fatalf("%s is empty", what)
	}
	rows, err := f.db.QueryContext(ctx(t), `SELECT position, event_type, payload, metadata FROM events ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var position int64
		var typ, payload, metadata string
		if err := rows.Scan(&position, &typ, &payload, &metadata); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(payload, secret) || strings.Contains(metadata, secret) {
			t.Errorf("%s appears in event %d (%s): %s %s", what, position, typ, payload, metadata)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestChangePasswordRacingAnotherChange: whoever changes a password must know the current one.
// A change that proved only the password before a concurrent change must not overwrite it.
func TestChangePasswordRacingAnotherChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.user(t, "contested@example.com")
	owner, attacker := f.caller(t, id, "contested@example.com"), f.caller(t, id, "contested@example.com")
	var reads int
	var mu sync.Mutex
	hooked := hookedStore{EventStore: f.store, beforeRead: func(stream string) {
		if stream != id.Stream() {
			return
		}
		mu.Lock()
		reads++
		n := reads
		mu.Unlock()
		if n == 2 { // the stale request checked the old password; the owner changes it now
			if err := f.identity.ChangePassword(ctx(t), owner, password, "Owners-New-42", meta); err != nil {
				t.Errorf("owner's change: %v", err)
			}
		}
	}}
	stale := commands.NewIdentity(hooked, f.vault, f.views, f.runtime, f.clock.Now, bcryptCost)
	err := stale.ChangePassword(ctx(t), attacker, password, "Attackers-42!", meta)
	if err == nil {
		t.Errorf("a change that proved only the replaced password succeeded")
	}
	if _, err := f.identity.Login(ctx(t), commands.Login{Email: "contested@example.com", Password: "Owners-New-42"}); err != nil {
		t.Errorf("the owner's new password no longer logs in: %v", err)
	}
}
