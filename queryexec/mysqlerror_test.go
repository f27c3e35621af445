package queryexec

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox/sandboxtest"
)

func TestPositionAt(t *testing.T) {
	tests := []struct {
		sql    string
		offset int
		want   Position
	}{
		{"", 0, Position{1, 1, 0}},
		{"SELECT", 0, Position{1, 1, 0}},
		{"SELECT", 3, Position{1, 4, 3}},
		{"SELECT", 6, Position{1, 7, 6}}, // just after the end
		{"a\nb", 1, Position{1, 2, 1}},   // on the line break
		{"a\nb", 2, Position{2, 1, 2}},
		{"a\n\nb", 3, Position{3, 1, 3}},
		{"a\r\nb", 1, Position{1, 2, 1}}, // on the \r
		{"a\r\nb", 2, Position{1, 3, 2}}, // on the \n of CRLF: still line 1
		{"a\r\nb", 3, Position{2, 1, 3}}, // CRLF is one line break
		{"a\r\n\r\nb", 5, Position{3, 1, 5}},
		{"a\rb", 2, Position{2, 1, 2}}, // a lone \r breaks the line too
		{"a\r", 2, Position{2, 1, 2}},
		// Column and Offset count characters: é is 2 bytes, 日 3, 😀 4.
		{"é日😀x", 9, Position{1, 4, 3}},
		{"é日😀x", 10, Position{1, 5, 4}},
		{"SELECT 'é'\r\nFROM 😀t", len("SELECT 'é'\r\nFROM 😀"), Position{2, 7, 18}},
		// An offset inside a character is moved back to its first byte.
		{"é日😀x", 3, Position{1, 2, 1}},
		{"é日😀x", 4, Position{1, 2, 1}},
		{"é日😀x", 8, Position{1, 3, 2}},
		// Out of range offsets are clamped.
		{"ab", -3, Position{1, 1, 0}},
		{"ab\ncd", 99, Position{2, 3, 5}},
	}
	for _, tt := range tests {
		if got := PositionAt(tt.sql, tt.offset); got != tt.want {
			t.Errorf("PositionAt(%q, %d) = %+v, want %+v", tt.sql, tt.offset, got, tt.want)
		}
	}
}

// TestPositionSyntaxSynthetic locates near-texts of messages written by hand, including MySQL 8's
// (cut at 80 characters without "...").
func TestPositionSyntaxSynthetic(t *testing.T) {
	const pre = "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near '"
	long := "SELECT * FROM t WHERE a = ) " + strings.Repeat("and b = 1 ", 20)
	tests := []struct {
		sql, near string
		line      int
		want      int // byte offset, -1 for no position
	}{
		{"SELECT * FORM t", "FORM t", 1, 9},
		{"SELECT * FROM", "", 1, 13},
		{"SELECT * FROM  -- the table\n", "", 1, 13},
		{"SELECT * FROM t;;", "", 1, 15},
		{long, long[26:106], 1, 26},                                        // MySQL 8: 80 characters
		{long, long[26:103] + "...", 1, 26},                                // MariaDB: 77 bytes and "..."
		{"SELECT 1 ) 😀x", ") ?x", 1, 9},                                    // utf8mb3 shows the emoji as ?
		{"SELECT 1 ) '?'", ") '?'", 1, 9},                                  // a real ?
		{"SELECT 1 ) x", "nothing like it", 1, -1},                         // not found: no position
		{"SELECT 1\n) a\n) a", ") a", 2, len("SELECT 1\n) a\n")},           // untruncated: the tail
		{"SELECT 1 FROM\n) a b", ") a", 2, len("SELECT 1 FROM\n")},         // found as a prefix at line 2
		{"x) a b\nSELECT\n) a b", ") a", 3, len("x) a b\nSELECT\n")},       // the occurrence at line 3
		{"x) a b\nSELECT\n) a b", ") a", 9, len("x) a b\nSELECT\n")},       // beyond the last line: the last occurrence
		{"\n\n  SELECT * FORM t  \n", "FORM t", 1, len("\n\n  SELECT * ")}, // the server trims blanks
	}
	for _, tt := range tests {
		msg := fmt.Sprintf("%s%s' at line %d", pre, tt.near, tt.line)
		err := TranslateError(&mysql.MySQLError{Number: 1064, SQLState: [5]byte{'4', '2', '0', '0', '0'}, Message: msg}, tt.sql, "s", "d")
		var qe *QueryError
		if !errors.As(err, &qe) {
			t.Fatalf("TranslateError: %v", err)
		}
		if tt.want < 0 {
			if qe.Position != nil {
				t.Errorf("%q near %q: position %+v, want none", tt.sql, tt.near, *qe.Position)
			}
			continue
		}
		if want := PositionAt(tt.sql, tt.want); qe.Position == nil || *qe.Position != want {
			t.Errorf("%q near %q at line %d: position %v, want %+v", tt.sql, tt.near, tt.line, qe.Position, want)
		}
	}
}

