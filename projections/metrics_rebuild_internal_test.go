package projections

import (
	"fmt"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// TestRebuildLogTimeIgnoresOneClockAhead: one event recorded by a clock a day ahead does not move
// the rebuild's log time, which would close every open bucket and make the rest of the log late;
// the batch's last events, recorded later than the open buckets, do.
func TestRebuildLogTimeIgnoresOneClockAhead(t *testing.T) {
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	batch := func(from time.Time, n int, ahead int) []decodedEvent {
		var events []decodedEvent
		for i := range n {
			at := from.Add(time.Duration(i) * time.Second)
			recorded := at
			if i == ahead {
				recorded = at.Add(24 * time.Hour)
			}
			events = append(events, decodedEvent{env: eventstore.Envelope{Position: int64(i + 1), RecordedAt: recorded},
				e: domain.QueryExecuted{TenantID: "t", UserID: "u", DatabaseID: "d", Fingerprint: "SELECT 1", Status: domain.QuerySucceeded, At: at}})
		}
		return events
	}
	for _, ahead := range []int{999, 950, 500, -1} {
		if got := laterLogTime(start, batch(start, 1000, ahead)); !got.Equal(start.Add(936 * time.Second)) {
			t.Fatalf("with event %d recorded a day ahead, the log's time after a batch is %s, want the earliest of its last 64 events", ahead, got)
		}
	}
	if got := laterLogTime(start.Add(time.Hour), batch(start, 10, -1)); !got.Equal(start.Add(time.Hour)) {
		t.Fatalf("the log's time went back to %s", got)
	}
	m := Metrics{}.startRebuild(Tables{}).(*metricsRebuild)
	if _, err := m.fold(batch(start, 100, 50)); err != nil {
		t.Fatal(err)
	}
	if open := len(m.usage) + m.slots.open; open == 0 || m.written["m"] > start.Unix() {
		t.Fatalf("after a batch of the first 100 s with one clock a day ahead, %d buckets are open and minutes are written up to %s",
			open, time.Unix(m.written["m"], 0).UTC())
	}
}

// TestRebuildBoundsItsOpenRows: a tenant running a distinct statement in every query keeps a
// pattern row open per statement until its day is over; past rebuildMaxOpenRows the rebuild
// closes the open buckets rather than holding a day of them.
func TestRebuildBoundsItsOpenRows(t *testing.T) {
	defer func(old int) { rebuildMaxOpenRows = old }(rebuildMaxOpenRows)
	rebuildMaxOpenRows = 500
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	m := Metrics{}.startRebuild(Tables{}).(*metricsRebuild)
	for batch := range 20 {
		var events []decodedEvent
		for i := range 50 {
			at := start.Add(time.Duration(batch*50+i) * 100 * time.Millisecond) // all in one minute
			events = append(events, decodedEvent{env: eventstore.Envelope{Position: int64(batch*50 + i + 1), RecordedAt: at},
				e: domain.QueryExecuted{TenantID: "t", UserID: "u", DatabaseID: "d", Fingerprint: fmt.Sprint("SELECT ", batch*50+i),
					Status: domain.QuerySucceeded, At: at}})
		}
		if _, err := m.fold(events); err != nil {
			t.Fatal(err)
		}
		if open := len(m.usage) + len(m.patterns) + m.slots.open; open > rebuildMaxOpenRows || len(m.texts) > rebuildMaxOpenRows {
			t.Fatalf("after batch %d, %d rows open and %d texts remembered, more than %d", batch, open, len(m.texts), rebuildMaxOpenRows)
		}
	}
}
