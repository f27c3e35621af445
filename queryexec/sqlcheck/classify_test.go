package sqlcheck

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

type corpusLine struct{ category, note, stmt string }

func loadCorpus(t testing.TB) []corpusLine {
	f, err := os.Open("testdata/sql-corpus.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusLine
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		p := strings.SplitN(sc.Text(), "\t", 3)
		if len(p) != 3 {
			t.Fatalf("bad corpus line %q", sc.Text())
		}
		// the corpus writes a newline inside a statement as \n
		out = append(out, corpusLine{p[0], p[1], strings.ReplaceAll(p[2], `\n`, "\n")})
	}
	return out
}

func outcome(sql string) string {
	c, err := Classify(sql, "tenant_42")
	if err != nil {
		var d *Denied
		if errors.As(err, &d) {
			return "denied:" + d.Reason
		}
		return "error:" + err.Error()
	}
	return fmt.Sprintf("%s %s %v drops=%v nowhere=%v", c.Type, c.Verb, c.Tables, c.Drops, c.NoWhere)
}

// kindOf reduces a Classify result to "read", "dml", "ddl", "other" or
// "denied:<reason>".
func kindOf(c Classification, err error) string {
	if err != nil {
		var d *Denied
		if errors.As(err, &d) {
			return "denied:" + d.Reason
		}
		return "error:" + err.Error()
	}
	return string(c.Type)
}

// categoryRule is the expected outcome of every corpus line of a category.
var categoryRule = map[string]string{
	"select":         "read",
	"values":         "read",
	"table":          "read",
	"cte":            "read",
	"window":         "read",
	"json":           "read",
	"comments":       "read",
	"show":           "read",
	"describe":       "read",
	"explain":        "read",
	"insert":         "dml",
	"replace":        "dml",
	"update":         "dml",
	"delete":         "dml",
	"create_table":   "ddl",
	"alter":          "ddl",
	"drop":           "ddl",
	"truncate":       "ddl",
	"rename":         "ddl",
	"create_index":   "ddl",
	"create_view":    "ddl",
	"create_routine": "ddl",
	"maintenance":    "other",
	"set":            "other",
	"txn":            "other",
	"call":           "other",
	"crossdb":        "denied:other_schema",
	"create_db":      "denied:schema_management",
	"create_user":    "denied:account_management",
	"grant":          "denied:account_management",
	"use":            "denied:use",
	"file_io":        "denied:file_access",
	"lock":           "denied:lock_tables",
	"admin":          "denied:server_admin",
	"adversarial":    "denied:executable_comment",
	"multi":          "denied:multiple_statements",
}

// exceptions are corpus lines whose outcome differs from their category's rule.
var exceptions = map[string]string{
	// Locking reads take row locks and need write privileges: dml, not read.
	"SELECT * FROM t WHERE id = 1 FOR UPDATE":         "dml",
	"SELECT * FROM t WHERE id = 1 LOCK IN SHARE MODE": "dml",
	"SELECT * FROM t FOR UPDATE SKIP LOCKED":          "dml",
	"SELECT * FROM t FOR UPDATE NOWAIT":               "dml",
	// Qualifiers other than the own schema, in otherwise allowed categories.
	"WITH x AS (SELECT * FROM other.t) SELECT * FROM x":   "denied:other_schema",
	"CREATE TABLE otherdb.t (a INT)":                      "denied:other_schema",
	"ALTER TABLE otherdb.t ADD COLUMN x INT":              "denied:other_schema",
	"ALTER TABLE t ADD COLUMN x INT, RENAME TO otherdb.t": "denied:other_schema",
	"DROP TABLE otherdb.t":                                "denied:other_schema",
	"RENAME TABLE db1.a TO db2.a":                         "denied:other_schema",
	"CREATE VIEW v AS SELECT * FROM mysql.user":           "denied:other_schema",
	"SHOW CREATE TABLE otherdb.t":                         "denied:other_schema",
	"SHOW FULL COLUMNS FROM t FROM otherdb":               "denied:other_schema",
	"SHOW FULL TABLES FROM d LIKE 'a%'":                   "denied:other_schema", // d is not tenant_42
	"CALL otherdb.p()":                                    "denied:other_schema",
	"INSERT INTO t SELECT * FROM otherdb.t":               "denied:other_schema",
	// Databases and accounts are never managed through the query endpoint.
	"ALTER DATABASE d CHARACTER SET utf8mb4": "denied:schema_management",
	"DROP DATABASE tenant_42":                "denied:schema_management",
	"ALTER USER 'u'@'%' IDENTIFIED BY 'pw'":  "denied:account_management",
	"DROP USER 'u'@'%'":                      "denied:account_management",
	"SET ROLE admin":                         "denied:account_management",
	// Routines may not run as someone else.
	"CREATE DEFINER=`root`@`localhost` PROCEDURE p2() SELECT 1": "denied:definer",
	// Server-level information and administration.
	"SHOW ENGINE INNODB STATUS":                "denied:server_admin",
	"SHOW BINARY LOGS":                         "denied:server_admin",
	"FLUSH PRIVILEGES":                         "denied:server_admin",
	"FLUSH TABLES WITH READ LOCK":              "denied:server_admin",
	"HANDLER t OPEN":                           "denied:server_admin",
	"XA START 'x'":                             "denied:server_admin",
	"SET GLOBAL max_connections = 1000":        "denied:set_global",
	"SET PASSWORD FOR 'u'@'%' = PASSWORD('x')": "denied:set_global",
	// Dynamic SQL would run a string the classifier never sees.
	"PREPARE s FROM 'SELECT 1'": "denied:dynamic_sql",
	"EXECUTE s":                 "denied:dynamic_sql",
	"DEALLOCATE PREPARE s":      "denied:dynamic_sql",
	// The platform sets the statement timeout on every statement: a tenant may not lift it
	// (the request's timeout_s lowers it).
	"SET STATEMENT max_statement_time=5 FOR SELECT * FROM t": "denied:session_settings",
	"SET SESSION max_statement_time = 5":                     "denied:session_settings",
	// What shows the server, other sessions or password hashes.
	"SHOW PROCESSLIST":             "denied:server_information",
	"SHOW FULL PROCESSLIST":        "denied:server_information",
	"SHOW VARIABLES LIKE 'max%'":   "denied:server_information",
	"SHOW GLOBAL STATUS":           "denied:server_information",
	"SHOW GRANTS FOR CURRENT_USER": "denied:server_information",
	// SELECT ... INTO @var touches no file, but sqlparser cannot parse it and
	// the fallback refuses a SELECT containing INTO (deny by default).
	"SELECT a INTO @v FROM t LIMIT 1": "denied:unparsable",
	// Executable comments are refused even where harmless.
	"/*!40101 SET NAMES utf8mb4 */":           "denied:executable_comment",
	"SELECT * FROM t /*!50000 WHERE a = 1 */": "denied:executable_comment",
	// Adversarial lines that are safe as classified: the comment is a plain
	// comment (DROP needs confirm), and MySQL reads --1 as minus minus one.
	"/* x */ DROP TABLE t": "ddl",
	"SELECT 1--1":          "read",
	// force_eof would swallow the second statement; we count statements.
	"DESCRIBE t; DROP DATABASE victim": "denied:multiple_statements",
	// One statement plus a trailing ';'.
	"SELECT 1;": "read",
}

