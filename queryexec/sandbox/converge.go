package sandbox

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// Grants are the read-write account's privileges on its schema, as the log decides them: the full
// list, narrowed while the tenant is over its storage quota (WritesRestricted), without the
// privileges that define code running later (routines, triggers) while the tenant does not allow
// procedures (NoRoutines). The zero value is the full list.
type Grants struct {
	WritesRestricted bool
	NoRoutines       bool
}

// routinePrivileges define code that runs later as its definer: what allow_procedures=false takes
// away from the read-write account. EVENT is never granted.
var routinePrivileges = []string{"CREATE ROUTINE", "ALTER ROUTINE", "TRIGGER"}

// privileges is the sorted list of the read-write account's privileges under g.
func (g Grants) privileges() []string {
	list := splitPrivileges(rwPrivileges)
	if g.WritesRestricted {
		list = splitPrivileges(restrictedPrivileges)
	}
	if g.NoRoutines {
		list = slices.DeleteFunc(list, func(p string) bool { return slices.Contains(routinePrivileges, p) })
	}
	slices.Sort(list)
	return list
}

func splitPrivileges(list string) []string {
	out := strings.Split(list, ", ")
	slices.Sort(out)
	return out
}

// Intent is what the event log says one database is on its server.
type Intent struct {
	// Exists: the schema and both accounts exist. When false (a failed or purged database) none of
	// them may: whatever is left is dropped.
	Exists             bool
	Locked             bool // stopped or deleted: no login works and no connection stays open
	Grants             Grants
	MaxUserConnections int
	// RWPassword and ROPassword are the vault's; an account whose password differs is given it.
	// Needed when Exists.
	RWPassword, ROPassword string
	Charset, Collation     string // of a schema that has to be created again
}

// Account is one tenant account as the server has it.
type Account struct {
	Locked             bool
	MaxUserConnections int
	// Password is "match", "differs" or "unknown" (a plugin whose hash cannot be compared).
	Password string
	// Privileges are the account's grants on its own schema, sorted; Stray counts its other
	// grants (other schemas, global privileges), which it must never have.
	Privileges []string
	Stray      []string
}

// State is what the server has of one database; an account that does not exist is nil.
type State struct {
	Schema bool
	RW, RO *Account
}

// Repair kinds, as Converge reports them and the repairs metric counts them.
const (
	RepairLeftoverDropped    = "leftover_dropped"
	RepairSchemaCreated      = "schema_created"
	RepairAccountsCreated    = "accounts_created"
	RepairLock               = "lock"
	RepairUnlock             = "unlock"
	RepairMaxUserConnections = "max_user_connections"
	RepairGrants             = "grants"
	RepairPassword           = "password"
)

