package eventstore

import (
	"encoding/json"
	"testing"
)

// The direct reading of a stored metadata gives what json.Unmarshal gives, and is taken for the
// metadata json.Marshal writes.
func FuzzDecodeMetadata(f *testing.F) {
	written, _ := json.Marshal(Metadata{ActorID: "a6a9ce22", TenantID: "t", CorrelationID: "c", CausationID: "x", RequestID: "r",
		IP: "pd1:user-a:P3Y2Du1we_iOtSOUY8", UserAgent: "curl/8.5 é", SessionID: "s", APIKeyID: "k"})
	for _, seed := range []string{string(written), `{}`, `{"actor_id":"a"}`, `{"actor_id":"a\"b"}`, `{"actor_id":"a\u00e9"}`,
		`{"actor_id":"a","actor_id":"b"}`, `{"other":"x","ip":"1"}`, `{ "ip": "1" }`, `{"ip":1}`, `{"ip":"1",}`, `{"ip":"\xff"}`,
		`null`, `{"ip":"1"}x`, `{"ip":"1","ua":{"a":"b"}}`, `{"ip":"`, `{"ip"}`, `{"":""}`, "{\"ip\":\"a\tb\"}"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want Metadata
		wantErr := json.Unmarshal(data, &want)
		var got Metadata
		gotErr := decodeMetadata(data, &got)
		if (gotErr != nil) != (wantErr != nil) || (wantErr == nil && got != want) {
			t.Fatalf("%q: %+v (%v), json.Unmarshal %+v (%v)", data, got, gotErr, want, wantErr)
		}
	})
}

func TestWrittenMetadataIsReadDirectly(t *testing.T) {
	written, _ := json.Marshal(Metadata{ActorID: "a", TenantID: "t", RequestID: "r", IP: "pd1:user-a:xyz", UserAgent: "curl é", SessionID: "s"})
	if md, ok := plainMetadata(written); !ok || md.UserAgent != "curl é" || md.SessionID != "s" {
		t.Fatalf("%s: %+v, %v", written, md, ok)
	}
}
