package projections

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Invitations is the read model of tenants' invitations, for GET /invitations.
type Invitations struct {
	reg *eventstore.Registry
}

// NewInvitations returns the projector decoding with reg.
func NewInvitations(reg *eventstore.Registry) Invitations {
	if reg == nil {
		panic("projections: NewInvitations needs a registry")
	}
	return Invitations{reg: reg}
}

func (Invitations) Name() string { return "invitations" }

func (Invitations) Handles() []string {
	return []string{domain.TenantInvitationCreated{}.EventType(), domain.TenantInvitationAccepted{}.EventType(),
		domain.TenantInvitationRevoked{}.EventType()}
}

func (Invitations) Tables() []Table {
	return []Table{{Name: "invitations", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
		invitation_id CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY,
		tenant_id     CHAR(36) CHARACTER SET ascii NOT NULL,
		email         VARCHAR(254) NOT NULL,
		role          VARCHAR(32) NOT NULL,
		status        VARCHAR(16) NOT NULL,
		invited_by    CHAR(36) CHARACTER SET ascii NOT NULL,
		created_at    DATETIME(6) NOT NULL,
		expires_at    DATETIME(6) NOT NULL,
		accepted_by   CHAR(36) CHARACTER SET ascii NULL,
		accepted_at   DATETIME(6) NULL,
		KEY invitations_tenant (tenant_id, created_at)
	) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`}}
}

// Erase implements Eraser: the invitee's email of each of the erasure's invitations reads as the
// placeholder of the invitation (tenant.invitation_created.v1 seals it for the invitation).
func (Invitations) Erase(ctx context.Context, tx *sql.Tx, t Tables, e PersonErasure, _ func(context.Context, []int64) ([]eventstore.Envelope, error)) error {
	for _, id := range e.Invitations {
		if _, err := tx.ExecContext(ctx, `UPDATE `+t.Name("invitations")+` SET email = ? WHERE invitation_id = ?`,
			domain.ErasedValue(domain.InvitationSubject(id), "email"), string(id)); err != nil {
			return err
		}
	}
	return nil
}

// Apply records invitations and their fate; only a pending invitation changes, so a redelivered
// event changes nothing.
func (p Invitations) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	table := t.Name("invitations")
	for _, env := range events {
		e, err := p.reg.Decode(env)
		if err != nil {
			return err
		}
		tenant := strings.TrimPrefix(env.StreamID, "tenant-")
		switch e := e.(type) {
		case domain.TenantInvitationCreated:
			_, err = tx.ExecContext(ctx, `INSERT IGNORE INTO `+table+` (invitation_id, tenant_id, email, role, status, invited_by, created_at, expires_at)
				VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)`, e.InvitationID, tenant, e.Email, e.Role, e.InvitedBy, e.At.UTC(), e.ExpiresAt.UTC())
		case domain.TenantInvitationAccepted:
			_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET status = 'accepted', accepted_by = ?, accepted_at = ?
				WHERE invitation_id = ? AND status = 'pending'`, e.UserID, e.At.UTC(), e.InvitationID)
		case domain.TenantInvitationRevoked:
			_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET status = 'revoked' WHERE invitation_id = ? AND status = 'pending'`, e.InvitationID)
		}
		if err != nil {
			return fmt.Errorf("invitations at %d: %w", env.Position, err)
		}
	}
	return nil
}
