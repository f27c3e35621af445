package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Tenants is the read model of tenants (plan, settings) and their memberships. A tenant's row
// keeps the stream version it reflects; a membership changes only together with that version, so
// a redelivered or replayed event changes nothing.
type Tenants struct {
	reg *eventstore.Registry
}

// NewTenants returns the tenants projector, decoding events with reg. It panics on a nil registry.
func NewTenants(reg *eventstore.Registry) Tenants {
	if reg == nil {
		panic("projections: NewTenants needs a registry")
	}
	return Tenants{reg: reg}
}

func (Tenants) Name() string { return "tenants" }

// Handles names the types under every version the log holds them.
func (p Tenants) Handles() []string {
	return p.reg.StoredAs(
		domain.TenantCreated{}.EventType(),
		domain.TenantMemberAdded{}.EventType(),
		domain.TenantMemberRoleChanged{}.EventType(),
		domain.TenantSettingsChanged{}.EventType(),
		domain.TenantPlanChanged{}.EventType(),
		domain.TenantMemberDeactivated{}.EventType(),
		domain.TenantMemberReactivated{}.EventType(),
		domain.TenantMembershipClosed{}.EventType(),
	)
}

func (Tenants) Tables() []Table {
	return []Table{
		{Name: "tenants", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			tenant_id  CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
			slug       VARCHAR(40)  NOT NULL,
			name       VARCHAR(400) NOT NULL,
			plan       VARCHAR(32)  NOT NULL,
			settings   JSON         NOT NULL,
			created_by CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
			created_at DATETIME(6)  NOT NULL,
			updated_at DATETIME(6)  NOT NULL,
			version    BIGINT       NOT NULL,
			UNIQUE KEY tenants_slug (slug)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
		{Name: "memberships", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			tenant_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			user_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			role      VARCHAR(32) NOT NULL,
			joined_at DATETIME(6) NOT NULL,
			status              VARCHAR(16) NOT NULL DEFAULT 'active',
			deactivated_at      DATETIME(6) NULL,
			deactivation_type   VARCHAR(16) NULL,
			deactivation_reason VARCHAR(16) NULL,
			reactivate_at       DATETIME(6) NULL,
			grace_until         DATETIME(6) NULL,
			PRIMARY KEY (tenant_id, user_id),
			KEY memberships_user (user_id),
			KEY memberships_reactivate (reactivate_at),
			KEY memberships_grace (grace_until)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
	}
}

// Apply applies the events in order. Every event after tenant.created first advances the tenant's
// version (and updated_at); when the tenant is already at or past the event, the event is skipped.
func (p Tenants) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	tenants, memberships := t.Name("tenants"), t.Name("memberships")
	for _, env := range events {
		if err := p.apply(ctx, tx, tenants, memberships, env); err != nil {
			return fmt.Errorf("projections: tenants: %s at position %d: %w", env.EventType, env.Position, err)
		}
	}
	return nil
}

func (p Tenants) apply(ctx context.Context, tx *sql.Tx, tenants, memberships string, env eventstore.Envelope) error {
	ev, err := p.reg.Decode(env)
	if err != nil {
		return err
	}
	if e, ok := ev.(domain.TenantCreated); ok {
		settings, err := json.Marshal(e.Settings)
		if err != nil {
			return err
		}
		return insertNew(ctx, tx, tenants, "tenant_id", string(e.TenantID), `INSERT INTO `+tenants+`
			(tenant_id, slug, name, plan, settings, created_by, created_at, updated_at, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			string(e.TenantID), e.Slug, clip(e.Name, 400), string(e.Plan), string(settings), nullString(string(e.CreatedBy)),
			dbTime(env.RecordedAt), dbTime(env.RecordedAt), env.StreamVersion)
	}
	tenant, err := streamEntity(env.StreamID, "tenant-")
	if err != nil {
		return err
	}
	set, args := "", []any{}
	switch e := ev.(type) {
	case domain.TenantSettingsChanged:
		settings, err := json.Marshal(e.Settings)
		if err != nil {
			return err
		}
		set, args = "settings = ?, ", []any{string(settings)}
	case domain.TenantPlanChanged:
		settings, err := json.Marshal(e.Settings)
		if err != nil {
			return err
		}
		set, args = "plan = ?, settings = ?, ", []any{string(e.To), string(settings)}
	case domain.TenantMemberAdded, domain.TenantMemberRoleChanged, domain.TenantMemberDeactivated, domain.TenantMemberReactivated,
		domain.TenantMembershipClosed:
	default:
		return fmt.Errorf("unexpected event %T", ev)
	}
	args = append(args, env.StreamVersion, dbTime(env.RecordedAt), tenant, env.StreamVersion)
	res, err := tx.ExecContext(ctx, `UPDATE `+tenants+` SET `+set+`version = ?, updated_at = ?
		WHERE tenant_id = ? AND version < ?`, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err // applied already
	}
	switch e := ev.(type) {
	case domain.TenantMemberAdded:
		_, err = tx.ExecContext(ctx, `INSERT INTO `+memberships+` (tenant_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE role = VALUES(role), joined_at = VALUES(joined_at)`,
			tenant, string(e.UserID), string(e.Role), dbTime(e.At))
	case domain.TenantMemberRoleChanged:
		_, err = tx.ExecContext(ctx, `UPDATE `+memberships+` SET role = ? WHERE tenant_id = ? AND user_id = ?`,
			string(e.To), tenant, string(e.UserID))
	case domain.TenantMemberDeactivated:
		_, err = tx.ExecContext(ctx, `UPDATE `+memberships+` SET status = ?, deactivated_at = ?, deactivation_type = ?,
			deactivation_reason = ?, reactivate_at = ?, grace_until = ? WHERE tenant_id = ? AND user_id = ?`,
			domain.MemberDeactivated, dbTime(e.At), e.Type, clip(e.Reason, 16), dbTimeOrNull(e.ReactivateAt), dbTimeOrNull(e.GraceUntil),
			tenant, string(e.UserID))
	case domain.TenantMemberReactivated:
		_, err = tx.ExecContext(ctx, `UPDATE `+memberships+` SET status = ?, deactivated_at = NULL, deactivation_type = NULL,
			deactivation_reason = NULL, reactivate_at = NULL, grace_until = NULL WHERE tenant_id = ? AND user_id = ?`,
			domain.MemberActive, tenant, string(e.UserID))
	case domain.TenantMembershipClosed:
		_, err = tx.ExecContext(ctx, `DELETE FROM `+memberships+` WHERE tenant_id = ? AND user_id = ?`, tenant, string(e.UserID))
	}
	return err
}
