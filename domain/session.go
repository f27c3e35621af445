package domain

import (
	"crypto/subtle"
	"fmt"
	"time"
)

// SessionLifetime bounds a session however active it is; refresh tokens die with it.
const SessionLifetime = 30 * 24 * time.Hour

// Session ends: why a session stopped working.
const (
	EndLogout          = "logout"
	EndPasswordChanged = "password_changed"
	EndRoleChanged     = "role_changed"
	EndRefreshReuse    = "refresh_token_reused"
	EndIdle            = "idle"
	EndRevoked         = "revoked" // by the user, from another session
	EndDeactivated     = "deactivated"
	EndResetForced     = "password_reset_forced" // by a super admin
)

// Session events, in the session's stream.
type (
	SessionStarted struct {
		SessionID   SessionID `json:"session_id"`
		UserID      UserID    `json:"user_id"`
		TenantID    TenantID  `json:"tenant_id,omitempty"`
		Role        Role      `json:"role,omitempty"`
		SuperAdmin  bool      `json:"super_admin,omitempty"`
		RefreshHash string    `json:"refresh_hash"`
		StartedAt   time.Time `json:"started_at"`
		ExpiresAt   time.Time `json:"expires_at"`
		IdleTimeout int64     `json:"idle_timeout_s"`
		IP          string    `json:"ip"`
		UserAgent   string    `json:"user_agent"`
	}
	SessionRefreshed struct {
		RefreshHash string    `json:"refresh_hash"`
		At          time.Time `json:"at"`
	}
	SessionEnded struct {
		Reason string    `json:"reason"`
		At     time.Time `json:"at"`
	}
)

func (SessionStarted) EventType() string   { return "session.started.v1" }
func (SessionRefreshed) EventType() string { return "session.refreshed.v1" }
func (SessionEnded) EventType() string     { return "session.ended.v1" }

// Session is one login: a user in one tenant (or none), with a rotating refresh token.
type Session struct {
	aggregate
	started     SessionStarted
	refreshHash string
	spent       []string // refresh hashes already used; presenting one again is theft
	ended       bool
}

// StartSession records a login. The caller has authenticated the user and resolved the tenant.
func StartSession(started SessionStarted) *Session {
	s := &Session{}
	s.record(s, started)
	return s
}

// RebuildSession replays a session's history. Returns ErrNotFound for an empty history.
func RebuildSession(history []Event, version int64) (*Session, error) {
	if len(history) == 0 {
		return nil, fmt.Errorf("session: %w", ErrNotFound)
	}
	s := &Session{}
	s.replay(s, history, version)
	return s, nil
}

func (s *Session) apply(e Event) {
	switch e := e.(type) {
	case SessionStarted:
		s.started, s.refreshHash = e, e.RefreshHash
	case SessionRefreshed:
		s.spent = append(s.spent, s.refreshHash)
		s.refreshHash = e.RefreshHash
	case SessionEnded:
		s.ended = true
	}
}

func (s *Session) ID() SessionID           { return s.started.SessionID }
func (s *Session) UserID() UserID          { return s.started.UserID }
func (s *Session) Started() SessionStarted { return s.started }
func (s *Session) Ended() bool             { return s.ended }

// Refresh rotates the refresh token: presented must be the current one's hash. Presenting a
// spent one means the token was stolen or replayed: the session ends (the caller must still
// append that) and ErrUnauthenticated is returned, as for an ended or expired session.
func (s *Session) Refresh(presented, next string, now time.Time) error {
	if s.ended || !now.Before(s.started.ExpiresAt) {
		return fmt.Errorf("session %s is over: %w", s.ID(), ErrUnauthenticated)
	}
	if subtle.ConstantTimeCompare([]byte(presented), []byte(s.refreshHash)) == 1 {
		s.record(s, SessionRefreshed{RefreshHash: next, At: now})
		return nil
	}
	for _, spent := range s.spent {
		if subtle.ConstantTimeCompare([]byte(presented), []byte(spent)) == 1 {
			s.record(s, SessionEnded{Reason: EndRefreshReuse, At: now})
			return fmt.Errorf("session %s: spent refresh token presented again: %w", s.ID(), ErrUnauthenticated)
		}
	}
	return fmt.Errorf("session %s: unknown refresh token: %w", s.ID(), ErrUnauthenticated)
}

// End stops the session; ending an ended session records nothing.
func (s *Session) End(reason string, now time.Time) {
	if !s.ended {
		s.record(s, SessionEnded{Reason: reason, At: now})
	}
}

// SessionEnding is a change that ends sessions whose premise it removes: the one rule of which
// sessions end when a password or a role changes, used by the commands that record the ends and
// by the dry run that announces them.
type SessionEnding struct {
	User   UserID
	Tenant TenantID // the sessions in this tenant only; "" for the user's sessions everywhere
	Reason string
	At     time.Time
}

// PasswordChangeEnding is a password change or reset: it ends every session of the user that
// started before it, the one that asked for it included (the caller logs in again with the new
// password).
func PasswordChangeEnding(user UserID, at time.Time) SessionEnding {
	return SessionEnding{User: user, Reason: EndPasswordChanged, At: at}
}

// RoleChangeEnding is a change of a member's role in a tenant: it ends the member's sessions in
// that tenant, which carry the old role in their access tokens.
func RoleChangeEnding(tenant TenantID, user UserID, at time.Time) SessionEnding {
	return SessionEnding{User: user, Tenant: tenant, Reason: EndRoleChanged, At: at}
}

// DeactivationEnding is a member's deactivation in a tenant: it ends their sessions there (those
// in the user's other tenants go on).
func DeactivationEnding(tenant TenantID, user UserID, at time.Time) SessionEnding {
	return SessionEnding{User: user, Tenant: tenant, Reason: EndDeactivated, At: at}
}

// ForcedResetEnding is a password reset a super admin forces: every session of the user ends.
func ForcedResetEnding(user UserID, at time.Time) SessionEnding {
	return SessionEnding{User: user, Reason: EndResetForced, At: at}
}

// Ends reports whether the change ends s: a session of the user (in the tenant, when it names
// one) that started before the change and was still live then (not ended, not expired).
func (c SessionEnding) Ends(s *Session) bool {
	started := s.started
	return !s.ended && started.UserID == c.User && (c.Tenant == "" || started.TenantID == c.Tenant) &&
		started.StartedAt.Before(c.At) && c.At.Before(started.ExpiresAt)
}

// End ends those of sessions that the change ends (each records SessionEnded) and returns them,
// for the caller to append with the change.
func (c SessionEnding) End(sessions []*Session) []*Session {
	var ended []*Session
	for _, s := range sessions {
		if c.Ends(s) {
			s.End(c.Reason, c.At)
			ended = append(ended, s)
		}
	}
	return ended
}