// mark is the error point in the statements of TestTranslateErrorSyntax; it is removed before
// the statement is sent.
const mark = "«"

// TestTranslateErrorSyntax runs broken statements against the test server and checks that the
// position of the real message points at the character marked in the statement.
func TestTranslateErrorSyntax(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "CREATE TABLE t (a INT, b INT)"); err != nil {
		t.Fatal(err)
	}
	var version string
	if err := conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	chain := strings.Repeat(" AND b = 2", 12) // 120 bytes: longer than the near-text
	emoji := strings.Repeat("😀", 90)          // 90 characters, 360 bytes
	tests := []struct {
		name   string
		sql    string
		want   *Position // checked by hand where given
		prefix bool      // also send behind "SET STATEMENT max_statement_time=... FOR "
		atEnd  bool
	}{
		{name: "typo", sql: "SELECT * «FORM t", want: &Position{1, 10, 9}, prefix: true},
		{name: "line 3", sql: "SELECT a,\n       b\nFROM t WHERE «WHERE a = 1", want: &Position{3, 14, 32}, prefix: true},
		{name: "line 3 CRLF", sql: "SELECT a,\r\n       b\r\nFROM t WHERE «WHERE a = 1", want: &Position{3, 14, 34}, prefix: true},
		{name: "at the end", sql: "SELECT * FROM«", want: &Position{1, 14, 13}, atEnd: true, prefix: true},
		{name: "at the end, blanks after", sql: "SELECT *\nFROM«   \n\n", want: &Position{2, 5, 13}, atEnd: true},
		{name: "at the end, comment after", sql: "SELECT * FROM« -- nothing follows", want: &Position{1, 14, 13}, atEnd: true},
		{name: "at the end, semicolons after", sql: "SELECT * FROM t WHERE«;  ", want: &Position{1, 22, 21}, atEnd: true},
		{name: "unicode before", sql: "SELECT 'héllo 日本', '😀😀' AS x «y FROM t", want: &Position{1, 30, 29}, prefix: true},
		{name: "unicode before, line 2", sql: "SELECT '日本語'\nAS «AS FROM t", want: &Position{2, 4, 16}},
		{name: "emoji after", sql: "SELECT 1 «) '😀 and 😀'"},
		{name: "emoji after, truncated", sql: "SELECT 1 «) '" + emoji + "'", prefix: true},
		{name: "long, truncated", sql: "SELECT * FROM t WHERE a = «)" + chain, want: &Position{1, 27, 26}, prefix: true},
		{name: "long, truncated, unicode", sql: "SELECT * FROM t WHERE a = «) 'ééééééééééééééééééééééééééééééééééééééééééééééééé'" + chain},
		{name: "long, truncated, line 3", sql: "SELECT a\nFROM t\nWHERE a = «)" + chain, want: &Position{3, 11, 26}, prefix: true},
		// The truncated near-text also occurs on line 1: "at line 2" picks the right one.
		{name: "long, truncated, repeated", sql: "SELECT (1)" + chain + " AS v FROM t\nWHERE a = 1«)" + chain, prefix: true},
		{name: "leading blank lines", sql: "\n\n  SELECT * «FORM t", want: &Position{3, 12, 13}},
		{name: "leading blank lines, truncated, line 2", sql: "\n\nSELECT a FROM t\nWHERE a = «)" + chain, want: &Position{4, 11, 28}, prefix: true},
		{name: "line breaks inside a string", sql: "SELECT 'a\nb\nc' x «y FROM t", want: &Position{3, 6, 17}},
		{name: "quotes after", sql: "SELECT * FROM t WHERE a = «) 'it''s' \"q\" `x`"},
		{name: "unterminated string", sql: "SELECT * FROM t WHERE a = «'unterminated"},
		{name: "unterminated comment", sql: "SELECT 1 «/* open"},
		{name: "text like the message", sql: "SELECT * FROM t WHERE a = «) ' at line 7'"},
	}
	for _, tt := range tests {
		i := strings.Index(tt.sql, mark)
		if i < 0 {
			t.Fatalf("%s: no mark", tt.name)
		}
		sqlText := tt.sql[:i] + tt.sql[i+len(mark):]
		want := PositionAt(sqlText, i)
		if tt.want != nil && *tt.want != want {
			t.Fatalf("%s: the hand-made position %+v is not %+v", tt.name, *tt.want, want)
		}
		sends := []string{sqlText}
		if tt.prefix {
			sends = append(sends, "SET STATEMENT max_statement_time=10.000 FOR "+sqlText)
		}
		for _, sent := range sends {
			_, err := conn.ExecContext(ctx, sent)
			var me *mysql.MySQLError
			if !errors.As(err, &me) || me.Number != 1064 {
				t.Errorf("%s: %q: %v, want error 1064", tt.name, sent, err)
				continue
			}
			got := TranslateError(err, sqlText, "cdb_x", "mydb")
			var qe *QueryError
			if !errors.As(got, &qe) {
				t.Fatalf("%s: TranslateError = %T %v", tt.name, got, got)
			}
			if !qe.Syntax() || qe.MySQLCode != 1064 || qe.SQLState != "42000" || qe.Explanation == "" || qe.Hint == "" {
				t.Errorf("%s: %+v", tt.name, qe)
			}
			if qe.Position == nil {
				t.Errorf("%s: %q: no position from %q", tt.name, sent, me.Message)
				continue
			}
			t.Logf("%s: %q: %s", tt.name, sent, me.Message)
			if *qe.Position != want {
				t.Errorf("%s: %q: position %+v, want %+v (at %q) from %q", tt.name, sent, *qe.Position, want, sqlText[i:], me.Message)
			}
			if ended := qe.Explanation == "The statement ends before it is complete."; ended != tt.atEnd {
				t.Errorf("%s: explanation %q", tt.name, qe.Explanation)
			}
		}
	}
	t.Logf("server %s", version)
}

