package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// t0 is the fixed "now" of the domain tests; every other instant is derived from it.
var t0 = time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)

// Canonical ids for the tests.
const (
	uuidA = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	uuidB = "0f8fad5b-d9cb-469f-a165-70867728950e"
	uuidC = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
)

// typesOf returns the EventType of each event, in order.
func typesOf(events []domain.Event) []string {
	out := make([]string, 0, len(events))
	for _, e := range events {
		out = append(out, e.EventType())
	}
	return out
}

// wantPending fails the test unless the aggregate's pending events have exactly these types.
func wantPending(t *testing.T, pending []domain.Event, want ...string) {
	t.Helper()
	got := typesOf(pending)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pending events = %v, want %v", got, want)
	}
}

// wantValidation fails the test unless err is a *ValidationError with exactly these field names.
func wantValidation(t *testing.T, err error, fields ...string) *domain.ValidationError {
	t.Helper()
	var verr *domain.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v (%T), want a *ValidationError for %v", err, err, fields)
	}
	if len(verr.Fields) != len(fields) {
		t.Fatalf("ValidationError fields = %v, want exactly %v", verr.Fields, fields)
	}
	for _, f := range fields {
		if verr.Fields[f] == "" {
			t.Fatalf("ValidationError fields = %v, want a message for %q", verr.Fields, f)
		}
	}
	return verr
}

// viaJSON returns the events as the event store gives them back: each marshalled and unmarshalled
// into a new value of its own type.
func viaJSON(t *testing.T, events []domain.Event) []domain.Event {
	t.Helper()
	out := make([]domain.Event, 0, len(events))
	for _, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("marshal %s: %v", e.EventType(), err)
		}
		ptr := reflect.New(reflect.TypeOf(e))
		if err := json.Unmarshal(data, ptr.Interface()); err != nil {
			t.Fatalf("unmarshal %s from %s: %v", e.EventType(), data, err)
		}
		out = append(out, ptr.Elem().Interface().(domain.Event))
	}
	return out
}
