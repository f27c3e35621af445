package domain_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// userState is everything a User shows through its accessors.
type userState struct {
	ID                domain.UserID
	Email, Name       string
	Status            domain.UserStatus
	SuperAdmin        bool
	PasswordHash      string
	LockedUntil       time.Time
	PasswordChangedAt time.Time
}

func stateOf(u *domain.User) userState {
	return userState{u.ID(), u.Email(), u.Name(), u.Status(), u.SuperAdmin(), u.PasswordHash(), u.LockedUntil(), u.PasswordChangedAt()}
}

// sameHash is the fake password matcher: "hashes" are plain strings, and the new password
// matches a stored hash when the strings are equal.
func sameHash(newHash string) func(string) bool {
	return func(stored string) bool { return stored == newHash }
}

// stored holds the history each loaded user was rebuilt from: the tests' event store. The tests
// of this file do not run in parallel.
var stored = map[*domain.User][]domain.Event{}

// newUser registers a user and returns it as loaded from the store: no pending events.
func newUser(t *testing.T, verified bool) *domain.User {
	t.Helper()
	return reload(t, domain.RegisterUser(domain.UserID(uuidA), "ada@example.com", "Ada", "h0", verified))
}

// reload appends a user's pending events to its stored history and rebuilds it from there, as a
// command handler's next request would.
func reload(t *testing.T, u *domain.User) *domain.User {
	t.Helper()
	history := append(append([]domain.Event(nil), stored[u]...), u.PendingEvents()...)
	if u.Version() != int64(len(stored[u])) {
		t.Fatalf("reload: Version() = %d, want %d (the stored history)", u.Version(), len(stored[u]))
	}
	r, err := domain.RebuildUser(history, int64(len(history)))
	if err != nil {
		t.Fatalf("RebuildUser: %v", err)
	}
	stored[r] = history
	return r
}

func TestRegisterUser(t *testing.T) {
	tests := []struct {
		name     string
		verified bool
		want     domain.UserStatus
	}{
		{"from the sign-up form: pending", false, domain.UserPendingVerification},
		{"from an invitation or the bootstrap: verified", true, domain.UserActive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := domain.RegisterUser(domain.UserID(uuidA), "ada@example.com", "Ada", "h0", tt.verified)
			want := userState{ID: domain.UserID(uuidA), Email: "ada@example.com", Name: "Ada", Status: tt.want, PasswordHash: "h0"}
			if got := stateOf(u); got != want {
				t.Errorf("state = %+v, want %+v", got, want)
			}
			if u.Version() != 0 {
				t.Errorf("Version() = %d, want 0 for a new aggregate", u.Version())
			}
			wantPending(t, u.PendingEvents(), "user.registered.v1")
			wantEvent := domain.UserRegistered{UserID: domain.UserID(uuidA), Email: "ada@example.com", Name: "Ada", PasswordHash: "h0", Verified: tt.verified}
			if got := u.PendingEvents()[0]; got != wantEvent {
				t.Errorf("event = %+v, want %+v", got, wantEvent)
			}
			if err := u.Locked(t0); err != nil {
				t.Errorf("a new account is locked: %v", err)
			}
		})
	}
}

func TestUserVerification(t *testing.T) {
	expiry := t0.Add(domain.VerificationValidity)
	tests := []struct {
		name    string
		prepare func(u *domain.User) // on a pending user that has been sent token "v1" at t0
		hash    string
		at      time.Time
		wantErr error
	}{
		{"right hash at once", nil, "v1", t0, nil},
		{"right hash just before expiry", nil, "v1", expiry.Add(-time.Nanosecond), nil},
		{"right hash at exactly expiry", nil, "v1", expiry, domain.ErrExpired},
		{"right hash after expiry", nil, "v1", expiry.Add(time.Hour), domain.ErrExpired},
		{"wrong hash", nil, "v2", t0, domain.ErrExpired},
		{"empty hash", nil, "", t0, domain.ErrExpired},
		{"prefix of the hash", nil, "v", t0, domain.ErrExpired},
		{"reused", func(u *domain.User) {
			if err := u.Verify("v1", t0); err != nil {
				panic(err)
			}
		}, "v1", t0.Add(time.Minute), domain.ErrExpired},
		{"replaced by a resend: old hash", func(u *domain.User) {
			if err := u.IssueVerification("v2", t0.Add(time.Minute)); err != nil {
				panic(err)
			}
		}, "v1", t0.Add(2 * time.Minute), domain.ErrExpired},
		{"replaced by a resend: new hash, valid from the resend", func(u *domain.User) {
			if err := u.IssueVerification("v2", t0.Add(time.Hour)); err != nil {
				panic(err)
			}
		}, "v2", expiry.Add(time.Minute), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUser(t, false)
			if err := u.IssueVerification("v1", t0); err != nil {
				t.Fatalf("IssueVerification: %v", err)
			}
			if tt.prepare != nil {
				tt.prepare(u)
			}
			u = reload(t, u)
			status := u.Status()
			err := u.Verify(tt.hash, tt.at)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify(%q) = %v, want %v", tt.hash, err, tt.wantErr)
			}
			if tt.wantErr != nil {
				wantPending(t, u.PendingEvents())
				if u.Status() != status {
					t.Errorf("Status() = %q after a failed Verify, want %q", u.Status(), status)
				}
				return
			}
			wantPending(t, u.PendingEvents(), "user.verified.v1")
			if u.Status() != domain.UserActive {
				t.Errorf("Status() = %q, want active", u.Status())
			}
		})
	}
}

