package queryexec

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// Position is where in the SQL text something is: Line and Column 1-based, Offset 0-based; Column
// and Offset count characters (runes), not bytes.
type Position struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Offset int `json:"offset"`
}

// QueryError is a statement the database rejected, explained for people.
type QueryError struct {
	MySQLCode   uint16    // e.g. 1146
	SQLState    string    // e.g. "42S02"; "" when the server sent none
	Message     string    // MySQL's own message, with the physical schema shown as the database's name and account names as "your account"
	Explanation string    // one short sentence in plain words, for common codes ("" otherwise)
	Hint        string    // what to try, for common codes ("" otherwise)
	Position    *Position // syntax errors, where known
}

// Error returns the message in the driver's format: "Error 1146 (42S02): Table 'mydb.t' doesn't exist".
func (e *QueryError) Error() string {
	if e.SQLState == "" {
		return fmt.Sprintf("Error %d: %s", e.MySQLCode, e.Message)
	}
	return fmt.Sprintf("Error %d (%s): %s", e.MySQLCode, e.SQLState, e.Message)
}

// Syntax reports whether MySQL refused the text as a syntax error (1064 ER_PARSE_ERROR, 1149
// ER_SYNTAX_ERROR).
func (e *QueryError) Syntax() bool { return e.MySQLCode == 1064 || e.MySQLCode == 1149 }

// MySQL error numbers this file knows by name.
const (
	erParseError        = 1064
	erSyntaxError       = 1149
	erQueryInterrupted  = 1317 // "Query execution was interrupted" (KILL QUERY)
	erStatementTimeout  = 1969 // MariaDB: "Query execution was interrupted (max_statement_time exceeded)"
	erMaxExecutionTime  = 3024 // MySQL: "Query execution was interrupted, maximum statement execution time exceeded"
	erLockWaitTimeout   = 1205
	erDeadlock          = 1213
	erAccessTable       = 1142
	erAccessColumn      = 1143
	erAccessDatabase    = 1044
	erSpecificAccess    = 1227
	erNoSuchTable       = 1146
	erBadField          = 1054
	erDupEntry          = 1062
	erRowIsReferenced   = 1451
	erNoReferencedRow   = 1452
	erBadNull           = 1048
	erDataTooLong       = 1406
	erOutOfRange        = 1264
	erIncorrectValue    = 1366
	erTruncatedWrong    = 1292
	erWrongValueCount   = 1136
	erTableExists       = 1050
	erBadTable          = 1051
	erCantDropField     = 1091
	erNonUniqTable      = 1066
	erNonUniqField      = 1052
	erSpDoesNotExist    = 1305
	erSubqueryRows      = 1242
	erUnionColumns      = 1222
	erNoDefault         = 1364
	erDupFieldName      = 1060
	erDupKeyName        = 1061
	erCantCreateTable   = 1005
	erTruncateReference = 1701
	erDerivedAlias      = 1248
	erInvalidGroupFunc  = 1111
	erUpdateTargetFrom  = 1093
	erDivisionByZero    = 1365
)

// IsTimeout reports whether err (a *mysql.MySQLError or a *QueryError, possibly wrapped) is a
// statement stopped by the server: MariaDB's max_statement_time (1969), MySQL's
// max_execution_time (3024) or an interrupted query (1317) — or the context deadline expired.
func IsTimeout(err error) bool {
	if err == nil {
		return false
	}
	var code uint16
	var me *mysql.MySQLError
	var qe *QueryError
	switch {
	case errors.As(err, &me):
		code = me.Number
	case errors.As(err, &qe):
		code = qe.MySQLCode
	default:
		return errors.Is(err, context.DeadlineExceeded)
	}
	return code == erStatementTimeout || code == erMaxExecutionTime || code == erQueryInterrupted
}

