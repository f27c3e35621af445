package results

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Column is a column of a result: its name and MySQL type as the driver reports it
// (sql.ColumnType.DatabaseTypeName of go-sql-driver/mysql: "INT", "UNSIGNED BIGINT", "DECIMAL",
// "VARCHAR", "TEXT", "BLOB", "VARBINARY", "DATETIME", "JSON", ...).
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// RowReader reads the rows of a *sql.Rows as JSON arrays of typed values ("values keep their
// meaning in JSON", API.md). It expects the text protocol without parseTime (every value arrives
// as MySQL printed it) and a session time_zone of '+00:00' (TIMESTAMP values get a "Z").
//
// Values become JSON by column type:
//
//	NULL                                  null
//	TINYINT … BIGINT (signed, unsigned), YEAR
//	                                      number when |v| ≤ 2^53, else a string of the digits
//	DECIMAL                               string (exact)
//	FLOAT, DOUBLE                         number as MySQL printed it (a text JSON cannot hold,
//	                                      such as "inf", is re-printed or becomes a string)
//	DATE                                  "2006-01-02"
//	DATETIME                              "2006-01-02T15:04:05[.ffffff]" (no zone)
//	TIMESTAMP                             "2006-01-02T15:04:05[.ffffff]Z"
//	zero dates ("0000-00-00…", a 00 month or day) and TIME
//	                                      MySQL's text as a string (TIME may be negative or > 24h)
//	BIT(1) … BIT(48)                      number (the bytes, big-endian)
//	BIT(49) … BIT(64)                     base64 string: the driver reports only the byte width,
//	                                      so the choice is by width and a column never mixes
//	BINARY, VARBINARY, BLOBs, GEOMETRY, VECTOR
//	                                      base64 string (standard encoding, padded)
//	JSON (MySQL 8's type)                 the JSON value itself, embedded; MariaDB's JSON is a
//	                                      LONGTEXT alias and arrives as TEXT, hence a string
//	everything else (CHAR, VARCHAR, TEXT, ENUM, SET, …)
//	                                      string; invalid UTF-8 bytes become U+FFFD
//
// A RowReader is not safe for concurrent use.
type RowReader struct {
	rows  *sql.Rows
	cols  []Column
	kinds []shapeKind
	raw   []sql.RawBytes
	dest  []any
	buf   []byte // the row being built, reused
	limit int    // of a row's values as the server sent them; 0: none
}

// ErrRowTooLarge: a row's values, as the server sent them, are over the RowReader's limit.
var ErrRowTooLarge = errors.New("queryexec: a row of the result is over the limit")

// Limit makes Next fail with ErrRowTooLarge, before it builds the row's JSON, for a row whose
// values add up to more than n bytes as the server sent them (the JSON is at least as long).
func (r *RowReader) Limit(n int) { r.limit = n }

// NewRowReader prepares to read rows; it reads the column types once.
func NewRowReader(rows *sql.Rows) (*RowReader, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("queryexec: column types: %w", err)
	}
	r := &RowReader{
		rows:  rows,
		cols:  make([]Column, len(types)),
		kinds: make([]shapeKind, len(types)),
		raw:   make([]sql.RawBytes, len(types)),
		dest:  make([]any, len(types)),
	}
	for i, t := range types {
		r.cols[i] = Column{Name: t.Name(), Type: t.DatabaseTypeName()}
		r.kinds[i] = shapeKindOf(r.cols[i].Type)
		r.dest[i] = &r.raw[i]
	}
	return r, nil
}

// Columns returns the columns of the result (a copy).
func (r *RowReader) Columns() []Column {
	return append([]Column(nil), r.cols...)
}

// Next returns the next row encoded as a JSON array (a fresh slice the caller may keep), or
// ok=false at the end of the rows, with err the error of rows.Err (nil at a normal end).
func (r *RowReader) Next() (row json.RawMessage, ok bool, err error) {
	if !r.rows.Next() {
		return nil, false, r.rows.Err()
	}
	if err := r.rows.Scan(r.dest...); err != nil {
		return nil, false, fmt.Errorf("queryexec: scan row: %w", err)
	}
	if r.limit > 0 {
		size := 0
		for _, v := range r.raw {
			size += len(v)
		}
		if size > r.limit {
			return nil, false, ErrRowTooLarge
		}
	}
	b := append(r.buf[:0], '[')
	for i, v := range r.raw {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendShaped(b, r.kinds[i], v)
	}
	b = append(b, ']')
	r.buf = b
	return append(json.RawMessage(make([]byte, 0, len(b))), b...), true, nil
}

// shapeKind is how the values of a column become JSON (and how exports read them back).
type shapeKind uint8

const (
	shapeText shapeKind = iota
	shapeNull
	shapeInt
	shapeDecimal
	shapeFloat
	shapeDate
	shapeDatetime
	shapeTimestamp
	shapeTime
	shapeBit
	shapeBinary
	shapeJSON
)

