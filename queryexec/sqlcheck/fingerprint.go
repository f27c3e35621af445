package sqlcheck

import (
	"slices"
	"strings"

	"github.com/clouddbmanager/clouddb/domain"
)

// This file holds what the query history records of a statement besides its outcome: a
// fingerprint that groups statements differing only in literals, and the statement's text with
// its secrets taken out. Both work on the tokens of lex, made tolerant: the contents of
// executable comments (/*! ... */, /*M! ... */) are read as the code MySQL runs, and an
// unterminated string, identifier or comment at the end is taken as running to the end of the
// text, so neither function ever fails and no secret escapes through a syntax error.

// scan returns the tokens of sql as described above, with offsets into sql.
func scan(sql string) []token {
	return scanRange(sql, 0, len(sql), false)
}

// scanRange lexes sql[from:to]; nested is true inside an executable comment (whose own comments
// are plain comments).
func scanRange(sql string, from, to int, nested bool) []token {
	part := sql[from:to]
	lr, err := lex(part)
	out := make([]token, 0, len(lr.toks)+1)
	// gap walks whitespace and comments in part[i:limit], lexing the insides of executable
	// comments, and returns where something else starts (limit when nothing does).
	gap := func(i, limit int) int {
		for i < limit {
			c := part[i]
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
				i++
			case c == '#' || (c == '-' && i+1 < limit && part[i+1] == '-' && (i+2 == limit || part[i+2] <= ' ')):
				for i < limit && part[i] != '\n' {
					i++
				}
			case c == '/' && i+1 < limit && part[i+1] == '*':
				end := strings.Index(part[i+2:limit], "*/")
				closeAt, next := limit, limit
				if end >= 0 {
					closeAt = i + 2 + end
					next = closeAt + 2
				}
				if inner := execCommentBody(part, i, closeAt); inner >= 0 && !nested {
					out = append(out, scanRange(sql, from+inner, from+closeAt, true)...)
				}
				i = next
			default:
				return i
			}
		}
		return limit
	}
	prev := 0
	for _, t := range lr.toks {
		gap(prev, t.start)
		prev = t.end
		t.start += from
		t.end += from
		out = append(out, t)
	}
	if err == nil {
		gap(prev, len(part))
		return out
	}
	// lex stopped at an unterminated string, quoted identifier, variable name or comment (the
	// comment is handled by gap): take it to the end.
	i := gap(prev, len(part))
	if i >= len(part) {
		return out
	}
	switch c := part[i]; c {
	case '\'', '"':
		out = append(out, token{kind: tkString, start: from + i, end: to})
	case '`':
		out = append(out, token{kind: tkQuoted, start: from + i, end: to, up: strings.ReplaceAll(part[i+1:], "``", "`")})
	case '@':
		out = append(out, token{kind: tkVar, start: from + i, end: to, up: strings.ToUpper(part[i:])})
	}
	return out
}

// execCommentBody returns where the code of the executable comment opening at s[at] (and closing
// at closeAt) starts, after "/*!" or "/*M!" and a version number; -1 for another comment.
func execCommentBody(s string, at, closeAt int) int {
	i := at + 2
	switch {
	case i < closeAt && s[i] == '!':
		i++
	case i+1 < closeAt && (s[i] == 'M' || s[i] == 'm') && s[i+1] == '!':
		i += 2
	default:
		return -1
	}
	digits := 0
	for i+digits < closeAt && digits < 6 && isDigit(s[i+digits]) {
		digits++
	}
	if digits >= 5 {
		i += digits
	}
	return i
}

// numericLiteral reports whether s (a tkNumber token) is a number rather than an identifier that
// starts with a digit, and whether it ends in an exponent marker waiting for a sign ("1.5e" of
// "1.5e-3", which lex splits at the sign).
func numericLiteral(s string) (ok, openExponent bool) {
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X' || s[1] == 'b' || s[1] == 'B') {
		hex := s[1] == 'x' || s[1] == 'X'
		for i := 2; i < len(s); i++ {
			c := s[i]
			if !(c == '0' || c == '1' || hex && (isDigit(c) || (c|0x20) >= 'a' && (c|0x20) <= 'f')) {
				return false, false
			}
		}
		return true, false
	}
	i, digits := 0, 0
	for i < len(s) && isDigit(s[i]) {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return false, false
	}
	if i == len(s) {
		return true, false
	}
	if s[i] != 'e' && s[i] != 'E' {
		return false, false
	}
	i++
	if i == len(s) {
		return false, true
	}
	for ; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false, false
		}
	}
	return true, false
}

