package domain_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/clouddbmanager/clouddb/domain"
)

func TestRecordedSQL(t *testing.T) {
	const max = domain.MaxRecordedSQL
	ascii := strings.Repeat("a", max)
	tests := []struct {
		name          string
		in            string
		want          string
		wantTruncated bool
	}{
		{"empty", "", "", false},
		{"short", "SELECT 1", "SELECT 1", false},
		{"exactly the limit", ascii, ascii, false},
		{"one byte over", ascii + "b", ascii, true},
		{"multi-byte rune ending at the limit", strings.Repeat("a", max-3) + "€", strings.Repeat("a", max-3) + "€", false},
		{"multi-byte rune across the limit is dropped whole", strings.Repeat("a", max-2) + "€x", strings.Repeat("a", max-2), true},
		{"four-byte rune across the limit", strings.Repeat("a", max-1) + "😀", strings.Repeat("a", max-1), true},
		{"rune starting right at the limit", ascii + "😀", ascii, true},
		{"all multi-byte", strings.Repeat("é", max), strings.Repeat("é", max/2), true},
		{"invalid UTF-8 is replaced", "SELECT '\xff\xfe'", "SELECT '\uFFFD'", false},
		{"NUL bytes are kept", "SELECT '\x00'", "SELECT '\x00'", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, truncated := domain.RecordedSQL(tt.in)
			if got != tt.want || truncated != tt.wantTruncated {
				t.Errorf("RecordedSQL(%d bytes) = (%d bytes, %v), want (%d bytes, %v)", len(tt.in), len(got), truncated, len(tt.want), tt.wantTruncated)
			}
			if len(got) > max || !utf8.ValidString(got) {
				t.Errorf("RecordedSQL returned %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
			}
		})
	}
}

func TestQueryStatusValid(t *testing.T) {
	for _, s := range []domain.QueryStatus{domain.QuerySucceeded, domain.QueryFailed, domain.QueryTimedOut, domain.QueryDenied} {
		if !s.Valid() {
			t.Errorf("%q.Valid() = false", s)
		}
	}
	for _, s := range []domain.QueryStatus{"", "success", "TIMEOUT", "timed_out"} {
		if s.Valid() {
			t.Errorf("%q.Valid() = true", s)
		}
	}
	if string(domain.QueryTimedOut) != "timeout" {
		t.Errorf("QueryTimedOut = %q, API.md says \"timeout\"", domain.QueryTimedOut)
	}
}

func TestQueryStream(t *testing.T) {
	if got := domain.QueryStream(uuidA); got != "query-"+uuidA {
		t.Errorf("QueryStream = %q", got)
	}
}

func TestQueryExecutedJSON(t *testing.T) {
	e := domain.QueryExecuted{
		QueryID: uuidA, TenantID: uuidB, UserID: uuidC, DatabaseID: uuidA,
		SQL: "SELECT * FROM t WHERE id = 1", Fingerprint: "SELECT * FROM t WHERE id = ?", StatementType: "read",
		Tables: []string{"t"}, Status: domain.QuerySucceeded, ExecutionMS: 1.5, RowCount: 1, At: t0,
	}
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	// Empty optional fields are left out; counters and the timing are always there.
	for _, absent := range []string{"sql_truncated", "error_code", "error", "mysql_code"} {
		if _, ok := fields[absent]; ok {
			t.Errorf("%s is in %s, want it omitted when empty", absent, data)
		}
	}
	for _, present := range []string{"query_id", "tenant_id", "user_id", "database_id", "sql", "fingerprint", "statement_type", "tables", "status", "execution_ms", "row_count", "affected_rows", "at"} {
		if _, ok := fields[present]; !ok {
			t.Errorf("%s is missing from %s", present, data)
		}
	}
	var back domain.QueryExecuted
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Errorf("round trip:\n got %#v\nwant %#v", back, e)
	}
}

// A record keeps what a client chose within bounds: a statement naming 60,000 tables, or an error
// message of any length, does not make its event large.
func TestQueryExecutedBounded(t *testing.T) {
	tables := make([]string, 60_000)
	for i := range tables {
		tables[i] = fmt.Sprint("t", i)
	}
	q := domain.QueryExecuted{SQL: strings.Repeat("x", domain.MaxRecordedSQL+10), Fingerprint: strings.Repeat("é", domain.MaxRecordedSQL),
		Tables: tables, Error: strings.Repeat("e", 5000) + "\xff"}.Bounded()
	if len(q.SQL) != domain.MaxRecordedSQL || !q.SQLTruncated || len(q.Fingerprint) > domain.MaxRecordedSQL || !utf8.ValidString(q.Fingerprint) ||
		len(q.Tables) != domain.MaxRecordedTables || q.Tables[0] != "t0" || len(q.Error) != domain.MaxRecordedErrorBytes {
		t.Errorf("Bounded: sql %d bytes (truncated %v), fingerprint %d, tables %d, error %d", len(q.SQL), q.SQLTruncated,
			len(q.Fingerprint), len(q.Tables), len(q.Error))
	}
	small := domain.QueryExecuted{SQL: "SELECT 1", Fingerprint: "SELECT ?", Tables: []string{"a"}, Error: "boom"}
	if got := small.Bounded(); !reflect.DeepEqual(got, small) {
		t.Errorf("Bounded changed a small record: %+v", got)
	}
}