// shapeKindOf maps a DatabaseTypeName of go-sql-driver/mysql to a shapeKind. Unknown names are
// text.
func shapeKindOf(typeName string) shapeKind {
	switch strings.TrimPrefix(strings.ToUpper(typeName), "UNSIGNED ") {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "INTEGER", "BIGINT", "YEAR":
		return shapeInt
	case "DECIMAL", "NUMERIC":
		return shapeDecimal
	case "FLOAT", "DOUBLE", "REAL":
		return shapeFloat
	case "DATE":
		return shapeDate
	case "DATETIME":
		return shapeDatetime
	case "TIMESTAMP":
		return shapeTimestamp
	case "TIME":
		return shapeTime
	case "BIT":
		return shapeBit
	case "BINARY", "VARBINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB", "GEOMETRY", "VECTOR":
		return shapeBinary
	case "JSON":
		return shapeJSON
	case "NULL":
		return shapeNull
	}
	return shapeText
}

// appendShaped appends the JSON form of v, a value of kind k as MySQL printed it (nil: NULL).
func appendShaped(b []byte, k shapeKind, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	switch k {
	case shapeInt:
		return appendJSONInt(b, v)
	case shapeFloat:
		return appendJSONFloat(b, v)
	case shapeDatetime, shapeTimestamp:
		if len(v) < 19 || v[10] != ' ' || zeroInDate(v) {
			return appendJSONText(b, v)
		}
		b = append(b, '"')
		b = append(b, v[:10]...)
		b = append(b, 'T')
		b = append(b, v[11:]...)
		if k == shapeTimestamp {
			b = append(b, 'Z')
		}
		return append(b, '"')
	case shapeBit:
		if len(v) <= 6 {
			var n uint64
			for _, c := range v {
				n = n<<8 | uint64(c)
			}
			return strconv.AppendUint(b, n, 10)
		}
		return appendBase64(b, v)
	case shapeBinary:
		return appendBase64(b, v)
	case shapeJSON:
		if json.Valid(v) {
			return append(b, v...)
		}
	}
	// shapeText, shapeDecimal, shapeDate (zero dates included), shapeTime, and a NULL-typed
	// column that somehow has a value.
	return appendJSONText(b, v)
}

// zeroInDate reports whether a "YYYY-MM-DD…" text has a 00 month or day (zero dates such as
// "0000-00-00 00:00:00", and the zero-in-date values some SQL modes allow), which keep MySQL's
// text.
func zeroInDate(v []byte) bool {
	return len(v) >= 10 && (v[5] == '0' && v[6] == '0' || v[8] == '0' && v[9] == '0')
}

// maxExactJSONInt is 2^53: every integer of magnitude up to it is exact in a float64, so in every
// JSON parser.
const maxExactJSONInt = "9007199254740992"

// appendJSONInt appends the integer text v as a number when |v| ≤ 2^53, else as a string of its
// digits; leading zeros (ZEROFILL) are dropped. Text that is not an integer becomes a string.
func appendJSONInt(b, v []byte) []byte {
	d, neg := v, false
	if len(d) > 0 && (d[0] == '-' || d[0] == '+') {
		neg, d = d[0] == '-', d[1:]
	}
	if len(d) == 0 {
		return appendJSONText(b, v)
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return appendJSONText(b, v)
		}
	}
	for len(d) > 1 && d[0] == '0' {
		d = d[1:]
	}
	if len(d) == 1 && d[0] == '0' {
		neg = false
	}
	exact := len(d) < len(maxExactJSONInt) || len(d) == len(maxExactJSONInt) && string(d) <= maxExactJSONInt
	if !exact {
		b = append(b, '"')
	}
	if neg {
		b = append(b, '-')
	}
	b = append(b, d...)
	if !exact {
		b = append(b, '"')
	}
	return b
}

// appendJSONFloat appends a FLOAT or DOUBLE as printed by MySQL when the text is a JSON number,
// re-printed by strconv when it parses as a finite number in another form, else as a string.
func appendJSONFloat(b, v []byte) []byte {
	if isJSONNumber(v) {
		return append(b, v...)
	}
	if f, err := strconv.ParseFloat(string(v), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	}
	return appendJSONText(b, v)
}

// isJSONNumber reports whether v is a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(v []byte) bool {
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case i < len(v) && v[i] >= '1' && v[i] <= '9':
		i = pastDigits(v, i)
	default:
		return false
	}
	if i < len(v) && v[i] == '.' {
		end := pastDigits(v, i+1)
		if end == i+1 {
			return false
		}
		i = end
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		end := pastDigits(v, i)
		if end == i {
			return false
		}
		i = end
	}
	return i == len(v)
}

// pastDigits returns the index of the first byte of v from i on that is not a decimal digit.
func pastDigits(v []byte, i int) int {
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	return i
}

// appendBase64 appends v as a JSON string in standard, padded base64.
func appendBase64(b, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

const shapeHex = "0123456789abcdef"

// appendJSONText appends v as a JSON string: '"', '\' and control characters escaped, U+2028 and
// U+2029 escaped (for JavaScript), and each byte of an invalid UTF-8 sequence replaced by U+FFFD.
func appendJSONText(b, v []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, v[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', shapeHex[c>>4], shapeHex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, v[start:i]...)
			b = append(b, "\uFFFD"...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, v[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', shapeHex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, v[start:]...)
	return append(b, '"')
}
