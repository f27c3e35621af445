package projections

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// MemberQuotas is the read model of the members' sub-quotas (quota.sub_quota_set.v1), for the
// storage wall's query and the query engine's gate. A row keeps the quota stream's version it
// reflects and changes only for a newer event; a removed sub-quota stays as a row of NULLs, so
// that the version stays too.
type MemberQuotas struct {
	reg *eventstore.Registry
}

// NewMemberQuotas returns the projector decoding with reg. It panics on a nil registry.
func NewMemberQuotas(reg *eventstore.Registry) MemberQuotas {
	if reg == nil {
		panic("projections: NewMemberQuotas needs a registry")
	}
	return MemberQuotas{reg: reg}
}

func (MemberQuotas) Name() string { return "member_quotas" }

func (p MemberQuotas) Handles() []string {
	return p.reg.StoredAs(domain.QuotaSubQuotaSet{}.EventType())
}

func (MemberQuotas) Tables() []Table {
	return []Table{{Name: "member_quotas", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
		tenant_id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		user_id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		max_databases     BIGINT NULL,
		max_storage_bytes BIGINT NULL,
		max_connections   BIGINT NULL,
		version           BIGINT NOT NULL,
		PRIMARY KEY (tenant_id, user_id)
	) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`}}
}

// Apply writes each member's sub-quota as its event says, unless the row reflects a later one.
func (p MemberQuotas) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	table := t.Name("member_quotas")
	for _, env := range events {
		ev, err := p.reg.Decode(env)
		if err != nil {
			return err
		}
		e, ok := ev.(domain.QuotaSubQuotaSet)
		if !ok {
			return fmt.Errorf("projections: member_quotas: unexpected event %T", ev)
		}
		tenant, err := streamEntity(env.StreamID, "quota-")
		if err != nil {
			return err
		}
		// VALUES() is read before version is overwritten: the column assignments run in order.
		_, err = tx.ExecContext(ctx, `INSERT INTO `+table+` (tenant_id, user_id, max_databases, max_storage_bytes, max_connections, version)
			VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE
			max_databases = IF(version < VALUES(version), VALUES(max_databases), max_databases),
			max_storage_bytes = IF(version < VALUES(version), VALUES(max_storage_bytes), max_storage_bytes),
			max_connections = IF(version < VALUES(version), VALUES(max_connections), max_connections),
			version = GREATEST(version, VALUES(version))`,
			tenant, string(e.UserID), e.MaxDatabases, e.MaxStorageBytes, e.MaxConnections, env.StreamVersion)
		if err != nil {
			return fmt.Errorf("projections: member_quotas at %d: %w", env.Position, err)
		}
	}
	return nil
}
