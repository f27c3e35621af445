package sqlcheck

import "strings"

// The rules of this file keep a tenant's statement inside its own schema and session: what it
// may call, read, set and store reaches nothing that belongs to the server or to another tenant
// (docs/SECURITY.md, "The SQL boundary"). Each list is an allowlist where the space is open-ended
// (system variables, SHOW kinds, sql_mode names, storage engines) and a denylist where it is a
// known handful (built-in functions).

// serverFunctions are built-in functions whose effect or answer reaches beyond the tenant: user-
// level locks (their names are server-wide, so one tenant could hold another's or the platform's
// lock, and a pooled session would keep it), replication waits and positions, and the shell UDFs
// some servers install. SLEEP and BENCHMARK are not here: the statement timeout ends them like any
// other long statement.
var serverFunctions = map[string]bool{
	"GET_LOCK": true, "RELEASE_LOCK": true, "RELEASE_ALL_LOCKS": true, "IS_FREE_LOCK": true, "IS_USED_LOCK": true,
	"MASTER_POS_WAIT": true, "SOURCE_POS_WAIT": true, "MASTER_GTID_WAIT": true, "WAIT_FOR_EXECUTED_GTID_SET": true,
	"WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS": true, "BINLOG_GTID_POS": true,
	"SYS_EXEC": true, "SYS_EVAL": true, "SYS_GET": true, "SYS_SET": true,
}

// readableVars are the system variables a statement may read (@@name, @@session.name): the
// session's own settings and counters. Every other one (@@hostname, @@datadir, @@server_id, the
// paths, the replication state, ...) describes the server, and every @@global. value is the
// server's.
var readableVars = map[string]bool{
	"VERSION": true, "VERSION_COMMENT": true, "SQL_MODE": true, "AUTOCOMMIT": true, "TIME_ZONE": true,
	"CHARACTER_SET_CLIENT": true, "CHARACTER_SET_CONNECTION": true, "CHARACTER_SET_RESULTS": true,
	"CHARACTER_SET_DATABASE": true, "COLLATION_CONNECTION": true, "COLLATION_DATABASE": true,
	"TX_ISOLATION": true, "TRANSACTION_ISOLATION": true, "TX_READ_ONLY": true, "TRANSACTION_READ_ONLY": true,
	"IN_TRANSACTION": true, "FOREIGN_KEY_CHECKS": true, "UNIQUE_CHECKS": true, "SQL_SAFE_UPDATES": true,
	"SQL_AUTO_IS_NULL": true, "AUTO_INCREMENT_INCREMENT": true, "AUTO_INCREMENT_OFFSET": true,
	"DIV_PRECISION_INCREMENT": true, "GROUP_CONCAT_MAX_LEN": true, "LC_TIME_NAMES": true, "TIMESTAMP": true,
	"LAST_INSERT_ID": true, "IDENTITY": true, "INSERT_ID": true, "WARNING_COUNT": true, "ERROR_COUNT": true,
	"MAX_STATEMENT_TIME": true, "SQL_SELECT_LIMIT": true, "LOCK_WAIT_TIMEOUT": true, "INNODB_LOCK_WAIT_TIMEOUT": true,
	"MAX_ALLOWED_PACKET": true, "SQL_NOTES": true, "SQL_WARNINGS": true, "SQL_QUOTE_SHOW_CREATE": true,
	"INNODB_STRICT_MODE": true, "DEFAULT_STORAGE_ENGINE": true, "STORAGE_ENGINE": true,
	"LOWER_CASE_TABLE_NAMES": true, "EXPLICIT_DEFAULTS_FOR_TIMESTAMP": true, "MAX_RECURSIVE_ITERATIONS": true,
}

