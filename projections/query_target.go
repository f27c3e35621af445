package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
)

// QueryTarget is what a query needs to know before it runs: the database, its tenant's plan and
// settings, and the storage the tenant uses now; and the versions of the database's and the
// tenant's streams the rows reflect, which the query's record is appended against.
type QueryTarget struct {
	Database     DatabaseView
	Plan         domain.PlanID
	Settings     domain.TenantSettings
	StorageBytes int64 // the tenant's, counted as DatabaseUsage counts it
	// MemberMaxConnections is the user's connection sub-quota in the tenant (member_quotas), 0
	// for none.
	MemberMaxConnections int64
	DatabaseVersion      int64
	TenantVersion        int64
}

// QueryTarget reads a tenant's database with its tenant, and the sub-quota of user there, in one
// round trip. Returns domain.ErrNotFound for a database of another tenant, or purged.
func (q *Views) QueryTarget(ctx context.Context, tenant domain.TenantID, user domain.UserID, id domain.DatabaseID) (QueryTarget, error) {
	var (
		t        QueryTarget
		settings []byte
		err      error
	)
	row := q.db.QueryRowContext(ctx, `SELECT `+databaseColumns+`,
			(SELECT plan FROM tenants t WHERE t.tenant_id = d.tenant_id),
			(SELECT settings FROM tenants t WHERE t.tenant_id = d.tenant_id),
			(SELECT COALESCE(SUM(IF(u.state IN ('running', 'stopped', 'deleted'), u.storage_bytes, 0)), 0)
				FROM database_list u WHERE u.tenant_id = d.tenant_id),
			(SELECT COALESCE(MAX(q.max_connections), 0) FROM member_quotas q WHERE q.tenant_id = d.tenant_id AND q.user_id = ?),
			d.version,
			(SELECT version FROM tenants t WHERE t.tenant_id = d.tenant_id)
		FROM database_list d WHERE d.database_id = ? AND d.tenant_id = ? AND d.state <> 'purged'`, user, id, tenant)
	t.Database, err = scanDatabase(withExtra{row, []any{&t.Plan, &settings, &t.StorageBytes, &t.MemberMaxConnections, &t.DatabaseVersion, &t.TenantVersion}})
	if errors.Is(err, sql.ErrNoRows) {
		return QueryTarget{}, fmt.Errorf("database %s: %w", id, domain.ErrNotFound)
	} else if err != nil {
		return QueryTarget{}, fmt.Errorf("read database %s for a query: %w", id, err)
	}
	return t, json.Unmarshal(settings, &t.Settings)
}

// withExtra scans a row's leading columns into what the caller asks and the rest into extra.
type withExtra struct {
	row   *sql.Row
	extra []any
}

func (w withExtra) Scan(dest ...any) error { return w.row.Scan(append(dest, w.extra...)...) }
