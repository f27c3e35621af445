package projections

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// APIKeys is the read model of API keys: what a bearer "cdb_..." key is checked against.
type APIKeys struct {
	reg *eventstore.Registry
}

// NewAPIKeys returns the projector decoding with reg.
func NewAPIKeys(reg *eventstore.Registry) APIKeys {
	if reg == nil {
		panic("projections: NewAPIKeys needs a registry")
	}
	return APIKeys{reg: reg}
}

func (APIKeys) Name() string { return "api_keys" }

func (APIKeys) Handles() []string {
	return []string{domain.UserAPIKeyCreated{}.EventType(), domain.UserAPIKeyRevoked{}.EventType()}
}

func (APIKeys) Tables() []Table {
	return []Table{{Name: "api_keys", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
		key_id     CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY,
		user_id    CHAR(36) CHARACTER SET ascii NOT NULL,
		tenant_id  CHAR(36) CHARACTER SET ascii NULL,
		name       VARCHAR(400) NOT NULL,
		key_hash   CHAR(64) CHARACTER SET ascii NOT NULL,
		created_at DATETIME(6) NOT NULL,
		expires_at DATETIME(6) NULL,
		revoked_at DATETIME(6) NULL,
		KEY api_keys_user (user_id)
	) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`}}
}

// Apply inserts created keys (ignoring a redelivered one) and marks revoked ones.
func (p APIKeys) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	for _, env := range events {
		e, err := p.reg.Decode(env)
		if err != nil {
			return err
		}
		user, err := domain.StreamUser(env.StreamID)
		if err != nil {
			return err
		}
		switch e := e.(type) {
		case domain.UserAPIKeyCreated:
			var expires any
			if e.ExpiresAt != nil {
				expires = e.ExpiresAt.UTC()
			}
			_, err = tx.ExecContext(ctx, `INSERT IGNORE INTO `+t.Name("api_keys")+
				` (key_id, user_id, tenant_id, name, key_hash, created_at, expires_at) VALUES (?, ?, NULLIF(?, ''), ?, ?, ?, ?)`,
				e.KeyID, user, e.TenantID, e.Name, e.Hash, e.CreatedAt.UTC(), expires)
		case domain.UserAPIKeyRevoked:
			_, err = tx.ExecContext(ctx, `UPDATE `+t.Name("api_keys")+` SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL`,
				env.RecordedAt, e.KeyID)
		}
		if err != nil {
			return fmt.Errorf("api_keys at %d: %w", env.Position, err)
		}
	}
	return nil
}
