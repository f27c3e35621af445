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
	// UnlockValidity bounds an unlock link, mailed to the owner when the account locks: while it
	// is unused and valid, further locks mail no other.
	UnlockValidity = time.Hour
	// ReauthWindow is how long after a session's login or reauthentication (both check the
	// password, and the two-factor code when it is on) its credentials may be changed: a stolen
	// access token cannot mint keys or turn two factors on once its owner's login is older.
	ReauthWindow = 5 * time.Minute
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
		// TOTPStep is the time step of the two-factor code used, so no code works twice.
		TOTPStep int64 `json:"totp_step,omitempty"`
		// At is when the password was checked: the session may change credentials for
		// ReauthWindow. Zero in logins recorded before, which count as long ago.
		At time.Time `json:"at,omitzero"`
	}
	// UserReauthenticated: the user confirmed the password (and two-factor code) again in a
	// session, for a change of credentials within ReauthWindow.
	UserReauthenticated struct {
		SessionID SessionID `json:"session_id"`
		At        time.Time `json:"at"`
		TOTPStep  int64     `json:"totp_step,omitempty"`
	}
	UserLoginFailed struct {
		At        time.Time `json:"at"`
		Reason    string    `json:"reason"` // "password", "totp", or "locked" (the right password during a lock)
		IP        string    `json:"ip"`
		UserAgent string    `json:"user_agent"`
	}
	UserLocked struct {
		Until time.Time `json:"until"`
	}
	// UserUnlockIssued: an unlock link was mailed to the owner of a locked account.
	UserUnlockIssued struct {
		TokenHash string    `json:"token_hash"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	// UserUnlocked: the owner lifted a lock, How "link" (the mailed unlock link) or "totp" (the
	// password and a two-factor code at login).
	UserUnlocked struct {
		At  time.Time `json:"at"`
		How string    `json:"how"`
	}
	UserPasswordChanged struct {
		At           time.Time `json:"at"`
		PasswordHash string    `json:"password_hash"`
		Reason       string    `json:"reason"` // "change", "reset", "bootstrap", "invitation"
		// ImpliesSessionEnds is true for the changes recorded as v1, before the ends of sessions
		// were events of their own: such a change itself ended the user's sessions started before
		// it, and only the sessions read model knows. Later changes record session.ended.v1 in
		// each session they end.
		ImpliesSessionEnds bool `json:"implies_session_ends,omitempty"`
	}
	UserPasswordResetIssued struct {
		TokenHash string    `json:"token_hash"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	UserSuperAdminGranted struct{}
	// UserTOTPSetupStarted: a secret was generated (kept in the vault) and awaits a first code.
	UserTOTPSetupStarted struct{}
	UserTOTPEnabled      struct {
		RecoveryCodeHashes []string `json:"recovery_code_hashes"`
		TOTPStep           int64    `json:"totp_step"`
	}
	UserTOTPDisabled     struct{}
	UserRecoveryCodeUsed struct {
		Hash string `json:"hash"`
	}
	UserAPIKeyCreated struct {
		KeyID     APIKeyID   `json:"key_id"`
		Name      string     `json:"name"`
		TenantID  TenantID   `json:"tenant_id,omitempty"`
		Hash      string     `json:"hash"`
		CreatedAt time.Time  `json:"created_at"`
		ExpiresAt *time.Time `json:"expires_at,omitempty"`
	}
	UserAPIKeyRevoked struct {
		KeyID APIKeyID `json:"key_id"`
	}
)

func (UserRegistered) EventType() string          { return "user.registered.v1" }
func (UserVerificationIssued) EventType() string  { return "user.verification_issued.v1" }
func (UserVerified) EventType() string            { return "user.verified.v1" }
func (UserLoginSucceeded) EventType() string      { return "user.login_succeeded.v1" }
func (UserReauthenticated) EventType() string     { return "user.reauthenticated.v1" }
func (UserLoginFailed) EventType() string         { return "user.login_failed.v1" }
func (UserLocked) EventType() string              { return "user.locked.v1" }
func (UserUnlockIssued) EventType() string        { return "user.unlock_issued.v1" }
func (UserUnlocked) EventType() string            { return "user.unlocked.v1" }
func (UserPasswordChanged) EventType() string     { return "user.password_changed.v2" }
func (UserPasswordResetIssued) EventType() string { return "user.password_reset_issued.v1" }
func (UserSuperAdminGranted) EventType() string   { return "user.super_admin_granted.v1" }
func (UserTOTPSetupStarted) EventType() string    { return "user.totp_setup_started.v1" }
func (UserTOTPEnabled) EventType() string         { return "user.totp_enabled.v1" }
func (UserTOTPDisabled) EventType() string        { return "user.totp_disabled.v1" }
func (UserRecoveryCodeUsed) EventType() string    { return "user.recovery_code_used.v1" }
func (UserAPIKeyCreated) EventType() string       { return "user.api_key_created.v1" }
func (UserAPIKeyRevoked) EventType() string       { return "user.api_key_revoked.v1" }