func TestIssueVerification(t *testing.T) {
	t.Run("records the hash and a 24 h validity", func(t *testing.T) {
		u := newUser(t, false)
		if err := u.IssueVerification("v1", t0); err != nil {
			t.Fatalf("IssueVerification: %v", err)
		}
		want := domain.UserVerificationIssued{TokenHash: "v1", ExpiresAt: t0.Add(24 * time.Hour)}
		wantPending(t, u.PendingEvents(), "user.verification_issued.v1")
		if got := u.PendingEvents()[0]; got != want {
			t.Errorf("event = %+v, want %+v", got, want)
		}
	})
	t.Run("never issued", func(t *testing.T) {
		u := newUser(t, false)
		for _, hash := range []string{"", "v1"} {
			if err := u.Verify(hash, t0); !errors.Is(err, domain.ErrExpired) {
				t.Errorf("Verify(%q) without a link = %v, want ErrExpired", hash, err)
			}
		}
		wantPending(t, u.PendingEvents())
	})
	for _, tt := range []struct {
		name string
		user func(t *testing.T) *domain.User
	}{
		{"registered verified", func(t *testing.T) *domain.User { return newUser(t, true) }},
		{"verified by its link", func(t *testing.T) *domain.User {
			u := newUser(t, false)
			if err := u.IssueVerification("v1", t0); err != nil {
				t.Fatal(err)
			}
			if err := u.Verify("v1", t0); err != nil {
				t.Fatal(err)
			}
			return reload(t, u)
		}},
	} {
		t.Run("conflict when "+tt.name, func(t *testing.T) {
			u := tt.user(t)
			if err := u.IssueVerification("v9", t0); !errors.Is(err, domain.ErrConflict) {
				t.Errorf("IssueVerification = %v, want ErrConflict", err)
			}
			if err := u.Verify("", t0); !errors.Is(err, domain.ErrExpired) {
				t.Errorf("Verify(\"\") = %v, want ErrExpired", err)
			}
			wantPending(t, u.PendingEvents())
		})
	}
}

// failAt runs FailLogin at each instant and returns the errors.
func failAt(u *domain.User, reason string, at ...time.Time) []error {
	errs := make([]error, len(at))
	for i, now := range at {
		errs[i] = u.FailLogin(reason, "203.0.113.7", "curl/8", now)
	}
	return errs
}

func TestUserLockout(t *testing.T) {
	mins := func(m float64) time.Time { return t0.Add(time.Duration(m * float64(time.Minute))) }
	tests := []struct {
		name     string
		failures []time.Time
		lockAt   int // index of the failure that locks; -1 = none
	}{
		{"five within a minute", []time.Time{mins(0), mins(0.1), mins(0.2), mins(0.3), mins(0.4)}, 4},
		{"five at the same instant", []time.Time{t0, t0, t0, t0, t0}, 4},
		{"five within 14m59s", []time.Time{mins(0), mins(1), mins(2), mins(3), t0.Add(14*time.Minute + 59*time.Second)}, 4},
		{"five in just under 15 minutes", []time.Time{t0, t0, t0, t0, t0.Add(15*time.Minute - time.Nanosecond)}, 4},
		{"the first exactly 15 minutes old does not count", []time.Time{t0, mins(1), mins(2), mins(3), mins(15)}, -1},
		{"spread over 16 minutes", []time.Time{mins(0), mins(4), mins(8), mins(12), mins(16)}, -1},
		{"spread, then the window fills", []time.Time{mins(0), mins(4), mins(8), mins(12), mins(16), mins(17)}, 5},
		{"four only", []time.Time{t0, t0, t0, t0}, -1},
		{"one every 3.7 minutes: five within 14.8 minutes", []time.Time{mins(0), mins(3.7), mins(7.4), mins(11.1), mins(14.8)}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUser(t, true)
			errs := failAt(u, "password", tt.failures...)
			for i, err := range errs {
				if i == tt.lockAt {
					var locked *domain.AccountLockedError
					if !errors.As(err, &locked) {
						t.Fatalf("failure %d = %v, want *AccountLockedError", i+1, err)
					}
					until := tt.failures[i].Add(15 * time.Minute)
					if !locked.Until.Equal(until) {
						t.Errorf("locked until %v, want %v (15 minutes after the last failure)", locked.Until, until)
					}
					continue
				}
				if !errors.Is(err, domain.ErrInvalidCredentials) {
					t.Errorf("failure %d = %v, want ErrInvalidCredentials", i+1, err)
				}
			}
			var types []string
			for i := range tt.failures {
				types = append(types, "user.login_failed.v1")
				if i == tt.lockAt {
					types = append(types, "user.locked.v1")
				}
			}
			wantPending(t, u.PendingEvents(), types...)
			last := tt.failures[len(tt.failures)-1]
			if tt.lockAt < 0 {
				if err := u.Locked(last); err != nil {
					t.Errorf("Locked = %v, want nil", err)
				}
				if !u.LockedUntil().IsZero() {
					t.Errorf("LockedUntil() = %v, want zero", u.LockedUntil())
				}
			}
		})
	}
}

