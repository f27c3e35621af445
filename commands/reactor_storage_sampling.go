package commands

import (
	"context"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

// The storage sampler reacts to time passing and to writes (reactor_writes.go): it measures the
// schemas listed in the database_list read model (a WorkQueue) on their sandbox servers and records
// the sizes that changed as database.storage_measured.v1.

// SampleStorage measures the schemas of every database that has one, server by server, and records
// the sizes that changed. It returns how many changed; the databases read model shows them when it
// returns.
func (h *Databases) SampleStorage(ctx context.Context) (int, error) {
	return h.sampleStorage(ctx, nil)
}

// sampleStorage measures the databases in ids (all when nil).
func (h *Databases) sampleStorage(ctx context.Context, ids []domain.DatabaseID) (int, error) {
	query := `SELECT server, database_id, storage_bytes FROM database_list WHERE state IN ('running', 'stopped', 'deleted')`
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	if ids != nil {
		if len(ids) == 0 {
			return 0, nil
		}
		query += ` AND database_id IN (` + sqlparams.List(len(ids)) + `)`
	}
	rows, err := h.queue.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("databases to measure: %w", err)
	}
	byServer := map[string][]string{}
	known := map[string]int64{}
	for rows.Next() {
		var server, id string
		var bytes int64
		if err := rows.Scan(&server, &id, &bytes); err != nil {
			rows.Close()
			return 0, err
		}
		byServer[server] = append(byServer[server], id)
		known[id] = bytes
	}
	rows.Close()
	changed := 0
	var last int64 // position of the last measurement recorded
	for name, ids := range byServer {
		server, err := h.fleet.Get(name)
		if err != nil {
			continue
		}
		sizes, err := server.StorageBytes(ctx, ids)
		if err != nil {
			h.log.Warn("storage sampling skipped a server", "server", name, "err", err)
			continue
		}
		for id, bytes := range sizes {
			if bytes == known[id] {
				continue
			}
			position, err := h.recordStorage(ctx, domain.DatabaseID(id), bytes)
			if err != nil {
				return changed, err
			}
			last = max(last, position)
			changed++
		}
	}
	if last > 0 { // the storage quota is enforced from the read model
		return changed, h.readModels.WaitFor(ctx, last, "databases")
	}
	return changed, nil
}

// recordStorage records a database's new size and returns the position of the event (0 when the
// size was recorded already).
func (h *Databases) recordStorage(ctx context.Context, id domain.DatabaseID, bytes int64) (int64, error) {
	var position int64
	err := retry(ctx, func() error {
		d, err := h.load(ctx, id)
		if err != nil {
			return err
		}
		if d.MeasureStorage(bytes, h.now()); len(d.PendingEvents()) == 0 {
			return nil
		}
		res, err := h.events.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "database", d)},
			Metadata: eventstore.Metadata{TenantID: string(d.TenantID()), UserAgent: "clouddb storage sampler"}})
		position = res.LastPosition
		return err
	})
	return position, err
}
