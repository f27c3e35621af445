package domain

// Event is a fact recorded by an aggregate. EventType is the stable name under which the event is
// stored, such as "database.deleted.v1": never a Go type name, never reused for another shape.
type Event interface {
	EventType() string
}
