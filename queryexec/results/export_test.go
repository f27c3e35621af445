package results

import (
	"bytes"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/clouddbmanager/clouddb/domain"
)

func TestExportContentType(t *testing.T) {
	for _, tc := range []struct{ format, ct, ext string }{
		{ExportCSV, "text/csv; charset=utf-8", "csv"},
		{ExportJSON, "application/json", "json"},
		{ExportSQL, "application/sql", "sql"},
	} {
		ct, ext, ok := ExportContentType(tc.format)
		if !ok || ct != tc.ct || ext != tc.ext {
			t.Errorf("%s: %q %q %v", tc.format, ct, ext, ok)
		}
		if _, err := NewExporter(io.Discard, ExportOptions{Format: tc.format, Table: "t"}); err != nil {
			t.Errorf("%s: %v", tc.format, err)
		}
	}
	if _, _, ok := ExportContentType("xml"); ok {
		t.Error("xml is not a format")
	}
	var verr *domain.ValidationError
	if _, err := NewExporter(io.Discard, ExportOptions{Format: "xml", Table: "t"}); !errors.As(err, &verr) {
		t.Errorf("unknown format: %v", err)
	}
}

// export runs an exporter over rows and returns its output; CSV cells as they are (the raw
// formulas of machine consumers), so that they read back to the values.
func export(t testing.TB, format string, cols []Column, rows []json.RawMessage) string {
	t.Helper()
	var out bytes.Buffer
	e, err := NewExporter(&out, ExportOptions{Format: format, Table: "copy", RawFormulas: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Begin(cols); err != nil {
		t.Fatal(err)
	}
	for i, row := range rows {
		if err := e.Row(row); err != nil {
			t.Fatalf("row %d %s: %v", i+1, row, err)
		}
	}
	if err := e.End(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// csvField is what a CSV reader should read for a JSON value of a column.
func csvField(t testing.TB, col Column, v json.RawMessage) string {
	t.Helper()
	if string(v) == "null" {
		return ""
	}
	if v[0] == '"' && shapeKindOf(col.Type) != shapeJSON {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	return string(v)
}

func splitRow(t testing.TB, row json.RawMessage) []json.RawMessage {
	t.Helper()
	var vals []json.RawMessage
	if err := json.Unmarshal(row, &vals); err != nil {
		t.Fatal(err)
	}
	return vals
}

func checkCSV(t *testing.T, out string, cols []Column, rows []json.RawMessage) {
	t.Helper()
	if !strings.HasSuffix(out, "\r\n") || strings.Count(out, "\r\n") < len(rows)+1 {
		t.Fatalf("CSV lines must end with CRLF:\n%q", out)
	}
	r := csv.NewReader(strings.NewReader(out))
	r.FieldsPerRecord = len(cols)
	records, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(records) != len(rows)+1 {
		t.Fatalf("%d records, want %d", len(records), len(rows)+1)
	}
	for i, c := range cols {
		if records[0][i] != c.Name {
			t.Errorf("header %d: %q, want %q", i, records[0][i], c.Name)
		}
	}
	for r, row := range rows {
		for i, v := range splitRow(t, row) {
			// encoding/csv reads a CRLF inside a quoted field as LF.
			want := strings.ReplaceAll(csvField(t, cols[i], v), "\r\n", "\n")
			if got := records[r+1][i]; got != want {
				t.Errorf("row %d column %s: %q, want %q", r+1, cols[i].Name, got, want)
			}
		}
	}
}

func checkJSONExport(t *testing.T, out string, cols []Column, rows []json.RawMessage) {
	t.Helper()
	if !json.Valid([]byte(out)) {
		t.Fatalf("invalid JSON:\n%s", out)
	}
	var objs []json.RawMessage
	if err := json.Unmarshal([]byte(out), &objs); err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(rows) {
		t.Fatalf("%d objects, want %d", len(objs), len(rows))
	}
	names := uniqueColumnNames(cols)
	for r, obj := range objs {
		// Keys in column order, values as in the row.
		dec := json.NewDecoder(bytes.NewReader(obj))
		dec.UseNumber()
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("object %d: %v %v", r, tok, err)
		}
		vals := splitRow(t, rows[r])
		for i := 0; dec.More(); i++ {
			key, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			if key != names[i] {
				t.Fatalf("object %d key %d: %v, want %s", r, i, key, names[i])
			}
			var got, want any
			if err := dec.Decode(&got); err != nil {
				t.Fatal(err)
			}
			d := json.NewDecoder(bytes.NewReader(vals[i]))
			d.UseNumber()
			if err := d.Decode(&want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("object %d %s: %#v, want %#v", r, names[i], got, want)
			}
		}
	}
}

func TestExportSynthetic(t *testing.T) {
	cols := []Column{
		{Name: "id", Type: "INT"}, {Name: "s", Type: "VARCHAR"}, {Name: "s", Type: "TEXT"},
		{Name: "d", Type: "DECIMAL"}, {Name: "b", Type: "BLOB"}, {Name: "j", Type: "JSON"}, {Name: "t", Type: "TIMESTAMP"},
	}
	rows := []json.RawMessage{
		json.RawMessage(`[1,"plain","",  "1.50","AP8=",{"a":[1,"x"]},"2024-01-02T03:04:05Z"]`),
		json.RawMessage(`[2,null,null,null,null,null,null]`),
		json.RawMessage(`[3,"a,b","say \"hi\"","-0.0000000001","","str","2024-01-02T03:04:05.123456Z"]`),
		json.RawMessage(`[4,"line\nbreak","cr\rlf\r\n"," lead","YWJj",null,"0000-00-00 00:00:00"]`),
		json.RawMessage(`[5,"\\.","\u00e9\ud83d\ude00\u2028","99999999999999999999.9999999999","",1.5,"1970-01-01T00:00:01Z"]`),
		json.RawMessage(`[18446744073709551615,"\t","x","0","",true,"2038-01-19T03:14:07Z"]`),
		json.RawMessage(` [ "18446744073709551615" , "sp" , "aces" , "1" , "" , [] , null ] `),
	}
	csvOut := export(t, ExportCSV, cols, rows)
	checkCSV(t, csvOut, cols, rows)
	// NULL is an empty field, the empty string a quoted one.
	if !strings.Contains(csvOut, "\r\n1,plain,\"\",1.50,AP8=,") || !strings.Contains(csvOut, "\r\n2,,,,,,\r\n") {
		t.Errorf("NULL and empty strings:\n%s", csvOut)
	}
	if !strings.Contains(csvOut, `"{""a"":[1,""x""]}"`) || !strings.Contains(csvOut, `,"""str""",`) {
		t.Errorf("JSON values are JSON text:\n%s", csvOut)
	}

	jsonOut := export(t, ExportJSON, cols, rows)
	checkJSONExport(t, jsonOut, cols, rows)
	if !strings.HasPrefix(jsonOut, "[\n{\"id\":1,\"s\":\"plain\",\"s_2\":\"\",") {
		t.Errorf("JSON export:\n%s", jsonOut)
	}

	sqlOut := export(t, ExportSQL, cols, rows)
	want := "SET time_zone = '+00:00';\n" +
		"INSERT INTO `copy` (`id`, `s`, `s_2`, `d`, `b`, `j`, `t`) VALUES\n" +
		`(1, 'plain', '', 1.50, X'00ff', '{"a":[1,"x"]}', '2024-01-02 03:04:05'),` + "\n" +
		`(2, NULL, NULL, NULL, NULL, NULL, NULL),` + "\n" +
		`(3, 'a,b', 'say "hi"', -0.0000000001, X'', '"str"', '2024-01-02 03:04:05.123456'),` + "\n" +
		`(4, _utf8mb4 X'6c696e650a627265616b', _utf8mb4 X'63720d6c660d0a', ' lead', X'616263', NULL, '0000-00-00 00:00:00'),` + "\n" +
		`(5, _utf8mb4 X'5c2e', 'é😀` + "\u2028" + `', 99999999999999999999.9999999999, X'', '1.5', '1970-01-01 00:00:01'),` + "\n" +
		`(18446744073709551615, '	', 'x', 0, X'', 'true', '2038-01-19 03:14:07'),` + "\n" +
		`(18446744073709551615, 'sp', 'aces', 1, X'', '[]', NULL);` + "\n"
	if sqlOut != want {
		t.Errorf("SQL export:\n%s\nwant:\n%s", sqlOut, want)
	}

	// No rows.
	if out := export(t, ExportCSV, cols, nil); out != "id,s,s,d,b,j,t\r\n" {
		t.Errorf("empty CSV: %q", out)
	}
	if out := export(t, ExportJSON, cols, nil); out != "[]\n" {
		t.Errorf("empty JSON: %q", out)
	}
	if out := export(t, ExportSQL, cols, nil); out != "" {
		t.Errorf("empty SQL: %q", out)
	}
}

func TestExportUniqueColumnNames(t *testing.T) {
	cols := []Column{{Name: "a"}, {Name: "a"}, {Name: "a_2"}, {Name: "b"}, {Name: "a"}, {Name: ""}, {Name: ""}}
	want := []string{"a", "a_3", "a_2", "b", "a_4", "", "_2"}
	if got := uniqueColumnNames(cols); !reflect.DeepEqual(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestExportRejectsBadRows(t *testing.T) {
	cols := []Column{{Name: "a", Type: "INT"}, {Name: "b", Type: "VARCHAR"}}
	for _, row := range []string{
		``, `{}`, `[1]`, `[1,"x",2]`, `[1,"x"`, `[1,"x"]x`, `[1);DROP TABLE t;--,"x"]`, `[nul,"x"]`,
		`[1,"a\x"]`, `[1,"a` + "\n" + `"]`, `[1,"x",]`, `[,1,"x"]`, `[1 "x"]`, `[1,"\u12"]`,
	} {
		for _, format := range []string{ExportCSV, ExportJSON, ExportSQL} {
			e, _ := NewExporter(io.Discard, ExportOptions{Format: format, Table: "t"})
			if err := e.Begin(cols); err != nil {
				t.Fatal(err)
			}
			if err := e.Row(json.RawMessage(row)); err == nil {
				t.Errorf("%s accepted %q", format, row)
			}
		}
	}
	for _, format := range []string{ExportCSV, ExportJSON, ExportSQL} {
		e, _ := NewExporter(io.Discard, ExportOptions{Format: format, Table: "t"})
		if err := e.Row(json.RawMessage(`[1,"x"]`)); err == nil {
			t.Errorf("%s: Row before Begin", format)
		}
		if err := e.End(); err == nil {
			t.Errorf("%s: End before Begin", format)
		}
		e.Begin(cols)
		if err := e.Begin(cols); err == nil {
			t.Errorf("%s: Begin twice", format)
		}
		if err := e.End(); err != nil {
			t.Error(err)
		}
		if err := e.Row(json.RawMessage(`[1,"x"]`)); err == nil {
			t.Errorf("%s: Row after End", format)
		}
	}
}

func TestExportUnquote(t *testing.T) {
	for _, s := range []string{"", "plain", trickyText, "\xed\xa0\x80", "a\u0000b", "😀", "\\u0041", "</script>"} {
		q, _ := json.Marshal(s)
		got, err := exportUnquote(nil, q)
		var std string
		json.Unmarshal(q, &std)
		if err != nil || string(got) != std || utf8.ValidString(s) && std != s {
			t.Errorf("%s: %q %v", q, got, err)
		}
	}
	for q, want := range map[string]string{
		`"\ud83d\ude00"`: "😀", `"\ud83d"`: "\uFFFD", `"\ude00\ud83d"`: "\uFFFD\uFFFD", `"\ud83dx"`: "\uFFFDx",
		`"\ud83d\u0041"`: "\uFFFDA", `"\/\b\f\n\r\t"`: "/\b\f\n\r\t", `"\u00E9"`: "é",
	} {
		got, err := exportUnquote(nil, []byte(q))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q %v, want %q", q, got, err, want)
		}
		var std string
		if json.Unmarshal([]byte(q), &std); std != want {
			t.Errorf("%s: encoding/json says %q", q, std)
		}
	}
}

func TestExportSQLBatches(t *testing.T) {
	cols := []Column{{Name: "id", Type: "INT"}, {Name: "v", Type: "LONGTEXT"}}
	var rows []json.RawMessage
	for i := range 250 {
		rows = append(rows, json.RawMessage(fmt.Sprintf(`[%d,"v"]`, i)))
	}
	big := strings.Repeat("x", 400<<10)
	for i := range 5 {
		rows = append(rows, json.RawMessage(fmt.Sprintf(`[%d,"%s"]`, 1000+i, big)))
	}
	out := export(t, ExportSQL, cols, rows)
	stmts := strings.SplitAfter(out, ";\n")
	if stmts[len(stmts)-1] != "" {
		t.Fatalf("the export does not end with ;\\n")
	}
	stmts = stmts[:len(stmts)-1]
	// 100 + 100 + 50 small rows, then 2 + 2 + 1 big ones (about 1 MiB per statement).
	wantRows := []int{100, 100, 52, 2, 1}
	if len(stmts) != len(wantRows) {
		t.Fatalf("%d statements, want %d", len(stmts), len(wantRows))
	}
	for i, s := range stmts {
		if !strings.HasPrefix(s, "INSERT INTO `copy` (`id`, `v`) VALUES\n(") {
			t.Errorf("statement %d: %.60q", i, s)
		}
		if n := strings.Count(s, "\n("); n != wantRows[i] {
			t.Errorf("statement %d: %d rows, want %d", i, n, wantRows[i])
		}
		if len(s) > exportBatchBytes+len(big)+100 {
			t.Errorf("statement %d: %d bytes", i, len(s))
		}
	}
}

func TestExportSQLLoadsBack(t *testing.T) {
	db := shapeTestDB(t)
	createAllTypesTable(t, db, "src")
	insertTrickyRows(t, db, "src")
	// Enough more rows for several statements, with every byte value in text and blobs.
	shapeExec(t, db, `INSERT INTO src (id, bi, bu, dc, d, dtm, ts, tx, vc, bl, vb, b64, js)
		WITH RECURSIVE seq(n) AS (SELECT 100 UNION ALL SELECT n + 1 FROM seq WHERE n < 349)
		SELECT n, -n * 1000000007, n * 1000000007, n / 7, n / 3e0, '2020-02-02 02:02:02' + INTERVAL n SECOND,
			'2020-02-02 02:02:02.5' + INTERVAL n DAY, CONCAT('row ', n, CHAR(n % 128 USING utf8mb4), ' \\\'"'),
			CONCAT(n, ' ', CHAR(n % 32 + 1 USING utf8mb4)), UNHEX(LPAD(HEX(n % 256), 2, '0')), UNHEX(MD5(n)), n,
			JSON_OBJECT('n', n, 's', CONCAT('\\', n))
		FROM seq`)
	cols, rows := readAllShaped(t, db, "SELECT * FROM src ORDER BY id")
	out := export(t, ExportSQL, cols, rows)
	if !strings.HasSuffix(out, ";\n") {
		t.Fatal("the export does not end with ;\\n")
	}
	stmts := strings.SplitAfter(out, ";\n")
	stmts = stmts[:len(stmts)-1]
	if len(stmts) < 4 {
		t.Fatalf("%d statements", len(stmts))
	}

	// Load it twice: in a plain session, and in one with NO_BACKSLASH_ESCAPES, ANSI_QUOTES and
	// another time zone (the export sets time_zone itself).
	ctx := shapeContext(t)
	for _, tc := range []struct{ table, setup string }{
		{"copy", ""},
		{"copy2", "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES,ANSI_QUOTES'), time_zone = '+05:30'"},
	} {
		createAllTypesTable(t, db, tc.table)
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tc.setup != "" {
			if _, err := conn.ExecContext(ctx, tc.setup); err != nil {
				t.Fatal(err)
			}
		}
		for i, stmt := range stmts {
			stmt = strings.Replace(stmt, "INSERT INTO `copy` ", "INSERT INTO `"+tc.table+"` ", 1)
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s: statement %d: %v\n%.2000s", tc.table, i, err, stmt)
			}
		}
		conn.Close()

		_, copied := readAllShaped(t, db, "SELECT * FROM "+tc.table+" ORDER BY id")
		if len(copied) != len(rows) {
			t.Fatalf("%s: %d rows, want %d", tc.table, len(copied), len(rows))
		}
		for i := range rows {
			if !bytes.Equal(rows[i], copied[i]) {
				t.Errorf("%s row %d:\n got %s\nwant %s", tc.table, i+1, copied[i], rows[i])
			}
		}
		var src, dst struct {
			name string
			sum  sql.NullInt64
		}
		if err := db.QueryRowContext(ctx, "CHECKSUM TABLE src").Scan(&src.name, &src.sum); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, "CHECKSUM TABLE "+tc.table).Scan(&dst.name, &dst.sum); err != nil {
			t.Fatal(err)
		}
		if !src.sum.Valid || src.sum != dst.sum {
			t.Errorf("%s: checksum %v, source %v", tc.table, dst.sum, src.sum)
		}
	}

	// The CSV and JSON exports of the same rows read back to the same values.
	checkCSV(t, export(t, ExportCSV, cols, rows), cols, rows)
	checkJSONExport(t, export(t, ExportJSON, cols, rows), cols, rows)
}

func BenchmarkExportCSV(b *testing.B) {
	cols := []Column{
		{Name: "id", Type: "BIGINT"}, {Name: "name", Type: "VARCHAR"}, {Name: "amount", Type: "DECIMAL"},
		{Name: "at", Type: "DATETIME"}, {Name: "note", Type: "TEXT"}, {Name: "data", Type: "BLOB"},
	}
	rows := make([]json.RawMessage, 100_000)
	for i := range rows {
		note := "null"
		if i%3 == 0 {
			note = fmt.Sprintf(`"note, with \"quotes\" %d\n"`, i)
		}
		rows[i] = json.RawMessage(fmt.Sprintf(`[%d,"name %d","%d.25","2024-01-02T03:04:05",%s,"AAECAwQFBgcICQ=="]`, i, i, i, note))
	}
	b.ReportAllocs()
	for b.Loop() {
		e, err := NewExporter(io.Discard, ExportOptions{Format: ExportCSV, Table: "t"})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Begin(cols); err != nil {
			b.Fatal(err)
		}
		for _, row := range rows {
			if err := e.Row(row); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.End(); err != nil {
			b.Fatal(err)
		}
	}
}

// A text cell a spreadsheet would run as a formula (issue 10, item 15: =HYPERLINK(...), +cmd,
// -2+3, @SUM, a leading tab or CR) gets a leading ' by default; numbers, DECIMALs, dates, times
// and JSON keep their value, so -5 stays a number; RawFormulas writes every cell as it is.
func TestExportCSVNeutralisesFormulas(t *testing.T) {
	cols := []Column{{Name: "=name", Type: "VARCHAR"}, {Name: "n", Type: "INT"}, {Name: "d", Type: "DECIMAL"},
		{Name: "f", Type: "DOUBLE"}, {Name: "t", Type: "TIME"}, {Name: "j", Type: "JSON"}, {Name: "b", Type: "BLOB"}}
	rows := []json.RawMessage{
		json.RawMessage(`["=HYPERLINK(\"http://x\",\"y\")",-5,"-5.50",-1.5,"-01:00:00",-5,"+A=="]`),
		json.RawMessage(`["+cmd",1,"1","2","00:00:01",{"a":"=x"},"AP8="]`),
		json.RawMessage(`["-2+3",null,null,null,null,null,null]`),
		json.RawMessage(`["@SUM(A1)",null,null,null,null,null,null]`),
		json.RawMessage(`["\t=1",null,null,null,null,null,null]`),
		json.RawMessage(`["\r=1",null,null,null,null,null,null]`),
		json.RawMessage(`["plain = text",null,null,null,null,null,null]`),
	}
	want := [][]string{
		{"'=name", "n", "d", "f", "t", "j", "b"},
		{`'=HYPERLINK("http://x","y")`, "-5", "-5.50", "-1.5", "-01:00:00", "-5", "'+A=="},
		{"'+cmd", "1", "1", "2", "00:00:01", `{"a":"=x"}`, "AP8="},
		{"'-2+3", "", "", "", "", "", ""},
		{"'@SUM(A1)", "", "", "", "", "", ""},
		{"'\t=1", "", "", "", "", "", ""},
		{"'\r=1", "", "", "", "", "", ""},
		{"plain = text", "", "", "", "", "", ""},
	}
	read := func(out string) [][]string {
		r := csv.NewReader(strings.NewReader(out))
		records, err := r.ReadAll()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return records
	}
	var out bytes.Buffer
	e, err := NewExporter(&out, ExportOptions{Format: ExportCSV})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Begin(cols); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if err := e.Row(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.End(); err != nil {
		t.Fatal(err)
	}
	if got := read(out.String()); !reflect.DeepEqual(got, want) {
		t.Errorf("neutralised CSV:\n got %q\nwant %q", got, want)
	}
	raw := read(export(t, ExportCSV, cols, rows))
	if raw[0][0] != "=name" || raw[1][0] != `=HYPERLINK("http://x","y")` || raw[2][0] != "+cmd" || raw[1][6] != "+A==" {
		t.Errorf("raw CSV: %q", raw[:3])
	}
}
