package domain_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

var sessionExpiry = t0.Add(domain.SessionLifetime)

func sessionStarted() domain.SessionStarted {
	return domain.SessionStarted{
		SessionID: domain.SessionID(uuidB), UserID: domain.UserID(uuidA), TenantID: domain.TenantID(uuidC),
		Role: domain.RoleDeveloper, RefreshHash: "r0", StartedAt: t0, ExpiresAt: sessionExpiry,
		IdleTimeout: 1800, IP: "203.0.113.7", UserAgent: "curl/8",
	}
}

// sessionHistory is the log of a session started at t0 and refreshed that many times an hour
// apart (r0→r1→…), followed by extra events.
func sessionHistory(refreshes int, extra ...domain.Event) []domain.Event {
	history := []domain.Event{sessionStarted()}
	for i := 1; i <= refreshes; i++ {
		history = append(history, domain.SessionRefreshed{RefreshHash: fmt.Sprintf("r%d", i), At: t0.Add(time.Duration(i) * time.Hour)})
	}
	return append(history, extra...)
}

// loadSession rebuilds a session from a history as the event store returns it: no pending events.
func loadSession(t *testing.T, history []domain.Event) *domain.Session {
	t.Helper()
	s, err := domain.RebuildSession(viaJSON(t, history), int64(len(history)))
	if err != nil {
		t.Fatalf("RebuildSession: %v", err)
	}
	return s
}

func TestStartSession(t *testing.T) {
	s := domain.StartSession(sessionStarted())
	if s.ID() != domain.SessionID(uuidB) || s.UserID() != domain.UserID(uuidA) || s.Started() != sessionStarted() || s.Ended() {
		t.Errorf("session = %v %v %+v ended=%v, want the started values", s.ID(), s.UserID(), s.Started(), s.Ended())
	}
	if s.Version() != 0 {
		t.Errorf("Version() = %d, want 0", s.Version())
	}
	wantPending(t, s.PendingEvents(), "session.started.v1")
}

func TestSessionRefresh(t *testing.T) {
	tests := []struct {
		name      string
		refreshes int // r0→r1→… before the call; the current hash is r<refreshes>
		end       bool
		presented string
		at        time.Time
		wantErr   bool
		wantEnd   bool // the call ends the session for reuse
	}{
		{"current hash rotates", 0, false, "r0", t0.Add(time.Minute), false, false},
		{"current hash after rotations", 2, false, "r2", t0.Add(5 * time.Hour), false, false},
		{"just before expiry", 0, false, "r0", sessionExpiry.Add(-time.Nanosecond), false, false},
		{"spent hash ends the session", 1, false, "r0", t0.Add(2 * time.Hour), true, true},
		{"oldest spent hash ends the session", 3, false, "r0", t0.Add(5 * time.Hour), true, true},
		{"middle spent hash ends the session", 3, false, "r1", t0.Add(5 * time.Hour), true, true},
		{"unknown hash", 1, false, "rX", t0.Add(2 * time.Hour), true, false},
		{"empty hash", 1, false, "", t0.Add(2 * time.Hour), true, false},
		{"the next hash before it is issued", 1, false, "r2", t0.Add(2 * time.Hour), true, false},
		{"at exactly expiry", 0, false, "r0", sessionExpiry, true, false},
		{"after expiry", 1, false, "r1", sessionExpiry.Add(time.Hour), true, false},
		{"spent hash after expiry records nothing", 1, false, "r0", sessionExpiry, true, false},
		{"after the end", 1, true, "r1", t0.Add(2 * time.Hour), true, false},
		{"spent hash after the end records nothing", 1, true, "r0", t0.Add(2 * time.Hour), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var extra []domain.Event
			if tt.end {
				extra = append(extra, domain.SessionEnded{Reason: domain.EndLogout, At: t0.Add(90 * time.Minute)})
			}
			s := loadSession(t, sessionHistory(tt.refreshes, extra...))
			err := s.Refresh(tt.presented, "rNext", tt.at)
			switch {
			case !tt.wantErr && err != nil:
				t.Fatalf("Refresh(%q) = %v, want nil", tt.presented, err)
			case tt.wantErr && !errors.Is(err, domain.ErrUnauthenticated):
				t.Fatalf("Refresh(%q) = %v, want ErrUnauthenticated", tt.presented, err)
			}
			switch {
			case !tt.wantErr:
				wantPending(t, s.PendingEvents(), "session.refreshed.v1")
				if got, want := s.PendingEvents()[0], (domain.SessionRefreshed{RefreshHash: "rNext", At: tt.at}); got != want {
					t.Errorf("event = %+v, want %+v", got, want)
				}
				// The new hash is now the current one, the presented one is spent.
				if err := s.Refresh("rNext", "rNext2", tt.at); err != nil {
					t.Errorf("Refresh with the new hash = %v, want nil", err)
				}
				if err := s.Refresh(tt.presented, "rNext3", tt.at); !errors.Is(err, domain.ErrUnauthenticated) || !s.Ended() {
					t.Errorf("Refresh with the rotated-out hash = %v, ended %v; want ErrUnauthenticated and ended", err, s.Ended())
				}
			case tt.wantEnd:
				wantPending(t, s.PendingEvents(), "session.ended.v1")
				if got, want := s.PendingEvents()[0], (domain.SessionEnded{Reason: domain.EndRefreshReuse, At: tt.at}); got != want {
					t.Errorf("event = %+v, want %+v", got, want)
				}
				if !s.Ended() {
					t.Error("Ended() = false after a spent hash was presented")
				}
				// The thief's fresh pair dies with the session: the current hash no longer works.
				current := fmt.Sprintf("r%d", tt.refreshes)
				if err := s.Refresh(current, "rNext", tt.at); !errors.Is(err, domain.ErrUnauthenticated) {
					t.Errorf("Refresh with the current hash after reuse = %v, want ErrUnauthenticated", err)
				}
				wantPending(t, s.PendingEvents(), "session.ended.v1")
			default:
				wantPending(t, s.PendingEvents())
				if s.Ended() != tt.end {
					t.Errorf("Ended() = %v, want %v", s.Ended(), tt.end)
				}
			}
		})
	}
}