// settableVars are the session variables a statement may set: how the session reads and writes
// the tenant's own data. The limits the platform sets on every statement (max_statement_time,
// sql_select_limit, and MySQL's max_execution_time) are not here, nor are the memory and size
// settings (tmp_table_size, sort_buffer_size, ...) that would let one session take more of the
// server than the defaults give it. character_set_* and sql_mode are checked for their value too.
var settableVars = map[string]bool{
	"AUTOCOMMIT": true, "SQL_MODE": true, "TIME_ZONE": true,
	"CHARACTER_SET_CLIENT": true, "CHARACTER_SET_CONNECTION": true, "CHARACTER_SET_RESULTS": true, "COLLATION_CONNECTION": true,
	"TX_ISOLATION": true, "TRANSACTION_ISOLATION": true, "TX_READ_ONLY": true, "TRANSACTION_READ_ONLY": true,
	"FOREIGN_KEY_CHECKS": true, "UNIQUE_CHECKS": true, "SQL_SAFE_UPDATES": true, "SQL_AUTO_IS_NULL": true,
	"AUTO_INCREMENT_INCREMENT": true, "AUTO_INCREMENT_OFFSET": true, "DIV_PRECISION_INCREMENT": true,
	"GROUP_CONCAT_MAX_LEN": true, "LC_TIME_NAMES": true, "TIMESTAMP": true, "INSERT_ID": true,
	"LAST_INSERT_ID": true, "IDENTITY": true, "LOCK_WAIT_TIMEOUT": true, "INNODB_LOCK_WAIT_TIMEOUT": true,
	"SQL_NOTES": true, "SQL_WARNINGS": true, "SQL_QUOTE_SHOW_CREATE": true, "INNODB_STRICT_MODE": true,
}

// platformLimits are the session variables the engine sets on every statement; routine bodies,
// whose local variables may shadow other names, are refused assignments to these at least.
var platformLimits = map[string]bool{
	"MAX_STATEMENT_TIME": true, "MAX_EXECUTION_TIME": true, "SQL_SELECT_LIMIT": true,
}

// safeSQLModes are the sql_mode names a session may set: none changes how a statement is lexed.
// Left out: ANSI_QUOTES and NO_BACKSLASH_ESCAPES, and every combination that implies one of them
// or changes the grammar (ANSI, DB2, MAXDB, MSSQL, ORACLE, POSTGRESQL); unknown names too.
var safeSQLModes = map[string]bool{
	"": true, "REAL_AS_FLOAT": true, "PIPES_AS_CONCAT": true, "IGNORE_SPACE": true, "IGNORE_BAD_TABLE_OPTIONS": true,
	"ONLY_FULL_GROUP_BY": true, "NO_UNSIGNED_SUBTRACTION": true, "NO_DIR_IN_CREATE": true, "NO_AUTO_VALUE_ON_ZERO": true,
	"NO_TABLE_OPTIONS": true, "NO_FIELD_OPTIONS": true, "NO_KEY_OPTIONS": true,
	"NO_ZERO_IN_DATE": true, "NO_ZERO_DATE": true, "ALLOW_INVALID_DATES": true, "ERROR_FOR_DIVISION_BY_ZERO": true,
	"STRICT_TRANS_TABLES": true, "STRICT_ALL_TABLES": true, "TRADITIONAL": true, "NO_AUTO_CREATE_USER": true,
	"HIGH_NOT_PRECEDENCE": true, "NO_ENGINE_SUBSTITUTION": true, "PAD_CHAR_TO_FULL_LENGTH": true,
	"EMPTY_STRING_IS_NULL": true, "SIMULTANEOUS_ASSIGNMENT": true, "TIME_ROUND_FRACTIONAL": true,
}

// tableEngines are the storage engines a table may be created with or altered to: they keep its
// data in the server's data directory. CONNECT, FEDERATED(X), SPIDER, S3, OQGRAPH and the like
// read files or reach other servers.
var tableEngines = map[string]bool{
	"INNODB": true, "ARIA": true, "MYISAM": true, "MEMORY": true, "HEAP": true, "ARCHIVE": true, "CSV": true,
	"BLACKHOLE": true, "MRG_MYISAM": true, "MERGE": true, "SEQUENCE": true, "DEFAULT": true,
}

