package projections_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

var sessionsOrder = map[string]string{"sessions": "session_id"}

// The password and role changes as builds before session ends were events recorded them.
type (
	passwordChangedV1 struct {
		At           time.Time `json:"at"`
		PasswordHash string    `json:"password_hash"`
		Reason       string    `json:"reason"`
	}
	memberRoleChangedV1 struct {
		UserID domain.UserID `json:"user_id"`
		From   domain.Role   `json:"from"`
		To     domain.Role   `json:"to"`
	}
)

func (passwordChangedV1) EventType() string   { return "user.password_changed.v1" }
func (memberRoleChangedV1) EventType() string { return "tenant.member_role_changed.v1" }

// appendV1At appends events as an earlier build did, to one stream, recorded at the given time.
func (f *identityFixture) appendV1At(t *testing.T, at time.Time, stream string, events ...domain.Event) {
	t.Helper()
	f.clock.set(at)
	old := eventstore.New(f.db, eventstore.NewRegistry(passwordChangedV1{}, memberRoleChangedV1{}), eventstore.Options{Logger: quiet(), Clock: f.clock.Now})
	defer old.Close()
	typ, _, _ := strings.Cut(stream, "-")
	if _, err := old.Append(context.Background(), eventstore.Append{Streams: []eventstore.Stream{{
		ID: stream, Type: typ, ExpectedVersion: eventstore.AnyVersion, Events: events,
	}}}); err != nil {
		t.Fatal(err)
	}
}

// startSession appends a session of user in tenant (none for "") that started at startedAt.
func startSession(t *testing.T, f *identityFixture, user domain.UserID, tenant domain.TenantID, startedAt time.Time) domain.SessionID {
	t.Helper()
	id := domain.SessionID(newID())
	role := domain.RoleDeveloper
	if tenant == "" {
		role = ""
	}
	f.appendAt(t, startedAt, id.Stream(), domain.SessionStarted{
		SessionID: id, UserID: user, TenantID: tenant, Role: role, SuperAdmin: tenant == "", RefreshHash: "r0",
		StartedAt: startedAt, ExpiresAt: startedAt.Add(domain.SessionLifetime), IdleTimeout: 1800,
		IP: "198.51.100.1", UserAgent: "test",
	})
	return id
}

// ended returns a session's ended_at and end_reason.
func ended(t *testing.T, f *identityFixture, id domain.SessionID) (at, reason string) {
	t.Helper()
	rows, _ := query(t, f.db, `SELECT ended_at, end_reason FROM sessions WHERE session_id = ?`, string(id))
	if len(rows) != 1 {
		t.Fatalf("session %s has %d rows", id, len(rows))
	}
	return rows[0]["ended_at"], rows[0]["end_reason"]
}

func assertEnded(t *testing.T, f *identityFixture, what string, id domain.SessionID, at time.Time, reason string) {
	t.Helper()
	if gotAt, gotReason := ended(t, f, id); gotAt != ts(at) || gotReason != reason {
		t.Errorf("%s: ended %s for %s, want %s for %s", what, gotAt, gotReason, ts(at), reason)
	}
}

func assertLive(t *testing.T, f *identityFixture, what string, id domain.SessionID) {
	t.Helper()
	if at, reason := ended(t, f, id); at != "NULL" || reason != "NULL" {
		t.Errorf("%s: ended %s for %s, want it live", what, at, reason)
	}
}

