package projections

import (
	"slices"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// A projector's share of a read is the events after its position that it handles, in order.
func TestShareOfARead(t *testing.T) {
	p, err := newProjector(Streams{}) // every type but queries'
	if err != nil {
		t.Fatal(err)
	}
	query, other := domain.QueryExecuted{}.EventType(), domain.DatabaseStopped{}.EventType()
	read := func(types ...string) []eventstore.Envelope {
		events := make([]eventstore.Envelope, len(types))
		for i, typ := range types {
			events[i] = eventstore.Envelope{Position: int64(i + 1), EventType: typ}
		}
		return events
	}
	positions := func(events []eventstore.Envelope) (out []int64) {
		for _, e := range events {
			out = append(out, e.Position)
		}
		return out
	}
	for _, c := range []struct {
		types    []string
		position int64
		want     []int64
	}{
		{[]string{other, other, other}, 1, []int64{2, 3}},
		{[]string{other, query, other, query, other}, 0, []int64{1, 3, 5}},
		{[]string{query, query}, 0, nil},
		{[]string{other, other, query, query}, 1, []int64{2}},
		{[]string{query, other, other, query}, 0, []int64{2, 3}},
		{[]string{other, other}, 2, nil},
	} {
		if got := positions(p.share(read(c.types...), c.position)); !slices.Equal(got, c.want) {
			t.Errorf("%v after %d: %v, want %v", c.types, c.position, got, c.want)
		}
	}
}
