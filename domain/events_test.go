package domain_test

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/eventsample"
)

var (
	eventTypePattern = regexp.MustCompile(`^(user|address|session|tenant|mail|database|quota|query|metrics|alert|notification|webhook|platform)\.[a-z]+(_[a-z]+)*\.v([1-9][0-9]*)$`)
	jsonNamePattern  = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
)

func TestEventTypes(t *testing.T) {
	seenName := map[string]reflect.Type{}
	seenType := map[reflect.Type]bool{}
	upcastTo := map[string]string{}
	for _, u := range domain.Upcasters() {
		upcastTo[u.From] = u.To
	}
	for _, e := range domain.Events() {
		typ := reflect.TypeOf(e)
		name := e.EventType()
		if typ.Kind() != reflect.Struct {
			t.Errorf("%v: registered as %v, want a struct value", typ, typ.Kind())
		}
		match := eventTypePattern.FindStringSubmatch(name)
		if match == nil {
			t.Errorf("%v.EventType() = %q, want <aggregate>.<snake_case>.v<n>", typ, name)
			continue
		}
		if !strings.HasPrefix(strings.ToLower(typ.Name()), strings.SplitN(name, ".", 2)[0]) {
			t.Errorf("%v.EventType() = %q is not in its aggregate's namespace", typ, name)
		}
		// A later version replaces its predecessor, whose stored events are upcast to it.
		if version, _ := strconv.Atoi(match[3]); version > 1 {
			previous := strings.TrimSuffix(name, match[3]) + strconv.Itoa(version-1)
			if upcastTo[previous] != name {
				t.Errorf("%s has no upcaster from %s", name, previous)
			}
		}
		if _, retired := upcastTo[name]; retired {
			t.Errorf("%s is registered and upcast to %s: old types are read, not written", name, upcastTo[name])
		}
		if other, ok := seenName[name]; ok {
			t.Errorf("%v and %v share the event type %q", typ, other, name)
		}
		seenName[name] = typ
		if seenType[typ] {
			t.Errorf("%v listed twice in Events()", typ)
		}
		seenType[typ] = true
	}
	for from, to := range upcastTo {
		for steps := 0; to != "" && seenName[to] == nil && steps <= len(upcastTo); steps++ {
			to = upcastTo[to]
		}
		if seenName[to] == nil {
			t.Errorf("the upcasters from %s lead to no registered type", from)
		}
	}
}

func TestEventJSONFieldNames(t *testing.T) {
	for _, e := range domain.Events() {
		typ := reflect.TypeOf(e)
		seen := map[string]bool{}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := f.Tag.Get("json")
			name := strings.Split(tag, ",")[0]
			if !f.IsExported() || tag == "" || name == "-" || !jsonNamePattern.MatchString(name) {
				t.Errorf("%v.%s: json tag %q, want an exported field with a snake_case name", typ, f.Name, tag)
			}
			if seen[name] {
				t.Errorf("%v: two fields named %q in JSON", typ, name)
			}
			seen[name] = true
		}
	}
}

func TestEventJSONRoundTrip(t *testing.T) {
	for _, e := range domain.Events() {
		filled, err := eventsample.Filled(e)
		if err != nil {
			t.Fatal(err)
		}
		for name, original := range map[string]domain.Event{"zero": e, "filled": filled} {
			t.Run(e.EventType()+"/"+name, func(t *testing.T) {
				data, err := json.Marshal(original)
				if err != nil {
					t.Fatalf("marshal: %v", err)
				}
				decoded := reflect.New(reflect.TypeOf(original))
				if err := json.Unmarshal(data, decoded.Interface()); err != nil {
					t.Fatalf("unmarshal %s: %v", data, err)
				}
				if got := decoded.Elem().Interface(); !reflect.DeepEqual(got, original) {
					t.Errorf("round trip through %s\n got %#v\nwant %#v", data, got, original)
				}
				if got := decoded.Elem().Interface().(domain.Event).EventType(); got != e.EventType() {
					t.Errorf("decoded EventType() = %q, want %q", got, e.EventType())
				}
			})
		}
	}
}