func TestSessionsFollowStartRefreshAndEnd(t *testing.T) {
	f := newIdentityFixture(t)
	r := f.start(t, projections.NewSessions(production))
	user, tenant := domain.UserID(newID()), domain.TenantID(newID())
	member, admin := domain.SessionID(newID()), domain.SessionID(newID())
	longAgent := strings.Repeat("é", 600) // 600 characters, 1,200 bytes

	f.appendAt(t, t0, member.Stream(), domain.SessionStarted{
		SessionID: member, UserID: user, TenantID: tenant, Role: domain.RoleDeveloper, RefreshHash: "r0",
		StartedAt: t0, ExpiresAt: t0.Add(domain.SessionLifetime), IdleTimeout: 1800, IP: "203.0.113.7", UserAgent: longAgent,
	})
	f.appendAt(t, t0.Add(time.Second), admin.Stream(), domain.SessionStarted{
		SessionID: admin, UserID: user, SuperAdmin: true, RefreshHash: "a0",
		StartedAt: t0.Add(time.Second), ExpiresAt: t0.Add(time.Hour), IdleTimeout: 600, IP: "2001:db8::1", UserAgent: "curl/8.5",
	})
	f.appendAt(t, t0.Add(10*time.Minute), member.Stream(), domain.SessionRefreshed{RefreshHash: "r1", At: t0.Add(10 * time.Minute)})
	f.appendAt(t, t0.Add(20*time.Minute), member.Stream(), domain.SessionRefreshed{RefreshHash: "r2", At: t0.Add(20 * time.Minute)})
	last := f.appendAt(t, t0.Add(30*time.Minute), member.Stream(), domain.SessionEnded{Reason: domain.EndLogout, At: t0.Add(30 * time.Minute)})
	wait(t, r, last.LastPosition, "sessions")

	assertRow(t, f.db, "sessions", "session_id", string(member), row{
		"session_id": string(member), "user_id": string(user), "tenant_id": string(tenant), "role": "developer",
		"super_admin": "0", "started_at": ts(t0), "expires_at": ts(t0.Add(domain.SessionLifetime)), "idle_timeout_s": "1800",
		"ip": "203.0.113.7", "user_agent": strings.Repeat("é", 512), "refreshed_at": ts(t0.Add(20 * time.Minute)),
		"ended_at": ts(t0.Add(30 * time.Minute)), "end_reason": "logout",
	})
	assertRow(t, f.db, "sessions", "session_id", string(admin), row{
		"session_id": string(admin), "user_id": string(user), "tenant_id": "NULL", "role": "NULL",
		"super_admin": "1", "started_at": ts(t0.Add(time.Second)), "expires_at": ts(t0.Add(time.Hour)), "idle_timeout_s": "600",
		"ip": "2001:db8::1", "user_agent": "curl/8.5", "refreshed_at": "NULL", "ended_at": "NULL", "end_reason": "NULL",
	})

	t.Run("rebuild and redelivery change nothing", func(t *testing.T) {
		checkReplay(t, f, r, projections.NewSessions(production), sessionsOrder)
	})
}

// Before session ends were events, a password change ended the sessions in the read model only:
// the history recorded then keeps that meaning.
func TestRecordedV1PasswordChangeEndsTheUsersSessionsStartedBeforeIt(t *testing.T) {
	f := newIdentityFixture(t)
	sessions := projections.NewSessions(production)
	r := f.start(t, sessions)
	user, other := domain.UserID(newID()), domain.UserID(newID())
	changedAt := t0.Add(5 * time.Minute)

	before := startSession(t, f, user, "", t0)
	loggedOut := startSession(t, f, user, "", t0)
	f.appendAt(t, t0.Add(time.Minute), loggedOut.Stream(), domain.SessionEnded{Reason: domain.EndLogout, At: t0.Add(time.Minute)})
	// Started after the change although appended before it (the clocks of two commands): kept.
	startedLater := startSession(t, f, user, "", changedAt.Add(time.Second))
	othersSession := startSession(t, f, other, "", t0)
	// The change is recorded a little after its own time: ended_at is the change's time.
	f.appendV1At(t, changedAt.Add(3*time.Millisecond), user.Stream(), passwordChangedV1{At: changedAt, PasswordHash: "h2", Reason: "change"})
	// Today's change ends nothing by itself: its command records the ends.
	f.appendAt(t, changedAt.Add(30*time.Second), other.Stream(), domain.UserPasswordChanged{At: changedAt.Add(30 * time.Second), PasswordHash: "h3", Reason: "change"})
	after := startSession(t, f, user, "", changedAt.Add(time.Minute))
	last := f.appendAt(t, changedAt.Add(2*time.Minute), after.Stream(), domain.SessionRefreshed{RefreshHash: "r1", At: changedAt.Add(2 * time.Minute)})
	wait(t, r, last.LastPosition, "sessions")

	assertEnded(t, f, "session started before the change", before, changedAt, "password_changed")
	assertEnded(t, f, "session logged out before the change", loggedOut, t0.Add(time.Minute), "logout")
	assertLive(t, f, "session started after the change, appended before it", startedLater)
	assertLive(t, f, "another user's session", othersSession)
	assertLive(t, f, "session started after the change", after)
	assertLive(t, f, "a session whose user's password changed in a v2 event", othersSession)

	t.Run("rebuild and redelivery change nothing", func(t *testing.T) {
		checkReplay(t, f, r, sessions, sessionsOrder)
	})
}

