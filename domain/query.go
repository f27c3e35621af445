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
	// QueryCancelled: stopped on the server (KILL QUERY) because its client went away or the
	// process shut down; the error says which.
	QueryCancelled QueryStatus = "cancelled"
	// QueryUnknown: it was sent, but whether it was applied cannot be told: the connection to the
	// database dropped while it ran, or its process died before recording its outcome (then the
	// query-outcome reconciler records it).
	QueryUnknown QueryStatus = "unknown"
)

// Valid reports whether s is one of the statuses above.
func (s QueryStatus) Valid() bool {
	switch s {
	case QuerySucceeded, QueryFailed, QueryTimedOut, QueryDenied, QueryCancelled, QueryUnknown:
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

// QueryStarted records, before any statement of a request is sent to the database's server, that
// they are about to run: who, what, where, and which process (its lease's instance id). It is the
// first event of the stream of the request's first statement, and waits to be durable before the
// first statement is sent; the outcome of every statement follows as a QueryExecuted (the first
// statement's in the same stream). An intent left without outcomes (its process died) is resolved
// as QueryUnknown by the query-outcome reconciler. Statements refused before reaching the server
// need no intent: their QueryExecuted is the stream's first event.
type QueryStarted struct {
	QueryID    string             `json:"query_id"` // the first statement's: the stream
	TenantID   TenantID           `json:"tenant_id"`
	UserID     UserID             `json:"user_id"`
	DatabaseID DatabaseID         `json:"database_id"`
	Server     string             `json:"server"`
	Account    string             `json:"account"` // rw or ro
	Statements []StartedStatement `json:"statements"`
	Instance   string             `json:"instance"` // the process that runs them (process_leases)
	TimeoutS   float64            `json:"timeout_s"`
	At         time.Time          `json:"at"`
}

func (QueryStarted) EventType() string { return "query.started.v1" }

// StartedStatement is one statement of a QueryStarted, as its QueryExecuted will record it.
type StartedStatement struct {
	QueryID       string   `json:"query_id"`
	SQL           string   `json:"sql"`
	SQLTruncated  bool     `json:"sql_truncated,omitempty"`
	Fingerprint   string   `json:"fingerprint"`
	StatementType string   `json:"statement_type"`
	Tables        []string `json:"tables,omitempty"`
}

// StartQueries is the intent of records, the statements of one request about to be sent.
func StartQueries(records []QueryExecuted, server, account string, timeoutS float64, at time.Time) QueryStarted {
	first := records[0]
	q := QueryStarted{QueryID: first.QueryID, TenantID: first.TenantID, UserID: first.UserID, DatabaseID: first.DatabaseID,
		Server: server, Account: account, TimeoutS: timeoutS, At: at, Statements: make([]StartedStatement, len(records))}
	for i, r := range records {
		r = r.Bounded()
		q.Statements[i] = StartedStatement{QueryID: r.QueryID, SQL: r.SQL, SQLTruncated: r.SQLTruncated, Fingerprint: r.Fingerprint,
			StatementType: r.StatementType, Tables: r.Tables}
	}
	return q
}

// Unknown is the outcome of every statement of q when nothing can tell what became of them.
func (q QueryStarted) Unknown(reason string) []QueryExecuted {
	out := make([]QueryExecuted, len(q.Statements))
	for i, st := range q.Statements {
		out[i] = QueryExecuted{QueryID: st.QueryID, TenantID: q.TenantID, UserID: q.UserID, DatabaseID: q.DatabaseID,
			SQL: st.SQL, SQLTruncated: st.SQLTruncated, Fingerprint: st.Fingerprint, StatementType: st.StatementType,
			Tables: st.Tables, Status: QueryUnknown, ErrorCode: "outcome_unknown", Error: reason, At: q.At}
	}
	return out
}

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
