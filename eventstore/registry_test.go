package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Three generations of one event: v1 had a single name, v2 split it, v3 added a currency.

type priceSetV1 struct {
	Name  string `json:"name"` // "first last"
	Cents int    `json:"cents"`
}

func (priceSetV1) EventType() string { return "test.price_set.v1" }

type priceSetV3 struct {
	First    string `json:"first"`
	Last     string `json:"last"`
	Cents    int    `json:"cents"`
	Currency string `json:"currency"`
}

func (priceSetV3) EventType() string { return "test.price_set.v3" }

func upcastV1toV2(old json.RawMessage) (json.RawMessage, error) {
	var v1 struct {
		Name  string `json:"name"`
		Cents int    `json:"cents"`
	}
	if err := json.Unmarshal(old, &v1); err != nil {
		return nil, err
	}
	first, last, _ := strings.Cut(v1.Name, " ")
	return json.Marshal(map[string]any{"first": first, "last": last, "cents": v1.Cents})
}

func upcastV2toV3(old json.RawMessage) (json.RawMessage, error) {
	var v2 map[string]any
	if err := json.Unmarshal(old, &v2); err != nil {
		return nil, err
	}
	v2["currency"] = "EUR"
	return json.Marshal(v2)
}

func currentRegistry() *eventstore.Registry {
	r := eventstore.NewRegistry(priceSetV3{}, itemAdded{})
	r.RegisterUpcaster("test.price_set.v1", "test.price_set.v2", upcastV1toV2)
	r.RegisterUpcaster("test.price_set.v2", "test.price_set.v3", upcastV2toV3)
	return r
}

