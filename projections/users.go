package projections

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Users is the read model of accounts: one row per user with its status, login and lockout times.
// Every row keeps the stream version it reflects, so a redelivered or replayed event is skipped.
type Users struct {
	reg *eventstore.Registry
}

// NewUsers returns the users projector, decoding events with reg (in production
// eventstore.NewRegistry(domain.Events()...)). It panics on a nil registry.
func NewUsers(reg *eventstore.Registry) Users {
	if reg == nil {
		panic("projections: NewUsers needs a registry")
	}
	return Users{reg: reg}
}

func (Users) Name() string { return "users" }

// Handles names the types under every version the log holds them.
func (p Users) Handles() []string {
	return p.reg.StoredAs(
		domain.UserRegistered{}.EventType(),
		domain.UserVerified{}.EventType(),
		domain.UserLoginSucceeded{}.EventType(),
		domain.UserLocked{}.EventType(),
		domain.UserUnlocked{}.EventType(),
		domain.UserPasswordChanged{}.EventType(),
		domain.UserSuperAdminGranted{}.EventType(),
		domain.UserTOTPEnabled{}.EventType(),
		domain.UserTOTPDisabled{}.EventType(),
	)
}

func (Users) Tables() []Table {
	return []Table{{Name: "users", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
		user_id             CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
		email               VARCHAR(254) NOT NULL,
		name                VARCHAR(400) NOT NULL,
		status              VARCHAR(32)  NOT NULL,
		super_admin         BOOL         NOT NULL DEFAULT 0,
		totp_enabled        BOOL         NOT NULL DEFAULT 0,
		created_at          DATETIME(6)  NOT NULL,
		verified_at         DATETIME(6)  NULL,
		last_login_at       DATETIME(6)  NULL,
		password_changed_at DATETIME(6)  NULL,
		locked_until        DATETIME(6)  NULL,
		version             BIGINT       NOT NULL,
		UNIQUE KEY users_email (email)
	) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`}}
}

// Erase implements Eraser: the person's email and name read as the placeholders. The version
// stays: it is that of the last event the row reflects.
func (Users) Erase(ctx context.Context, tx *sql.Tx, t Tables, e PersonErasure, _ func(context.Context, []int64) ([]eventstore.Envelope, error)) error {
	if e.User == "" {
		return nil
	}
	subject := e.User.Stream()
	_, err := tx.ExecContext(ctx, `UPDATE `+t.Name("users")+` SET email = ?, name = ? WHERE user_id = ?`,
		domain.ErasedValue(subject, "email"), clip(domain.ErasedValue(subject, "name"), 400), string(e.User))
	return err
}

// Apply applies the events in order. A user's row changes only for an event newer than the
// version it holds.
func (p Users) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	table := t.Name("users")
	for _, env := range events {
		if err := p.apply(ctx, tx, table, env); err != nil {
			return fmt.Errorf("projections: users: %s at position %d: %w", env.EventType, env.Position, err)
		}
	}
	return nil
}

func (p Users) apply(ctx context.Context, tx *sql.Tx, table string, env eventstore.Envelope) error {
	ev, err := p.reg.Decode(env)
	if err != nil {
		return err
	}
	if e, ok := ev.(domain.UserRegistered); ok {
		status, verifiedAt := domain.UserPendingVerification, any(nil)
		if e.Verified {
			status, verifiedAt = domain.UserActive, dbTime(env.RecordedAt)
		}
		return insertNew(ctx, tx, table, "user_id", string(e.UserID), `INSERT INTO `+table+`
			(user_id, email, name, status, super_admin, created_at, verified_at, version)
			VALUES (?, ?, ?, ?, 0, ?, ?, ?)`,
			string(e.UserID), e.Email, clip(e.Name, 400), string(status), dbTime(env.RecordedAt), verifiedAt, env.StreamVersion)
	}
	user, err := domain.StreamUser(env.StreamID)
	if err != nil {
		return err
	}
	var set string
	var args []any
	switch e := ev.(type) {
	case domain.UserVerified:
		set, args = "status = ?, verified_at = ?", []any{string(domain.UserActive), dbTime(env.RecordedAt)}
	case domain.UserLoginSucceeded:
		set, args = "last_login_at = ?", []any{dbTime(env.RecordedAt)}
	case domain.UserLocked:
		set, args = "locked_until = ?", []any{dbTime(e.Until)}
	case domain.UserUnlocked:
		set = "locked_until = NULL"
	case domain.UserPasswordChanged:
		// A new password lifts a lockout, as in domain.User: the reset link reached the owner, or
		// the owner was signed in to change it.
		set, args = "password_changed_at = ?, locked_until = NULL", []any{dbTime(e.At)}
	case domain.UserSuperAdminGranted:
		set = "super_admin = 1"
	case domain.UserTOTPEnabled:
		set = "totp_enabled = 1"
	case domain.UserTOTPDisabled:
		set = "totp_enabled = 0"
	default:
		return fmt.Errorf("unexpected event %T", ev)
	}
	args = append(args, env.StreamVersion, string(user), env.StreamVersion)
	_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET `+set+`, version = ? WHERE user_id = ? AND version < ?`, args...)
	return err
}
