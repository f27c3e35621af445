package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// lockout is the login lockout of an account, or of an address without one (Address): both lock
// alike, so that a lock tells nobody whether the address has an account.
type lockout struct {
	failures []time.Time // failed logins outside a lock; the last LockoutWindow's count
	until    time.Time
}

// failed counts a failure at at, unless a lock was on then: attempts during a lock are answered
// like the lock and recorded, but do not count towards the next one, so an attacker who keeps
// trying cannot stretch a lock past its LockoutDuration.
func (l *lockout) failed(at time.Time) {
	if !at.Before(l.until) {
		l.failures = append(l.failures, at)
	}
}

func (l *lockout) lock(until time.Time) { l.until, l.failures = until, nil }

func (l *lockout) lift() { l.until, l.failures = time.Time{}, nil }

// check returns an *AccountLockedError while the lock is on.
func (l *lockout) check(now time.Time) error {
	if now.Before(l.until) {
		return &AccountLockedError{Until: l.until}
	}
	return nil
}

// locksNow reports whether the failures counted so far (the latest included) are
// MaxLoginFailures within LockoutWindow.
func (l *lockout) locksNow(now time.Time) bool {
	recent := 0
	for _, at := range l.failures {
		if now.Sub(at) < LockoutWindow {
			recent++
		}
	}
	return recent >= MaxLoginFailures
}

// failLogin is the decision of a failed login shared by User and Address: record is the
// aggregate's own recording of its failure event (applied, so it counts) and lock that of its
// lock. During a lock the answer is the lock, unchanged; the MaxLoginFailures-th failure within
// LockoutWindow starts one (an *AccountLockedError with Started). Otherwise the answer is
// ErrInvalidCredentials, or ErrInvalidTOTP for reason "totp".
func (l *lockout) failLogin(reason string, now time.Time, record func(), lock func(until time.Time)) error {
	if err := l.check(now); err != nil {
		record()
		return err
	}
	record()
	if l.locksNow(now) {
		until := now.Add(LockoutDuration)
		lock(until)
		return &AccountLockedError{Until: until, Started: true}
	}
	if reason == "totp" {
		return ErrInvalidTOTP
	}
	return ErrInvalidCredentials
}

// Address events, in the stream of an email address that has no account (AddressStream). Only
// their shape matters: they make a failed login for an unknown address the same work as one for
// an account, and lock the same way.
type (
	AddressLoginFailed struct {
		At        time.Time `json:"at"`
		Reason    string    `json:"reason"`
		IP        string    `json:"ip"`
		UserAgent string    `json:"user_agent"`
	}
	AddressLocked struct {
		Until time.Time `json:"until"`
	}
)

func (AddressLoginFailed) EventType() string { return "address.login_failed.v1" }
func (AddressLocked) EventType() string      { return "address.locked.v1" }

// AddressStream is the stream of the failed logins of a normalised address that has no account.
// It is named by the address's SHA-256, so the log does not list the addresses people tried.
func AddressStream(normalizedEmail string) string {
	sum := sha256.Sum256([]byte(normalizedEmail))
	return "address-" + hex.EncodeToString(sum[:])
}

// Address is the login lockout of an email address without an account. Logins for such an
// address fail like wrong passwords for an account: each is recorded, and the fifth within
// LockoutWindow locks the address, answered 423 like a locked account.
type Address struct {
	aggregate
	lockout
}

// RebuildAddress replays an address's history; an empty one is an address nobody tried yet.
func RebuildAddress(history []Event, version int64) (*Address, error) {
	a := &Address{}
	a.replay(a, history, version)
	return a, nil
}

func (a *Address) apply(e Event) {
	switch e := e.(type) {
	case AddressLoginFailed:
		a.failed(e.At)
	case AddressLocked:
		a.lock(e.Until)
	}
}

// Locked returns an *AccountLockedError while the address is locked.
func (a *Address) Locked(now time.Time) error { return a.check(now) }

// FailLogin records a failed login for the address, as User.FailLogin does for an account.
func (a *Address) FailLogin(reason, ip, userAgent string, now time.Time) error {
	return a.failLogin(reason, now,
		func() { a.record(a, AddressLoginFailed{At: now, Reason: reason, IP: ip, UserAgent: userAgent}) },
		func(until time.Time) { a.record(a, AddressLocked{Until: until}) })
}
