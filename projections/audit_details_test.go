package projections

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// detailsAsBefore is how an entry's details were made before they kept the payload's values as
// they are: every value decoded into an any and encoded again.
func detailsAsBefore(t *testing.T, eventType string, payload []byte) []byte {
	t.Helper()
	var values map[string]any
	if err := json.Unmarshal(payload, &values); err != nil {
		t.Fatal(err)
	}
	details := map[string]any{}
	for k, v := range values {
		if domain.SecretHashField(k) || slices.Contains(auditDetailsDropped, k) {
			continue
		}
		details[k] = v
	}
	if eventType == (domain.QueryExecuted{}).EventType() {
		details["rows"] = details["row_count"]
		delete(details, "row_count")
	}
	out, err := json.Marshal(details)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The details of an entry are the bytes they always were, for the payload of every event type
// (the golden payloads) and for values that only the slower way encodes as before.
func TestAuditDetailsAreTheBytesOfBefore(t *testing.T) {
	files, err := filepath.Glob("../eventstore/testdata/events/*.json")
	if err != nil || len(files) < 50 {
		t.Fatalf("golden payloads: %d, %v", len(files), err)
	}
	type payload struct{ eventType, json string }
	var payloads []payload
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, payload{strings.TrimSuffix(filepath.Base(f), ".json"), string(bytes.TrimSpace(b))})
	}
	executed := domain.QueryExecuted{}.EventType()
	payloads = append(payloads,
		payload{executed, `{"query_id":"q","sql":"SELECT '<a&b>'","error":"l\u00e9n \"x\"\n\u2028","tables":["t1","t2"],"row_count":3,"execution_ms":0.436,"affected_rows":0}`},
		payload{executed, `{"query_id":"q","status":"failed"}`},
		payload{executed, `{"error":"a \"b\"\n\tc\\d <x> & y é","tables":["a\"b"],"row_count":-3}`},
		payload{executed, `{"row_count":9007199254740993,"execution_ms":1e-7}`},
		payload{"tenant.settings_changed.v1", `{"settings":{"z":1,"a":{"y":[1,2],"b":null}},"at":"2026-12-07T17:00:00Z"}`},
		payload{"x.v1", `{"list":[{"b":1,"a":2}],"n":-12.5,"big":123456789012345678,"ok":true,"none":null,"password_hash":"h"}`},
	)
	// The payload of an executed query, as the log holds it, keeps its values as they are.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(payloads[len(payloads)-4].json), &fields); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		if !keptAsIs(v) {
			t.Errorf("%s: %s is decoded and encoded again", k, v)
		}
	}
	payloads = append(payloads,
		payload{executed, `{"rows":5,"sql":"x"}`},
		payload{executed, `{"row_count":1,"rows":5}`},
		payload{executed, `{"a":"x y z"}`},
		payload{"x.v1", `{"a":-0.5,"b":[],"c":["<"]}`},
		payload{"x.v1", `{"a":1,"a":2}`}, payload{"x.v1", `{"a" :1}`}, payload{"x.v1", `{"a\u0041":1}`}, payload{"x.v1", `{}`},
		payload{"x.v1", `{"a":[1,"b"]}`}, payload{"x.v1", `{"a":["b" ]}`}, payload{"x.v1", `{"a":"\/"}`},
	)
	flat := 0
	for _, p := range payloads {
		if _, ok := flatPayload([]byte(p.json)); ok {
			flat++
		}
		r, err := auditEntry(eventstore.Envelope{EventType: p.eventType, StreamType: "x", StreamID: "x-1", Payload: []byte(p.json)})
		if err != nil {
			t.Fatalf("%s %s: %v", p.eventType, p.json, err)
		}
		if want := detailsAsBefore(t, p.eventType, []byte(p.json)); !bytes.Equal(r.details, want) {
			t.Errorf("%s %s: details\n%s\nwant\n%s", p.eventType, p.json, r.details, want)
		}
	}
	if flat < 50 {
		t.Errorf("%d payloads of %d read flat", flat, len(payloads))
	}
	for _, p := range payloads {
		if strings.Contains(p.json, `"row_count":-3`) {
			if _, ok := flatPayload([]byte(p.json)); !ok {
				t.Errorf("an executed query's payload is not read flat: %s", p.json)
			}
		}
	}
	for _, invalid := range []string{`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":tru}`, `{"a":"x}`, `{"a":1,}`} {
		if _, err := auditEntry(eventstore.Envelope{EventType: "x.v1", Payload: []byte(invalid)}); err == nil {
			t.Errorf("%s: no error", invalid)
		}
	}
}
