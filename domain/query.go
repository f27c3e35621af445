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

// RecordedSQL is the text of a statement as a QueryExecuted event records it (after the caller has
// redacted secrets): invalid UTF-8 replaced by U+FFFD (as JSON would), then cut to at most
// MaxRecordedSQL bytes at a rune boundary. truncated reports whether it was cut.
func RecordedSQL(sql string) (text string, truncated bool) {
	if !utf8.ValidString(sql) {
		sql = strings.ToValidUTF8(sql, "\uFFFD")
	}
	if len(sql) <= MaxRecordedSQL {
		return sql, false
	}
	cut := MaxRecordedSQL
	for cut > 0 && !utf8.RuneStart(sql[cut]) {
		cut--
	}
	return sql[:cut], true
}
