package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// Attempts during a lock are recorded and answered with the lock as it is: they neither extend it
// nor count towards the next one, so whoever keeps guessing cannot stretch a lock.
func TestFailuresDuringALockNeitherExtendNorCount(t *testing.T) {
	u := newUser(t, true)
	errs := failAt(u, "password", t0, t0, t0, t0, t0)
	var started *domain.AccountLockedError
	if !errors.As(errs[4], &started) || !started.Started {
		t.Fatalf("fifth failure = %#v, want a started lock", errs[4])
	}
	until := t0.Add(domain.LockoutDuration)
	during := []time.Time{t0.Add(time.Minute), t0.Add(5 * time.Minute), t0.Add(10 * time.Minute), t0.Add(14 * time.Minute), until.Add(-time.Second)}
	for i, err := range failAt(u, "password", during...) {
		var locked *domain.AccountLockedError
		if !errors.As(err, &locked) || !locked.Until.Equal(until) || locked.Started {
			t.Errorf("failure %d during the lock = %#v, want the lock until %v, not a new one", i+1, err, until)
		}
	}
	u = reload(t, u)
	if !u.LockedUntil().Equal(until) {
		t.Errorf("LockedUntil() = %v after failures during the lock, want %v", u.LockedUntil(), until)
	}
	if err := u.FailLogin("password", "", "", until); !errors.Is(err, domain.ErrInvalidCredentials) {
		t.Errorf("first failure after the lock = %v, want ErrInvalidCredentials: those during it do not count", err)
	}
}

// An address without an account locks like an account: the same answers at the same attempts.
func TestAddressLocksLikeAnAccount(t *testing.T) {
	u := newUser(t, true)
	a, err := domain.RebuildAddress(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := []time.Time{t0, t0, t0, t0, t0, t0.Add(time.Minute), t0.Add(domain.LockoutDuration)}
	for i, now := range at {
		userErr := u.FailLogin("password", "203.0.113.7", "curl/8", now)
		addressErr := a.FailLogin("password", "203.0.113.7", "curl/8", now)
		var userLock, addressLock *domain.AccountLockedError
		if errors.As(userErr, &userLock) != errors.As(addressErr, &addressLock) ||
			(userLock != nil && *userLock != *addressLock) || (userLock == nil && !errors.Is(addressErr, domain.ErrInvalidCredentials)) {
			t.Errorf("attempt %d: account %#v, address %#v", i+1, userErr, addressErr)
		}
		if len(u.PendingEvents()) != len(a.PendingEvents()) {
			t.Errorf("attempt %d: the account recorded %d events, the address %d", i+1, len(u.PendingEvents()), len(a.PendingEvents()))
		}
	}
	again, err := domain.RebuildAddress(a.PendingEvents(), int64(len(a.PendingEvents())))
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Locked(t0.Add(time.Minute)); err == nil {
		t.Error("the address's lock did not survive a reload")
	}
	if domain.AddressStream("a@example.com") == domain.AddressStream("b@example.com") {
		t.Error("two addresses share a stream")
	}
}

// One unlock link per lock, and none while an earlier one is unused and valid; the link lifts the
// lock once.
func TestUnlockLink(t *testing.T) {
	u := newUser(t, true)
	if err := u.IssueUnlock("h1", t0); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("IssueUnlock of an account not locked = %v, want ErrConflict", err)
	}
	failAt(u, "password", t0, t0, t0, t0, t0)
	if err := u.IssueUnlock("h1", t0); err != nil {
		t.Fatalf("IssueUnlock of a locked account: %v", err)
	}
	if err := u.IssueUnlock("h2", t0.Add(time.Minute)); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("a second unlock link for the same lock = %v, want ErrConflict", err)
	}
	u = reload(t, u)
	if err := u.Unlock("h2", t0.Add(time.Minute)); !errors.Is(err, domain.ErrExpired) {
		t.Errorf("Unlock with a wrong token = %v, want ErrExpired", err)
	}
	if err := u.Unlock("h1", t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if err := u.Locked(t0.Add(2 * time.Minute)); err != nil {
		t.Errorf("Locked after the unlock link = %v, want nil", err)
	}
	u = reload(t, u)
	if err := u.Unlock("h1", t0.Add(3*time.Minute)); !errors.Is(err, domain.ErrExpired) {
		t.Errorf("a used unlock link = %v, want ErrExpired", err)
	}
	// A new lock after the link was used gets a link of its own.
	failAt(u, "password", t0.Add(4*time.Minute), t0.Add(4*time.Minute), t0.Add(4*time.Minute), t0.Add(4*time.Minute), t0.Add(4*time.Minute))
	if err := u.IssueUnlock("h3", t0.Add(4*time.Minute)); err != nil {
		t.Errorf("IssueUnlock for a new lock: %v", err)
	}
}

// The password and a two-factor code lift a lock; outside a lock they record nothing.
func TestUnlockWithSecondFactor(t *testing.T) {
	u := newUser(t, true)
	u.UnlockWithSecondFactor(t0)
	if n := len(u.PendingEvents()); n != 0 {
		t.Errorf("UnlockWithSecondFactor without a lock recorded %d events", n)
	}
	failAt(u, "password", t0, t0, t0, t0, t0)
	u.UnlockWithSecondFactor(t0.Add(time.Minute))
	if got := u.PendingEvents()[len(u.PendingEvents())-1]; got != (domain.UserUnlocked{At: t0.Add(time.Minute), How: "totp"}) {
		t.Errorf("last event = %+v, want user.unlocked.v1 how totp", got)
	}
	if err := reload(t, u).Locked(t0.Add(time.Minute)); err != nil {
		t.Errorf("Locked after the unlock = %v", err)
	}
}
