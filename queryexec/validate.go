package queryexec

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// Issue is one reason a statement would not run.
type Issue struct {
	Code     string    `json:"code"` // the API error code the query would get
	Reason   string    `json:"reason,omitempty"`
	Message  string    `json:"message"`
	Position *Position `json:"position,omitempty"`
}

// Suggestion is advice on a statement that would run.
type Suggestion struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Validation is the answer of POST /databases/{id}/validate.
type Validation struct {
	Valid         bool                   `json:"valid"`
	StatementType sqlcheck.StatementType `json:"statement_type,omitempty"`
	Errors        []Issue                `json:"errors"`
	Suggestions   []Suggestion           `json:"suggestions"`
}

// Suggestion thresholds.
const (
	largeTableRows   = 1_000 // a full scan of a table this large deserves an index
	wideTableColumns = 20    // SELECT * on a table this wide fetches more than is read
)

// Validate checks the request's SQL without running it: the classifier, the role and the
// tenant's restrictions, and (when the database is running) the server itself, which prepares the
// statement (syntax, unknown tables and columns) and explains it for suggestions: full scans of
// large tables, filesorts, temporary tables, SELECT * on wide tables, writes without WHERE.
// Several statements are validated one by one, positions counting in the whole text.
func (e *Engine) Validate(ctx context.Context, req Request) (Validation, error) {
	v := Validation{Errors: []Issue{}, Suggestions: []Suggestion{}}
	if strings.TrimSpace(req.SQL) == "" {
		return v, domain.NewValidationError("sql", "is required")
	}
	texts, err := sqlcheck.Split(req.SQL)
	if err != nil { // unterminated quotes or comments: the server says where, as one statement
		texts = []string{req.SQL}
	}
	if len(texts) > MaxStatements {
		return v, domain.NewValidationError("sql", fmt.Sprintf("holds %d statements; send at most %d per request", len(texts), MaxStatements))
	}
	if len(texts) > 1 && !req.Multi {
		v.Errors = append(v.Errors, Issue{Code: "statement_not_allowed", Reason: "multiple_statements",
			Message: fmt.Sprintf("%d statements: run them with multi: true", len(texts))})
	}
	schema := sandbox.SchemaName(e.fleet.Prefix(), string(req.Target.ID))
	decisions := make([]sqlcheck.Decision, len(texts))
	for i, text := range texts {
		decisions[i] = sqlcheck.Decide((&statement{sql: text, schema: schema}).question(req, nil))
	}
	var c *conn
	if req.Target.State == domain.StateRunning && len(decisions) > 0 {
		if c, err = e.session(ctx, req, decisions[0].Account); err == nil {
			defer e.pools.release(c, false, true)
		}
	}
	from := 0
	for i, text := range texts {
		at := from + strings.Index(req.SQL[from:], text)
		from = at + len(text)
		// What only a run answers (confirmation, the storage quota, the server's estimates) is
		// not validated: only the refusal is.
		cls, err := decisions[i].Class, decisions[i].Refusal
		if v.StatementType == "" {
			v.StatementType = cls.Type
		}
		if err != nil && !e.unparsable(err) {
			v.Errors = append(v.Errors, issueOf(err, req.SQL, at))
			continue
		}
		if c == nil {
			if err != nil {
				v.Errors = append(v.Errors, issueOf(err, req.SQL, at))
			}
			continue
		}
		if perr := prepareOnly(ctx, c, text); perr != nil {
			v.Errors = append(v.Errors, issueOf(TranslateError(perr, text, schema, req.Target.Name), req.SQL, at))
			continue
		}
		if err != nil { // the server could prepare what the classifier cannot place: still refused
			v.Errors = append(v.Errors, issueOf(err, req.SQL, at))
			continue
		}
		v.Suggestions = append(v.Suggestions, e.suggest(ctx, c, cls, text)...)
	}
	v.Valid = len(v.Errors) == 0
	return v, nil
}

// unparsable reports whether err is the classifier giving up on a statement it cannot read, which
// may be a syntax error the server can place.
func (e *Engine) unparsable(err error) bool {
	var d *sqlcheck.Denied
	return errors.As(err, &d) && d.Reason == "unparsable"
}

// syntaxCheck asks the server to prepare a statement the classifier could not read: a syntax
// error comes back with its position instead of a refusal, and st's record says so.
func (e *Engine) syntaxCheck(ctx context.Context, req Request, st *statement, denied error) error {
	c, err := e.session(ctx, req, st.decision.Account)
	if err != nil {
		return denied
	}
	defer e.pools.release(c, false, true)
	var qe *QueryError
	if err := TranslateError(prepareOnly(ctx, c, st.sql), st.sql, st.schema, st.name); errors.As(err, &qe) && qe.Syntax() {
		var multi *StatementError
		if errors.As(denied, &multi) {
			return &StatementError{Index: multi.Index, Err: e.fail(st, qe)}
		}
		return e.fail(st, qe)
	}
	return denied
}