// MaxAPIKeys is how many unrevoked API keys one user may hold.
const MaxAPIKeys = 20

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
	id             UserID
	email, name    string
	status         UserStatus
	passwordHashes []string // newest last, at most PasswordHistory
	verification   oneTimeToken
	reset          oneTimeToken
	unlockLink     oneTimeToken
	lockout
	superAdmin      bool
	passwordChanged time.Time               // sessions started before it are void
	logins          []UserLoginSucceeded    // since the last password change, which ended the sessions before
	authenticatedAt map[SessionID]time.Time // when each live session last checked the password
	totpPending     bool
	totpEnabled     bool
	totpStep        int64                 // the last time step accepted; older codes are replays
	recoveryCodes   map[string]bool       // hash → still usable
	apiKeys         map[APIKeyID]TenantID // unrevoked keys → the tenant each is bound to ("" none)
	resetForced     bool                  // a super admin forced a password reset (forced_reset.go)
	erased          bool                  // personal data erased (personal_data.go)
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
		u.logins = append(u.logins, e)
		u.failures = nil
		u.totpStep = max(u.totpStep, e.TOTPStep)
		u.authenticated(e.SessionID, e.At)
	case UserReauthenticated:
		u.failures = nil
		u.totpStep = max(u.totpStep, e.TOTPStep)
		u.authenticated(e.SessionID, e.At)
	case UserLoginFailed:
		u.failed(e.At)
	case UserLocked:
		u.lock(e.Until)
	case UserUnlockIssued:
		u.unlockLink = oneTimeToken{hash: e.TokenHash, expiresAt: e.ExpiresAt}
	case UserUnlocked:
		u.lift()
		if e.How == "link" {
			u.unlockLink.used = true
		}
	case UserPasswordChanged:
		u.passwordHashes = append(u.passwordHashes, e.PasswordHash)
		if len(u.passwordHashes) > PasswordHistory {
			u.passwordHashes = u.passwordHashes[len(u.passwordHashes)-PasswordHistory:]
		}
		u.reset.used = true
		u.resetForced = false
		u.lift()
		u.passwordChanged = e.At
		u.logins, u.authenticatedAt = nil, nil
	case UserPasswordResetIssued:
		u.reset = oneTimeToken{hash: e.TokenHash, expiresAt: e.ExpiresAt}
	case UserSuperAdminGranted:
		u.superAdmin = true
	case UserPersonalDataErased:
		u.erased = true
	case UserTOTPSetupStarted:
		u.totpPending = true
	case UserTOTPEnabled:
		u.totpPending, u.totpEnabled = false, true
		u.totpStep = max(u.totpStep, e.TOTPStep)
		u.recoveryCodes = map[string]bool{}
		for _, h := range e.RecoveryCodeHashes {
			u.recoveryCodes[h] = true
		}
	case UserTOTPDisabled:
		u.totpEnabled, u.recoveryCodes = false, nil
	case UserRecoveryCodeUsed:
		delete(u.recoveryCodes, e.Hash)
	case UserAPIKeyCreated:
		if u.apiKeys == nil {
			u.apiKeys = map[APIKeyID]TenantID{}
		}
		u.apiKeys[e.KeyID] = e.TenantID
	case UserAPIKeyRevoked:
		delete(u.apiKeys, e.KeyID)
	case UserPasswordResetForced:
		u.resetForced = true
	}
}

func (u *User) authenticated(session SessionID, at time.Time) {
	if u.authenticatedAt == nil {
		u.authenticatedAt = map[SessionID]time.Time{}
	}
	u.authenticatedAt[session] = at
}

// ConfirmRecentAuthentication is the rule for changes of the account's credentials (password,
// two factors, API keys): they are made in a session whose password (and two-factor code) was
// checked within ReauthWindow, never with an API key (session ""). Returns ErrAPIKeyNotAllowed or
// ErrReauthenticationRequired.
func (u *User) ConfirmRecentAuthentication(session SessionID, now time.Time) error {
	if session == "" {
		return ErrAPIKeyNotAllowed
	}
	at, ok := u.authenticatedAt[session]
	if !ok || now.Sub(at) > ReauthWindow {
		return ErrReauthenticationRequired
	}
	return nil
}

