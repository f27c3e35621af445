// Package migrations holds the versioned SQL of the management database (RDS-A), embedded in the
// binary and applied at start with pressly/goose.
//
// MySQL commits DDL implicitly, so each file is written to be re-runnable (IF NOT EXISTS, INSERT
// IGNORE): a process that dies halfway through a file can simply apply it again.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"log/slog"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"

	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/personaldata"
)

//go:embed *.sql
var files embed.FS

// Apply brings db up to the newest migration. Several processes may call it at once: a lock row
// lets one migrate while the others wait, then find nothing left to do.
//
// opts (at most one) give the Go migrations 29 and 30 the codec they seal personal data with;
// without it they fail if there is something to seal (a new, empty database has nothing).
func Apply(ctx context.Context, db *sql.DB, log *slog.Logger, opts ...Options) error {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	locker, err := lock.NewMySQLTableLocker(
		lock.WithTableName("schema_migrations_lock"),
		lock.WithTableLockTimeout(200*time.Millisecond, 1500), // 5 minutes
		lock.WithTableLogger(log),
	)
	if err != nil {
		return fmt.Errorf("migrations: locker: %w", err)
	}
	provider, err := goose.NewProvider("", db, files,
		goose.WithStore(mustStore()),
		goose.WithLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(log),
		goose.WithGoMigrations(append([]*goose.Migration{chainBackfill(log)}, personalDataMigrations(o.PersonalData, log)...)...),
	)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "took_ms", r.Duration.Milliseconds())
	}
	return nil
}

// chainBackfill is migration 16: it chains the events recorded before 0015 gave the log its hash
// chains. It runs outside a transaction, committing a batch at a time (eventstore.ChainBackfill);
// a process that dies halfway leaves the version unrecorded, and the next start chains the rest.
func chainBackfill(log *slog.Logger) *goose.Migration {
	return goose.NewGoMigration(16, &goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
		return eventstore.ChainBackfill(ctx, db, log)
	}}, nil)
}

// Options are what some migrations need besides the database.
type Options struct {
	// PersonalData opens the codec of internal/personaldata (it needs the vault's key).
	PersonalData personaldata.Opener
}

// personalDataMigrations are migrations 29 (email claims become keyed hashes) and 30 (personal
// data recorded in clear is sealed and its chains re-chained; docs/ARCHITECTURE.md, "Personal data
// and erasure"). Like 16, they run outside a transaction; each returns at once when nothing is
// left to do, so a process that died halfway finishes them at its next start.
func personalDataMigrations(open personaldata.Opener, log *slog.Logger) []*goose.Migration {
	return []*goose.Migration{
		goose.NewGoMigration(29, &goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			return personaldata.MigrateClaims(ctx, db, open, log)
		}}, nil),
		goose.NewGoMigration(30, &goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
			return personaldata.SealRecorded(ctx, db, open, log)
		}}, nil),
	}
}

func mustStore() database.Store {
	store, err := database.NewStore(database.DialectMySQL, "schema_migrations")
	if err != nil {
		panic(err)
	}
	return store
}
