package projections

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// TestDecodeQueryAgreesWithEncodingJSON: what decodeQuery accepts it decodes as the registry's
// encoding/json (unknown fields disallowed) does, and whatever it declines (escapes, non-ASCII,
// unknown fields, null, floats in integers, bad numbers and times) is left to the registry; of
// the counted fields only (the metrics'), it accepts the same and decodes them the same.
func TestDecodeQueryAgreesWithEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	texts := []string{"SELECT 1", "SELECT * FROM t WHERE a < ? AND b > ?", `SELECT "x" FROM t`, `SELECT '\n'`, "SELECT 'é'", "", "x\u2028y"}
	var payloads [][]byte
	for range 300 {
		q := domain.QueryExecuted{QueryID: "q-" + string(rune('a'+rng.IntN(26))), TenantID: "6f1c7a52-4a7e-4bb8-9d1f-3f1e0a7f8c11",
			UserID: "u1", DatabaseID: "d1", SQL: texts[rng.IntN(len(texts))], SQLTruncated: rng.IntN(2) == 0,
			Fingerprint: texts[rng.IntN(len(texts))], StatementType: "read", Status: domain.QueryFailed, ErrorCode: "query_failed",
			Error: "boom", MySQLCode: rng.IntN(2000), ExecutionMS: rng.Float64() * 1000, RowCount: rng.Int64N(1 << 40),
			AffectedRows: -rng.Int64N(3), At: time.Unix(rng.Int64N(1<<32), rng.Int64N(1e9)).UTC()}
		if rng.IntN(3) == 0 {
			q.Tables = []string{"t", "u"}
		}
		p, err := json.Marshal(q)
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, p)
	}
	payloads = append(payloads, [][]byte{
		[]byte(` { "tenant_id" : "t" , "execution_ms" : 1.5e3 , "row_count": 0, "at": "2026-03-01T09:00:00Z", "tables": [] } `),
		[]byte(`{"tenant_id":"t","extra":1}`),
		[]byte(`{"tenant_id":null}`),
		[]byte(`{"row_count":1.5}`),
		[]byte(`{"row_count":1e3}`),
		[]byte(`{"row_count":01}`),
		[]byte(`{"execution_ms":+1}`),
		[]byte(`{"execution_ms":0x10}`),
		[]byte(`{"execution_ms":1e999}`),
		[]byte(`{"at":"yesterday"}`),
		[]byte(`{"at":null}`),
		[]byte(`{"Tenant_ID":"t"}`),
		[]byte(`{"tenant_id":"a","tenant_id":"b"}`),
		[]byte(`{"sql_truncated":true}`),
		[]byte(`{"sql_truncated":1}`),
		[]byte(`{}`),
		[]byte(`{"tenant_id":"t"} x`),
		[]byte(`{"tenant_id":"t",}`),
		[]byte(`{"tables":["a",]}`),
		[]byte(`[]`),
		[]byte(`{"sql":"a\u003cb \"c\" \\ \n \/ \ud83d\ude00 \ud800 é` + "\xff" + `"}`),
		[]byte(`{"sql":"a\x"}`),
		[]byte("{\"sql\":\"tab\there\"}"),
	}...)
	accepted := 0
	for i, p := range payloads {
		var want domain.QueryExecuted
		dec := json.NewDecoder(bytes.NewReader(p))
		dec.DisallowUnknownFields()
		wantErr := dec.Decode(&want)
		if wantErr == nil && dec.More() {
			wantErr = errTrailing
		}
		got, ok := decodeQuery(p, map[string]string{}, false)
		if counted, countedOK := decodeQuery(p, map[string]string{}, true); countedOK != ok || ok && !reflect.DeepEqual(counted, withoutUncounted(got)) {
			t.Errorf("decodeQuery(%s) of the counted fields = %+v, %v; of all of them %+v, %v", p, counted, countedOK, got, ok)
		}
		if !ok {
			if i < 300 || bytes.Contains(p, []byte("ud83d")) {
				t.Errorf("decodeQuery declined %s, a payload as the store writes them", p)
			}
			continue
		}
		accepted++
		if wantErr != nil {
			t.Errorf("decodeQuery accepted %s, which encoding/json rejects: %v", p, wantErr)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decodeQuery(%s) = %+v, encoding/json %+v", p, got, want)
		}
	}
	if accepted < 300 {
		t.Fatalf("decodeQuery accepted only %d payloads", accepted)
	}
}

var errTrailing = &json.SyntaxError{}

// withoutUncounted is q without what decodeQuery leaves out for the metrics.
func withoutUncounted(q domain.QueryExecuted) domain.QueryExecuted {
	q.QueryID, q.SQL, q.Error, q.Tables = "", "", "", nil
	return q
}
