package projections

import (
	"context"
	"database/sql"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

// Streams is the catalog of the streams in the log: which aggregates exist, of which type, at
// which version, and when they last changed. It reads only envelopes, so it is also the yardstick
// for the runtime's own speed. Executed queries, one stream of one event each and thousands a
// second (with their intents), are not aggregates anyone looks up: the catalog leaves them out.
type Streams struct{}

func (Streams) Name() string { return "streams" }

func (Streams) Handles() []string { return []string{AllEvents} }

// Ignores queries (their intents and outcomes): short streams, thousands a second, that nobody
// looks up.
func (Streams) Ignores() []string {
	return []string{domain.QueryStarted{}.EventType(), domain.QueryExecuted{}.EventType()}
}

func (Streams) Tables() []Table {
	return []Table{{Name: "streams", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
		stream_id     VARBINARY(255) NOT NULL PRIMARY KEY,
		stream_type   VARCHAR(64)  NOT NULL,
		version       BIGINT       NOT NULL,
		last_position BIGINT       NOT NULL,
		created_at    DATETIME(6)  NOT NULL,
		updated_at    DATETIME(6)  NOT NULL,
		KEY streams_type (stream_type, updated_at)
	) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`}}
}

type streamRow struct {
	streamType   string
	version      int64
	lastPosition int64
	createdAt    time.Time
	updatedAt    time.Time
}

// Apply folds the events into one row per stream and upserts them in one statement; GREATEST makes
// a replayed event harmless.
func (Streams) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	rows := map[string]*streamRow{}
	var order []string
	for _, e := range events {
		row, ok := rows[e.StreamID]
		if !ok {
			row = &streamRow{streamType: e.StreamType, createdAt: e.RecordedAt}
			rows[e.StreamID] = row
			order = append(order, e.StreamID)
		}
		row.version, row.lastPosition, row.updatedAt = e.StreamVersion, e.Position, e.RecordedAt
	}
	args := make([]any, 0, 6*len(order))
	for _, id := range order {
		row := rows[id]
		args = append(args, id, row.streamType, row.version, row.lastPosition, row.createdAt, row.updatedAt)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO `+t.Name("streams")+
		` (stream_id, stream_type, version, last_position, created_at, updated_at) VALUES `+
		sqlparams.Rows(len(order), 6)+
		` ON DUPLICATE KEY UPDATE
			updated_at = IF(VALUES(last_position) > last_position, VALUES(updated_at), updated_at),
			version = GREATEST(version, VALUES(version)),
			last_position = GREATEST(last_position, VALUES(last_position))`, args...)
	return err
}