// prepareOnly has the server parse and resolve the statement without running it. Statements the
// prepared-statement protocol does not take (1295) pass.
func prepareOnly(ctx context.Context, c *conn, text string) error {
	stmt, err := c.PrepareContext(ctx, text)
	if err == nil {
		return stmt.Close()
	}
	if sandbox.Errno(err) == 1295 {
		return nil
	}
	return err
}

// issueOf describes err for the validate answer; at is where the statement starts in sql.
func issueOf(err error, sql string, at int) Issue {
	var (
		d  *sqlcheck.Denied
		qe *QueryError
	)
	switch {
	case errors.As(err, &qe):
		is := Issue{Code: ErrorCode(qe), Message: qe.Message}
		if qe.Explanation != "" {
			is.Message = qe.Explanation + " " + qe.Message
		}
		if qe.Position != nil {
			p := PositionAt(sql, at+byteOffset(sql[at:], qe.Position.Offset))
			is.Position = &p
		}
		return is
	case errors.As(err, &d):
		return Issue{Code: "statement_not_allowed", Reason: d.Reason, Message: d.Message}
	}
	return Issue{Code: ErrorCode(err), Message: err.Error()}
}

// byteOffset converts a rune offset in s to a byte offset.
func byteOffset(s string, runes int) int {
	i := 0
	for n := 0; n < runes && i < len(s); n++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}

var selectStar = regexp.MustCompile(`(?is)^\s*SELECT\s+(ALL\s+|DISTINCT\s+)?\*|[.,]\s*\*`)

// suggest explains a statement and turns what the plan shows into advice.
func (e *Engine) suggest(ctx context.Context, c *conn, cls sqlcheck.Classification, text string) []Suggestion {
	var out []Suggestion
	if cls.NoWhere {
		out = append(out, Suggestion{Code: "no_where", Message: "This statement has no WHERE: it changes every row of the table."})
	}
	switch cls.Verb {
	case "SELECT", "WITH", "UPDATE", "DELETE", "INSERT", "REPLACE":
	default:
		return out
	}
	plan, err := explain(ctx, c, text)
	if err != nil {
		e.log.Debug("explain for suggestions failed", "err", err)
		return out
	}
	seen := map[string]bool{}
	add := func(code, msg string) {
		if !seen[code+msg] {
			seen[code+msg] = true
			out = append(out, Suggestion{Code: code, Message: msg})
		}
	}
	for _, step := range plan {
		if step.accessType == "ALL" && step.rows >= largeTableRows {
			add("full_scan", fmt.Sprintf("Reads all of %s (about %d rows): an index on the columns it filters or joins by would avoid that.", step.table, step.rows))
		}
		if strings.Contains(step.extra, "Using filesort") {
			add("filesort", "Sorts rows without an index (filesort): an index matching ORDER BY would avoid it.")
		}
		if strings.Contains(step.extra, "Using temporary") {
			add("temporary_table", "Builds a temporary table (GROUP BY, DISTINCT or UNION on unindexed columns).")
		}
	}
	if cls.Verb == "SELECT" && selectStar.MatchString(text) {
		for _, table := range cls.Tables {
			if n := columnCount(ctx, c, table); n > wideTableColumns {
				add("select_star", fmt.Sprintf("SELECT * on %s fetches all %d columns: name the ones you need.", table, n))
			}
		}
	}
	return out
}

type planStep struct {
	table, accessType, extra string
	rows                     int64
}

// explain runs EXPLAIN on the statement (which plans it and runs nothing that writes), bounded
// like a query.
func explain(ctx context.Context, c *conn, text string) ([]planStep, error) {
	prefix := "EXPLAIN "
	if c.server.Flavor() == sandbox.FlavorMariaDB {
		prefix = "SET STATEMENT max_statement_time=5 FOR EXPLAIN "
	}
	rows, err := c.QueryContext(ctx, prefix+text)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	values := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	var plan []planStep
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		var step planStep
		for i, name := range cols {
			switch strings.ToLower(name) {
			case "table":
				step.table = values[i].String
			case "type":
				step.accessType = values[i].String
			case "extra":
				step.extra = values[i].String
			case "rows":
				step.rows, _ = strconv.ParseInt(values[i].String, 10, 64)
			}
		}
		plan = append(plan, step)
	}
	return plan, rows.Err()
}

// columnCount is how many columns a table of the session's schema has (0 when unknown).
func columnCount(ctx context.Context, c *conn, table string) int {
	if i := strings.LastIndexByte(table, '.'); i >= 0 {
		table = table[i+1:]
	}
	var n int
	if err := c.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table).Scan(&n); err != nil {
		return 0
	}
	return n
}
