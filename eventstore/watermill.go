package eventstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

// Topic is the watermill topic of the event log.
const Topic = "events"

// Keys of a watermill message's metadata that carry the envelope; the event's own Metadata uses
// the keys of its JSON form (actor_id, tenant_id, ...).
const (
	keyPosition      = "position"
	keyStreamID      = "stream_id"
	keyStreamType    = "stream_type"
	keyStreamVersion = "stream_version"
	keyEventType     = "event_type"
	keyRecordedAt    = "recorded_at"
	keyChainID       = "chain_id"
	keyChainSeq      = "chain_seq"
)

// envelopeColumns are read into an Envelope; an append writes insertColumns.
const (
	envelopeColumns = "position, event_id, stream_id, stream_type, stream_version, event_type, payload, metadata, recorded_at, chain_id, chain_seq"
	insertColumns   = "position, event_id, stream_id, stream_type, stream_version, event_type, payload, metadata, recorded_at, chain_id, chain_seq, hash"
)

// WatermillSchema is the watermill-sql schema adapter that makes the events table a topic: the
// message offset is the global position, the message UUID the event id.
type WatermillSchema struct {
	// BatchSize is how many events a subscriber reads per transaction (default 100).
	BatchSize int
	// Types, when set, are the only event types a subscriber reads; Except, types it never reads.
	// Either way it also reads the last event of the log, so that its offset still reaches the
	// head: a consumer of some types does not fetch and decode every event of the busy others.
	Types  []string
	Except []string
}

var _ wsql.SchemaAdapter = WatermillSchema{}

// SchemaInitializingQueries returns nothing: the events table belongs to the migrations.
func (WatermillSchema) SchemaInitializingQueries(wsql.SchemaInitializingQueriesParams) ([]wsql.Query, error) {
	return nil, nil
}

// InsertQuery inserts messages built by ToMessage and placed in the log by the store's writer.
func (WatermillSchema) InsertQuery(params wsql.InsertQueryParams) (wsql.Query, error) {
	if params.Topic != Topic {
		return wsql.Query{}, fmt.Errorf("eventstore: cannot publish to topic %q", params.Topic)
	}
	args := make([]any, 0, len(placedRow{})*len(params.Msgs))
	for _, msg := range params.Msgs {
		row, ok := msg.Context().Value(placedKey{}).(*placedRow)
		if !ok {
			return wsql.Query{}, fmt.Errorf("eventstore: message %s has no place in the log and its chain", msg.UUID)
		}
		args = append(args, row[:]...)
	}
	return wsql.Query{Query: "INSERT INTO events (" + insertColumns + ") VALUES " + sqlparams.Rows(len(params.Msgs), len(placedRow{})), Args: args}, nil
}

// SelectQuery reads the next batch after the consumer group's offset.
func (s WatermillSchema) SelectQuery(params wsql.SelectQueryParams) (wsql.Query, error) {
	next, err := params.OffsetsAdapter.NextOffsetQuery(wsql.NextOffsetQueryParams{Topic: params.Topic, ConsumerGroup: params.ConsumerGroup})
	if err != nil {
		return wsql.Query{}, err
	}
	batch := s.BatchSize
	if batch <= 0 {
		batch = 100
	}
	where, args := typeFilter("position > ("+next.Query+")", next.Args, s.Types, s.Except)
	return wsql.Query{
		Query: "SELECT " + envelopeColumns + " FROM events WHERE " + where + " ORDER BY position LIMIT " + strconv.Itoa(batch),
		Args:  args,
	}, nil
}

// typeFilter adds to where the condition that keeps only the events of types (when not nil) or not
// of except, and always the last event of the log, so that a reader's position still reaches the
// head: a reader of some types does not fetch and decode every event of the busy others.
func typeFilter(where string, args []any, types, except []string) (string, []any) {
	filter := func(op string, types []string) {
		where += " AND (position = (SELECT last_position FROM event_sequence WHERE id = 1)"
		if len(types) > 0 {
			where += " OR event_type " + op + " (" + sqlparams.List(len(types)) + ")"
			for _, t := range types {
				args = append(args, t)
			}
		}
		where += ")"
	}
	switch {
	case types != nil:
		filter("IN", types)
	case len(except) > 0:
		filter("NOT IN", except)
	}
	return where, args
}