func TestUserLockedWindow(t *testing.T) {
	u := newUser(t, true)
	lockAt := t0.Add(3 * time.Minute)
	errs := failAt(u, "password", t0, t0.Add(time.Minute), t0.Add(2*time.Minute), t0.Add(150*time.Second), lockAt)
	for i, err := range errs[:4] {
		if !errors.Is(err, domain.ErrInvalidCredentials) {
			t.Fatalf("failure %d = %v, want ErrInvalidCredentials", i+1, err)
		}
	}
	until := lockAt.Add(domain.LockoutDuration)
	var locked *domain.AccountLockedError
	if !errors.As(errs[4], &locked) || !locked.Until.Equal(until) {
		t.Fatalf("fifth failure = %v, want *AccountLockedError until %v", errs[4], until)
	}
	if got := u.PendingEvents()[len(u.PendingEvents())-1]; got != (domain.UserLocked{Until: until}) {
		t.Errorf("last event = %+v, want UserLocked until %v", got, until)
	}
	if !u.LockedUntil().Equal(until) {
		t.Errorf("LockedUntil() = %v, want %v", u.LockedUntil(), until)
	}
	// The lock survives a reload: it is in the log, not only in memory.
	u = reload(t, u)
	for _, tt := range []struct {
		name   string
		at     time.Time
		locked bool
	}{
		{"at the lock", lockAt, true},
		{"a minute later", lockAt.Add(time.Minute), true},
		{"just before the end", until.Add(-time.Nanosecond), true},
		{"at the end", until, false},
		{"after the end", until.Add(time.Hour), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := u.Locked(tt.at)
			if !tt.locked {
				if err != nil {
					t.Errorf("Locked(%v) = %v, want nil", tt.at, err)
				}
				return
			}
			var le *domain.AccountLockedError
			if !errors.As(err, &le) || !le.Until.Equal(until) {
				t.Errorf("Locked(%v) = %v, want *AccountLockedError until %v", tt.at, err, until)
			}
		})
	}
	t.Run("failures after the lock count from zero", func(t *testing.T) {
		u := reload(t, u)
		for i, err := range failAt(u, "password", until, until, until, until) {
			if !errors.Is(err, domain.ErrInvalidCredentials) {
				t.Errorf("failure %d after the lock = %v, want ErrInvalidCredentials", i+1, err)
			}
		}
		var again *domain.AccountLockedError
		if err := u.FailLogin("password", "", "", until); !errors.As(err, &again) {
			t.Errorf("fifth failure after the lock = %v, want locked again", err)
		}
	})
}

func TestUserLoginFailedEvent(t *testing.T) {
	u := newUser(t, true)
	_ = u.FailLogin("password", "198.51.100.1", "Mozilla/5.0", t0)
	want := domain.UserLoginFailed{At: t0, Reason: "password", IP: "198.51.100.1", UserAgent: "Mozilla/5.0"}
	if got := u.PendingEvents()[0]; got != want {
		t.Errorf("event = %+v, want %+v", got, want)
	}
}

func TestUserLockoutTOTP(t *testing.T) {
	u := newUser(t, true)
	errs := failAt(u, "totp", t0, t0, t0, t0)
	for i, err := range errs {
		if !errors.Is(err, domain.ErrInvalidTOTP) || errors.Is(err, domain.ErrInvalidCredentials) {
			t.Errorf("totp failure %d = %v, want ErrInvalidTOTP", i+1, err)
		}
	}
	var locked *domain.AccountLockedError
	if err := u.FailLogin("totp", "", "", t0); !errors.As(err, &locked) {
		t.Errorf("fifth totp failure = %v, want *AccountLockedError", err)
	}

	t.Run("password and totp failures count together", func(t *testing.T) {
		u := newUser(t, true)
		failAt(u, "password", t0, t0)
		failAt(u, "totp", t0, t0)
		if err := u.FailLogin("password", "", "", t0); !errors.As(err, &locked) {
			t.Errorf("fifth mixed failure = %v, want *AccountLockedError", err)
		}
	})
}

