package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clouddbmanager/clouddb/eventstore"
)

// An unhurried append (a query's outcome, nobody waits for it) rides in the transaction of the
// append that comes next, instead of costing a commit of its own; Close commits one still waiting.
func TestUnhurriedAppendRidesWithTheNext(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, db := newStore(t, eventstore.Options{Metrics: reg, UnhurriedWait: time.Hour})
	ctx := context.Background()
	unhurried := func(stream string) *eventstore.Pending {
		a := one(stream, 0, items(1)...)
		a.Unhurried = true
		p, err := s.Enqueue(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	outcome := unhurried("outcome")
	mustAppend(t, s, one("next", 0, items(1)...)) // returns once committed, with the outcome
	if _, err := outcome.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := batches(t, reg); got != 1 {
		t.Errorf("%d group commits for an unhurried append and the next one; want 1", got)
	}

	last := unhurried("last")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := last.Wait(ctx); err != nil {
		t.Errorf("an unhurried append waiting at Close: %v", err)
	}
	if got := countRows(t, db, `SELECT COUNT(*) FROM events`); got != 3 {
		t.Errorf("%d events in the log, want 3", got)
	}
}