// Reauthenticate records that the user confirmed the password (and the two-factor code of time
// step step, 0 without) in session, one of the sessions of the user's logins since the last
// password change. Returns ErrUnauthenticated for another session.
func (u *User) Reauthenticate(session SessionID, step int64, now time.Time) error {
	if _, ok := u.authenticatedAt[session]; !ok && !u.loggedIn(session) {
		return fmt.Errorf("session %s is not one of the user's: %w", session, ErrUnauthenticated)
	}
	u.record(u, UserReauthenticated{SessionID: session, At: now, TOTPStep: step})
	return nil
}

func (u *User) loggedIn(session SessionID) bool {
	for _, l := range u.logins {
		if l.SessionID == session {
			return true
		}
	}
	return false
}

// TOTPEnabled reports whether logins need a second factor.
func (u *User) TOTPEnabled() bool { return u.totpEnabled }

// StartTOTPSetup records that a secret awaits confirmation. Returns ErrConflict when two-factor
// authentication is on already.
func (u *User) StartTOTPSetup() error {
	if u.totpEnabled {
		return fmt.Errorf("two-factor authentication is on already: %w", ErrConflict)
	}
	u.record(u, UserTOTPSetupStarted{})
	return nil
}

// EnableTOTP turns two-factor authentication on after a first valid code (of time step step).
// Returns ErrConflict without a pending setup or when it is on already.
func (u *User) EnableTOTP(recoveryCodeHashes []string, step int64) error {
	if u.totpEnabled || !u.totpPending {
		return fmt.Errorf("no two-factor setup to confirm: %w", ErrConflict)
	}
	u.record(u, UserTOTPEnabled{RecoveryCodeHashes: recoveryCodeHashes, TOTPStep: step})
	return nil
}

// DisableTOTP turns two-factor authentication off. Returns ErrConflict when it is off.
func (u *User) DisableTOTP() error {
	if !u.totpEnabled {
		return fmt.Errorf("two-factor authentication is off: %w", ErrConflict)
	}
	u.record(u, UserTOTPDisabled{})
	return nil
}

// CheckTOTPStep refuses a code of a time step at or before the last one accepted: a code that was
// seen (by an eavesdropper, say) cannot be used again.
func (u *User) CheckTOTPStep(step int64) error {
	if step <= u.totpStep {
		return ErrInvalidTOTP
	}
	return nil
}

// UseRecoveryCode spends a recovery code. Returns ErrInvalidTOTP for an unknown or spent one.
func (u *User) UseRecoveryCode(hash string) error {
	if !u.recoveryCodes[hash] {
		return ErrInvalidTOTP
	}
	u.record(u, UserRecoveryCodeUsed{Hash: hash})
	return nil
}

// CreateAPIKey records a new API key (only its hash). Returns a *QuotaExceededError past
// MaxAPIKeys unrevoked keys.
func (u *User) CreateAPIKey(key UserAPIKeyCreated) error {
	if len(u.apiKeys) >= MaxAPIKeys {
		return &QuotaExceededError{Resource: "api_keys", Used: int64(len(u.apiKeys)), Limit: MaxAPIKeys}
	}
	u.record(u, key)
	return nil
}

// RevokeAPIKey revokes one of the user's keys. Returns ErrNotFound for a key that is not theirs
// or revoked already.
func (u *User) RevokeAPIKey(id APIKeyID) error {
	if _, ok := u.apiKeys[id]; !ok {
		return fmt.Errorf("api key %s: %w", id, ErrNotFound)
	}
	u.record(u, UserAPIKeyRevoked{KeyID: id})
	return nil
}

func (u *User) ID() UserID                   { return u.id }
func (u *User) Email() string                { return u.email }
func (u *User) Name() string                 { return u.name }
func (u *User) Status() UserStatus           { return u.status }
func (u *User) SuperAdmin() bool             { return u.superAdmin }
func (u *User) PasswordHash() string         { return u.passwordHashes[len(u.passwordHashes)-1] }
func (u *User) LockedUntil() time.Time       { return u.until }
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
func (u *User) Locked(now time.Time) error { return u.check(now) }

// FailLogin records a failed login (wrong password or second factor) and locks the account when
// it is the MaxLoginFailures-th within LockoutWindow. Returns the error the caller answers with:
// ErrInvalidCredentials (or ErrInvalidTOTP), or an *AccountLockedError once locked (Started for
// the failure that locked it). A failure during a lock is recorded, answered with the lock, and
// neither extends it nor counts towards the next.
func (u *User) FailLogin(reason, ip, userAgent string, now time.Time) error {
	return u.failLogin(reason, now,
		func() { u.record(u, UserLoginFailed{At: now, Reason: reason, IP: ip, UserAgent: userAgent}) },
		func(until time.Time) { u.record(u, UserLocked{Until: until}) })
}

