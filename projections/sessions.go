package projections

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Sessions is the read model every authenticated request checks: one row per login, live while
// ended_at is NULL. Every end of a session is a session.ended.v1 in its stream, recorded by the
// command that ends it (domain.SessionEnding decides which), except in the history recorded
// before that: a password or role change recorded as v1 (ImpliesSessionEnds) ended sessions by
// itself, and the model still applies it as it did then (the user's sessions started before a
// password change; the member's sessions in the tenant started before a role change).
//
// Every write is conditional (a session is inserted once, ends once, and refreshed_at only moves
// forward), so a redelivered or replayed event changes nothing.
type Sessions struct {
	reg *eventstore.Registry
}

// NewSessions returns the sessions projector, decoding events with reg. It panics on a nil
// registry.
func NewSessions(reg *eventstore.Registry) Sessions {
	if reg == nil {
		panic("projections: NewSessions needs a registry")
	}
	return Sessions{reg: reg}
}

func (Sessions) Name() string { return "sessions" }

// Handles names the types under every version the log holds them.
func (p Sessions) Handles() []string {
	return p.reg.StoredAs(
		domain.SessionStarted{}.EventType(),
		domain.SessionRefreshed{}.EventType(),
		domain.SessionEnded{}.EventType(),
		domain.UserPasswordChanged{}.EventType(),
		domain.TenantMemberRoleChanged{}.EventType(),
	)
}

func (Sessions) Tables() []Table {
	return []Table{{Name: "sessions", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
		session_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
		user_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		tenant_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
		role           VARCHAR(32)  NULL,
		super_admin    BOOL         NOT NULL DEFAULT 0,
		started_at     DATETIME(6)  NOT NULL,
		expires_at     DATETIME(6)  NOT NULL,
		idle_timeout_s INT          NOT NULL,
		ip             VARCHAR(64)  NOT NULL,
		user_agent     VARCHAR(512) NOT NULL,
		refreshed_at   DATETIME(6)  NULL,
		ended_at       DATETIME(6)  NULL,
		end_reason     VARCHAR(32)  NULL,
		KEY sessions_user (user_id, ended_at),
		KEY sessions_tenant (tenant_id, ended_at, expires_at)
	) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`}}
}

// Erase implements Eraser: the address and user agent of every session of the person read as
// the placeholders (session.started.v1 seals them for the session's user).
func (Sessions) Erase(ctx context.Context, tx *sql.Tx, t Tables, e PersonErasure, _ func(context.Context, []int64) ([]eventstore.Envelope, error)) error {
	if e.User == "" {
		return nil
	}
	subject := e.User.Stream()
	_, err := tx.ExecContext(ctx, `UPDATE `+t.Name("sessions")+` SET ip = ?, user_agent = ? WHERE user_id = ?`,
		clip(domain.ErasedValue(subject, "ip"), 64), clip(domain.ErasedValue(subject, "user_agent"), 512), string(e.User))
	return err
}

// Apply applies the events in order.
func (p Sessions) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	table := t.Name("sessions")
	for _, env := range events {
		if err := p.apply(ctx, tx, table, env); err != nil {
			return fmt.Errorf("projections: sessions: %s at position %d: %w", env.EventType, env.Position, err)
		}
	}
	return nil
}

func (p Sessions) apply(ctx context.Context, tx *sql.Tx, table string, env eventstore.Envelope) error {
	ev, err := p.reg.Decode(env)
	if err != nil {
		return err
	}
	switch e := ev.(type) {
	case domain.SessionStarted:
		_, err = tx.ExecContext(ctx, `INSERT INTO `+table+`
			(session_id, user_id, tenant_id, role, super_admin, started_at, expires_at, idle_timeout_s, ip, user_agent)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE session_id = session_id`,
			string(e.SessionID), string(e.UserID), nullString(string(e.TenantID)), nullString(clip(string(e.Role), 32)),
			e.SuperAdmin, dbTime(e.StartedAt), dbTime(e.ExpiresAt), e.IdleTimeout, clip(e.IP, 64), clip(e.UserAgent, 512))
		return err
	case domain.SessionRefreshed:
		session, err := streamEntity(env.StreamID, "session-")
		if err != nil {
			return err
		}
		at := dbTime(e.At)
		_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET refreshed_at = ?
			WHERE session_id = ? AND (refreshed_at IS NULL OR refreshed_at < ?)`, at, session, at)
		return err
	case domain.SessionEnded:
		session, err := streamEntity(env.StreamID, "session-")
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET ended_at = ?, end_reason = ?
			WHERE session_id = ? AND ended_at IS NULL`, dbTime(e.At), clip(e.Reason, 32), session)
		return err
	case domain.UserPasswordChanged:
		if !e.ImpliesSessionEnds {
			return nil
		}
		user, err := domain.StreamUser(env.StreamID)
		if err != nil {
			return err
		}
		at := dbTime(e.At)
		_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET ended_at = ?, end_reason = ?
			WHERE user_id = ? AND ended_at IS NULL AND started_at < ?`, at, domain.EndPasswordChanged, string(user), at)
		return err
	case domain.TenantMemberRoleChanged:
		if !e.ImpliesSessionEnds {
			return nil
		}
		tenant, err := streamEntity(env.StreamID, "tenant-")
		if err != nil {
			return err
		}
		at := dbTime(env.RecordedAt)
		_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET ended_at = ?, end_reason = ?
			WHERE user_id = ? AND ended_at IS NULL AND tenant_id = ? AND started_at < ?`,
			at, domain.EndRoleChanged, string(e.UserID), tenant, at)
		return err
	}
	return fmt.Errorf("unexpected event %T", ev)
}
