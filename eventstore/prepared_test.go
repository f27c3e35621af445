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
	for i, n := range []int{1, 2, 64, 65, 130} {
		events := make([]domain.Event, n)
		for j := range events {
			events[j] = blob{Data: map[string]any{"n": j, "text": fmt.Sprintf("é \"q\" \\ ' \u0000 <&> %d", j), "list": []any{1.5, nil, true}}}
		}
		clock.Set(clock.Now().Add(time.Second + time.Microsecond))
		mustAppend(t, s, one(fmt.Sprintf("item-%d", i), 0, events...))
		want = append(want, events...)
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