// IssueUnlock records the unlock link mailed to the owner of a locked account. Returns
// ErrConflict when the account is not locked, or when an unlock link sent before is still unused
// and valid (one mail per lock, and at most one per UnlockValidity whoever keeps locking it).
func (u *User) IssueUnlock(tokenHash string, now time.Time) error {
	if u.check(now) == nil {
		return fmt.Errorf("user %s is not locked: %w", u.id, ErrConflict)
	}
	if l := u.unlockLink; l.hash != "" && !l.used && now.Before(l.expiresAt) {
		return fmt.Errorf("user %s has a valid unlock link: %w", u.id, ErrConflict)
	}
	u.record(u, UserUnlockIssued{TokenHash: tokenHash, ExpiresAt: now.Add(UnlockValidity)})
	return nil
}

// Unlock redeems an unlock link: the lock is lifted (the owner then logs in with the password),
// whichever lock is on while the link is valid. Returns ErrExpired for a wrong, used or expired
// link.
func (u *User) Unlock(tokenHash string, now time.Time) error {
	if err := u.unlockLink.redeem(tokenHash, now); err != nil {
		return err
	}
	u.record(u, UserUnlocked{At: now, How: "link"})
	return nil
}

// UnlockWithSecondFactor lifts a lock at a login that passed the password and a two-factor
// code: together they are the owner, whom a lock that anyone can start must not keep out.
func (u *User) UnlockWithSecondFactor(now time.Time) {
	if u.check(now) != nil {
		u.record(u, UserUnlocked{At: now, How: "totp"})
	}
}

// SucceedLogin records a login that passed every check, for the given session and tenant, with
// the time step of its two-factor code (0 without).
// Returns ErrEmailNotVerified for an unverified account.
func (u *User) SucceedLogin(session SessionID, tenant TenantID, totpStep int64, now time.Time) error {
	if u.status != UserActive {
		return ErrEmailNotVerified
	}
	u.record(u, UserLoginSucceeded{SessionID: session, TenantID: tenant, TOTPStep: totpStep, At: now})
	return nil
}

// Logins are the user's logins since the last password change: their sessions are the ones that
// may still be live, for a change that ends sessions to look at.
func (u *User) Logins() []UserLoginSucceeded { return u.logins }

// IssuePasswordReset records a new password reset link.
func (u *User) IssuePasswordReset(tokenHash string, now time.Time) {
	u.record(u, UserPasswordResetIssued{TokenHash: tokenHash, ExpiresAt: now.Add(ResetValidity)})
}

// ChangePassword sets a new password hash. matches tells whether the new password matches a
// stored hash; it is asked about each of the last PasswordHistory hashes and a match is
// ErrPasswordReused. reason is "change" or "reset". Every API key of the user is revoked with it:
// a key made by whoever knew the old password must not outlive it (the sessions end too:
// PasswordChangeEnding).
func (u *User) ChangePassword(newHash string, matches func(hash string) bool, reason string, now time.Time) error {
	for _, old := range u.passwordHashes {
		if matches(old) {
			return ErrPasswordReused
		}
	}
	u.record(u, UserPasswordChanged{At: now, PasswordHash: newHash, Reason: reason})
	u.revokeAPIKeys(func(TenantID) bool { return true })
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

// ClaimForBootstrap hands an account that nobody has verified to the operator who named its
// address as the bootstrap admin (ClaimUnverified with reason "bootstrap").
func (u *User) ClaimForBootstrap(passwordHash string, now time.Time) {
	u.ClaimUnverified(passwordHash, "bootstrap", now)
}

// ClaimUnverified hands an account that nobody has verified to whoever proved they own its
// address another way (the bootstrap's operator, the recipient of an invitation link): their
// password replaces the registrant's, who never proved the address theirs, and the account
// becomes verified. Reports whether it did; a verified account is left as it is.
func (u *User) ClaimUnverified(passwordHash, reason string, now time.Time) bool {
	if u.status != UserPendingVerification {
		return false
	}
	u.record(u, UserPasswordChanged{At: now, PasswordHash: passwordHash, Reason: reason})
	u.record(u, UserVerified{})
	return true
}

// GrantSuperAdmin makes the user a platform super admin; granting twice records nothing.
func (u *User) GrantSuperAdmin() {
	if !u.superAdmin {
		u.record(u, UserSuperAdminGranted{})
	}
}
