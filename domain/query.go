package domain

import (
	"strings"
	"time"
	"unicode/utf8"
)

// QueryStatus is how a query request ended.
type QueryStatus string

// The ends of a query request.
const (
	QuerySucceeded QueryStatus = "succeeded"
	QueryFailed    QueryStatus = "failed"  // the server refused or failed it (syntax, constraint, ...)
	QueryTimedOut  QueryStatus = "timeout" // killed at the timeout
	QueryDenied    QueryStatus = "denied"  // refused before it reached the server (role, classifier, confirmation)
)

// Valid reports whether s is one of the statuses above.
func (s QueryStatus) Valid() bool {
	switch s {
	case QuerySucceeded, QueryFailed, QueryTimedOut, QueryDenied:
		return true
	}
	return false
}

// MaxRecordedSQL is the most bytes of a statement a QueryExecuted event records.
const MaxRecordedSQL = 16 << 10

// Bounds of the other client-chosen parts of a QueryExecuted record: a statement naming more
// tables than MySQL joins (61) gains nothing from a longer list, and a MySQL error message is at
// most 512 bytes. Without them one 1 MiB statement naming 60,000 tables recorded 400 KB.
const (
	MaxRecordedTables     = 64
	MaxRecordedErrorBytes = 1024
)

// QueryExecuted records one statement run (or refused) through the query endpoint, in the stream
// "query-<query_id>" (one event per stream). Tenant and actor are in the envelope's metadata too,
// but the payload carries them so projections need nothing else.
type QueryExecuted struct {
	QueryID       string      `json:"query_id"`
	TenantID      TenantID    `json:"tenant_id"`
	UserID        UserID      `json:"user_id"`
	DatabaseID    DatabaseID  `json:"database_id"`
	SQL           string      `json:"sql"` // secrets redacted, at most MaxRecordedSQL bytes (see RecordedSQL)
	SQLTruncated  bool        `json:"sql_truncated,omitempty"`
	Fingerprint   string      `json:"fingerprint"`
	StatementType string      `json:"statement_type"` // read, dml, ddl, other; "" when it could not be classified
	Tables        []string    `json:"tables,omitempty"`
	Status        QueryStatus `json:"status"`
	ErrorCode     string      `json:"error_code,omitempty"` // the API error code (query_failed, syntax_error, statement_not_allowed, query_timeout, ...)
	Error         string      `json:"error,omitempty"`      // short human message
	MySQLCode     int         `json:"mysql_code,omitempty"`
	ExecutionMS   float64     `json:"execution_ms"`
	RowCount      int64       `json:"row_count"`
	AffectedRows  int64       `json:"affected_rows"`
	At            time.Time   `json:"at"`
}

func (QueryExecuted) EventType() string { return "query.executed.v1" }

// QueryStream is the stream of one query request: "query-<query_id>".
func QueryStream(queryID string) string { return "query-" + queryID }

// Bounded returns q with its client-chosen text within the bounds the event log keeps: the SQL
// (RecordedSQL) and fingerprint at most MaxRecordedSQL bytes, the first MaxRecordedTables tables,
// and the error message at most MaxRecordedErrorBytes. Every record passes it before its append.
func (q QueryExecuted) Bounded() QueryExecuted {
	text, truncated := RecordedSQL(q.SQL)
	q.SQL, q.SQLTruncated = text, q.SQLTruncated || truncated
	q.Fingerprint = cutUTF8(q.Fingerprint, MaxRecordedSQL)
	if len(q.Tables) > MaxRecordedTables {
		q.Tables = q.Tables[:MaxRecordedTables:MaxRecordedTables]
	}
	q.Error = cutUTF8(q.Error, MaxRecordedErrorBytes)
	return q
}

// cutUTF8 is s as valid UTF-8 of at most n bytes, cut at a rune boundary.
func cutUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// RecordedSQL is the text of a statement as a QueryExecuted event records it (after the caller has
// redacted secrets): invalid UTF-8 replaced by U+FFFD (as JSON would), then cut to at most
// MaxRecordedSQL bytes at a rune boundary. truncated reports whether it was cut.
func RecordedSQL(sql string) (text string, truncated bool) {
	text = cutUTF8(sql, MaxRecordedSQL)
	return text, len(text) < len(strings.ToValidUTF8(sql, "\uFFFD"))
}