// readableShows are the SHOW statements about the database's own objects, or about nothing
// tenant-specific (character sets, collations, engines, privilege names). Everything else
// (VARIABLES, STATUS, GRANTS, PROCESSLIST, CREATE USER, OPEN TABLES, the *_STATISTICS of the
// userstat plugin, EXPLAIN/ANALYZE FOR a connection, ...) shows the server or other sessions.
var readableShows = map[string]bool{
	"TABLES": true, "TABLE": true, "COLUMNS": true, "FIELDS": true, "INDEX": true, "INDEXES": true, "KEYS": true,
	"CREATE": true, "TRIGGERS": true, "EVENTS": true, "WARNINGS": true, "ERRORS": true, "COUNT": true,
	"PROCEDURE": true, "FUNCTION": true, "PACKAGE": true, "CHARACTER": true, "CHARSET": true, "COLLATION": true,
	"ENGINES": true, "DATABASES": true, "SCHEMAS": true, "PRIVILEGES": true,
}

// isPunctAt reports whether toks[i] is the punctuation ch.
func isPunctAt(toks []token, i int, ch byte) bool {
	return i >= 0 && i < len(toks) && toks[i].kind == tkPunct && toks[i].ch == ch
}

// assignsAt reports whether toks[i] is followed by = or :=.
func assignsAt(toks []token, i int) bool {
	return isPunctAt(toks, i+1, '=') || (isPunctAt(toks, i+1, ':') && isPunctAt(toks, i+2, '='))
}

// systemVar splits a @@ variable token's upper-case text into the variable's name and whether it
// names the global value. ok is false for a bare @ or @@, whose name would follow as separate
// tokens (refused: the classifier does not follow it).
func systemVar(up string) (name string, global, ok bool) {
	name = strings.TrimPrefix(up, "@@")
	for _, q := range []string{"`", "'", `"`} {
		name = strings.ReplaceAll(name, q, "")
	}
	switch {
	case strings.HasPrefix(name, "GLOBAL."):
		name, global = strings.TrimPrefix(name, "GLOBAL."), true
	case strings.HasPrefix(name, "PERSIST"): // MySQL's @@PERSIST.x and @@PERSIST_ONLY.x
		name, global = name[strings.IndexByte(name, '.')+1:], true
	case strings.HasPrefix(name, "SESSION."):
		name = strings.TrimPrefix(name, "SESSION.")
	case strings.HasPrefix(name, "LOCAL."):
		name = strings.TrimPrefix(name, "LOCAL.")
	}
	return name, global, name != ""
}

// boundaryChecks refuses, anywhere in a statement (subqueries, view and routine bodies, default
// expressions included): calls of serverFunctions (bare or backquoted names), reads of system variables other than
// readableVars (assignments are classifySet's), DATA/INDEX DIRECTORY, and in CREATE and ALTER
// statements storage engines other than tableEngines and the CONNECTION table option.
func boundaryChecks(sql string, toks []token) *Denied {
	w := words{toks}
	verb := w.up(0)
	for i, t := range toks {
		switch t.kind {
		case tkVar:
			if !strings.HasPrefix(t.up, "@@") {
				if t.up == "@" {
					return deny("unparsable", "a bare @ is not allowed")
				}
				continue
			}
			if verb == "SET" && assignsAt(toks, i) {
				continue // an assignment: classifySet decides
			}
			name, global, ok := systemVar(t.up)
			switch {
			case !ok:
				return deny("unparsable", "a bare @@ is not allowed")
			case global:
				return deny("server_information", "@@GLOBAL values describe the server; read the session's value (@@%s)", strings.ToLower(name))
			case !readableVars[name]:
				return deny("server_information", "@@%s describes the server, not this database", strings.ToLower(name))
			}
		case tkQuoted:
			if name := strings.ToUpper(t.up); serverFunctions[name] && isPunctAt(toks, i+1, '(') {
				return denyServerFunction(name)
			}
		case tkWord:
			switch {
			case serverFunctions[t.up] && isPunctAt(toks, i+1, '('):
				return denyServerFunction(t.up)
			case t.up == "DIRECTORY" && (w.is(i-1, "DATA") || w.is(i-1, "INDEX")) && i+1 < len(toks) && (isPunctAt(toks, i+1, '=') || toks[i+1].kind == tkString):
				return deny("file_access", "%s DIRECTORY is not allowed: a table's files stay in the server's data directory", toks[i-1].up)
			case (verb == "CREATE" || verb == "ALTER") && t.up == "ENGINE":
				if d := checkEngine(sql, toks, i); d != nil {
					return d
				}
			case (verb == "CREATE" || verb == "ALTER") && t.up == "CONNECTION" && (isPunctAt(toks, i+1, '=') || (i+1 < len(toks) && toks[i+1].kind == tkString)):
				return deny("storage_engine", "the CONNECTION table option is not allowed: a table's data stays on this server")
			}
		}
	}
	return nil
}