// allDigits reports whether s is a non-empty run of decimal digits.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// introducer reports whether the word token t makes the string token after it one literal:
// X'..', B'..', N'..' (adjacent) and character set introducers such as _utf8mb4'..'.
func introducer(t, next token) bool {
	if t.kind != tkWord || next.kind != tkString {
		return false
	}
	switch t.up {
	case "X", "B", "N":
		return t.end == next.start
	}
	return charsetIntroducers[t.up]
}

var charsetIntroducers = wordSet(`_ARMSCII8 _ASCII _BIG5 _BINARY _CP1250 _CP1251 _CP1256 _CP1257 _CP850 _CP852
	_CP866 _CP932 _DEC8 _EUCJPMS _EUCKR _GB18030 _GB2312 _GBK _GEOSTD8 _GREEK _HEBREW _HP8 _KEYBCS2 _KOI8R
	_KOI8U _LATIN1 _LATIN2 _LATIN5 _LATIN7 _MACCE _MACROMAN _SJIS _SWE7 _TIS620 _UCS2 _UJIS _UTF16 _UTF16LE
	_UTF32 _UTF8 _UTF8MB3 _UTF8MB4`)

func wordSet(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// keywords are upper-cased wherever they appear: MySQL's and MariaDB's reserved words and the
// non-reserved words that shape statements (SHOW objects, transactions, table options) but are
// seldom names. Other words are identifiers and kept as written; so are non-reserved words that
// are common column names (date, time, text, value, comment, start, ...) unless a '(' follows
// (see functions).
var keywords = wordSet(`ACCESSIBLE ADD ALL ALTER ANALYZE AND AS ASC ASENSITIVE BEFORE BETWEEN BIGINT
	BINARY BLOB BOTH BY CALL CASCADE CASE CHANGE CHAR CHARACTER CHECK COLLATE COLUMN CONDITION
	CONSTRAINT CONTINUE CONVERT CREATE CROSS CUBE CURRENT_DATE CURRENT_ROLE CURRENT_TIME
	CURRENT_TIMESTAMP CURRENT_USER CURSOR DATABASE DATABASES DAY_HOUR DAY_MICROSECOND DAY_MINUTE
	DAY_SECOND DEC DECIMAL DECLARE DEFAULT DELAYED DELETE DELETE_DOMAIN_ID DESC DESCRIBE DETERMINISTIC
	DISTINCT DISTINCTROW DIV DO_DOMAIN_IDS DOUBLE DROP DUAL EACH ELSE ELSEIF ENCLOSED ESCAPED EXCEPT
	EXISTS EXIT EXPLAIN FALSE FETCH FLOAT FLOAT4 FLOAT8 FOR FORCE FOREIGN FROM FULLTEXT FUNCTION
	GENERATED GET GRANT GROUP GROUPING HAVING HIGH_PRIORITY HOUR_MICROSECOND HOUR_MINUTE HOUR_SECOND IF
	IGNORE IGNORE_DOMAIN_IDS IN INDEX INFILE INNER INOUT INSENSITIVE INSERT INT INT1 INT2 INT3 INT4 INT8
	INTEGER INTERSECT INTERVAL INTO IS ITERATE JOIN JSON_TABLE KEY KEYS KILL LATERAL LEADING LEAVE
	LEFT LIKE LIMIT LINEAR LINES LOAD LOCALTIME LOCALTIMESTAMP LOCK LONG LONGBLOB LONGTEXT LOOP
	LOW_PRIORITY MASTER_BIND MASTER_SSL_VERIFY_SERVER_CERT MATCH MAXVALUE MEDIUMBLOB MEDIUMINT
	MEDIUMTEXT MIDDLEINT MINUTE_MICROSECOND MINUTE_SECOND MOD MODIFIES NATURAL NOT NO_WRITE_TO_BINLOG
	NULL NUMERIC OF OFFSET ON OPTIMIZE OPTION OPTIONALLY OR ORDER OUT OUTER OUTFILE OVER PAGE_CHECKSUM
	PARSE_VCOL_EXPR PARTITION PRECISION PRIMARY PROCEDURE PURGE RANGE READ READS READ_WRITE REAL
	RECURSIVE REF_SYSTEM_ID REFERENCES REGEXP RELEASE RENAME REPEAT REPLACE REQUIRE RESIGNAL RESTRICT
	RETURN RETURNING REVOKE RIGHT RLIKE ROW ROWS SCHEMA SCHEMAS SECOND_MICROSECOND SELECT SENSITIVE
	SEPARATOR SET SHOW SIGNAL SLOW SMALLINT SPATIAL SPECIFIC SQL SQLEXCEPTION SQLSTATE SQLWARNING
	SQL_BIG_RESULT SQL_CALC_FOUND_ROWS SQL_SMALL_RESULT SSL STARTING STATS_AUTO_RECALC
	STATS_PERSISTENT STATS_SAMPLE_PAGES STORED STRAIGHT_JOIN TABLE TERMINATED THEN TINYBLOB TINYINT
	TINYTEXT TO TRAILING TRIGGER TRUE UNDO UNION UNIQUE UNLOCK UNSIGNED UPDATE USAGE USE USING UTC_DATE
	UTC_TIME UTC_TIMESTAMP VALUES VARBINARY VARCHAR VARCHARACTER VARYING VIRTUAL WHEN WHERE WHILE
	WINDOW WITH WRITE XOR YEAR_MONTH ZEROFILL
	AFTER AGAINST ALGORITHM ANY AUTO_INCREMENT AVG_ROW_LENGTH BEGIN BTREE CASCADED CHARSET CHECKSUM
	COLLATION COLUMNS COMMIT COMMITTED CONSISTENT DEFINER DISABLE DO DUPLICATE ENABLE END ENGINE ENGINES
	ESCAPE EVENTS EXTENDED FIELDS FOLLOWING FULL GLOBAL IDENTIFIED INDEXES INVOKER ISOLATION
	KEY_BLOCK_SIZE LESS LOCKED NAMES NOWAIT ONLY PARTIAL PARTITIONS PRECEDING QUICK REPEATABLE ROLLBACK
	ROW_FORMAT SAVEPOINT SERIALIZABLE SESSION SHARE SIGNED SKIP SNAPSHOT SQL_BUFFER_RESULT SQL_CACHE
	SQL_NO_CACHE TABLES TEMPORARY TEMPTABLE THAN TRANSACTION TRIGGERS TRUNCATE UNBOUNDED UNCOMMITTED
	UNDEFINED VARIABLES VIEW WARNINGS WORK`)

// functions are built-in functions: upper-cased when a '(' follows, and written without a space
// before it, like type names with a length and the keywords that double as functions (IF, LEFT,
// REPLACE, ...). Every other keyword is followed by a space.
var functions = wordSet(`ABS ACOS AES_DECRYPT AES_ENCRYPT ANY_VALUE ASCII ASIN ATAN ATAN2 AVG BENCHMARK
	BIN BIT_AND BIT_COUNT BIT_LENGTH BIT_OR BIT_XOR CAST CEIL CEILING CHAR_LENGTH CHARACTER_LENGTH
	COALESCE COERCIBILITY CONCAT CONCAT_WS CONNECTION_ID CONV CONVERT_TZ COS COT COUNT CRC32 CUME_DIST
	CURDATE CURTIME DATE_ADD DATE_FORMAT DATE_SUB DATEDIFF DAY DAYNAME DAYOFMONTH DAYOFWEEK DAYOFYEAR
	DECODE DEGREES DENSE_RANK DES_DECRYPT DES_ENCRYPT ELT ENCODE ENCRYPT EXP EXPORT_SET EXTRACT FIELD
	FIND_IN_SET FIRST_VALUE FLOOR FORMAT FOUND_ROWS FROM_BASE64 FROM_DAYS FROM_UNIXTIME GREATEST
	GROUP_CONCAT HEX HOUR IFNULL INET_ATON INET_NTOA INSTR ISNULL JSON_ARRAY JSON_ARRAYAGG
	JSON_CONTAINS JSON_CONTAINS_PATH JSON_EXTRACT JSON_KEYS JSON_LENGTH JSON_OBJECT JSON_OBJECTAGG
	JSON_QUOTE JSON_REMOVE JSON_SET JSON_TYPE JSON_UNQUOTE JSON_VALID JSON_VALUE LAG LAST_DAY
	LAST_INSERT_ID LAST_VALUE LCASE LEAD LEAST LENGTH LN LOCATE LOG LOG10 LOG2 LOWER LPAD LTRIM MAKEDATE
	MAKETIME MAX MD5 MICROSECOND MID MIN MINUTE MONTH MONTHNAME NOW NTH_VALUE NTILE NULLIF OCT
	OCTET_LENGTH OLD_PASSWORD ORD PASSWORD PERCENT_RANK PERIOD_ADD PERIOD_DIFF PI POSITION POW POWER
	QUARTER QUOTE RADIANS RAND RANK REGEXP_INSTR REGEXP_LIKE REGEXP_REPLACE REGEXP_SUBSTR REVERSE ROUND
	ROW_COUNT ROW_NUMBER RPAD RTRIM SEC_TO_TIME SECOND SHA SHA1 SHA2 SIGN SIN SLEEP SOUNDEX SPACE SQRT
	STD STDDEV STDDEV_POP STDDEV_SAMP STR_TO_DATE STRCMP SUBDATE SUBSTR SUBSTRING SUBSTRING_INDEX SUM
	SYSDATE TAN TIME_FORMAT TIME_TO_SEC TIMEDIFF TIMESTAMPADD TIMESTAMPDIFF TO_BASE64 TO_DAYS
	TO_SECONDS TRIM TRUNCATE UCASE UNCOMPRESS UNHEX UNIX_TIMESTAMP UPPER USER UUID UUID_SHORT VAR_POP
	VAR_SAMP VARIANCE VERSION WEEK WEEKDAY WEEKOFYEAR YEAR YEARWEEK
	IF LEFT RIGHT CHAR INSERT REPLACE REPEAT MOD DATABASE SCHEMA CONVERT ROW EXISTS
	CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURRENT_ROLE LOCALTIME LOCALTIMESTAMP
	UTC_DATE UTC_TIME UTC_TIMESTAMP DATE TIME TIMESTAMP DATETIME
	BIGINT BINARY BIT CHARACTER DEC DECIMAL DOUBLE ENUM FLOAT INT INTEGER MEDIUMINT NUMERIC REAL SET
	SMALLINT TINYINT VARBINARY VARCHAR`)

// valueKeywords end an operand, so a '-' after them is binary.
var valueKeywords = wordSet(`NULL TRUE FALSE END CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER
	CURRENT_ROLE LOCALTIME LOCALTIMESTAMP UTC_DATE UTC_TIME UTC_TIMESTAMP`)

// operators are the punctuation sequences that make one operator when written together.
var operators = []string{"<=>", "->>", "<=", ">=", "<>", "!=", ":=", "||", "&&", "<<", ">>", "->"}

type itemKind uint8

const (
	itKeyword itemKind = iota // upper-cased keyword or function name
	itIdent                   // identifier, variable: as written
	itLiteral                 // ?
	itOpen                    // (
	itClose                   // )
	itComma                   // ,
	itDot                     // .
	itSemi                    // ;
	itOp                      // any other punctuation or operator
)

type item struct {
	kind itemKind
	text string
}

// Fingerprint normalises a statement for grouping: comments removed (the code in executable
// comments kept), string and numeric literals (with their sign, X'..', _charset'..') replaced by
// ?, IN (?, ?, ...) lists collapsed to IN (?+), a VALUES list of rows that are all alike collapsed
// to one row, whitespace made canonical (one space between tokens, none inside parentheses, before
// commas or around dots, none between a function and its '('), trailing semicolons dropped,
// keywords and built-in functions upper-cased, identifiers kept as written. Lexical errors give a
// best effort (an unterminated string is one more ?); it never panics. The result has at most
// domain.MaxRecordedSQL bytes.
func Fingerprint(sql string) string {
	toks := scan(sql)
	items := make([]item, 0, len(toks))
	lastWasString := false
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		text := sql[t.start:t.end]
		isString := false
		switch t.kind {
		case tkString:
			isString = true
			if lastWasString {
				break // 'a' 'b' is one literal
			}
			items = append(items, item{itLiteral, "?"})
		case tkNumber:
			ok, open := numericLiteral(text)
			switch {
			case open && i+2 < len(toks) && toks[i+1].kind == tkPunct && (toks[i+1].ch == '-' || toks[i+1].ch == '+') &&
				toks[i+1].start == t.end && toks[i+2].start == toks[i+1].end && toks[i+2].kind == tkNumber &&
				allDigits(sql[toks[i+2].start:toks[i+2].end]):
				items = append(items, item{itLiteral, "?"})
				i += 2
			case ok:
				items = append(items, item{itLiteral, "?"})
			default:
				items = append(items, item{itIdent, text})
			}
		case tkWord:
			switch {
			case i+1 < len(toks) && introducer(t, toks[i+1]):
				items = append(items, item{itLiteral, "?"})
				i++
				isString = true
			case keywords[t.up] || (functions[t.up] || t.up == "VALUE") && i+1 < len(toks) && toks[i+1].kind == tkPunct && toks[i+1].ch == '(':
				items = append(items, item{itKeyword, t.up})
			default:
				items = append(items, item{itIdent, text})
			}
		case tkQuoted, tkVar:
			items = append(items, item{itIdent, text})
		case tkPunct:
			op := string(t.ch)
			for _, o := range operators {
				if operatorAt(toks, i, o) {
					op = o
					i += len(o) - 1
					break
				}
			}
			switch {
			case op == "(":
				items = append(items, item{itOpen, op})
			case op == ")":
				items = append(items, item{itClose, op})
			case op == ",":
				items = append(items, item{itComma, op})
			case op == ".":
				items = append(items, item{itDot, op})
			case op == ";":
				items = append(items, item{itSemi, op})
			case op == "?":
				items = append(items, item{itLiteral, op})
			case (op == "-" || op == "+") && unaryPosition(items) && i+1 < len(toks) && toks[i+1].kind == tkNumber:
				if ok, _ := numericLiteral(sql[toks[i+1].start:toks[i+1].end]); ok {
					items = append(items, item{itLiteral, "?"})
					i++
					break
				}
				items = append(items, item{itOp, op})
			default:
				items = append(items, item{itOp, op})
			}
		}
		lastWasString = isString
	}
	for len(items) > 0 && items[len(items)-1].kind == itSemi {
		items = items[:len(items)-1]
	}
	items = collapseLists(items)
	out, _ := domain.RecordedSQL(render(items))
	return out
}