func TestSessionUnknownHashKeepsSession(t *testing.T) {
	s := loadSession(t, sessionHistory(1))
	for _, h := range []string{"rX", "", "R1", "r1 "} {
		if err := s.Refresh(h, "rNext", t0.Add(2*time.Hour)); !errors.Is(err, domain.ErrUnauthenticated) {
			t.Errorf("Refresh(%q) = %v, want ErrUnauthenticated", h, err)
		}
	}
	wantPending(t, s.PendingEvents())
	if s.Ended() {
		t.Fatal("an unknown hash ended the session")
	}
	if err := s.Refresh("r1", "r2", t0.Add(2*time.Hour)); err != nil {
		t.Errorf("Refresh with the current hash after unknown ones = %v, want nil", err)
	}
}

func TestSessionEnd(t *testing.T) {
	for _, reason := range []string{domain.EndLogout, domain.EndPasswordChanged, domain.EndRoleChanged, domain.EndIdle, domain.EndRevoked} {
		t.Run(reason, func(t *testing.T) {
			s := loadSession(t, sessionHistory(1))
			s.End(reason, t0.Add(time.Hour))
			s.End(domain.EndRevoked, t0.Add(2*time.Hour))
			wantPending(t, s.PendingEvents(), "session.ended.v1")
			if got, want := s.PendingEvents()[0], (domain.SessionEnded{Reason: reason, At: t0.Add(time.Hour)}); got != want {
				t.Errorf("event = %+v, want %+v (the first end wins)", got, want)
			}
			if !s.Ended() {
				t.Error("Ended() = false")
			}
			// Reloaded, the session stays ended and ending again records nothing.
			r := loadSession(t, sessionHistory(1, s.PendingEvents()...))
			r.End(domain.EndLogout, t0.Add(3*time.Hour))
			wantPending(t, r.PendingEvents())
			if !r.Ended() {
				t.Error("Ended() = false after a reload")
			}
		})
	}
	t.Run("after a reuse ended it", func(t *testing.T) {
		s := loadSession(t, sessionHistory(1))
		_ = s.Refresh("r0", "rX", t0.Add(2*time.Hour))
		s.End(domain.EndLogout, t0.Add(3*time.Hour))
		wantPending(t, s.PendingEvents(), "session.ended.v1")
	})
}