func TestUserSucceedLogin(t *testing.T) {
	t.Run("resets the failure count", func(t *testing.T) {
		u := newUser(t, true)
		failAt(u, "password", t0, t0, t0, t0)
		if err := u.SucceedLogin(domain.SessionID(uuidB), domain.TenantID(uuidC), 0, t0); err != nil {
			t.Fatalf("SucceedLogin: %v", err)
		}
		// The reset survives a reload.
		u = reload(t, u)
		for i, err := range failAt(u, "password", t0, t0, t0, t0) {
			if !errors.Is(err, domain.ErrInvalidCredentials) {
				t.Fatalf("failure %d after a success = %v, want ErrInvalidCredentials", i+1, err)
			}
		}
		var locked *domain.AccountLockedError
		if err := u.FailLogin("password", "", "", t0); !errors.As(err, &locked) {
			t.Errorf("fifth failure after a success = %v, want *AccountLockedError", err)
		}
	})
	t.Run("records session and tenant", func(t *testing.T) {
		u := newUser(t, true)
		if err := u.SucceedLogin(domain.SessionID(uuidB), "", 0, t0); err != nil {
			t.Fatalf("SucceedLogin: %v", err)
		}
		wantPending(t, u.PendingEvents(), "user.login_succeeded.v1")
		if got, want := u.PendingEvents()[0], (domain.UserLoginSucceeded{SessionID: domain.SessionID(uuidB), At: t0}); got != want {
			t.Errorf("event = %+v, want %+v", got, want)
		}
	})
	t.Run("unverified account", func(t *testing.T) {
		u := newUser(t, false)
		if err := u.SucceedLogin(domain.SessionID(uuidB), "", 0, t0); !errors.Is(err, domain.ErrEmailNotVerified) {
			t.Errorf("SucceedLogin = %v, want ErrEmailNotVerified", err)
		}
		wantPending(t, u.PendingEvents())
	})
}

func TestUserChangePassword(t *testing.T) {
	// h0 at registration, then h1…h4: the last five are h0…h4.
	build := func(t *testing.T) *domain.User {
		u := newUser(t, true)
		for i := 1; i <= 4; i++ {
			if err := u.ChangePassword(fmt.Sprintf("h%d", i), sameHash(fmt.Sprintf("h%d", i)), "change", t0.Add(time.Duration(i)*time.Hour)); err != nil {
				t.Fatalf("change to h%d: %v", i, err)
			}
		}
		return reload(t, u)
	}
	for _, reused := range []string{"h0", "h1", "h2", "h3", "h4"} {
		t.Run("refuses "+reused, func(t *testing.T) {
			u := build(t)
			before := stateOf(u)
			if err := u.ChangePassword(reused, sameHash(reused), "change", t0.Add(10*time.Hour)); !errors.Is(err, domain.ErrPasswordReused) {
				t.Fatalf("ChangePassword(%s) = %v, want ErrPasswordReused", reused, err)
			}
			wantPending(t, u.PendingEvents())
			if stateOf(u) != before {
				t.Errorf("state changed by a refused change: %+v, want %+v", stateOf(u), before)
			}
		})
	}
	t.Run("asks the matcher about the last five only", func(t *testing.T) {
		u := build(t)
		if err := u.ChangePassword("h5", sameHash("h5"), "change", t0.Add(10*time.Hour)); err != nil {
			t.Fatalf("change to h5: %v", err)
		}
		u = reload(t, u)
		var asked []string
		matcher := func(h string) bool { asked = append(asked, h); return false }
		if err := u.ChangePassword("h6", matcher, "change", t0.Add(11*time.Hour)); err != nil {
			t.Fatalf("change to h6: %v", err)
		}
		if want := []string{"h1", "h2", "h3", "h4", "h5"}; !reflect.DeepEqual(asked, want) {
			t.Errorf("matcher asked about %v, want %v", asked, want)
		}
	})
	t.Run("accepts the sixth-oldest", func(t *testing.T) {
		u := build(t)
		if err := u.ChangePassword("h5", sameHash("h5"), "change", t0.Add(10*time.Hour)); err != nil {
			t.Fatalf("change to h5: %v", err)
		}
		at := t0.Add(11 * time.Hour)
		if err := u.ChangePassword("h0", sameHash("h0"), "change", at); err != nil {
			t.Fatalf("change back to h0 (now sixth-oldest) = %v, want nil", err)
		}
		wantPending(t, u.PendingEvents(), "user.password_changed.v2", "user.password_changed.v2")
		if got, want := u.PendingEvents()[1], (domain.UserPasswordChanged{At: at, PasswordHash: "h0", Reason: "change"}); got != want {
			t.Errorf("event = %+v, want %+v", got, want)
		}
		if u.PasswordHash() != "h0" || !u.PasswordChangedAt().Equal(at) {
			t.Errorf("PasswordHash() = %q, PasswordChangedAt() = %v; want h0, %v", u.PasswordHash(), u.PasswordChangedAt(), at)
		}
		// The last five are now h2…h5 and h0: h1 has dropped out, h5 has not.
		if err := u.ChangePassword("h1", sameHash("h1"), "change", at); err != nil {
			t.Errorf("change to h1 (sixth-oldest after h0) = %v, want nil", err)
		}
		if err := u.ChangePassword("h5", sameHash("h5"), "change", at); !errors.Is(err, domain.ErrPasswordReused) {
			t.Errorf("change to h5 = %v, want ErrPasswordReused", err)
		}
	})
	t.Run("refuses the current password", func(t *testing.T) {
		u := newUser(t, true)
		if err := u.ChangePassword("h0", sameHash("h0"), "change", t0); !errors.Is(err, domain.ErrPasswordReused) {
			t.Errorf("ChangePassword(current) = %v, want ErrPasswordReused", err)
		}
	})
}

