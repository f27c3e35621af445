package domain

import (
	"maps"
	"slices"
	"time"
)

// UserPasswordResetForced: a super admin made the user choose a new password; the current one no
// longer logs in (ResetForced) until a reset sets another.
type UserPasswordResetForced struct {
	By UserID    `json:"by"`
	At time.Time `json:"at"`
}

func (UserPasswordResetForced) EventType() string { return "user.password_reset_forced.v1" }

// ForcePasswordReset records a reset forced by a super admin: the current password stops working
// until the user redeems the reset link (tokenHash) mailed with it, and every API key is revoked,
// as a password change revokes them; the caller ends the sessions (ForcedResetEnding).
func (u *User) ForcePasswordReset(by UserID, tokenHash string, now time.Time) {
	u.record(u, UserPasswordResetForced{By: by, At: now})
	u.IssuePasswordReset(tokenHash, now)
	u.revokeAPIKeys(func(TenantID) bool { return true })
}

// ResetForced reports whether the password may not log in until it is reset.
func (u *User) ResetForced() bool { return u.resetForced }

// RevokeAPIKeysIn revokes the user's keys bound to tenant (a deactivation there), and returns how
// many it revoked. Keys of other tenants, or of none, keep working.
func (u *User) RevokeAPIKeysIn(tenant TenantID) int {
	return u.revokeAPIKeys(func(t TenantID) bool { return t == tenant })
}

func (u *User) revokeAPIKeys(which func(TenantID) bool) int {
	n := 0
	for _, key := range slices.Sorted(maps.Keys(u.apiKeys)) {
		if which(u.apiKeys[key]) {
			u.record(u, UserAPIKeyRevoked{KeyID: key})
			n++
		}
	}
	return n
}
