package projections

import (
	"context"
	"testing"

	"github.com/clouddbmanager/clouddb/internal/mysqlerr"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// A preparation that failed leaves the query to its text until preparedRetry has passed, instead
// of every request trying (and waiting for) another one.
func TestPreparedQueryRunsTheTextAfterAFailedPreparation(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	p := preparedQuery{query: `SELECT v FROM later WHERE k = ?`}
	var v string
	if err := p.scan(ctx, db, []any{1}, &v); !mysqlerr.IsNoSuchTable(err) {
		t.Fatalf("scan before the table: %v, want no such table", err)
	}
	if _, err := db.Exec(`CREATE TABLE later (k INT PRIMARY KEY, v VARCHAR(10))`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO later VALUES (1, 'one')`); err != nil {
		t.Fatal(err)
	}
	if err := p.scan(ctx, db, []any{1}, &v); err != nil || v != "one" {
		t.Fatalf("scan = %q, %v; want one", v, err)
	}
	if p.stmt != nil {
		t.Fatal("prepared again right after a failed preparation; want the text until preparedRetry passed")
	}
	p.retryAt = p.retryAt.Add(-preparedRetry)
	if err := p.scan(ctx, db, []any{1}, &v); err != nil || v != "one" || p.stmt == nil {
		t.Fatalf("scan after preparedRetry = %q, %v, prepared %v; want one, prepared", v, err, p.stmt != nil)
	}
	p.stmt.Close()
}
