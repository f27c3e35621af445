package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Databases is the read model of tenant databases (table database_list: "databases" is a
// reserved word): GET /databases, and the provisioning reactor's queue (state provisioning).
//
// last_used_at follows the queries that reached the database (see usedDatabase) at a minute's
// grain: it moves to a query's time only when that is at least a minute past the stored value, so
// at thousands of queries a second it is written about once a minute per busy database, and it
// depends only on the log (rebuilds give the same values).
type Databases struct {
	reg *eventstore.Registry
}

// NewDatabases returns the projector decoding with reg.
func NewDatabases(reg *eventstore.Registry) Databases {
	if reg == nil {
		panic("projections: NewDatabases needs a registry")
	}
	return Databases{reg: reg}
}

func (Databases) Name() string { return "databases" }

func (Databases) Handles() []string {
	return []string{
		domain.DatabaseRequested{}.EventType(), domain.DatabaseProvisioned{}.EventType(),
		domain.DatabaseProvisioningFailed{}.EventType(), domain.DatabaseStopped{}.EventType(),
		domain.DatabaseStarted{}.EventType(), domain.DatabaseDeleted{}.EventType(),
		domain.DatabaseRestored{}.EventType(), domain.DatabasePurged{}.EventType(),
		domain.DatabaseOwnerChanged{}.EventType(), domain.DatabaseCredentialsRotated{}.EventType(),
		domain.DatabaseStorageMeasured{}.EventType(), domain.DatabaseWritesRestricted{}.EventType(),
		domain.DatabaseWritesRestored{}.EventType(),
		domain.QueryExecuted{}.EventType(),
	}
}

// Lazy: executed queries only move last_used_at, by the minute; they need not wake the projector.
func (Databases) Lazy() ([]string, time.Duration) {
	return []string{domain.QueryExecuted{}.EventType()}, time.Second
}

// lastUsedGrain is how far a query must be past a database's last_used_at to move it.
const lastUsedGrain = time.Minute

// usedDatabase reports whether a recorded query counts as use of its database: not when it was
// refused before reaching it (denied), nor when the database was stopped or unavailable.
func usedDatabase(q domain.QueryExecuted) bool {
	return q.Status != domain.QueryDenied && q.ErrorCode != "database_stopped" && q.ErrorCode != "database_unavailable"
}

func (Databases) Tables() []Table {
	return []Table{{Name: "database_list", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
		database_id       CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY,
		tenant_id         CHAR(36) CHARACTER SET ascii NOT NULL,
		name              VARCHAR(64) NOT NULL,
		state             VARCHAR(16) NOT NULL,
		state_before      VARCHAR(16) NULL,
		charset           VARCHAR(64) NOT NULL,
		collation         VARCHAR(64) NOT NULL,
		template          VARCHAR(16) NOT NULL,
		owner_id          CHAR(36) CHARACTER SET ascii NOT NULL,
		server            VARCHAR(300) NOT NULL,
		created_at        DATETIME(6) NOT NULL,
		updated_at        DATETIME(6) NOT NULL,
		last_used_at      DATETIME(6) NULL,
		idle_since        DATETIME(6) NULL,
		storage_bytes     BIGINT NOT NULL DEFAULT 0,
		writes_restricted BOOL NOT NULL DEFAULT 0,
		wall_resource     VARCHAR(16) CHARACTER SET ascii NULL,
		wall_used         BIGINT NOT NULL DEFAULT 0,
		wall_limit        BIGINT NOT NULL DEFAULT 0,
		recoverable_until DATETIME(6) NULL,
		failure_reason    VARCHAR(1000) NULL,
		version           BIGINT NOT NULL,
		KEY databases_tenant (tenant_id, state),
		KEY databases_state (state, created_at)
	) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`}}
}

// Apply keeps one row per database; each change is guarded by the stream version, so a redelivered
// event changes nothing.
func (p Databases) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	table := t.Name("database_list")
	used := map[usedKey][]time.Time{} // the queries of each database in the batch, in log order
	var order []usedKey
	for _, env := range events {
		e, err := decodeEvent(p.reg, env)
		if err != nil {
			return err
		}
		if q, ok := e.(domain.QueryExecuted); ok {
			if usedDatabase(q) {
				key := usedKey{q.DatabaseID, q.TenantID}
				if _, seen := used[key]; !seen {
					order = append(order, key)
				}
				used[key] = append(used[key], q.At.UTC().Truncate(time.Microsecond)) // as DATETIME(6) keeps it
			}
			continue
		}
		if r, ok := e.(domain.DatabaseRequested); ok {
			_, err = tx.ExecContext(ctx, `INSERT IGNORE INTO `+table+` (database_id, tenant_id, name, state, charset, collation,
				template, owner_id, server, created_at, updated_at, version) VALUES (?, ?, ?, 'provisioning', ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.DatabaseID, r.TenantID, r.Name, r.Charset, r.Collation, r.Template, r.OwnerID, r.Server,
				r.At.UTC(), env.RecordedAt, env.StreamVersion)
			if err != nil {
				return fmt.Errorf("databases at %d: %w", env.Position, err)
			}
			continue
		}
		set, args := databaseChange(e)
		args = append(args, env.RecordedAt, env.StreamVersion, env.StreamID[len("database-"):], env.StreamVersion)
		if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET `+set+`, updated_at = ?, version = ?
			WHERE database_id = ? AND version < ?`, args...); err != nil {
			return fmt.Errorf("databases at %d: %w", env.Position, err)
		}
	}
	for _, key := range order {
		if err := markUsed(ctx, tx, table, key, used[key]); err != nil {
			return err
		}
	}
	return nil
}

type usedKey struct {
	id     domain.DatabaseID
	tenant domain.TenantID
}

// markUsed moves a database's last_used_at through the times of its queries, in order, as one
// query at a time would: to a query's time when that is at least lastUsedGrain past it. Only the
// queries touch last_used_at, so applying a batch's at the end gives what applying them in place
// would, and a rebuild in other batches the same.
func markUsed(ctx context.Context, tx *sql.Tx, table string, key usedKey, times []time.Time) error {
	var last sql.NullTime
	err := tx.QueryRowContext(ctx, `SELECT last_used_at FROM `+table+` WHERE database_id = ? AND tenant_id = ?`, key.id, key.tenant).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // another tenant's claim, or a database the log never created
	} else if err != nil {
		return fmt.Errorf("databases: last use of %s: %w", key.id, err)
	}
	moved := last
	for _, at := range times {
		if !moved.Valid || !at.Before(moved.Time.Add(lastUsedGrain)) {
			moved = sql.NullTime{Time: at, Valid: true}
		}
	}
	if !moved.Valid || (last.Valid && moved.Time.Equal(last.Time)) {
		return nil
	}
	_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET last_used_at = ? WHERE database_id = ?`, moved.Time, key.id)
	return err
}

