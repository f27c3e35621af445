package domain

import "encoding/json"

// Upcast converts the stored payload of an old event type (From) into the payload of its
// successor (To), so that events recorded by earlier builds keep their meaning.
type Upcast struct {
	From, To string
	Convert  func(old json.RawMessage) (json.RawMessage, error)
}

// Upcasters lists the conversions of every retired event type, for the event store's registry.
func Upcasters() []Upcast {
	return nil
}
