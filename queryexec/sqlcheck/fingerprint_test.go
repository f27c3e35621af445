package sqlcheck

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/clouddbmanager/clouddb/domain"
)

func TestFingerprint(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"only a comment", "/* nothing */ -- at all\n", ""},
		{"literals", "select * from t where id = 42 and name = 'bob'", "SELECT * FROM t WHERE id = ? AND name = ?"},
		{"whitespace and case of keywords", "SELECT\n\t*\n  FROM   t\tWHERE  id=1", "SELECT * FROM t WHERE id = ?"},
		{"identifiers kept as written", "SELECT CustomerName, `Order Date` FROM Orders o", "SELECT CustomerName, `Order Date` FROM Orders o"},
		{"qualified names", "select o . id, o.* from db1.orders as o", "SELECT o.id, o.* FROM db1.orders AS o"},
		{"comments removed", "SELECT /* hint 'x' */ a -- trailing 'quote\nFROM t # hash ' comment\nWHERE b = 2", "SELECT a FROM t WHERE b = ?"},
		{"double-dash without space is minus", "SELECT 5--1, 5 - -1", "SELECT ? - ?, ? - ?"},
		{"escaped quotes", `SELECT 'it\'s', 'a''b', "say \"hi\"" FROM t`, "SELECT ?, ?, ? FROM t"},
		{"quote inside backticks", "SELECT `it's` FROM `we``ird`", "SELECT `it's` FROM `we``ird`"},
		{"adjacent strings are one literal", "SELECT 'a' 'b' \"c\", 'd'", "SELECT ?, ?"},
		{"numbers", "SELECT 1, 1.5, .5, 1e10, 1.5E-3, 2e+7, 0x1F, 0b101, X'0A', b'1', N'x', _utf8mb4'y', _latin1 'z'", "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"},
		{"identifier starting with a digit", "SELECT 1col FROM 2tab", "SELECT 1col FROM 2tab"},
		{"negative numbers", "SELECT -1, a - 1, a-1, (-2), x = -3, -a FROM t LIMIT -1", "SELECT ?, a - ?, a - ?, (?), x = ?, - a FROM t LIMIT ?"},
		{"minus after a value keyword", "SELECT NULL - 1, CASE WHEN a THEN b END - 2", "SELECT NULL - ?, CASE WHEN a THEN b END - ?"},
		{"IN list", "SELECT * FROM t WHERE id IN (1, 2, 3) AND x not in ('a')", "SELECT * FROM t WHERE id IN (?+) AND x NOT IN (?+)"},
		{"IN lists of any length group together", "select * from t where id in(4,5)", "SELECT * FROM t WHERE id IN (?+)"},
		{"IN with placeholders", "SELECT * FROM t WHERE id IN (?, ?)", "SELECT * FROM t WHERE id IN (?+)"},
		{"IN with expressions is kept", "SELECT * FROM t WHERE id IN (1, a, NOW())", "SELECT * FROM t WHERE id IN (?, a, NOW())"},
		{"IN subquery is kept", "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE v = 1)", "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE v = ?)"},
		{"multi-row VALUES", "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'),(3,'z')", "INSERT INTO t(a, b) VALUES (?, ?)"},
		{"single-row VALUES", "insert into t values (1, 'x')", "INSERT INTO t VALUES (?, ?)"},
		{"mixed VALUES rows are kept", "INSERT INTO t VALUES (1, 2), (3, NOW())", "INSERT INTO t VALUES (?, ?), (?, NOW())"},
		{"VALUES function", "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a) + 1", "INSERT INTO t(a) VALUES (?) ON DUPLICATE KEY UPDATE a = VALUES (a) + ?"},
		{"functions", "select count(*), Sum(x), coalesce(a, 0), my_func(1), date(created) from t", "SELECT COUNT(*), SUM(x), COALESCE(a, ?), my_func(?), DATE(created) FROM t"},
		{"function name with a space", "SELECT count (*) FROM t", "SELECT COUNT(*) FROM t"},
		{"common column names stay identifiers", "SELECT date, time, value, comment, start FROM t", "SELECT date, time, value, comment, start FROM t"},
		{"operators", "SELECT a<=>b, c<=d, e>=f, g<>h, i!=j, k||l, m->'$.x', n->>'$.y', @v:=1", "SELECT a <=> b, c <= d, e >= f, g <> h, i != j, k || l, m -> ?, n ->> ?, @v := ?"},
		{"separated punctuation is not an operator", "SELECT a < = b", "SELECT a < = b"},
		{"variables", "SET @x = 5, @@session.sql_mode = 'ANSI'", "SET @x = ?, @@session.sql_mode = ?"},
		{"trailing semicolons dropped", "SELECT 1;;", "SELECT ?"},
		{"several statements", "SELECT 1; SELECT 2", "SELECT ?; SELECT ?"},
		{"ddl", "create table t (id int(11) not null auto_increment, name varchar(64) default 'x', primary key (id)) engine=InnoDB",
			"CREATE TABLE t(id INT(?) NOT NULL AUTO_INCREMENT, name VARCHAR(?) DEFAULT ?, PRIMARY KEY (id)) ENGINE = InnoDB"},
		{"unicode", "SELECT naïve, 'ünïcødé 😀' FROM café WHERE ß = 'ø'", "SELECT naïve, ? FROM café WHERE ß = ?"},
		{"executable comment is code", "SELECT /*!40001 SQL_NO_CACHE */ a FROM t /*M!100100 WHERE b = 1 */", "SELECT SQL_NO_CACHE a FROM t WHERE b = ?"},
		{"unterminated string", "SELECT * FROM t WHERE a = 'oops", "SELECT * FROM t WHERE a = ?"},
		{"unterminated comment", "SELECT a /* forever", "SELECT a"},
		{"unterminated backtick", "SELECT `oops", "SELECT `oops"},
		{"unterminated executable comment", "SELECT /*! a = 'x", "SELECT a = ?"},
		{"date literal", "SELECT * FROM t WHERE d > DATE '2024-01-01' - INTERVAL 1 DAY", "SELECT * FROM t WHERE d > DATE ? - INTERVAL ? DAY"},
		{"non-reserved words as written", "select * from t where d > date '2024-01-01' - interval 1 day", "SELECT * FROM t WHERE d > date ? - INTERVAL ? day"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fingerprint(tt.in); got != tt.want {
				t.Errorf("Fingerprint(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFingerprintGroupsVariants(t *testing.T) {
	variants := []string{
		"SELECT * FROM orders WHERE customer_id = 17 AND status IN ('new', 'paid')",
		"select *\nfrom orders\nwhere customer_id=99 and status in ('shipped') -- by hand",
		"SELECT  *  FROM orders /* x */ WHERE customer_id = -1 AND status IN (?, ?, ?);",
	}
	want := Fingerprint(variants[0])
	for _, v := range variants[1:] {
		if got := Fingerprint(v); got != want {
			t.Errorf("Fingerprint(%q) = %q, want %q like its variants", v, got, want)
		}
	}
	if other := Fingerprint("SELECT * FROM Orders WHERE customer_id = 17"); other == want {
		t.Errorf("different statements share the fingerprint %q", other)
	}
}

func TestFingerprintIsBounded(t *testing.T) {
	long := "SELECT " + strings.Repeat("a_column_é, ", 4000) + "b FROM t"
	got := Fingerprint(long)
	if len(got) > domain.MaxRecordedSQL || !utf8.ValidString(got) {
		t.Fatalf("Fingerprint of %d bytes: %d bytes, valid UTF-8 %v", len(long), len(got), utf8.ValidString(got))
	}
}

func TestRedactSecrets(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"nothing secret", "SELECT * FROM t WHERE password = 'x'", "SELECT * FROM t WHERE password = 'x'"},
		{"create user", "CREATE USER 'bob'@'%' IDENTIFIED BY 's3cr3t'", "CREATE USER 'bob'@'%' IDENTIFIED BY '***'"},
		{"lower case, double quotes", `create user bob identified by "pa'ss"`, `create user bob identified by "***"`},
		{"escaped quotes in the secret", `CREATE USER b IDENTIFIED BY 'it\'s ''x'''`, `CREATE USER b IDENTIFIED BY '***'`},
		{"with plugin by", "ALTER USER b IDENTIFIED WITH caching_sha2_password BY 'pw' REPLACE 'old' RETAIN CURRENT PASSWORD",
			"ALTER USER b IDENTIFIED WITH caching_sha2_password BY '***' REPLACE '***' RETAIN CURRENT PASSWORD"},
		{"with plugin as", "CREATE USER b IDENTIFIED WITH 'mysql_native_password' AS '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'",
			"CREATE USER b IDENTIFIED WITH 'mysql_native_password' AS '***'"},
		{"by password hash", "GRANT SELECT ON *.* TO b IDENTIFIED BY PASSWORD '*2470C0C06DEE'", "GRANT SELECT ON *.* TO b IDENTIFIED BY PASSWORD '***'"},
		{"mariadb via using", "CREATE USER b IDENTIFIED VIA ed25519 USING PASSWORD('pw') OR unix_socket",
			"CREATE USER b IDENTIFIED VIA ed25519 USING PASSWORD('***') OR unix_socket"},
		{"several users", "CREATE USER a IDENTIFIED BY 'one', b IDENTIFIED BY 'two' COMMENT 'kept'",
			"CREATE USER a IDENTIFIED BY '***', b IDENTIFIED BY '***' COMMENT 'kept'"},
		{"set password", "SET PASSWORD FOR 'bob'@'localhost' = PASSWORD('pw')", "SET PASSWORD FOR 'bob'@'localhost' = PASSWORD('***')"},
		{"set password plain", "set password = 'pw'", "set password = '***'"},
		{"update set password is data", "UPDATE users SET password = 'hash', name = 'bob'", "UPDATE users SET password = 'hash', name = 'bob'"},
		{"password function", "SELECT PASSWORD('a'), old_password ( 'b' ), password FROM t", "SELECT PASSWORD('***'), old_password ( '***' ), password FROM t"},
		{"aes key", "SELECT AES_ENCRYPT(card, 'k3y'), aes_decrypt(enc, UNHEX(SHA2('other', 512))) FROM t",
			"SELECT AES_ENCRYPT(card, '***'), aes_decrypt(enc, UNHEX(SHA2('***', '***'))) FROM t"},
		{"aes plaintext and iv", "SELECT AES_ENCRYPT('visible', 'key', 'iv')", "SELECT AES_ENCRYPT('visible', '***', '***')"},
		{"des and encode", "SELECT DES_ENCRYPT(a, 'k1'), DES_DECRYPT(b, 'k2'), ENCODE(c, 'k3'), DECODE(d, 'k4'), ENCRYPT('pw', 'salt')",
			"SELECT DES_ENCRYPT(a, '***'), DES_DECRYPT(b, '***'), ENCODE(c, '***'), DECODE(d, '***'), ENCRYPT('***', '***')"},
		{"key as hex and with introducer", "SELECT AES_ENCRYPT(a, X'00FF'), AES_ENCRYPT(b, 0xABCD), AES_ENCRYPT(c, _binary'k' 'more')",
			"SELECT AES_ENCRYPT(a, X'***'), AES_ENCRYPT(b, '***'), AES_ENCRYPT(c, _binary'***' '***')"},
		{"nested call in the plaintext", "SELECT AES_ENCRYPT(CONCAT('a', 'b'), 'key')", "SELECT AES_ENCRYPT(CONCAT('a', 'b'), '***')"},
		{"change master", "CHANGE MASTER TO MASTER_HOST='h', MASTER_PASSWORD = 'pw'", "CHANGE MASTER TO MASTER_HOST='h', MASTER_PASSWORD = '***'"},
		{"create server", "CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD 'pw')",
			"CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', PASSWORD '***')"},
		{"secret-looking text in a comment is not code", "SELECT 1 /* IDENTIFIED BY 'x' */", "SELECT 1 /* IDENTIFIED BY 'x' */"},
		{"keywords inside a string are not code", "SELECT 'IDENTIFIED BY', 'x'", "SELECT 'IDENTIFIED BY', 'x'"},
		{"comment between keyword and secret", "CREATE USER b IDENTIFIED BY /* here */ 'pw'", "CREATE USER b IDENTIFIED BY /* here */ '***'"},
		{"executable comment", "CREATE USER b /*!80000 IDENTIFIED BY 'pw' */", "CREATE USER b /*!80000 IDENTIFIED BY '***' */"},
		{"unterminated secret", "CREATE USER b IDENTIFIED BY 'pw and the rest", "CREATE USER b IDENTIFIED BY '***'"},
		{"unterminated secret in a key", "SELECT AES_ENCRYPT(a, 'k3y", "SELECT AES_ENCRYPT(a, '***'"},
		{"state ends with the statement", "CREATE USER a IDENTIFIED BY 'x'; SELECT 'y' AS z", "CREATE USER a IDENTIFIED BY '***'; SELECT 'y' AS z"},
		{"unicode", "CREATE USER ü IDENTIFIED BY 'pässwörd😀' COMMENT 'ça'", "CREATE USER ü IDENTIFIED BY '***' COMMENT 'ça'"},
		{"routine body", "CREATE PROCEDURE p() BEGIN SET PASSWORD = 'x'; UPDATE t SET password = 'y'; END",
			"CREATE PROCEDURE p() BEGIN SET PASSWORD = '***'; UPDATE t SET password = 'y'; END"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactSecrets(tt.in); got != tt.want {
				t.Errorf("RedactSecrets(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestRedactSecretsKeepsTheRest checks on the classifier's corpus that redaction only ever
// changes literals: without secrets, statements come back byte for byte.
func TestRedactSecretsKeepsTheRest(t *testing.T) {
	for _, line := range loadCorpus(t) {
		stmt := line.stmt
		upper := strings.ToUpper(stmt)
		if strings.Contains(upper, "PASSWORD") || strings.Contains(upper, "IDENTIFIED") || strings.Contains(upper, "CRYPT") ||
			strings.Contains(upper, "ENCODE") || strings.Contains(upper, "DECODE") {
			continue
		}
		if got := RedactSecrets(stmt); got != stmt {
			t.Errorf("RedactSecrets changed a statement without secrets:\n  in %q\n out %q", stmt, got)
		}
		Fingerprint(stmt)
	}
}

func FuzzFingerprintAndRedact(f *testing.F) {
	for _, s := range []string{
		"", "SELECT 1", "SELECT 'a''b' FROM `t``u` WHERE x IN (1,2)", "CREATE USER a IDENTIFIED BY 'x",
		"SELECT /*! a", "SELECT /*M!100000 'x' */", "-- \n#\n/* */", "@'x", "@`x", "SELECT 1e-", "x'", "IN (", "VALUES (),(),",
		"AES_ENCRYPT(a, 'b'", "SET PASSWORD = ", "\xff\xfe'", "SELECT -", "SELECT ((((", "))))",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		fp := Fingerprint(sql)
		if len(fp) > domain.MaxRecordedSQL || !utf8.ValidString(fp) {
			t.Fatalf("Fingerprint(%q) = %q: too long or not UTF-8", sql, fp)
		}
		if again := Fingerprint(sql); again != fp {
			t.Fatalf("Fingerprint is not deterministic: %q then %q", fp, again)
		}
		red := RedactSecrets(sql)
		if red == sql {
			return
		}
		// Redaction only replaces literals with '***'.
		if !strings.Contains(red, "***") {
			t.Fatalf("RedactSecrets(%q) = %q changed something without redacting", sql, red)
		}
	})
}

// TestFingerprintAndRedactAreLinear guards against quadratic paths on hostile input. Each of these
// quarter-megabyte statements takes a fraction of a second; a quadratic path would make some 3·10¹⁰
// steps, beyond 30 s even at a nanosecond a step, so a 20 s bound tells the two apart however busy
// the machine.
func TestFingerprintAndRedactAreLinear(t *testing.T) {
	const n = 1 << 18
	for name, sql := range map[string]string{
		"nested VALUES":   strings.Repeat("VALUES (", n/8),
		"nested PASSWORD": strings.Repeat("PASSWORD(", n/9),
		"nested AES":      strings.Repeat("AES_ENCRYPT(a, ", n/15),
		"long IN":         "SELECT * FROM t WHERE a IN (" + strings.Repeat("1, ", n/3) + "1)",
		"many rows":       "INSERT INTO t VALUES " + strings.Repeat("(1, 'a'), ", n/10) + "(1, 'a')",
		"comments":        strings.Repeat("/*! a */ /* b */ -- c\n", n/22),
		"strings":         strings.Repeat("'x' ", n/4),
		"open paren":      strings.Repeat("(", n),
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			Fingerprint(sql)
			RedactSecrets(sql)
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("%d bytes took %v", len(sql), d)
			}
		})
	}
}

func BenchmarkFingerprint(b *testing.B) {
	sql := "SELECT o.id, c.name, SUM(i.price * i.qty) AS total FROM orders o JOIN customers c ON c.id = o.customer_id " +
		"JOIN items i ON i.order_id = o.id WHERE o.created_at > '2024-01-01' AND o.status IN ('paid', 'shipped') GROUP BY o.id, c.name LIMIT 50"
	b.SetBytes(int64(len(sql)))
	for b.Loop() {
		Fingerprint(sql)
		RedactSecrets(sql)
	}
}
