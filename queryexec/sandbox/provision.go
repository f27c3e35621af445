package sandbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// Privileges of the two accounts, granted on their own schema only. Left out on purpose: LOCK
// TABLES and EVENT (forbidden to users), FILE, PROCESS, SUPER and every other global privilege,
// GRANT OPTION.
const (
	rwPrivileges = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, " +
		"CREATE VIEW, SHOW VIEW, TRIGGER, REFERENCES, EXECUTE, CREATE ROUTINE, ALTER ROUTINE"
	roPrivileges = "SELECT, SHOW VIEW"
	// While its tenant is over its storage quota (Grants.WritesRestricted), the read-write account keeps
	// what reads and what frees space (DELETE; DROP, which TRUNCATE needs too), and EXECUTE:
	// routines run with their definer's privileges, which are this account's, narrowed too, or
	// with the caller's. It loses every privilege that makes data grow.
	restrictedPrivileges = "SELECT, DELETE, DROP, SHOW VIEW, EXECUTE"
)

// MaxUserConnectionsLimit bounds Spec.MaxUserConnections.
const MaxUserConnectionsLimit = 1_000_000

// Spec is what Provision creates for one database.
type Spec struct {
	ID        string // the database id, a UUID
	Charset   string // as resolved by ValidateCharset
	Collation string // as resolved by ValidateCharset
	// MaxUserConnections is the MAX_USER_CONNECTIONS of each of the two accounts, 1 to
	// MaxUserConnectionsLimit (0 would mean unlimited in MySQL, so it is refused).
	MaxUserConnections int
	// Grants narrow the read-write account's privileges (the tenant's settings); the zero value
	// grants the full list.
	Grants Grants
}

var charsetPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

func (spec Spec) check() error {
	if !charsetPattern.MatchString(spec.Charset) || !charsetPattern.MatchString(spec.Collation) {
		return fmt.Errorf("queryexec: provision %s: charset %q and collation %q must be set (ValidateCharset resolves them)", spec.ID, spec.Charset, spec.Collation)
	}
	if spec.MaxUserConnections < 1 || spec.MaxUserConnections > MaxUserConnectionsLimit {
		return fmt.Errorf("queryexec: provision %s: max user connections %d out of 1..%d", spec.ID, spec.MaxUserConnections, MaxUserConnectionsLimit)
	}
	return nil
}

// Provision creates the schema of spec.ID with its charset and collation, and its read-write and
// read-only accounts (@'%') with new random passwords, MAX_USER_CONNECTIONS and grants on that
// schema only, and returns the two passwords.
//
// It is idempotent and resumable: after a crash at any step, calling it again converges to the
// same end state with new passwords (the passwords of an earlier attempt stop working), and it
// never leaves an account without a password. Accounts are created locked and unlocked by the last
// statement together with the new passwords, so they only ever work fully provisioned. Grants are
// revoked and granted again, so an account never keeps privileges beyond the current lists.
// Provision unlocks the accounts: do not call it on a stopped database (the reconciler, Converge,
// keeps an existing database as the log says).
//
// Returns a *domain.ValidationError for an id that is not a UUID, an error wrapping
// domain.ErrUnavailable when the server does not answer.
func (s *Sandbox) Provision(ctx context.Context, spec Spec) (rwPassword, roPassword string, err error) {
	n, err := s.names(spec.ID)
	if err != nil {
		return "", "", err
	}
	if err := spec.check(); err != nil {
		return "", "", err
	}
	if rwPassword, err = NewPassword(); err != nil {
		return "", "", err
	}
	if roPassword, err = NewPassword(); err != nil {
		return "", "", err
	}
	conn, err := s.db.Conn(ctx) // one session for the whole sequence: fewer round trips to the pool
	if err != nil {
		return "", "", s.Wrap("provision "+spec.ID, err)
	}
	defer conn.Close()

	charset := " CHARACTER SET " + spec.Charset + " COLLATE " + spec.Collation
	res, err := conn.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+sqlcheck.QuoteIdent(n.schema)+charset)
	switch Errno(err) {
	case 0:
		if err != nil { // not a server's answer: the connection broke
			return "", "", s.Wrap("provision "+spec.ID+": create schema", err)
		}
	case 1115: // unknown character set
		return "", "", domain.NewValidationError("charset", "unknown character set")
	case 1273, 1253: // unknown collation, collation not of this character set
		return "", "", domain.NewValidationError("collation", "unknown collation or not of the character set")
	default:
		return "", "", s.Wrap("provision "+spec.ID+": create schema", err)
	}
	if created, _ := res.RowsAffected(); created == 0 { // left by an earlier attempt
		if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+sqlcheck.QuoteIdent(n.schema)+charset); err != nil {
			return "", "", s.Wrap("provision "+spec.ID+": alter schema", err)
		}
	}
	limit := " WITH MAX_USER_CONNECTIONS " + strconv.Itoa(spec.MaxUserConnections)
	rw, ro := quoteAccount(n.rw), quoteAccount(n.ro)
	steps := []struct{ what, stmt string }{
		{"create accounts", "CREATE USER IF NOT EXISTS " +
			rw + " IDENTIFIED BY " + quoteString(rwPassword, true) + ", " +
			ro + " IDENTIFIED BY " + quoteString(roPassword, true) + limit + " ACCOUNT LOCK"},
		{"revoke", "REVOKE ALL PRIVILEGES, GRANT OPTION FROM " + rw + ", " + ro},
		{"grant read-write", "GRANT " + strings.Join(spec.Grants.privileges(), ", ") + " ON " + grantPattern(n.schema) + ".* TO " + rw},
		{"grant read-only", "GRANT " + roPrivileges + " ON " + grantPattern(n.schema) + ".* TO " + ro},
		{"set passwords and unlock", "ALTER USER " +
			rw + " IDENTIFIED BY " + quoteString(rwPassword, true) + ", " +
			ro + " IDENTIFIED BY " + quoteString(roPassword, true) + limit + " ACCOUNT UNLOCK"},
	}
	for _, step := range steps {
		if _, err := conn.ExecContext(ctx, step.stmt); err != nil {
			return "", "", s.Wrap("provision "+spec.ID+": "+step.what, redact(err))
		}
	}
	s.log.Info("sandbox database provisioned", "sandbox", s.name, "database_id", spec.ID, "schema", n.schema,
		"charset", spec.Charset, "collation", spec.Collation, "max_user_connections", spec.MaxUserConnections)
	return rwPassword, roPassword, nil
}