// UnmarshalMessage turns a row of SelectQuery into a message.
func (WatermillSchema) UnmarshalMessage(params wsql.UnmarshalMessageParams) (wsql.Row, error) {
	env, err := scanEnvelope(params.Row)
	if err != nil {
		return wsql.Row{}, err
	}
	msg := ToMessage(env)
	return wsql.Row{Offset: env.Position, UUID: []byte(env.EventID), Payload: env.Payload, Msg: msg}, nil
}

// SubscribeIsolationLevel is READ COMMITTED: positions commit in order, so subscribers need no
// gap locks (watermill's default SERIALIZABLE would make every open batch block all appenders).
func (WatermillSchema) SubscribeIsolationLevel() sql.IsolationLevel {
	return sql.LevelReadCommitted
}

// ToMessage is the watermill form of an envelope.
func ToMessage(env Envelope) *message.Message {
	msg := message.NewMessage(env.EventID, message.Payload(env.Payload))
	msg.Metadata = make(message.Metadata, 8+len(Metadata{}.fields())) // the envelope's and the metadata's: no growing
	md := msg.Metadata
	md.Set(keyPosition, strconv.FormatInt(env.Position, 10))
	md.Set(keyStreamID, env.StreamID)
	md.Set(keyStreamType, env.StreamType)
	md.Set(keyStreamVersion, strconv.FormatInt(env.StreamVersion, 10))
	md.Set(keyEventType, env.EventType)
	md.Set(keyRecordedAt, env.RecordedAt.UTC().Format(time.RFC3339Nano))
	if env.ChainSeq > 0 {
		md.Set(keyChainID, env.ChainID)
		md.Set(keyChainSeq, strconv.FormatInt(env.ChainSeq, 10))
	}
	for _, field := range env.Metadata.fields() {
		if field[1] != "" {
			md.Set(field[0], field[1])
		}
	}
	return msg
}

// placedRow is the row of insertColumns that a message is stored as, once the writer has placed
// it in the log and its chain.
type placedRow [12]any

type placedKey struct{}

// setPlace puts in the context of a message built by ToMessage the row it is inserted as: its
// global position, its link in its chain with the link's hash, and metadata, the append's
// metadata as stored. The writer knows all of it; InsertQuery takes it as it is instead of
// parsing the message back (the chains would otherwise cost appends a tenth of their throughput).
func setPlace(msg *message.Message, position int64, l Link, hash Hash, metadata []byte) {
	msg.SetContext(context.WithValue(msg.Context(), placedKey{}, &placedRow{position, l.EventID, l.StreamID, l.StreamType,
		l.StreamVersion, l.EventType, []byte(msg.Payload), metadata, l.RecordedAt, l.ChainID, l.ChainSeq, hash[:]}))
}

// FromMessage is the envelope carried by a message of the events topic.
func FromMessage(msg *message.Message) (Envelope, error) {
	md := msg.Metadata
	env := Envelope{
		EventID:    msg.UUID,
		StreamID:   md.Get(keyStreamID),
		StreamType: md.Get(keyStreamType),
		EventType:  md.Get(keyEventType),
		Payload:    json.RawMessage(msg.Payload),
	}
	var err error
	if env.Position, err = strconv.ParseInt(md.Get(keyPosition), 10, 64); err != nil {
		return Envelope{}, fmt.Errorf("eventstore: message %s has no position: %w", msg.UUID, err)
	}
	if env.StreamVersion, err = strconv.ParseInt(md.Get(keyStreamVersion), 10, 64); err != nil {
		return Envelope{}, fmt.Errorf("eventstore: message %s has no stream version: %w", msg.UUID, err)
	}
	if env.RecordedAt, err = time.Parse(time.RFC3339Nano, md.Get(keyRecordedAt)); err != nil {
		return Envelope{}, fmt.Errorf("eventstore: message %s has no recording time: %w", msg.UUID, err)
	}
	if seq := md.Get(keyChainSeq); seq != "" {
		env.ChainID = md.Get(keyChainID)
		if env.ChainSeq, err = strconv.ParseInt(seq, 10, 64); err != nil {
			return Envelope{}, fmt.Errorf("eventstore: message %s has a bad chain sequence: %w", msg.UUID, err)
		}
	}
	env.Metadata = metadataFromFields(md.Get)
	return env, nil
}

