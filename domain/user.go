package domain

import (
	"crypto/subtle"
	"fmt"
	"time"
)

// UserStatus is where an account stands.
type UserStatus string

const (
	UserPendingVerification UserStatus = "pending_verification"
	UserActive              UserStatus = "active"
)

// Login lockout: MaxLoginFailures failures within LockoutWindow lock the account for
// LockoutDuration.
const (
	MaxLoginFailures = 5
	LockoutWindow    = 15 * time.Minute
	LockoutDuration  = 15 * time.Minute
	// PasswordHistory is how many recent passwords a new one may not repeat.
	PasswordHistory = 5
	// VerificationValidity and ResetValidity bound the one-time links sent by email.
	VerificationValidity = 24 * time.Hour
	ResetValidity        = time.Hour
)

// User events, in the user's stream. Password hashes are bcrypt hashes and token hashes are
// SHA-256 digests: no secret enters the log.
type (
	UserRegistered struct {
		UserID       UserID `json:"user_id"`
		Email        string `json:"email"`
		Name         string `json:"name"`
		PasswordHash string `json:"password_hash"`
		// Verified is true for accounts whose email is known good: created from an invitation
		// link or by the bootstrap.
		Verified bool `json:"verified"`
	}
	UserVerificationIssued struct {
		TokenHash string    `json:"token_hash"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	UserVerified       struct{}
	UserLoginSucceeded struct {
		SessionID SessionID `json:"session_id"`
		TenantID  TenantID  `json:"tenant_id,omitempty"`
	}
	UserLoginFailed struct {
		At        time.Time `json:"at"`
		Reason    string    `json:"reason"` // "password", "totp"
		IP        string    `json:"ip"`
		UserAgent string    `json:"user_agent"`
	}
	UserLocked struct {
		Until time.Time `json:"until"`
	}
	UserPasswordChanged struct {
		At           time.Time `json:"at"`
		PasswordHash string    `json:"password_hash"`
		Reason       string    `json:"reason"` // "change", "reset"
	}
	UserPasswordResetIssued struct {
		TokenHash string    `json:"token_hash"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	UserSuperAdminGranted struct{}
)

func (UserRegistered) EventType() string          { return "user.registered.v1" }
func (UserVerificationIssued) EventType() string  { return "user.verification_issued.v1" }
func (UserVerified) EventType() string            { return "user.verified.v1" }
func (UserLoginSucceeded) EventType() string      { return "user.login_succeeded.v1" }
func (UserLoginFailed) EventType() string         { return "user.login_failed.v1" }
func (UserLocked) EventType() string              { return "user.locked.v1" }
func (UserPasswordChanged) EventType() string     { return "user.password_changed.v1" }
func (UserPasswordResetIssued) EventType() string { return "user.password_reset_issued.v1" }
func (UserSuperAdminGranted) EventType() string   { return "user.super_admin_granted.v1" }

// oneTimeToken is a link sent by email: its hash, validity, and whether it was used.
type oneTimeToken struct {
	hash      string
	expiresAt time.Time
	used      bool
}

func (t *oneTimeToken) redeem(hash string, now time.Time) error {
	if t.hash == "" || t.used || !now.Before(t.expiresAt) || subtle.ConstantTimeCompare([]byte(t.hash), []byte(hash)) != 1 {
		return ErrExpired
	}
	return nil
}

// User is an account: identity, credentials and their protection.
type User struct {
	aggregate
	id              UserID
	email, name     string
	status          UserStatus
	passwordHashes  []string // newest last, at most PasswordHistory
	verification    oneTimeToken
	reset           oneTimeToken
	recentFailures  []time.Time
	lockedUntil     time.Time
	superAdmin      bool
	passwordChanged time.Time // sessions started before it are void
}

// RegisterUser records a new account. The caller has validated and normalized email and name,
// checked the password's strength and hashed it.
func RegisterUser(id UserID, email, name, passwordHash string, verified bool) *User {
	u := &User{}
	u.record(u, UserRegistered{UserID: id, Email: email, Name: name, PasswordHash: passwordHash, Verified: verified})
	return u
}

// RebuildUser replays a user's history. Returns ErrNotFound for an empty history.
func RebuildUser(history []Event, version int64) (*User, error) {
	if len(history) == 0 {
		return nil, fmt.Errorf("user: %w", ErrNotFound)
	}
	u := &User{}
	u.replay(u, history, version)
	return u, nil
}

func (u *User) apply(e Event) {
	switch e := e.(type) {
	case UserRegistered:
		u.id, u.email, u.name = e.UserID, e.Email, e.Name
		u.passwordHashes = []string{e.PasswordHash}
		u.status = UserPendingVerification
		if e.Verified {
			u.status = UserActive
		}
	case UserVerificationIssued:
		u.verification = oneTimeToken{hash: e.TokenHash, expiresAt: e.ExpiresAt}
	case UserVerified:
		u.status = UserActive
		u.verification.used = true
	case UserLoginSucceeded:
		u.recentFailures = nil
	case UserLoginFailed:
		u.recentFailures = append(u.recentFailures, e.At)
	case UserLocked:
		u.lockedUntil, u.recentFailures = e.Until, nil
	case UserPasswordChanged:
		u.passwordHashes = append(u.passwordHashes, e.PasswordHash)
		if len(u.passwordHashes) > PasswordHistory {
			u.passwordHashes = u.passwordHashes[len(u.passwordHashes)-PasswordHistory:]
		}
		u.reset.used = true
		u.lockedUntil, u.recentFailures = time.Time{}, nil
		u.passwordChanged = e.At
	case UserPasswordResetIssued:
		u.reset = oneTimeToken{hash: e.TokenHash, expiresAt: e.ExpiresAt}
	case UserSuperAdminGranted:
		u.superAdmin = true
	}
}

func (u *User) ID() UserID                   { return u.id }
func (u *User) Email() string                { return u.email }
func (u *User) Name() string                 { return u.name }
func (u *User) Status() UserStatus           { return u.status }
func (u *User) SuperAdmin() bool             { return u.superAdmin }
func (u *User) PasswordHash() string         { return u.passwordHashes[len(u.passwordHashes)-1] }
func (u *User) LockedUntil() time.Time       { return u.lockedUntil }
func (u *User) PasswordChangedAt() time.Time { return u.passwordChanged }

// IssueVerification records a new verification link (a resend replaces the previous one).
// Returns ErrConflict if the account is verified already.
func (u *User) IssueVerification(tokenHash string, now time.Time) error {
	if u.status != UserPendingVerification {
		return fmt.Errorf("user %s is verified already: %w", u.id, ErrConflict)
	}
	u.record(u, UserVerificationIssued{TokenHash: tokenHash, ExpiresAt: now.Add(VerificationValidity)})
	return nil
}

// Verify redeems a verification link. Returns ErrExpired if the token is wrong, used or past its
// validity.
func (u *User) Verify(tokenHash string, now time.Time) error {
	if err := u.verification.redeem(tokenHash, now); err != nil {
		return err
	}
	u.record(u, UserVerified{})
	return nil
}

// Locked returns an *AccountLockedError while the account is locked.
func (u *User) Locked(now time.Time) error {
	if now.Before(u.lockedUntil) {
		return &AccountLockedError{Until: u.lockedUntil}
	}
	return nil
}

// FailLogin records a failed login (wrong password or second factor) and locks the account when
// it is the MaxLoginFailures-th within LockoutWindow. Returns the error the caller answers with:
// ErrInvalidCredentials (or ErrInvalidTOTP), or an *AccountLockedError once locked.
func (u *User) FailLogin(reason, ip, userAgent string, now time.Time) error {
	u.record(u, UserLoginFailed{At: now, Reason: reason, IP: ip, UserAgent: userAgent})
	recent := 0
	for _, at := range u.recentFailures {
		if now.Sub(at) < LockoutWindow {
			recent++
		}
	}
	if recent >= MaxLoginFailures {
		until := now.Add(LockoutDuration)
		u.record(u, UserLocked{Until: until})
		return &AccountLockedError{Until: until}
	}
	if reason == "totp" {
		return ErrInvalidTOTP
	}
	return ErrInvalidCredentials
}

// SucceedLogin records a login that passed every check, for the given session and tenant.
// Returns ErrEmailNotVerified for an unverified account.
func (u *User) SucceedLogin(session SessionID, tenant TenantID) error {
	if u.status != UserActive {
		return ErrEmailNotVerified
	}
	u.record(u, UserLoginSucceeded{SessionID: session, TenantID: tenant})
	return nil
}

// IssuePasswordReset records a new password reset link.
func (u *User) IssuePasswordReset(tokenHash string, now time.Time) {
	u.record(u, UserPasswordResetIssued{TokenHash: tokenHash, ExpiresAt: now.Add(ResetValidity)})
}

// ChangePassword sets a new password hash. matches tells whether the new password matches a
// stored hash; it is asked about each of the last PasswordHistory hashes and a match is
// ErrPasswordReused. reason is "change" or "reset".
func (u *User) ChangePassword(newHash string, matches func(hash string) bool, reason string, now time.Time) error {
	for _, old := range u.passwordHashes {
		if matches(old) {
			return ErrPasswordReused
		}
	}
	u.record(u, UserPasswordChanged{At: now, PasswordHash: newHash, Reason: reason})
	return nil
}

// ResetPassword redeems a reset link and sets the new password. Returns ErrExpired for a wrong,
// used or expired token, ErrPasswordReused as ChangePassword does. A reset also verifies the
// email (the link reached it) and lifts a lockout.
func (u *User) ResetPassword(tokenHash, newHash string, matches func(hash string) bool, now time.Time) error {
	if err := u.reset.redeem(tokenHash, now); err != nil {
		return err
	}
	if err := u.ChangePassword(newHash, matches, "reset", now); err != nil {
		return err
	}
	if u.status == UserPendingVerification {
		u.record(u, UserVerified{})
	}
	return nil
}

// GrantSuperAdmin makes the user a platform super admin; granting twice records nothing.
func (u *User) GrantSuperAdmin() {
	if !u.superAdmin {
		u.record(u, UserSuperAdminGranted{})
	}
}