// Before session ends were events, a role change ended the member's sessions in the read model
// only: the history recorded then keeps that meaning.
func TestRecordedV1RoleChangeEndsTheMembersSessionsInThatTenantOnly(t *testing.T) {
	f := newIdentityFixture(t)
	sessions := projections.NewSessions(production)
	r := f.start(t, sessions)
	user, other := domain.UserID(newID()), domain.UserID(newID())
	acme, globex := domain.TenantID(newID()), domain.TenantID(newID())
	changedAt := t0.Add(5 * time.Minute)

	inAcme := startSession(t, f, user, acme, t0)
	inGlobex := startSession(t, f, user, globex, t0)
	noTenant := startSession(t, f, user, "", t0)
	othersInAcme := startSession(t, f, other, acme, t0)
	othersInGlobex := startSession(t, f, other, globex, t0)
	f.appendV1At(t, changedAt, acme.Stream(), memberRoleChangedV1{UserID: user, From: domain.RoleDeveloper, To: domain.RoleViewer})
	laterInAcme := startSession(t, f, user, acme, changedAt.Add(time.Second))
	// Today's change ends nothing by itself: its command records the ends.
	last := f.appendAt(t, changedAt.Add(time.Minute), globex.Stream(), domain.TenantMemberRoleChanged{UserID: other, From: domain.RoleViewer, To: domain.RoleDeveloper})
	wait(t, r, last.LastPosition, "sessions")

	assertEnded(t, f, "the member's session in the tenant", inAcme, changedAt, "role_changed")
	assertLive(t, f, "the member's session in another tenant", inGlobex)
	assertLive(t, f, "the member's session without a tenant", noTenant)
	assertLive(t, f, "another member's session in the tenant", othersInAcme)
	assertLive(t, f, "the member's session started after the change", laterInAcme)
	assertLive(t, f, "a session whose member's role changed in a v2 event", othersInGlobex)

	t.Run("rebuild and redelivery change nothing", func(t *testing.T) {
		checkReplay(t, f, r, sessions, sessionsOrder)
	})
}

// SessionAndUser runs as a statement prepared on the server: it still reads the model a rebuild
// swapped in (RENAME TABLE) after it was prepared, and what was applied since.
func TestSessionAndUserReadsTheModelAfterARebuild(t *testing.T) {
	f := newIdentityFixture(t)
	r := f.start(t, projections.NewUsers(production), projections.NewSessions(production))
	views := projections.NewViews(f.db)
	ctx := context.Background()
	user, session := f.signedIn(t, r)
	if _, _, err := views.SessionAndUser(ctx, domain.SessionID(newID())); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("an unknown session: %v, want not found", err)
	}
	s, u, err := views.SessionAndUser(ctx, session)
	if err != nil || s.UserID != user || s.EndedAt != nil || u.Email != "ada@example.com" {
		t.Fatalf("before the rebuild: %+v %+v %v", s, u, err)
	}

	if err := r.Rebuild(ctx, "sessions"); err != nil {
		t.Fatal(err)
	}
	last := f.appendAt(t, t0.Add(time.Minute), session.Stream(), domain.SessionEnded{Reason: domain.EndLogout, At: t0.Add(time.Minute)})
	wait(t, r, last.LastPosition, "sessions")
	s, u, err = views.SessionAndUser(ctx, session)
	if err != nil || s.EndedAt == nil || s.EndReason != "logout" || u.ID != user {
		t.Fatalf("after the rebuild and the end: %+v %+v %v", s, u, err)
	}
}
