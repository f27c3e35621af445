package projections

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// FuzzAuditDetails: whatever a payload holds, an entry's details are the bytes the old way (every
// value decoded into an any and encoded again) made, and a payload the old way refused is refused.
func FuzzAuditDetails(f *testing.F) {
	executed := domain.QueryExecuted{}.EventType()
	for _, seed := range []string{
		`{"query_id":"q","sql":"SELECT '<a&b>'","row_count":3,"execution_ms":0.436,"affected_rows":0}`,
		`{"a":1.0}`, `{"a":1.50}`, `{"a":0.0000001}`, `{"a":-0}`, `{"a":-0.0}`, `{"a":100000000000000}`,
		"{\"sql\":\"a\xffb\"}", "{\"a\":[\"\xff\"]}", `{"a":"\u0000"}`, "{\"a\":\"x\u2028y\"}", `{"a":1e400}`,
		`{"a":["x",1.0]}`, `{"sql":1e400}`, `{"statements":[{"a":1e400}]}`, `{"password_hash":-1e999,"a":1}`, `{"a":{"b":1.0}}`, `{"a":"\\N"}`, `{"a":null}`, `null`, `{}`, ` {"a":1} `,
	} {
		f.Add(executed, []byte(seed))
		f.Add("x.v1", []byte(seed))
	}
	f.Fuzz(func(t *testing.T, eventType string, payload []byte) {
		var values map[string]any
		oldErr := json.Unmarshal(payload, &values)
		r, err := auditEntry(eventstore.Envelope{EventType: eventType, StreamType: "x", StreamID: "x-1", Payload: payload})
		if (err != nil) != (oldErr != nil) {
			t.Fatalf("%q: error %v, before %v", payload, err, oldErr)
		}
		if oldErr != nil {
			return
		}
		details := map[string]any{}
		for k, v := range values {
			if domain.SecretHashField(k) || containsString(auditDetailsDropped, k) {
				continue
			}
			details[k] = v
		}
		if eventType == executed {
			details["rows"] = details["row_count"]
			delete(details, "row_count")
		}
		want, merr := json.Marshal(details)
		if merr != nil {
			t.Skip()
		}
		if !bytes.Equal(r.details, want) {
			t.Fatalf("%s %q: details\n%s\nbefore\n%s", eventType, payload, r.details, want)
		}
	})
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
