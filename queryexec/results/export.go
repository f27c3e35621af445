package results

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// Export formats.
const (
	ExportCSV  = "csv"
	ExportJSON = "json"
	ExportSQL  = "sql"
)

// ExportContentType returns the Content-Type and the file extension (without a dot: "csv") for
// format; ok=false for an unknown format.
func ExportContentType(format string) (contentType, ext string, ok bool) {
	switch format {
	case ExportCSV:
		return "text/csv; charset=utf-8", "csv", true
	case ExportJSON:
		return "application/json", "json", true
	case ExportSQL:
		return "application/sql", "sql", true
	}
	return "", "", false
}

// Exporter writes a result as it streams: Begin(cols) once, Row(row) per row (rows as RowReader
// makes them: JSON arrays, one value per column), End() once. Output goes through a 64 KiB
// bufio.Writer, flushed when full and by End; an Exporter holds nothing but that buffer and the
// scratch space of one row. Row returns the first write error. Not safe for concurrent use.
type Exporter interface {
	Begin(cols []Column) error
	Row(row json.RawMessage) error
	End() error
}

// ExportOptions say how NewExporter writes.
type ExportOptions struct {
	Format string // ExportCSV, ExportJSON or ExportSQL
	Table  string // the table name of the SQL INSERT statements (quoted as an identifier; "result" when empty)
	// RawFormulas: CSV text cells are written as they are, even those a spreadsheet would run as
	// a formula (for machine consumers). Off by default: such cells start with a ' (see below).
	RawFormulas bool
}

// NewExporter returns the exporter o.Format writing to w. An unknown format is a
// *domain.ValidationError on "format".
//
// CSV (RFC 4180): a header row of the column names, CRLF line ends, fields quoted when they hold
// a comma, a double quote, CR or LF, or start with a space or tab; a CR or LF inside a value is
// written as is. Unless o.RawFormulas, a text cell (a column name, or a string value of a column
// that is neither numeric, temporal nor JSON: text, binary as base64, BIT) that starts with =, +,
// -, @, tab or CR gets a leading ' so that a spreadsheet shows it instead of running it as a
// formula (OWASP's CSV injection advice); numbers, DECIMALs, dates and JSON are written as they
// are, so -5 stays a number. NULL is an empty field and an empty string a quoted empty field ("") — the
// convention of PostgreSQL's COPY … CSV; readers that ignore quoting, such as encoding/csv, see
// both as "". Values are the text of their JSON form: numbers as written, big integers and
// DECIMALs as their digits, dates as in JSON ("2006-01-02T15:04:05"), binary as base64, MySQL 8
// JSON values as JSON text.
//
// JSON: one array of objects, [{"col": value, ...}, ...], one object per line, keys in column
// order, the values exactly as in the rows; a repeated column name gets a suffix (a, a_2, a_3,
// skipping names another column has).
//
// SQL: INSERT INTO `table` (`a`, `b`) VALUES, then one row a line, "(...),", with at most 100
// rows and about 1 MiB per statement, each statement ending with ";\n" and no literal spanning
// lines (a value with a line break is written in hex), so splitting the file after ";\n" gives
// the statements. Column names are made unique as for JSON. Literals do not depend on
// sql_mode (NO_BACKSLASH_ESCAPES or not, ANSI_QUOTES or not):
//
//	NULL                       NULL
//	numbers, DECIMAL, big integers, BIT up to 48 bits
//	                           bare
//	binary types, GEOMETRY, wider BIT
//	                           X'hex'
//	text, dates, times, ENUM, SET, MySQL 8 JSON (its JSON text)
//	                           '…' with ' doubled when the text is printable (no control
//	                           character but tab, no backslash); else _utf8mb4 X'hex'
//	DATETIME, TIMESTAMP        '2006-01-02 15:04:05[.ffffff]' (the T and the Z dropped)
//
// TIMESTAMP values are UTC: when the result has a TIMESTAMP column, the first statement is
// SET time_zone = '+00:00'; (for the session that loads the file).
func NewExporter(w io.Writer, o ExportOptions) (Exporter, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	switch o.Format {
	case ExportCSV:
		return &csvExporter{exportBase: exportBase{w: bw}, rawFormulas: o.RawFormulas}, nil
	case ExportJSON:
		return &jsonExporter{exportBase: exportBase{w: bw}}, nil
	case ExportSQL:
		table := o.Table
		if table == "" {
			table = "result"
		}
		return &sqlExporter{exportBase: exportBase{w: bw}, table: table}, nil
	}
	return nil, domain.NewValidationError("format", "must be csv, json or sql")
}

