package projections_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

func TestUsersFollowRegistrationVerificationLoginsLockoutsAndPasswords(t *testing.T) {
	f := newIdentityFixture(t)
	users := projections.NewUsers(production)
	r := f.start(t, users)
	alice, bob := domain.UserID(newID()), domain.UserID(newID())

	f.appendAt(t, t0, alice.Stream(),
		domain.UserRegistered{UserID: alice, Email: "alice@example.com", Name: "Alice Émile", PasswordHash: "h1"},
		domain.UserVerificationIssued{TokenHash: "t", ExpiresAt: t0.Add(domain.VerificationValidity)})
	last := f.appendAt(t, t0.Add(time.Minute), bob.Stream(),
		domain.UserRegistered{UserID: bob, Email: "bob@example.com", Name: "Bob", PasswordHash: "h", Verified: true})
	wait(t, r, last.LastPosition, "users")
	assertRow(t, f.db, "users", "user_id", string(alice), row{
		"user_id": string(alice), "email": "alice@example.com", "name": "Alice Émile", "status": "pending_verification",
		"super_admin": "0", "totp_enabled": "0", "created_at": ts(t0), "verified_at": "NULL", "last_login_at": "NULL",
		"password_changed_at": "NULL", "locked_until": "NULL", "version": "1", // verification_issued is not applied
	})
	assertRow(t, f.db, "users", "user_id", string(bob), row{
		"user_id": string(bob), "email": "bob@example.com", "name": "Bob", "status": "active",
		"super_admin": "0", "totp_enabled": "0", "created_at": ts(t0.Add(time.Minute)), "verified_at": ts(t0.Add(time.Minute)), "last_login_at": "NULL",
		"password_changed_at": "NULL", "locked_until": "NULL", "version": "1",
	})

	f.appendAt(t, t0.Add(2*time.Minute), alice.Stream(), domain.UserVerified{})
	f.appendAt(t, t0.Add(3*time.Minute), alice.Stream(), domain.UserLoginSucceeded{SessionID: domain.SessionID(newID())})
	failures := []domain.Event{}
	for range domain.MaxLoginFailures {
		failures = append(failures, domain.UserLoginFailed{At: t0.Add(4 * time.Minute), Reason: "password"})
	}
	lockedUntil := t0.Add(4*time.Minute + domain.LockoutDuration)
	last = f.appendAt(t, t0.Add(4*time.Minute), alice.Stream(), append(failures, domain.UserLocked{Until: lockedUntil})...)
	wait(t, r, last.LastPosition, "users")
	assertRow(t, f.db, "users", "user_id", string(alice), row{
		"user_id": string(alice), "email": "alice@example.com", "name": "Alice Émile", "status": "active",
		"super_admin": "0", "totp_enabled": "0", "created_at": ts(t0), "verified_at": ts(t0.Add(2 * time.Minute)),
		"last_login_at": ts(t0.Add(3 * time.Minute)), "password_changed_at": "NULL", "locked_until": ts(lockedUntil),
		"version": "10",
	})

	// The reset's own time (with nanoseconds the column cannot hold) is the change's time, and it
	// lifts the lockout.
	resetAt := t0.Add(5*time.Minute - 1234567*time.Nanosecond)
	f.appendAt(t, t0.Add(5*time.Minute), alice.Stream(),
		domain.UserPasswordResetIssued{TokenHash: "r", ExpiresAt: t0.Add(time.Hour)},
		domain.UserPasswordChanged{At: resetAt, PasswordHash: "h2", Reason: "reset"})
	last = f.appendAt(t, t0.Add(6*time.Minute), bob.Stream(),
		domain.UserSuperAdminGranted{}, domain.UserLoginSucceeded{SessionID: domain.SessionID(newID())})
	wait(t, r, last.LastPosition, "users")
	assertRow(t, f.db, "users", "user_id", string(alice), row{
		"user_id": string(alice), "email": "alice@example.com", "name": "Alice Émile", "status": "active",
		"super_admin": "0", "totp_enabled": "0", "created_at": ts(t0), "verified_at": ts(t0.Add(2 * time.Minute)),
		"last_login_at": ts(t0.Add(3 * time.Minute)), "password_changed_at": "2026-03-01 09:04:59.998765",
		"locked_until": "NULL", "version": "12",
	})
	assertRow(t, f.db, "users", "user_id", string(bob), row{
		"user_id": string(bob), "email": "bob@example.com", "name": "Bob", "status": "active",
		"super_admin": "1", "totp_enabled": "0", "created_at": ts(t0.Add(time.Minute)), "verified_at": ts(t0.Add(time.Minute)),
		"last_login_at": ts(t0.Add(6 * time.Minute)), "password_changed_at": "NULL", "locked_until": "NULL", "version": "3",
	})

	t.Run("two-factor authentication on and off", func(t *testing.T) {
		last := f.appendAt(t, t0.Add(7*time.Minute), bob.Stream(), domain.UserTOTPSetupStarted{}, domain.UserTOTPEnabled{RecoveryCodeHashes: []string{"x"}, TOTPStep: 9})
		wait(t, r, last.LastPosition, "users")
		if got, _ := query(t, f.db, "SELECT totp_enabled FROM users WHERE user_id = ?", string(bob)); got[0]["totp_enabled"] != "1" {
			t.Fatalf("totp_enabled after enabling = %v, want 1", got)
		}
		last = f.appendAt(t, t0.Add(8*time.Minute), bob.Stream(), domain.UserTOTPDisabled{})
		wait(t, r, last.LastPosition, "users")
		if got, _ := query(t, f.db, "SELECT totp_enabled FROM users WHERE user_id = ?", string(bob)); got[0]["totp_enabled"] != "0" {
			t.Fatalf("totp_enabled after disabling = %v, want 0", got)
		}
	})

	t.Run("rebuild and redelivery change nothing", func(t *testing.T) {
		checkReplay(t, f, r, users, map[string]string{"users": "user_id"})
	})

	t.Run("a second account for an email fails instead of vanishing", func(t *testing.T) {
		carol := domain.UserID(newID())
		payload, _ := json.Marshal(domain.UserRegistered{UserID: carol, Email: "alice@example.com", Name: "Carol"})
		env := eventstore.Envelope{Position: 1000, StreamID: carol.Stream(), StreamType: "user", StreamVersion: 1,
			EventType: domain.UserRegistered{}.EventType(), Payload: payload, RecordedAt: t0}
		tx, err := f.db.BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		err = users.Apply(context.Background(), tx, projections.Tables{"users": "users"}, []eventstore.Envelope{env})
		if err == nil || !strings.Contains(err.Error(), "Duplicate") {
			t.Fatalf("Apply of a second registration of an email = %v, want a duplicate key error", err)
		}
	})
}
