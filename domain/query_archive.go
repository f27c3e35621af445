package domain

import "time"

// Result archive events, in the stream of the query whose result they keep ("query-<query_id>",
// after its QueryExecuted). The archived rows are data outside the log (internal/resultarchive);
// the events record who kept or deleted them and when. Tenant and actor are in the metadata.
type (
	QueryResultArchived struct {
		QueryID    string     `json:"query_id"`
		DatabaseID DatabaseID `json:"database_id"`
		RowCount   int64      `json:"row_count"`
		Truncated  bool       `json:"truncated"`
		Bytes      int64      `json:"bytes"`
		At         time.Time  `json:"at"`
	}
	QueryResultArchiveDeleted struct {
		QueryID string    `json:"query_id"`
		At      time.Time `json:"at"`
	}
)

func (QueryResultArchived) EventType() string       { return "query.result_archived.v1" }
func (QueryResultArchiveDeleted) EventType() string { return "query.result_archive_deleted.v1" }

// ArchiveRecord is what a query's history last says of its result's archive.
type ArchiveRecord int

const (
	ArchiveUnrecorded ArchiveRecord = iota // nothing: never archived, or archived before archiving was recorded
	ArchiveKept                            // QueryResultArchived last
	ArchiveDeleted                         // QueryResultArchiveDeleted last
)

// ResultArchiveRecord returns what the history of a query last recorded of its result's archive.
func ResultArchiveRecord(history []Event) ArchiveRecord {
	record := ArchiveUnrecorded
	for _, e := range history {
		switch e.(type) {
		case QueryResultArchived:
			record = ArchiveKept
		case QueryResultArchiveDeleted:
			record = ArchiveDeleted
		}
	}
	return record
}
