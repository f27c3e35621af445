package projections

// What every projector's Apply uses to write its rows: first inserts that tolerate redelivery,
// column values as the tables store them, and the ids inside stream names.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/internal/mysqlerr"
)

// insertNew runs insert, which adds the first row of an aggregate whose id is in idColumn. A
// duplicate of that id is a redelivery and is ignored. A duplicate of another unique key (an email
// or slug that another row holds) is returned: claims should have made it impossible, and skipping
// it would hide the row.
func insertNew(ctx context.Context, tx *sql.Tx, table, idColumn, id, insert string, args ...any) error {
	_, err := tx.ExecContext(ctx, insert, args...)
	if !mysqlerr.IsDuplicateKey(err) {
		return err
	}
	var one int
	switch qerr := tx.QueryRowContext(ctx, `SELECT 1 FROM `+table+` WHERE `+idColumn+` = ?`, id).Scan(&one); {
	case qerr == nil:
		return nil
	case errors.Is(qerr, sql.ErrNoRows):
		return err
	default:
		return qerr
	}
}

// dbTime is t as a DATETIME(6) stores it: UTC, whole microseconds. The zero time is NULL.
func dbTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Microsecond)
}

// dbTimeOrNull is dbTime of *t, NULL for nil.
func dbTimeOrNull(t *time.Time) any {
	if t == nil {
		return nil
	}
	return dbTime(*t)
}

// nullString is s, or NULL when empty.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// clip shortens s to at most n characters, as a VARCHAR(n) counts them.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for at := range s {
		if i == n {
			return s[:at]
		}
		i++
	}
	return s
}

// streamEntity returns the uuid of an aggregate from its stream id "<prefix><uuid>".
func streamEntity(stream, prefix string) (string, error) {
	id, ok := strings.CutPrefix(stream, prefix)
	if !ok || len(id) != 36 {
		return "", fmt.Errorf("stream %q is not a %q stream", stream, strings.TrimSuffix(prefix, "-"))
	}
	if _, err := uuid.Parse(id); err != nil {
		return "", fmt.Errorf("stream %q: %w", stream, err)
	}
	return id, nil
}
