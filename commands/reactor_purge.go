package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// The purge reactor reacts to deleted databases whose recovery window has passed (the
// database_list read model, a WorkQueue): it drops their schema and accounts on the sandbox server,
// erases their passwords and records database.purged.v1.

// purgeRoundLimit bounds a purge round (its rows stay locked while their schemas are dropped).
const purgeRoundLimit = 2 * time.Minute

// RunPurge purges databases past their recovery window every interval until ctx ends.
func (h *Databases) RunPurge(ctx context.Context, interval time.Duration) {
	runRounds(ctx, h.log, "purge round", within(purgeRoundLimit, h.PurgeDue), nil, interval)
}

// PurgeDue drops the schema and accounts of deleted databases whose recovery window has passed,
// up to a batch, and returns how many it purged.
func (h *Databases) PurgeDue(ctx context.Context) (int, error) {
	tx, due, err := claimDue(ctx, h.queue, `SELECT database_id FROM database_list WHERE state = 'deleted'
		AND recoverable_until <= ? ORDER BY recoverable_until LIMIT 20 FOR UPDATE SKIP LOCKED`, h.now().UTC())
	if err != nil {
		return 0, fmt.Errorf("databases to purge: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	purged := 0
	for _, raw := range due {
		id := domain.DatabaseID(raw)
		d, err := h.load(ctx, id)
		if err != nil {
			return purged, err
		}
		if err := d.Purge(h.now()); err != nil {
			continue // restored, or purged already: the read model lags behind
		}
		server, err := h.fleet.Get(d.Requested().Server)
		if err == nil {
			err = server.Drop(ctx, string(id))
		}
		if err != nil {
			h.log.Warn("purge waits for the sandbox server", "database_id", id, "server", d.Requested().Server, "err", err)
			continue
		}
		// No waiting for the read model: this transaction holds the row it would update.
		if _, err := h.events.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "database", d)},
			Metadata: eventstore.Metadata{TenantID: string(d.TenantID()), UserAgent: "clouddb purge"}}); err != nil {
			return purged, err
		}
		for _, secret := range []string{rwSecret(id), roSecret(id)} {
			if err := h.secrets.Erase(ctx, secret); err != nil {
				return purged, err
			}
		}
		h.log.Info("database purged", "database_id", id, "server", d.Requested().Server)
		purged++
	}
	return purged, tx.Commit()
}
