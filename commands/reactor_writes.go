package commands

import (
	"context"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// The write sampler reacts to statements that wrote (the query engine calls MeasureSoon): it
// measures those databases within seconds and moves the storage wall for their tenants at once,
// rather than at the next housekeeping round.

// MeasureSoon asks for database id's storage to be measured within a few seconds: a statement
// may have changed it. The query engine calls it after writes.
func (h *Databases) MeasureSoon(id domain.DatabaseID) {
	h.written.Lock()
	defer h.written.Unlock()
	if h.written.ids == nil {
		h.written.ids = map[domain.DatabaseID]bool{}
	}
	h.written.ids[id] = true
}

// writeSamplingRoundLimit bounds a round of measuring written databases.
const writeSamplingRoundLimit = time.Minute

// RunWriteSampling measures the databases written to since its last round, every interval.
func (h *Databases) RunWriteSampling(ctx context.Context, interval time.Duration) {
	runRounds(ctx, h.log, "storage sampling after writes", within(writeSamplingRoundLimit, func(ctx context.Context) (int, error) {
		h.written.Lock()
		ids := make([]domain.DatabaseID, 0, len(h.written.ids))
		for id := range h.written.ids {
			ids = append(ids, id)
		}
		h.written.ids = nil
		h.written.Unlock()
		changed, err := h.sampleStorage(ctx, ids)
		if err != nil || changed == 0 {
			return 0, err
		}
		// The wall follows the writes: their tenants' storage quota is enforced at once.
		_, err = h.enforceStorage(ctx, ids)
		return 0, err
	}), nil, interval)
}
