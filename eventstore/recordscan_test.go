package eventstore

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// exportedLine is an event record as ExportWriter writes it.
func exportedLine(t testing.TB, audit string) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewExportWriter(&buf, false, ExportHeader{ExportedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	r := ChainRecord{Position: 41, ChainID: "0b5c3a1e-tenant", ChainSeq: 40, EventID: "5f0e8a52-6c41-4a8e-9d0e-2b7f0c1d9e11",
		StreamID: "query-1", StreamType: "query", StreamVersion: 1, EventType: "query.executed.v1",
		RecordedAt: time.Date(2026, 12, 7, 10, 0, 0, 123456000, time.UTC), Data: []byte(`{"sql":"SELECT 1","rows":[1,2.5e3,-0,true,null],"ü":"\u00e9\n"}`),
		Metadata: []byte(`{"ip": "203.0.113.7", "tenant_id": "0b5c3a1e-tenant"}`)}
	r.DataSHA256[0], r.MetadataSHA256[1], r.PrevHash[2], r.Hash[31] = 1, 2, 3, 4
	if err := w.Event(r, "", []byte(audit)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return strings.SplitN(buf.String(), "\n", 3)[1]
}

// scanAgrees checks scanRecord against encoding/json on raw: when it reads raw itself, encoding/json
// must accept it and decode the same record. It returns whether scanRecord read it.
func scanAgrees(t *testing.T, raw []byte) bool {
	t.Helper()
	var fast, slow fileRecord
	ok := scanRecord(raw, &fast)
	err := json.Unmarshal(raw, &slow)
	switch {
	case ok && err != nil:
		t.Errorf("scanRecord reads what encoding/json refuses (%v): %q", err, raw)
	case ok && !reflect.DeepEqual(fast, slow):
		t.Errorf("scanRecord reads %q as\n%+v\nencoding/json as\n%+v", raw, fast, slow)
	}
	return ok
}

// TestScanRecordAgrees: the records an export writes are read by scanRecord, as encoding/json reads
// them; whatever it leaves to encoding/json (which then reports or reads it) is left whole.
func TestScanRecordAgrees(t *testing.T) {
	line := exportedLine(t, `{"id":"5f0e8a52-6c41-4a8e-9d0e-2b7f0c1d9e11","actor":{"id":null,"email":"a@example.com"},"details":{"Id":1}}`)
	for _, raw := range []string{line, exportedLine(t, ""), " \t" + line + "\r\n",
		strings.Replace(line, `"data":{`, `"data":null,"x":{`, 1),
		strings.Replace(line, `"audit":{`, `"audit":null,"later":{`, 1),
		strings.Replace(line, `"chain_seq":40`, `"chain_seq":-0`, 1),
		strings.Replace(line, `{"kind":"event",`, `{"kind":"event","unknown":[{"a":[]},"\"",1e-3],`, 1),
	} {
		if !scanAgrees(t, []byte(raw)) {
			t.Errorf("scanRecord leaves a record as the export writes it to encoding/json: %q", raw)
		}
	}
	for name, raw := range map[string]string{
		"a signed head":                 `{"kind":"signed_head","chain_id":"c","chain_seq":3,"hash":"` + strings.Repeat("ab", 32) + `","signed_at":"2026-12-07T10:00:00.000000Z","key_id":"k","signature":"AAAA"}`,
		"a key in another case":         strings.Replace(line, `"chain_seq"`, `"Chain_Seq"`, 1),
		"a key folding by Unicode":      strings.Replace(line, `"kind"`, `"\u212aind"`, 1),
		"a key folding by Unicode, raw": strings.Replace(line, `"kind"`, "\"\u212aind\"", 1),
		"an escaped key":                strings.Replace(line, `"hash"`, `"h\u0061sh"`, 1),
		"a duplicate key":               strings.Replace(line, `"kind":"event"`, `"kind":"event","kind":"signed_head"`, 1),
		"an escaped string":             strings.Replace(line, `"stream_id":"query-1"`, `"stream_id":"query\u002d1"`, 1),
		"invalid UTF-8":                 strings.Replace(line, `"stream_id":"query-1"`, "\"stream_id\":\"query\xff1\"", 1),
		"a fraction":                    strings.Replace(line, `"chain_seq":40`, `"chain_seq":40.0`, 1),
		"an exponent":                   strings.Replace(line, `"chain_seq":40`, `"chain_seq":4e1`, 1),
		"past int64":                    strings.Replace(line, `"chain_seq":40`, `"chain_seq":9223372036854775808`, 1),
		"a number as a string":          strings.Replace(line, `"chain_seq":40`, `"chain_seq":"40"`, 1),
		"null for a string":             strings.Replace(line, `"event_id":"5f0e`, `"event_id":null,"x":"5f0e`, 1),
		"a short hash":                  strings.Replace(line, `"hash":"00`, `"hash":"0`, 1),
		"a hash in upper case":          strings.Replace(line, `"hash":"00`, `"hash":"AB`, 1),
		"a leading zero":                strings.Replace(line, `"position":41`, `"position":041`, 1),
		"invalid JSON in data":          strings.Replace(line, `"rows":[1,`, `"rows":[1,,`, 1),
		"a trailing comma in data":      strings.Replace(line, `null],`, `null,],`, 1),
		"a control character":           strings.Replace(line, `"SELECT 1"`, "\"SELECT\t1\"", 1),
		"a bad escape":                  strings.Replace(line, `\n`, `\x`, 1),
		"a short unicode escape":        strings.Replace(line, `\u00e9`, `\u00e`, 1),
		"trailing text":                 line + "x",
		"two records":                   line + line,
		"a trailing comma":              strings.TrimSuffix(line, "}") + ",}",
		"cut short":                     line[:len(line)/2],
		"an audit entry not an object":  strings.Replace(line, `"audit":{`, `"audit":"x","y":{`, 1),
		"an audit id in another case":   strings.Replace(line, `"audit":{"id"`, `"audit":{"ID"`, 1),
		"an audit id twice":             strings.Replace(line, `"audit":{"id":"5f0e`, `"audit":{"id":"a","id":"5f0e`, 1),
		"an audit id that is a number":  strings.Replace(line, `"audit":{"id":"5f0e8a52-6c41-4a8e-9d0e-2b7f0c1d9e11"`, `"audit":{"id":7`, 1),
		"not an object":                 `["kind","event"]`,
		"null":                          `null`,
		"empty":                         ``,
		"an empty object":               `{}`,
		"a literal cut short":           strings.Replace(line, `true`, `tru`, 1),
		"deep nesting":                  strings.Replace(line, `"data":{`, `"data":`+strings.Repeat("[", 2000)+strings.Repeat("]", 2000)+`,"x":{`, 1),
	} {
		t.Run(name, func(t *testing.T) { scanAgrees(t, []byte(raw)) })
	}
}

// FuzzScanRecord: whatever the bytes, scanRecord reads nothing encoding/json refuses, and decodes
// what it reads as encoding/json does.
func FuzzScanRecord(f *testing.F) {
	f.Add([]byte(exportedLine(f, `{"id":"5f0e8a52-6c41-4a8e-9d0e-2b7f0c1d9e11","details":{}}`)))
	f.Add([]byte(exportedLine(f, "")))
	f.Add([]byte(`{"kind":"event","chain_seq":1,"audit":null,"data":[1,{"a":"\u0041"}],"KIND":"x"}`))
	f.Fuzz(func(t *testing.T, raw []byte) { scanAgrees(t, raw) })
}