// exportBatchRows and exportBatchBytes bound one INSERT statement of the SQL export.
const (
	exportBatchRows  = 100
	exportBatchBytes = 1 << 20
)

var (
	errExportOrder  = errors.New("queryexec: export: Begin, then Row for each row, then End")
	errExportRowEnd = errors.New("queryexec: export: row is not a JSON array")
)

// exportBase is what the exporters share: the buffered writer, the column kinds, the state and
// the scratch space of the current row.
type exportBase struct {
	w      *bufio.Writer
	cols   []Column
	kinds  []shapeKind
	state  int // 0 new, 1 begun, 2 ended
	rows   int64
	elems  [][]byte
	buf    []byte
	errRow error
}

func (e *exportBase) begin(cols []Column) error {
	if e.state != 0 {
		return errExportOrder
	}
	e.state = 1
	e.cols = cols
	e.kinds = make([]shapeKind, len(cols))
	for i, c := range cols {
		e.kinds[i] = shapeKindOf(c.Type)
	}
	return nil
}

// split splits a row into its values, checking there is one per column.
func (e *exportBase) split(row json.RawMessage) error {
	if e.state != 1 {
		return errExportOrder
	}
	var err error
	if e.elems, err = exportSplitRow(row, e.elems); err != nil {
		return fmt.Errorf("queryexec: export row %d: %w", e.rows+1, err)
	}
	if len(e.elems) != len(e.cols) {
		return fmt.Errorf("queryexec: export row %d: %d values for %d columns", e.rows+1, len(e.elems), len(e.cols))
	}
	e.rows++
	return nil
}

func (e *exportBase) end() error {
	if e.state != 1 {
		return errExportOrder
	}
	e.state = 2
	return nil
}

// uniqueColumnNames makes repeated names unique: the second "a" becomes "a_2" (or "a_3", … when
// another column is called so).
func uniqueColumnNames(cols []Column) []string {
	taken := make(map[string]bool, len(cols))
	for _, c := range cols {
		taken[c.Name] = true
	}
	used := make(map[string]bool, len(cols))
	names := make([]string, len(cols))
	for i, c := range cols {
		name := c.Name
		if used[name] {
			for k := 2; ; k++ {
				cand := name + "_" + strconv.Itoa(k)
				if !used[cand] && !taken[cand] {
					name = cand
					break
				}
			}
		}
		used[name] = true
		names[i] = name
	}
	return names
}

// ---- CSV

type csvExporter struct {
	exportBase
	rawFormulas bool
	cell        []byte // scratch: a cell with its leading '
}

