package domain_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

var (
	eventTypePattern = regexp.MustCompile(`^(user|session|tenant|mail|database|quota|query)\.[a-z]+(_[a-z]+)*\.v1$`)
	jsonNamePattern  = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
)

func TestEventTypes(t *testing.T) {
	seenName := map[string]reflect.Type{}
	seenType := map[reflect.Type]bool{}
	for _, e := range domain.Events() {
		typ := reflect.TypeOf(e)
		name := e.EventType()
		if typ.Kind() != reflect.Struct {
			t.Errorf("%v: registered as %v, want a struct value", typ, typ.Kind())
		}
		if !strings.HasSuffix(name, ".v1") || !eventTypePattern.MatchString(name) {
			t.Errorf("%v.EventType() = %q, want <aggregate>.<snake_case>.v1", typ, name)
		}
		if !strings.HasPrefix(strings.ToLower(typ.Name()), strings.SplitN(name, ".", 2)[0]) {
			t.Errorf("%v.EventType() = %q is not in its aggregate's namespace", typ, name)
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

// fill sets every field of v to a distinct non-zero value, recursively.
func fill(t *testing.T, v reflect.Value, n *int) {
	*n++
	switch {
	case v.Type() == reflect.TypeOf(time.Time{}):
		v.Set(reflect.ValueOf(t0.Add(time.Duration(*n) * time.Second)))
	case v.Kind() == reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(t, v.Field(i), n)
		}
	case v.Kind() == reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	case v.CanInt():
		v.SetInt(int64(*n))
	case v.CanFloat():
		v.SetFloat(float64(*n) + 0.25)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		v.Set(reflect.ValueOf([]string{fmt.Sprintf("a%d", *n), fmt.Sprintf("b%d", *n)}).Convert(v.Type()))
	case v.Kind() == reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), n)
		v.Set(p)
	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String && v.Type().Elem().Kind() == reflect.String:
		m := reflect.MakeMap(v.Type())
		m.SetMapIndex(reflect.ValueOf(fmt.Sprintf("k%d", *n)).Convert(v.Type().Key()), reflect.ValueOf(fmt.Sprintf("v%d", *n)).Convert(v.Type().Elem()))
		v.Set(m)
	default:
		t.Fatalf("fill: no sample value for %v; extend the test", v.Type())
	}
}

func TestEventJSONRoundTrip(t *testing.T) {
	for _, e := range domain.Events() {
		typ := reflect.TypeOf(e)
		filled := reflect.New(typ)
		n := 0
		fill(t, filled.Elem(), &n)
		for name, original := range map[string]domain.Event{"zero": e, "filled": filled.Elem().Interface().(domain.Event)} {
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
