// Package resultarchive keeps query results for the plans with result archiving (pro and
// enterprise) in the management database (RDS-A), after the per-process result store of package
// queryexec has forgotten them: an archived result is kept, listed, paged and exported until its
// owner deletes it, from any clouddb process.
//
// The archive is data, not a read model (like the secrets table): result rows never enter the
// event log, so the tables of migrations/0004_result_archive.sql cannot be rebuilt from it.
//
// A result is a row of result_archives (owner, database, the recorded SQL, columns, counts) and
// its rows in result_archive_chunks: JSON arrays separated by '\n', about 512 KiB of them per
// chunk, each chunk knowing the index of its first row. Saving streams the rows into chunks (one
// transaction); a page reads only the chunks that hold it; an export reads one chunk at a time.
package resultarchive

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/mysqlerr"
	"github.com/clouddbmanager/clouddb/queryexec"
	"github.com/clouddbmanager/clouddb/queryexec/results"
)

const (
	// DefaultChunkBytes is about how many bytes of rows a chunk holds: a chunk is closed before a
	// row would take it past this size, and holds at least one row. Far below the 16 MiB of
	// MariaDB's default max_allowed_packet, so only a single row bigger than the server accepts in
	// one packet keeps a result from being archived.
	DefaultChunkBytes = 512 << 10
	// DefaultListLimit and MaxListLimit bound List (API.md: limit default 50, max 500).
	DefaultListLimit = 50
	MaxListLimit     = 500
	// maxPageRows caps the limit of one Page, as results.Store does.
	maxPageRows = queryexec.MaxPageSize
)

// Meta describes an archived result: whose it is and what ran.
type Meta struct {
	QueryID    string
	TenantID   domain.TenantID
	UserID     domain.UserID
	DatabaseID domain.DatabaseID
	SQL        string // as recorded in the query's QueryExecuted event: redacted, at most 16 KiB
	ArchivedAt time.Time
}

// Item is an archived result as GET /queries/archive lists it.
type Item struct {
	QueryID    string            `json:"query_id"`
	DatabaseID domain.DatabaseID `json:"database_id"`
	SQL        string            `json:"sql"`
	Columns    []results.Column  `json:"columns"`
	RowCount   int64             `json:"row_count"`
	Truncated  bool              `json:"truncated"`
	Bytes      int64             `json:"bytes"` // of the stored rows (JSON, separators included)
	ArchivedAt time.Time         `json:"archived_at"`
}

// Store is the result archive on the management database. It is safe for concurrent use, by
// any number of processes.
type Store struct {
	db         *sql.DB
	chunkBytes int
}

// New returns the archive on db (migrated). Panics on a nil db.
func New(db *sql.DB) *Store {
	if db == nil {
		panic("resultarchive: New needs a database")
	}
	return &Store{db: db, chunkBytes: DefaultChunkBytes}
}

// notFound is the error for an archive that does not exist for the caller.
func notFound(id string) error {
	return fmt.Errorf("resultarchive: result %s: %w", id, domain.ErrNotFound)
}

// validID reports whether id can name an archived result (query ids are UUIDs); anything else
// names nothing, and is not sent to the database.
func validID(id string) bool {
	if len(id) != 36 {
		return false
	}
	_, err := uuid.Parse(id)
	return err == nil
}