// operatorAt reports whether the punctuation tokens from toks[i] spell op, written together.
func operatorAt(toks []token, i int, op string) bool {
	if i+len(op) > len(toks) {
		return false
	}
	for j := 0; j < len(op); j++ {
		t := toks[i+j]
		if t.kind != tkPunct || t.ch != op[j] || (j > 0 && t.start != toks[i+j-1].end) {
			return false
		}
	}
	return true
}

// unaryPosition reports whether a sign after items starts an operand.
func unaryPosition(items []item) bool {
	if len(items) == 0 {
		return true
	}
	switch last := items[len(items)-1]; last.kind {
	case itLiteral, itIdent, itClose:
		return false
	case itKeyword:
		return !valueKeywords[last.text]
	}
	return true
}

// collapseLists collapses IN lists of literals to IN (?+) and top-level VALUES lists of identical
// rows to their first row. It takes time linear in len(items).
func collapseLists(items []item) []item {
	match := matchingParens(items)
	out := make([]item, 0, len(items))
	depth := 0
	for i := 0; i < len(items); i++ {
		it := items[i]
		out = append(out, it)
		switch it.kind {
		case itOpen:
			depth++
		case itClose:
			depth = max(depth-1, 0)
		}
		if it.kind != itKeyword || i+1 >= len(items) || items[i+1].kind != itOpen {
			continue
		}
		switch {
		case it.text == "IN":
			j := i + 2
			for j < len(items) && items[j].kind == itLiteral {
				if j+1 < len(items) && items[j+1].kind == itComma {
					j += 2
					continue
				}
				j++
				break
			}
			if j > i+2 && j < len(items) && items[j].kind == itClose && items[j-1].kind == itLiteral {
				out = append(out, item{itOpen, "("}, item{itLiteral, "?+"}, item{itClose, ")"})
				i = j
			}
		case (it.text == "VALUES" || it.text == "VALUE") && depth == 0:
			first := match[i+1]
			if first < 0 {
				continue
			}
			row := items[i+1 : first+1]
			end, rows := first, 1
			for end+2 < len(items) && items[end+1].kind == itComma && items[end+2].kind == itOpen {
				next := match[end+2]
				if next < 0 || !slices.Equal(items[end+2:next+1], row) {
					break
				}
				end, rows = next, rows+1
			}
			if rows > 1 && (end+1 == len(items) || items[end+1].kind != itComma) {
				out = append(out, row...)
				i = end
			}
		}
	}
	return out
}