// denyServerFunction refuses a call of one of serverFunctions. MariaDB resolves a built-in
// function's name written in backquotes (`GET_LOCK`(...)), with spaces or comments before the
// parenthesis, as well as bare: the checks look at the name, not at how it is written.
func denyServerFunction(name string) *Denied {
	return deny("server_function", "%s() is not allowed: it reaches beyond this database (user-level locks and replication state are the server's)", name)
}

// checkEngine checks the storage engine named after the ENGINE at toks[i]. With "=", any engine
// outside tableEngines is refused; without, only a name that is a known engine outside it (so a
// column called engine stays allowed).
func checkEngine(sql string, toks []token, i int) *Denied {
	j := i + 1
	withEquals := isPunctAt(toks, j, '=')
	if withEquals {
		j++
	}
	if j >= len(toks) {
		return nil
	}
	var name string
	switch t := toks[j]; t.kind {
	case tkWord, tkQuoted:
		name = strings.ToUpper(t.up)
	case tkString:
		name = strings.ToUpper(sql[t.start+1 : t.end-1])
	default:
		return nil
	}
	if tableEngines[name] || (!withEquals && !foreignEngines[name]) {
		return nil
	}
	return deny("storage_engine", "ENGINE %s is not allowed: tables use %s", name, "InnoDB, Aria, MyISAM, MEMORY, ARCHIVE, CSV, BLACKHOLE or MERGE")
}

// foreignEngines are engines known to read files or reach other servers: refused even where
// ENGINE is written without "=".
var foreignEngines = map[string]bool{
	"CONNECT": true, "FEDERATED": true, "FEDERATEDX": true, "SPIDER": true, "S3": true, "OQGRAPH": true,
	"PERFORMANCE_SCHEMA": true,
}

// checkSetVars checks the assignments of a SET (toks after SET, or between SET STATEMENT and FOR):
// no global ones; session variables in settableVars only, with safe character sets and sql_mode
// values; user variables freely. In a routine body (inRoutine), a bare name may be a local
// variable: only platformLimits and the lexing settings are refused there.
func checkSetVars(sql string, toks []token, inRoutine bool) *Denied {
	start, depth := 0, 0
	for i := 0; i <= len(toks); i++ {
		if i < len(toks) {
			switch {
			case isPunctAt(toks, i, '('):
				depth++
				continue
			case isPunctAt(toks, i, ')'):
				depth--
				continue
			case !(isPunctAt(toks, i, ',') && depth == 0):
				continue
			}
		}
		stop, d := checkAssignment(sql, toks[start:i], inRoutine)
		if d != nil || stop {
			return d
		}
		start = i + 1
	}
	return nil
}

