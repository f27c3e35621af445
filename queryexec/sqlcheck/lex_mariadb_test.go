package sqlcheck

import (
	"context"
	"database/sql"
	"math/rand"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// mariaColumns runs q on c and returns how many columns MariaDB answered with; ok is false when
// the server refused the statement (nothing ran, whatever the lexer thought).
func mariaColumns(t *testing.T, c *sql.Conn, q string) (n int, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := c.QueryContext(ctx, q)
	if err != nil {
		return 0, false
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	return len(cols), true
}

// lexColumns is how many columns the lexer expects "SELECT 1<rest>" to answer with (top-level
// commas + 1); ok is false when the lexer refuses it, as Classify would.
func lexColumns(q string) (n int, ok bool) {
	if strings.IndexByte(q, 0) >= 0 {
		return 0, false
	}
	lr, err := lex(q)
	if err != nil || lr.execCmt >= 0 {
		return 0, false
	}
	n, depth := 1, 0
	for _, tk := range lr.toks {
		switch {
		case tk.kind == tkPunct && tk.ch == '(':
			depth++
		case tk.kind == tkPunct && tk.ch == ')':
			depth--
		case tk.kind == tkPunct && tk.ch == ',' && depth == 0:
			n++
		case tk.kind == tkPunct && tk.ch == ';':
			return 0, false // more than one statement: refused
		}
	}
	return n, true
}

// agree checks one probe: whenever the lexer accepts a statement that MariaDB runs, both see the
// same columns (a comment, string or identifier ends where MariaDB ends it).
func agree(t *testing.T, c *sql.Conn, charset, q string) {
	t.Helper()
	want, accepted := lexColumns(q)
	if !accepted {
		return
	}
	got, ran := mariaColumns(t, c, q)
	if ran && got != want {
		t.Errorf("%s: %q: MariaDB answers %d columns, the lexer sees %d", charset, q, got, want)
	}
}

// TestLexAgreesWithMariaDB is a differential test against the real server: for each byte after
// "--", after "#", inside /* */, after a backslash in a string and inside `identifiers`, and for
// random mixes of the characters that open and close comments, strings and identifiers, a
// statement the lexer accepts answers, on MariaDB, the columns the lexer sees. It runs in every
// client character set the checker lets a session choose.
func TestLexAgreesWithMariaDB(t *testing.T) {
	db, err := sql.Open("mysql", testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	probes := []string{}
	for b := 0; b < 256; b++ {
		s := string([]byte{byte(b)})
		probes = append(probes,
			"SELECT 1 --"+s+" ,2",
			"SELECT 1 --"+s+"'\n,2\n-- '",
			"SELECT 1 #"+s+" ,2",
			"SELECT 1 /*"+s+" ,2 */ ,3",
			"SELECT 1 ,'\\"+s+",2' ,3",
			"SELECT 1 ,`a"+s+"` ,2 FROM (SELECT 1 AS `a"+s+"`) t",
			"SELECT 1"+s+",2",
		)
	}
	for _, r := range []string{"\u00a0", "\u2028", "\u3000", "\ufeff", "\u0085"} {
		probes = append(probes, "SELECT 1 --"+r+" ,2", "SELECT 1"+r+",2")
	}
	probes = append(probes,
		"SELECT 1 /* /* */ ,2 */", "SELECT 1 /*/ ,2 */ ,3", "SELECT 1 /**/ ,2", "SELECT 1 /*+ x */ ,2",
		"SELECT 1 /*! ,2 */", "SELECT 1 /*M! ,2 */", "SELECT 1 /*!50000 ,2 */", "SELECT 1 /*!999999 ,2 */",
		"SELECT 1 /*!50000 /* x */ ,2 */", "SELECT 1 ,'a''b' ,2", "SELECT 1 ,\"a\"\"b\" ,2", "SELECT 1 ,'a\\'b' ,2",
		"SELECT 1 ,\"a\\\"b\" ,2", "SELECT 1 ,`a``b` ,2 FROM (SELECT 1 AS `a``b`) t", "SELECT 1 ,1e--1 ,2",
		"SELECT 1 ,1-- -1 ,2", "SELECT 1 ,'--' ,2", "SELECT 1 ,@`a--` ,2", "SELECT 1 ,@'a\\'b' ,2", "SELECT 1 -- x\n ,2",
	)
	fragments := []string{"-", "-", "#", "/", "*", "!", "M", "'", "\"", "`", "\\", "\n", " ", ",2", "1", "\x7f", "\x01", "@", "(", ")", "é"}
	rnd := rand.New(rand.NewSource(1))
	for range 3000 {
		var b strings.Builder
		b.WriteString("SELECT 1")
		for range 1 + rnd.Intn(10) {
			b.WriteString(fragments[rnd.Intn(len(fragments))])
		}
		probes = append(probes, b.String())
	}
	for _, charset := range []string{"utf8mb4", "utf8", "ascii", "binary"} {
		if !safeCharsets[strings.ToUpper(charset)] {
			t.Fatalf("%s is not a character set the checker allows", charset)
		}
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "SET NAMES "+charset); err != nil {
			t.Fatal(err)
		}
		for _, q := range probes {
			agree(t, c, charset, q)
		}
		c.Close()
	}
}

// TestLexDashComment: the byte after "--" decides, as MariaDB decides it (TestLexAgreesWithMariaDB
// checks the rule against the server): 0x01-0x20 and DEL start a comment, NUL and non-ASCII bytes
// are refused, every other byte does not.
func TestLexDashComment(t *testing.T) {
	for b := 0; b < 256; b++ {
		if b == '\n' {
			continue // ends the comment it starts: nothing to see
		}
		q := "SELECT 1 --" + string([]byte{byte(b)})
		if b == '\'' || b == '"' || b == '`' {
			q += string([]byte{byte(b)}) // close what it opens
		}
		lr, err := lex(q + "x")
		comment := err == nil && len(lr.toks) == 2
		switch {
		case b == 0 || b >= 0x80:
			if err == nil {
				t.Errorf("byte 0x%02x after --: accepted, want refused", b)
			}
		case b <= 0x20 || b == 0x7f:
			if !comment {
				t.Errorf("byte 0x%02x after --: not a comment (err %v), want one", b, err)
			}
		default:
			if err != nil || comment {
				t.Errorf("byte 0x%02x after --: a comment (err %v), want none", b, err)
			}
		}
	}
}
