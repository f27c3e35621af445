package projections

import (
	"context"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/internal/sqlparams"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// A statement of many rows runs prepared (binary protocol), one of few as text: both store the
// same values, text with quotes, backslashes, NUL bytes and accents, JSON, times, floats and NULLs
// included.
func TestExecRowsStoresTheSameValuesPreparedAndAsText(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE exec_rows (id INT NOT NULL PRIMARY KEY, txt TEXT NOT NULL, doc JSON NOT NULL,
		at DATETIME(6) NULL, ms DOUBLE NOT NULL, ok TINYINT(1) NOT NULL) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`); err != nil {
		t.Fatal(err)
	}
	values := func(id int) []any {
		return []any{id, "SELECT 'a''b', \"c\", \\d, \x00, é, 😀 FROM t", []byte(`{"sql":"x \"y\" \\ z","n":1.5}`),
			dbTime(time.Date(2026, 12, 7, 17, 30, 0, 123456789, time.UTC)), 0.1 + 0.2, true}
	}
	insert := func(from, rows int) {
		var args []any
		for i := range rows {
			args = append(args, values(from+i)...)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // after Commit
		if _, err := execRows(ctx, tx, `INSERT INTO exec_rows (id, txt, doc, at, ms, ok) VALUES `+sqlparams.Rows(rows, 6), rows, args...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	insert(0, 1)                  // text
	insert(1, preparedFromRows+4) // prepared
	var distinct, rows int
	if err := db.QueryRow(`SELECT COUNT(DISTINCT txt, doc, at, ms, ok), COUNT(*) FROM exec_rows`).Scan(&distinct, &rows); err != nil {
		t.Fatal(err)
	}
	if distinct != 1 || rows != preparedFromRows+5 {
		t.Fatalf("%d rows with %d distinct values, want %d rows alike", rows, distinct, preparedFromRows+5)
	}
	var txt string
	var at time.Time
	if err := db.QueryRow(`SELECT txt, at FROM exec_rows WHERE id = 7`).Scan(&txt, &at); err != nil {
		t.Fatal(err)
	}
	if txt != values(0)[1] || !at.Equal(time.Date(2026, 12, 7, 17, 30, 0, 123456000, time.UTC)) {
		t.Fatalf("stored %q at %s", txt, at)
	}
}