// Save archives a result: meta, its columns, whether it stopped at its row limit, and its rows,
// which rows produces by calling yield once per row in order (rows returns yield's error, or
// its own). A row is copied during the call and may be reused afterwards; rows are compact JSON
// arrays (one with a raw newline is compacted; one that is not valid JSON fails the save).
//
// Everything is written in one transaction: a result is archived whole or not at all. Save is
// idempotent: when query id is archived already (or being archived by a concurrent Save, which it
// waits for), it returns nil without calling rows. A single row larger than what the server takes
// in one packet (max_allowed_packet) fails the save.
func (s *Store) Save(ctx context.Context, m Meta, cols []results.Column, truncated bool, rows func(yield func(json.RawMessage) error) error) error {
	if !validID(m.QueryID) {
		return fmt.Errorf("resultarchive: query id %q is not a UUID", m.QueryID)
	}
	if cols == nil {
		cols = []results.Column{}
	}
	colsJSON, err := json.Marshal(cols)
	if err != nil {
		return fmt.Errorf("resultarchive: columns of %s: %w", m.QueryID, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("resultarchive: begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit

	// The header first: its primary key makes a concurrent Save of the same id wait, then find it.
	_, err = tx.ExecContext(ctx, `INSERT INTO result_archives
		(query_id, tenant_id, user_id, database_id, statement_sql, columns, row_count, truncated, bytes, archived_at)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?, 0, ?)`,
		m.QueryID, string(m.TenantID), string(m.UserID), string(m.DatabaseID), m.SQL, colsJSON, truncated,
		m.ArchivedAt.UTC().Truncate(time.Microsecond))
	if mysqlerr.IsDuplicateKey(err) { // archived already
		return nil
	} else if err != nil {
		return fmt.Errorf("resultarchive: save %s: %w", m.QueryID, err)
	}

	w := chunkWriter{ctx: ctx, tx: tx, id: m.QueryID, limit: s.chunkBytes}
	if err := rows(w.add); err != nil {
		return fmt.Errorf("resultarchive: save %s: %w", m.QueryID, err)
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("resultarchive: save %s: %w", m.QueryID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE result_archives SET row_count = ?, bytes = ? WHERE query_id = ?`,
		w.rows, w.bytes, m.QueryID); err != nil {
		return fmt.Errorf("resultarchive: save %s: %w", m.QueryID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("resultarchive: save %s: commit: %w", m.QueryID, err)
	}
	return nil
}

// chunkWriter gathers rows into chunks and inserts each one when it is full.
type chunkWriter struct {
	ctx   context.Context
	tx    *sql.Tx
	id    string
	limit int

	buf     []byte // the chunk being filled
	bufRows int64
	chunk   int   // number of the chunk being filled
	rows    int64 // rows written before buf
	bytes   int64 // bytes of the chunks written
	compact bytes.Buffer
}

func (w *chunkWriter) add(row json.RawMessage) error {
	if len(row) == 0 {
		return fmt.Errorf("row %d is empty", w.rows+w.bufRows)
	}
	if bytes.IndexByte(row, '\n') >= 0 { // the separator: JSON keeps newlines in strings escaped
		w.compact.Reset()
		if err := json.Compact(&w.compact, row); err != nil {
			return fmt.Errorf("row %d is not JSON: %w", w.rows+w.bufRows, err)
		}
		row = w.compact.Bytes()
	}
	if w.bufRows > 0 && len(w.buf)+1+len(row) > w.limit {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.bufRows > 0 {
		w.buf = append(w.buf, '\n')
	}
	w.buf = append(w.buf, row...)
	w.bufRows++
	return nil
}

// flush inserts the chunk being filled, if it has rows.
func (w *chunkWriter) flush() error {
	if w.bufRows == 0 {
		return nil
	}
	if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO result_archive_chunks (query_id, chunk, first_row, row_count, data)
		VALUES (?, ?, ?, ?, ?)`, w.id, w.chunk, w.rows, w.bufRows, w.buf); err != nil {
		return fmt.Errorf("chunk %d (%d bytes): %w", w.chunk, len(w.buf), err)
	}
	w.rows += w.bufRows
	w.bytes += int64(len(w.buf))
	w.chunk++
	w.buf, w.bufRows = w.buf[:0], 0
	return nil
}

// header is what result_archives says about one result.
type header struct {
	cols      []results.Column
	total     int64
	truncated bool
}

// Get returns the archived result id of user in tenant, without its rows. Returns an error
// wrapping domain.ErrNotFound when there is none (another user's or tenant's included).
func (s *Store) Get(ctx context.Context, id string, tenant domain.TenantID, user domain.UserID) (Item, error) {
	if !validID(id) {
		return Item{}, notFound(id)
	}
	it, err := scanItem(s.db.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM result_archives
		WHERE query_id = ? AND tenant_id = ? AND user_id = ?`, id, string(tenant), string(user)))
	if errors.Is(err, sql.ErrNoRows) {
		return Item{}, notFound(id)
	} else if err != nil {
		return Item{}, fmt.Errorf("resultarchive: read %s: %w", id, err)
	}
	return it, nil
}

func (s *Store) header(ctx context.Context, id string, tenant domain.TenantID, user domain.UserID) (header, error) {
	it, err := s.Get(ctx, id, tenant, user)
	return header{cols: it.Columns, total: it.RowCount, truncated: it.Truncated}, err
}

const itemColumns = `query_id, database_id, statement_sql, columns, row_count, truncated, bytes, archived_at`

func scanItem(row interface{ Scan(...any) error }) (Item, error) {
	var it Item
	var cols []byte
	if err := row.Scan(&it.QueryID, &it.DatabaseID, &it.SQL, &cols, &it.RowCount, &it.Truncated, &it.Bytes, &it.ArchivedAt); err != nil {
		return Item{}, err
	}
	if err := json.Unmarshal(cols, &it.Columns); err != nil {
		return Item{}, fmt.Errorf("columns of %s: %w", it.QueryID, err)
	}
	if it.Columns == nil {
		it.Columns = []results.Column{}
	}
	it.ArchivedAt = it.ArchivedAt.UTC()
	return it, nil
}

// List returns the archived results of user in tenant, newest first, limit at a time (0: 50;
// at most 500), after cursor ("" for the first page). next is the cursor of the following page,
// "" at the end. A cursor that List did not make is a *domain.ValidationError on "cursor".
func (s *Store) List(ctx context.Context, tenant domain.TenantID, user domain.UserID, limit int, cursor string) (items []Item, next string, err error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	query := `SELECT ` + itemColumns + ` FROM result_archives WHERE tenant_id = ? AND user_id = ?`
	args := []any{string(tenant), string(user)}
	if cursor != "" {
		at, id, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		query += ` AND (archived_at < ? OR (archived_at = ? AND query_id < ?))`
		args = append(args, at, at, id)
	}
	query += ` ORDER BY archived_at DESC, query_id DESC LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("resultarchive: list: %w", err)
	}
	defer rows.Close()
	items = []Item{}
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, "", fmt.Errorf("resultarchive: list: %w", err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("resultarchive: list: %w", err)
	}
	if len(items) > limit {
		items = items[:limit]
		last := items[limit-1]
		next = encodeCursor(last.ArchivedAt, last.QueryID)
	}
	return items, next, nil
}

// A cursor is the archived_at (RFC 3339, microseconds) and query id of the last item of a page,
// base64url-encoded: opaque to clients.
func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + " " + id))
}

func decodeCursor(cursor string) (time.Time, string, error) {
	bad := domain.NewValidationError("cursor", "must be the next_cursor of a previous page")
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return time.Time{}, "", bad
	}
	ts, id, ok := strings.Cut(string(raw), " ")
	if !ok || !validID(id) {
		return time.Time{}, "", bad
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, "", bad
	}
	return at.UTC(), id, nil
}

