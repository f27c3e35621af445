package domain

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Identifiers are UUID strings in canonical form; each kind has its own type so one cannot be
// passed for another.
type (
	UserID       string
	TenantID     string
	SessionID    string
	InvitationID string
	APIKeyID     string
	MailID       string
)

func parseUUID(kind, s string) (string, error) {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", NewValidationError(kind, "must be a UUID")
	}
	return id.String(), nil
}

// ParseUserID validates s as a user id. Returns a *ValidationError if it is not a UUID.
func ParseUserID(s string) (UserID, error) {
	id, err := parseUUID("user_id", s)
	return UserID(id), err
}

// ParseTenantID validates s as a tenant id.
func ParseTenantID(s string) (TenantID, error) {
	id, err := parseUUID("tenant_id", s)
	return TenantID(id), err
}

// ParseSessionID validates s as a session id.
func ParseSessionID(s string) (SessionID, error) {
	id, err := parseUUID("session_id", s)
	return SessionID(id), err
}

// ParseInvitationID validates s as an invitation id.
func ParseInvitationID(s string) (InvitationID, error) {
	id, err := parseUUID("invitation_id", s)
	return InvitationID(id), err
}

// ParseAPIKeyID validates s as an API key id.
func ParseAPIKeyID(s string) (APIKeyID, error) {
	id, err := parseUUID("api_key_id", s)
	return APIKeyID(id), err
}

// Stream ids of the aggregates in the event log.
func (id UserID) Stream() string    { return "user-" + string(id) }
func (id TenantID) Stream() string  { return "tenant-" + string(id) }
func (id SessionID) Stream() string { return "session-" + string(id) }
func (id MailID) Stream() string    { return "mail-" + string(id) }

// Claim keys of platform-wide unique values.
func EmailClaim(normalizedEmail string) string { return EmailClaimPrefix + normalizedEmail }
func SlugClaim(slug string) string             { return "slug:" + slug }

// StreamUser returns the user id of a "user-<id>" stream.
func StreamUser(stream string) (UserID, error) {
	const prefix = "user-"
	if len(stream) <= len(prefix) || stream[:len(prefix)] != prefix {
		return "", fmt.Errorf("stream %q is not a user stream", stream)
	}
	return ParseUserID(stream[len(prefix):])
}

// DatabaseID identifies a tenant database.
type DatabaseID string

// ParseDatabaseID validates s as a database id.
func ParseDatabaseID(s string) (DatabaseID, error) {
	id, err := parseUUID("database_id", s)
	return DatabaseID(id), err
}

func (id DatabaseID) Stream() string { return "database-" + string(id) }

// QuotaStream is the stream of a tenant's resource accounting.
func (id TenantID) QuotaStream() string { return "quota-" + string(id) }

// DatabaseNameClaim makes a database name unique among a tenant's databases that are not
// deleted, ignoring case.
func DatabaseNameClaim(tenant TenantID, name string) string {
	return "dbname:" + string(tenant) + ":" + strings.ToLower(name)
}