// checkAssignment checks one assignment of a SET list; stop is set when the rest of the list is
// not a list of assignments (SET TRANSACTION ...).
func checkAssignment(sql string, a []token, inRoutine bool) (stop bool, d *Denied) {
	w := words{a}
	i := 0
	switch w.up(0) {
	case "GLOBAL", "PERSIST", "PERSIST_ONLY":
		return false, deny("set_global", "SET %s is not allowed", w.up(0))
	case "SESSION", "LOCAL":
		i = 1
	}
	if i >= len(a) {
		return false, deny("unparsable", "SET without a variable")
	}
	t := a[i]
	var name string
	switch t.kind {
	case tkVar:
		if !strings.HasPrefix(t.up, "@@") {
			return false, nil // a user variable
		}
		var global, ok bool
		if name, global, ok = systemVar(t.up); !ok {
			return false, deny("unparsable", "a bare @@ is not allowed")
		} else if global {
			return false, deny("set_global", "SET %s is not allowed", sql[t.start:t.end])
		}
		inRoutine = false // explicitly a system variable
	case tkWord:
		name = t.up
		switch name {
		case "TRANSACTION":
			return true, nil
		case "NAMES", "CHARSET":
			return false, charsetCheck(sql, a, i+1)
		case "CHARACTER":
			if w.is(i+1, "SET") {
				return false, charsetCheck(sql, a, i+2)
			}
		}
		if isPunctAt(a, i+1, '.') {
			return false, nil // NEW.col or a routine's record field
		}
	case tkQuoted:
		name = strings.ToUpper(t.up)
	default:
		return false, deny("unparsable", "SET of something that is not a variable")
	}
	switch name {
	case "CHARACTER_SET_CLIENT", "CHARACTER_SET_CONNECTION":
		return false, charsetCheck(sql, a, i+1)
	case "SQL_MODE":
		if !safeSQLModeAt(sql, a, i+1) {
			return false, deny("session_settings", "sql_mode must be one literal of modes that do not change how statements are read: not ANSI_QUOTES, NO_BACKSLASH_ESCAPES, nor a combination such as ANSI, ORACLE, MSSQL, DB2, POSTGRESQL or MAXDB")
		}
		return false, nil
	}
	if platformLimits[name] {
		return false, deny("session_settings", "%s is set by the platform on every statement: lower the request's timeout_s or row_limit instead", strings.ToLower(name))
	}
	if !inRoutine && !settableVars[name] {
		return false, deny("session_settings", "SET %s is not allowed: only the session's own settings (sql_mode, time_zone, autocommit, isolation, character sets, checks, lock wait timeouts, ...) may be set", strings.ToLower(name))
	}
	return false, nil
}

func charsetCheck(sql string, toks []token, i int) *Denied {
	if !safeCharsetAt(sql, toks, i) {
		return deny("session_settings", "only utf8mb4, utf8 and ascii may be set as character set")
	}
	return nil
}

// safeSQLModeAt checks the sql_mode value following toks[i]: one string or keyword (no variable,
// number or expression, which could hide a mode) naming only safeSQLModes, or DEFAULT.
func safeSQLModeAt(sql string, toks []token, i int) bool {
	for i < len(toks) && toks[i].kind == tkPunct && (toks[i].ch == '=' || toks[i].ch == ':') {
		i++
	}
	if i >= len(toks) || (toks[i].kind != tkString && toks[i].kind != tkWord) {
		return false
	}
	if i+1 < len(toks) && !isPunctAt(toks, i+1, ',') {
		return false
	}
	v := strings.ToUpper(sql[toks[i].start:toks[i].end])
	if toks[i].kind == tkWord {
		return v == "DEFAULT" || safeSQLModes[v]
	}
	v = v[1 : len(v)-1]
	for _, mode := range strings.Split(v, ",") {
		if !safeSQLModes[strings.TrimSpace(mode)] {
			return false
		}
	}
	return true
}

// routineSets checks every SET of a routine body with checkSetVars (UPDATE ... SET and INSERT ...
// SET included, where the names are columns, which routine mode lets through): a procedure could
// otherwise switch the session to ANSI_QUOTES or lift the statement timeout for what runs after
// it. CHARACTER SET and the SET(...) column type are not assignments.
func routineSets(sql string, toks []token) *Denied {
	w := words{toks}
	for i := 1; i < len(toks); i++ {
		if !w.is(i, "SET") || w.is(i-1, "CHARACTER") || isPunctAt(toks, i+1, '(') {
			continue
		}
		end := i + 1
		for end < len(toks) && !isPunctAt(toks, end, ';') && !w.anyAt(end, "END", "WHERE", "ORDER", "LIMIT") {
			end++
		}
		if d := checkSetVars(sql, toks[i+1:end], true); d != nil {
			return d
		}
	}
	return nil
}