// databaseChange is the column update of an event after the request. idle_since is when the
// database last became usable (provisioned, started, restored); the auto-stop reactor counts its
// idle time from the later of it and last_used_at.
func databaseChange(e domain.Event) (string, []any) {
	switch e := e.(type) {
	case domain.DatabaseProvisioned:
		return "state = 'running', idle_since = ?", []any{e.At.UTC()}
	case domain.DatabaseProvisioningFailed:
		return "state = 'failed', failure_reason = ?", []any{clip(e.Reason, 1000)}
	case domain.DatabaseStopped:
		return "state = 'stopped'", nil
	case domain.DatabaseStarted:
		return "state = 'running', idle_since = ?", []any{e.At.UTC()}
	case domain.DatabaseDeleted:
		return "state_before = state, state = 'deleted', recoverable_until = ?", []any{e.RecoverableUntil.UTC()}
	case domain.DatabaseRestored:
		return "state = COALESCE(state_before, 'running'), state_before = NULL, recoverable_until = NULL, idle_since = ?", []any{e.At.UTC()}
	case domain.DatabasePurged:
		return "state = 'purged'", nil
	case domain.DatabaseOwnerChanged:
		return "owner_id = ?", []any{e.To}
	case domain.DatabaseStorageMeasured:
		return "storage_bytes = ?", []any{e.Bytes}
	case domain.DatabaseWritesRestricted:
		wall := e.Wall()
		return "writes_restricted = 1, wall_resource = ?, wall_used = ?, wall_limit = ?", []any{wall.Resource, wall.Used, wall.Limit}
	case domain.DatabaseWritesRestored:
		return "writes_restricted = 0, wall_resource = NULL, wall_used = 0, wall_limit = 0", nil
	}
	return "state = state", nil // credentials rotated: only updated_at moves
}
