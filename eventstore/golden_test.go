package eventstore_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/eventsample"
)

// -update writes the golden file of every registered event type that has none. It never rewrites
// one: a golden file is the shape events of its type were stored in, and the log keeps them.
var update = flag.Bool("update", false, "write the missing golden files of event types")

const goldenDir = "testdata/events"

// retiredMeaning is what the golden payload of each retired event type (one with an upcaster)
// must decode to in today's build.
var retiredMeaning = map[string]domain.Event{
	// v1 changes ended sessions by themselves, in the sessions read model only.
	"user.password_changed.v1": domain.UserPasswordChanged{
		At: time.Date(2025, time.March, 1, 12, 0, 2, 0, time.UTC), PasswordHash: "s3", Reason: "s4", ImpliesSessionEnds: true,
	},
	"tenant.member_role_changed.v1": domain.TenantMemberRoleChanged{UserID: "s2", From: "s3", To: "s4", ImpliesSessionEnds: true},
}

// TestGoldenEvents pins the stored shape of every event type: each has a golden file of its
// payload as first recorded, and every later build must decode it (refusing unknown fields) to a
// value whose JSON still holds each of the golden fields with its value: a field renamed, removed
// or retyped fails here, a field added (zero in old events) does not.
func TestGoldenEvents(t *testing.T) {
	registry := eventstore.NewDomainRegistry()
	for _, e := range domain.Events() {
		path := filepath.Join(goldenDir, e.EventType()+".json")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && *update {
			writeGolden(t, path, e)
		} else if err != nil {
			t.Errorf("%s has no golden file %s (go test ./eventstore -run TestGoldenEvents -update writes it): %v", e.EventType(), path, err)
		}
	}
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s: %v", goldenDir, err)
	}
	for _, path := range files {
		eventType := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(eventType, func(t *testing.T) {
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			payload := json.RawMessage(strings.TrimSpace(string(golden)))
			decoded, err := registry.Decode(eventstore.Envelope{EventType: eventType, Payload: payload})
			if err != nil {
				t.Fatalf("today's build cannot read the events stored as %s: %v", eventType, err)
			}
			if want, retired := retiredMeaning[eventType]; retired {
				if !reflect.DeepEqual(decoded, want) {
					t.Errorf("%s decodes to\n%#v\nwant %#v", eventType, decoded, want)
				}
			} else if !registry.Knows(eventType) {
				t.Errorf("%s is upcast but its meaning is not pinned in retiredMeaning", eventType)
			}
			reencoded, err := json.Marshal(decoded)
			if err != nil {
				t.Fatal(err)
			}
			var was, is any
			if err := json.Unmarshal(payload, &was); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(reencoded, &is); err != nil {
				t.Fatal(err)
			}
			if path, ok := holds(is, was, "$"); !ok {
				t.Errorf("%s: stored %s\nreads back as %s\nwhich lost or changed %s", eventType, payload, reencoded, path)
			}
		})
	}
}

// holds reports whether is keeps every field of was with the same value (objects may have gained
// fields); when not, it returns the path of the first difference.
func holds(is, was any, path string) (string, bool) {
	wasObject, ok := was.(map[string]any)
	if !ok {
		return path, reflect.DeepEqual(is, was)
	}
	isObject, ok := is.(map[string]any)
	if !ok {
		return path, false
	}
	for name, value := range wasObject {
		if at, ok := holds(isObject[name], value, path+"."+name); !ok {
			return at, false
		}
	}
	return "", true
}

func writeGolden(t *testing.T, path string, e domain.Event) {
	t.Helper()
	sample, err := eventsample.Filled(e)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(sample)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(payload, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