func TestUserResetPassword(t *testing.T) {
	expiry := t0.Add(domain.ResetValidity)
	tests := []struct {
		name    string
		prepare func(t *testing.T, u *domain.User) // on an active user sent reset token "r1" at t0
		token   string
		newHash string
		at      time.Time
		wantErr error
	}{
		{"right token", nil, "r1", "n1", t0.Add(time.Minute), nil},
		{"just before expiry", nil, "r1", "n1", expiry.Add(-time.Nanosecond), nil},
		{"at exactly expiry", nil, "r1", "n1", expiry, domain.ErrExpired},
		{"after expiry", nil, "r1", "n1", expiry.Add(time.Second), domain.ErrExpired},
		{"wrong token", nil, "r2", "n1", t0, domain.ErrExpired},
		{"empty token", nil, "", "n1", t0, domain.ErrExpired},
		{"reused token", func(t *testing.T, u *domain.User) {
			if err := u.ResetPassword("r1", "n1", sameHash("n1"), t0); err != nil {
				t.Fatal(err)
			}
		}, "r1", "n2", t0.Add(time.Minute), domain.ErrExpired},
		{"replaced token", func(t *testing.T, u *domain.User) { u.IssuePasswordReset("r2", t0.Add(time.Minute)) },
			"r1", "n1", t0.Add(2 * time.Minute), domain.ErrExpired},
		{"replacing token", func(t *testing.T, u *domain.User) { u.IssuePasswordReset("r2", t0.Add(30*time.Minute)) },
			"r2", "n1", expiry.Add(time.Minute), nil},
		{"voided by a password change", func(t *testing.T, u *domain.User) {
			if err := u.ChangePassword("n0", sameHash("n0"), "change", t0); err != nil {
				t.Fatal(err)
			}
		}, "r1", "n1", t0.Add(time.Minute), domain.ErrExpired},
		{"reused password", nil, "r1", "h0", t0, domain.ErrPasswordReused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUser(t, true)
			u.IssuePasswordReset("r1", t0)
			if tt.prepare != nil {
				tt.prepare(t, u)
			}
			u = reload(t, u)
			before := stateOf(u)
			err := u.ResetPassword(tt.token, tt.newHash, sameHash(tt.newHash), tt.at)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("ResetPassword = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				wantPending(t, u.PendingEvents())
				if stateOf(u) != before {
					t.Errorf("state changed by a failed reset: %+v, want %+v", stateOf(u), before)
				}
				return
			}
			wantPending(t, u.PendingEvents(), "user.password_changed.v2")
			want := domain.UserPasswordChanged{At: tt.at, PasswordHash: tt.newHash, Reason: "reset"}
			if got := u.PendingEvents()[0]; got != want {
				t.Errorf("event = %+v, want %+v", got, want)
			}
			if u.PasswordHash() != tt.newHash {
				t.Errorf("PasswordHash() = %q, want %q", u.PasswordHash(), tt.newHash)
			}
		})
	}

	t.Run("issue records a one-hour link", func(t *testing.T) {
		u := newUser(t, true)
		u.IssuePasswordReset("r1", t0)
		wantPending(t, u.PendingEvents(), "user.password_reset_issued.v1")
		if got, want := u.PendingEvents()[0], (domain.UserPasswordResetIssued{TokenHash: "r1", ExpiresAt: t0.Add(time.Hour)}); got != want {
			t.Errorf("event = %+v, want %+v", got, want)
		}
	})
	t.Run("reused password leaves the token valid", func(t *testing.T) {
		u := newUser(t, true)
		u.IssuePasswordReset("r1", t0)
		if err := u.ResetPassword("r1", "h0", sameHash("h0"), t0); !errors.Is(err, domain.ErrPasswordReused) {
			t.Fatalf("ResetPassword(h0) = %v, want ErrPasswordReused", err)
		}
		if err := u.ResetPassword("r1", "n1", sameHash("n1"), t0); err != nil {
			t.Errorf("ResetPassword(n1) after a refused one = %v, want nil", err)
		}
	})
	t.Run("no link issued", func(t *testing.T) {
		u := newUser(t, true)
		if err := u.ResetPassword("", "n1", sameHash("n1"), t0); !errors.Is(err, domain.ErrExpired) {
			t.Errorf("ResetPassword without a link = %v, want ErrExpired", err)
		}
	})
	t.Run("verifies a pending account", func(t *testing.T) {
		u := newUser(t, false)
		if err := u.IssueVerification("v1", t0); err != nil {
			t.Fatal(err)
		}
		u.IssuePasswordReset("r1", t0)
		u = reload(t, u)
		if err := u.ResetPassword("r1", "n1", sameHash("n1"), t0); err != nil {
			t.Fatalf("ResetPassword: %v", err)
		}
		wantPending(t, u.PendingEvents(), "user.password_changed.v2", "user.verified.v1")
		if u.Status() != domain.UserActive {
			t.Errorf("Status() = %q, want active", u.Status())
		}
		if err := u.Verify("v1", t0); !errors.Is(err, domain.ErrExpired) {
			t.Errorf("verification link after the reset verified the account = %v, want ErrExpired", err)
		}
		if err := u.IssueVerification("v2", t0); !errors.Is(err, domain.ErrConflict) {
			t.Errorf("IssueVerification after the reset = %v, want ErrConflict", err)
		}
		if err := u.SucceedLogin(domain.SessionID(uuidB), "", 0, t0); err != nil {
			t.Errorf("SucceedLogin after the reset = %v, want nil", err)
		}
	})
	t.Run("lifts a lockout", func(t *testing.T) {
		u := newUser(t, true)
		failAt(u, "password", t0, t0, t0, t0, t0)
		if u.Locked(t0) == nil {
			t.Fatal("setup: account not locked")
		}
		u.IssuePasswordReset("r1", t0)
		u = reload(t, u)
		at := t0.Add(time.Minute)
		if err := u.ResetPassword("r1", "n1", sameHash("n1"), at); err != nil {
			t.Fatalf("ResetPassword while locked: %v", err)
		}
		if err := u.Locked(at); err != nil {
			t.Errorf("Locked after the reset = %v, want nil", err)
		}
		if !u.LockedUntil().IsZero() {
			t.Errorf("LockedUntil() = %v, want zero", u.LockedUntil())
		}
		// The lift survives a reload, and failures count from zero.
		u = reload(t, u)
		if err := u.Locked(at); err != nil {
			t.Errorf("Locked after the reset and a reload = %v, want nil", err)
		}
		for i, err := range failAt(u, "password", at, at, at, at) {
			if !errors.Is(err, domain.ErrInvalidCredentials) {
				t.Errorf("failure %d after the reset = %v, want ErrInvalidCredentials", i+1, err)
			}
		}
	})
}

