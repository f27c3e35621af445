package sandbox

import (
	"context"
	"database/sql"
	"fmt"
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
// Returns a *StatementError for the first statement that fails.
func (s *Sandbox) RunAsOwner(ctx context.Context, id, password string, statements []string) error {
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
	for i, stmt := range statements {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return &StatementError{Index: i + 1, Err: err}
		}
	}
	return nil
}
