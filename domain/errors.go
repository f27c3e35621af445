package domain

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error kinds. Every error the core returns wraps one of these (or is a *ValidationError), and the
// API maps each kind to one status and code in exactly one place.
var (
	// ErrNotFound: the thing does not exist, or belongs to another tenant (never reveal which).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request contradicts the current state (a name taken, a state transition
	// that does not apply).
	ErrConflict = errors.New("conflict")
	// ErrVersionConflict: an optimistic-concurrency check failed; reload and retry.
	ErrVersionConflict = errors.New("version conflict")
	// ErrUnavailable: a dependency (a database server) does not answer; the request lost nothing.
	ErrUnavailable = errors.New("unavailable")
)

// ValidationError lists what is wrong with the fields of a request, field name → message.
type ValidationError struct {
	Fields map[string]string
}

// NewValidationError returns a ValidationError for one field.
func NewValidationError(field, message string) *ValidationError {
	return &ValidationError{Fields: map[string]string{field: message}}
}

func (e *ValidationError) Error() string {
	names := make([]string, 0, len(e.Fields))
	for name := range e.Fields {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s: %s", name, e.Fields[name]))
	}
	return "validation failed: " + strings.Join(parts, "; ")
}
