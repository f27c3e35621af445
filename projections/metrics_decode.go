package projections

import (
	"encoding/json"
	"strconv"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// queryExecutedType is the stored type of the executed queries, most of the metrics' events.
var queryExecutedType = domain.QueryExecuted{}.EventType()

// decode decodes one event of the log: an executed query by decodeQuery when its payload has the
// flat form the store writes (without the fields the metrics do not count), anything else by the
// registry. intern (nil: none) shares the strings of ids seen before.
func (p Metrics) decode(env eventstore.Envelope, intern map[string]string) (domain.Event, error) {
	if env.EventType == queryExecutedType {
		if q, ok := decodeQuery(env.Payload, intern, true); ok {
			return q, nil
		}
	}
	return p.reg.Decode(env)
}

// decodeQuery reads a query.executed.v1 payload in one pass, without reflection: a JSON object
// of the fields domain.QueryExecuted names, each once, strings without escapes or other than
// ASCII, numbers of their field's kind. ok is false for anything else (an unknown field, null, an
// escape, a float in an integer), which the registry then decodes, or rejects, as for any event:
// what this accepts it decodes as encoding/json would. onlyCounted leaves out what the metrics
// do not count (the query's id, its SQL, error and tables), checked as encoding/json would
// and not made: the SQL is most of a payload, and often escaped.
func decodeQuery(data []byte, intern map[string]string, onlyCounted bool) (q domain.QueryExecuted, ok bool) {
	d := jsonScanner{data: data}
	if !d.byte('{') {
		return q, false
	}
	if d.peek() == '}' {
		return q, false
	}
	for {
		key, ok := d.rawString()
		if !ok || !d.byte(':') {
			return q, false
		}
		switch string(key) {
		case "query_id":
			q.QueryID, ok = d.uncounted(onlyCounted)
		case "tenant_id":
			var s string
			s, ok = d.string(intern)
			q.TenantID = domain.TenantID(s)
		case "user_id":
			var s string
			s, ok = d.string(intern)
			q.UserID = domain.UserID(s)
		case "database_id":
			var s string
			s, ok = d.string(intern)
			q.DatabaseID = domain.DatabaseID(s)
		case "sql":
			q.SQL, ok = d.uncounted(onlyCounted)
		case "sql_truncated":
			q.SQLTruncated, ok = d.bool()
		case "fingerprint":
			q.Fingerprint, ok = d.string(intern)
		case "statement_type":
			q.StatementType, ok = d.string(intern)
		case "tables":
			q.Tables, ok = d.strings(onlyCounted)
		case "status":
			var s string
			s, ok = d.string(intern)
			q.Status = domain.QueryStatus(s)
		case "error_code":
			q.ErrorCode, ok = d.string(intern)
		case "error":
			q.Error, ok = d.uncounted(onlyCounted)
		case "mysql_code":
			var n int64
			n, ok = d.int(strconv.IntSize)
			q.MySQLCode = int(n)
		case "execution_ms":
			q.ExecutionMS, ok = d.float()
		case "row_count":
			q.RowCount, ok = d.int(64)
		case "affected_rows":
			q.AffectedRows, ok = d.int(64)
		case "at":
			var raw []byte
			if raw, ok = d.rawToken(); ok {
				ok = q.At.UnmarshalJSON(raw) == nil && raw[0] == '"'
			}
		default:
			return q, false
		}
		if !ok {
			return q, false
		}
		switch d.next() {
		case ',':
		case '}':
			d.space()
			return q, d.i == len(d.data)
		default:
			return q, false
		}
	}
}

// jsonScanner reads the simple JSON decodeQuery accepts.
type jsonScanner struct {
	data []byte
	i    int
}

func (d *jsonScanner) space() {
	for d.i < len(d.data) && (d.data[d.i] == ' ' || d.data[d.i] == '\n' || d.data[d.i] == '\t' || d.data[d.i] == '\r') {
		d.i++
	}
}

// peek is the next byte after spaces (0 at the end).
func (d *jsonScanner) peek() byte {
	d.space()
	if d.i == len(d.data) {
		return 0
	}
	return d.data[d.i]
}

// next consumes the next byte after spaces.
func (d *jsonScanner) next() byte {
	c := d.peek()
	if c != 0 {
		d.i++
	}
	return c
}

func (d *jsonScanner) byte(c byte) bool { return d.next() == c }

// rawString reads a string of printable ASCII without escapes and returns its contents.
func (d *jsonScanner) rawString() ([]byte, bool) {
	if !d.byte('"') {
		return nil, false
	}
	from := d.i
	for ; d.i < len(d.data); d.i++ {
		switch c := d.data[d.i]; {
		case c == '"':
			d.i++
			return d.data[from : d.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// string reads a string value, shared through intern (by its bytes in the payload) when intern
// is not nil. Escapes and text other than ASCII are decoded by unquote.
func (d *jsonScanner) string(intern map[string]string) (string, bool) {
	raw, plain, ok := d.quoted()
	if !ok {
		return "", false
	}
	if intern != nil {
		if s, ok := intern[string(raw)]; ok {
			return s, true
		}
	}
	var s string
	if plain {
		s = string(raw[1 : len(raw)-1])
	} else if s, ok = unquote(raw); !ok {
		return "", false
	}
	if intern != nil && len(intern) < maxInterned {
		intern[string(raw)] = s
	}
	return s, true
}

// uncounted reads a string value as string does, made only when skip is false.
func (d *jsonScanner) uncounted(skip bool) (string, bool) {
	if !skip {
		return d.string(nil)
	}
	raw, plain, ok := d.quoted()
	return "", ok && (plain || json.Valid(raw))
}

// quoted reads a string token, quotes included; plain: it holds only printable ASCII and no
// escape.
func (d *jsonScanner) quoted() (raw []byte, plain, ok bool) {
	if d.peek() != '"' {
		return nil, false, false
	}
	from := d.i
	plain = true
	for d.i++; d.i < len(d.data); d.i++ {
		switch c := d.data[d.i]; {
		case c == '"':
			d.i++
			return d.data[from:d.i], plain, true
		case c == '\\':
			plain = false
			d.i++ // the escaped byte: not the end of the string
		case c < 0x20:
			return nil, false, false
		case c >= 0x80:
			plain = false
		}
	}
	return nil, false, false
}

// unquote decodes a string token with escapes or text other than ASCII as encoding/json does.
func unquote(raw []byte) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// maxInterned bounds an intern table: ids, fingerprints and codes, not every statement's text.
const maxInterned = 100_000

// strings reads an array of strings; skip: checked, not made (nil).
func (d *jsonScanner) strings(skip bool) ([]string, bool) {
	if !d.byte('[') {
		return nil, false
	}
	var out []string
	if d.peek() == ']' {
		d.i++
		if skip {
			return nil, true
		}
		return []string{}, true
	}
	for {
		s, ok := d.uncounted(skip)
		if !ok {
			return nil, false
		}
		if !skip {
			out = append(out, s)
		}
		switch d.next() {
		case ',':
		case ']':
			return out, true
		default:
			return nil, false
		}
	}
}

func (d *jsonScanner) bool() (bool, bool) {
	raw, ok := d.rawToken()
	switch {
	case !ok:
		return false, false
	case string(raw) == "true":
		return true, true
	case string(raw) == "false":
		return false, true
	}
	return false, false
}

// rawToken reads a string (see rawString, quotes included) or a bare token (number, true, false).
func (d *jsonScanner) rawToken() ([]byte, bool) {
	if d.peek() == '"' {
		from := d.i
		if _, ok := d.rawString(); !ok {
			return nil, false
		}
		return d.data[from:d.i], true
	}
	from := d.i
	for d.i < len(d.data) {
		c := d.data[d.i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c == '-' || c == '+' || c == '.' || c == 'E') {
			break
		}
		d.i++
	}
	return d.data[from:d.i], d.i > from
}

// int reads an integer as encoding/json does into an integer field: digits only, no fraction or
// exponent.
func (d *jsonScanner) int(bits int) (int64, bool) {
	raw, ok := d.rawToken()
	if !ok || !jsonNumber(raw) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, bits)
	return n, err == nil
}

func (d *jsonScanner) float() (float64, bool) {
	raw, ok := d.rawToken()
	if !ok || !jsonNumber(raw) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// jsonNumber reports whether raw is a number as JSON writes one, -?(0|[1-9][0-9]*)(.[0-9]+)?
// ([eE][+-]?[0-9]+)? (strconv accepts more: "0x1p3", "+1", "Inf", "1_000").
func jsonNumber(raw []byte) bool {
	i := 0
	digits := func() int {
		from := i
		for i < len(raw) && '0' <= raw[i] && raw[i] <= '9' {
			i++
		}
		return i - from
	}
	if i < len(raw) && raw[i] == '-' {
		i++
	}
	if n := digits(); n == 0 || n > 1 && raw[i-n] == '0' {
		return false
	}
	if i < len(raw) && raw[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(raw)
}
