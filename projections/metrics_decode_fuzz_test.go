package projections

import (
	"reflect"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// FuzzDecodeQuery: what decodeQuery accepts, the registry decodes to the same executed query; of
// the counted fields only, it accepts the same and decodes them the same.
func FuzzDecodeQuery(f *testing.F) {
	for _, seed := range []string{
		`{"query_id":"q","tenant_id":"t","user_id":"u","database_id":"d","sql":"SELECT 1","fingerprint":"SELECT ?","statement_type":"read","tables":["a"],"status":"succeeded","execution_ms":0.436,"row_count":1,"affected_rows":0,"at":"2026-12-07T18:00:00.123456789Z"}`,
		`{"sql":"a\u2028b \\ \" \ud800","tables":[],"at":"2026-12-07T18:00:00Z"}`, "{\"sql\":\"\xff\"}", `{"tables":null}`,
		`{"tables":["a"],"tables":[]}`, `{"mysql_code":-0,"row_count":9223372036854775808}`, `{"execution_ms":-0.0}`,
		`{"at":"2026-12-07T18:00:00+01:00"}`, `{"sql_truncated":false,"sql_truncated":true}`, ` {"status":"x"} `,
	} {
		f.Add([]byte(seed))
	}
	reg := eventstore.NewDomainRegistry()
	f.Fuzz(func(t *testing.T, payload []byte) {
		intern := map[string]string{}
		got, ok := decodeQuery(payload, intern, false)
		if counted, countedOK := decodeQuery(payload, map[string]string{}, true); countedOK != ok || ok && !reflect.DeepEqual(counted, withoutUncounted(got)) {
			t.Fatalf("%q: the counted fields %#v, %v; all of them %#v, %v", payload, counted, countedOK, got, ok)
		}
		if !ok {
			return
		}
		want, err := reg.Decode(eventstore.Envelope{EventType: queryExecutedType, Payload: payload})
		if err != nil {
			t.Fatalf("%q: decodeQuery accepted, the registry: %v", payload, err)
		}
		if !reflect.DeepEqual(domain.Event(got), want) {
			t.Fatalf("%q: %#v, registry %#v", payload, got, want)
		}
		if again, _ := decodeQuery(payload, intern, false); !reflect.DeepEqual(again, got) {
			t.Fatalf("%q: with the strings interned %#v, first %#v", payload, again, got)
		}
	})
}
