package eventstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	"github.com/clouddbmanager/clouddb/domain"
)

// Upcaster turns the payload of an old event type into the payload of its successor.
type Upcaster func(old json.RawMessage) (json.RawMessage, error)

type upcast struct {
	to string
	fn Upcaster
}

// Registry maps stored event type names to Go types, and old type names to their upcasters. It is
// filled once at start and only read afterwards.
type Registry struct {
	types     map[string]reflect.Type
	upcasters map[string]upcast
}

// NewRegistry registers the given events by their EventType.
func NewRegistry(events ...domain.Event) *Registry {
	r := &Registry{types: map[string]reflect.Type{}, upcasters: map[string]upcast{}}
	for _, e := range events {
		r.Register(e)
	}
	return r
}

// NewDomainRegistry returns the registry the server runs with: every domain event type, and the
// upcasters of the retired ones.
func NewDomainRegistry() *Registry {
	r := NewRegistry(domain.Events()...)
	for _, u := range domain.Upcasters() {
		r.RegisterUpcaster(u.From, u.To, u.Convert)
	}
	return r
}

// Register makes e's type readable and writable under e.EventType(). It panics on a second
// registration of the same name: two Go types for one stored name is a programming error.
func (r *Registry) Register(e domain.Event) {
	name := e.EventType()
	if _, dup := r.types[name]; dup {
		panic(fmt.Sprintf("eventstore: event type %q registered twice", name))
	}
	t := reflect.TypeOf(e)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	r.types[name] = t
}

// RegisterUpcaster makes events stored as from readable as to, through fn. Upcasters chain:
// v1 → v2 → v3.
func (r *Registry) RegisterUpcaster(from, to string, fn Upcaster) {
	if _, dup := r.upcasters[from]; dup {
		panic(fmt.Sprintf("eventstore: upcaster from %q registered twice", from))
	}
	r.upcasters[from] = upcast{to: to, fn: fn}
}

// Knows reports whether events of this type can be written.
func (r *Registry) Knows(eventType string) bool {
	_, ok := r.types[eventType]
	return ok
}

// Types lists the event types that can be written, sorted.
func (r *Registry) Types() []string {
	types := make([]string, 0, len(r.types))
	for t := range r.types {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// StoredAs returns the given event types and every retired type whose upcasters lead to one of
// them: the names under which events of those types are found in the log. A projector lists
// them in Handles, or it would never see the events recorded before the latest version.
func (r *Registry) StoredAs(types ...string) []string {
	names := slices.Clone(types)
	for from := range r.upcasters {
		to := from
		for steps := 0; steps <= len(r.upcasters); steps++ {
			u, ok := r.upcasters[to]
			if !ok {
				break
			}
			to = u.to
		}
		if slices.Contains(types, to) {
			names = append(names, from)
		}
	}
	slices.Sort(names[len(types):])
	return names
}

// Decode returns the domain event stored in env, upcast to its current type. Returns an error
// wrapping ErrUnknownEventType if no Go type is registered for it. A payload with a field its
// type does not have is refused rather than decoded without it: a renamed field would otherwise
// read back as its zero value and silently change what the history says.
func (r *Registry) Decode(env Envelope) (domain.Event, error) {
	name, payload := env.EventType, env.Payload
	for seen := 0; ; seen++ {
		u, ok := r.upcasters[name]
		if !ok {
			break
		}
		if seen > len(r.upcasters) {
			return nil, fmt.Errorf("eventstore: upcaster cycle at %q", name)
		}
		upcasted, err := u.fn(payload)
		if err != nil {
			return nil, fmt.Errorf("eventstore: upcast %s at position %d to %s: %w", name, env.Position, u.to, err)
		}
		name, payload = u.to, upcasted
	}
	t, ok := r.types[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q at position %d", ErrUnknownEventType, name, env.Position)
	}
	ptr := reflect.New(t)
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ptr.Interface()); err != nil {
		return nil, fmt.Errorf("eventstore: decode %s at position %d: %w", name, env.Position, err)
	}
	if e, ok := ptr.Elem().Interface().(domain.Event); ok {
		return e, nil
	}
	return ptr.Interface().(domain.Event), nil
}
