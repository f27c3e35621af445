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
		reconnectErr := h.fleet.Reconnect(ctx)
		_, sampleErr := h.SampleStorage(ctx)
		_, enforceErr := h.EnforceStorage(ctx)
		_, stopErr := h.StopIdle(ctx)
		return 0, errors.Join(reconnectErr, sampleErr, enforceErr, stopErr)
	}), nil, interval)
}