// Inspect reads database id's state from the server: its schema (information_schema.SCHEMATA),
// its accounts' lock, connection limit and password (mysql.global_priv on MariaDB, mysql.user on
// MySQL) and their grants (information_schema.SCHEMA_PRIVILEGES, USER_PRIVILEGES). Passwords are
// compared with want (the vault's, "" to skip) by their mysql_native_password hash.
func (s *Sandbox) Inspect(ctx context.Context, id string, rwPassword, roPassword string) (State, error) {
	n, err := s.names(id)
	if err != nil {
		return State{}, err
	}
	op := "inspect " + id
	var st State
	var schemas int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`, n.schema).Scan(&schemas); err != nil {
		return State{}, s.Wrap(op, err)
	}
	st.Schema = schemas == 1
	query := `SELECT User, COALESCE(JSON_VALUE(Priv, '$.account_locked') IN ('1', 'true'), FALSE), CAST(JSON_VALUE(Priv, '$.max_user_connections') AS SIGNED),
			JSON_VALUE(Priv, '$.plugin'), JSON_VALUE(Priv, '$.authentication_string')
		FROM mysql.global_priv WHERE Host = '%' AND User IN (?, ?)`
	if s.flavor == FlavorMySQL {
		query = `SELECT User, account_locked = 'Y', max_user_connections, plugin, authentication_string
			FROM mysql.user WHERE Host = '%' AND User IN (?, ?)`
	}
	rows, err := s.db.QueryContext(ctx, query, n.rw, n.ro)
	if err != nil {
		return State{}, s.Wrap(op+": accounts", err)
	}
	for rows.Next() {
		var user string
		var locked sql.NullBool
		var limit sql.NullInt64
		var plugin, hash sql.NullString
		if err := rows.Scan(&user, &locked, &limit, &plugin, &hash); err != nil {
			rows.Close()
			return State{}, s.Wrap(op+": accounts", err)
		}
		want := rwPassword
		a := &Account{Locked: locked.Bool, MaxUserConnections: int(limit.Int64)}
		if user == n.rw {
			st.RW = a
		} else {
			st.RO, want = a, roPassword
		}
		a.Password = comparePassword(plugin.String, hash.String, want)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return State{}, s.Wrap(op+": accounts", err)
	}
	pattern := escapePattern(n.schema)
	for user, a := range map[string]*Account{n.rw: st.RW, n.ro: st.RO} {
		if a == nil {
			continue
		}
		grantee := "'" + user + "'@'%'"
		rows, err := s.db.QueryContext(ctx, `SELECT TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ?
			UNION ALL SELECT '*', PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ? AND PRIVILEGE_TYPE <> 'USAGE'`, grantee, grantee)
		if err != nil {
			return State{}, s.Wrap(op+": grants", err)
		}
		for rows.Next() {
			var schema, privilege string
			if err := rows.Scan(&schema, &privilege); err != nil {
				rows.Close()
				return State{}, s.Wrap(op+": grants", err)
			}
			if schema == pattern {
				a.Privileges = append(a.Privileges, privilege)
			} else {
				a.Stray = append(a.Stray, schema)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return State{}, s.Wrap(op+": grants", err)
		}
		slices.Sort(a.Privileges)
	}
	return st, nil
}

// comparePassword tells whether an account's stored hash is password's: "match", "differs", or
// "unknown" when there is nothing to compare (no password wanted, a salted plugin such as MySQL 8's
// caching_sha2_password).
func comparePassword(plugin, hash, password string) string {
	if password == "" || (plugin != "mysql_native_password" && plugin != "") {
		return "unknown"
	}
	if hash == nativePasswordHash(password) {
		return "match"
	}
	return "differs"
}

// nativePasswordHash is mysql_native_password's stored form: '*' and SHA1(SHA1(password)) in
// upper-case hex.
func nativePasswordHash(password string) string {
	first := sha1.Sum([]byte(password))
	second := sha1.Sum(first[:])
	return "*" + strings.ToUpper(hex.EncodeToString(second[:]))
}

// Converge makes database id on the server what want says, repairing only what differs from what
// Inspect reads, and returns the kinds of the repairs it made (none when the server agreed). Locks
// come first and unlocks last, so an account never works with grants or a password the log no
// longer gives it; a change of lock, grants or password ends the account's connections (MySQL keeps
// a connection's privileges on its default schema until it reconnects). A schema that should exist
// but does not is created empty (and logged: its data is gone); missing accounts are created
// locked with the vault's passwords.
//
// Returns an error wrapping domain.ErrUnavailable when the server does not answer.
func (s *Sandbox) Converge(ctx context.Context, id string, want Intent) ([]string, error) {
	n, err := s.names(id)
	if err != nil {
		return nil, err
	}
	if want.Exists && (want.RWPassword == "" || want.ROPassword == "") {
		return nil, fmt.Errorf("queryexec: sandbox %s: converge %s: the accounts' passwords are needed", s.name, id)
	}
	var rwWant, roWant string
	if want.Exists {
		rwWant, roWant = want.RWPassword, want.ROPassword
	}
	st, err := s.Inspect(ctx, id, rwWant, roWant)
	if err != nil {
		return nil, err
	}
	var repairs []string
	if !want.Exists {
		if st.Schema || st.RW != nil || st.RO != nil {
			if err := s.Drop(ctx, id); err != nil {
				return nil, err
			}
			repairs = append(repairs, RepairLeftoverDropped)
		}
		return repairs, nil
	}
	op := "converge " + id
	exec := func(what, stmt string) error {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return s.Wrap(op+": "+what, redact(err))
		}
		return nil
	}
	rw, ro := quoteAccount(n.rw), quoteAccount(n.ro)
	limit := " WITH MAX_USER_CONNECTIONS " + strconv.Itoa(want.MaxUserConnections)
	if want.Locked && ((st.RW != nil && !st.RW.Locked) || (st.RO != nil && !st.RO.Locked)) {
		if err := s.lockExisting(ctx, id, st); err != nil {
			return nil, err
		}
		repairs = append(repairs, RepairLock)
	}
	if !st.Schema {
		s.log.Error("sandbox schema missing; created empty", "sandbox", s.name, "database_id", id, "schema", n.schema)
		if !charsetPattern.MatchString(want.Charset) || !charsetPattern.MatchString(want.Collation) {
			return nil, fmt.Errorf("queryexec: sandbox %s: %s: schema missing and no charset to create it with", s.name, op)
		}
		if err := exec("create schema", "CREATE DATABASE IF NOT EXISTS "+sqlcheck.QuoteIdent(n.schema)+
			" CHARACTER SET "+want.Charset+" COLLATE "+want.Collation); err != nil {
			return nil, err
		}
		repairs = append(repairs, RepairSchemaCreated)
	}
	if st.RW == nil || st.RO == nil {
		if err := exec("create accounts", "CREATE USER IF NOT EXISTS "+
			rw+" IDENTIFIED BY "+quoteString(want.RWPassword, true)+", "+
			ro+" IDENTIFIED BY "+quoteString(want.ROPassword, true)+limit+" ACCOUNT LOCK"); err != nil {
			return nil, err
		}
		if st.RW == nil {
			st.RW = &Account{Locked: true, MaxUserConnections: want.MaxUserConnections, Password: "match"}
		}
		if st.RO == nil {
			st.RO = &Account{Locked: true, MaxUserConnections: want.MaxUserConnections, Password: "match"}
		}
		repairs = append(repairs, RepairAccountsCreated)
	}
	type account struct {
		user, quoted, password string
		have                   *Account
		privileges             []string
	}
	for _, a := range []account{
		{n.rw, rw, want.RWPassword, st.RW, want.Grants.privileges()},
		{n.ro, ro, want.ROPassword, st.RO, splitPrivileges(roPrivileges)},
	} {
		changed := false
		if a.have.MaxUserConnections != want.MaxUserConnections {
			if err := exec("connection limit", "ALTER USER "+a.quoted+limit); err != nil {
				return nil, err
			}
			repairs = append(repairs, RepairMaxUserConnections)
		}
		if a.have.Password == "differs" {
			if err := exec("password", "ALTER USER "+a.quoted+" IDENTIFIED BY "+quoteString(a.password, true)); err != nil {
				return nil, err
			}
			repairs, changed = append(repairs, RepairPassword), true
		}
		if len(a.have.Stray) > 0 || !slices.Equal(a.have.Privileges, a.privileges) {
			if err := s.setGrants(ctx, op, a.quoted, n.schema, a.have, a.privileges); err != nil {
				return nil, err
			}
			repairs, changed = append(repairs, RepairGrants), true
		}
		if changed {
			if err := s.killSessions(ctx, a.user); err != nil {
				return nil, s.Wrap(op+": kill connections", err)
			}
		}
	}
	if !want.Locked && (st.RW.Locked || st.RO.Locked) {
		if err := s.Unlock(ctx, id); err != nil {
			return nil, err
		}
		repairs = append(repairs, RepairUnlock)
	}
	if len(repairs) > 0 {
		s.log.Info("sandbox database converged", "sandbox", s.name, "database_id", id, "repairs", repairs)
	}
	return repairs, nil
}

// lockExisting locks the accounts of id that exist (Lock needs both).
func (s *Sandbox) lockExisting(ctx context.Context, id string, st State) error {
	if st.RW != nil && st.RO != nil {
		return s.Lock(ctx, id)
	}
	n, _ := s.names(id)
	users := []string{n.rw}
	if st.RW == nil {
		users = []string{n.ro}
	}
	if err := s.alterAccounts(ctx, id, "lock", "ACCOUNT LOCK", users...); err != nil {
		return err
	}
	if err := s.killSessions(ctx, users...); err != nil {
		return s.Wrap("lock "+id+": kill connections", err)
	}
	return nil
}

// setGrants gives an account exactly privileges on its schema: what it lacks is granted first,
// then what it has beyond the list (and anything anywhere else) is revoked, so it never holds
// less than both lists share.
func (s *Sandbox) setGrants(ctx context.Context, op, account, schema string, have *Account, privileges []string) error {
	on := " ON " + grantPattern(schema) + ".* "
	var stmts []string
	if missing := without(privileges, have.Privileges); len(missing) > 0 {
		stmts = append(stmts, "GRANT "+strings.Join(missing, ", ")+on+"TO "+account)
	}
	if extra := without(have.Privileges, privileges); len(extra) > 0 {
		stmts = append(stmts, "REVOKE "+strings.Join(extra, ", ")+on+"FROM "+account)
	}
	for _, stray := range slices.Compact(slices.Sorted(slices.Values(have.Stray))) {
		target := "*.*"
		if stray != "*" { // the schema pattern as the server stores it: quoted, not escaped again
			target = sqlcheck.QuoteIdent(stray) + ".*"
		}
		stmts = append(stmts, "REVOKE ALL PRIVILEGES ON "+target+" FROM "+account)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.Wrap(op+": grants", err)
	}
	defer conn.Close()
	// GRANT creates a missing account (without a password!) unless NO_AUTO_CREATE_USER is set, on
	// MariaDB and MySQL 5.7; MySQL 8 never does and does not know the mode.
	if s.flavor == FlavorMariaDB || strings.HasPrefix(s.version, "5.") {
		if _, err := conn.ExecContext(ctx, `SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'NO_AUTO_CREATE_USER')`); err != nil {
			return s.Wrap(op+": grants", err)
		}
	}
	for _, stmt := range stmts {
		if _, err := conn.ExecContext(ctx, stmt); err != nil && Errno(err) != 1141 { // 1141: no such grant
			return s.Wrap(op+": grants", err)
		}
	}
	return nil
}

// without is the elements of list that are not in drop.
func without(list, drop []string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(p string) bool { return slices.Contains(drop, p) })
}
