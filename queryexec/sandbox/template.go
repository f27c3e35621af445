package queryexec

import (
	"context"
	"database/sql"
	"fmt"
)

// StatementError says which statement of a list failed, and how.
type StatementError struct {
	Index     int // 1-based
	Err       error
	Completed []Result // of a multi query: the statements before it, which ran
}

func (e *StatementError) Error() string { return fmt.Sprintf("statement %d: %v", e.Index, e.Err) }
func (e *StatementError) Unwrap() error { return e.Err }

// RunAsOwner runs statements, in order, in database id's schema on its read-write account: what
// a tenant's own DDL (the "schema" template) runs as, so the account's grants hold whatever the
// statements say, and routines they create are defined by the account, not by an administrator.
// Returns a *StatementError for the first statement that fails.
func (s *Sandbox) RunAsOwner(ctx context.Context, id, password string, statements []string) error {
	n, err := s.names(id)
	if err != nil {
		return err
	}
	cfg := s.tenantNet.Clone()
	cfg.User, cfg.Passwd, cfg.DBName = n.rw, password, n.schema
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return s.wrap("connect as the database's account", err)
	}
	defer conn.Close()
	for i, stmt := range statements {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return &StatementError{Index: i + 1, Err: err}
		}
	}
	return nil
}
