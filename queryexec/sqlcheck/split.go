package sqlcheck

import "strings"

// tokKind is the kind of a lexical token of MySQL SQL.
type tokKind uint8

const (
	tkWord   tokKind = iota // keyword or unquoted identifier
	tkNumber                // numeric literal
	tkQuoted                // `backtick` identifier
	tkString                // 'single' or "double" quoted string
	tkVar                   // @user or @@system variable
	tkPunct                 // any other single byte
)

// token is one lexical token; start and end are byte offsets into the input.
type token struct {
	kind       tokKind
	start, end int
	up         string // upper-case text for tkWord, unquoted name for tkQuoted
	ch         byte   // the byte for tkPunct
}

// lexResult is the outcome of lexing a whole input.
type lexResult struct {
	toks     []token
	execCmt  int // offset of the first executable comment (/*! or /*M!), -1 if none
	hasDelim bool
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// startsDashComment reports whether the byte after "--" makes it a comment. MariaDB's lexer asks
// my_isspace or my_iscntrl of the client character set: for utf8mb4, utf8, ascii and binary that
// is 0x01-0x20 and DEL (0x7f); latin1 adds 0xa0, which valid UTF-8 never puts after "-" (and
// latin1 is refused as client character set). TestLexAgreesWithMariaDB asks the server for all
// 256 bytes.
func startsDashComment(b byte) bool { return (b > 0 && b <= 0x20) || b == 0x7f }

// lex tokenizes sql the way MySQL/MariaDB do for the purpose of finding
// statement boundaries, keywords and identifiers: comments (# ..., -- ...
// where "--" must be followed by what startsDashComment says, /* */)
// are skipped, strings ('...', "...") honour backslash escapes and doubled
// quotes, `identifiers` honour doubled backticks. It returns a *Denied
// with reason "unparsable" for an unterminated string, identifier or comment, and for what it
// cannot be sure MariaDB reads the same way: "--" followed by a non-ASCII byte, and control
// characters outside strings, quoted identifiers and comments (MariaDB refuses them there).
func lex(sql string) (lexResult, error) {
	res := lexResult{execCmt: -1, toks: make([]token, 0, 16+len(sql)/6)}
	n := len(sql)
	i := 0
	for i < n {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#':
			for i < n && sql[i] != '\n' {
				i++
			}
		case c == '-' && i+1 < n && sql[i+1] == '-' && (i+2 == n || startsDashComment(sql[i+2])):
			for i < n && sql[i] != '\n' {
				i++
			}
		case c == '-' && i+2 < n && sql[i+1] == '-' && sql[i+2] >= 0x80:
			return res, deny("unparsable", "\"--\" followed by a non-ASCII character (offset %d): whether it starts a comment depends on the character set", i)
		case c < ' ' || c == 0x7f:
			return res, deny("unparsable", "control character 0x%02x outside a string (offset %d)", c, i)
		case c == '/' && i+1 < n && sql[i+1] == '*':
			if res.execCmt < 0 && i+2 < n && (sql[i+2] == '!' ||
				((sql[i+2] == 'M' || sql[i+2] == 'm') && i+3 < n && sql[i+3] == '!')) {
				res.execCmt = i
			}
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return res, deny("unparsable", "unterminated comment starting at offset %d", i)
			}
			i += 2 + end + 2
		case c == '\'' || c == '"':
			start := i
			i++
			closed := false
			for i < n {
				if sql[i] == '\\' {
					i += 2
					continue
				}
				if sql[i] == c {
					if i+1 < n && sql[i+1] == c {
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				i++
			}
			if !closed {
				return res, deny("unparsable", "unterminated string starting at offset %d", start)
			}
			res.toks = append(res.toks, token{kind: tkString, start: start, end: i})
		case c == '`':
			start := i
			i++
			closed := false
			var b strings.Builder
			for i < n {
				if sql[i] == '`' {
					if i+1 < n && sql[i+1] == '`' {
						b.WriteByte('`')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(sql[i])
				i++
			}
			if !closed {
				return res, deny("unparsable", "unterminated quoted identifier starting at offset %d", start)
			}
			res.toks = append(res.toks, token{kind: tkQuoted, start: start, end: i, up: b.String()})
		case c == '@':
			start := i
			i++
			if i < n && sql[i] == '@' {
				i++
			}
			if i < n && (sql[i] == '\'' || sql[i] == '"' || sql[i] == '`') {
				q := sql[i]
				i++
				for i < n && sql[i] != q {
					if sql[i] == '\\' && q != '`' {
						i++
					}
					i++
				}
				if i >= n {
					return res, deny("unparsable", "unterminated variable name starting at offset %d", start)
				}
				i++
			} else {
				for i < n && (isWordByte(sql[i]) || sql[i] == '.') {
					i++
				}
			}
			res.toks = append(res.toks, token{kind: tkVar, start: start, end: i, up: strings.ToUpper(sql[start:i])})
		case isDigit(c) || (c == '.' && i+1 < n && isDigit(sql[i+1]) && !prevIsName(res.toks, i)):
			start := i
			for i < n && isWordByte(sql[i]) {
				i++
			}
			if i+1 < n && sql[i] == '.' && isDigit(sql[i+1]) && !prevIsDot(res.toks) {
				i++
				for i < n && isWordByte(sql[i]) {
					i++
				}
			}
			res.toks = append(res.toks, token{kind: tkNumber, start: start, end: i})
		case isWordByte(c):
			start := i
			for i < n && isWordByte(sql[i]) {
				i++
			}
			res.toks = append(res.toks, token{kind: tkWord, start: start, end: i, up: upper(sql[start:i])})
		default:
			if c == ';' {
				res.hasDelim = true
			}
			res.toks = append(res.toks, token{kind: tkPunct, start: i, end: i + 1, ch: c})
			i++
		}
	}
	return res, nil
}

// prevIsName reports whether the byte before offset i ends a name token
// (so ".5" is a qualifier dot, not a number).
func prevIsName(toks []token, i int) bool {
	if len(toks) == 0 {
		return false
	}
	t := toks[len(toks)-1]
	return t.end == i && (t.kind == tkWord || t.kind == tkQuoted)
}

// prevIsDot reports whether the previous token is a '.', i.e. the number is
// the name part of a qualified name such as db.1t.
func prevIsDot(toks []token) bool {
	return len(toks) > 0 && toks[len(toks)-1].kind == tkPunct && toks[len(toks)-1].ch == '.'
}

// upper upper-cases ASCII letters, avoiding an allocation when s already is.
func upper(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'a' && s[i] <= 'z' {
			return strings.ToUpper(s)
		}
	}
	return s
}

// routineKinds are the CREATE objects whose body may contain ';'.
var routineKinds = map[string]bool{"PROCEDURE": true, "FUNCTION": true, "TRIGGER": true, "EVENT": true}

// isRoutineDef reports whether toks starts a CREATE PROCEDURE/FUNCTION/TRIGGER/EVENT.
func isRoutineDef(toks []token) bool {
	if len(toks) == 0 || toks[0].kind != tkWord || toks[0].up != "CREATE" {
		return false
	}
	for j := 1; j < len(toks) && j < 16; j++ {
		t := toks[j]
		if t.kind == tkWord {
			if routineKinds[t.up] {
				return true
			}
			switch t.up {
			case "TABLE", "VIEW", "INDEX", "DATABASE", "SCHEMA", "USER", "ROLE", "SERVER":
				return false
			}
		}
		if t.kind == tkPunct && t.ch == '(' {
			return false
		}
	}
	return false
}

// splitTokens groups toks into statements at ';' tokens. Inside a routine
// definition, ';' between BEGIN and the matching END does not end the
// statement (CASE ... END and END CASE are tracked, END IF/LOOP/WHILE/REPEAT
// are not openers). Empty statements are dropped.
func splitTokens(toks []token) [][]token {
	var out [][]token
	start := 0
	depth := 0
	routine := false
	for j := 0; j < len(toks); j++ {
		if j == start {
			routine = isRoutineDef(toks[start:])
			depth = 0
		}
		t := toks[j]
		if routine && t.kind == tkWord {
			switch t.up {
			case "BEGIN", "CASE":
				depth++
			case "END":
				if j+1 < len(toks) && toks[j+1].kind == tkWord {
					switch toks[j+1].up {
					case "IF", "LOOP", "WHILE", "REPEAT":
						continue
					case "CASE":
						j++
					}
				}
				if depth > 0 {
					depth--
				}
			}
		}
		if t.kind == tkPunct && t.ch == ';' && depth == 0 {
			if j > start {
				out = append(out, toks[start:j])
			}
			start = j + 1
		}
	}
	if start < len(toks) {
		out = append(out, toks[start:])
	}
	return out
}

// Split splits sql into statements on ';', ignoring semicolons inside
// strings, quoted identifiers and comments, and inside BEGIN ... END bodies of
// CREATE PROCEDURE/FUNCTION/TRIGGER/EVENT. Each statement runs from its first to
// its last token (comments inside kept, leading and trailing ones dropped); empty and comment-only pieces are dropped. It returns
// a *Denied with reason "unparsable" for an unterminated string, quoted
// identifier or comment, and "executable_comment" for an executable comment anywhere: dropping
// one between statements would silently change what the author wrote. Split does not judge
// statements otherwise: run Classify on each piece.
func Split(sql string) ([]string, error) {
	lr, err := lex(sql)
	if err != nil {
		return nil, err
	}
	if lr.execCmt >= 0 {
		return nil, deny("executable_comment", "executable comments (/*! or /*M!) are not allowed (offset %d)", lr.execCmt)
	}
	groups := splitTokens(lr.toks)
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		out = append(out, sql[g[0].start:g[len(g)-1].end])
	}
	return out, nil
}

// LastTokenEnd is the byte offset just after the last token of s that is not ';' (comments and
// whitespace after it skipped), or len(s) when s does not lex.
func LastTokenEnd(s string) int {
	lr, err := lex(s)
	if err != nil {
		return len(s)
	}
	for i := len(lr.toks) - 1; i >= 0; i-- {
		if t := lr.toks[i]; !(t.kind == tkPunct && t.ch == ';') {
			return t.end
		}
	}
	return len(s)
}

// QuoteIdent quotes a MySQL identifier with backticks (a backtick inside is doubled). Backslashes
// mean nothing inside backticks, whatever the SQL mode.
func QuoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}
