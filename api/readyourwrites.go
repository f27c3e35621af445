package api

import (
	"context"
	"time"

	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

// readYourWritesWait bounds how long a read waits for its read model to show what this process
// wrote before it; past it, the read answers what is there.
const readYourWritesWait = 2 * time.Second

// caughtUp waits (readYourWritesWait at most) until the named read models hold what this process
// wrote before the request, so that a caller sees their own last change at once: first the
// outcomes of the queries it answered, which are queued into the log's group commit but not
// flushed when the answer goes out (commands.QueryRunner.OutcomesRecorded), then every append it
// committed, up to store's LocalHead. Without a store or projections (a server mounted in part),
// it does not wait.
func (s *Server) caughtUp(ctx context.Context, store *eventstore.Store, models *projections.Runtime, names ...string) {
	if store == nil || models == nil {
		return
	}
	wait, cancel := context.WithTimeout(ctx, readYourWritesWait)
	defer cancel()
	if s.queries.Commands != nil {
		_ = s.queries.Commands.OutcomesRecorded(wait) //nolint:errcheck // past the wait, answer what is there
	}
	head, _ := store.LocalHead()
	_ = models.WaitFor(wait, head, names...) //nolint:errcheck // past the wait, answer what is there
}