func TestRegistryDecode(t *testing.T) {
	r := currentRegistry()
	got, err := r.Decode(eventstore.Envelope{Position: 7, EventType: "test.item_added.v1", Payload: json.RawMessage(`{"item":"apple","qty":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	if want := (itemAdded{Item: "apple", Qty: 3}); got != domain.Event(want) {
		t.Errorf("Decode = %#v, want the value %#v", got, want)
	}

	_, err = r.Decode(eventstore.Envelope{Position: 8, EventType: "test.nobody.v1", Payload: json.RawMessage(`{}`)})
	if !errors.Is(err, eventstore.ErrUnknownEventType) {
		t.Errorf("unknown type: err = %v, want ErrUnknownEventType", err)
	}
	if _, err := r.Decode(eventstore.Envelope{EventType: "test.item_added.v1", Payload: json.RawMessage(`{"qty":"three"}`)}); err == nil {
		t.Error("a payload that does not fit the type decoded")
	}

	// A field the type does not have is refused: a renamed field must not read back as zero.
	if _, err := r.Decode(eventstore.Envelope{EventType: "test.item_added.v1", Payload: json.RawMessage(`{"item":"apple","quantity":3}`)}); err == nil || !strings.Contains(err.Error(), "quantity") {
		t.Errorf("a payload with an unknown field: err = %v, want it refused naming the field", err)
	}

	if !r.Knows("test.price_set.v3") || r.Knows("test.price_set.v1") || r.Knows("test.price_set.v2") {
		t.Error("Knows: only registered Go types may be written, not upcast names")
	}
}

func TestRegistryUpcasters(t *testing.T) {
	want := priceSetV3{First: "Ada", Last: "Lovelace", Cents: 1815, Currency: "EUR"}
	r := currentRegistry()
	for _, env := range []eventstore.Envelope{
		{EventType: "test.price_set.v1", Payload: json.RawMessage(`{"name":"Ada Lovelace","cents":1815}`)},
		{EventType: "test.price_set.v2", Payload: json.RawMessage(`{"first":"Ada","last":"Lovelace","cents":1815}`)},
		{EventType: "test.price_set.v3", Payload: json.RawMessage(`{"first":"Ada","last":"Lovelace","cents":1815,"currency":"EUR"}`)},
	} {
		got, err := r.Decode(env)
		if err != nil || got != domain.Event(want) {
			t.Errorf("Decode(%s) = %#v, %v; want %#v", env.EventType, got, err, want)
		}
	}

	t.Run("old payload stored in the log", func(t *testing.T) {
		// Yesterday's binary wrote v1; today's reads it back as v3.
		s, db := newStore(t, eventstore.Options{})
		old := eventstore.New(db, eventstore.NewRegistry(priceSetV1{}), eventstore.Options{})
		defer old.Close()
		if _, err := old.Append(context.Background(), eventstore.Append{Streams: []eventstore.Stream{{
			ID: "product-1", Type: "product", Events: []domain.Event{priceSetV1{Name: "Ada Lovelace", Cents: 1815}},
		}}}); err != nil {
			t.Fatal(err)
		}
		envs, err := s.ReadStream(context.Background(), "product-1", 0)
		if err != nil || len(envs) != 1 {
			t.Fatalf("ReadStream = %d events, %v", len(envs), err)
		}
		if envs[0].EventType != "test.price_set.v1" {
			t.Errorf("stored type %q: the log must keep what was written", envs[0].EventType)
		}
		got, err := currentRegistry().Decode(envs[0])
		if err != nil || !reflect.DeepEqual(got, domain.Event(want)) {
			t.Errorf("Decode = %#v, %v; want %#v", got, err, want)
		}
		// Without the upcasters the old event is unreadable, and says so.
		if _, err := eventstore.NewRegistry(priceSetV3{}).Decode(envs[0]); !errors.Is(err, eventstore.ErrUnknownEventType) {
			t.Errorf("no upcaster: err = %v, want ErrUnknownEventType", err)
		}
	})

	t.Run("upcaster error", func(t *testing.T) {
		boom := errors.New("boom")
		r := eventstore.NewRegistry(priceSetV3{})
		r.RegisterUpcaster("test.price_set.v2", "test.price_set.v3", func(json.RawMessage) (json.RawMessage, error) { return nil, boom })
		if _, err := r.Decode(eventstore.Envelope{EventType: "test.price_set.v2", Payload: json.RawMessage(`{}`)}); !errors.Is(err, boom) {
			t.Errorf("err = %v, want the upcaster's error", err)
		}
	})

	t.Run("cycle", func(t *testing.T) {
		r := eventstore.NewRegistry()
		id := func(p json.RawMessage) (json.RawMessage, error) { return p, nil }
		r.RegisterUpcaster("a.v1", "a.v2", id)
		r.RegisterUpcaster("a.v2", "a.v1", id)
		if _, err := r.Decode(eventstore.Envelope{EventType: "a.v1", Payload: json.RawMessage(`{}`)}); err == nil {
			t.Error("an upcaster cycle decoded")
		}
	})
}

func TestRegistryStoredAs(t *testing.T) {
	got := currentRegistry().StoredAs("test.item_added.v1", "test.price_set.v3")
	want := []string{"test.item_added.v1", "test.price_set.v3", "test.price_set.v1", "test.price_set.v2"}
	if !slices.Equal(got, want) {
		t.Errorf("StoredAs = %v, want %v", got, want)
	}
}

func TestRegistryDoubleRegistrationPanics(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if r := recover(); r == nil {
				t.Errorf("%s did not panic", name)
			} else if !strings.Contains(fmt.Sprint(r), "twice") {
				t.Errorf("%s panicked with %v", name, r)
			}
		}()
		f()
	}
	mustPanic("NewRegistry with a type twice", func() { eventstore.NewRegistry(itemAdded{}, itemAdded{}) })
	mustPanic("Register of a known type", func() { newRegistry().Register(itemAdded{}) })
	mustPanic("Register through a pointer", func() { newRegistry().Register(&itemAdded{}) })
	mustPanic("RegisterUpcaster twice", func() { currentRegistry().RegisterUpcaster("test.price_set.v1", "x", upcastV1toV2) })
}
