package resultarchive_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/resultarchive"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/queryexec/results"
)

var cols = []results.Column{{Name: "id", Type: "INT"}, {Name: "name", Type: "VARCHAR"}, {Name: "note", Type: "TEXT"}}

// row is the i-th row of the test results.
func row(i int64) json.RawMessage {
	return json.RawMessage(`[` + strconv.FormatInt(i, 10) + `,"row ` + strconv.FormatInt(i, 10) + `",null]`)
}

// generated yields rows 0 to n-1.
func generated(n int64) func(yield func(json.RawMessage) error) error {
	return func(yield func(json.RawMessage) error) error {
		buf := make([]byte, 0, 64)
		for i := range n {
			buf = append(buf[:0], row(i)...) // reused: Save must copy
			if err := yield(buf); err != nil {
				return err
			}
		}
		return nil
	}
}

type owner struct {
	tenant domain.TenantID
	user   domain.UserID
}

func newOwner() owner {
	return owner{domain.TenantID(uuid.NewString()), domain.UserID(uuid.NewString())}
}

func meta(o owner, at time.Time) resultarchive.Meta {
	return resultarchive.Meta{QueryID: uuid.NewString(), TenantID: o.tenant, UserID: o.user,
		DatabaseID: domain.DatabaseID(uuid.NewString()), SQL: "SELECT id, name, note FROM t WHERE pw = '***'", ArchivedAt: at}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantRows(t *testing.T, page results.Page, from, n int64) {
	t.Helper()
	if int64(len(page.Rows)) != n {
		t.Fatalf("page at %d has %d rows, want %d", page.Offset, len(page.Rows), n)
	}
	for i, r := range page.Rows {
		if want := row(from + int64(i)); string(r) != string(want) {
			t.Fatalf("row %d = %s, want %s", from+int64(i), r, want)
		}
	}
}

func chunkStarts(t *testing.T, db *sql.DB, id string) []int64 {
	t.Helper()
	rows, err := db.Query(`SELECT first_row FROM result_archive_chunks WHERE query_id = ? ORDER BY chunk`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var starts []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		starts = append(starts, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return starts
}

// A 100,000-row result is saved in chunks of about 512 KiB, listed, paged (reading only the
// chunks a page needs) and streamed whole, in order.
func TestLargeResult(t *testing.T) {
	db := testdb.New(t)
	s := resultarchive.New(db)
	o := newOwner()
	const total = 100_000
	m := meta(o, time.Date(2026, 3, 4, 5, 6, 7, 891011123, time.UTC))
	if err := s.Save(ctx(t), m, cols, true, generated(total)); err != nil {
		t.Fatal(err)
	}

	var wantBytes int64
	for i := range int64(total) {
		wantBytes += int64(len(row(i))) + 1
	}
	wantBytes -= int64(len(chunkStarts(t, db, m.QueryID))) // no separator after a chunk's last row
	it, err := s.Get(ctx(t), m.QueryID, o.tenant, o.user)
	if err != nil {
		t.Fatal(err)
	}
	if it.RowCount != total || !it.Truncated || it.Bytes != wantBytes || it.SQL != m.SQL || it.DatabaseID != m.DatabaseID ||
		!it.ArchivedAt.Equal(m.ArchivedAt.Truncate(time.Microsecond)) || fmt.Sprint(it.Columns) != fmt.Sprint(cols) {
		t.Errorf("Get = %+v, want %d rows, truncated, %d bytes, the meta and columns", it, total, wantBytes)
	}
	var biggest int64
	if err := db.QueryRow(`SELECT MAX(LENGTH(data)) FROM result_archive_chunks WHERE query_id = ?`, m.QueryID).Scan(&biggest); err != nil {
		t.Fatal(err)
	}
	starts := chunkStarts(t, db, m.QueryID)
	if len(starts) < 3 || biggest > resultarchive.DefaultChunkBytes || biggest < resultarchive.DefaultChunkBytes-100 {
		t.Fatalf("%d chunks, the biggest %d bytes: want several of about %d", len(starts), biggest, resultarchive.DefaultChunkBytes)
	}

	// Pages: the first, across a chunk boundary, the last (short), past the end, a capped limit.
	boundary := starts[1]
	for _, tc := range []struct{ offset, limit, want int64 }{
		{0, 10, 10},
		{boundary - 5, 10, 10},
		{boundary, 1, 1},
		{total - 3, 100, 3},
		{total, 10, 0},
		{total + 1000, 10, 0},
		{0, 50_000, 10_000},
		{boundary - 1, 10_000, 10_000},
	} {
		p, err := s.Page(ctx(t), m.QueryID, o.tenant, o.user, tc.offset, tc.limit)
		if err != nil {
			t.Fatalf("Page(%d, %d): %v", tc.offset, tc.limit, err)
		}
		if p.Total != total || !p.Truncated || p.Offset != tc.offset || p.Limit != min(tc.limit, 10_000) || len(p.Columns) != 3 || p.Rows == nil {
			t.Errorf("Page(%d, %d) = total %d truncated %v offset %d limit %d", tc.offset, tc.limit, p.Total, p.Truncated, p.Offset, p.Limit)
		}
		wantRows(t, p, tc.offset, tc.want)
	}
	var verr *domain.ValidationError
	if _, err := s.Page(ctx(t), m.QueryID, o.tenant, o.user, -1, 10); !errors.As(err, &verr) || verr.Fields["offset"] == "" {
		t.Errorf("Page at -1: %v, want a validation error on offset", err)
	}
	if _, err := s.Page(ctx(t), m.QueryID, o.tenant, o.user, 0, 0); !errors.As(err, &verr) || verr.Fields["limit"] == "" {
		t.Errorf("Page of 0 rows: %v, want a validation error on limit", err)
	}

	// Streamed whole, in order.
	var n int64
	err = s.Rows(ctx(t), m.QueryID, o.tenant, o.user, func(c []results.Column, r json.RawMessage) error {
		if len(c) != 3 || string(r) != string(row(n)) {
			return fmt.Errorf("row %d = %s (%d columns)", n, r, len(c))
		}
		n++
		return nil
	})
	if err != nil || n != total {
		t.Fatalf("Rows: %v after %d rows, want %d", err, n, total)
	}
	// fn's error stops it.
	stop := errors.New("enough")
	n = 0
	if err := s.Rows(ctx(t), m.QueryID, o.tenant, o.user, func([]results.Column, json.RawMessage) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	}); !errors.Is(err, stop) || n != 3 {
		t.Errorf("Rows with a failing fn = %v after %d rows", err, n)
	}

	// A page reads only its chunks: spoil the first one, and pages of the others still answer.
	if _, err := db.Exec(`UPDATE result_archive_chunks SET data = 'not rows' WHERE query_id = ? AND chunk = 0`, m.QueryID); err != nil {
		t.Fatal(err)
	}
	p, err := s.Page(ctx(t), m.QueryID, o.tenant, o.user, boundary, 100)
	if err != nil {
		t.Fatalf("a page past the spoilt chunk: %v", err)
	}
	wantRows(t, p, boundary, 100)
	if _, err := s.Page(ctx(t), m.QueryID, o.tenant, o.user, 0, 10); err == nil {
		t.Error("a page of the spoilt chunk was served")
	}
}

// Small chunks: pages spanning many of them, a row bigger than a chunk, an empty result, rows
// with raw newlines (compacted) and rows that are not JSON (refused).
func TestChunksAndOddRows(t *testing.T) {
	db := testdb.New(t)
	s := resultarchive.New(db)
	resultarchive.SetChunkBytes(s, 64)
	o := newOwner()
	m := meta(o, time.Now())
	if err := s.Save(ctx(t), m, cols, false, generated(500)); err != nil {
		t.Fatal(err)
	}
	if starts := chunkStarts(t, db, m.QueryID); len(starts) < 100 {
		t.Fatalf("%d chunks of 64 bytes for 500 rows", len(starts))
	}
	for _, off := range []int64{0, 1, 2, 3, 97, 250, 498} {
		p, err := s.Page(ctx(t), m.QueryID, o.tenant, o.user, off, 37)
		if err != nil {
			t.Fatal(err)
		}
		wantRows(t, p, off, min(37, 500-off))
	}

	big := json.RawMessage(`["` + strings.Repeat("7", 200) + `"]`) // alone in a chunk bigger than 64 bytes
	odd := meta(o, time.Now())
	err := s.Save(ctx(t), odd, cols[:1], false, func(yield func(json.RawMessage) error) error {
		for _, r := range []json.RawMessage{json.RawMessage("[1]"), big, json.RawMessage("[\n  2,\n  \"a\\nb\"\n]"), json.RawMessage("[3]")} {
			if err := yield(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.Rows(ctx(t), odd.QueryID, o.tenant, o.user, func(_ []results.Column, r json.RawMessage) error {
		got = append(got, string(r))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"[1]", string(big), `[2,"a\nb"]`, "[3]"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows = %q, want %q", got, want)
	}

	empty := meta(o, time.Now())
	if err := s.Save(ctx(t), empty, nil, false, generated(0)); err != nil {
		t.Fatal(err)
	}
	p, err := s.Page(ctx(t), empty.QueryID, o.tenant, o.user, 0, 10)
	if err != nil || p.Total != 0 || p.Rows == nil || len(p.Rows) != 0 || p.Columns == nil {
		t.Errorf("Page of an empty result = %+v, %v", p, err)
	}
	if err := s.Rows(ctx(t), empty.QueryID, o.tenant, o.user, func([]results.Column, json.RawMessage) error {
		return errors.New("called")
	}); err != nil {
		t.Errorf("Rows of an empty result: %v", err)
	}

	for name, bad := range map[string]json.RawMessage{"not JSON": json.RawMessage("[1,\n"), "empty": json.RawMessage("")} {
		m := meta(o, time.Now())
		if err := s.Save(ctx(t), m, cols, false, func(yield func(json.RawMessage) error) error {
			if err := yield(row(0)); err != nil {
				return err
			}
			return yield(bad)
		}); err == nil {
			t.Errorf("a %s row was saved", name)
		}
		if _, err := s.Get(ctx(t), m.QueryID, o.tenant, o.user); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("after a failed save (%s row): %v, want nothing archived", name, err)
		}
	}
}

// Only the user who ran the query, in the tenant where they ran it, sees, pages, streams or
// deletes an archive; everyone else gets ErrNotFound, as for an unknown or malformed id.
func TestIsolationAndDelete(t *testing.T) {
	db := testdb.New(t)
	s := resultarchive.New(db)
	o := newOwner()
	m := meta(o, time.Now())
	if err := s.Save(ctx(t), m, cols, false, generated(10)); err != nil {
		t.Fatal(err)
	}
	sameTenant := owner{o.tenant, domain.UserID(uuid.NewString())}
	sameUser := owner{domain.TenantID(uuid.NewString()), o.user}
	noop := func([]results.Column, json.RawMessage) error { return nil }
	for name, tc := range map[string]struct {
		id string
		o  owner
	}{
		"another user": {m.QueryID, sameTenant}, "another tenant": {m.QueryID, sameUser},
		"unknown id": {uuid.NewString(), o}, "malformed id": {"../x", o}, "upper-case id": {toUpper(m.QueryID), o},
	} {
		if _, err := s.Get(ctx(t), tc.id, tc.o.tenant, tc.o.user); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%s: Get = %v, want ErrNotFound", name, err)
		}
		if _, err := s.Page(ctx(t), tc.id, tc.o.tenant, tc.o.user, 0, 10); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%s: Page = %v, want ErrNotFound", name, err)
		}
		if err := s.Rows(ctx(t), tc.id, tc.o.tenant, tc.o.user, noop); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%s: Rows = %v, want ErrNotFound", name, err)
		}
		if err := s.Delete(ctx(t), tc.id, tc.o.tenant, tc.o.user); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%s: Delete = %v, want ErrNotFound", name, err)
		}
	}
	for _, other := range []owner{sameTenant, sameUser} {
		if items, _, err := s.List(ctx(t), other.tenant, other.user, 0, ""); err != nil || len(items) != 0 {
			t.Errorf("List of %v = %v, %v; want nothing", other, items, err)
		}
	}
	if items, _, err := s.List(ctx(t), o.tenant, o.user, 0, ""); err != nil || len(items) != 1 || items[0].QueryID != m.QueryID {
		t.Fatalf("List of the owner = %v, %v", items, err)
	}

	if err := s.Delete(ctx(t), m.QueryID, o.tenant, o.user); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Page(ctx(t), m.QueryID, o.tenant, o.user, 0, 10); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Page after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx(t), m.QueryID, o.tenant, o.user); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if items, _, err := s.List(ctx(t), o.tenant, o.user, 0, ""); err != nil || len(items) != 0 {
		t.Errorf("List after Delete = %v, %v", items, err)
	}
	var chunks int
	if err := db.QueryRow(`SELECT COUNT(*) FROM result_archive_chunks WHERE query_id = ?`, m.QueryID).Scan(&chunks); err != nil || chunks != 0 {
		t.Errorf("%d chunks left after Delete (%v)", chunks, err)
	}
}

func toUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Saving a query id again, one after the other or at once, keeps the first archive and
// succeeds; a failed save leaves nothing behind, so the next one succeeds.
func TestSaveIsIdempotent(t *testing.T) {
	db := testdb.New(t)
	s := resultarchive.New(db)
	o := newOwner()
	m := meta(o, time.Now())
	if err := s.Save(ctx(t), m, cols, false, generated(100)); err != nil {
		t.Fatal(err)
	}
	again := m
	again.SQL = "SELECT something else"
	if err := s.Save(ctx(t), again, cols, false, func(func(json.RawMessage) error) error {
		t.Error("rows read for an archived query id")
		return nil
	}); err != nil {
		t.Fatalf("second Save: %v", err)
	}
	if it, err := s.Get(ctx(t), m.QueryID, o.tenant, o.user); err != nil || it.SQL != m.SQL || it.RowCount != 100 {
		t.Errorf("after the second Save: %+v, %v; want the first archive", it, err)
	}

	concurrent := meta(o, time.Now())
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Save(ctx(t), concurrent, cols, false, generated(2000)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Save %d: %v", i, err)
		}
	}
	var archives, chunkRows int64
	if err := db.QueryRow(`SELECT COUNT(*), (SELECT COALESCE(SUM(row_count), 0) FROM result_archive_chunks WHERE query_id = ?)
		FROM result_archives WHERE query_id = ?`, concurrent.QueryID, concurrent.QueryID).Scan(&archives, &chunkRows); err != nil {
		t.Fatal(err)
	}
	if archives != 1 || chunkRows != 2000 {
		t.Errorf("after 8 concurrent saves: %d archives holding %d rows, want 1 of 2000", archives, chunkRows)
	}

	failing := meta(o, time.Now())
	boom := errors.New("the result store forgot it")
	if err := s.Save(ctx(t), failing, cols, false, func(yield func(json.RawMessage) error) error {
		if err := generated(10)(yield); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Save with failing rows = %v, want %v", err, boom)
	}
	if err := s.Save(ctx(t), failing, cols, false, generated(10)); err != nil {
		t.Fatalf("Save after a failed one: %v", err)
	}
	if p, err := s.Page(ctx(t), failing.QueryID, o.tenant, o.user, 0, 100); err != nil || p.Total != 10 {
		t.Errorf("after a failed then a good save: %+v, %v", p, err)
	}
}

// List is newest first, limit at a time, with ties on archived_at broken by query id, and a
// cursor that is opaque but checked.
func TestListPages(t *testing.T) {
	db := testdb.New(t)
	s := resultarchive.New(db)
	o := newOwner()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []string // newest first
	metas := make([]resultarchive.Meta, 0, 9)
	for i := range 9 {
		metas = append(metas, meta(o, base.Add(time.Duration(i/3)*time.Second))) // three per second
	}
	for _, m := range metas {
		if err := s.Save(ctx(t), m, cols, false, generated(1)); err != nil {
			t.Fatal(err)
		}
	}
	for sec := 2; sec >= 0; sec-- {
		ids := []string{metas[3*sec].QueryID, metas[3*sec+1].QueryID, metas[3*sec+2].QueryID}
		for range 3 { // descending query ids within the second
			best := 0
			for j := range ids {
				if ids[j] > ids[best] {
					best = j
				}
			}
			want = append(want, ids[best])
			ids = append(ids[:best], ids[best+1:]...)
		}
	}
	// Someone else's archive is never listed.
	if err := s.Save(ctx(t), meta(newOwner(), base), cols, false, generated(1)); err != nil {
		t.Fatal(err)
	}

	var got []string
	cursor, pages := "", 0
	for {
		items, next, err := s.List(ctx(t), o.tenant, o.user, 4, cursor)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range items {
			got = append(got, it.QueryID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 3 {
		t.Errorf("pages of 4 = %v in %d pages, want %v in 3", got, pages, want)
	}
	if items, next, err := s.List(ctx(t), o.tenant, o.user, 0, ""); err != nil || len(items) != 9 || next != "" {
		t.Errorf("List with the default limit = %d items, next %q, %v", len(items), next, err)
	}
	if items, next, err := s.List(ctx(t), o.tenant, o.user, 9, ""); err != nil || len(items) != 9 || next != "" {
		t.Errorf("List with limit 9 = %d items, next %q, %v; want no next page", len(items), next, err)
	}
	var verr *domain.ValidationError
	for _, bad := range []string{"garbage!", "Zm9v", uuid.NewString()} {
		if _, _, err := s.List(ctx(t), o.tenant, o.user, 10, bad); !errors.As(err, &verr) || verr.Fields["cursor"] == "" {
			t.Errorf("List with cursor %q = %v, want a validation error on cursor", bad, err)
		}
	}
}
