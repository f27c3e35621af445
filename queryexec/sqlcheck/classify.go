package sqlcheck

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/xwb1989/sqlparser"
)

// StatementType is the class of a tenant statement: "read", "dml", "ddl" or "other".
type StatementType string

// Statement types.
const (
	TypeRead  StatementType = "read"
	TypeDML   StatementType = "dml"
	TypeDDL   StatementType = "ddl"
	TypeOther StatementType = "other"
)

// Classification describes one allowed statement.
type Classification struct {
	Type    StatementType
	Verb    string   // first keyword, upper-case: SELECT, INSERT, CREATE, SHOW, ...
	Tables  []string // tables referenced (qualified ones as "schema.table") where known
	Drops   bool     // DROP, TRUNCATE or CREATE OR REPLACE TABLE (needs confirm)
	NoWhere bool     // UPDATE/DELETE without WHERE (needs confirm)

	Routine    bool // CREATE/ALTER/DROP of PROCEDURE, FUNCTION, TRIGGER or EVENT (incl. OR REPLACE, DEFINER=CURRENT_USER forms)
	ForeignKey bool // CREATE TABLE or ALTER TABLE that declares a foreign key (FOREIGN KEY or a column's REFERENCES)
	Rewrites   bool // ALTER TABLE that drops or redefines columns, or rebuilds the table (see markFlags): high impact regardless of size

	// Literal is a SELECT of literals and operators alone (SELECT 1, SELECT 'a', 2 * 3): it names
	// no table, view, function, procedure or variable, so running it runs no stored code (a
	// trigger, a view's or a routine's), the only way a statement the classifier lets through
	// could take a user-level lock.
	Literal bool
}

// Denied is the error Classify and Split return for a refused statement.
// Reason is a short stable code (see Classify), Message a human explanation.
type Denied struct{ Reason, Message string }

// Error implements error.
func (d *Denied) Error() string {
	return "queryexec: statement denied (" + d.Reason + "): " + d.Message
}

