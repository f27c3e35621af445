package projections

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

// QueryHistoryLength is how many queries the history keeps per user and tenant.
const QueryHistoryLength = 100

// QueryHistory is the read model of GET /queries/history: the last QueryHistoryLength queries of
// each user in each tenant (across the tenant's databases), newest first.
//
// The queries of each (tenant, user) are numbered in log order (seq); query N is stored in slot
// N mod 100 of its user, replacing query N-100. So the model holds exactly the last 100 per user,
// never grows past 100 rows per user, and is a function of the log: a rebuild gives identical
// tables. The newest row of a user (never replaced) carries the log position of the last query
// counted, so an event at or below it (a redelivery) changes nothing.
//
// Live, the runtime applies one event at a time: that takes one statement (it reads the user's
// newest row and writes the slot together). A batch (a rebuild) takes two statements per 500
// users and per 500 rows: one to read the users' newest rows, one to write.
type QueryHistory struct {
	reg *eventstore.Registry
}

// NewQueryHistory returns the projector decoding with reg. It panics on a nil registry.
func NewQueryHistory(reg *eventstore.Registry) QueryHistory {
	if reg == nil {
		panic("projections: NewQueryHistory needs a registry")
	}
	return QueryHistory{reg: reg}
}

func (QueryHistory) Name() string { return "query_history" }

func (QueryHistory) Handles() []string { return []string{domain.QueryExecuted{}.EventType()} }

// Lazy lets history follow queries in batches: at thousands of queries a second, one commit per
// query would be the projector's bottleneck, and a history a few milliseconds behind is fine.
func (QueryHistory) Lazy() ([]string, time.Duration) {
	return []string{domain.QueryExecuted{}.EventType()}, 20 * time.Millisecond
}

// Column sizes of query_history; longer values are cut (at a character boundary).
const (
	historyQueryIDLen   = 64
	historyErrorCodeLen = 64
	historyErrorLen     = 1000
	historyShortLen     = 16 // statement_type, status
)

func (QueryHistory) Tables() []Table {
	return []Table{{Name: "query_history", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
		tenant_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		user_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		slot           SMALLINT      NOT NULL,
		seq            BIGINT        NOT NULL,
		position       BIGINT        NOT NULL,
		query_id       VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		database_id    CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		sql_text       TEXT          NOT NULL,
		sql_truncated  BOOL          NOT NULL,
		statement_type VARCHAR(16)   NOT NULL,
		status         VARCHAR(16)   NOT NULL,
		error_code     VARCHAR(64)   NOT NULL,
		error          VARCHAR(1000) NOT NULL,
		execution_ms   DOUBLE        NOT NULL,
		row_count      BIGINT        NOT NULL,
		affected_rows  BIGINT        NOT NULL,
		executed_at    DATETIME(6)   NOT NULL,
		PRIMARY KEY (tenant_id, user_id, slot),
		KEY query_history_newest (tenant_id, user_id, seq, position)
	) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`}}
}

type historyKey struct {
	tenant domain.TenantID
	user   domain.UserID
}

// historyNewest is what a user's newest row says: how many queries were counted, and the log
// position of the last.
type historyNewest struct {
	seq, position int64
}

// Chunks of a batch's statements: users per read, and rows (and bytes of SQL text) per write, well
// under max_allowed_packet.
const (
	historyKeysPerStatement  = 500
	historyRowsPerStatement  = 500
	historyBytesPerStatement = 1 << 20 // escaped, at most twice that: under MySQL 5.7's default 4 MiB packet
)

// historyColumns are the written columns, in the order of historyValues.
const historyColumns = `tenant_id, user_id, slot, seq, position, query_id, database_id, sql_text, sql_truncated,
	statement_type, status, error_code, error, execution_ms, row_count, affected_rows, executed_at`

// historyUpdate makes an insert into a taken slot replace the row there.
const historyUpdate = ` ON DUPLICATE KEY UPDATE seq = VALUES(seq), position = VALUES(position),
	query_id = VALUES(query_id), database_id = VALUES(database_id), sql_text = VALUES(sql_text),
	sql_truncated = VALUES(sql_truncated), statement_type = VALUES(statement_type), status = VALUES(status),
	error_code = VALUES(error_code), error = VALUES(error), execution_ms = VALUES(execution_ms),
	row_count = VALUES(row_count), affected_rows = VALUES(affected_rows), executed_at = VALUES(executed_at)`

// historyValues are the values of the columns after position (from query_id on).
func historyValues(e domain.QueryExecuted) []any {
	text, truncated := domain.RecordedSQL(e.SQL)
	return []any{clip(e.QueryID, historyQueryIDLen), e.DatabaseID, text, truncated || e.SQLTruncated,
		clip(e.StatementType, historyShortLen), clip(string(e.Status), historyShortLen),
		clip(e.ErrorCode, historyErrorCodeLen), clip(e.Error, historyErrorLen),
		e.ExecutionMS, e.RowCount, e.AffectedRows, e.At.UTC()}
}

// historyValueColumns is how many values historyValues returns.
const historyValueColumns = 12

var historyValuePlaceholders = sqlparams.List(historyValueColumns)

type historyEntry struct {
	position int64
	e        domain.QueryExecuted
}

// Apply numbers the events per user in log order and stores each in its user's ring of slots.
func (p QueryHistory) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	table := t.Name("query_history")
	batch := make([]historyEntry, 0, len(events))
	for _, env := range events {
		ev, err := decodeEvent(p.reg, env)
		if err != nil {
			return fmt.Errorf("projections: query_history at position %d: %w", env.Position, err)
		}
		if e, ok := ev.(domain.QueryExecuted); ok {
			batch = append(batch, historyEntry{env.Position, e})
		}
	}
	switch len(batch) {
	case 0:
		return nil
	case 1:
		return p.applyOne(ctx, tx, table, batch[0])
	}
	return p.applyBatch(ctx, tx, table, batch)
}

// applyOne numbers and stores one query in one statement.
func (QueryHistory) applyOne(ctx context.Context, tx *sql.Tx, table string, h historyEntry) error {
	args := []any{h.e.TenantID, h.e.UserID, QueryHistoryLength, h.position}
	args = append(args, historyValues(h.e)...)
	args = append(args, h.e.TenantID, h.e.UserID, h.position)
	_, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (`+historyColumns+`)
		SELECT ?, ?, (newest.seq + 1) % ?, newest.seq + 1, ?, `+historyValuePlaceholders+`
		FROM (SELECT COALESCE(MAX(seq), 0) AS seq, COALESCE(MAX(position), 0) AS position FROM (
			SELECT seq, position FROM `+table+` WHERE tenant_id = ? AND user_id = ? ORDER BY seq DESC LIMIT 1) AS last) AS newest
		WHERE newest.position < ?`+historyUpdate, args...)
	if err != nil {
		return fmt.Errorf("projections: query_history at position %d: %w", h.position, err)
	}
	return nil
}