// TestTranslateErrorMessages produces common errors on the test server and checks their
// translation: code, state, explanation and hint, and no physical schema name in the message.
func TestTranslateErrorMessages(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var schema string
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ONLY_FULL_GROUP_BY'",
		"CREATE TABLE p (id INT PRIMARY KEY)",
		"CREATE TABLE c (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p (id))",
		"CREATE TABLE v (id INT PRIMARY KEY, s VARCHAR(3) NOT NULL, n TINYINT, d DATE)",
		"INSERT INTO p VALUES (1)",
		"INSERT INTO c VALUES (1, 1)",
		"INSERT INTO v VALUES (1, 'a', 1, NULL)",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	display := "mydb"
	tests := []struct {
		sql     string
		code    uint16
		message string // the translated message, where it is worth pinning
	}{
		{"SELECT * FROM missing", 1146, "Table 'mydb.missing' doesn't exist"},
		{"SELECT * FROM " + schema + ".missing", 1146, "Table 'mydb.missing' doesn't exist"},
		{"SELECT nope FROM v", 1054, ""},
		{"INSERT INTO v VALUES (1, 'a', 1, NULL)", 1062, ""},
		{"INSERT INTO c VALUES (2, 99)", 1452, ""},
		{"DELETE FROM p", 1451, ""},
		{"INSERT INTO v VALUES (2, NULL, 1, NULL)", 1048, ""},
		{"INSERT INTO v VALUES (3, 'abcdef', 1, NULL)", 1406, ""},
		{"INSERT INTO v VALUES (4, 'a', 1000, NULL)", 1264, ""},
		{"INSERT INTO v VALUES (5, 'a', 'xyz', NULL)", 1366, ""},
		{"INSERT INTO v VALUES (6, 'a', 1, '2020-13-45')", 1292, ""},
		{"INSERT INTO v VALUES (7, 'a')", 1136, ""},
		{"CREATE TABLE v (x INT)", 1050, ""},
		{"DROP TABLE nothere", 1051, "Unknown table 'mydb.nothere'"},
		{"ALTER TABLE v DROP COLUMN zz", 1091, ""},
		{"SELECT id FROM v, c", 1052, ""},
		{"CALL nope()", 1305, "PROCEDURE mydb.nope does not exist"},
		{"SELECT (SELECT id FROM p UNION SELECT 2)", 1242, ""},
		{"TRUNCATE p", 1701, ""},
		{"SET STATEMENT max_statement_time=0.05 FOR SELECT COUNT(*) FROM information_schema.columns a, information_schema.columns b, information_schema.columns c", 1969, ""},
	}
	for _, tt := range tests {
		_, err := conn.ExecContext(ctx, tt.sql)
		got := TranslateError(err, tt.sql, schema, display)
		var qe *QueryError
		if !errors.As(got, &qe) {
			t.Errorf("%s: %v, want a *QueryError", tt.sql, got)
			continue
		}
		if qe.MySQLCode != tt.code {
			t.Errorf("%s: code %d (%s), want %d", tt.sql, qe.MySQLCode, qe.Message, tt.code)
		}
		if len(qe.SQLState) != 5 || qe.Explanation == "" || qe.Hint == "" || qe.Syntax() || qe.Position != nil {
			t.Errorf("%s: %+v", tt.sql, qe)
		}
		if strings.Contains(qe.Message, schema) || strings.Contains(qe.Error(), schema) {
			t.Errorf("%s: message %q shows the physical schema %s", tt.sql, qe.Message, schema)
		}
		if tt.message != "" && qe.Message != tt.message {
			t.Errorf("%s: message %q, want %q", tt.sql, qe.Message, tt.message)
		}
		if !strings.HasPrefix(qe.Error(), fmt.Sprintf("Error %d (%s): ", qe.MySQLCode, qe.SQLState)) {
			t.Errorf("Error() = %q", qe.Error())
		}
		if timeout := tt.code == 1969; IsTimeout(err) != timeout || IsTimeout(got) != timeout {
			t.Errorf("%s: IsTimeout = %v, want %v", tt.sql, IsTimeout(err), timeout)
		}
	}

	// A foreign key message names the schema in backticks.
	_, err = conn.ExecContext(ctx, "INSERT INTO c VALUES (3, 42)")
	var qe *QueryError
	if !errors.As(TranslateError(err, "", schema, display), &qe) || !strings.Contains(qe.Message, "(`mydb`.`c`, CONSTRAINT") {
		t.Errorf("1452: %v", qe)
	}

	// A lock wait timeout, from a second session.
	other, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, q := range []string{"BEGIN", "SELECT * FROM p WHERE id = 1 FOR UPDATE"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	defer conn.ExecContext(ctx, "ROLLBACK")
	if _, err := other.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = 1"); err != nil {
		t.Fatal(err)
	}
	_, err = other.ExecContext(ctx, "UPDATE p SET id = 2 WHERE id = 1")
	if !errors.As(TranslateError(err, "", schema, display), &qe) || qe.MySQLCode != 1205 || qe.Hint == "" {
		t.Errorf("lock wait: %v", err)
	}
	if IsTimeout(err) {
		t.Errorf("a lock wait timeout is not a statement timeout")
	}
}