func deny(reason, format string, args ...any) *Denied {
	return &Denied{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Classify classifies one tenant statement. schema is the database's own
// physical schema name: a qualifier equal to it (exactly, case-sensitive) is
// allowed; every other qualifier, including mysql, information_schema,
// performance_schema and sys, is refused as "other_schema".
//
// Parsing is a filter, not the wall: the statement must still run on an
// account granted only on schema. Classify denies by default; the error is
// always a *Denied with one of these reasons:
//
//	empty                 nothing but whitespace and comments
//	unparsable            NUL byte, invalid UTF-8, unterminated string/comment,
//	                      or a statement neither sqlparser nor the lexical
//	                      fallback can classify safely
//	multiple_statements   more than one statement (callers Split first)
//	executable_comment    /*! ... */ or /*M! ... */ outside strings
//	other_schema          a qualifier other than schema
//	schema_management     CREATE/ALTER/DROP DATABASE|SCHEMA
//	use                   USE
//	account_management    users, roles, GRANT/REVOKE
//	set_global            SET GLOBAL/PERSIST, SET @@global., SET PASSWORD
//	session_settings      SET of a character set or sql_mode that changes how
//	                      later statements are lexed (e.g. SET NAMES gbk,
//	                      sql_mode ANSI_QUOTES / NO_BACKSLASH_ESCAPES / ORACLE),
//	                      of the limits the platform sets (max_statement_time,
//	                      sql_select_limit), or of any variable outside
//	                      settableVars (boundary.go)
//	file_access           LOAD DATA/XML, INTO OUTFILE/DUMPFILE, LOAD_FILE(),
//	                      DATA/INDEX DIRECTORY
//	server_function       GET_LOCK and the other serverFunctions, anywhere
//	server_information    SHOW VARIABLES/STATUS/GRANTS/PROCESSLIST/CREATE USER
//	                      and every SHOW outside readableShows; @@global. and
//	                      system variables outside readableVars
//	storage_engine        ENGINE outside tableEngines, the CONNECTION option
//	server_admin          KILL, SHUTDOWN, FLUSH, plugins, servers, replication,
//	                      PURGE, RESET, CACHE/LOAD INDEX, HANDLER, XA, ...
//	lock_tables           LOCK/UNLOCK TABLES
//	dynamic_sql           PREPARE/EXECUTE/DEALLOCATE (would bypass the classifier)
//	definer               DEFINER other than CURRENT_USER
//	too_complex           more than MaxSelects SELECTs, MaxTableRefs table
//	                      references or MaxNesting levels of parentheses
func Classify(sql string, schema string) (c Classification, err error) {
	if strings.IndexByte(sql, 0) >= 0 {
		return c, deny("unparsable", "statement contains a NUL byte")
	}
	if !utf8.ValidString(sql) {
		return c, deny("unparsable", "statement is not valid UTF-8")
	}
	lr, err := lex(sql)
	if err != nil {
		return c, err
	}
	if lr.execCmt >= 0 {
		return c, deny("executable_comment", "executable comments (/*! or /*M!) are not allowed (offset %d)", lr.execCmt)
	}
	groups := splitTokens(lr.toks)
	switch len(groups) {
	case 0:
		return c, deny("empty", "no statement")
	case 1:
	default:
		return c, deny("multiple_statements", "%d statements; send one statement per request or use multi", len(groups))
	}
	c, err = classifyTokens(sql, groups[0], schema)
	if err == nil {
		markFlags(&c, groups[0])
		c.Literal = literal(sql, groups[0])
	}
	return c, err
}

// literal reports whether toks, a statement of sql, is SELECT followed by numbers, strings and
// punctuation alone (Classification.Literal): no word, quoted name or variable, and no name that
// starts with a digit (1f), so nothing that could resolve to stored code.
func literal(sql string, toks []token) bool {
	if len(toks) < 2 || toks[0].kind != tkWord || toks[0].up != "SELECT" {
		return false
	}
	for _, t := range toks[1:] {
		switch t.kind {
		case tkString, tkPunct:
		case tkNumber:
			if ok, _ := numericLiteral(sql[t.start:t.end]); !ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// Bounds of one statement's complexity, far above what real statements reach and far below what
// keeps MariaDB busy: the server's optimizer takes time quadratic in the number of subqueries
// (3,000 took 1.6 s, 30,000 about 160 s, during which KILL did not take), and a statement that
// ignores KILL holds its connection and the server's CPU past its timeout.
const (
	// MaxSelects bounds the SELECT keywords of a statement: subqueries, UNION parts, CTEs.
	MaxSelects = 256
	// MaxTableRefs bounds the table references of a statement (each FROM, JOIN or list entry).
	MaxTableRefs = 256
	// MaxNesting bounds how deep parentheses nest (expressions, subqueries, derived tables).
	MaxNesting = 128
)

// classifyTokens classifies the statement made of toks (no ';', non-empty).
func classifyTokens(sql string, toks []token, schema string) (Classification, error) {
	var c Classification
	depth, deepest, selects := 0, 0, 0
	for _, t := range toks {
		switch {
		case t.kind == tkPunct && t.ch == '(':
			depth++
			deepest = max(deepest, depth)
		case t.kind == tkPunct && t.ch == ')':
			depth--
		case t.kind == tkWord && t.up == "SELECT":
			selects++
		}
		if depth < 0 {
			break
		}
	}
	if depth != 0 {
		return c, deny("unparsable", "unbalanced parentheses")
	}
	switch {
	case selects > MaxSelects:
		return c, deny("too_complex", "%d SELECTs (subqueries and UNION parts) in one statement; at most %d are allowed", selects, MaxSelects)
	case deepest > MaxNesting:
		return c, deny("too_complex", "parentheses nested %d deep; at most %d are allowed", deepest, MaxNesting)
	}
	if d := globalChecks(toks); d != nil {
		return c, d
	}
	if d := boundaryChecks(sql, toks); d != nil {
		return c, d
	}
	names, d := scanNames(sql, toks, schema)
	if d != nil {
		return c, d
	}
	verb := ""
	for _, t := range toks {
		if t.kind == tkWord {
			verb = t.up
			break
		}
		if !(t.kind == tkPunct && t.ch == '(') {
			break
		}
	}
	if verb == "" {
		return c, deny("unparsable", "statement does not start with a keyword")
	}
	c.Verb = verb
	w := words{toks: toks}
	if r := deniedVerb(w); r != nil {
		return c, r
	}
	if (verb == "CREATE" || verb == "ALTER") && routineKinds[objectKind(w)] {
		if r := routineSets(sql, toks); r != nil {
			return c, r
		}
	}
	text := sql[toks[0].start:toks[len(toks)-1].end]
	switch verb {
	case "SHOW":
		return classifyShow(sql, c, w, names, schema)
	case "DESCRIBE", "DESC", "EXPLAIN":
		return classifyExplain(sql, c, toks, names, schema)
	case "ANALYZE":
		if w.is(1, "TABLE") || w.is(1, "LOCAL") || w.is(1, "NO_WRITE_TO_BINLOG") {
			c.Type, c.Tables = TypeOther, names
			return c, nil
		}
		// MariaDB ANALYZE <statement> executes the statement.
		return classifyInner(sql, c, toks, 1, schema, true)
	case "OPTIMIZE", "CHECK", "REPAIR", "CHECKSUM":
		if w.anyAt(1, "TABLE", "LOCAL", "NO_WRITE_TO_BINLOG") {
			c.Type, c.Tables = TypeOther, names
			return c, nil
		}
		return c, deny("unparsable", "unrecognised %s statement", verb)
	case "SET":
		return classifySet(sql, c, toks, schema)
	case "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE":
		c.Type = TypeOther
		return c, nil
	case "START":
		if w.is(1, "TRANSACTION") {
			c.Type = TypeOther
			return c, nil
		}
		return c, deny("server_admin", "START %s is not allowed", w.up(1))
	case "CALL":
		c.Type, c.Tables = TypeOther, nil
		return c, nil
	case "DO":
		c.Type = TypeOther
		return c, nil
	}
	if p, ok := parse(text); ok {
		return classifyAST(c, p, toks, names, schema)
	}
	return fallback(c, w, names)
}

// words gives keyword access to a token slice.
type words struct{ toks []token }

func (w words) up(i int) string {
	if i < len(w.toks) && w.toks[i].kind == tkWord {
		return w.toks[i].up
	}
	return ""
}
func (w words) is(i int, kw string) bool { return w.up(i) == kw }
func (w words) anyAt(i int, kws ...string) bool {
	u := w.up(i)
	for _, k := range kws {
		if u == k {
			return true
		}
	}
	return false
}
func (w words) has(kw string) bool {
	for _, t := range w.toks {
		if t.kind == tkWord && t.up == kw {
			return true
		}
	}
	return false
}

// globalChecks refuses file access anywhere in the statement (outside strings).
func globalChecks(toks []token) *Denied {
	for i, t := range toks {
		if t.kind == tkQuoted && strings.EqualFold(t.up, "LOAD_FILE") && isPunctAt(toks, i+1, '(') {
			return deny("file_access", "LOAD_FILE() is not allowed") // MariaDB resolves `LOAD_FILE`(...) too
		}
		if t.kind != tkWord {
			continue
		}
		switch t.up {
		case "OUTFILE", "DUMPFILE":
			return deny("file_access", "INTO %s is not allowed", t.up)
		case "LOAD_FILE":
			return deny("file_access", "LOAD_FILE() is not allowed")
		case "LOAD":
			if i+1 < len(toks) && toks[i+1].kind == tkWord && (toks[i+1].up == "DATA" || toks[i+1].up == "XML") {
				return deny("file_access", "LOAD %s is not allowed", toks[i+1].up)
			}
		}
	}
	return nil
}

// objectKind returns the first object keyword after CREATE/ALTER/DROP/RENAME,
// skipping modifiers (OR REPLACE, TEMPORARY, DEFINER=..., ALGORITHM=..., ...).
func objectKind(w words) string {
	for i := 1; i < len(w.toks) && i < 24; i++ {
		switch u := w.up(i); u {
		case "TABLE", "TABLES", "INDEX", "VIEW", "PROCEDURE", "FUNCTION", "TRIGGER", "EVENT",
			"DATABASE", "SCHEMA", "USER", "ROLE", "SERVER", "TABLESPACE", "LOGFILE", "SEQUENCE",
			"PACKAGE", "RESOURCE", "SPATIAL", "INSTANCE", "UNDO":
			if u == "SPATIAL" && w.is(i+1, "INDEX") {
				return "INDEX"
			}
			return u
		}
		if t := w.toks[i]; t.kind == tkPunct && t.ch == '(' {
			return ""
		}
	}
	return ""
}

// deniedVerb applies the never-allowed rules by leading keyword.
func deniedVerb(w words) *Denied {
	v := w.up(0)
	switch v {
	case "USE":
		return deny("use", "USE is not allowed: the database is fixed")
	case "GRANT", "REVOKE":
		return deny("account_management", "%s is not allowed", v)
	case "KILL", "SHUTDOWN", "RESTART", "FLUSH", "INSTALL", "UNINSTALL", "PURGE", "RESET",
		"CHANGE", "STOP", "BINLOG", "CLONE", "CACHE", "HANDLER", "XA", "HELP", "IMPORT":
		return deny("server_admin", "%s is not allowed", v)
	case "LOCK", "UNLOCK":
		return deny("lock_tables", "%s TABLES is not allowed", v)
	case "PREPARE", "EXECUTE", "DEALLOCATE":
		return deny("dynamic_sql", "%s is not allowed", v)
	case "LOAD":
		return deny("file_access", "LOAD is not allowed")
	case "START":
		if w.anyAt(1, "SLAVE", "REPLICA", "GROUP_REPLICATION", "ALL") {
			return deny("server_admin", "START %s is not allowed", w.up(1))
		}
	case "CREATE", "ALTER", "DROP", "RENAME":
		switch k := objectKind(w); k {
		case "DATABASE", "SCHEMA":
			return deny("schema_management", "%s %s is not allowed", v, k)
		case "USER", "ROLE":
			return deny("account_management", "%s %s is not allowed", v, k)
		case "SERVER", "TABLESPACE", "LOGFILE", "RESOURCE", "INSTANCE", "UNDO":
			return deny("server_admin", "%s %s is not allowed", v, k)
		}
		for i := 1; i < len(w.toks) && i < 24; i++ {
			if w.is(i, "DEFINER") {
				j := i + 1
				if j < len(w.toks) && w.toks[j].kind == tkPunct && w.toks[j].ch == '=' {
					j++
				}
				if !w.is(j, "CURRENT_USER") {
					return deny("definer", "DEFINER other than CURRENT_USER is not allowed")
				}
			}
		}
		if routineKinds[objectKind(w)] {
			for _, t := range w.toks {
				if t.kind == tkWord {
					switch t.up {
					case "GRANT", "REVOKE", "KILL", "SHUTDOWN", "FLUSH", "INSTALL", "UNINSTALL", "PURGE":
						return deny("server_admin", "%s inside a routine body is not allowed", t.up)
					case "PREPARE", "EXECUTE", "DEALLOCATE":
						return deny("dynamic_sql", "%s inside a routine body is not allowed", t.up)
					case "USE":
						return deny("use", "USE inside a routine body is not allowed")
					}
				}
			}
		}
	}
	return nil
}

// tableKeywords are followed by a table name (after modifiers).
var tableKeywords = map[string]bool{
	"FROM": true, "JOIN": true, "STRAIGHT_JOIN": true, "INTO": true, "UPDATE": true,
	"TABLE": true, "TABLES": true, "DESCRIBE": true, "DESC": true, "EXPLAIN": true,
	"CALL": true, "REFERENCES": true, "TO": true, "VIEW": true,
}

// tableModifiers may sit between a table keyword and the table name.
var tableModifiers = map[string]bool{
	"LOW_PRIORITY": true, "HIGH_PRIORITY": true, "DELAYED": true, "IGNORE": true, "QUICK": true,
	"IF": true, "NOT": true, "EXISTS": true, "TEMPORARY": true, "ONLY": true, "LATERAL": true,
	"LOCAL": true, "NO_WRITE_TO_BINLOG": true, "FULL": true, "EXTENDED": true, "PARTITIONS": true,
}

// clauseKeywords end a table list.
var clauseKeywords = map[string]bool{
	"WHERE": true, "ON": true, "USING": true, "SET": true, "GROUP": true, "ORDER": true,
	"HAVING": true, "LIMIT": true, "WINDOW": true, "UNION": true, "SELECT": true, "VALUES": true,
	"VALUE": true, "INTERSECT": true, "EXCEPT": true, "RETURNING": true, "FOR": true, "LOCK": true,
	"ADD": true, "DROP": true, "MODIFY": true, "CHANGE": true, "ALTER": true, "LIKE": true,
	"AS": false, "PARTITION": true, "DUAL": true, "WITH": true,
}

func isName(t token) bool { return t.kind == tkWord || t.kind == tkQuoted || t.kind == tkNumber }

func nameOf(sql string, t token) string {
	if t.kind == tkQuoted {
		return t.up
	}
	return sql[t.start:t.end]
}

// scanNames checks qualifiers lexically and collects table names.
//
// A name a followed by '.' and a name is a schema qualifier, to be equal to
// schema, when it is in table position (after FROM, JOIN, INTO, UPDATE,
// TABLE, ... or in a comma list of tables), when it is three-part (a.b.c),
// when it qualifies a function call (a.f(...)), or when a never appears
// unqualified in the statement (so it cannot be a table or alias; NEW and OLD
// of triggers excepted). Double-quoted strings count as names next to a dot,
// since sql_mode ANSI_QUOTES would make them identifiers.
func scanNames(sql string, toks []token, schema string) ([]string, *Denied) {
	isDot := func(i int) bool { return i < len(toks) && toks[i].kind == tkPunct && toks[i].ch == '.' }
	nameAt := func(i int) (string, bool) {
		if i >= len(toks) {
			return "", false
		}
		t := toks[i]
		switch t.kind {
		case tkWord, tkQuoted, tkNumber:
			return nameOf(sql, t), true
		case tkString:
			if sql[t.start] == '"' && (isDot(i+1) || (i > 0 && isDot(i-1))) {
				return strings.ReplaceAll(sql[t.start+1:t.end-1], `""`, `"`), true
			}
		}
		return "", false
	}
	var standalone map[string]bool // lazily built: names not next to a dot
	isStandalone := func(name string) bool {
		if standalone == nil {
			standalone = map[string]bool{}
			for i, t := range toks {
				if (t.kind == tkWord || t.kind == tkQuoted) && !isDot(i+1) && !(i > 0 && isDot(i-1)) {
					standalone[strings.ToLower(nameOf(sql, t))] = true
				}
			}
		}
		return standalone[strings.ToLower(name)]
	}
	var tables []string
	var cteNames map[string]bool
	expect := false // next name is a table
	inList := false // inside a table list: ',' at listDepth expects a table
	depth, listDepth := 0, 0
	verb := words{toks}.up(0)
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind == tkPunct {
			switch t.ch {
			case ',':
				expect = inList && depth == listDepth
			case '(':
				depth++
				if expect {
					listDepth = depth // FROM (t1, t2)
				}
			case ')':
				depth--
				expect = false
			case '.':
			default:
				expect = false
			}
			continue
		}
		if t.kind == tkWord && !isDot(i+1) {
			prev := ""
			if i > 0 && toks[i-1].kind == tkWord {
				prev = toks[i-1].up
			}
			isTableKW := tableKeywords[t.up]
			switch t.up {
			case "UPDATE":
				isTableKW = prev != "FOR" && prev != "KEY" && prev != "ON"
			case "TO":
				isTableKW = verb == "RENAME" || prev == "RENAME"
			}
			if isTableKW {
				expect, inList, listDepth = true, true, depth
				continue
			}
			if expect && tableModifiers[t.up] {
				continue
			}
			if clauseKeywords[t.up] || t.up == "UPDATE" || t.up == "TO" {
				expect, inList = false, false
				continue
			}
			if t.up == "AS" && i+1 < len(toks) && toks[i+1].kind == tkPunct && toks[i+1].ch == '(' && i > 0 && isName(toks[i-1]) {
				if cteNames == nil {
					cteNames = map[string]bool{}
				}
				cteNames[nameOf(sql, toks[i-1])] = true
			}
		}
		a, ok := nameAt(i)
		if !ok {
			expect = false
			continue
		}
		if !isDot(i + 1) {
			// FROM JSON_TABLE(...) is a table function, not a table
			call := i+1 < len(toks) && toks[i+1].kind == tkPunct && toks[i+1].ch == '(' && i > 0 &&
				(toks[i-1].kind == tkPunct || (toks[i-1].kind == tkWord && (toks[i-1].up == "FROM" || toks[i-1].up == "JOIN")))
			if expect && t.kind != tkString && !call && !strings.EqualFold(a, "DUAL") {
				tables = append(tables, a)
			}
			expect = false
			continue
		}
		// a . b
		b, okb := nameAt(i + 2)
		star := i+2 < len(toks) && toks[i+2].kind == tkPunct && toks[i+2].ch == '*'
		if !okb && !star {
			return nil, deny("unparsable", "unexpected token after %q.", a)
		}
		threePart := okb && isDot(i+3)
		call := okb && i+3 < len(toks) && toks[i+3].kind == tkPunct && toks[i+3].ch == '('
		schemaQ := expect || threePart || call
		if !schemaQ && !star {
			if u := strings.ToUpper(a); u != "NEW" && u != "OLD" && !isStandalone(a) {
				schemaQ = true
			}
		}
		if schemaQ && a != schema {
			return nil, deny("other_schema", "only the database's own schema may be referenced, not %q", a)
		}
		if expect && okb {
			tables = append(tables, a+"."+b)
		}
		expect = false
		// skip the rest of the dotted name
		i += 2
		for isDot(i + 1) {
			i += 2
		}
	}
	if len(tables) > MaxTableRefs {
		return nil, deny("too_complex", "%d table references in one statement; at most %d are allowed", len(tables), MaxTableRefs)
	}
	if len(cteNames) > 0 {
		kept := tables[:0]
		for _, tb := range tables {
			if !cteNames[tb] {
				kept = append(kept, tb)
			}
		}
		tables = kept
	}
	return dedupe(tables), nil
}

func dedupe(in []string) []string {
	if len(in) < 2 {
		return in
	}
	seen := make(map[string]bool, len(in))
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// parse runs sqlparser.ParseStrictDDL, turning a panic into a failure.
func parse(text string) (stmt sqlparser.Statement, ok bool) {
	defer func() {
		if recover() != nil {
			stmt, ok = nil, false
		}
	}()
	st, err := sqlparser.ParseStrictDDL(text)
	if err != nil || st == nil {
		return nil, false
	}
	return st, true
}

// classifyAST classifies a statement sqlparser understood. Lexical names
// (already qualifier-checked) complement the AST for DDL, whose AST keeps
// only one table.
func classifyAST(c Classification, st sqlparser.Statement, toks []token, lexNames []string, schema string) (c2 Classification, err error) {
	defer func() {
		if recover() != nil {
			c2, err = Classification{}, deny("unparsable", "statement could not be analysed")
		}
	}()
	var tables []string
	addTable := func(tn sqlparser.TableName) {
		if tn.IsEmpty() {
			return
		}
		n := tn.Name.String()
		if strings.EqualFold(n, "dual") {
			return
		}
		if q := tn.Qualifier.String(); q != "" {
			n = q + "." + n
		}
		tables = append(tables, n)
	}
	var d *Denied
	visit := func(node sqlparser.SQLNode) (bool, error) {
		switch n := node.(type) {
		case sqlparser.TableName:
			if q := n.Qualifier.String(); q != "" && q != schema {
				d = deny("other_schema", "only the database's own schema may be referenced, not %q", q)
				return false, d
			}
		case *sqlparser.FuncExpr:
			if q := n.Qualifier.String(); q != "" && q != schema {
				d = deny("other_schema", "only the database's own schema may be referenced, not %q", q)
				return false, d
			}
			if strings.EqualFold(n.Name.String(), "load_file") {
				d = deny("file_access", "LOAD_FILE() is not allowed")
				return false, d
			}
		case *sqlparser.AliasedTableExpr:
			if tn, ok := n.Expr.(sqlparser.TableName); ok {
				addTable(tn)
			}
		}
		return true, nil
	}
	_ = sqlparser.Walk(visit, st)
	if d != nil {
		return c, d
	}
	switch s := st.(type) {
	case *sqlparser.Select:
		c.Type = TypeRead
		if s.Lock != "" {
			c.Type = TypeDML // locking read: takes row locks, needs write privileges
		}
	case *sqlparser.Union:
		c.Type = TypeRead
		if s.Lock != "" {
			c.Type = TypeDML
		}
	case *sqlparser.ParenSelect:
		c.Type = TypeRead
	case *sqlparser.Insert:
		c.Type = TypeDML
		rest := tables
		tables = nil
		addTable(s.Table)
		tables = append(tables, rest...)
	case *sqlparser.Update:
		c.Type, c.NoWhere = TypeDML, s.Where == nil
	case *sqlparser.Delete:
		c.Type, c.NoWhere = TypeDML, s.Where == nil
	case *sqlparser.DDL:
		c.Type = TypeDDL
		addTable(s.Table)
		addTable(s.NewName)
		tables = append(tables, lexNames...)
		c.Drops = s.Action == sqlparser.DropStr || s.Action == sqlparser.TruncateStr
	default:
		// Set, Use, Show, DBDDL, OtherRead, OtherAdmin, Stream, ... are handled
		// lexically before parsing or are not allowed.
		return c, deny("unparsable", "%s statements are not supported", c.Verb)
	}
	if c.Verb == "TRUNCATE" || c.Verb == "DROP" {
		c.Drops = true
	}
	if w := (words{toks: toks}); c.Verb == "CREATE" && w.is(1, "OR") && objectKind(w) == "TABLE" {
		c.Drops = true // CREATE OR REPLACE TABLE drops the existing table
	}
	c.Tables = dedupe(tables)
	return c, nil
}

// dataChanging keywords make a WITH/SELECT statement more than a read.
var dataChanging = map[string]bool{
	"INSERT": true, "UPDATE": true, "DELETE": true, "REPLACE": true, "INTO": true, "CREATE": true,
	"DROP": true, "ALTER": true, "TRUNCATE": true, "RENAME": true, "GRANT": true, "REVOKE": true,
	"LOAD": true, "CALL": true, "DO": true, "HANDLER": true, "SET": true, "LOCK": true,
	"MERGE": true, "UPSERT": true, "EXECUTE": true, "PREPARE": true,
}

// fallback classifies lexically what sqlparser cannot parse.
func fallback(c Classification, w words, names []string) (Classification, error) {
	c.Tables = names
	switch c.Verb {
	case "SELECT", "WITH", "VALUES", "TABLE":
		locking := false
		sawSelect := c.Verb != "WITH"
		for i, t := range w.toks {
			if t.kind != tkWord {
				continue
			}
			fn := i+1 < len(w.toks) && w.toks[i+1].kind == tkPunct && w.toks[i+1].ch == '('
			switch {
			case t.up == "SELECT":
				sawSelect = true
			case fn && (t.up == "INSERT" || t.up == "REPLACE"):
				// string functions INSERT(...), REPLACE(...)
			case t.up == "SET" && w.is(i-1, "CHARACTER"):
				// CAST(x AS CHAR CHARACTER SET utf8mb4)
			case t.up == "LOCK" && w.is(i+1, "IN"):
				locking = true // LOCK IN SHARE MODE
			case t.up == "UPDATE" && w.is(i-1, "FOR"):
				locking = true // FOR UPDATE [NOWAIT|SKIP LOCKED]
			case t.up == "SHARE" && (w.is(i-1, "FOR") || w.is(i-1, "IN")):
				locking = true
			case dataChanging[t.up]:
				return c, deny("unparsable", "%s statement containing %s is not allowed", c.Verb, t.up)
			}
		}
		if !sawSelect {
			return c, deny("unparsable", "WITH without SELECT is not allowed")
		}
		c.Type = TypeRead
		if locking {
			c.Type = TypeDML
		}
		return c, nil
	case "INSERT", "REPLACE", "UPDATE", "DELETE":
		c.Type = TypeDML
		if c.Verb == "UPDATE" || c.Verb == "DELETE" {
			c.NoWhere = !topLevelWord(w.toks, "WHERE")
		}
		return c, nil
	case "CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE":
		switch objectKind(w) {
		case "TABLE", "TABLES", "INDEX", "VIEW", "PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "SEQUENCE":
			c.Type = TypeDDL
			c.Drops = c.Verb == "DROP" || c.Verb == "TRUNCATE" ||
				(c.Verb == "CREATE" && w.is(1, "OR") && objectKind(w) == "TABLE")
			return c, nil
		}
		if c.Verb == "TRUNCATE" {
			c.Type, c.Drops = TypeDDL, true
			return c, nil
		}
	}
	return c, deny("unparsable", "%s statement could not be classified", c.Verb)
}

// topLevelWord reports whether kw appears outside parentheses.
func topLevelWord(toks []token, kw string) bool {
	depth := 0
	for _, t := range toks {
		switch {
		case t.kind == tkPunct && t.ch == '(':
			depth++
		case t.kind == tkPunct && t.ch == ')':
			depth--
		case t.kind == tkWord && depth == 0 && t.up == kw:
			return true
		}
	}
	return false
}

// classifyInner classifies toks[from:] as a statement of its own (EXPLAIN
// ANALYZE, ANALYZE <stmt>, SET STATEMENT ... FOR <stmt>) keeping c.Verb.
// With executes false the result is a read (EXPLAIN does not run it).
func classifyInner(sql string, c Classification, toks []token, from int, schema string, executes bool) (Classification, error) {
	if from >= len(toks) {
		return c, deny("unparsable", "%s without a statement", c.Verb)
	}
	in, err := classifyTokens(sql, toks[from:], schema)
	if err != nil {
		return c, err
	}
	switch in.Verb {
	case "SELECT", "WITH", "INSERT", "REPLACE", "UPDATE", "DELETE", "VALUES", "TABLE":
	default:
		return c, deny("unparsable", "%s %s is not allowed", c.Verb, in.Verb)
	}
	if !executes {
		in.Type, in.Drops, in.NoWhere = TypeRead, false, false
	}
	in.Verb = c.Verb
	return in, nil
}

// classifyExplain handles EXPLAIN/DESCRIBE/DESC: of a table (read) or of a
// statement (read, unless EXPLAIN ANALYZE, which executes it).
func classifyExplain(sql string, c Classification, toks []token, names []string, schema string) (Classification, error) {
	w := words{toks}
	i := 1
	analyze := false
	for i < len(toks) {
		switch w.up(i) {
		case "EXTENDED", "PARTITIONS":
			i++
			continue
		case "ANALYZE":
			analyze = true
			i++
			continue
		case "FORMAT":
			i += 3 // FORMAT = name
			continue
		}
		break
	}
	switch w.up(i) {
	case "FOR":
		return c, deny("server_admin", "EXPLAIN FOR CONNECTION is not allowed")
	case "SELECT", "WITH", "INSERT", "REPLACE", "UPDATE", "DELETE", "VALUES", "TABLE":
		return classifyInner(sql, c, toks, i, schema, analyze)
	}
	if i < len(toks) && toks[i].kind == tkPunct && toks[i].ch == '(' {
		return classifyInner(sql, c, toks, i, schema, analyze)
	}
	if analyze || i >= len(toks) || !isName(toks[i]) {
		return c, deny("unparsable", "unrecognised %s statement", c.Verb)
	}
	c.Type = TypeRead
	tb := nameOf(sql, toks[i])
	if i+2 < len(toks) && toks[i+1].kind == tkPunct && toks[i+1].ch == '.' {
		tb += "." + nameOf(sql, toks[i+2])
	}
	c.Tables = []string{tb}
	return c, nil
}

// adminShows are SHOW statements about the server rather than the database.
var adminShows = map[string]bool{
	"ENGINE": true, "ENGINES": false, "BINARY": true, "BINLOG": true, "MASTER": true, "SLAVE": true,
	"REPLICA": true, "REPLICAS": true, "RELAYLOG": true, "PROFILE": true, "PROFILES": true,
	"PLUGINS": true, "MUTEX": true,
}

// classifyShow handles SHOW: a read, unless it is about the server
// (server_admin) or names another schema with FROM/IN (other_schema).
func classifyShow(sql string, c Classification, w words, names []string, schema string) (Classification, error) {
	i := 1
	for w.anyAt(i, "FULL", "GLOBAL", "SESSION", "EXTENDED", "STORAGE", "ALL") {
		i++
	}
	kind := w.up(i)
	if adminShows[kind] {
		return c, deny("server_admin", "SHOW %s is not allowed", kind)
	}
	if !readableShows[kind] {
		return c, deny("server_information", "SHOW %s is not allowed: it shows the server or other sessions, not this database", kind)
	}
	if kind == "CREATE" {
		switch w.up(i + 1) {
		case "USER", "ROLE":
			return c, deny("server_information", "SHOW CREATE %s is not allowed: it shows the account's password hash", w.up(i+1))
		case "DATABASE", "SCHEMA":
			j := i + 2
			if w.is(j, "IF") {
				j += 3 // IF NOT EXISTS
			}
			if j < len(w.toks) && isName(w.toks[j]) && nameOf(sql, w.toks[j]) != schema {
				return c, deny("other_schema", "only the database's own schema may be referenced, not %q", nameOf(sql, w.toks[j]))
			}
		}
	}
	// SHOW COLUMNS/INDEX FROM tbl [FROM db]; SHOW TABLES/TRIGGERS/... [FROM db]
	skip := 0
	switch kind {
	case "COLUMNS", "FIELDS", "INDEX", "INDEXES", "KEYS":
		skip = 1
	}
	for j := i + 1; j < len(w.toks); j++ {
		if w.anyAt(j, "FROM", "IN") {
			if skip > 0 {
				skip--
				continue
			}
			if j+1 < len(w.toks) && isName(w.toks[j+1]) {
				// the schema name; qualified table names were checked by scanNames
				if j+2 >= len(w.toks) || !(w.toks[j+2].kind == tkPunct && w.toks[j+2].ch == '.') {
					if db := nameOf(sql, w.toks[j+1]); db != schema {
						return c, deny("other_schema", "only the database's own schema may be referenced, not %q", db)
					}
				}
			}
		}
		if w.anyAt(j, "LIKE", "WHERE") {
			break
		}
	}
	c.Type = TypeRead
	switch kind {
	case "CREATE":
		c.Tables = names
	case "COLUMNS", "FIELDS", "INDEX", "INDEXES", "KEYS":
		if len(names) > 0 {
			c.Tables = names[:1] // a second FROM names the schema
		}
	}
	return c, nil
}

// classifySet handles SET: session-scoped settings are "other"; global,
// password and role changes are refused; SET STATEMENT ... FOR stmt is
// classified as stmt.
func classifySet(sql string, c Classification, toks []token, schema string) (Classification, error) {
	w := words{toks}
	switch w.up(1) {
	case "PASSWORD":
		return c, deny("set_global", "SET PASSWORD is not allowed")
	case "ROLE", "DEFAULT":
		return c, deny("account_management", "SET %s is not allowed", w.up(1))
	case "STATEMENT":
		depth := 0
		for i := 2; i < len(toks); i++ {
			t := toks[i]
			if t.kind == tkPunct && t.ch == '(' {
				depth++
			} else if t.kind == tkPunct && t.ch == ')' {
				depth--
			} else if depth == 0 && t.kind == tkWord && t.up == "FOR" {
				if d := checkSetVars(sql, toks[2:i], false); d != nil {
					return c, d
				}
				in, err := classifyTokens(sql, toks[i+1:], schema)
				if err != nil {
					return c, err
				}
				return in, nil
			}
		}
		return c, deny("unparsable", "SET STATEMENT without FOR")
	}
	if d := checkSetVars(sql, toks[1:], false); d != nil {
		return c, d
	}
	c.Type = TypeOther
	return c, nil
}

// safeCharsets may be chosen as client character set: they cannot make a
// backslash or quote byte part of a multi-byte character, and MariaDB's lexer
// finds the same spaces and comments in UTF-8 text under them as under utf8mb4.
// Not latin1: there the byte 0xa0 (inside many UTF-8 characters) is a space.
var safeCharsets = map[string]bool{
	"UTF8": true, "UTF8MB3": true, "UTF8MB4": true, "ASCII": true, "BINARY": true, "DEFAULT": true,
}

// safeCharsetAt checks the value following toks[i] (skipping '=' and ':=').
func safeCharsetAt(sql string, toks []token, i int) bool {
	for i < len(toks) && toks[i].kind == tkPunct && (toks[i].ch == '=' || toks[i].ch == ':') {
		i++
	}
	if i >= len(toks) {
		return false
	}
	t := toks[i]
	v := sql[t.start:t.end]
	if t.kind == tkString || t.kind == tkQuoted {
		v = v[1 : len(v)-1]
	}
	return safeCharsets[strings.ToUpper(v)]
}

// markFlags sets c.Routine, c.ForeignKey and c.Rewrites from the tokens of an allowed statement.
//
// Routine looks at the statement itself (and at the statement after SET STATEMENT ... FOR).
// ForeignKey and Rewrites look at every CREATE TABLE and ALTER TABLE in the token stream, so a
// routine body that would declare a foreign key or drop a column later is flagged too.
//
// Rewrites is set for an ALTER TABLE with a clause that
//   - drops a column: DROP [COLUMN] [IF EXISTS] x (not DROP INDEX/KEY/PRIMARY KEY/FOREIGN KEY/
//     CONSTRAINT/CHECK/PERIOD, nor ALTER COLUMN x DROP DEFAULT),
//   - redefines a column: MODIFY, CHANGE,
//   - rebuilds the table: CONVERT TO CHARACTER SET, ENGINE[=], FORCE,
//   - rewrites or deletes partitions: PARTITION BY, REMOVE PARTITIONING, DROP/TRUNCATE/
//     REORGANIZE/COALESCE PARTITION.
//
// ALTER COLUMN x SET/DROP DEFAULT, RENAME, ADD, DROP INDEX and table options other than ENGINE
// (DEFAULT CHARSET, COMMENT, ...) are metadata changes and are not flagged.
func markFlags(c *Classification, toks []token) {
	c.Routine = c.Routine || routineDDL(toks)
	for i := 0; i < len(toks); i++ {
		w := words{toks[i:]}
		verb := w.up(0)
		if verb != "CREATE" && verb != "ALTER" {
			continue
		}
		j := 1
		for w.anyAt(j, "OR", "REPLACE", "TEMPORARY", "ONLINE", "OFFLINE", "IGNORE") {
			j++
		}
		if !w.is(j, "TABLE") {
			continue
		}
		end := i + j + 1
		for end < len(toks) && !(toks[end].kind == tkPunct && toks[end].ch == ';') {
			end++
		}
		body := toks[i+j+1 : end]
		if declaresForeignKey(body) {
			c.ForeignKey = true
		}
		if verb == "ALTER" && rewritesTable(body) {
			c.Rewrites = true
		}
		i = end - 1
	}
}

// routineDDL reports whether toks is CREATE/ALTER/DROP of a PROCEDURE, FUNCTION, TRIGGER, EVENT or
// PACKAGE, possibly behind SET STATEMENT ... FOR.
func routineDDL(toks []token) bool {
	w := words{toks}
	switch w.up(0) {
	case "SET":
		if !w.is(1, "STATEMENT") {
			return false
		}
		depth := 0
		for i := 2; i < len(toks); i++ {
			t := toks[i]
			switch {
			case t.kind == tkPunct && t.ch == '(':
				depth++
			case t.kind == tkPunct && t.ch == ')':
				depth--
			case depth == 0 && t.kind == tkWord && t.up == "FOR":
				return routineDDL(toks[i+1:])
			}
		}
		return false
	case "CREATE", "ALTER", "DROP":
	default:
		return false
	}
	for i := 1; i < len(toks) && i < 32; i++ {
		t := toks[i]
		if t.kind == tkPunct {
			if t.ch == '=' || t.ch == '(' || t.ch == ')' || t.ch == '@' {
				continue // DEFINER = CURRENT_USER[()]
			}
			return false
		}
		if t.kind != tkWord {
			continue // a DEFINER's user and host (refused by deniedVerb unless CURRENT_USER)
		}
		switch t.up {
		case "PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "PACKAGE":
			return true
		case "OR", "REPLACE", "DEFINER", "CURRENT_USER", "AGGREGATE":
		default:
			return false
		}
	}
	return false
}

// declaresForeignKey reports whether the definition of a CREATE or ALTER TABLE (the tokens after
// TABLE) declares a foreign key: REFERENCES anywhere (a FOREIGN KEY clause or a column's inline
// reference), or FOREIGN KEY other than DROP FOREIGN KEY.
func declaresForeignKey(toks []token) bool {
	w := words{toks}
	for i, t := range toks {
		if t.kind != tkWord {
			continue
		}
		switch t.up {
		case "REFERENCES":
			return true
		case "FOREIGN":
			if i == 0 || !w.is(i-1, "DROP") {
				return true
			}
		}
	}
	return false
}

// keptByDrop are the words after DROP in ALTER TABLE that drop something other than a column.
var keptByDrop = map[string]bool{
	"INDEX": true, "KEY": true, "PRIMARY": true, "FOREIGN": true, "CONSTRAINT": true, "CHECK": true,
	"UNIQUE": true, "FULLTEXT": true, "SPATIAL": true, "PERIOD": true, "DEFAULT": true,
}

// alterVerbs start ALTER TABLE clauses that are not table options.
var alterVerbs = map[string]bool{
	"ADD": true, "DROP": true, "MODIFY": true, "CHANGE": true, "ALTER": true, "RENAME": true,
	"ORDER": true, "ALGORITHM": true, "LOCK": true, "CONVERT": true, "DISCARD": true, "IMPORT": true,
	"ENABLE": true, "DISABLE": true, "FORCE": true, "VALIDATION": true, "WITH": true, "WITHOUT": true,
}

// rewritesTable reports whether an ALTER TABLE (the tokens after TABLE) drops or redefines a column
// or rebuilds the table; see markFlags.
func rewritesTable(toks []token) bool {
	w := words{toks}
	isPunct := func(i int, ch byte) bool { return i < len(toks) && toks[i].kind == tkPunct && toks[i].ch == ch }
	k := 0
	if w.is(0, "IF") && w.is(1, "EXISTS") {
		k = 2
	}
	k++ // the table name
	for isPunct(k, '.') {
		k += 2
	}
	if w.is(k, "WAIT") {
		k += 2
	} else if w.is(k, "NOWAIT") {
		k++
	}
	depth := 0
	clauseStart, optionClause := true, false
	for i := k; i < len(toks); i++ {
		t := toks[i]
		if t.kind == tkPunct {
			switch t.ch {
			case '(':
				depth++
			case ')':
				depth--
			case ',':
				if depth == 0 {
					clauseStart = true
				}
			}
			continue
		}
		if depth != 0 {
			continue
		}
		u := w.up(i)
		if clauseStart {
			clauseStart = false
			optionClause = t.kind == tkWord && !alterVerbs[u]
			switch u {
			case "DROP":
				if !keptByDrop[w.up(i+1)] {
					return true // a column (or a partition, or system versioning)
				}
			case "MODIFY", "CHANGE", "FORCE":
				return true
			case "TRUNCATE", "REORGANIZE", "COALESCE":
				if w.is(i+1, "PARTITION") {
					return true
				}
			case "REMOVE":
				if w.is(i+1, "PARTITIONING") {
					return true
				}
			}
		}
		switch u {
		case "CONVERT":
			if w.is(i+1, "TO") {
				return true
			}
		case "ENGINE":
			if isPunct(i+1, '=') || (optionClause && i+1 < len(toks) && toks[i+1].kind != tkPunct) {
				return true
			}
		case "PARTITION":
			if w.is(i+1, "BY") {
				return true
			}
		}
	}
	return false
}
