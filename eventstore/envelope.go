package eventstore

import (
	"encoding/json"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// Envelope is the stored form of one event, as read back from the log.
type Envelope struct {
	Position      int64           `json:"position"`
	EventID       string          `json:"event_id"`
	StreamID      string          `json:"stream_id"`
	StreamType    string          `json:"stream_type"`
	StreamVersion int64           `json:"stream_version"`
	EventType     string          `json:"event_type"`
	Payload       json.RawMessage `json:"payload"`
	Metadata      Metadata        `json:"metadata"`
	RecordedAt    time.Time       `json:"recorded_at"`
	// ChainID and ChainSeq place the event in its chain (chain.go); "" and 0 while an event recorded
	// before the chains is not chained yet.
	ChainID  string `json:"chain_id,omitempty"`
	ChainSeq int64  `json:"chain_seq,omitempty"`
}

// Metadata says who caused an event and how; every event carries it, for the audit trail.
type Metadata struct {
	ActorID       string `json:"actor_id,omitempty"`
	TenantID      string `json:"tenant_id,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	CausationID   string `json:"causation_id,omitempty"`
	RequestID     string `json:"request_id,omitempty"`
	IP            string `json:"ip,omitempty"`
	UserAgent     string `json:"user_agent,omitempty"`
	// SessionID or APIKeyID is how the actor was authenticated: the audit trail says which.
	SessionID string `json:"session_id,omitempty"`
	APIKeyID  string `json:"api_key_id,omitempty"`
	// Continues names the stream whose first event recorded the request this event continues (a
	// query's outcome, after its intent): the event is stored with only its tenant, correlation id
	// and Continues (Metadata.Continued), and the Store's reads give it that first event's metadata,
	// as if it had repeated it. It is never set on what a read returns.
	Continues string `json:"continues,omitempty"`
}

// Continued is md as an event that continues the request recorded first in stream stores it: what
// the chain (TenantID) and a correlation need, the rest read from that stream's first event.
func (md Metadata) Continued(stream string) Metadata {
	return Metadata{TenantID: md.TenantID, CorrelationID: md.CorrelationID, Continues: stream}
}

// AnyVersion as a Stream's ExpectedVersion appends without a concurrency check, for streams that
// only ever grow (a log of executed queries, say) and have no decision to protect.
const AnyVersion int64 = -1

// Stream is what one append adds to one stream. A Stream without events appends nothing but still
// checks ExpectedVersion: a guard that fails the append if a stream the decision read has moved.
type Stream struct {
	ID   string // "database-<uuid>"
	Type string // "database"
	// ExpectedVersion is the version the caller's decision was based on: 0 for a new stream, or
	// AnyVersion.
	ExpectedVersion int64
	Events          []domain.Event
}

// Claim reserves a platform-wide unique key (e.g. "email:alice@example.com") for a stream.
type Claim struct {
	Key      string
	StreamID string
}

// Append is one atomic write: every stream, claim and release in it commits, or none does.
type Append struct {
	Streams []Stream
	// Claims are taken for their streams; a key the same stream already holds is no conflict, so
	// a retried command can claim again.
	Claims []Claim
	// Releases free keys held by the named streams; a key held by another stream, or by none,
	// stays as it is.
	Releases []Claim
	Metadata Metadata
	// Unhurried lets the writer hold the append for up to Options.UnhurriedWait for another append to
	// commit with: an append nobody waits for (a query's outcome, queued with Enqueue) then rides
	// in the transaction of the next one instead of making it wait for a flush of its own.
	Unhurried bool
	// Continuable says that later appends will continue the request of this one, naming the stream
	// it begins (Metadata.Continued): the store keeps its metadata at hand a while, so that reading
	// them back costs no read of this append's events.
	Continuable bool
}

// Appended says where an append landed in the global log.
type Appended struct {
	FirstPosition int64
	LastPosition  int64
}

func (a Append) eventCount() int {
	n := 0
	for _, s := range a.Streams {
		n += len(s.Events)
	}
	return n
}
