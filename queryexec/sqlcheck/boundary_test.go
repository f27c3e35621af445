package sqlcheck

import (
	"errors"
	"testing"
)

// The attacks of the SQL boundary (docs/SECURITY.md), each with the reason it is refused, and
// their harmless neighbours, which must stay allowed ("").
func TestClassifyBoundary(t *testing.T) {
	tests := []struct{ sql, reason string }{
		// User-level locks and other server-wide functions, wherever they hide.
		{"SELECT GET_LOCK('clouddb.rebuild.users', 0)", "server_function"},
		{"select get_lock ('x', 0)", "server_function"},
		{"SELECT /* c */ GET_LOCK/**/('x', 0)", "server_function"},
		{"DO RELEASE_LOCK('x')", "server_function"},
		{"SELECT RELEASE_ALL_LOCKS()", "server_function"},
		{"SELECT IS_USED_LOCK('x'), IS_FREE_LOCK('y')", "server_function"},
		{"SELECT * FROM t WHERE a IN (SELECT IS_FREE_LOCK(b) FROM u)", "server_function"},
		{"WITH x AS (SELECT GET_LOCK('x', 0) AS l) SELECT * FROM x", "server_function"},
		{"INSERT INTO t SELECT GET_LOCK('x', 0)", "server_function"},
		{"UPDATE t SET a = GET_LOCK('x', 0) WHERE id = 1", "server_function"},
		{"CREATE VIEW v AS SELECT GET_LOCK('x', 0) AS l", "server_function"},
		{"CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = GET_LOCK('x', 0)", "server_function"},
		{"CREATE PROCEDURE p() BEGIN DO GET_LOCK('x', 0); END", "server_function"},
		{"CREATE FUNCTION f() RETURNS INT RETURN IS_USED_LOCK('x')", "server_function"},
		{"CREATE EVENT e ON SCHEDULE EVERY 1 SECOND DO SELECT GET_LOCK('x', 0)", "server_function"},
		{"CREATE TABLE t (a INT DEFAULT (IS_FREE_LOCK('x')))", "server_function"},
		{"SELECT MASTER_POS_WAIT('log', 4)", "server_function"},
		{"SELECT MASTER_GTID_WAIT('0-1-1', 60)", "server_function"},
		{"SELECT BINLOG_GTID_POS('log', 4)", "server_function"},
		{"SELECT sys_exec('id')", "server_function"},
		{"SELECT get_lock FROM t", ""}, // a column of that name
		// Backquoted built-in names: MariaDB resolves them as the built-in (redteam).
		{"SELECT `GET_LOCK`('clouddb.rebuild.users', 0)", "server_function"},
		{"SELECT `get_lock`('x') FROM t", "server_function"},
		{"SELECT `IS_USED_LOCK`('x')", "server_function"},
		{"SELECT `MASTER_GTID_WAIT`('0-1-1', 1)", "server_function"},
		{"SELECT `Release_All_Locks` ()", "server_function"},
		{"SELECT `get_lock` /* c */ ('x', 0)", "server_function"},
		{"SHOW TABLES WHERE 0 OR `GET_LOCK`('a', 0)", "server_function"},
		{"SELECT `mysql`.`get_lock`('a', 0)", "server_function"},
		{"SELECT `LOAD_FILE`('/etc/hostname')", "file_access"},
		{"SELECT `load_file`('/etc/hostname') LIMIT ROWS EXAMINED 10", "file_access"},
		{"SELECT `get_lock` FROM t", ""}, // a column of that name
		{"SELECT @@`global`.`datadir`", "server_information"},
		{"SELECT @@global.`datadir`", "unparsable"},
		{"SELECT @@`datadir`", "server_information"},
		{"SELECT @@session.`hostname`", "unparsable"},
		{"SELECT @@`sql_mode`", ""},
		{"SELECT * FROM `information_schema`.`GLOBAL_VARIABLES`", "other_schema"},
		{"SELECT * FROM Information_Schema.global_status", "other_schema"},
		{"SELECT * FROM `INFORMATION_SCHEMA` . PROCESSLIST", "other_schema"},
		{"SHOW `VARIABLES`", "server_information"},
		{"SELECT SLEEP(1)", ""},
		{"SELECT BENCHMARK(10, MD5('x'))", ""},
		// Sequences of other schemas.
		{"SELECT NEXTVAL(other.s)", "other_schema"},
		{"SELECT NEXT VALUE FOR other.s", "other_schema"},
		{"SELECT SETVAL(other.s, 1)", "other_schema"},
		{"SELECT NEXTVAL(s)", ""},
		// Files outside the data directory, other engines, other servers.
		{"CREATE TABLE t (a INT) DATA DIRECTORY = '/tmp'", "file_access"},
		{"CREATE TABLE t (a INT) ENGINE=MyISAM INDEX DIRECTORY '/tmp' DATA DIRECTORY '/tmp'", "file_access"},
		{"CREATE TABLE t (a INT) PARTITION BY HASH(a) (PARTITION p0 DATA DIRECTORY = '/tmp/x')", "file_access"},
		{"ALTER TABLE t ADD PARTITION (PARTITION p1 INDEX DIRECTORY = '/tmp')", "file_access"},
		{"CREATE PROCEDURE p() BEGIN CREATE TABLE x (a INT) DATA DIRECTORY '/tmp'; END", "file_access"},
		{"SELECT data directory FROM t", ""},
		{"CREATE TABLE t (a INT) ENGINE=CONNECT TABLE_TYPE=CSV FILE_NAME='/etc/passwd'", "storage_engine"},
		{"CREATE TABLE t (a INT) ENGINE FEDERATED", "storage_engine"},
		{"ALTER TABLE t ENGINE = 'SPIDER'", "storage_engine"},
		{"CREATE TABLE t (a INT) CONNECTION='mysql://root@127.0.0.1/mysql/user'", "storage_engine"},
		{"CREATE TABLE t (a INT) ENGINE=InnoDB", ""},
		{"CREATE TABLE t (engine VARCHAR(10), connection INT) ENGINE = Aria", ""},
		{"ALTER TABLE t ADD COLUMN engine INT", ""},
		// sql_mode values that change how statements are read, and the platform's limits.
		{"SET sql_mode = 'MSSQL'", "session_settings"},
		{"SET sql_mode = 'ORACLE'", "session_settings"},
		{"SET SESSION sql_mode = 'STRICT_ALL_TABLES,POSTGRESQL'", "session_settings"},
		{"SET sql_mode = 'DB2'", "session_settings"},
		{"SET sql_mode = 'MAXDB'", "session_settings"},
		{"SET sql_mode = ORACLE", "session_settings"},
		{"SET @@sql_mode := 'ANSI'", "session_settings"},
		{"SET STATEMENT sql_mode='MSSQL' FOR SELECT 1", "session_settings"},
		{"SET sql_mode = 'NO_SUCH_MODE'", "session_settings"},
		{"CREATE PROCEDURE p() BEGIN SET sql_mode = 'ANSI_QUOTES'; SELECT 1; END", "session_settings"},
		{"CREATE PROCEDURE p() SET SESSION max_statement_time = 0", "session_settings"},
		{"SET sql_mode = 'TRADITIONAL,ONLY_FULL_GROUP_BY'", ""},
		{"SET sql_mode = ''", ""},
		{"SET sql_mode = DEFAULT", ""},
		{"SET STATEMENT max_statement_time=0 FOR SELECT SLEEP(60)", "session_settings"},
		{"SET STATEMENT sql_select_limit=1000000 FOR SELECT * FROM t", "session_settings"},
		{"SET STATEMENT max_execution_time=0 FOR SELECT 1", "session_settings"},
		{"SET max_statement_time = 0", "session_settings"},
		{"SET @@session.max_statement_time = 0", "session_settings"},
		{"SET LOCAL sql_select_limit = DEFAULT", "session_settings"},
		{"SET tmp_table_size = 1073741824", "session_settings"},
		{"SET `max_statement_time` = 0", "session_settings"},
		{"SET STATEMENT foreign_key_checks=0 FOR INSERT INTO t VALUES (1)", ""},
		{"SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE", ""},
		{"SET time_zone = '+02:00', @x = @@time_zone", ""},
		{"CREATE PROCEDURE p() BEGIN DECLARE n INT; SET n = 1; SELECT n; END", ""},
		{"CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1", ""},
		{"CREATE PROCEDURE p() BEGIN UPDATE t SET a = 1, b = CONCAT(b, 'x') WHERE id = 1; INSERT INTO t SET a = 2; END", ""},
		{"CREATE FUNCTION f(x SET('a', 'b') CHARACTER SET utf8mb4) RETURNS INT DETERMINISTIC RETURN 1", ""},
		// What describes the server, other sessions or password hashes.
		{"SHOW GRANTS", "server_information"},
		{"SHOW CREATE USER CURRENT_USER", "server_information"},
		{"SHOW SESSION VARIABLES", "server_information"},
		{"SHOW STATUS", "server_information"},
		{"SHOW OPEN TABLES", "server_information"},
		{"SHOW USER_STATISTICS", "server_information"},
		{"SHOW EXPLAIN FOR 1", "server_information"},
		{"SHOW CREATE DATABASE otherdb", "other_schema"},
		{"SHOW CREATE DATABASE tenant_42", ""},
		{"SHOW TABLE STATUS", ""},
		{"SHOW CREATE VIEW v", ""},
		{"SHOW WARNINGS", ""},
		{"SHOW COUNT(*) WARNINGS", ""},
		{"SHOW PROCEDURE STATUS", ""},
		{"SELECT @@hostname", "server_information"},
		{"SELECT @@datadir", "server_information"},
		{"SELECT @@session.basedir", "server_information"},
		{"SELECT @@global.sql_mode", "server_information"},
		{"SELECT @@`hostname`", "server_information"},
		{"SELECT @@ hostname", "unparsable"},
		{"SELECT * FROM t WHERE @@datadir LIKE '/var%'", "server_information"},
		{"SET @x = @@hostname", "server_information"},
		{"CREATE VIEW v AS SELECT @@server_id AS s", "server_information"},
		{"SELECT * FROM information_schema.PROCESSLIST", "other_schema"},
		{"SELECT * FROM INFORMATION_SCHEMA.SESSION_STATUS", "other_schema"},
		{"SELECT * FROM information_schema.USER_STATISTICS", "other_schema"},
		{"SELECT * FROM performance_schema.threads", "other_schema"},
		{"SELECT * FROM mysql.global_priv", "other_schema"},
		{"SELECT @@version, @@session.sql_mode, @@autocommit", ""},
		// Comments MariaDB reads where the checker would see a string (redteam, "--" + DEL): the
		// lexer agrees with the server byte for byte (TestLexAgreesWithMariaDB) and refuses what
		// it cannot be sure of.
		{"SELECT 1 --\x7f '\n, (SELECT GROUP_CONCAT(VARIABLE_NAME) FROM information_schema.GLOBAL_VARIABLES) LIMIT ROWS EXAMINED 100000000\n-- '", "other_schema"},
		{"CREATE TABLE dd11 (a INT) --\x7f '\nDATA DIRECTORY \"/tmp\"\n-- '", "file_access"},
		{"SELECT 1 --\x7f '\n, GET_LOCK('clouddb.rebuild.users', 0) LIMIT ROWS EXAMINED 1\n-- '", "server_function"},
		{"SELECT 1 --\x7f '\n; SELECT @@hostname\n-- '", "multiple_statements"},
		{"SET STATEMENT time_zone='+00:00' --\x7f '\n, max_statement_time=0\n-- '\nFOR SELECT SLEEP(35)", "session_settings"},
		{"SELECT 1 --\x01 '\n, @@datadir\n-- '", "server_information"},
		{"SELECT 1 --\u00a0'\n, @@datadir -- '", "unparsable"},
		{"SELECT 1 \x7f", "unparsable"},
		{"SELECT 1 --\x7f", ""},
		{"SELECT 1 --x", ""},
		{"SELECT 1--1", ""},
		{"SET NAMES latin1", "session_settings"},
		{"SET character_set_client = latin1", "session_settings"},
		{"SET NAMES utf8mb4", ""},
	}
	for _, tt := range tests {
		_, err := Classify(tt.sql, "tenant_42")
		var d *Denied
		switch {
		case tt.reason == "" && err != nil:
			t.Errorf("Classify(%q) = %v, want allowed", tt.sql, err)
		case tt.reason == "":
		case !errors.As(err, &d):
			t.Errorf("Classify(%q) = %v, want denied %s", tt.sql, err, tt.reason)
		case d.Reason != tt.reason:
			t.Errorf("Classify(%q): denied %s (%s), want %s", tt.sql, d.Reason, d.Message, tt.reason)
		}
	}
}
