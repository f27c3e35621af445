// Package testdb gives each test its own freshly migrated management database on the test MySQL
// server, and drops it afterwards. The server is the one CLOUDDB_TEST_DSN names; without it, the
// one at 127.0.0.1:3306 (root, no password) when it answers; otherwise a private MariaDB that the
// test binaries share under the project's .local/testdb, started by the first that needs it and
// left running for the next runs (localmysql.Shared): the fallback `make run` has too.
//
// A test that needs MySQL fails when no server can be had: a suite that skipped in CI would hide
// everything.
package testdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/internal/localmysql"
	"github.com/clouddbmanager/clouddb/internal/mgmtdb"
	"github.com/clouddbmanager/clouddb/migrations"
)

// localDSN is the conventional local server: what `apt-get install mariadb-server` gives.
const localDSN = "root@tcp(127.0.0.1:3306)/"

// server is the test server of this test binary, found once (findServer).
var server struct {
	once sync.Once
	dsn  string
	err  error // no server could be had; DSN fails the test with it
}

// ServerDSN is the DSN of the test server, without a database (see the package comment).
func ServerDSN() string {
	server.once.Do(func() {
		server.dsn, server.err = findServer(os.Getenv("CLOUDDB_TEST_DSN"), answers, startShared)
	})
	return server.dsn
}

// findServer chooses the test server: env (CLOUDDB_TEST_DSN) when set, else localDSN when it
// answers, else the shared private server. On error it still returns localDSN, so that tests
// that only read the DSN go on and those that connect fail saying why.
func findServer(env string, answers func(dsn string) bool, private func() (string, error)) (string, error) {
	switch {
	case env != "":
		return env, nil
	case answers(localDSN):
		return localDSN, nil
	}
	dsn, err := private()
	if err != nil {
		return localDSN, fmt.Errorf("nothing answers at 127.0.0.1:3306, CLOUDDB_TEST_DSN is unset, and no private MariaDB could be started: %w", err)
	}
	return dsn, nil
}

// answers reports whether a MySQL server answers at dsn within a second.
func answers(dsn string) bool {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return false
	}
	cfg.Timeout = time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return false
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx) == nil
}

// startShared finds or starts the private MariaDB the test binaries share under the module's
// .local/testdb, fetching MariaDB into .local/mariadb first when none is installed.
func startShared() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a download may be slow
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := filepath.Join(root, ".local", "testdb")
	dsn, started, err := localmysql.Shared(ctx, dir, filepath.Join(root, ".local", "mariadb"), log)
	if err == nil && started {
		fmt.Fprintf(os.Stderr, "testdb: nothing answers at 127.0.0.1:3306 and CLOUDDB_TEST_DSN is unset: started a private MariaDB for the tests at %s "+
			"(data in %s, kept running for the next runs; stop it with: kill $(cat %s))\n", dsn, dir, filepath.Join(dir, "mysql.pid"))
	}
	return dsn, err
}

// moduleRoot is the folder of go.mod above the working directory (a test runs in its package's).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// DSN returns the DSN of a new, uniquely named, empty database that is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(ServerDSN())
	if server.err != nil {
		t.Fatal(server.err)
	} else if err != nil {
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