func TestUserGrantSuperAdmin(t *testing.T) {
	u := newUser(t, true)
	u.GrantSuperAdmin()
	u.GrantSuperAdmin()
	wantPending(t, u.PendingEvents(), "user.super_admin_granted.v1")
	if !u.SuperAdmin() {
		t.Error("SuperAdmin() = false after the grant")
	}
	u = reload(t, u)
	if !u.SuperAdmin() {
		t.Error("SuperAdmin() = false after a reload")
	}
	u.GrantSuperAdmin()
	wantPending(t, u.PendingEvents())
}

func TestRebuildUser(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, u *domain.User)
	}{
		{"registered", func(t *testing.T, u *domain.User) {}},
		{"verification pending", func(t *testing.T, u *domain.User) {
			if u.Status() == domain.UserPendingVerification {
				if err := u.IssueVerification("v1", t0); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"verified, failures, success, lock, reset pending, super admin", func(t *testing.T, u *domain.User) {
			if u.Status() == domain.UserPendingVerification {
				if err := u.IssueVerification("v1", t0); err != nil {
					t.Fatal(err)
				}
				if err := u.Verify("v1", t0); err != nil {
					t.Fatal(err)
				}
			}
			failAt(u, "password", t0, t0)
			if err := u.SucceedLogin(domain.SessionID(uuidB), domain.TenantID(uuidC), 0, t0); err != nil {
				t.Fatal(err)
			}
			failAt(u, "totp", t0, t0, t0, t0, t0)
			u.IssuePasswordReset("r1", t0)
			u.GrantSuperAdmin()
		}},
		{"password history and recent failures", func(t *testing.T, u *domain.User) {
			for i := 1; i <= 6; i++ {
				if err := u.ChangePassword(fmt.Sprintf("h%d", i), sameHash(fmt.Sprintf("h%d", i)), "change", t0.Add(time.Duration(i)*time.Minute)); err != nil {
					t.Fatal(err)
				}
			}
			failAt(u, "password", t0, t0, t0)
		}},
	}
	// probe exercises every decision and reports what each answered and what was recorded.
	probe := func(u *domain.User) []string {
		skip := len(u.PendingEvents())
		at := t0.Add(2 * time.Minute)
		var out []string
		note := func(what string, err error) { out = append(out, fmt.Sprintf("%s: %v", what, err)) }
		note("locked", u.Locked(at))
		note("verify", u.Verify("v1", at))
		for i := 0; i <= 6; i++ {
			h := fmt.Sprintf("h%d", i)
			note("change "+h, u.ChangePassword(h, sameHash(h), "change", at))
		}
		note("reset", u.ResetPassword("r1", "x", sameHash("x"), at))
		for i := 0; i < 5; i++ {
			note("fail", u.FailLogin("password", "", "", at))
		}
		note("login", u.SucceedLogin(domain.SessionID(uuidB), "", 0, t0))
		u.GrantSuperAdmin()
		return append(out, typesOf(u.PendingEvents()[skip:])...)
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, verified := range []bool{false, true} {
				decided := domain.RegisterUser(domain.UserID(uuidA), "ada@example.com", "Ada", "h0", verified)
				sc.run(t, decided)
				history := decided.PendingEvents()
				version := int64(len(history))
				for name, events := range map[string][]domain.Event{"in memory": history, "via JSON": viaJSON(t, history)} {
					rebuilt, err := domain.RebuildUser(events, version)
					if err != nil {
						t.Fatalf("%s: RebuildUser: %v", name, err)
					}
					if got, want := stateOf(rebuilt), stateOf(decided); got != want {
						t.Errorf("%s, verified=%v: rebuilt state = %+v, want %+v", name, verified, got, want)
					}
					if rebuilt.Version() != version || len(rebuilt.PendingEvents()) != 0 {
						t.Errorf("%s: Version() = %d, %d pending; want %d, none", name, rebuilt.Version(), len(rebuilt.PendingEvents()), version)
					}
					// Same answers to every decision: the rebuilt aggregate is the decided one.
					again := domain.RegisterUser(domain.UserID(uuidA), "ada@example.com", "Ada", "h0", verified)
					sc.run(t, again)
					want := probe(again)
					if got := probe(rebuilt); !reflect.DeepEqual(got, want) {
						t.Errorf("%s, verified=%v: rebuilt aggregate decides\n%v\nwant\n%v", name, verified, got, want)
					}
				}
			}
		})
	}
	t.Run("empty history", func(t *testing.T) {
		for _, history := range [][]domain.Event{nil, {}} {
			u, err := domain.RebuildUser(history, 0)
			if !errors.Is(err, domain.ErrNotFound) || u != nil {
				t.Errorf("RebuildUser(%v) = %v, %v; want nil, ErrNotFound", history, u, err)
			}
		}
	})
}

