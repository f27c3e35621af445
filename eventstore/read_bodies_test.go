package eventstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/clouddbmanager/clouddb/eventstore"
)

// TestReadAllBodiesIsReadAllWithoutTheRest: a rebuild's read gives each event's position, id,
// stream, type, payload and recording time as ReadAll does, in the same order and pages, and
// nothing else.
func TestReadAllBodiesIsReadAllWithoutTheRest(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, eventstore.Options{})
	for i := range 5 {
		mustAppend(t, s, one(fmt.Sprint("cart-", i), 0, items(3)...))
	}
	for _, page := range [][2]int64{{0, 100}, {0, 4}, {7, 5}, {15, 10}} {
		all, err := s.ReadAll(ctx, page[0], int(page[1]))
		if err != nil {
			t.Fatal(err)
		}
		bodies, err := s.ReadAllBodies(ctx, page[0], int(page[1]))
		if err != nil {
			t.Fatal(err)
		}
		if len(bodies) != len(all) {
			t.Fatalf("after %d, limit %d: %d bodies, %d events", page[0], page[1], len(bodies), len(all))
		}
		for i, e := range all {
			want := eventstore.Envelope{Position: e.Position, EventID: e.EventID, StreamID: e.StreamID, EventType: e.EventType,
				Payload: e.Payload, RecordedAt: e.RecordedAt}
			got := bodies[i]
			if got.Position != want.Position || got.EventID != want.EventID || got.StreamID != want.StreamID ||
				got.EventType != want.EventType || string(got.Payload) != string(want.Payload) || !got.RecordedAt.Equal(want.RecordedAt) ||
				got.RecordedAt.Location() != want.RecordedAt.Location() || got.StreamType != "" || got.StreamVersion != 0 ||
				got.Metadata != (eventstore.Metadata{}) || got.ChainID != "" || got.ChainSeq != 0 {
				t.Fatalf("body %d is %+v, want %+v", i, got, want)
			}
		}
	}
}