// TestTranslateErrorAccessDenied checks that access-denied messages of a tenant account name
// neither the account nor the physical schema.
func TestTranslateErrorAccessDenied(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Open(t, sandboxtest.Prefix)
	ctx := sandboxtest.Context(t)
	id, rwPass, roPass := sandboxtest.Provision(t, s, "utf8mb4", "utf8mb4_bin", 5)
	schema := sandbox.SchemaName(sandboxtest.Prefix, id)
	rwUser, roUser := sandbox.AccountNames(sandboxtest.Prefix, id)
	rw := sandboxtest.ConnectAs(t, s, rwUser, rwPass, schema)
	sandboxtest.MustExec(t, rw, "CREATE TABLE t (id INT)")
	ro := sandboxtest.ConnectAs(t, s, roUser, roPass, schema)
	tests := []struct {
		db    *sql.DB
		sql   string
		codes []uint16
	}{
		{ro, "INSERT INTO t VALUES (1)", []uint16{1142}},
		{ro, "CREATE TABLE u (x INT)", []uint16{1142}},
		{rw, "SELECT user FROM mysql.user", []uint16{1142, 1044}},
		{rw, "CREATE DATABASE " + strings.Replace(schema, "_", "x", 1), []uint16{1044}},
		{rw, "CREATE USER cdbt_evil IDENTIFIED BY 'x'", []uint16{1227}},
		{rw, "SET GLOBAL max_connections = 1000", []uint16{1227}},
	}
	for _, tt := range tests {
		_, err := tt.db.ExecContext(ctx, tt.sql)
		var me *mysql.MySQLError
		if !errors.As(err, &me) {
			t.Errorf("%s: %v, want a MySQL error", tt.sql, err)
			continue
		}
		var qe *QueryError
		if !errors.As(TranslateError(err, tt.sql, schema, "mydb"), &qe) {
			t.Fatalf("%s: not translated", tt.sql)
		}
		found := false
		for _, c := range tt.codes {
			found = found || qe.MySQLCode == c
		}
		if !found {
			t.Errorf("%s: code %d (%s), want one of %v", tt.sql, qe.MySQLCode, me.Message, tt.codes)
		}
		if qe.Explanation != "This statement needs a privilege your role's account for this database does not have." || qe.Hint == "" {
			t.Errorf("%s: explanation %q, hint %q", tt.sql, qe.Explanation, qe.Hint)
		}
		for _, secret := range []string{schema, rwUser, roUser, "@'"} {
			if strings.Contains(qe.Message, secret) {
				t.Errorf("%s: %q (from %q) shows %q", tt.sql, qe.Message, me.Message, secret)
			}
		}
		if strings.Contains(me.Message, "'@'") && !strings.Contains(qe.Message, "your account") {
			t.Errorf("%s: %q does not say your account", tt.sql, qe.Message)
		}
	}
}

