package domain

import "time"

// QueryResultExported records a download of a query's kept result (GET /queries/{id}/export), in
// the query's stream, with its owner as actor: an export takes data out of the platform, and the
// audit trail says who took which result, how, and how much. Recorded once the download is whole.
type QueryResultExported struct {
	QueryID    string     `json:"query_id"`
	DatabaseID DatabaseID `json:"database_id"`
	Format     string     `json:"format"` // csv, json, sql
	RowCount   int64      `json:"row_count"`
	Source     string     `json:"source"` // "results" (the result store) or "archive" (the result archive)
	At         time.Time  `json:"at"`
}

func (QueryResultExported) EventType() string { return "query.result_exported.v1" }