// TranslateError turns a *mysql.MySQLError (possibly wrapped) from running sql into a
// *QueryError; other errors are returned unchanged. schema is the physical schema name and
// display the database's name as its users know it: MySQL messages like "Table
// 'cdb_0123abcd.t' doesn't exist" read "Table 'mydb.t' doesn't exist", and account names
// ('cdb_..._rw'@'%') read "your account". The *QueryError does not wrap the driver's error,
// whose message still holds the physical names.
//
// For syntax errors (1064) Position locates MySQL's "near '...' at line N" in sql. sql should be
// the text as the user wrote it; a prefix added on the same line before sending (such as
// "SET STATEMENT max_statement_time=... FOR ") does not disturb the position.
func TranslateError(err error, sql, schema, display string) error {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return err
	}
	qe := &QueryError{MySQLCode: me.Number, Message: cleanMessage(me.Message, schema, display)}
	if me.SQLState != [5]byte{} {
		qe.SQLState = string(me.SQLState[:])
	}
	if ex, ok := explanations[me.Number]; ok {
		qe.Explanation, qe.Hint = ex[0], ex[1]
	}
	if me.Number == erParseError {
		if pos, atEnd, ok := syntaxPosition(sql, me.Message); ok {
			qe.Position = &pos
			if atEnd {
				qe.Explanation = "The statement ends before it is complete."
				qe.Hint = "Something is missing at the end, such as a table name, a value, a closing parenthesis or the rest of a clause."
			}
		}
	}
	return qe
}

// PositionAt converts a 0-based byte offset in sql to a Position. Line breaks are "\n", "\r\n"
// (one break) and a lone "\r". An offset inside a multi-byte character is moved back to its
// first byte; offsets outside sql are clamped to its start or end.
func PositionAt(sql string, byteOffset int) Position {
	byteOffset = max(0, min(byteOffset, len(sql)))
	for byteOffset > 0 && byteOffset < len(sql) && !utf8.RuneStart(sql[byteOffset]) {
		byteOffset--
	}
	p := Position{Line: 1, Column: 1}
	for i, r := range sql[:byteOffset] {
		p.Offset++
		switch {
		case r == '\n', r == '\r' && (i+1 >= len(sql) || sql[i+1] != '\n'):
			p.Line++
			p.Column = 1
		default:
			p.Column++
		}
	}
	return p
}

// accountPattern matches MySQL account names in messages: "user 'name'@'host'" or 'name'@'host'
// (either quote style).
var accountPattern = regexp.MustCompile("(?:\\buser )?(?:'[^']*'|`[^`]*`)@(?:'[^']*'|`[^`]*`)")

