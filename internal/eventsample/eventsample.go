// Package eventsample builds sample values of event types for the tests that pin their stored
// shape: the JSON round trip in domain and the golden files of the event store.
package eventsample

import (
	"fmt"
	"reflect"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// base is the first instant of a sample; every time field is a distinct second after it.
var base = time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)

// Filled returns a value of e's type with every field set to a distinct non-zero value,
// recursively, so that a field lost or renamed on the way through JSON shows. The values depend
// only on the type's shape: the same type gives the same sample in every build. It returns an
// error for a field kind it has no sample for (extend it then).
func Filled(e domain.Event) (domain.Event, error) {
	v := reflect.New(reflect.TypeOf(e)).Elem()
	n := 0
	if err := fill(v, &n); err != nil {
		return nil, fmt.Errorf("eventsample: %s: %w", e.EventType(), err)
	}
	return v.Interface().(domain.Event), nil
}

func fill(v reflect.Value, n *int) error {
	*n++
	switch {
	case v.Type() == reflect.TypeOf(time.Time{}):
		v.Set(reflect.ValueOf(base.Add(time.Duration(*n) * time.Second)))
	case v.Kind() == reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if err := fill(v.Field(i), n); err != nil {
				return err
			}
		}
	case v.Kind() == reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	case v.CanInt():
		v.SetInt(int64(*n))
	case v.CanFloat():
		v.SetFloat(float64(*n) + 0.25)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String: // []string or of a named string type
		elems := reflect.MakeSlice(v.Type(), 2, 2)
		elems.Index(0).SetString(fmt.Sprintf("a%d", *n))
		elems.Index(1).SetString(fmt.Sprintf("b%d", *n))
		v.Set(elems)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		elems := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			if err := fill(elems.Index(i), n); err != nil {
				return err
			}
		}
		v.Set(elems)
	case v.Kind() == reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := fill(p.Elem(), n); err != nil {
			return err
		}
		v.Set(p)
	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String && v.Type().Elem().Kind() == reflect.String:
		m := reflect.MakeMap(v.Type())
		m.SetMapIndex(reflect.ValueOf(fmt.Sprintf("k%d", *n)).Convert(v.Type().Key()), reflect.ValueOf(fmt.Sprintf("v%d", *n)).Convert(v.Type().Elem()))
		v.Set(m)
	default:
		return fmt.Errorf("no sample value for %v", v.Type())
	}
	return nil
}
