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
