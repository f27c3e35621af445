package migrations_test

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"

	"github.com/clouddbmanager/clouddb/internal/mgmtdb"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/migrations"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// open returns a pool on dsn, as a process would open it at start.
func open(t *testing.T, ctx context.Context, dsn string) *sql.DB {
	t.Helper()
	db, err := mgmtdb.Open(ctx, dsn, 10*time.Second, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// migrationFiles counts the embedded migrations (the files next to this test, and the Go ones).
func migrationFiles(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob("*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no *.sql migrations found next to migrate_test.go")
	}
	return len(files) + 3 // and the Go ones: 16 (the chains' backfill), 29 and 30 (personal data)
}

func tables(t *testing.T, ctx context.Context, db *sql.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

type applied struct {
	versions map[int64]int // version_id → rows with it, over versions ≥ 1
	zeroRows int           // goose's initial version-0 row
}

func appliedVersions(t *testing.T, ctx context.Context, db *sql.DB) applied {
	t.Helper()
	rows, err := db.QueryContext(ctx, `SELECT version_id, is_applied FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	a := applied{versions: map[int64]int{}}
	for rows.Next() {
		var v int64
		var ok bool
		if err := rows.Scan(&v, &ok); err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("schema_migrations has version %d with is_applied = false", v)
		}
		if v == 0 {
			a.zeroRows++
		} else {
			a.versions[v]++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return a
}

// checkSchema verifies the state after a successful Apply: the tables, the single sequence row at
// want, and one schema_migrations row per migration file.
func checkSchema(t *testing.T, ctx context.Context, db *sql.DB, wantPosition int64) {
	t.Helper()
	got := tables(t, ctx, db)
	for _, want := range []string{"claims", "event_sequence", "events", "idempotency_keys", "schema_migrations"} {
		if !slices.Contains(got, want) {
			t.Errorf("table %s missing after Apply; tables: %v", want, got)
		}
	}
	var n, id, last int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(id), MIN(last_position) FROM event_sequence`).Scan(&n, &id, &last); err != nil {
		t.Fatal(err)
	}
	if n != 1 || id != 1 || last != wantPosition {
		t.Errorf("event_sequence has %d rows (id %d, last_position %d), want one row id 1 at %d", n, id, last, wantPosition)
	}
	a := appliedVersions(t, ctx, db)
	if want := migrationFiles(t); len(a.versions) != want {
		t.Errorf("schema_migrations records %d versions ≥ 1 (%v), want %d, one per migration file", len(a.versions), a.versions, want)
	}
	for v, count := range a.versions {
		if count != 1 {
			t.Errorf("schema_migrations has %d rows for version %d, want 1", count, v)
		}
	}
	if a.zeroRows > 1 {
		t.Errorf("schema_migrations has %d rows for version 0, want at most 1", a.zeroRows)
	}
}

func TestApplyFreshDatabase(t *testing.T) {
	ctx := t.Context()
	db := open(t, ctx, testdb.DSN(t))
	if got := tables(t, ctx, db); len(got) != 0 {
		t.Fatalf("fresh database has tables %v", got)
	}
	if err := migrations.Apply(ctx, db, discard()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	checkSchema(t, ctx, db, 0)

	// The tables are usable as the event store expects.
	if _, err := db.ExecContext(ctx, `INSERT INTO events (position, event_id, stream_id, stream_type, stream_version,
		event_type, payload, metadata, recorded_at) VALUES (1, ?, 'database-1', 'database', 1, 'database.requested.v1', '{}', '{}', ?)`,
		"00000000-0000-0000-0000-000000000001", time.Now()); err != nil {
		t.Errorf("insert into events: %v", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO events (position, event_id, stream_id, stream_type, stream_version,
		event_type, payload, metadata, recorded_at) VALUES (2, ?, 'database-1', 'database', 1, 'database.requested.v1', '{}', '{}', ?)`,
		"00000000-0000-0000-0000-000000000002", time.Now()); err == nil {
		t.Error("a second event with the same (stream_id, stream_version) was accepted, want a unique-key violation")
	}
}

func TestApplyTwiceIsNoOp(t *testing.T) {
	ctx := t.Context()
	dsn := testdb.DSN(t)
	db := open(t, ctx, dsn)
	if err := migrations.Apply(ctx, db, discard()); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	before := appliedVersions(t, ctx, db)
	// Data written after the first Apply must survive the second one.
	if _, err := db.ExecContext(ctx, `UPDATE event_sequence SET last_position = 7 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO claims (claim_key, stream_id, claimed_at) VALUES ('k', 's', ?)`, time.Now()); err != nil {
		t.Fatal(err)
	}

	if err := migrations.Apply(ctx, db, discard()); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	checkSchema(t, ctx, db, 7)
	after := appliedVersions(t, ctx, db)
	if len(after.versions) != len(before.versions) || after.zeroRows != before.zeroRows {
		t.Errorf("second Apply changed schema_migrations: before %+v, after %+v", before, after)
	}
	var claims int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM claims`).Scan(&claims); err != nil || claims != 1 {
		t.Errorf("claims has %d rows after the second Apply (err %v), want 1", claims, err)
	}

	// A new pool (a restarted process) finds nothing to do either.
	if err := migrations.Apply(ctx, open(t, ctx, dsn), discard()); err != nil {
		t.Fatalf("Apply from a new pool: %v", err)
	}
	checkSchema(t, ctx, db, 7)
}

func TestApplyConcurrent(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, ctx context.Context, dsn string)
	}{
		{"fresh database", nil},
		// goose creates schema_migrations before it migrates; when the table is already there, no
		// process waits on goose's version-table retry, so only the lock keeps them apart.
		{"version table already created", createVersionTable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const processes = 4
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			dsn := testdb.DSN(t)
			if tt.prepare != nil {
				tt.prepare(t, ctx, dsn)
			}

			// Each "process" opens its own pool (which creates the database if missing) and
			// migrates, all released at once.
			start := make(chan struct{})
			errs := make([]error, processes)
			pools := make([]*sql.DB, processes)
			var wg sync.WaitGroup
			for i := range processes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					db, err := mgmtdb.Open(ctx, dsn, 10*time.Second, discard())
					if err != nil {
						errs[i] = err
						return
					}
					pools[i] = db
					errs[i] = migrations.Apply(ctx, db, discard())
				}()
			}
			close(start)
			wg.Wait()
			for _, db := range pools {
				if db != nil {
					t.Cleanup(func() { db.Close() })
				}
			}
			for i, err := range errs {
				if err != nil {
					t.Errorf("process %d: %v", i, err)
				}
			}
			if t.Failed() {
				return
			}
			checkSchema(t, ctx, pools[0], 0)
		})
	}
}

// createVersionTable leaves dsn's database with goose's schema_migrations table (and its version 0
// row) but no migration applied, as a process that died right after goose's first step would.
func createVersionTable(t *testing.T, ctx context.Context, dsn string) {
	t.Helper()
	db := open(t, ctx, dsn)
	store, err := database.NewStore(database.DialectMySQL, "schema_migrations")
	if err != nil {
		t.Fatal(err)
	}
	provider, err := goose.NewProvider("", db, os.DirFS("."), goose.WithStore(store), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := provider.GetDBVersion(ctx); err != nil || v != 0 {
		t.Fatalf("create version table: version %d, err %v; want 0, nil", v, err)
	}
	if got := tables(t, ctx, db); !slices.Equal(got, []string{"schema_migrations"}) {
		t.Fatalf("after creating the version table, tables = %v, want [schema_migrations]", got)
	}
}