// Page returns rows [offset, offset+limit) of the archived result id of user in tenant (fewer, or
// none, past the end), reading only the chunks that hold them; limit is capped at 10,000 and
// Limit in the page is the one applied.
//
// Returns an error wrapping domain.ErrNotFound when there is no such archive for the caller
// (another user's or tenant's included, or one deleted meanwhile), and a *domain.ValidationError
// for a negative offset or a limit below 1.
func (s *Store) Page(ctx context.Context, id string, tenant domain.TenantID, user domain.UserID, offset, limit int64) (results.Page, error) {
	if offset < 0 {
		return results.Page{}, domain.NewValidationError("offset", "must not be negative")
	}
	if limit < 1 {
		return results.Page{}, domain.NewValidationError("limit", "must be at least 1")
	}
	limit = min(limit, maxPageRows)
	h, err := s.header(ctx, id, tenant, user)
	if err != nil {
		return results.Page{}, err
	}
	page := results.Page{Columns: h.cols, Rows: []json.RawMessage{}, Offset: offset, Limit: limit, Total: h.total, Truncated: h.truncated}
	if offset >= h.total {
		return page, nil
	}
	end := min(offset+limit, h.total)
	// The chunk holding row offset starts at the greatest first_row at or below it.
	var start sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(first_row) FROM result_archive_chunks WHERE query_id = ? AND first_row <= ?`,
		id, offset).Scan(&start); err != nil {
		return results.Page{}, fmt.Errorf("resultarchive: read %s: %w", id, err)
	}
	if !start.Valid {
		return results.Page{}, notFound(id) // deleted meanwhile
	}
	rows, err := s.db.QueryContext(ctx, `SELECT first_row, row_count, data FROM result_archive_chunks
		WHERE query_id = ? AND first_row >= ? AND first_row < ? ORDER BY first_row`, id, start.Int64, end)
	if err != nil {
		return results.Page{}, fmt.Errorf("resultarchive: read %s: %w", id, err)
	}
	defer rows.Close()
	page.Rows = make([]json.RawMessage, 0, end-offset)
	next := start.Int64 // the first row the next chunk must hold
	for rows.Next() {
		var first, count int64
		var data []byte
		if err := rows.Scan(&first, &count, &data); err != nil {
			return results.Page{}, fmt.Errorf("resultarchive: read %s: %w", id, err)
		}
		if first != next {
			return results.Page{}, fmt.Errorf("resultarchive: read %s: chunk at row %d, want %d: %w", id, first, next, errCorrupt)
		}
		err := eachRow(data, count, func(i int64, row []byte) error {
			if n := first + i; n >= offset && n < end {
				page.Rows = append(page.Rows, row)
			}
			return nil
		})
		if err != nil {
			return results.Page{}, fmt.Errorf("resultarchive: read %s at row %d: %w", id, first, err)
		}
		next = first + count
	}
	if err := rows.Err(); err != nil {
		return results.Page{}, fmt.Errorf("resultarchive: read %s: %w", id, err)
	}
	if int64(len(page.Rows)) != end-offset {
		return results.Page{}, notFound(id) // deleted meanwhile
	}
	return page, nil
}

// errCorrupt: the stored chunks do not add up to what the archive says.
var errCorrupt = errors.New("archived rows do not match their chunk")

// eachRow calls fn for each of the count rows of a chunk's data, numbered from 0.
func eachRow(data []byte, count int64, fn func(i int64, row []byte) error) error {
	var i int64
	for len(data) > 0 || i < count {
		if i >= count {
			return errCorrupt
		}
		row := data
		if n := bytes.IndexByte(data, '\n'); n >= 0 {
			row, data = data[:n], data[n+1:]
		} else {
			data = nil
		}
		if len(row) == 0 {
			return errCorrupt
		}
		if err := fn(i, row); err != nil {
			return err
		}
		i++
	}
	return nil
}

// Rows calls fn for every row of the archived result id of user in tenant, in order, reading one
// chunk at a time (never the whole result). cols and row are shared: row is only valid during the
// call, and neither may be modified. It stops at the first error of fn or of ctx and returns it;
// otherwise the errors are those of Page (an archive deleted during the read ends it with one
// wrapping domain.ErrNotFound).
func (s *Store) Rows(ctx context.Context, id string, tenant domain.TenantID, user domain.UserID, fn func(cols []results.Column, row json.RawMessage) error) error {
	h, err := s.header(ctx, id, tenant, user)
	if err != nil {
		return err
	}
	var data []byte
	for chunk, next := 0, int64(0); next < h.total; chunk++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		var first, count int64
		err := s.db.QueryRowContext(ctx, `SELECT first_row, row_count, data FROM result_archive_chunks WHERE query_id = ? AND chunk = ?`,
			id, chunk).Scan(&first, &count, &data)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(id) // deleted meanwhile
		} else if err != nil {
			return fmt.Errorf("resultarchive: read %s: %w", id, err)
		}
		if first != next || count < 1 {
			return fmt.Errorf("resultarchive: read %s: chunk %d at row %d, want %d: %w", id, chunk, first, next, errCorrupt)
		}
		err = eachRow(data, count, func(_ int64, row []byte) error { return fn(h.cols, row) })
		if err != nil {
			return err
		}
		next += count
	}
	return nil
}

// Delete removes the archived result id of user in tenant, rows and all. Returns an error
// wrapping domain.ErrNotFound when there is none for the caller.
func (s *Store) Delete(ctx context.Context, id string, tenant domain.TenantID, user domain.UserID) error {
	if !validID(id) {
		return notFound(id)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("resultarchive: begin: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM result_archives WHERE query_id = ? AND tenant_id = ? AND user_id = ?`,
		id, string(tenant), string(user))
	if err != nil {
		return fmt.Errorf("resultarchive: delete %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("resultarchive: delete %s: %w", id, err)
	} else if n == 0 {
		return notFound(id)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM result_archive_chunks WHERE query_id = ?`, id); err != nil {
		return fmt.Errorf("resultarchive: delete %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("resultarchive: delete %s: commit: %w", id, err)
	}
	return nil
}