func TestTranslateErrorUnit(t *testing.T) {
	plain := io.EOF
	if got := TranslateError(plain, "SELECT 1", "cdb_x", "d"); got != plain {
		t.Errorf("a non-MySQL error: %v", got)
	}
	if got := TranslateError(nil, "SELECT 1", "cdb_x", "d"); got != nil {
		t.Errorf("nil: %v", got)
	}
	wrapped := fmt.Errorf("run: %w", &mysql.MySQLError{Number: 1146, SQLState: [5]byte{'4', '2', 'S', '0', '2'}, Message: "Table 'cdb_x.t' doesn't exist"})
	var qe *QueryError
	if !errors.As(TranslateError(wrapped, "SELECT * FROM t", "cdb_x", "shop"), &qe) {
		t.Fatal("a wrapped MySQL error is not translated")
	}
	if qe.Message != "Table 'shop.t' doesn't exist" || qe.SQLState != "42S02" || qe.Error() != "Error 1146 (42S02): Table 'shop.t' doesn't exist" {
		t.Errorf("%+v / %s", qe, qe.Error())
	}
	if errors.Unwrap(qe) != nil {
		t.Errorf("QueryError wraps the driver's error, which holds physical names")
	}
	noState := TranslateError(&mysql.MySQLError{Number: 1999, Message: "odd"}, "", "", "")
	if !errors.As(noState, &qe) || qe.SQLState != "" || qe.Error() != "Error 1999: odd" || qe.Explanation != "" || qe.Hint != "" {
		t.Errorf("no state: %+v", qe)
	}

	for _, tt := range []struct{ msg, schema, display, want string }{
		{"Table 'cdb_x.t' doesn't exist", "cdb_x", "shop", "Table 'shop.t' doesn't exist"},
		{"Unknown table 'cdb_x.a,cdb_x.b'", "cdb_x", "shop", "Unknown table 'shop.a,shop.b'"},
		{"(`cdb_x`.`c`, CONSTRAINT `f` FOREIGN KEY (`p`) REFERENCES `cdb_x`.`p` (`id`))", "cdb_x", "shop", "(`shop`.`c`, CONSTRAINT `f` FOREIGN KEY (`p`) REFERENCES `shop`.`p` (`id`))"},
		{"Table 'CDB_X.t' doesn't exist", "cdb_x", "shop", "Table 'shop.t' doesn't exist"},
		{"Table 'cdb_xy.t' doesn't exist", "cdb_x", "shop", "Table 'cdb_xy.t' doesn't exist"}, // another name
		{"Table 'acdb_x.t' doesn't exist", "cdb_x", "shop", "Table 'acdb_x.t' doesn't exist"},
		{"cdb_x", "cdb_x", "shop", "shop"},
		{"Table 't' doesn't exist", "", "shop", "Table 't' doesn't exist"},
		{"INSERT command denied to user 'cdb_0123_ro'@'%' for table `cdb_x`.`t`", "cdb_x", "shop", "INSERT command denied to your account for table `shop`.`t`"},
		{"Access denied for user 'cdb_0123_rw'@'10.0.0.1' to database 'cdb_xz'", "cdb_x", "shop", "Access denied for your account to database 'cdb_xz'"},
		{"Operation CREATE USER failed for `a`@`%`", "cdb_x", "shop", "Operation CREATE USER failed for your account"},
		{"Access denied; you need (at least one of) the SUPER privilege(s) for this operation", "cdb_x", "shop", "Access denied; you need (at least one of) the SUPER privilege(s) for this operation"},
	} {
		if got := cleanMessage(tt.msg, tt.schema, tt.display); got != tt.want {
			t.Errorf("cleanMessage(%q, %q) = %q, want %q", tt.msg, tt.schema, got, tt.want)
		}
	}
}

