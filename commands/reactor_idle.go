package commands

import (
	"context"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// The auto-stop reactor reacts to running databases that nobody used for their tenant's
// auto_stop_minutes (the database_list and tenants read models, a WorkQueue): it stops them with the
// reason "idle", as a user's stop would (Databases.Stop). Housekeeping runs it.

// StopIdle stops running databases that nobody used for their tenant's auto_stop_minutes
// (counted from the later of the last query and the moment they became usable), recording the
// reason "idle". It returns how many it stopped.
func (h *Databases) StopIdle(ctx context.Context) (int, error) {
	rows, err := h.queue.QueryContext(ctx, `SELECT d.tenant_id, d.database_id FROM database_list d JOIN tenants t ON t.tenant_id = d.tenant_id
		WHERE d.state = 'running'
		AND GREATEST(COALESCE(d.last_used_at, d.idle_since), COALESCE(d.idle_since, d.created_at))
			+ INTERVAL CAST(JSON_VALUE(t.settings, '$.auto_stop_minutes') AS INTEGER) MINUTE < ?
		LIMIT 100`, h.now().UTC())
	if err != nil {
		return 0, fmt.Errorf("idle databases: %w", err)
	}
	type idle struct {
		tenant domain.TenantID
		id     domain.DatabaseID
	}
	var due []idle
	for rows.Next() {
		var d idle
		if err := rows.Scan(&d.tenant, &d.id); err != nil {
			rows.Close()
			return 0, err
		}
		due = append(due, d)
	}
	rows.Close()
	stopped := 0
	for _, d := range due {
		if _, err := h.Stop(ctx, d.tenant, d.id, "idle", eventstore.Metadata{TenantID: string(d.tenant), UserAgent: "clouddb auto-stop"}); err != nil {
			h.log.Warn("auto-stop failed, retrying later", "database_id", d.id, "err", err)
			continue
		}
		h.log.Info("database stopped after idling", "database_id", d.id)
		stopped++
	}
	return stopped, rows.Err()
}