// cleanMessage hides the physical names in a MySQL message: accounts become "your account", and
// the schema name (as a whole identifier, any case) becomes display.
func cleanMessage(msg, schema, display string) string {
	msg = accountPattern.ReplaceAllString(msg, "your account")
	if schema == "" {
		return msg
	}
	lower, lowerSchema := strings.ToLower(msg), strings.ToLower(schema)
	if len(lower) != len(msg) || len(lowerSchema) != len(schema) {
		lower, lowerSchema = msg, schema // case folding changed lengths: match exactly
	}
	var b strings.Builder
	last := 0
	for i := 0; i+len(schema) <= len(msg); {
		j := strings.Index(lower[i:], lowerSchema)
		if j < 0 {
			break
		}
		at, end := i+j, i+j+len(schema)
		if (at == 0 || !isIdentByte(msg[at-1])) && (end == len(msg) || !isIdentByte(msg[end])) {
			b.WriteString(msg[last:at])
			b.WriteString(display)
			last = end
			i = end
			continue
		}
		i = at + 1
	}
	if last == 0 {
		return msg
	}
	b.WriteString(msg[last:])
	return b.String()
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// nearPattern finds the "near '<text>' at line N" of a parse error. The text is not escaped,
// so the greedy (.*) runs to the last "' at line N" at the end of the message.
var nearPattern = regexp.MustCompile(`(?s)near '(.*)' at line (\d+)\s*$`)

// syntaxPosition locates the near-text of a 1064 message in sql.
//
// The server drops leading whitespace and trailing whitespace and ';' before parsing. The
// near-text is the rest of the statement from the error point, converted to utf8mb3 on MariaDB
// (so a 4-byte character such as an emoji reads '?') and, when longer than 80 bytes, cut to 77
// bytes followed by "..." (MariaDB) or to 80 (MySQL). An empty near-text means the statement
// ended too early: the position is then after its last token. Line N is the line the lexer was on (it does
// not count line breaks inside strings), so the error is at or after the start of line N.
func syntaxPosition(sql, msg string) (pos Position, atEnd, ok bool) {
	m := nearPattern.FindStringSubmatch(msg)
	if m == nil {
		return Position{}, false, false
	}
	near := m[1]
	line, err := strconv.Atoi(m[2])
	if err != nil || line < 1 {
		line = 1
	}
	end := len(sql)
	for end > 0 && (isSpaceByte(sql[end-1]) || sql[end-1] == ';') {
		end--
	}
	start := 0
	for start < end && isSpaceByte(sql[start]) {
		start++
	}
	body := sql[:end]
	if near == "" {
		return PositionAt(sql, sqlcheck.LastTokenEnd(sql[start:end])+start), true, true
	}
	// Not truncated: the near-text is exactly the rest of the statement.
	if off, ok := matchTail(body, near); ok && off >= start {
		return PositionAt(sql, off), false, true
	}
	// Truncated (or sent with text after it): the first occurrence at or after line N.
	tight := lineStart(sql, start, line) // lines counted from the first non-blank byte, as the server does
	loose := lineStart(sql, 0, line)     // lines counted from the start, for a prefix sent before sql
	pats := []string{near}
	if p, cut := strings.CutSuffix(near, "..."); cut && p != "" {
		pats = append(pats, p)
	}
	for _, p := range pats {
		if off := findNear(body, p, start, tight, loose); off >= 0 {
			return PositionAt(sql, off), false, true
		}
	}
	return Position{}, false, false
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// lineStart is the byte offset of the start of line n of sql counting from offset from (line 1
// starts at from), or len(sql) when sql has fewer lines. Only "\n" counts, as in MySQL's lexer.
func lineStart(sql string, from, n int) int {
	off := from
	for ; n > 1; n-- {
		i := strings.IndexByte(sql[off:], '\n')
		if i < 0 {
			return len(sql)
		}
		off += i + 1
	}
	return off
}

// nearRuneMatches reports whether a rune of MySQL's near-text stands for rune r of the statement:
// '?' also stands for a character the server's utf8mb3 could not show.
func nearRuneMatches(near, r rune) bool {
	return near == r || (near == '?' && (r > 0xFFFF || r == utf8.RuneError))
}

// matchTail returns the byte offset in s from which s's rest is near.
func matchTail(s, near string) (int, bool) {
	i, j := len(s), len(near)
	for j > 0 {
		if i == 0 {
			return 0, false
		}
		nr, nsize := utf8.DecodeLastRuneInString(near[:j])
		sr, ssize := utf8.DecodeLastRuneInString(s[:i])
		if !nearRuneMatches(nr, sr) {
			return 0, false
		}
		i, j = i-ssize, j-nsize
	}
	return i, true
}

// matchPrefix reports whether s starts with near.
func matchPrefix(s, near string) bool {
	i := 0
	for _, nr := range near {
		if i >= len(s) {
			return false
		}
		sr, size := utf8.DecodeRuneInString(s[i:])
		if !nearRuneMatches(nr, sr) {
			return false
		}
		i += size
	}
	return true
}

// findNear returns the byte offset in s (at or after from) of the first occurrence of near at or
// after tight, else at or after loose, else the last one; -1 when there is none.
func findNear(s, near string, from, tight, loose int) int {
	var offs []int
	lit, _, _ := strings.Cut(near, "?") // a literal part to jump between candidates
	for i := from; i <= len(s); {
		if lit != "" {
			j := strings.Index(s[i:], lit)
			if j < 0 {
				break
			}
			i += j
		}
		if matchPrefix(s[i:], near) {
			offs = append(offs, i)
		}
		if i == len(s) {
			break
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	if len(offs) == 0 {
		return -1
	}
	for _, bound := range []int{tight, loose} {
		for _, o := range offs {
			if o >= bound {
				return o
			}
		}
	}
	return offs[len(offs)-1]
}

// explanations are the explanation and hint of common MySQL errors.
var explanations = map[uint16][2]string{
	erParseError: {
		"MySQL could not understand the statement: its syntax is wrong at the marked position.",
		"Look for a misspelled keyword, a missing comma, quote or parenthesis, or a reserved word used as a name (quote names with backticks).",
	},
	erSyntaxError: {
		"MySQL could not understand the statement: its syntax is wrong.",
		"Look for a misspelled keyword, a missing comma, quote or parenthesis, or a reserved word used as a name (quote names with backticks).",
	},
	erNoSuchTable: {
		"The statement uses a table or view that does not exist in this database.",
		"Check the spelling and the case of the name (table names are case-sensitive); SHOW TABLES lists the tables.",
	},
	erBadField: {
		"The statement names a column that the tables it uses do not have.",
		"Check the spelling and the table alias before the dot, and quote text values with single quotes (double quotes or backticks make a name); DESCRIBE <table> lists the columns.",
	},
	erDupEntry: {
		"Another row already has this value in a column or index that must be unique.",
		"Use a different value, change the existing row instead, or use INSERT ... ON DUPLICATE KEY UPDATE.",
	},
	erRowIsReferenced: {
		"The row cannot be deleted or changed because rows of another table still refer to it through a foreign key.",
		"Delete or change the referring rows first, or define the foreign key with ON DELETE CASCADE or SET NULL.",
	},
	erNoReferencedRow: {
		"The value refers, through a foreign key, to a row that does not exist in the referenced table.",
		"Insert the referenced row first, or use a value that exists in the referenced table.",
	},
	erBadNull: {
		"A column that cannot be NULL was given NULL.",
		"Give the column a value, or change the column to allow NULL or to have a default.",
	},
	erDataTooLong: {
		"A value is longer than its column can hold.",
		"Shorten the value, or widen the column with ALTER TABLE ... MODIFY.",
	},
	erOutOfRange: {
		"A number is outside the range its column's type can hold.",
		"Use a value within the range, or a larger type such as BIGINT or DECIMAL.",
	},
	erIncorrectValue: {
		"A value does not fit the type of the column it is stored in.",
		"Check the value against the column's type (numbers without quotes or letters, dates as 'YYYY-MM-DD') and the order of the columns.",
	},
	erTruncatedWrong: {
		"A value could not be converted to the type it is stored as or compared with.",
		"Check the value's format (dates as 'YYYY-MM-DD', times as 'HH:MM:SS', numbers without letters) and compare columns with values of their own type.",
	},
	erWrongValueCount: {
		"The number of values does not match the number of columns.",
		"Name the columns and give one value for each: INSERT INTO t (a, b) VALUES (1, 2).",
	},
	erTableExists: {
		"A table or view with this name already exists.",
		"Choose another name, use CREATE TABLE IF NOT EXISTS, or drop the existing table first.",
	},
	erBadTable: {
		"The table to drop does not exist.",
		"Check the name, or use DROP TABLE IF EXISTS.",
	},
	erCantDropField: {
		"The column, index or key to drop does not exist.",
		"Check the name: SHOW CREATE TABLE <table> shows the table's columns and keys.",
	},
	erAccessTable: {
		"This statement needs a privilege your role's account for this database does not have.",
		"Only this database's own tables can be used, and viewers can only read; ask a tenant admin if you need more.",
	},
	erAccessColumn: {
		"This statement needs a privilege your role's account for this database does not have.",
		"Only this database's own tables can be used, and viewers can only read; ask a tenant admin if you need more.",
	},
	erAccessDatabase: {
		"This statement needs a privilege your role's account for this database does not have.",
		"Statements can only use this database, not other databases or the server's own.",
	},
	erSpecificAccess: {
		"This statement needs a privilege your role's account for this database does not have.",
		"Server administration and account management are not available through queries.",
	},
	erLockWaitTimeout: {
		"The statement waited too long for a row lock held by another transaction.",
		"Retry when the other transaction has finished; keep transactions short.",
	},
	erDeadlock: {
		"The statement ran into a deadlock with another transaction and was rolled back.",
		"Retry the statement (or the whole transaction if it was part of one).",
	},
	erStatementTimeout: {
		"The statement ran longer than the query time limit and was stopped.",
		"Make it faster (a narrower WHERE clause, an index, fewer rows), or ask a tenant admin to raise the query timeout.",
	},
	erMaxExecutionTime: {
		"The statement ran longer than the query time limit and was stopped.",
		"Make it faster (a narrower WHERE clause, an index, fewer rows), or ask a tenant admin to raise the query timeout.",
	},
	erQueryInterrupted: {
		"The statement was interrupted before it finished.",
		"Run it again; if it keeps happening, it is probably reaching the query time limit.",
	},
	erNonUniqTable: {
		"The same table name or alias is used twice in the statement.",
		"Give each use of the table its own alias: ... FROM t AS a JOIN t AS b ....",
	},
	erNonUniqField: {
		"A column name is ambiguous: more than one of the tables used has it.",
		"Put the table name or alias before the column: t.id.",
	},
	erSpDoesNotExist: {
		"The statement calls a procedure or function that does not exist.",
		"Check the name and the spelling; SHOW PROCEDURE STATUS and SHOW FUNCTION STATUS list the routines.",
	},
	erSubqueryRows: {
		"A subquery used as a single value returned more than one row.",
		"Make the subquery return one row (a narrower WHERE, LIMIT 1, an aggregate), or use IN instead of =.",
	},
	erUnionColumns: {
		"The SELECTs combined with UNION return different numbers of columns.",
		"Select the same number of columns in each part of the UNION.",
	},
	erNoDefault: {
		"A column without a default value was given no value.",
		"Give the column a value in the statement, or give the column a default.",
	},
	erDupFieldName: {
		"The table would have two columns with the same name.",
		"Choose another name for the new column.",
	},
	erDupKeyName: {
		"The table already has an index with this name.",
		"Choose another name for the index.",
	},
	erCantCreateTable: {
		"The table could not be created; the message says why (errno 150 means a foreign key is wrong).",
		"For a foreign key, check that the referenced table and column exist, are indexed and have exactly the same type.",
	},
	erTruncateReference: {
		"A table that other tables refer to through foreign keys cannot be truncated.",
		"Delete its rows with DELETE instead, or empty the referring tables first.",
	},
	erDerivedAlias: {
		"A subquery in FROM has no alias.",
		"Name every subquery in FROM: ... FROM (SELECT ...) AS sub.",
	},
	erInvalidGroupFunc: {
		"An aggregate function such as COUNT or SUM is used where it is not allowed.",
		"Filter on aggregates with HAVING instead of WHERE, and do not nest aggregate functions.",
	},
	erUpdateTargetFrom: {
		"The table being changed is also read in a subquery of the same statement.",
		"Wrap the subquery in a derived table (SELECT ... FROM (SELECT ...) AS x), or use a JOIN.",
	},
	erDivisionByZero: {
		"The statement divides by zero.",
		"Guard the divisor, for example with NULLIF(divisor, 0).",
	},
}