// matchingParens maps the index of each '(' in items to that of its ')', -1 when unclosed.
func matchingParens(items []item) []int {
	match := make([]int, len(items))
	var open []int
	for i, it := range items {
		match[i] = -1
		switch it.kind {
		case itOpen:
			open = append(open, i)
		case itClose:
			if len(open) > 0 {
				match[open[len(open)-1]] = i
				open = open[:len(open)-1]
			}
		}
	}
	return match
}

// render writes items with canonical spacing.
func render(items []item) string {
	var b strings.Builder
	for i, it := range items {
		if i > 0 && spaced(items[i-1], it) {
			b.WriteByte(' ')
		}
		b.WriteString(it.text)
	}
	return b.String()
}

func spaced(prev, cur item) bool {
	switch {
	case cur.kind == itClose || cur.kind == itComma || cur.kind == itSemi || cur.kind == itDot:
		return false
	case prev.kind == itOpen || prev.kind == itDot:
		return false
	case cur.kind == itOpen:
		return !(prev.kind == itIdent || prev.kind == itKeyword && functions[prev.text])
	}
	return true
}

// keyFunctions are the functions whose arguments from the given index on are secrets: passwords
// and encryption keys.
var keyFunctions = map[string]int{
	"PASSWORD": 0, "OLD_PASSWORD": 0, "ENCRYPT": 0,
	"AES_ENCRYPT": 1, "AES_DECRYPT": 1, "DES_ENCRYPT": 1, "DES_DECRYPT": 1, "ENCODE": 1, "DECODE": 1,
}

