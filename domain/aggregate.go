package domain

// applier is an aggregate's state transition for one event; it cannot fail, since stored
// history is not re-validated.
type applier interface {
	apply(Event)
}

// aggregate holds what every aggregate tracks: its version in the log and the events it has
// recorded since it was loaded.
type aggregate struct {
	version int64
	pending []Event
}

// Version is the stream version the aggregate was loaded at: the expected version of the append
// of its pending events.
func (a *aggregate) Version() int64 { return a.version }

// PendingEvents are the events recorded by decisions since loading, oldest first.
func (a *aggregate) PendingEvents() []Event { return a.pending }

func (a *aggregate) record(self applier, e Event) {
	self.apply(e)
	a.pending = append(a.pending, e)
}

func (a *aggregate) replay(self applier, history []Event, version int64) {
	for _, e := range history {
		self.apply(e)
	}
	a.version = version
}