// ValidateCharset resolves a database's character set and collation against what the server
// supports. An empty charset defaults to the collation's character set when a collation is given,
// else to utf8mb4; an empty collation defaults to the server's default for the character set
// (@@collation_server when the charset is @@character_set_server, else the charset's compiled
// default). Names match case-insensitively and come back as the server spells them.
//
// Returns a *domain.ValidationError with field "charset" for an unknown character set and with
// field "collation" for an unknown collation or one of another character set.
func (s *Sandbox) ValidateCharset(ctx context.Context, charset, collation string) (string, string, error) {
	if charset != "" && !charsetPattern.MatchString(charset) {
		return "", "", domain.NewValidationError("charset", "unknown character set")
	}
	if collation != "" && !charsetPattern.MatchString(collation) {
		return "", "", domain.NewValidationError("collation", "unknown collation")
	}
	if collation != "" {
		var name, set string
		err := s.db.QueryRowContext(ctx, `SELECT COLLATION_NAME, CHARACTER_SET_NAME FROM information_schema.COLLATIONS
			WHERE COLLATION_NAME = ?`, collation).Scan(&name, &set)
		if errors.Is(err, sql.ErrNoRows) {
			return "", "", domain.NewValidationError("collation", "unknown collation")
		} else if err != nil {
			return "", "", s.Wrap("validate collation", err)
		}
		if charset == "" {
			return set, name, nil
		}
		if !strings.EqualFold(charset, set) {
			var known int
			if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.CHARACTER_SETS
				WHERE CHARACTER_SET_NAME = ?`, charset).Scan(&known); err != nil {
				return "", "", s.Wrap("validate charset", err)
			}
			if known == 0 {
				return "", "", domain.NewValidationError("charset", "unknown character set")
			}
			return "", "", domain.NewValidationError("collation", fmt.Sprintf("collation %s belongs to character set %s, not %s", name, set, strings.ToLower(charset)))
		}
		return set, name, nil
	}
	if charset == "" {
		charset = "utf8mb4"
	}
	var set, def string
	err := s.db.QueryRowContext(ctx, `SELECT CHARACTER_SET_NAME,
			IF(CHARACTER_SET_NAME = @@character_set_server, @@collation_server, DEFAULT_COLLATE_NAME)
		FROM information_schema.CHARACTER_SETS WHERE CHARACTER_SET_NAME = ?`, charset).Scan(&set, &def)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", domain.NewValidationError("charset", "unknown character set")
	} else if err != nil {
		return "", "", s.Wrap("validate charset", err)
	}
	return set, def, nil
}

// Lock locks both accounts of database id (ALTER USER … ACCOUNT LOCK: new connections fail with
// error 4151 on MariaDB, 3118 on MySQL) and then kills every connection they have open. The schema
// and its data stay.
//
// Returns an error wrapping domain.ErrNotFound if an account does not exist (the other one, if
// it exists, is locked all the same), domain.ErrUnavailable when the server does not answer.
func (s *Sandbox) Lock(ctx context.Context, id string) error {
	n, err := s.names(id)
	if err != nil {
		return err
	}
	if err := s.alterAccounts(ctx, id, "lock", "ACCOUNT LOCK", n.rw, n.ro); err != nil {
		return err
	}
	if err := s.killSessions(ctx, n.rw, n.ro); err != nil {
		return s.Wrap("lock "+id+": kill connections", err)
	}
	s.log.Info("sandbox database locked", "sandbox", s.name, "database_id", id)
	return nil
}

// Unlock unlocks both accounts of database id. Same errors as Lock.
func (s *Sandbox) Unlock(ctx context.Context, id string) error {
	n, err := s.names(id)
	if err != nil {
		return err
	}
	if err := s.alterAccounts(ctx, id, "unlock", "ACCOUNT UNLOCK", n.rw, n.ro); err != nil {
		return err
	}
	s.log.Info("sandbox database unlocked", "sandbox", s.name, "database_id", id)
	return nil
}

func (s *Sandbox) alterAccounts(ctx context.Context, id, op, clause string, users ...string) error {
	quoted := make([]string, len(users))
	for i, u := range users {
		quoted[i] = quoteAccount(u)
	}
	_, err := s.db.ExecContext(ctx, "ALTER USER "+strings.Join(quoted, ", ")+" "+clause)
	if Errno(err) == 1396 { // operation ALTER USER failed: no such account
		return fmt.Errorf("queryexec: sandbox %s: %s %s: accounts missing: %w", s.name, op, id, domain.ErrNotFound)
	} else if err != nil {
		return s.Wrap(op+" "+id, err)
	}
	return nil
}

// RotatePassword gives the read-write account of database id a new random password, kills the
// connections it has open (pooled ones included) and returns the password. The read-only account
// and a lock stay as they are.
//
// Returns an error wrapping domain.ErrNotFound if the account does not exist, domain.ErrUnavailable
// when the server does not answer.
func (s *Sandbox) RotatePassword(ctx context.Context, id string) (rwPassword string, err error) {
	n, err := s.names(id)
	if err != nil {
		return "", err
	}
	if rwPassword, err = NewPassword(); err != nil {
		return "", err
	}
	_, err = s.db.ExecContext(ctx, "ALTER USER "+quoteAccount(n.rw)+" IDENTIFIED BY "+quoteString(rwPassword, true))
	if Errno(err) == 1396 {
		return "", fmt.Errorf("queryexec: sandbox %s: rotate password of %s: account missing: %w", s.name, id, domain.ErrNotFound)
	} else if err != nil {
		return "", s.Wrap("rotate password of "+id, redact(err))
	}
	if err := s.killSessions(ctx, n.rw); err != nil {
		return "", s.Wrap("rotate password of "+id+": kill connections", err)
	}
	s.log.Info("sandbox password rotated", "sandbox", s.name, "database_id", id)
	return rwPassword, nil
}

// Drop removes database id from the server: both accounts (their open connections are killed),
// then the schema and its data. Dropping what is already gone is not an error.
//
// Returns an error wrapping domain.ErrUnavailable when the server does not answer.
func (s *Sandbox) Drop(ctx context.Context, id string) error {
	n, err := s.names(id)
	if err != nil {
		return err
	}
	// Accounts first: a session still open could otherwise recreate the schema with its CREATE
	// privilege between DROP DATABASE and DROP USER.
	if _, err := s.db.ExecContext(ctx, "DROP USER IF EXISTS "+quoteAccount(n.rw)+", "+quoteAccount(n.ro)); err != nil {
		return s.Wrap("drop "+id+": accounts", err)
	}
	if err := s.killSessions(ctx, n.rw, n.ro); err != nil {
		return s.Wrap("drop "+id+": kill connections", err)
	}
	if _, err := s.db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+sqlcheck.QuoteIdent(n.schema)); err != nil {
		return s.Wrap("drop "+id+": schema", err)
	}
	s.log.Info("sandbox database dropped", "sandbox", s.name, "database_id", id, "schema", n.schema)
	return nil
}

// killSessions kills every connection of users. A connection whose authentication was in flight
// during the first sweep shows up in the next one; sweeps stop when only connections already being
// killed are left.
func (s *Sandbox) killSessions(ctx context.Context, users ...string) error {
	args := make([]any, len(users))
	for i, u := range users {
		args[i] = u
	}
	killed := map[int64]bool{}
	for sweep := 0; sweep < 3; sweep++ {
		rows, err := s.db.QueryContext(ctx, `SELECT ID FROM information_schema.PROCESSLIST
			WHERE USER IN (`+sqlparams.List(len(users))+`) AND ID <> CONNECTION_ID()`, args...)
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			if !killed[id] {
				ids = append(ids, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		for _, id := range ids {
			// 1094: unknown thread, it ended meanwhile.
			if _, err := s.db.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10)); err != nil && Errno(err) != 1094 {
				return err
			}
			killed[id] = true
		}
	}
	return nil
}

// redact replaces a syntax error, whose message quotes the statement and so could quote a
// password, by one that does not.
func redact(err error) error {
	if Errno(err) == 1064 {
		return errors.New("syntax error (the statement holds a password and is not shown)")
	}
	return err
}
