package commands

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

// The storage wall reacts to the storage the read model counts for each tenant (database_list,
// a WorkQueue): at or over the plan's MaxStorageBytes, its databases' writes are restricted; back
// under it, restored. A member with a storage sub-quota (member_quotas) has the same wall over
// their own databases: at or over it, the writes of the databases they own are restricted.
// Housekeeping, the write sampler and a change of sub-quota run it.

// EnforceStorage puts up the storage wall behind the query API's quota check: for each tenant
// whose storage (as DatabaseUsage counts it, from the read model) is at or over its plan's
// MaxStorageBytes, it restricts the writes of its databases that are running or stopped (their
// read-write account keeps reading, DELETE, DROP and TRUNCATE: see sandbox.Grants), and for each
// tenant under its limit it restores the writes it restricted. Each change records
// database.writes_restricted.v1 or database.writes_restored.v1 and then converges the server on it,
// as the other lifecycle changes do. It returns how many databases changed; a database whose
// server does not answer is left for the next round.
func (h *Databases) EnforceStorage(ctx context.Context) (int, error) {
	return h.enforceStorage(ctx, nil)
}

// enforceStorage enforces the storage quota of the tenants of the databases in ids (all when nil).
func (h *Databases) enforceStorage(ctx context.Context, ids []domain.DatabaseID) (int, error) {
	if ids != nil && len(ids) == 0 {
		return 0, nil
	}
	h.wall.Lock()
	defer h.wall.Unlock()
	limitOfPlan := `CASE t.plan` // NULL for a plan that no longer exists: no limit
	var args []any
	for _, p := range domain.Plans {
		limitOfPlan += ` WHEN ? THEN ?`
		args = append(args, p.ID, p.Limits.MaxStorageBytes)
	}
	limitOfPlan += ` END`
	scope := ``
	var scopeArgs []any
	if ids != nil {
		scope = ` WHERE x.tenant_id IN (SELECT tenant_id FROM database_list WHERE database_id IN (` + sqlparams.List(len(ids)) + `))`
		for _, id := range ids {
			scopeArgs = append(scopeArgs, id)
		}
	}
	args = append(append(args, scopeArgs...), scopeArgs...)
	// The databases whose restriction differs from what their tenant's usage, or their owner's,
	// asks for.
	rows, err := h.queue.QueryContext(ctx, `SELECT d.tenant_id, d.database_id, u.used, u.storage_limit,
			COALESCE(o.used, 0), q.max_storage_bytes
		FROM database_list d JOIN (
			SELECT x.tenant_id, SUM(IF(x.state IN ('running', 'stopped', 'deleted'), x.storage_bytes, 0)) AS used,
				`+limitOfPlan+` AS storage_limit
			FROM database_list x JOIN tenants t ON t.tenant_id = x.tenant_id`+scope+`
			GROUP BY x.tenant_id, t.plan) u ON u.tenant_id = d.tenant_id
		LEFT JOIN (
			SELECT x.tenant_id, x.owner_id, SUM(IF(x.state IN ('running', 'stopped', 'deleted'), x.storage_bytes, 0)) AS used
			FROM database_list x`+scope+`
			GROUP BY x.tenant_id, x.owner_id) o ON o.tenant_id = d.tenant_id AND o.owner_id = d.owner_id
		LEFT JOIN member_quotas q ON q.tenant_id = d.tenant_id AND q.user_id = d.owner_id
		WHERE d.state IN ('running', 'stopped')
		AND d.writes_restricted <> (COALESCE(u.storage_limit > 0 AND u.used >= u.storage_limit, FALSE)
			OR COALESCE(o.used >= q.max_storage_bytes, FALSE))
		ORDER BY d.tenant_id, d.database_id`, args...)
	if err != nil {
		return 0, fmt.Errorf("databases over or back under their storage quota: %w", err)
	}
	type due struct {
		tenant                domain.TenantID
		id                    domain.DatabaseID
		used, limit           int64 // the tenant's storage and plan limit (0: none)
		ownerUsed, ownerLimit int64 // the owner's storage and sub-quota
		tenantOver, ownerOver bool
	}
	var dues []due
	for rows.Next() {
		var d due
		var limit, ownerLimit sql.NullInt64
		if err := rows.Scan(&d.tenant, &d.id, &d.used, &limit, &d.ownerUsed, &ownerLimit); err != nil {
			rows.Close()
			return 0, err
		}
		d.limit, d.ownerLimit = limit.Int64, ownerLimit.Int64
		d.tenantOver = d.limit > 0 && d.used >= d.limit
		d.ownerOver = ownerLimit.Valid && d.ownerUsed >= d.ownerLimit
		dues = append(dues, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	changed := 0
	for _, d := range dues {
		restrict := d.tenantOver || d.ownerOver
		recorded := false
		_, err := h.change(ctx, d.tenant, d.id, eventstore.Metadata{TenantID: string(d.tenant), UserAgent: "clouddb storage quota"},
			func(db *domain.Database) ([]eventstore.Stream, []eventstore.Claim, []eventstore.Claim, error) {
				switch {
				case d.tenantOver:
					db.RestrictWrites(d.used, d.limit, h.now())
				case d.ownerOver:
					db.RestrictMemberWrites(d.ownerUsed, d.ownerLimit, h.now())
				default:
					db.RestoreWrites(h.now())
				}
				recorded = len(db.PendingEvents()) > 0
				return nil, nil, nil, nil
			})
		if err != nil {
			h.log.Warn("storage quota: changing the writes' restriction failed, retrying later", "database_id", d.id, "restrict", restrict, "err", err)
			continue
		}
		if recorded {
			changed++
			h.log.Info("database writes restricted or restored: the storage of its tenant or owner crossed the limit",
				"database_id", d.id, "tenant_id", d.tenant, "restricted", restrict, "used", d.used, "limit", d.limit,
				"owner_used", d.ownerUsed, "owner_limit", d.ownerLimit)
		}
	}
	return changed, nil
}
