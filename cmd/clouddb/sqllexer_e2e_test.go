package main

import (
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// The red team's second round on the SQL boundary (issue 10, items 6, 11, 13, 14), over the API of
// a started server whose sandbox is the management server: "--" followed by DEL is a comment to
// MariaDB, where the checker used to see the start of a string, so what followed on the next line
// ran unchecked (server variables, DATA DIRECTORY, GET_LOCK); backquoted built-in names escaped
// the function denylist.
func TestE2ESQLLexerAttacks(t *testing.T) {
	env, prefix := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Lexer Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "lexed"}).str("id")
	schema := sandbox.SchemaName(prefix, id)
	admin := openSandboxAdmin(t)
	defer admin.Close()
	refused := func(sql, reason string) {
		t.Helper()
		r := query(owner.c, id, sql, nil).expect(t, 403, "statement_not_allowed")
		if got := r.str("error.details.reason"); got != reason {
			t.Errorf("%q: refused as %s (%s), want %s", sql, got, r.str("error.message"), reason)
		}
	}
	const lockName = "clouddb.rebuild.users"

	refused("SELECT 1 --\x7f '\n, (SELECT GROUP_CONCAT(VARIABLE_NAME, '=', VARIABLE_VALUE) FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME LIKE '%DIR%') LIMIT ROWS EXAMINED 100000000\n-- '", "other_schema")
	refused("CREATE TABLE dd11 (a INT) --\x7f '\nDATA DIRECTORY \"/tmp\"\n-- '", "file_access")
	refused("SELECT 1 --\x7f '\n, GET_LOCK('"+lockName+"', 0) LIMIT ROWS EXAMINED 100000000\n-- '", "server_function")
	// MariaDB resolves a backquoted built-in name as the built-in.
	refused("SELECT `GET_LOCK`('"+lockName+"', 0)", "server_function")
	refused("SHOW TABLES WHERE 0 OR `GET_LOCK`('"+lockName+"', 0)", "server_function")
	refused("SELECT `IS_USED_LOCK`('"+lockName+"')", "server_function")
	refused("SELECT @@`datadir`", "server_information")

	var tables int
	if err := admin.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'dd11'", schema).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("table dd11 exists (%d, %v)", tables, err)
	}
	if _, err := os.Stat(filepath.Join("/tmp", schema)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/tmp/%s: %v, want no such directory", schema, err)
	}
	var holder sql.NullInt64
	if err := admin.QueryRow("SELECT IS_USED_LOCK(?)", lockName).Scan(&holder); err != nil || holder.Valid {
		t.Errorf("IS_USED_LOCK(%s) = %v, %v: a tenant holds the lock", lockName, holder, err)
	}
	// The comment itself stays a comment.
	query(owner.c, id, "SELECT 1 --\x7f trailing", nil).expect(t, 200, "")
}
