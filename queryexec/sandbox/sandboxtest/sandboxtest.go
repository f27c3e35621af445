// Package sandboxtest opens the test server (internal/testdb) as a sandbox for the tests of the
// packages that administer or query RDS-B, and provisions databases on it that are dropped when
// the test ends.
package sandboxtest

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// Prefix keeps test schemas and accounts apart from a developer's real "cdb_" ones.
const Prefix = "cdbt_"

// Context is a test's context: it ends with the test, or after 15 seconds.
func Context(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Open opens the test server as a sandbox; it fails the test when the server does not answer.
func Open(t *testing.T, prefix string) *sandbox.Sandbox {
	t.Helper()
	s, err := sandbox.Open(Context(t), "test", testdb.ServerDSN(), prefix, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open sandbox (set CLOUDDB_TEST_DSN or start MariaDB): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Provision provisions a new database with a fresh id and drops it when the test ends.
func Provision(t *testing.T, s *sandbox.Sandbox, charset, collation string, maxConns int) (id, rw, ro string) {
	t.Helper()
	id = uuid.NewString()
	CleanupDrop(t, s, id)
	rw, ro, err := s.Provision(Context(t), sandbox.Spec{ID: id, Charset: charset, Collation: collation, MaxUserConnections: maxConns})
	if err != nil {
		t.Fatalf("provision %s: %v", id, err)
	}
	return id, rw, ro
}

// CleanupDrop drops database id of s when the test ends.
func CleanupDrop(t *testing.T, s *sandbox.Sandbox, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Drop(ctx, id); err != nil {
			t.Errorf("cleanup: drop %s: %v", id, err)
		}
	})
}

// DSNAs is a DSN for user on the sandbox's host and port, optionally with a default schema.
func DSNAs(t *testing.T, s *sandbox.Sandbox, user, password, schema string) string {
	t.Helper()
	cfg := mysql.NewConfig()
	host, port := s.Host()
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(host, fmt.Sprint(port))
	cfg.User, cfg.Passwd, cfg.DBName = user, password, schema
	cfg.Timeout = 3 * time.Second
	return cfg.FormatDSN()
}

// ConnectAs opens a pool for user and checks that a connection succeeds.
func ConnectAs(t *testing.T, s *sandbox.Sandbox, user, password, schema string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", DSNAs(t, s, user, password, schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(Context(t)); err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	return db
}

// WantErrno fails the test unless err is one of the MySQL errors codes.
func WantErrno(t *testing.T, what string, err error, codes ...uint16) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want MySQL error %v", what, codes)
		return
	}
	if n := sandbox.Errno(err); !slices.Contains(codes, n) {
		t.Errorf("%s: %v, want MySQL error %v", what, err, codes)
	}
}

// MustExec runs query on db or stops the test.
func MustExec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(Context(t), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
