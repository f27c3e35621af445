package projections

import (
	"context"
	"database/sql"
	"fmt"
)

// preparedFromRows is the least number of rows of a multi-row statement that execRows sends
// prepared: below it, the preparation's round trip costs more than it saves.
const preparedFromRows = 16

// execRows runs query, a statement of rows rows whose values are args, in tx. A statement of many
// rows is prepared on the server for this one run and its values sent in the binary protocol: text
// (a query's SQL, an entry's details) is then neither escaped by the driver nor lexed and
// unescaped by the server, which costs more per row than the preparation does per statement.
func execRows(ctx context.Context, tx *sql.Tx, query string, rows int, args ...any) (sql.Result, error) {
	if rows < preparedFromRows {
		return tx.ExecContext(ctx, query, args...)
	}
	stmt, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	defer stmt.Close()
	return stmt.ExecContext(ctx, args...)
}
