package domain

import "strings"

// Event is a fact recorded by an aggregate. EventType is the stable name under which the event is
// stored, such as "database.deleted.v1": never a Go type name, never reused for another shape.
type Event interface {
	EventType() string
}

// SecretHashField reports whether an event's payload field holds a password or token hash (a
// bcrypt hash, the digest of a link's or a key's secret): a field whose name has "hash" in it.
// The log keeps them, for logins and links need them; nobody who reads events (an operator's
// event listing, an auditor's export, the audit log) needs to see them.
func SecretHashField(name string) bool { return strings.Contains(name, "hash") }