type historyRow struct {
	key historyKey
	seq int64
	historyEntry
}

// applyBatch reads the newest row of every user in the batch, numbers the queries in Go and
// writes them.
func (p QueryHistory) applyBatch(ctx context.Context, tx *sql.Tx, table string, batch []historyEntry) error {
	newest := map[historyKey]*historyNewest{}
	var keys []historyKey
	for _, h := range batch {
		k := historyKey{h.e.TenantID, h.e.UserID}
		if newest[k] == nil {
			newest[k] = &historyNewest{}
			keys = append(keys, k)
		}
	}
	if err := p.readNewest(ctx, tx, table, keys, newest); err != nil {
		return err
	}
	rows := make([]historyRow, 0, len(batch))
	for _, h := range batch {
		k := historyKey{h.e.TenantID, h.e.UserID}
		n := newest[k]
		if h.position <= n.position {
			continue // applied before
		}
		n.seq++
		n.position = h.position
		rows = append(rows, historyRow{key: k, seq: n.seq, historyEntry: h})
	}
	// A row that a later one of the same batch replaces in its slot need not be written.
	kept := rows[:0]
	for _, r := range rows {
		if r.seq > newest[r.key].seq-QueryHistoryLength {
			kept = append(kept, r)
		}
	}
	return p.writeRows(ctx, tx, table, kept)
}

func (QueryHistory) readNewest(ctx context.Context, tx *sql.Tx, table string, keys []historyKey, newest map[historyKey]*historyNewest) error {
	for from := 0; from < len(keys); from += historyKeysPerStatement {
		chunk := keys[from:min(from+historyKeysPerStatement, len(keys))]
		args := make([]any, 0, 2*len(chunk))
		for _, k := range chunk {
			args = append(args, k.tenant, k.user)
		}
		rows, err := tx.QueryContext(ctx, `SELECT tenant_id, user_id, MAX(seq), MAX(position) FROM `+table+` WHERE `+
			strings.TrimSuffix(strings.Repeat("(tenant_id = ? AND user_id = ?) OR ", len(chunk)), " OR ")+
			` GROUP BY tenant_id, user_id`, args...)
		if err != nil {
			return fmt.Errorf("projections: query_history: read the newest queries: %w", err)
		}
		for rows.Next() {
			var k historyKey
			var n historyNewest
			if err := rows.Scan(&k.tenant, &k.user, &n.seq, &n.position); err != nil {
				rows.Close()
				return err
			}
			if newest[k] != nil {
				*newest[k] = n
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (QueryHistory) writeRows(ctx context.Context, tx *sql.Tx, table string, rows []historyRow) error {
	for len(rows) > 0 {
		n, bytes := 0, 0
		for n < len(rows) && n < historyRowsPerStatement && (n == 0 || bytes+len(rows[n].e.SQL) <= historyBytesPerStatement) {
			bytes += len(rows[n].e.SQL)
			n++
		}
		args := make([]any, 0, 17*n)
		for _, r := range rows[:n] {
			args = append(args, r.key.tenant, r.key.user, r.seq%QueryHistoryLength, r.seq, r.position)
			args = append(args, historyValues(r.e)...)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (`+historyColumns+`) VALUES `+
			sqlparams.Rows(n, 5+historyValueColumns)+historyUpdate, args...)
		if err != nil {
			return fmt.Errorf("projections: query_history: write %d queries: %w", n, err)
		}
		rows = rows[n:]
	}
	return nil
}
