package main

import (
	"bytes"
	"database/sql"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// The SQL boundary (issue 10, items 6, 11, 12, 13, 14), attacked over the API of a started server
// whose sandbox is the management server (the default): what a tenant's statement may not reach.
func TestE2ESQLBoundary(t *testing.T) {
	env, prefix := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Boundary Corp")
	viewer := invite(env, owner, "127.0.0.2", "viewer")
	created := createDatabase(t, owner.c, map[string]any{"name": "fenced"})
	id := created.str("id")
	admin := openSandboxAdmin(t)
	defer admin.Close()
	refused := func(c *e2eClient, sql, reason string) *e2eResponse {
		t.Helper()
		r := query(c, id, sql, nil).expect(t, 403, "statement_not_allowed")
		if got := r.str("error.details.reason"); got != reason {
			t.Errorf("%s: refused as %s (%s), want %s", sql, got, r.str("error.message"), reason)
		}
		return r
	}

	// Item 6: a viewer took the platform's rebuild lock; tenants took each other's lock names.
	lockName := "clouddb.rebuild.users"
	refused(viewer.c, "SELECT GET_LOCK('"+lockName+"', 0)", "server_function")
	refused(owner.c, "SELECT * FROM (SELECT IS_USED_LOCK('x') AS l) AS s", "server_function")
	refused(owner.c, "CREATE VIEW v AS SELECT RELEASE_ALL_LOCKS() AS n", "server_function")
	refused(owner.c, "CREATE TABLE t (a INT, b INT AS (IS_FREE_LOCK('x')))", "server_function")
	var holder sql.NullInt64
	if err := admin.QueryRow("SELECT IS_USED_LOCK(?)", lockName).Scan(&holder); err != nil || holder.Valid {
		t.Errorf("IS_USED_LOCK(%s) = %v, %v: a tenant holds the lock", lockName, holder, err)
	}
	// A function made behind the checker's back still cannot leave a lock on a pooled session.
	tenantLock := "boundary-" + uuid.NewString()
	schema := sandbox.SchemaName(prefix, id)
	if _, err := admin.Exec("CREATE FUNCTION " + backquote(schema) + ".take() RETURNS INT SQL SECURITY INVOKER RETURN GET_LOCK('" + tenantLock + "', 0)"); err != nil {
		t.Fatal(err)
	}
	query(owner.c, id, "SELECT take()", nil).expect(t, 200, "")
	if err := admin.QueryRow("SELECT IS_USED_LOCK(?)", tenantLock).Scan(&holder); err != nil || holder.Valid {
		t.Errorf("after the request, connection %v still holds its lock (%v)", holder, err)
	}

	// Item 11: table files outside the data directory.
	refused(owner.c, "CREATE TABLE f (a INT) ENGINE=MyISAM DATA DIRECTORY='/tmp' INDEX DIRECTORY='/tmp'", "file_access")
	refused(owner.c, "CREATE TABLE p (a INT) PARTITION BY HASH (a) (PARTITION p0 DATA DIRECTORY = '/tmp')", "file_access")
	refused(owner.c, "CREATE TABLE c (a INT) ENGINE=CONNECT TABLE_TYPE=DOS FILE_NAME='/etc/passwd'", "storage_engine")

	// Item 13: modes that change how statements are read, and the platform's timeout.
	for _, mode := range []string{"MSSQL", "ORACLE", "ANSI", "DB2", "POSTGRESQL", "MAXDB", "STRICT_ALL_TABLES,ANSI_QUOTES"} {
		refused(owner.c, "SET sql_mode = '"+mode+"'", "session_settings")
	}
	refused(owner.c, "SET STATEMENT max_statement_time=0 FOR SELECT SLEEP(2)", "session_settings")
	refused(owner.c, "SET SESSION max_statement_time = 0", "session_settings")
	refused(owner.c, "SET STATEMENT sql_select_limit=100000 FOR SELECT 1", "session_settings")
	query(owner.c, id, "SET sql_mode = 'TRADITIONAL'", nil).expect(t, 200, "")

	// Item 14: what shows the server, other sessions or password hashes.
	for _, sql := range []string{"SHOW GRANTS", "SHOW GRANTS FOR CURRENT_USER", "SHOW CREATE USER CURRENT_USER", "SHOW VARIABLES",
		"SHOW GLOBAL STATUS", "SHOW SESSION STATUS", "SHOW PROCESSLIST", "SHOW FULL PROCESSLIST", "SELECT @@hostname",
		"SELECT @@datadir", "SELECT @@global.version", "SELECT 1 FROM DUAL WHERE @@datadir LIKE '/var%'"} {
		r := refused(viewer.c, sql, "server_information")
		if bytes.Contains(r.body, []byte("PASSWORD")) || bytes.Contains(r.body, []byte("/var/lib")) {
			t.Errorf("%s: the refusal shows the server: %s", sql, r.body)
		}
	}
	for _, sql := range []string{"SELECT * FROM information_schema.PROCESSLIST", "SELECT * FROM information_schema.SESSION_STATUS",
		"SELECT * FROM information_schema.USER_STATISTICS", "SELECT * FROM performance_schema.threads", "SELECT * FROM mysql.user"} {
		refused(viewer.c, sql, "other_schema")
	}
	r := query(viewer.c, id, "SELECT @@version, @@session.sql_mode, DATABASE()", nil).expect(t, 200, "")
	if !strings.Contains(string(r.body), schema) {
		t.Errorf("the session's own settings = %s", r.body)
	}

	// MySQL's own wall, over a direct connection: the account sees its own sessions only, and
	// neither mysql.* nor performance_schema (server variables and its own grants it does see:
	// docs/SECURITY.md).
	direct := connect(t, created)
	rw, _ := sandbox.AccountNames(prefix, id)
	if others := queryInt(t, direct, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER <> ?", rw); others != 0 {
		t.Errorf("the database's account sees %d sessions of other accounts", others)
	}
	for _, sql := range []string{"SELECT COUNT(*) FROM mysql.user", "SELECT COUNT(*) FROM performance_schema.threads"} {
		if _, err := direct.Exec(sql); mysqlCode(err) != 1142 {
			t.Errorf("%s over a direct connection: %v, want error 1142", sql, err)
		}
	}
}

// Item 12: allow_procedures=false held for /query but not for the schema template.
func TestE2ESchemaTemplateUsesTheQueryChecker(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Template Corp")
	for _, ddl := range []string{
		"CREATE TABLE a (id INT); CREATE DEFINER=CURRENT_USER PROCEDURE p() SELECT 1",
		"CREATE /*x*/ FUNCTION f() RETURNS INT RETURN 1",
		"CREATE TABLE a (id INT); CREATE DEFINER = CURRENT_USER TRIGGER tr BEFORE INSERT ON a FOR EACH ROW SET NEW.id = 1",
		"CREATE TABLE a (id INT) DATA DIRECTORY = '/tmp'",
	} {
		r := owner.c.do("POST", "/databases", map[string]any{"name": "tpl", "template": "schema", "schema_sql": ddl}).expect(t, 400, "validation_failed")
		if msg := r.str("error.details.fields.schema_sql"); msg == "" {
			t.Errorf("schema_sql %q refused without saying why: %s", ddl, r.body)
		}
	}
	r := owner.c.do("GET", "/databases", nil).expect(t, 200, "")
	if n := len(r.items("items")); n != 0 {
		t.Errorf("%d databases exist after refused templates", n)
	}
}