func TestUserVersionAndPending(t *testing.T) {
	history := domain.RegisterUser(domain.UserID(uuidA), "ada@example.com", "Ada", "h0", false).PendingEvents()
	u, err := domain.RebuildUser(history, 7)
	if err != nil {
		t.Fatal(err)
	}
	if u.Version() != 7 || len(u.PendingEvents()) != 0 {
		t.Fatalf("loaded: Version() = %d, pending %v; want 7, none", u.Version(), u.PendingEvents())
	}
	// A refused decision records nothing.
	if err := u.SucceedLogin(domain.SessionID(uuidB), "", 0, t0); err == nil {
		t.Fatal("SucceedLogin on a pending account succeeded")
	}
	wantPending(t, u.PendingEvents())
	// Decisions append in order; the version stays the one loaded (the append's expected version).
	if err := u.IssueVerification("v1", t0); err != nil {
		t.Fatal(err)
	}
	if err := u.Verify("v1", t0); err != nil {
		t.Fatal(err)
	}
	u.GrantSuperAdmin()
	wantPending(t, u.PendingEvents(), "user.verification_issued.v1", "user.verified.v1", "user.super_admin_granted.v1")
	if u.Version() != 7 {
		t.Errorf("Version() = %d after decisions, want 7", u.Version())
	}
}

