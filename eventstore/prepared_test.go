package eventstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Group commits of up to 64 events insert them prepared (binary protocol), larger ones as text:
// either way the log holds each payload and recording time exactly, and its chains verify.
func TestPreparedAndTextInsertsHoldTheSameLog(t *testing.T) {
	clock := &settableClock{t: time.Date(2026, 12, 7, 17, 30, 0, 123456000, time.UTC)}
	s, db := newStore(t, eventstore.Options{Clock: clock.Now})
	ctx := context.Background()
	var want []domain.Event
	// Each size twice: its first group commit goes as text while its statement is prepared in
	// the background, the second (after the preparations) prepared, but for 65 and 130 rows.
	sizes := []int{1, 2, 64, 65, 130}
	for round := range 2 {
		for i, n := range sizes {
			events := make([]domain.Event, n)
			for j := range events {
				events[j] = blob{Data: map[string]any{"n": j, "text": fmt.Sprintf("é \"q\" \\ ' \u0000 <&> %d", j), "list": []any{1.5, nil, true}}}
			}
			clock.Set(clock.Now().Add(time.Second + time.Microsecond))
			mustAppend(t, s, one(fmt.Sprintf("item-%d-%d", round, i), 0, events...))
			want = append(want, events...)
		}
		if prepared := eventstore.PreparedInserts(s); prepared != 3 {
			t.Fatalf("round %d: %d inserts prepared, want 3 (1, 2 and 64 rows)", round, prepared)
		}
	}
	got, err := s.ReadAll(ctx, 0, 1000)
	if err != nil || len(got) != len(want) {
		t.Fatalf("read %d events of %d: %v", len(got), len(want), err)
	}
	at := map[string]time.Time{}
	for i, env := range got {
		payload, _ := json.Marshal(want[i])
		if !bytes.Equal(env.Payload, payload) {
			t.Fatalf("position %d: payload %s, want %s", env.Position, env.Payload, payload)
		}
		if first, ok := at[env.StreamID]; ok && !env.RecordedAt.Equal(first) {
			t.Fatalf("position %d recorded at %v, its append at %v", env.Position, env.RecordedAt, first)
		}
		at[env.StreamID] = env.RecordedAt
	}
	if got[0].RecordedAt.Nanosecond()%1000 != 0 || got[0].RecordedAt.Nanosecond() == 0 {
		t.Fatalf("recorded at %v: microseconds lost", got[0].RecordedAt)
	}
	if sum, err := eventstore.VerifyLive(ctx, db, nil, nil); err != nil || sum.Records != int64(len(want)) {
		t.Fatalf("verify: %+v, %v", sum, err)
	}
}