func TestRebuildSession(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		s := loadSession(t, sessionHistory(3))
		if s.Version() != 4 || len(s.PendingEvents()) != 0 {
			t.Errorf("Version() = %d, %d pending; want 4, none", s.Version(), len(s.PendingEvents()))
		}
		if s.ID() != domain.SessionID(uuidB) || s.UserID() != domain.UserID(uuidA) || s.Started() != sessionStarted() || s.Ended() {
			t.Errorf("rebuilt session = %v %v %+v ended=%v", s.ID(), s.UserID(), s.Started(), s.Ended())
		}
		if err := s.Refresh("r3", "r4", t0.Add(5*time.Hour)); err != nil {
			t.Errorf("Refresh(current) = %v", err)
		}
		if s.Version() != 4 {
			t.Errorf("Version() = %d after a decision, want 4", s.Version())
		}
	})
	t.Run("from the events of a decided session", func(t *testing.T) {
		decided := domain.StartSession(sessionStarted())
		for i, at := range []time.Time{t0.Add(time.Hour), t0.Add(2 * time.Hour)} {
			if err := decided.Refresh(fmt.Sprintf("r%d", i), fmt.Sprintf("r%d", i+1), at); err != nil {
				t.Fatal(err)
			}
		}
		r := loadSession(t, decided.PendingEvents())
		if r.Started() != decided.Started() || r.Ended() != decided.Ended() || r.Version() != 3 {
			t.Fatalf("rebuilt %+v ended=%v version=%d, want %+v ended=%v version 3", r.Started(), r.Ended(), r.Version(), decided.Started(), decided.Ended())
		}
		if err := r.Refresh("r0", "rX", t0.Add(3*time.Hour)); !errors.Is(err, domain.ErrUnauthenticated) || !r.Ended() {
			t.Errorf("spent r0 on the rebuilt session = %v, ended %v; want ErrUnauthenticated, ended", err, r.Ended())
		}
	})
	t.Run("empty history", func(t *testing.T) {
		for _, history := range [][]domain.Event{nil, {}} {
			s, err := domain.RebuildSession(history, 0)
			if !errors.Is(err, domain.ErrNotFound) || s != nil {
				t.Errorf("RebuildSession(%v) = %v, %v; want nil, ErrNotFound", history, s, err)
			}
		}
	})
}

func TestSessionEnding(t *testing.T) {
	user, tenant, otherTenant := domain.UserID(uuidA), domain.TenantID(uuidC), domain.TenantID(uuidB)
	at := t0.Add(time.Hour)
	session := func(edit func(*domain.SessionStarted), extra ...domain.Event) *domain.Session {
		started := sessionStarted()
		edit(&started)
		return loadSession(t, append([]domain.Event{started}, extra...))
	}
	same := func(*domain.SessionStarted) {}
	for _, tc := range []struct {
		name    string
		change  domain.SessionEnding
		session *domain.Session
		ends    bool
	}{
		{"password: the user's session in a tenant", domain.PasswordChangeEnding(user, at), session(same), true},
		{"password: the user's session without a tenant", domain.PasswordChangeEnding(user, at),
			session(func(s *domain.SessionStarted) { s.TenantID, s.Role, s.SuperAdmin = "", "", true }), true},
		{"password: another user's session", domain.PasswordChangeEnding(domain.UserID(uuidB), at), session(same), false},
		{"password: a session started at the change", domain.PasswordChangeEnding(user, t0), session(same), false},
		{"password: a session started after it", domain.PasswordChangeEnding(user, at),
			session(func(s *domain.SessionStarted) { s.StartedAt = at.Add(time.Second) }), false},
		{"password: a session already ended", domain.PasswordChangeEnding(user, at),
			session(same, domain.SessionEnded{Reason: domain.EndLogout, At: t0.Add(time.Minute)}), false},
		{"password: a session expired before it", domain.PasswordChangeEnding(user, sessionExpiry), session(same), false},
		{"role: the member's session in the tenant", domain.RoleChangeEnding(tenant, user, at), session(same), true},
		{"role: the member's session in another tenant", domain.RoleChangeEnding(otherTenant, user, at), session(same), false},
		{"role: the member's session without a tenant", domain.RoleChangeEnding(tenant, user, at),
			session(func(s *domain.SessionStarted) { s.TenantID, s.Role = "", "" }), false},
		{"role: another member's session in the tenant", domain.RoleChangeEnding(tenant, domain.UserID(uuidB), at), session(same), false},
		{"role: a session started after it", domain.RoleChangeEnding(tenant, user, at),
			session(func(s *domain.SessionStarted) { s.StartedAt = at.Add(time.Second) }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.change.Ends(tc.session); got != tc.ends {
				t.Fatalf("Ends = %v, want %v", got, tc.ends)
			}
			ended := tc.change.End([]*domain.Session{tc.session})
			if !tc.ends {
				if len(ended) != 0 {
					t.Errorf("End ended %d sessions, want none", len(ended))
				}
				wantPending(t, tc.session.PendingEvents())
				return
			}
			if len(ended) != 1 || ended[0] != tc.session || !tc.session.Ended() {
				t.Fatalf("End = %v, want the session, ended", ended)
			}
			wantPending(t, tc.session.PendingEvents(), "session.ended.v1")
			if got := tc.session.PendingEvents()[0]; got != (domain.SessionEnded{Reason: tc.change.Reason, At: at}) {
				t.Errorf("recorded %+v, want the change's reason and time", got)
			}
			if tc.session.Refresh("r0", "r1", at) == nil {
				t.Error("an ended session refreshed")
			}
		})
	}
}