// multiCounts is how many statements Split finds in each multi line.
var multiCounts = map[string]int{
	"SELECT 1; SELECT 2":                                 2,
	"INSERT INTO t VALUES (1); DELETE FROM t":            2,
	"SELECT 1; DROP DATABASE x":                          2,
	"SELECT ';' AS semi; SELECT 2":                       2,
	"SELECT 1;":                                          1,
	"ALTER TABLE t ADD COLUMN x INT; DROP TABLE secrets": 2,
	"DESCRIBE t; DROP DATABASE victim":                   2,
}

func TestClassifyCorpus(t *testing.T) {
	lines := loadCorpus(t)
	if len(lines) != 268 {
		t.Fatalf("corpus has %d lines, want 268", len(lines))
	}
	usedExc := map[string]bool{}
	counts := map[string]int{}
	for _, l := range lines {
		rule, ok := categoryRule[l.category]
		if !ok {
			t.Errorf("category %q has no rule", l.category)
			continue
		}
		want := rule
		if e, ok := exceptions[l.stmt]; ok {
			want = e
			usedExc[l.stmt] = true
		}
		c, err := Classify(l.stmt, "tenant_42")
		got := kindOf(c, err)
		counts[got]++
		if got != want {
			t.Errorf("%s: Classify(%q) = %s, want %s (%v)", l.category, l.stmt, got, want, err)
		}
		if err == nil && c.Verb == "" {
			t.Errorf("Classify(%q): empty Verb", l.stmt)
		}
		if n, ok := multiCounts[l.stmt]; ok {
			parts, err := Split(l.stmt)
			if err != nil || len(parts) != n {
				t.Errorf("Split(%q) = %q, %v; want %d statements", l.stmt, parts, err, n)
			}
			for _, p := range parts {
				if _, err := Classify(p, "tenant_42"); errors.As(err, new(*Denied)) && err.(*Denied).Reason == "multiple_statements" {
					t.Errorf("piece %q of %q still multiple", p, l.stmt)
				}
			}
		} else if l.category == "multi" {
			t.Errorf("multi line %q has no statement count", l.stmt)
		}
		// Per-category flags.
		if err == nil {
			switch l.category {
			case "drop", "truncate":
				if !c.Drops {
					t.Errorf("%q: Drops = false", l.stmt)
				}
			case "select", "cte", "window", "json", "insert", "update", "delete", "replace", "alter", "create_index", "create_view":
				if c.Drops {
					t.Errorf("%q: Drops = true", l.stmt)
				}
			}
		}
	}
	for s := range exceptions {
		if !usedExc[s] {
			t.Errorf("exception %q matches no corpus line", s)
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-30s %d", k, counts[k])
	}
}

func TestClassifyDetails(t *testing.T) {
	tests := []struct {
		sql  string
		want Classification
	}{
		{"SELECT t.id, d.name FROM tenants t JOIN `databases` d ON d.tenant_id = t.id WHERE t.status = 'active'",
			Classification{Type: TypeRead, Verb: "SELECT", Tables: []string{"tenants", "databases"}}},
		{"SELECT * FROM tenant_42.orders", Classification{Type: TypeRead, Verb: "SELECT", Tables: []string{"tenant_42.orders"}}},
		{"UPDATE t SET a = 1", Classification{Type: TypeDML, Verb: "UPDATE", Tables: []string{"t"}, NoWhere: true}},
		{"UPDATE t SET a = (SELECT MAX(b) FROM u WHERE x = 1)", Classification{Type: TypeDML, Verb: "UPDATE", Tables: []string{"t", "u"}, NoWhere: true}},
		{"DELETE FROM t", Classification{Type: TypeDML, Verb: "DELETE", Tables: []string{"t"}, NoWhere: true}},
		{"DELETE FROM t WHERE id = 1 RETURNING id", Classification{Type: TypeDML, Verb: "DELETE", Tables: []string{"t"}}},
		{"DELETE FROM t RETURNING id", Classification{Type: TypeDML, Verb: "DELETE", Tables: []string{"t"}, NoWhere: true}},
		{"INSERT INTO t (a) VALUES (1)", Classification{Type: TypeDML, Verb: "INSERT", Tables: []string{"t"}}},
		{"DROP TABLE IF EXISTS t1, t2", Classification{Type: TypeDDL, Verb: "DROP", Tables: []string{"t1", "t2"}, Drops: true}},
		{"TRUNCATE t", Classification{Type: TypeDDL, Verb: "TRUNCATE", Tables: []string{"t"}, Drops: true}},
		{"CREATE OR REPLACE TABLE t (a INT)", Classification{Type: TypeDDL, Verb: "CREATE", Tables: []string{"t"}, Drops: true}},
		{"WITH x AS (SELECT 1 AS a) SELECT * FROM x JOIN t USING (a)", Classification{Type: TypeRead, Verb: "WITH", Tables: []string{"t"}}},
		{"CALL p(1)", Classification{Type: TypeOther, Verb: "CALL"}},
		{"CREATE PROCEDURE p() BEGIN SELECT 1; SELECT CASE WHEN 1 THEN 2 END; END", Classification{Type: TypeDDL, Verb: "CREATE", Routine: true}},
		{"EXPLAIN ANALYZE DELETE FROM t", Classification{Type: TypeDML, Verb: "EXPLAIN", Tables: []string{"t"}, NoWhere: true}},
		{"EXPLAIN DELETE FROM t", Classification{Type: TypeRead, Verb: "EXPLAIN", Tables: []string{"t"}}},
		{"SHOW COLUMNS FROM t FROM tenant_42", Classification{Type: TypeRead, Verb: "SHOW", Tables: []string{"t"}}},
		{"SELECT 1 -- ; DROP TABLE t", Classification{Type: TypeRead, Verb: "SELECT", Literal: true}},
		{"SELECT ';', '/*!', \"/*M! x */\", '\\'' FROM t", Classification{Type: TypeRead, Verb: "SELECT", Tables: []string{"t"}}},
		{"SELECT 1.5, .5, 1e5 FROM t", Classification{Type: TypeRead, Verb: "SELECT", Tables: []string{"t"}}},
		{"CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW SET NEW.a = OLD.a", Classification{Type: TypeDDL, Verb: "CREATE", Routine: true}},
		{"WITH x AS (SELECT REPLACE(a, 'x', 'y') AS a, INSERT(b, 1, 2, 'z') AS b, CAST(c AS CHAR CHARACTER SET utf8mb4) AS c FROM t) SELECT * FROM x",
			Classification{Type: TypeRead, Verb: "WITH", Tables: []string{"t"}}},
		{"WITH x AS (SELECT 1 AS a) SELECT * FROM x LOCK IN SHARE MODE", Classification{Type: TypeDML, Verb: "WITH"}},
		{"SET SESSION sql_mode = 'STRICT_ALL_TABLES', NAMES utf8mb4", Classification{Type: TypeOther, Verb: "SET"}},
	}
	for _, tt := range tests {
		got, err := Classify(tt.sql, "tenant_42")
		if err != nil {
			t.Errorf("Classify(%q): %v", tt.sql, err)
			continue
		}
		if len(got.Tables) == 0 {
			got.Tables = nil
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Classify(%q) = %+v, want %+v", tt.sql, got, tt.want)
		}
	}
}

func TestClassifyDenied(t *testing.T) {
	tests := []struct{ sql, reason string }{
		{"SELECT a FROM t /*M! UNION SELECT user FROM mysql.user */", "executable_comment"},
		{"SELECT a FROM t /*!99999 UNION SELECT user FROM mysql.user */", "executable_comment"},
		{"/*!99999 DROP TABLE t */ SELECT 1", "executable_comment"},
		{"SELECT 1 /*m! x */", "executable_comment"},
		{"SELECT 1 --1\n; DROP TABLE t", "multiple_statements"}, // --1 is not a comment in MySQL
		{"SELECT * FROM t; DROP TABLE t", "multiple_statements"},
		{"SELECT 1; ", ""},
		{"", "empty"},
		{"   \n\t ", "empty"},
		{"/* only a comment */ -- and another\n# and a third", "empty"},
		{";", "empty"},
		{"SELECT 'abc", "unparsable"},
		{"SELECT \"abc", "unparsable"},
		{"SELECT `abc", "unparsable"},
		{"SELECT 'it\\'s", "unparsable"},
		{"SELECT 1 /* open", "unparsable"},
		{"SELECT 1 /* open /*! x", "unparsable"}, // /*! inside a comment is plain text
		{"SELECT 1\x00", "unparsable"},
		{"SELECT '\xff\xfe'", "unparsable"},
		{"SELECT * FROM information_schema.tables", "other_schema"},
		{"SELECT * FROM mysql.user", "other_schema"},
		{"SELECT * FROM t, mysql.user", "other_schema"},
		{"SELECT * FROM t mysql, mysql.user", "other_schema"},
		{"SELECT * FROM `mysql`.`user`", "other_schema"},
		{"SELECT * FROM \"mysql\".\"user\"", "other_schema"}, // ANSI_QUOTES
		{"SELECT * FROM TENANT_42.t", "other_schema"},        // qualifiers are case-sensitive
		{"WITH a AS (SELECT 1) SELECT * FROM a, mysql.user", "other_schema"},
		{"WITH a AS (SELECT user FROM mysql.user) SELECT * FROM a", "other_schema"},
		{"SELECT sys.f(1)", "other_schema"},
		{"DESCRIBE mysql.user", "other_schema"},
		{"CREATE TABLE t2 LIKE mysql.user", "other_schema"},
		{"CREATE TRIGGER x AFTER INSERT ON mysql.user FOR EACH ROW SET @a = 1", "other_schema"},
		{"SHOW TABLES IN mysql", "other_schema"},
		{"WITH x AS (SELECT 1) DELETE FROM t", "unparsable"},
		{"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "unparsable"},
		{"SELECT LOAD_FILE('/etc/passwd')", "file_access"},
		{"SELECT load_file ('/etc/passwd')", "file_access"},
		{"WITH x AS (SELECT 1) SELECT * FROM x INTO OUTFILE '/tmp/x'", "file_access"},
		{"LOAD XML INFILE 'x' INTO TABLE t", "file_access"},
		{"SET @@global.max_connections = 1", "set_global"},
		{"SET @@GLOBAL.max_connections = 1", "set_global"},
		{"SET PERSIST max_connections = 1", "set_global"},
		{"SET SESSION sql_mode = 'ANSI_QUOTES'", "session_settings"},
		{"SET sql_mode = 'NO_BACKSLASH_ESCAPES'", "session_settings"},
		{"SET NAMES gbk", "session_settings"},
		{"SET sql_mode = @m", "session_settings"},
		{"SET sql_mode = 4", "session_settings"},
		{"SET sql_mode = CONCAT(@@sql_mode, ',x')", "session_settings"},
		{"SET @@session.sql_mode = 'ANSI'", "session_settings"},
		{"SET character_set_client = @cs", "session_settings"},
		{"SELECT * FROM (mysql.user)", "other_schema"},
		{"SELECT * FROM t JOIN (u, mysql.user) ON 1", "other_schema"},
		{"SELECT * FROM mysql /* x */ . user", "other_schema"},
		{"TABLE mysql.user", "other_schema"},
		{"DO (SELECT 1 FROM mysql.user)", "other_schema"},
		{"WITH x AS (SELECT 1) SELECT * FROM x -- c\n UNION SELECT user FROM mysql.user", "other_schema"},
		{"EXECUTE IMMEDIATE 'SELECT 1'", "dynamic_sql"},
		{"SET CHARACTER SET sjis", "session_settings"},
		{"SET STATEMENT lock_wait_timeout=5 FOR DROP DATABASE x", "schema_management"},
		{"EXPLAIN FOR CONNECTION 5", "server_admin"},
		{"CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (HOST 'x')", "server_admin"},
		{"UNINSTALL PLUGIN x", "server_admin"},
		{"RESET MASTER", "server_admin"},
		{"CACHE INDEX t IN hot", "server_admin"},
		{"CHANGE REPLICATION SOURCE TO SOURCE_HOST='x'", "server_admin"},
		{"RENAME USER a TO b", "account_management"},
		{"CREATE ROLE r", "account_management"},
		{"CREATE PROCEDURE p() BEGIN PREPARE s FROM @q; EXECUTE s; END", "dynamic_sql"},
		{"CREATE PROCEDURE p() BEGIN GRANT ALL ON *.* TO x; END", "server_admin"},
		{"FROBNICATE t", "unparsable"},
		{"(1)", "unparsable"},
	}
	for _, tt := range tests {
		name := tt.sql
		if len(name) > 80 {
			name = name[:80] + "..."
		}
		_, err := Classify(tt.sql, "tenant_42")
		if tt.reason == "" {
			if err != nil {
				var d *Denied
				if !errors.As(err, &d) {
					t.Errorf("Classify(%q): %v is not *Denied", name, err)
				}
			}
			continue
		}
		var d *Denied
		if !errors.As(err, &d) {
			t.Errorf("Classify(%q) = %v, want denied %s", name, err, tt.reason)
			continue
		}
		if d.Reason != tt.reason {
			t.Errorf("Classify(%q): reason %s (%s), want %s", name, d.Reason, d.Message, tt.reason)
		}
		if !strings.Contains(d.Error(), tt.reason) {
			t.Errorf("Error() %q lacks reason", d.Error())
		}
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		sql  string
		want []string
	}{
		{"SELECT 1; SELECT 2", []string{"SELECT 1", "SELECT 2"}},
		{"SELECT ';' AS semi; SELECT 2", []string{"SELECT ';' AS semi", "SELECT 2"}},
		{`SELECT "a;b", 'it''s;', 'x\';y'; SELECT 2`, []string{`SELECT "a;b", 'it''s;', 'x\';y'`, "SELECT 2"}},
		{"SELECT `a;``b` FROM t; SELECT 2", []string{"SELECT `a;``b` FROM t", "SELECT 2"}},
		{"SELECT 1 -- x; y\n; SELECT 2", []string{"SELECT 1", "SELECT 2"}},
		{"SELECT 1 --1; SELECT 2", []string{"SELECT 1 --1", "SELECT 2"}},
		{"SELECT 1 # x; y\nFROM t; SELECT 2", []string{"SELECT 1 # x; y\nFROM t", "SELECT 2"}},
		{"SELECT /* ; */ 1; /* c */ ; ;SELECT 2;", []string{"SELECT /* ; */ 1", "SELECT 2"}},
		{"", []string{}},
		{" ; -- only\n", []string{}},
		{"CREATE PROCEDURE p(IN x INT) BEGIN SELECT x; IF x THEN SELECT 1; END IF; END; SELECT 3",
			[]string{"CREATE PROCEDURE p(IN x INT) BEGIN SELECT x; IF x THEN SELECT 1; END IF; END", "SELECT 3"}},
	}
	for _, tt := range tests {
		got, err := Split(tt.sql)
		if err != nil {
			t.Errorf("Split(%q): %v", tt.sql, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Split(%q) = %q, want %q", tt.sql, got, tt.want)
		}
	}
	for _, bad := range []string{"SELECT 'a; SELECT 2", "SELECT 1 /* x; SELECT 2", "SELECT `x", `SELECT "a\"`} {
		_, err := Split(bad)
		var d *Denied
		if !errors.As(err, &d) || d.Reason != "unparsable" {
			t.Errorf("Split(%q) = %v, want denied unparsable", bad, err)
		}
	}
	// 1,000 statements.
	many := strings.Repeat("INSERT INTO t VALUES (';'); ", 1000)
	got, err := Split(many)
	if err != nil || len(got) != 1000 {
		t.Fatalf("Split(1000 statements) = %d, %v", len(got), err)
	}
}

func FuzzClassify(f *testing.F) {
	for _, l := range loadCorpus(f) {
		f.Add(l.stmt)
	}
	for _, s := range []string{"", "'", "/*", "/*!", "`", "@", "@'", "a.", ".", "a.b.", "SELECT a.", "--", "#",
		"SET STATEMENT", "EXPLAIN", "EXPLAIN FORMAT", "SHOW COLUMNS FROM", "CREATE DEFINER", "SET NAMES", "(((("} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		c, err := Classify(sql, "tenant_42")
		if err != nil {
			var d *Denied
			if !errors.As(err, &d) {
				t.Fatalf("Classify(%q): non-Denied error %v", sql, err)
			}
		} else if c.Type == "" || c.Verb == "" {
			t.Fatalf("Classify(%q) = %+v: empty type or verb", sql, c)
		}
		if _, err := Split(sql); err != nil {
			if _, ok := err.(*Denied); !ok {
				t.Fatalf("Split(%q): non-Denied error %v", sql, err)
			}
		}
	})
}

// TestClassifyLarge: a 1 MB statement and 100 levels of nested subqueries are classified
// without blowing up; 1,000 levels are too complex (MariaDB itself refuses a few hundred).
func TestClassifyLarge(t *testing.T) {
	big := "SELECT " + strings.Repeat("a + ", 250000) + "1 FROM t"
	nested := func(n int) []string {
		return []string{
			strings.Repeat("SELECT * FROM (", n) + "SELECT 1" + strings.Repeat(") AS x", n),
			"SELECT * FROM t WHERE a IN " + strings.Repeat("(SELECT a FROM t WHERE a IN ", n) + "(1)" + strings.Repeat(")", n),
			"WITH x AS (SELECT 1) " + strings.Repeat("SELECT * FROM (", n) + "SELECT 1 FROM x" + strings.Repeat(") AS y", n),
		}
	}
	for _, sql := range append(nested(100), big) {
		c, err := Classify(sql, "tenant_42")
		if err != nil || c.Type != TypeRead {
			t.Errorf("Classify(%d bytes) = %v, %v; want read", len(sql), c.Type, err)
		}
	}
	for _, sql := range nested(1000) {
		if _, err := Classify(sql, "tenant_42"); !isDenied(err, "too_complex") {
			t.Errorf("Classify(%d bytes) = %v; want too_complex", len(sql), err)
		}
	}
	// Unbalanced and junk deep nesting must be refused, not panic.
	for _, sql := range []string{strings.Repeat("(", 100000), "SELECT " + strings.Repeat("(", 100000) + "1"} {
		if _, err := Classify(sql, "tenant_42"); err == nil {
			t.Errorf("Classify(%d bytes of parens) accepted", len(sql))
		}
	}
}

// TestClassifyTooComplex: statements past the complexity bounds are refused before they reach
// the server (redteam: 30,000 scalar subqueries kept MariaDB busy for 160 s past their KILL);
// statements up to the bounds stay allowed.
func TestClassifyTooComplex(t *testing.T) {
	list := func(n int, item, sep string) string {
		items := make([]string, n)
		for i := range items {
			items[i] = strings.ReplaceAll(item, "%d", strconv.Itoa(i))
		}
		return strings.Join(items, sep)
	}
	tests := []struct{ name, sql, reason string }{
		{"30,000 scalar subqueries", "SELECT " + list(30000, "(SELECT 1)", ","), "too_complex"},
		{"257 SELECTs", "SELECT " + list(MaxSelects, "(SELECT 1)", ","), "too_complex"},
		{"256 SELECTs", "SELECT " + list(MaxSelects-1, "(SELECT 1)", ","), ""},
		{"EXISTS chain", "SELECT 1 WHERE " + list(1000, "EXISTS (SELECT 1)", " AND "), "too_complex"},
		{"UNION of 300", list(300, "SELECT %d", " UNION ALL "), "too_complex"},
		{"UNION of 256", list(MaxSelects, "SELECT %d", " UNION ALL "), ""},
		{"subqueries in an INSERT", "INSERT INTO t VALUES " + list(300, "((SELECT 1))", ","), "too_complex"},
		{"subqueries in a view", "CREATE VIEW v AS SELECT " + list(300, "(SELECT 1)", ","), "too_complex"},
		{"60,000 tables", "SELECT 1 FROM " + list(60000, "t%d", ","), "too_complex"},
		{"257 joins", "SELECT 1 FROM a " + list(MaxTableRefs, "JOIN t%d", " "), "too_complex"},
		{"256 tables", "SELECT 1 FROM " + list(MaxTableRefs, "t%d", ","), ""},
		{"deep parentheses", "SELECT " + strings.Repeat("(", 5000) + "1" + strings.Repeat(")", 5000), "too_complex"},
		{"128 parentheses", "SELECT " + strings.Repeat("(", MaxNesting) + "1" + strings.Repeat(")", MaxNesting), ""},
		{"129 parentheses", "SELECT " + strings.Repeat("(", MaxNesting+1) + "1" + strings.Repeat(")", MaxNesting+1), "too_complex"},
		{"long IN list", "SELECT 1 FROM t WHERE a IN (" + list(90000, "%d", ",") + ")", ""},
		{"bulk insert", "INSERT INTO t (a, b) VALUES " + list(20000, "(%d, 'x')", ","), ""},
	}
	for _, tt := range tests {
		_, err := Classify(tt.sql, "tenant_42")
		switch {
		case tt.reason == "" && err != nil:
			t.Errorf("%s: %v, want allowed", tt.name, err)
		case tt.reason != "" && !isDenied(err, tt.reason):
			t.Errorf("%s: %v, want denied %s", tt.name, err, tt.reason)
		}
	}
}

// isDenied reports whether err is a *Denied with reason.
func isDenied(err error, reason string) bool {
	var d *Denied
	return errors.As(err, &d) && d.Reason == reason
}

func TestQuoteIdent(t *testing.T) {
	if got := QuoteIdent("a`b"); got != "`a``b`" {
		t.Errorf("QuoteIdent = %s", got)
	}
}

func TestSplitRefusesExecutableComments(t *testing.T) {
	for _, sql := range []string{
		"SELECT 1; /*!50000 DROP TABLE t */",
		"CREATE TABLE a (id INT) /*!99999 , b INT */",
		"/*M! SELECT 1 */ SELECT 2",
	} {
		_, err := Split(sql)
		var denied *Denied
		if !errors.As(err, &denied) || denied.Reason != "executable_comment" {
			t.Errorf("Split(%q) = %v, want executable_comment", sql, err)
		}
	}
	if parts, err := Split("SELECT '/*!50000 not a comment */'; SELECT 2"); err != nil || len(parts) != 2 {
		t.Errorf("an executable comment inside a string: %v, %v; want two statements", parts, err)
	}
}

// TestClassifyFlags checks Routine, ForeignKey and Rewrites.
func TestClassifyFlags(t *testing.T) {
	const (
		R = 1 << iota // Routine
		F             // ForeignKey
		W             // Rewrites
	)
	tests := []struct {
		sql   string
		flags int
	}{
		// Routines: CREATE/ALTER/DROP of procedures, functions, triggers and events.
		{"CREATE PROCEDURE p() SELECT 1", R},
		{"CREATE OR REPLACE PROCEDURE p() SELECT 1", R},
		{"CREATE PROCEDURE IF NOT EXISTS p() SELECT 1", R},
		{"CREATE DEFINER = CURRENT_USER PROCEDURE p() SELECT 1", R},
		{"CREATE OR REPLACE DEFINER=CURRENT_USER PROCEDURE p() BEGIN SELECT 1; END", R},
		{"CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1", R},
		{"CREATE AGGREGATE FUNCTION f(x INT) RETURNS INT BEGIN RETURN 1; END", R},
		{"CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1", R},
		{"CREATE DEFINER=CURRENT_USER TRIGGER trg BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1", R},
		{"CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM t", R},
		{"ALTER PROCEDURE p COMMENT 'x'", R},
		{"ALTER FUNCTION f COMMENT 'x'", R},
		{"ALTER EVENT e DISABLE", R},
		{"DROP PROCEDURE IF EXISTS p", R},
		{"DROP FUNCTION f", R},
		{"DROP TRIGGER trg", R},
		{"DROP EVENT IF EXISTS e", R},
		{"SET STATEMENT lock_wait_timeout=5 FOR DROP PROCEDURE p", R},
		{"CALL p(1)", 0}, // running an existing routine is not routine DDL
		{"SELECT * FROM procedure_log", 0},
		{"CREATE VIEW v AS SELECT 1 AS a", 0},
		{"ALTER TABLE t DROP `function`", W},

		// Foreign keys: declared by CREATE TABLE or ALTER TABLE.
		{"CREATE TABLE c (id INT, pid INT, FOREIGN KEY (pid) REFERENCES p(id))", F},
		{"CREATE TABLE c (id INT, pid INT REFERENCES p(id))", F},
		{"CREATE TABLE c (id INT, pid INT, CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE)", F},
		{"CREATE TEMPORARY TABLE c (pid INT REFERENCES p(id))", F},
		{"CREATE OR REPLACE TABLE c (pid INT, FOREIGN KEY (pid) REFERENCES p(id))", F},
		{"ALTER TABLE c ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p(id)", F},
		{"ALTER TABLE c ADD FOREIGN KEY (pid) REFERENCES p(id)", F},
		{"ALTER TABLE c ADD COLUMN d INT REFERENCES p(id)", F},
		{"ALTER TABLE c DROP FOREIGN KEY fk", 0},
		{"ALTER TABLE c DROP CONSTRAINT fk", 0},
		{"CREATE TABLE c (id INT, note VARCHAR(20) DEFAULT 'REFERENCES', `references` INT)", 0},
		{"CREATE TABLE c LIKE p", 0},
		{"CREATE TABLE c AS SELECT * FROM p", 0},
		{"SET STATEMENT lock_wait_timeout=5 FOR CREATE TABLE c (pid INT REFERENCES p(id))", F},
		{"CREATE PROCEDURE p() BEGIN CREATE TABLE d (a INT REFERENCES c(id)); END", R | F},

		// High-impact ALTER TABLE: column drops and redefinitions, table rebuilds.
		{"ALTER TABLE c DROP COLUMN x", W},
		{"ALTER TABLE c DROP x", W},
		{"ALTER TABLE c DROP COLUMN IF EXISTS x", W},
		{"ALTER TABLE c DROP IF EXISTS x", W},
		{"ALTER TABLE c ADD COLUMN y INT, DROP x", W},
		{"ALTER TABLE c MODIFY x BIGINT", W},
		{"ALTER TABLE c MODIFY COLUMN x BIGINT NOT NULL", W},
		{"ALTER TABLE c CHANGE x y BIGINT", W},
		{"ALTER TABLE c CHANGE COLUMN x x INT", W},
		{"ALTER TABLE c CONVERT TO CHARACTER SET utf8mb4", W},
		{"ALTER TABLE c ENGINE=InnoDB", W},
		{"ALTER TABLE c ENGINE InnoDB", W},
		{"ALTER TABLE c COMMENT 'x' ENGINE = InnoDB", W},
		{"ALTER TABLE c ADD COLUMN y INT, ENGINE=InnoDB", W},
		{"ALTER TABLE c FORCE", W},
		{"ALTER ONLINE TABLE c DROP COLUMN x", W},
		{"ALTER IGNORE TABLE c MODIFY x INT", W},
		{"ALTER TABLE tenant_42.c DROP COLUMN x", W},
		{"ALTER TABLE `c` WAIT 5 DROP COLUMN x", W},
		{"ALTER TABLE c NOWAIT MODIFY x INT", W},
		{"ALTER TABLE IF EXISTS c DROP COLUMN x", W},
		{"ALTER TABLE c DROP `index`", W}, // a column named index
		{"ALTER TABLE c PARTITION BY HASH(id) PARTITIONS 4", W},
		{"ALTER TABLE c REMOVE PARTITIONING", W},
		{"ALTER TABLE c DROP PARTITION p0", W},
		{"ALTER TABLE c TRUNCATE PARTITION p0", W},
		{"ALTER TABLE c DROP SYSTEM VERSIONING", W},
		{"SET STATEMENT lock_wait_timeout=5 FOR ALTER TABLE c DROP COLUMN x", W},
		{"CREATE PROCEDURE p() BEGIN ALTER TABLE c DROP COLUMN x; END", R | W},
		{"CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO ALTER TABLE c ENGINE=InnoDB", R | W},
		{"ALTER TABLE c DROP INDEX i", 0},
		{"ALTER TABLE c DROP KEY i", 0},
		{"ALTER TABLE c DROP PRIMARY KEY", 0},
		{"ALTER TABLE c DROP CONSTRAINT ck", 0},
		{"ALTER TABLE c DROP CHECK ck", 0},
		{"ALTER TABLE c ALTER COLUMN x SET DEFAULT 1", 0},
		{"ALTER TABLE c ALTER COLUMN x DROP DEFAULT", 0},
		{"ALTER TABLE c ALTER x DROP DEFAULT, ALTER y SET DEFAULT 2", 0},
		{"ALTER TABLE c ADD COLUMN engine INT", 0},
		{"ALTER TABLE c ADD COLUMN z INT, DROP INDEX i, RENAME COLUMN a TO b", 0},
		{"ALTER TABLE c ADD COLUMN z INT DEFAULT (CONVERT('1', SIGNED))", 0},
		{"ALTER TABLE c DEFAULT CHARSET = utf8mb4", 0}, // only the default of new columns
		{"ALTER TABLE c COMMENT = 'drop column x'", 0},
		{"ALTER TABLE c RENAME TO d", 0},
		{"ALTER TABLE c ALGORITHM=INPLACE, LOCK=NONE, ADD INDEX (a)", 0},
		{"CREATE TABLE c (a INT) ENGINE=InnoDB", 0},
		{"CREATE INDEX i ON t (a)", 0},
		{"DROP TABLE t", 0},
		{"UPDATE t SET a = 1 WHERE b = 2", 0},

		// Everything at once.
		{"ALTER TABLE c DROP COLUMN x, ADD FOREIGN KEY (pid) REFERENCES p(id)", F | W},
	}
	for _, tt := range tests {
		c, err := Classify(tt.sql, "tenant_42")
		if err != nil {
			t.Errorf("Classify(%q): %v", tt.sql, err)
			continue
		}
		got := 0
		if c.Routine {
			got |= R
		}
		if c.ForeignKey {
			got |= F
		}
		if c.Rewrites {
			got |= W
		}
		if got != tt.flags {
			t.Errorf("Classify(%q): Routine=%v ForeignKey=%v Rewrites=%v, want Routine=%v ForeignKey=%v Rewrites=%v",
				tt.sql, c.Routine, c.ForeignKey, c.Rewrites, tt.flags&R != 0, tt.flags&F != 0, tt.flags&W != 0)
		}
	}
}

// TestClassifyLiteral: only a SELECT of literals and operators is Literal; a name of any kind
// (a table, a view, a function, a variable, a keyword that may lead to one) could run stored code.
func TestClassifyLiteral(t *testing.T) {
	for _, tt := range []struct {
		sql  string
		want bool
	}{
		{"SELECT 1", true},
		{"select 1", true},
		{" SELECT 1 ; ", true},
		{"SELECT 1, 'a', \"b\", 2.5, .5, 1e5, 0x1F, 0b101", true},
		{"SELECT (1 + 2) * 3 / 4 - 5 % 6", true},
		{"SELECT 1 /* a comment */ -- another\n", true},
		{"SELECT 1 FROM dual", false},
		{"SELECT 1 AS one", false},
		{"SELECT 1 FROM t", false},
		{"SELECT * FROM v", false},
		{"SELECT f()", false},
		{"SELECT `f`()", false},
		{"SELECT 1f()", false}, // a name that starts with a digit
		{"SELECT 1e()", false},
		{"SELECT NOW()", false},
		{"SELECT @x", false},
		{"SELECT @@version", false},
		{"SELECT (SELECT 1)", false},
		{"SELECT _utf8mb4'a'", false},
		{"SELECT 1 INTO @x", false},
		{"VALUES (1)", false},
		{"DO 1", false},
		{"CALL p()", false},
		{"INSERT INTO t VALUES (1)", false},
		{"WITH x AS (SELECT 1) SELECT 1", false},
	} {
		c, err := Classify(tt.sql, "tenant_42")
		if err != nil {
			var d *Denied
			if tt.want || !errors.As(err, &d) {
				t.Errorf("Classify(%q): %v", tt.sql, err)
			}
			continue
		}
		if c.Literal != tt.want {
			t.Errorf("Classify(%q).Literal = %v, want %v", tt.sql, c.Literal, tt.want)
		}
	}
}

// TestClassifyFlagsCorpus: the flags follow the corpus categories: only routine DDL is a routine.
func TestClassifyFlagsCorpus(t *testing.T) {
	for _, l := range loadCorpus(t) {
		c, err := Classify(l.stmt, "tenant_42")
		if err != nil {
			continue
		}
		routine := l.category == "create_routine" ||
			(l.category == "drop" && regexp.MustCompile(`(?i)^DROP (PROCEDURE|FUNCTION|TRIGGER|EVENT) `).MatchString(l.stmt))
		if c.Routine != routine {
			t.Errorf("%s: Classify(%q).Routine = %v", l.category, l.stmt, c.Routine)
		}
		if fk := strings.Contains(l.stmt, "REFERENCES"); c.ForeignKey != fk {
			t.Errorf("%s: Classify(%q).ForeignKey = %v", l.category, l.stmt, c.ForeignKey)
		}
		if c.Rewrites != corpusRewrites[l.stmt] {
			t.Errorf("%s: Classify(%q).Rewrites = %v", l.category, l.stmt, c.Rewrites)
		}
	}
}

// corpusRewrites are the corpus lines that are high-impact ALTERs.
var corpusRewrites = map[string]bool{
	"ALTER TABLE t DROP COLUMN c":                      true,
	"ALTER TABLE t MODIFY COLUMN c BIGINT":             true,
	"ALTER TABLE t CHANGE c d INT":                     true,
	"ALTER TABLE t ENGINE=InnoDB":                      true,
	"ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4":   true,
	"ALTER TABLE t PARTITION BY HASH(id) PARTITIONS 4": true,
}
