package eventstore_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/eventstore"
)

func TestMessageRoundTrip(t *testing.T) {
	full := eventstore.Envelope{
		Position:      42,
		EventID:       uuid.NewString(),
		StreamID:      "database-" + uuid.NewString(),
		StreamType:    "database",
		StreamVersion: 7,
		EventType:     "test.item_added.v1",
		Payload:       json.RawMessage(`{"item":"apple","qty":3}`),
		Metadata: eventstore.Metadata{
			ActorID: "user-1", TenantID: "tenant-1", CorrelationID: "corr-1", CausationID: "cause-1",
			RequestID: "req-1", IP: "2001:db8::1", UserAgent: "Mozilla/5.0 (X11; Linux) \"quoted\"",
			SessionID: "session-1", APIKeyID: "key-1",
		},
		RecordedAt: time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC),
		ChainID:    "tenant-1",
		ChainSeq:   3,
	}
	bare := full
	bare.Metadata, bare.ChainID, bare.ChainSeq = eventstore.Metadata{}, "", 0
	for name, env := range map[string]eventstore.Envelope{"every field": full, "no metadata": bare} {
		t.Run(name, func(t *testing.T) {
			msg := eventstore.ToMessage(env)
			if msg.UUID != env.EventID || string(msg.Payload) != string(env.Payload) {
				t.Errorf("message %s with payload %s, want the event id and payload", msg.UUID, msg.Payload)
			}
			got, err := eventstore.FromMessage(msg)
			if err != nil {
				t.Fatal(err)
			}
			assertEnvelope(t, got, env)

			// A message that went over the wire (or through a subscriber) is rebuilt from its parts.
			copied := message.NewMessage(msg.UUID, append(message.Payload(nil), msg.Payload...))
			for k, v := range msg.Metadata {
				copied.Metadata.Set(k, v)
			}
			got, err = eventstore.FromMessage(copied)
			if err != nil {
				t.Fatal(err)
			}
			assertEnvelope(t, got, env)
		})
	}

	t.Run("not an event message", func(t *testing.T) {
		if _, err := eventstore.FromMessage(message.NewMessage(uuid.NewString(), []byte(`{}`))); err == nil {
			t.Error("FromMessage accepted a message without position, version or time")
		}
	})
}

func assertEnvelope(t *testing.T, got, want eventstore.Envelope) {
	t.Helper()
	if !got.RecordedAt.Equal(want.RecordedAt) || got.RecordedAt.Location() != time.UTC {
		t.Errorf("recorded at %v, want %v in UTC", got.RecordedAt, want.RecordedAt)
	}
	got.RecordedAt, want.RecordedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestWatermillSchemaInsertQuery(t *testing.T) {
	msgs := []*message.Message{
		eventstore.ToMessage(eventstore.Envelope{Position: 1, EventID: uuid.NewString(), StreamID: "s", StreamType: "t", StreamVersion: 1, EventType: "e", Payload: json.RawMessage(`{}`)}),
		eventstore.ToMessage(eventstore.Envelope{Position: 2, EventID: uuid.NewString(), StreamID: "s", StreamType: "t", StreamVersion: 2, EventType: "e", Payload: json.RawMessage(`{}`)}),
	}
	if _, err := (eventstore.WatermillSchema{}).InsertQuery(wsql.InsertQueryParams{Topic: eventstore.Topic, Msgs: msgs}); err == nil {
		t.Error("InsertQuery accepted events without their link in a chain")
	}
	for i, msg := range msgs { // as the store's writer places them
		eventstore.Place(msg, int64(i+1), eventstore.Link{ChainID: "platform", ChainSeq: int64(i + 1), EventID: msg.UUID}, eventstore.Hash{}, []byte("{}"))
	}
	if _, err := (eventstore.WatermillSchema{}).InsertQuery(wsql.InsertQueryParams{Topic: "other", Msgs: msgs}); err == nil {
		t.Error("InsertQuery accepted another topic")
	}
	q, err := eventstore.WatermillSchema{}.InsertQuery(wsql.InsertQueryParams{Topic: eventstore.Topic, Msgs: msgs})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Args) != 24 {
		t.Errorf("%d args for 2 messages, want 24", len(q.Args))
	}

	// A publisher on another topic, even bound to the store's database, writes nothing.
	_, db := newStore(t, eventstore.Options{})
	pub, err := wsql.NewPublisher(wsql.BeginnerFromStdSQL(db), wsql.PublisherConfig{SchemaAdapter: eventstore.WatermillSchema{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("other", msgs...); err == nil {
		t.Error("published to another topic")
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM events`); n != 0 {
		t.Errorf("%d events written", n)
	}
}

// TestStoredEventsAsMessages reads appended events back through the schema adapter's select and
// unmarshal, as a watermill-sql subscriber does.
func TestStoredEventsAsMessages(t *testing.T) {
	s, db := newStore(t, eventstore.Options{})
	ctx := context.Background()
	mustAppend(t, s, eventstore.Append{Streams: []eventstore.Stream{{ID: "cart-1", Type: "cart", Events: items(3)}}, Metadata: eventstore.Metadata{ActorID: "user-1", IP: "198.51.100.1"}})
	stored, err := s.ReadAll(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	schema := eventstore.WatermillSchema{BatchSize: 2}
	q, err := schema.SelectQuery(wsql.SelectQueryParams{Topic: eventstore.Topic, ConsumerGroup: "g", OffsetsAdapter: fixedOffset{1}})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, q.Query, q.Args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []eventstore.Envelope
	for rows.Next() {
		row, err := schema.UnmarshalMessage(wsql.UnmarshalMessageParams{Row: rows})
		if err != nil {
			t.Fatal(err)
		}
		env, err := eventstore.FromMessage(row.Msg)
		if err != nil {
			t.Fatal(err)
		}
		if row.Offset != env.Position || string(row.UUID) != env.EventID {
			t.Errorf("row offset %d uuid %s, want the position and event id", row.Offset, row.UUID)
		}
		got = append(got, env)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("a batch of %d after offset 1, want 2 (positions 2, 3)", len(got))
	}
	for i, env := range got {
		assertEnvelope(t, env, stored[i+1])
	}
}

// fixedOffset is an offsets adapter whose consumer group has consumed up to a fixed offset.
type fixedOffset struct{ offset int64 }

func (f fixedOffset) AckMessageQuery(wsql.AckMessageQueryParams) (wsql.Query, error) {
	return wsql.Query{}, nil
}

func (f fixedOffset) ConsumedMessageQuery(wsql.ConsumedMessageQueryParams) (wsql.Query, error) {
	return wsql.Query{}, nil
}

func (f fixedOffset) NextOffsetQuery(wsql.NextOffsetQueryParams) (wsql.Query, error) {
	return wsql.Query{Query: "SELECT ?", Args: []any{f.offset}}, nil
}

func (f fixedOffset) SchemaInitializingQueries(wsql.OffsetsSchemaInitializingQueriesParams) ([]wsql.Query, error) {
	return nil, nil
}

func (f fixedOffset) BeforeSubscribingQueries(wsql.BeforeSubscribingQueriesParams) ([]wsql.Query, error) {
	return nil, nil
}
