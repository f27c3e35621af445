package eventstore

import (
	"errors"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
)

// ErrUnknownEventType is returned when a stored event type has no registered Go type: an event
// that cannot be read is an error, never silently skipped.
var ErrUnknownEventType = errors.New("eventstore: unknown event type")

// VersionConflictError says a stream moved on since the caller read it.
type VersionConflictError struct {
	StreamID string
	Expected int64
	Actual   int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("eventstore: stream %s is at version %d, expected %d", e.StreamID, e.Actual, e.Expected)
}

func (e *VersionConflictError) Unwrap() error { return domain.ErrVersionConflict }

// ClaimTakenError says a unique key is already held by another stream.
type ClaimTakenError struct {
	Key string
}

func (e *ClaimTakenError) Error() string {
	return fmt.Sprintf("eventstore: %q is already claimed", e.Key)
}

func (e *ClaimTakenError) Unwrap() error { return domain.ErrConflict }