func TestAccountLockedErrorMessage(t *testing.T) {
	until := time.Date(2025, time.March, 1, 13, 15, 0, 0, time.FixedZone("CET", 3600))
	err := &domain.AccountLockedError{Until: until}
	if got, want := err.Error(), "account locked until 2025-03-01T12:15:00Z"; got != want {
		t.Errorf("Error() = %q, want %q (RFC 3339 UTC)", got, want)
	}
}

func TestClaimForBootstrapTakesOverOnlyUnverifiedAccounts(t *testing.T) {
	pending := domain.RegisterUser(domain.UserID(uuidA), "ada@example.com", "Ada", "registrant-hash", false)
	pending.ClaimForBootstrap("operator-hash", t0)
	if pending.Status() != domain.UserActive || pending.PasswordHash() != "operator-hash" {
		t.Fatalf("unverified account after bootstrap: status %s, hash %q; want active with the operator's password", pending.Status(), pending.PasswordHash())
	}
	verified := domain.RegisterUser(domain.UserID(uuidA), "ada@example.com", "Ada", "owner-hash", true)
	verified.ClaimForBootstrap("operator-hash", t0)
	if verified.PasswordHash() != "owner-hash" || len(verified.PendingEvents()) != 1 {
		t.Fatalf("a verified account was taken over: hash %q, %d events", verified.PasswordHash(), len(verified.PendingEvents()))
	}
}

func TestUserLoginsSinceThePasswordChange(t *testing.T) {
	u := newUser(t, true)
	first, second, third := domain.SessionID(uuidA), domain.SessionID(uuidB), domain.SessionID(uuidC)
	for _, s := range []domain.SessionID{first, second} {
		if err := u.SucceedLogin(s, domain.TenantID(uuidC), 0, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.ChangePassword("h1", sameHash("h1"), "change", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := u.SucceedLogin(third, "", 0, t0); err != nil {
		t.Fatal(err)
	}
	want := []domain.UserLoginSucceeded{{SessionID: third, At: t0}}
	if got := reload(t, u).Logins(); !reflect.DeepEqual(got, want) {
		t.Errorf("Logins = %+v, want only the one after the change %+v", got, want)
	}
}

func TestUserChangesOfCredentialsNeedARecentAuthentication(t *testing.T) {
	u := newUser(t, true)
	session, other := domain.SessionID(uuidB), domain.SessionID(uuidC)
	if err := u.SucceedLogin(session, "", 0, t0); err != nil {
		t.Fatal(err)
	}
	u = reload(t, u)
	for _, tt := range []struct {
		name    string
		session domain.SessionID
		at      time.Time
		want    error
	}{
		{"just logged in", session, t0, nil},
		{"at the end of the window", session, t0.Add(domain.ReauthWindow), nil},
		{"after the window", session, t0.Add(domain.ReauthWindow + time.Second), domain.ErrReauthenticationRequired},
		{"a session of someone else", other, t0, domain.ErrReauthenticationRequired},
		{"an API key", "", t0, domain.ErrAPIKeyNotAllowed},
	} {
		if err := u.ConfirmRecentAuthentication(tt.session, tt.at); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if err := u.ConfirmRecentAuthentication("", t0); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("an API key: %v, want a kind of ErrForbidden", err)
	}

	later := t0.Add(time.Hour)
	if err := u.Reauthenticate(other, 0, later); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Errorf("reauthenticating a session of someone else: %v, want ErrUnauthenticated", err)
	}
	if err := u.Reauthenticate(session, 7, later); err != nil {
		t.Fatal(err)
	}
	u = reload(t, u)
	if err := u.ConfirmRecentAuthentication(session, later.Add(time.Minute)); err != nil {
		t.Errorf("after a reauthentication: %v", err)
	}
	if err := u.CheckTOTPStep(7); !errors.Is(err, domain.ErrInvalidTOTP) {
		t.Errorf("the reauthentication's code works again: %v", err)
	}
}

func TestUserPasswordChangeRevokesEveryAPIKey(t *testing.T) {
	for _, reason := range []string{"change", "reset"} {
		u := newUser(t, true)
		for _, id := range []string{uuidB, uuidC} {
			if err := u.CreateAPIKey(domain.UserAPIKeyCreated{KeyID: domain.APIKeyID(id), Name: "k", Hash: "h", CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
		}
		u = reload(t, u)
		if reason == "reset" {
			u.IssuePasswordReset("token", t0)
			if err := u.ResetPassword("token", "h1", sameHash("none"), t0); err != nil {
				t.Fatal(err)
			}
		} else if err := u.ChangePassword("h1", sameHash("none"), reason, t0); err != nil {
			t.Fatal(err)
		}
		wantPending(t, u.PendingEvents()[len(u.PendingEvents())-2:], "user.api_key_revoked.v1", "user.api_key_revoked.v1")
		if err := reload(t, u).RevokeAPIKey(domain.APIKeyID(uuidB)); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%s: the key survived: %v", reason, err)
		}
	}
}