// csvFormulaStart reports whether a spreadsheet would take a cell starting with c for a formula.
func csvFormulaStart(c byte) bool {
	switch c {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// csvTextKind reports whether string values of kind k are text to a spreadsheet: all but
// numbers, dates and times (which MySQL formats, a leading - meaning a negative value) and JSON.
func csvTextKind(k shapeKind) bool {
	switch k {
	case shapeInt, shapeDecimal, shapeFloat, shapeDate, shapeDatetime, shapeTimestamp, shapeTime, shapeJSON:
		return false
	}
	return true
}

func (e *csvExporter) Begin(cols []Column) error {
	if err := e.begin(cols); err != nil {
		return err
	}
	for i, c := range cols {
		if i > 0 {
			e.w.WriteByte(',')
		}
		e.writeText([]byte(c.Name))
	}
	_, err := e.w.WriteString("\r\n")
	return err
}

func (e *csvExporter) Row(row json.RawMessage) error {
	if err := e.split(row); err != nil {
		return err
	}
	for i, v := range e.elems {
		if i > 0 {
			e.w.WriteByte(',')
		}
		switch {
		case v[0] == 'n':
			if string(v) != "null" {
				return e.badValue(i, v)
			}
			// NULL: an empty, unquoted field.
		case v[0] == '"' && e.kinds[i] != shapeJSON:
			s, err := exportUnquote(e.buf[:0], v)
			if err != nil {
				return e.badValue(i, v)
			}
			e.buf = s
			if csvTextKind(e.kinds[i]) {
				e.writeText(s)
			} else {
				e.writeField(s, true)
			}
		case v[0] == '{' || v[0] == '[' || v[0] == '"':
			e.writeField(v, true)
		default:
			if !isJSONNumber(v) && string(v) != "true" && string(v) != "false" {
				return e.badValue(i, v)
			}
			e.w.Write(v)
		}
	}
	_, err := e.w.WriteString("\r\n")
	return err
}

// writeText writes a text cell, with a leading ' when a spreadsheet would run it as a formula.
func (e *csvExporter) writeText(f []byte) {
	if !e.rawFormulas && len(f) > 0 && csvFormulaStart(f[0]) {
		e.cell = append(append(e.cell[:0], '\''), f...)
		f = e.cell
	}
	e.writeField(f, true)
}

// writeField writes one field, quoted when needed (or when empty and quoteEmpty).
func (e *csvExporter) writeField(f []byte, quoteEmpty bool) {
	quote := len(f) == 0 && quoteEmpty ||
		bytes.ContainsAny(f, ",\"\r\n") || len(f) > 0 && (f[0] == ' ' || f[0] == '\t') || string(f) == `\.`
	if !quote {
		e.w.Write(f)
		return
	}
	e.w.WriteByte('"')
	for {
		i := bytes.IndexByte(f, '"')
		if i < 0 {
			break
		}
		e.w.Write(f[:i+1])
		e.w.WriteByte('"')
		f = f[i+1:]
	}
	e.w.Write(f)
	e.w.WriteByte('"')
}

func (e *csvExporter) End() error {
	if err := e.end(); err != nil {
		return err
	}
	return e.w.Flush()
}

// badValue reports a value that is not the JSON a RowReader makes.
func (e *exportBase) badValue(i int, v []byte) error {
	if len(v) > 40 {
		v = v[:40]
	}
	return fmt.Errorf("queryexec: export row %d, column %q: bad value %q", e.rows, e.cols[i].Name, v)
}

// ---- JSON

type jsonExporter struct {
	exportBase
	keys [][]byte // `{"a":` and `,"b":`
}

func (e *jsonExporter) Begin(cols []Column) error {
	if err := e.begin(cols); err != nil {
		return err
	}
	e.keys = make([][]byte, len(cols))
	for i, name := range uniqueColumnNames(cols) {
		sep := byte(',')
		if i == 0 {
			sep = '{'
		}
		e.keys[i] = append(appendJSONText([]byte{sep}, []byte(name)), ':')
	}
	_, err := e.w.WriteString("[")
	return err
}

func (e *jsonExporter) Row(row json.RawMessage) error {
	if err := e.split(row); err != nil {
		return err
	}
	if e.rows > 1 {
		e.w.WriteString(",\n")
	} else {
		e.w.WriteByte('\n')
	}
	for i, v := range e.elems {
		switch v[0] {
		case 'n', 't', 'f':
			if s := string(v); s != "null" && s != "true" && s != "false" {
				return e.badValue(i, v)
			}
		case '"':
			if bytes.IndexByte(v, '\\') >= 0 && !json.Valid(v) {
				return e.badValue(i, v)
			}
		case '{', '[':
			if !json.Valid(v) {
				return e.badValue(i, v)
			}
		default:
			if !isJSONNumber(v) {
				return e.badValue(i, v)
			}
		}
		e.w.Write(e.keys[i])
		e.w.Write(v)
	}
	if len(e.elems) == 0 {
		e.w.WriteByte('{')
	}
	_, err := e.w.WriteString("}")
	return err
}

func (e *jsonExporter) End() error {
	if err := e.end(); err != nil {
		return err
	}
	if e.rows > 0 {
		e.w.WriteByte('\n')
	}
	e.w.WriteString("]\n")
	return e.w.Flush()
}

// ---- SQL

type sqlExporter struct {
	exportBase
	table      string
	insert     []byte // INSERT INTO `t` (`a`, `b`) VALUES\n
	utc        bool   // a TIMESTAMP column: SET time_zone first
	inStmt     int    // rows in the open statement
	stmtBytes  int
	wroteSetTZ bool
	text, raw  []byte // scratch: a value's text, its decoded bytes
}

func (e *sqlExporter) Begin(cols []Column) error {
	if err := e.begin(cols); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(sqlcheck.QuoteIdent(e.table))
	b.WriteString(" (")
	for i, name := range uniqueColumnNames(cols) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(sqlcheck.QuoteIdent(name))
	}
	b.WriteString(") VALUES\n")
	e.insert = []byte(b.String())
	for _, k := range e.kinds {
		e.utc = e.utc || k == shapeTimestamp
	}
	return nil
}

func (e *sqlExporter) Row(row json.RawMessage) error {
	if err := e.split(row); err != nil {
		return err
	}
	b := append(e.buf[:0], '(')
	var err error
	for i, v := range e.elems {
		if i > 0 {
			b = append(b, ", "...)
		}
		if b, err = e.appendValue(b, e.kinds[i], v); err != nil {
			e.buf = b
			return e.badValue(i, v)
		}
	}
	b = append(b, ')')
	e.buf = b
	if e.inStmt > 0 && (e.inStmt >= exportBatchRows || e.stmtBytes+len(b) > exportBatchBytes) {
		e.w.WriteString(";\n")
		e.inStmt = 0
	}
	if e.inStmt == 0 {
		if e.utc && !e.wroteSetTZ {
			e.w.WriteString("SET time_zone = '+00:00';\n")
			e.wroteSetTZ = true
		}
		e.w.Write(e.insert)
		e.stmtBytes = len(e.insert)
	} else {
		e.w.WriteString(",\n")
		e.stmtBytes += 2
	}
	e.inStmt++
	e.stmtBytes += len(b)
	_, err = e.w.Write(b)
	return err
}

func (e *sqlExporter) End() error {
	if err := e.end(); err != nil {
		return err
	}
	if e.inStmt > 0 {
		e.w.WriteString(";\n")
	}
	return e.w.Flush()
}

// appendValue appends the SQL literal of v, a JSON value of a column of kind k.
func (e *sqlExporter) appendValue(b []byte, k shapeKind, v []byte) ([]byte, error) {
	switch v[0] {
	case 'n':
		if string(v) != "null" {
			return b, errExportBadJSON
		}
		return append(b, "NULL"...), nil
	case 't', 'f':
		if s := string(v); s != "true" && s != "false" {
			return b, errExportBadJSON
		}
		if k == shapeJSON {
			return appendSQLString(b, v), nil
		}
		return append(b, bytes.ToUpper(v)...), nil
	case '{', '[':
		return appendSQLString(b, v), nil
	case '"':
		if k == shapeJSON {
			return appendSQLString(b, v), nil
		}
		s, err := exportUnquote(e.text[:0], v)
		e.text = s
		if err != nil {
			return b, err
		}
		switch k {
		case shapeInt:
			if isSQLNumber(s, false) {
				return append(b, s...), nil
			}
		case shapeDecimal:
			if isSQLNumber(s, true) {
				return append(b, s...), nil
			}
		case shapeBinary, shapeBit:
			raw, err := base64.StdEncoding.AppendDecode(e.raw[:0], s)
			e.raw = raw
			if err == nil {
				return appendSQLHex(b, "", raw), nil
			}
		case shapeDatetime, shapeTimestamp:
			if len(s) >= 19 && s[10] == 'T' {
				s[10] = ' '
				if k == shapeTimestamp && s[len(s)-1] == 'Z' {
					s = s[:len(s)-1]
				}
			}
		}
		return appendSQLString(b, s), nil
	}
	if !isJSONNumber(v) {
		return b, errExportBadJSON
	}
	if k == shapeJSON {
		return appendSQLString(b, v), nil
	}
	return append(b, v...), nil
}

// isSQLNumber reports whether s is an integer (-?[0-9]+) or, with decimal, a DECIMAL as MySQL
// prints it (-?[0-9]+(\.[0-9]+)?): text that can go into a statement bare.
func isSQLNumber(s []byte, decimal bool) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	digits, dot := 0, false
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && decimal && !dot && digits > 0 && i < len(s)-1:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// appendSQLString appends s as a string literal that means the same whatever the sql_mode:
// '…' with ' doubled when s is valid UTF-8 without backslashes and control characters other
// than tab; _utf8mb4 X'…' otherwise (X'…' for invalid UTF-8).
func appendSQLString(b, s []byte) []byte {
	plain := utf8.Valid(s)
	for _, c := range s {
		if !plain {
			break
		}
		plain = c >= 0x20 && c != '\\' || c == '\t'
	}
	if !plain {
		if utf8.Valid(s) {
			return appendSQLHex(b, "_utf8mb4 ", s)
		}
		return appendSQLHex(b, "", s)
	}
	b = append(b, '\'')
	for {
		i := bytes.IndexByte(s, '\'')
		if i < 0 {
			break
		}
		b = append(b, s[:i+1]...)
		b = append(b, '\'')
		s = s[i+1:]
	}
	b = append(b, s...)
	return append(b, '\'')
}

// appendSQLHex appends prefix X'hex of s'.
func appendSQLHex(b []byte, prefix string, s []byte) []byte {
	b = append(b, prefix...)
	b = append(b, 'X', '\'')
	for _, c := range s {
		b = append(b, shapeHex[c>>4], shapeHex[c&0xf])
	}
	return append(b, '\'')
}

// ---- reading rows back

var errExportBadJSON = errors.New("malformed JSON")

// exportSplitRow splits a JSON array into the text of its values (sub-slices of row, appended
// to dst[:0]). Strings are checked for control characters, nesting for balance; the values
// themselves are checked by their users.
func exportSplitRow(row []byte, dst [][]byte) ([][]byte, error) {
	dst = dst[:0]
	i := exportSkipSpace(row, 0)
	if i >= len(row) || row[i] != '[' {
		return nil, errExportRowEnd
	}
	i = exportSkipSpace(row, i+1)
	if i < len(row) && row[i] == ']' {
		i++
	} else {
		for {
			j, err := exportSkipValue(row, i)
			if err != nil {
				return nil, err
			}
			dst = append(dst, row[i:j])
			i = exportSkipSpace(row, j)
			if i >= len(row) {
				return nil, errExportRowEnd
			}
			if row[i] == ']' {
				i++
				break
			}
			if row[i] != ',' {
				return nil, errExportBadJSON
			}
			i = exportSkipSpace(row, i+1)
		}
	}
	if exportSkipSpace(row, i) != len(row) {
		return nil, errExportBadJSON
	}
	return dst, nil
}

func exportSkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// exportSkipValue returns the end of the JSON value starting at b[i].
func exportSkipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errExportBadJSON
	}
	switch b[i] {
	case '"':
		return exportSkipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				j, err := exportSkipString(b, i)
				if err != nil {
					return 0, err
				}
				i = j
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errExportBadJSON
	case ',', ']', '}', ':':
		return 0, errExportBadJSON
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', ']', '}', ' ', '\t', '\n', '\r', '"', '[', '{':
			return j, nil
		}
		j++
	}
	return j, nil
}

// exportSkipString returns the end of the JSON string starting at b[i] == '"'.
func exportSkipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c == '\\':
			j++
		case c < 0x20:
			return 0, errExportBadJSON
		}
	}
	return 0, errExportBadJSON
}

// exportUnquote appends the text of the JSON string literal q (quotes included) to dst. Lone
// surrogates become U+FFFD, as encoding/json does.
func exportUnquote(dst, q []byte) ([]byte, error) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return dst, errExportBadJSON
	}
	s := q[1 : len(q)-1]
	for len(s) > 0 {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			dst = append(dst, s...)
			break
		}
		dst = append(dst, s[:i]...)
		s = s[i:]
		if len(s) < 2 {
			return dst, errExportBadJSON
		}
		switch c := s[1]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := exportHex4(s[2:])
			if !ok {
				return dst, errExportBadJSON
			}
			s = s[6:]
			if utf16.IsSurrogate(r) {
				r2, ok := rune(-1), false
				if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
					r2, ok = exportHex4(s[2:])
				}
				if combined := utf16.DecodeRune(r, r2); ok && combined != utf8.RuneError {
					r = combined
					s = s[6:]
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, errExportBadJSON
		}
		s = s[2:]
	}
	return dst, nil
}

func exportHex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
