package commands

import (
	"context"
	"errors"
	"time"
)

// Housekeeping reacts to time passing: every round it reconnects sandbox servers that are down and
// runs the storage sampler, the storage wall and the auto-stop reactor over every database.

// housekeepingRoundLimit bounds a housekeeping round, every server and database together.
const housekeepingRoundLimit = 5 * time.Minute

// RunHousekeeping reconnects sandbox servers that are down, samples storage, enforces the storage
// quotas and stops idle databases every interval until ctx ends.
func (h *Databases) RunHousekeeping(ctx context.Context, interval time.Duration) {
	runRounds(ctx, h.log, "housekeeping", within(housekeepingRoundLimit, func(ctx context.Context) (int, error) {
		started := time.Now()
		reconnectErr := h.fleet.Reconnect(ctx)
		measured, sampleErr := h.SampleStorage(ctx)
		restricted, enforceErr := h.EnforceStorage(ctx)
		stopped, stopErr := h.StopIdle(ctx)
		h.log.Debug("housekeeping round done", "storage_changed", measured, "restrictions_changed", restricted,
			"stopped", stopped, "took_ms", time.Since(started).Milliseconds())
		return 0, errors.Join(reconnectErr, sampleErr, enforceErr, stopErr)
	}), nil, interval)
}