// RedactSecrets replaces the secret literals of sql with '***' and leaves every other byte as it
// was: passwords after IDENTIFIED [WITH plugin] BY/AS, IDENTIFIED VIA plugin USING, REPLACE
// 'current' and BY PASSWORD 'hash' (CREATE/ALTER USER, GRANT), SET PASSWORD ... = '...',
// PASSWORD('...') and OLD_PASSWORD('...'), PASSWORD/MASTER_PASSWORD/SOURCE_PASSWORD options
// (CHANGE MASTER, START SLAVE, CREATE SERVER), the key arguments of AES_ENCRYPT/AES_DECRYPT,
// DES_ENCRYPT/DES_DECRYPT, ENCODE/DECODE and the arguments of ENCRYPT. It reads the text as MySQL
// would (strings, quoted identifiers and comments are not code; executable comments are), and an
// unterminated string in a secret's place is redacted to the end. A secret literal keeps its
// quote character ('***' or "***"); a numeric one becomes '***'.
func RedactSecrets(sql string) string {
	toks := scan(sql)
	redact := make([]bool, len(toks))
	found := false
	mark := func(j int) {
		redact[j], found = true, true
	}
	// markLiteral marks the literal starting at toks[j] (after an optional '='): strings (with
	// their introducer and the strings written after them), or a number.
	markLiteral := func(j int) {
		if j < len(toks) && toks[j].kind == tkPunct && toks[j].ch == '=' {
			j++
		}
		if j+1 < len(toks) && introducer(toks[j], toks[j+1]) {
			j++
		}
		if j >= len(toks) {
			return
		}
		if toks[j].kind == tkNumber {
			mark(j)
			return
		}
		for ; j < len(toks) && toks[j].kind == tkString; j++ {
			mark(j)
		}
	}
	type call struct {
		depth, arg, secretFrom int
	}
	var (
		calls       []call // the key functions whose parentheses are open
		secretCalls int    // how many of them are in a secret argument
		depth       int
		verb        string // the first word of the statement
		auth        bool   // after IDENTIFIED in this statement
		setPassword bool   // in SET PASSWORD, after its '='
		atStart     = true
	)
	for i, t := range toks {
		if (setPassword || secretCalls > 0) && (t.kind == tkString || t.kind == tkNumber) {
			mark(i)
		}
		startsStatement := atStart
		atStart = false
		switch t.kind {
		case tkPunct:
			switch t.ch {
			case '(':
				depth++
			case ')':
				if n := len(calls); n > 0 && calls[n-1].depth == depth {
					if calls[n-1].arg >= calls[n-1].secretFrom {
						secretCalls--
					}
					calls = calls[:n-1]
				}
				depth = max(depth-1, 0)
			case ',':
				if n := len(calls); n > 0 && calls[n-1].depth == depth {
					if calls[n-1].arg++; calls[n-1].arg == calls[n-1].secretFrom {
						secretCalls++
					}
				}
			case ';':
				calls, secretCalls, depth, verb, auth, setPassword, atStart = nil, 0, 0, "", false, false, true
			case '=':
				if verb == "SET PASSWORD" {
					setPassword = true
				}
			}
		case tkWord:
			if startsStatement || verb == "" {
				verb = t.up
			}
			next := i + 1
			callNext := next < len(toks) && toks[next].kind == tkPunct && toks[next].ch == '('
			secretFrom, keyFunction := keyFunctions[t.up]
			switch {
			case callNext && keyFunction:
				calls = append(calls, call{depth: depth + 1, secretFrom: secretFrom})
				if secretFrom == 0 {
					secretCalls++
				}
			case t.up == "IDENTIFIED":
				auth = true
			case auth && (t.up == "BY" || t.up == "AS" || t.up == "USING" || t.up == "REPLACE" || t.up == "PASSWORD"):
				markLiteral(next)
			case t.up == "MASTER_PASSWORD" || t.up == "SOURCE_PASSWORD":
				markLiteral(next)
			case t.up == "PASSWORD" && !callNext:
				switch verb {
				case "SET":
					if i > 0 && toks[i-1].kind == tkWord && toks[i-1].up == "SET" {
						verb = "SET PASSWORD"
					}
				case "CHANGE", "START", "CREATE", "ALTER", "GRANT":
					markLiteral(next)
				}
			case t.up == "BEGIN" || t.up == "THEN" || t.up == "ELSE" || t.up == "DO":
				atStart = true // a statement of a routine body follows
			}
		}
	}
	if !found {
		return sql
	}
	var b strings.Builder
	b.Grow(len(sql))
	last := 0
	for i, t := range toks {
		if !redact[i] {
			continue
		}
		b.WriteString(sql[last:t.start])
		if q := sql[t.start]; t.kind == tkString && (q == '\'' || q == '"') {
			b.WriteByte(q)
			b.WriteString("***")
			b.WriteByte(q)
		} else {
			b.WriteString("'***'")
		}
		last = t.end
	}
	b.WriteString(sql[last:])
	return b.String()
}