func TestMySQLErrorSyntaxAndTimeout(t *testing.T) {
	for code, syntax := range map[uint16]bool{1064: true, 1149: true, 1146: false, 1054: false, 0: false} {
		if got := (&QueryError{MySQLCode: code}).Syntax(); got != syntax {
			t.Errorf("Syntax() of %d = %v", code, got)
		}
	}
	tests := []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1969, Message: "Query execution was interrupted (max_statement_time exceeded)"}, true},
		{&mysql.MySQLError{Number: 3024, Message: "Query execution was interrupted, maximum statement execution time exceeded"}, true},
		{&mysql.MySQLError{Number: 1317, Message: "Query execution was interrupted"}, true},
		{fmt.Errorf("x: %w", &mysql.MySQLError{Number: 1969}), true},
		{&QueryError{MySQLCode: 3024}, true},
		{fmt.Errorf("x: %w", &QueryError{MySQLCode: 1317}), true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		{&mysql.MySQLError{Number: 1205}, false}, // a lock wait is not the statement's time limit
		{&mysql.MySQLError{Number: 1064}, false},
		{&QueryError{MySQLCode: 1146}, false},
		{context.Canceled, false},
		{errors.New("boom"), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := IsTimeout(tt.err); got != tt.want {
			t.Errorf("IsTimeout(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	// Every timeout code has an explanation, and so do the codes the brief lists.
	for _, code := range []uint16{1064, 1146, 1054, 1062, 1451, 1452, 1048, 1406, 1264, 1366, 1292, 1136, 1050, 1051, 1091,
		1142, 1143, 1044, 1227, 1205, 1213, 3024, 1969, 1317} {
		got := TranslateError(&mysql.MySQLError{Number: code, Message: "m"}, "", "", "")
		var qe *QueryError
		if !errors.As(got, &qe) || qe.Explanation == "" || qe.Hint == "" {
			t.Errorf("code %d: no explanation or hint", code)
		}
		if strings.Contains(qe.Explanation+qe.Hint, "cdb_") {
			t.Errorf("code %d mentions internal names", code)
		}
	}
	if ex := explanations[1213]; !strings.Contains(strings.ToLower(ex[1]), "retry") {
		t.Errorf("deadlock hint %q does not say retry", ex[1])
	}
}
