package projections

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// decodeEvent gives what the registry gives: for an executed query read directly, for one with an
// escape in its SQL through the registry, and for any other event.
func TestDecodeEventIsTheRegistrys(t *testing.T) {
	reg := eventstore.NewDomainRegistry()
	at := time.Date(2026, 12, 7, 18, 0, 0, 123456789, time.UTC)
	for _, e := range []domain.Event{
		domain.QueryExecuted{QueryID: "q", TenantID: "t", UserID: "u", DatabaseID: "d", SQL: "SELECT 1", Fingerprint: "SELECT ?",
			StatementType: "read", Status: domain.QuerySucceeded, ExecutionMS: 0.436, RowCount: 1, Tables: []string{"a"}, At: at},
		domain.QueryExecuted{QueryID: "q", SQL: "SELECT 'é\n'", Status: domain.QueryFailed, At: at},
		domain.DatabaseStopped{At: at},
	} {
		payload, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		env := eventstore.Envelope{EventType: e.EventType(), Payload: payload}
		want, werr := reg.Decode(env)
		got, err := decodeEvent(reg, env)
		if err != nil || werr != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %#v (%v), registry %#v (%v)", e.EventType(), got, err, want, werr)
		}
	}
}