// fields are the metadata's keys and values; an array, not a map: every message of an append is
// built from them.
func (m Metadata) fields() [10][2]string {
	return [10][2]string{
		{"actor_id", m.ActorID},
		{"tenant_id", m.TenantID},
		{"correlation_id", m.CorrelationID},
		{"causation_id", m.CausationID},
		{"request_id", m.RequestID},
		{"ip", m.IP},
		{"user_agent", m.UserAgent},
		{"session_id", m.SessionID},
		{"api_key_id", m.APIKeyID},
		{"continues", m.Continues},
	}
}

func metadataFromFields(get func(string) string) Metadata {
	return Metadata{
		ActorID:       get("actor_id"),
		TenantID:      get("tenant_id"),
		CorrelationID: get("correlation_id"),
		CausationID:   get("causation_id"),
		RequestID:     get("request_id"),
		IP:            get("ip"),
		UserAgent:     get("user_agent"),
		SessionID:     get("session_id"),
		APIKeyID:      get("api_key_id"),
		Continues:     get("continues"),
	}
}

type scanner interface {
	Scan(dest ...any) error
}

func scanEnvelope(row scanner) (Envelope, error) {
	var env Envelope
	var payload, metadata []byte
	var chainID sql.NullString
	var chainSeq sql.NullInt64
	if err := row.Scan(&env.Position, &env.EventID, &env.StreamID, &env.StreamType, &env.StreamVersion,
		&env.EventType, &payload, &metadata, &env.RecordedAt, &chainID, &chainSeq); err != nil {
		return Envelope{}, fmt.Errorf("eventstore: scan event: %w", err)
	}
	env.Payload, env.ChainID, env.ChainSeq = payload, chainID.String, chainSeq.Int64
	if err := decodeMetadata(metadata, &env.Metadata); err != nil {
		return Envelope{}, fmt.Errorf("eventstore: metadata of position %d: %w", env.Position, err)
	}
	env.RecordedAt = env.RecordedAt.UTC()
	return env, nil
}

// decodeMetadata decodes a stored metadata into md. Metadata as json.Marshal writes it (an object
// of known keys and strings without escapes) is read directly, a field at a time, without
// encoding/json's reflection: every event a projector reads has one. Anything else goes through
// json.Unmarshal, which gives the same result for what the direct way reads.
func decodeMetadata(data []byte, md *Metadata) error {
	if m, ok := plainMetadata(data); ok {
		*md = m
		return nil
	}
	*md = Metadata{}
	return json.Unmarshal(data, md)
}

// plainMetadata reads {"key":"value",...} with the keys of Metadata, each at most once, and values
// without backslashes; ok is false for anything else.
func plainMetadata(data []byte) (md Metadata, ok bool) {
	if len(data) < 2 || data[0] != '{' || data[len(data)-1] != '}' {
		return md, false
	}
	rest := data[1 : len(data)-1]
	seen := 0
	for len(rest) > 0 {
		key, after, ok := plainString(rest)
		if !ok || len(after) == 0 || after[0] != ':' {
			return md, false
		}
		value, after, ok := plainString(after[1:])
		if !ok {
			return md, false
		}
		var field *string
		var bit int
		switch string(key) {
		case "actor_id":
			field, bit = &md.ActorID, 1
		case "tenant_id":
			field, bit = &md.TenantID, 2
		case "correlation_id":
			field, bit = &md.CorrelationID, 4
		case "causation_id":
			field, bit = &md.CausationID, 8
		case "request_id":
			field, bit = &md.RequestID, 16
		case "ip":
			field, bit = &md.IP, 32
		case "user_agent":
			field, bit = &md.UserAgent, 64
		case "session_id":
			field, bit = &md.SessionID, 128
		case "api_key_id":
			field, bit = &md.APIKeyID, 256
		case "continues":
			field, bit = &md.Continues, 512
		default:
			return md, false
		}
		if seen&bit != 0 {
			return md, false
		}
		seen |= bit
		if !utf8.Valid(value) {
			return md, false // json.Unmarshal would replace the invalid bytes
		}
		*field = string(value)
		switch {
		case len(after) == 0:
			rest = nil
		case after[0] == ',' && len(after) > 1:
			rest = after[1:]
		default:
			return md, false
		}
	}
	return md, true
}

// plainString reads a JSON string without backslashes or control characters at the start of b:
// its content and what follows it.
func plainString(b []byte) (content, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != '"' {
		return nil, nil, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return b[1:i], b[i+1:], true
		case c == '\\' || c < 0x20:
			return nil, nil, false
		}
	}
	return nil, nil, false
}
