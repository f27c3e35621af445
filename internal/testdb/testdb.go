// Package testdb gives each test its own freshly migrated management database on the MySQL server
// named by CLOUDDB_TEST_DSN (default root@tcp(127.0.0.1:3306)/), and drops it afterwards.
//
// A test that needs MySQL fails when the server does not answer: a suite that skipped in CI would
// hide everything.
package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/internal/mgmtdb"
	"github.com/clouddbmanager/clouddb/migrations"
)

// ServerDSN is the DSN of the test server, without a database.
func ServerDSN() string {
	if dsn := os.Getenv("CLOUDDB_TEST_DSN"); dsn != "" {
		return dsn
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// DSN returns the DSN of a new, uniquely named, empty database that is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(ServerDSN())
	if err != nil {
		t.Fatalf("CLOUDDB_TEST_DSN: %v", err)
	}
	name := "clouddb_test_" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	cfg.DBName = ""
	server, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := server.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
		server.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := server.PingContext(ctx); err != nil {
		t.Fatalf("test MySQL server at %s does not answer (set CLOUDDB_TEST_DSN or start MariaDB): %v", cfg.Addr, err)
	}
	cfg.DBName = name
	return cfg.FormatDSN()
}

// New returns a pool on a new migrated management database that is dropped when t ends.
func New(t testing.TB) *sql.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	db, err := mgmtdb.Open(ctx, DSN(t), 10*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := migrations.Apply(ctx, db, log); err != nil {
		t.Fatal(fmt.Errorf("migrate test database: %w", err))
	}
	return db
}
