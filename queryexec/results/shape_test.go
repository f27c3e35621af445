package results

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// shapeTestDB opens a fresh test database the way the engine talks to a sandbox: text protocol,
// parseTime off, session time_zone '+00:00'.
func shapeTestDB(t testing.TB) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(testdb.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ParseTime = false
	cfg.InterpolateParams = false
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.Params["charset"] = "utf8mb4"
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// testdb.DSN names the database (and drops it at the end); create it.
	server := *cfg
	server.DBName = ""
	sdb, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	shapeExec(t, sdb, "CREATE DATABASE "+sqlcheck.QuoteIdent(cfg.DBName)+" CHARACTER SET utf8mb4")
	return db
}

func shapeContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func shapeExec(t testing.TB, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(shapeContext(t), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// allTypesColumns is the column list of the all-types test table (after id).
const allTypesColumns = `
	ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, i INT, iu INT UNSIGNED,
	bi BIGINT, bu BIGINT UNSIGNED,
	dc DECIMAL(30,10), f FLOAT, d DOUBLE,
	dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(3), y YEAR,
	b1 BIT(1), b64 BIT(64), bin BINARY(4), vb VARBINARY(64), bl BLOB,
	tx TEXT, vc VARCHAR(255), en ENUM('a','b''q','c d'), st SET('x','y','z'),
	js JSON, g GEOMETRY`

// createAllTypesTable creates a table with an INT primary key id and a column of every type.
func createAllTypesTable(t testing.TB, db *sql.DB, table string) {
	t.Helper()
	shapeExec(t, db, "CREATE TABLE "+sqlcheck.QuoteIdent(table)+" (id INT PRIMARY KEY,"+allTypesColumns+") DEFAULT CHARSET=utf8mb4")
}

// trickyText has quotes, backslashes, line breaks, control characters (NUL, Ctrl-Z, DEL),
// accents, CJK, an emoji and the JavaScript line separators.
const trickyText = "it's \"quoted\" \\ back\\slash \\0 \\n\nline\r\nCRLF \r lone CR\ttab \x00 NUL \x1a ^Z \x01\x1f\x7f é ü 中文 😀 \u2028\u2029 -- ; ' OR 1=1 ;\n);"

// allBytes is 0x00…0xff.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// pointWKB is MySQL's internal geometry format of POINT(x y) with SRID 0.
func pointWKB(x, y float64) []byte {
	b := make([]byte, 25)
	b[4] = 1 // little-endian WKB
	binary.LittleEndian.PutUint32(b[5:], 1)
	binary.LittleEndian.PutUint64(b[9:], math.Float64bits(x))
	binary.LittleEndian.PutUint64(b[17:], math.Float64bits(y))
	return b
}

// zeroDatesAllowed reports whether the session's sql_mode accepts '0000-00-00'.
func zeroDatesAllowed(t testing.TB, db *sql.DB) bool {
	t.Helper()
	var mode string
	if err := db.QueryRowContext(shapeContext(t), "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	return !strings.Contains(mode, "NO_ZERO_DATE") && !strings.Contains(mode, "NO_ZERO_IN_DATE")
}

// insertTrickyRows fills an all-types table: 1 extremes, 2 the 2^53 boundary, 3 all NULL,
// 4 empty values and zeros, 5 zero dates (when the SQL mode allows them).
func insertTrickyRows(t testing.TB, db *sql.DB, table string) {
	t.Helper()
	ins := "INSERT INTO " + sqlcheck.QuoteIdent(table) + ` (id, ti, si, mi, i, iu, bi, bu, dc, f, d, dt, dtm, ts, tm, y,
		b1, b64, bin, vb, bl, tx, vc, en, st, js, g)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ST_GeomFromText(?))`
	rows := [][]any{
		{1, -128, 65535, -8388608, -2147483648, uint64(4294967295), int64(math.MinInt64), uint64(math.MaxUint64),
			"-12345678901234567890.0123456789", 3.14159, 1.7976931348623157e308,
			"2024-02-29", "2024-02-29 23:59:59.123456", "2038-01-19 03:14:07.999999", "-838:59:59.000", 2155,
			1, uint64(math.MaxUint64), []byte{0x00, 0xff, 0x01, 0x02}, []byte{0x00, 0x01, 0x00, 0xff, 0x00}, allBytes(),
			trickyText, "emoji 😀 \\ 'x'", "b'q", "x,z", `{"a": [1, 2.5, "s"], "b": null, "c": "\"q\\"}`, "POINT(1.5 -2)"},
		{2, 127, 0, 8388607, 2147483647, 0, int64(1) << 53, uint64(1)<<53 + 1,
			"0.0000000001", -0.25, 5e-324,
			"1000-01-01", "9999-12-31 23:59:59.999999", "1970-01-01 00:00:01", "838:59:59.999", 1901,
			0, uint64(1), []byte("abcd"), []byte{}, []byte{0}, "", "plain", "a", "", `[]`, "POINT(0 0)"},
		{3, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
			nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
		{4, 0, 1, -1, 0, 1, -(int64(1) << 53) - 1, uint64(1) << 53,
			"99999999999999999999.9999999999", 1e30, -2.2250738585072014e-308,
			"2000-01-01", "2000-01-01 00:00:00", "2000-01-01 00:00:00", "00:00:00", 0,
			0, uint64(0), []byte{0, 0, 0, 0}, []byte(`\`), []byte{}, `\`, `'`, "c d", "x,y,z", `"just a string"`, "POINT(-1e300 1e-300)"},
	}
	for _, r := range rows {
		shapeExec(t, db, ins, r...)
	}
	if zeroDatesAllowed(t, db) {
		shapeExec(t, db, "INSERT INTO "+sqlcheck.QuoteIdent(table)+` (id, dt, dtm, ts, y) VALUES (5, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '0000')`)
	}
}

// readAllShaped selects query through a RowReader, checking that every row is valid JSON.
func readAllShaped(t testing.TB, db *sql.DB, query string) ([]Column, []json.RawMessage) {
	t.Helper()
	rows, err := db.QueryContext(shapeContext(t), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	r, err := NewRowReader(rows)
	if err != nil {
		t.Fatal(err)
	}
	var out []json.RawMessage
	for {
		row, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if !json.Valid(row) {
			t.Fatalf("row %d is not valid JSON: %s", len(out)+1, row)
		}
		out = append(out, row)
	}
	return r.Columns(), out
}

func decodeRow(t testing.TB, row json.RawMessage) []any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(row))
	dec.UseNumber()
	var vals []any
	if err := dec.Decode(&vals); err != nil {
		t.Fatalf("decode %s: %v", row, err)
	}
	return vals
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestShapeAllTypes(t *testing.T) {
	db := shapeTestDB(t)
	createAllTypesTable(t, db, "all_types")
	insertTrickyRows(t, db, "all_types")
	zero := zeroDatesAllowed(t, db)

	cols, rows := readAllShaped(t, db, "SELECT * FROM all_types ORDER BY id")
	wantTypes := map[string]string{
		"id": "INT", "ti": "TINYINT", "si": "UNSIGNED SMALLINT", "mi": "MEDIUMINT", "i": "INT", "iu": "UNSIGNED INT",
		"bi": "BIGINT", "bu": "UNSIGNED BIGINT", "dc": "DECIMAL", "f": "FLOAT", "d": "DOUBLE",
		"dt": "DATE", "dtm": "DATETIME", "ts": "TIMESTAMP", "tm": "TIME", "y": "YEAR",
		"b1": "BIT", "b64": "BIT", "bin": "BINARY", "vb": "VARBINARY", "bl": "BLOB",
		"tx": "TEXT", "vc": "VARCHAR", "en": "ENUM", "st": "SET", "g": "GEOMETRY",
	}
	idx := map[string]int{}
	for i, c := range cols {
		idx[c.Name] = i
		if want, ok := wantTypes[c.Name]; ok && c.Type != want {
			t.Errorf("column %s: type %q, want %q", c.Name, c.Type, want)
		}
	}
	// MariaDB's JSON is LONGTEXT (a string here); MySQL 8's JSON type is embedded as a value.
	nativeJSON := cols[idx["js"]].Type == "JSON"
	js := func(text string) any {
		if !nativeJSON {
			return text
		}
		dec := json.NewDecoder(strings.NewReader(text))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	n := func(s string) json.Number { return json.Number(s) }

	want := []map[string]any{
		{
			"id": n("1"), "ti": n("-128"), "si": n("65535"), "mi": n("-8388608"), "i": n("-2147483648"), "iu": n("4294967295"),
			"bi": "-9223372036854775808", "bu": "18446744073709551615",
			"dc": "-12345678901234567890.0123456789", "f": n("3.14159"), "d": n("1.7976931348623157e308"),
			"dt": "2024-02-29", "dtm": "2024-02-29T23:59:59.123456", "ts": "2038-01-19T03:14:07.999999Z",
			"tm": "-838:59:59.000", "y": n("2155"),
			"b1": n("1"), "b64": b64([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
			"bin": b64([]byte{0x00, 0xff, 0x01, 0x02}), "vb": b64([]byte{0x00, 0x01, 0x00, 0xff, 0x00}), "bl": b64(allBytes()),
			"tx": trickyText, "vc": "emoji 😀 \\ 'x'", "en": "b'q", "st": "x,z",
			"js": js(`{"a": [1, 2.5, "s"], "b": null, "c": "\"q\\"}`), "g": b64(pointWKB(1.5, -2)),
		},
		{
			"id": n("2"), "ti": n("127"), "si": n("0"), "mi": n("8388607"), "i": n("2147483647"), "iu": n("0"),
			"bi": n("9007199254740992"), "bu": "9007199254740993",
			"dc": "0.0000000001", "f": n("-0.25"), "d": n("5e-324"),
			"dt": "1000-01-01", "dtm": "9999-12-31T23:59:59.999999", "ts": "1970-01-01T00:00:01.000000Z",
			"tm": "838:59:59.999", "y": n("1901"),
			"b1": n("0"), "b64": b64([]byte{0, 0, 0, 0, 0, 0, 0, 1}),
			"bin": b64([]byte("abcd")), "vb": "", "bl": "AA==", "tx": "", "vc": "plain", "en": "a", "st": "",
			"js": js(`[]`), "g": b64(pointWKB(0, 0)),
		},
		{"id": n("3")}, // every other column NULL
		{
			"id": n("4"), "ti": n("0"), "si": n("1"), "mi": n("-1"), "i": n("0"), "iu": n("1"),
			"bi": "-9007199254740993", "bu": n("9007199254740992"),
			"dc": "99999999999999999999.9999999999", "f": n("1e30"), "d": n("-2.2250738585072014e-308"),
			"dt": "2000-01-01", "dtm": "2000-01-01T00:00:00.000000", "ts": "2000-01-01T00:00:00.000000Z",
			"tm": "00:00:00.000", "y": n("0"),
			"b1": n("0"), "b64": b64(make([]byte, 8)), "bin": "AAAAAA==", "vb": "XA==", "bl": "",
			"tx": `\`, "vc": `'`, "en": "c d", "st": "x,y,z", "js": js(`"just a string"`), "g": b64(pointWKB(-1e300, 1e-300)),
		},
	}
	if zero {
		want = append(want, map[string]any{
			"id": n("5"), "dt": "0000-00-00", "dtm": "0000-00-00 00:00:00.000000", "ts": "0000-00-00 00:00:00.000000", "y": n("0"),
		})
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for r, row := range rows {
		vals := decodeRow(t, row)
		if len(vals) != len(cols) {
			t.Fatalf("row %d: %d values, want %d", r+1, len(vals), len(cols))
		}
		for _, c := range cols {
			got, exp := vals[idx[c.Name]], want[r][c.Name]
			if g, ok := got.(json.Number); ok && (c.Type == "FLOAT" || c.Type == "DOUBLE") {
				// MariaDB prints 1e+30, MySQL 1e30: compare the numbers.
				if e, ok := exp.(json.Number); ok {
					gf, gerr := g.Float64()
					ef, _ := e.Float64()
					if gerr != nil || gf != ef {
						t.Errorf("row %d column %s (%s): got %s, want %s", r+1, c.Name, c.Type, g, e)
					}
					continue
				}
			}
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("row %d column %s (%s): got %#v, want %#v", r+1, c.Name, c.Type, got, exp)
			}
		}
	}
	// FLOAT and DOUBLE values parse back to the stored numbers.
	if f, err := decodeRow(t, rows[0])[idx["d"]].(json.Number).Float64(); err != nil || f != math.MaxFloat64 {
		t.Errorf("DOUBLE max: %v, %v", f, err)
	}
	if f, err := decodeRow(t, rows[0])[idx["f"]].(json.Number).Float64(); err != nil || float32(f) != float32(3.14159) {
		t.Errorf("FLOAT: %v, %v", f, err)
	}
}

func TestShapeExpressions(t *testing.T) {
	db := shapeTestDB(t)
	cols, rows := readAllShaped(t, db, `SELECT NULL AS n, 1+1 AS two, 1e30 AS big, 0.1e0+0.2e0 AS sum,
		CAST(18446744073709551615 AS UNSIGNED) AS umax, SUM(3) AS s, CAST('x\0y' AS BINARY) AS bin,
		_latin1 x'e9' AS latin, CAST('2001-02-03 04:05:06' AS DATETIME) AS dtm, 'a' AS dup, 'b' AS dup`)
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	got := decodeRow(t, rows[0])
	want := []any{nil, json.Number("2"), json.Number("1e+30"), json.Number("0.30000000000000004"),
		"18446744073709551615", "3", b64([]byte("x\x00y")), "é", "2001-02-03T04:05:06", "a", "b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	if cols[0].Type != "NULL" || cols[9].Name != "dup" || cols[10].Name != "dup" {
		t.Errorf("columns %+v", cols)
	}
}

func TestShapeValues(t *testing.T) {
	tests := []struct {
		kind shapeKind
		in   string
		want string
	}{
		{shapeInt, "0", "0"},
		{shapeInt, "-0", "0"},
		{shapeInt, "0000000005", "5"}, // ZEROFILL
		{shapeInt, "-0009", "-9"},
		{shapeInt, "9007199254740992", "9007199254740992"},
		{shapeInt, "-9007199254740992", "-9007199254740992"},
		{shapeInt, "9007199254740993", `"9007199254740993"`},
		{shapeInt, "-9007199254740993", `"-9007199254740993"`},
		{shapeInt, "10000000000000000", `"10000000000000000"`},
		{shapeInt, "999999999999999", "999999999999999"},
		{shapeInt, "12a", `"12a"`},
		{shapeInt, "", `""`},
		{shapeFloat, "1e+30", "1e+30"},
		{shapeFloat, "-1.5E-7", "-1.5E-7"},
		{shapeFloat, "+1.5", "1.5"},
		{shapeFloat, ".5", "0.5"},
		{shapeFloat, "5.", "5"},
		{shapeFloat, "007", "7"},
		{shapeFloat, "inf", `"inf"`},
		{shapeFloat, "-inf", `"-inf"`},
		{shapeFloat, "nan", `"nan"`},
		{shapeFloat, "1e", `"1e"`},
		{shapeDecimal, "-0.50", `"-0.50"`},
		{shapeDate, "2024-01-02", `"2024-01-02"`},
		{shapeDatetime, "2024-01-02 03:04:05", `"2024-01-02T03:04:05"`},
		{shapeDatetime, "2024-01-02 03:04:05.5", `"2024-01-02T03:04:05.5"`},
		{shapeDatetime, "0000-00-00 00:00:00", `"0000-00-00 00:00:00"`},
		{shapeDatetime, "2024-00-10 00:00:00", `"2024-00-10 00:00:00"`},
		{shapeTimestamp, "2024-01-02 03:04:05.000001", `"2024-01-02T03:04:05.000001Z"`},
		{shapeTimestamp, "0000-00-00 00:00:00", `"0000-00-00 00:00:00"`},
		{shapeTime, "-838:59:59", `"-838:59:59"`},
		{shapeBit, "\x00", "0"},
		{shapeBit, "\x01\x00", "256"},
		{shapeBit, "\xff\xff\xff\xff\xff\xff", "281474976710655"},
		{shapeBit, "\x00\x00\x00\x00\x00\x00\x01", `"AAAAAAAAAQ=="`},
		{shapeBinary, "", `""`},
		{shapeBinary, "\x00\xff", `"AP8="`},
		{shapeJSON, `{"a": [1, 2]}`, `{"a": [1, 2]}`},
		{shapeJSON, `null`, `null`},
		{shapeJSON, `{bad`, `"{bad"`},
		{shapeText, "", `""`},
		{shapeText, `a"b\c`, `"a\"b\\c"`},
		{shapeText, "\n\r\t\x00\x1f\x7f", `"\n\r\t\u0000\u001f` + "\x7f" + `"`},
		{shapeText, "é中😀", `"é中😀"`},
		{shapeText, "\u2028\u2029", `"\u2028\u2029"`},
		{shapeText, "a\xffb", "\"a\uFFFDb\""},
		{shapeText, "\xe4\xb8", "\"\uFFFD\uFFFD\""},           // truncated sequence
		{shapeText, "\xed\xa0\x80", "\"\uFFFD\uFFFD\uFFFD\""}, // surrogate half
		{shapeText, "<&>", `"<&>"`},
		{shapeNull, "x", `"x"`},
	}
	for _, tt := range tests {
		got := string(appendShaped(nil, tt.kind, []byte(tt.in)))
		if got != tt.want {
			t.Errorf("kind %d %q: got %s, want %s", tt.kind, tt.in, got, tt.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("kind %d %q: %s is not valid JSON", tt.kind, tt.in, got)
		}
	}
	if got := string(appendShaped(nil, shapeText, nil)); got != "null" {
		t.Errorf("NULL: %s", got)
	}
	// Every single byte and every pair of bytes of text gives valid JSON that decodes to the
	// text itself when the text is valid UTF-8.
	for i := 0; i < 256; i++ {
		for j := 0; j < 256; j += 7 {
			in := []byte{byte(i), byte(j)}
			out := appendJSONText(nil, in)
			var s string
			if err := json.Unmarshal(out, &s); err != nil {
				t.Fatalf("%x: %s: %v", in, out, err)
			}
			if strings.ToValidUTF8(string(in), "") == string(in) && s != string(in) {
				t.Fatalf("%x: decoded %q", in, s)
			}
		}
	}
}

func TestShapeIsJSONNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-12", "1.5", "1e5", "1E+5", "1e-5", "0.0", "-0.5e10"} {
		if !isJSONNumber([]byte(s)) {
			t.Errorf("%q should be a JSON number", s)
		}
	}
	for _, s := range []string{"", "-", "01", "+1", ".5", "5.", "1e", "1e+", "inf", "NaN", "1_0", "0x10", "1 "} {
		if isJSONNumber([]byte(s)) {
			t.Errorf("%q should not be a JSON number", s)
		}
	}
}

func BenchmarkShapeRowReader(b *testing.B) {
	db := shapeTestDB(b)
	shapeExec(b, db, "CREATE TABLE bench (id INT PRIMARY KEY, name VARCHAR(64), amount DECIMAL(12,2), at DATETIME, data VARBINARY(32))")
	shapeExec(b, db, `INSERT INTO bench
		WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 1000)
		SELECT n, CONCAT('name "', n, '"'), n * 1.25, '2024-01-02 03:04:05', UNHEX(MD5(n)) FROM seq`)
	b.ReportAllocs()
	for b.Loop() {
		rows, err := db.Query("SELECT * FROM bench")
		if err != nil {
			b.Fatal(err)
		}
		r, err := NewRowReader(rows)
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, ok, err := r.Next()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
		rows.Close()
	}
}
