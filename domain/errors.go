package domain

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Error kinds. Every error the core returns wraps one of these (or is a *ValidationError), and the
// API maps each kind to one status and code in exactly one place.
var (
	// ErrNotFound: the thing does not exist, or belongs to another tenant (never reveal which).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request contradicts the current state (a name taken, a state transition
	// that does not apply).
	ErrConflict = errors.New("conflict")
	// ErrVersionConflict: an optimistic-concurrency check failed; reload and retry.
	ErrVersionConflict = errors.New("version conflict")
	// ErrUnavailable: a dependency (a database server) does not answer; the request lost nothing.
	ErrUnavailable = errors.New("unavailable")
)

// ValidationError lists what is wrong with the fields of a request, field name → message.
type ValidationError struct {
	Fields map[string]string
}

// NewValidationError returns a ValidationError for one field.
func NewValidationError(field, message string) *ValidationError {
	return &ValidationError{Fields: map[string]string{field: message}}
}

func (e *ValidationError) Error() string {
	names := make([]string, 0, len(e.Fields))
	for name := range e.Fields {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s: %s", name, e.Fields[name]))
	}
	return "validation failed: " + strings.Join(parts, "; ")
}

// TenantChoiceError: a login named no tenant, and the user belongs to several: Tenants are the
// ones to choose from (asked only once the password is right, so they tell nothing to a guesser).
type TenantChoiceError struct {
	Tenants []Membership
}

func (e *TenantChoiceError) Error() string {
	return fmt.Sprintf("tenant: you belong to %d tenants: name the one to log in to (id or slug)", len(e.Tenants))
}

// RateLimitedError: a bounded action happened Limit times within its window; it may happen again
// after RetryAfter.
type RateLimitedError struct {
	Resource   string // "tenant_invitations", "recipient_invitations"
	Limit      int
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("%s: at most %d a day; retry after %s", e.Resource, e.Limit, e.RetryAfter.Round(time.Second))
}

// Error kinds of identity and access. Each maps to one code of API.md.
var (
	// ErrUnauthenticated: no credentials, or expired, revoked or tampered ones.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrInvalidCredentials: the email or password is wrong (never saying which).
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrForbidden: the caller's role is too low for the request.
	ErrForbidden = errors.New("forbidden")
	// ErrEmailNotVerified: the account exists but its email is not verified yet.
	ErrEmailNotVerified = errors.New("email not verified")
	// ErrExpired: a verification, reset or invitation link is past its validity or already used.
	ErrExpired = errors.New("expired")
	// ErrEmailTaken: another account uses this email.
	ErrEmailTaken = fmt.Errorf("email taken: %w", ErrConflict)
	// ErrNameTaken: another resource of the tenant (or platform, for slugs) uses this name.
	ErrNameTaken = fmt.Errorf("name taken: %w", ErrConflict)
	// ErrLastAdmin: the change would leave a tenant without a tenant admin.
	ErrLastAdmin = fmt.Errorf("last tenant admin: %w", ErrConflict)
	// ErrSelfDeactivation: a member cannot deactivate themselves; another admin must.
	ErrSelfDeactivation = fmt.Errorf("cannot deactivate oneself: %w", ErrConflict)
	// ErrPasswordReused: the new password is one of the user's last five.
	ErrPasswordReused = errors.New("password reused")
	// ErrTOTPRequired: the account has two-factor authentication and no code was given.
	ErrTOTPRequired = errors.New("totp code required")
	// ErrInvalidTOTP: the two-factor code (or recovery code) is wrong or already used.
	ErrInvalidTOTP = errors.New("invalid totp code")
	// ErrReauthenticationRequired: a change to the account's credentials needs the password (and
	// two-factor code) confirmed within ReauthWindow, by the login or POST /me/reauth.
	ErrReauthenticationRequired = errors.New("reauthentication required")
	// ErrAPIKeyNotAllowed: API keys may not change the account's credentials or mint keys, nor
	// who belongs to or controls a tenant, nor create tenants.
	ErrAPIKeyNotAllowed = fmt.Errorf("not with an API key: %w", ErrForbidden)
	// ErrInvalidName: a database name is not 1 to 64 letters, digits and underscores.
	ErrInvalidName = errors.New("invalid name")
	// ErrDatabaseStopped: the database is stopped; start it first.
	ErrDatabaseStopped = errors.New("database stopped")
	// ErrReadWriteHidden: only a database's owner (a developer or more) and the tenant's admins
	// may see, rotate or reveal its read-write password (MaySeeReadWrite).
	ErrReadWriteHidden = fmt.Errorf("only the database's owner or a tenant admin may see its password: %w", ErrForbidden)
	// ErrNotInPlan: the tenant's plan does not include this feature (result archiving, say).
	ErrNotInPlan = fmt.Errorf("not in the plan: %w", ErrForbidden)
	// ErrDatabaseUnavailable: the database cannot take queries now: its server does not answer,
	// or it is not running (provisioning, failed, deleted).
	ErrDatabaseUnavailable = errors.New("database unavailable")
)

// WeakPasswordError says which rule of the password policy a password breaks.
type WeakPasswordError struct {
	Rule string // "length", "lower", "upper", "digit", "symbol"
}

func (e *WeakPasswordError) Error() string {
	return "weak password: " + passwordRules[e.Rule]
}

// AccountLockedError says an account is locked after repeated failed logins, and until when.
type AccountLockedError struct {
	Until time.Time
	// Started is true for the failure that locked it (not for attempts during the lock): the
	// moment to offer the owner a way back in.
	Started bool
}

func (e *AccountLockedError) Error() string {
	return "account locked until " + e.Until.UTC().Format(time.RFC3339)
}

// QuotaExceededError says a plan or sub-quota limit stops the request.
type QuotaExceededError struct {
	Resource string // "databases", "storage", "connections", "users"
	Used     int64
	Limit    int64
}

func (e *QuotaExceededError) Error() string {
	return fmt.Sprintf("quota exceeded: %s %d of %d", e.Resource, e.Used, e.Limit)
}
