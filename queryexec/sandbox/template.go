package sandbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// StatementError says which statement of the schema template failed on the server, and how.
type StatementError struct {
	Index int // 1-based
	Err   error
}

func (e *StatementError) Error() string { return fmt.Sprintf("statement %d: %v", e.Index, e.Err) }
func (e *StatementError) Unwrap() error { return e.Err }

// RunAsOwner runs statements, in order, in database id's schema on its read-write account: what
// a tenant's own DDL (the "schema" template) runs as, so the account's grants hold whatever the
// statements say, and routines they create are defined by the account, not by an administrator.
// Each statement runs under timeout, the tenant's statement timeout: the server stops it
// (max_statement_time on MariaDB, max_execution_time on MySQL, which covers SELECT only) and a
// KILL QUERY from the admin connection a second later stops whatever the server did not.
// After each statement, afterEach (when not nil) may stop the run with an error: the caller's
// check of what the statements wrote so far.
// Returns a *StatementError for the first statement that fails or that afterEach stops; a
// statement cut at its timeout is one whose error TimedOut reports.
func (s *Sandbox) RunAsOwner(ctx context.Context, id, password string, statements []string, timeout time.Duration, afterEach func(context.Context) error) error {
	cfg, err := s.AccountConfig(id, password, false)
	if err != nil {
		return err
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return s.Wrap("connect as the database's account", err)
	}
	defer conn.Close()
	var connectionID uint64
	limit := "SET SESSION max_statement_time = " + strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64)
	if s.flavor == FlavorMySQL {
		limit = "SET SESSION max_execution_time = " + strconv.FormatInt(timeout.Milliseconds(), 10)
	}
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&connectionID); err != nil {
		return s.Wrap("connect as the database's account", err)
	}
	if _, err := conn.ExecContext(ctx, limit); err != nil {
		return s.Wrap("set the statement timeout", err)
	}
	for i, stmt := range statements {
		err := s.runBounded(ctx, conn, connectionID, stmt, timeout)
		if err == nil && afterEach != nil {
			err = afterEach(ctx)
		}
		if err != nil {
			return &StatementError{Index: i + 1, Err: err}
		}
	}
	return nil
}

// runBounded runs stmt on conn, killing it on the server a second after timeout.
func (s *Sandbox) runBounded(ctx context.Context, conn *sql.Conn, connectionID uint64, stmt string, timeout time.Duration) error {
	deadline, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	stop := context.AfterFunc(deadline, func() {
		kill, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer done()
		if err := s.KillQuery(kill, connectionID); err != nil {
			s.log.Warn("could not kill a template statement past its timeout", "sandbox", s.name, "err", err)
		}
	})
	defer stop()
	_, err := conn.ExecContext(deadline, stmt)
	if err != nil && deadline.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("%w: %w", errStatementTimeout, err)
	}
	return err
}

var errStatementTimeout = errors.New("statement timeout")

// TimedOut reports whether err is a statement stopped at its timeout: by the server
// (MariaDB 1969, MySQL 3024), by the KILL QUERY (1317) or by the client's deadline.
func TimedOut(err error) bool {
	switch Errno(err) {
	case 1969, 3024, 1317:
		return true
	}
	return errors.Is(err, errStatementTimeout)
}
