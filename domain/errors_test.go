package domain_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

func TestValidationErrorError(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]string
		want   string
	}{
		{"one field", map[string]string{"name": "required"}, "validation failed: name: required"},
		{"two fields sorted", map[string]string{"b": "y", "a": "x"}, "validation failed: a: x; b: y"},
		{"sorted bytewise", map[string]string{"tenant_id": "not a uuid", "Name": "too long", "email": "invalid"},
			"validation failed: Name: too long; email: invalid; tenant_id: not a uuid"},
		{"message with separators", map[string]string{"name": "must match ^[a-z]{1,3}$; no spaces"},
			"validation failed: name: must match ^[a-z]{1,3}$; no spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := &domain.ValidationError{Fields: tt.fields}
			// Map iteration order is random: repeat so an unsorted implementation fails reliably.
			for range 20 {
				if got := err.Error(); got != tt.want {
					t.Fatalf("Error() = %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestNewValidationError(t *testing.T) {
	err := domain.NewValidationError("name", "required")
	if len(err.Fields) != 1 || err.Fields["name"] != "required" {
		t.Errorf("Fields = %v, want map[name:required]", err.Fields)
	}
	if got, want := err.Error(), "validation failed: name: required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// The map is the error's own: callers may add further fields.
	err.Fields["email"] = "invalid"
	if got, want := err.Error(), "validation failed: email: invalid; name: required"; got != want {
		t.Errorf("Error() after adding a field = %q, want %q", got, want)
	}
	if other := domain.NewValidationError("name", "required"); len(other.Fields) != 1 {
		t.Errorf("a second NewValidationError shares fields with the first: %v", other.Fields)
	}
}

func TestErrorKinds(t *testing.T) {
	kinds := map[string]error{
		"ErrNotFound":        domain.ErrNotFound,
		"ErrConflict":        domain.ErrConflict,
		"ErrVersionConflict": domain.ErrVersionConflict,
		"ErrUnavailable":     domain.ErrUnavailable,
	}
	validation := domain.NewValidationError("name", "required")
	tests := []struct {
		name       string
		err        error
		is         []string          // the kinds errors.Is must match; every other kind must not match
		wantFields map[string]string // non-nil: errors.As must find a *ValidationError with these fields
	}{
		{"bare not found", domain.ErrNotFound, []string{"ErrNotFound"}, nil},
		{"wrapped not found", fmt.Errorf("database %s: %w", "d1", domain.ErrNotFound), []string{"ErrNotFound"}, nil},
		{"wrapped twice", fmt.Errorf("delete: %w", fmt.Errorf("database d1: %w", domain.ErrConflict)), []string{"ErrConflict"}, nil},
		{"version conflict is its own kind", fmt.Errorf("append: %w", domain.ErrVersionConflict), []string{"ErrVersionConflict"}, nil},
		{"wrapped unavailable", fmt.Errorf("rds-b at 10.0.0.1:3306: %w", domain.ErrUnavailable), []string{"ErrUnavailable"}, nil},
		{"joined kinds match both", errors.Join(domain.ErrConflict, domain.ErrUnavailable), []string{"ErrConflict", "ErrUnavailable"}, nil},
		{"multiple %w match both", fmt.Errorf("%w and %w", domain.ErrNotFound, domain.ErrVersionConflict), []string{"ErrNotFound", "ErrVersionConflict"}, nil},
		{"%v drops the kind", fmt.Errorf("database d1: %v", domain.ErrNotFound), nil, nil},
		{"same text is not the kind", errors.New("not found"), nil, nil},
		{"bare validation error", validation, nil, map[string]string{"name": "required"}},
		{"wrapped validation error", fmt.Errorf("create database: %w", validation), nil, map[string]string{"name": "required"}},
		{"validation joined with a kind", errors.Join(fmt.Errorf("create: %w", validation), domain.ErrConflict), []string{"ErrConflict"}, map[string]string{"name": "required"}},
		{"nil", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := map[string]bool{}
			for _, k := range tt.is {
				want[k] = true
			}
			for name, kind := range kinds {
				if got := errors.Is(tt.err, kind); got != want[name] {
					t.Errorf("errors.Is(%v, %s) = %v, want %v", tt.err, name, got, want[name])
				}
			}
			var verr *domain.ValidationError
			found := errors.As(tt.err, &verr)
			if found != (tt.wantFields != nil) {
				t.Fatalf("errors.As(%v, *ValidationError) = %v, want %v", tt.err, found, tt.wantFields != nil)
			}
			if found && fmt.Sprint(verr.Fields) != fmt.Sprint(tt.wantFields) {
				t.Errorf("ValidationError.Fields = %v, want %v", verr.Fields, tt.wantFields)
			}
		})
	}
}

func TestErrorKindsAreDistinct(t *testing.T) {
	kinds := []error{domain.ErrNotFound, domain.ErrConflict, domain.ErrVersionConflict, domain.ErrUnavailable}
	seen := map[string]bool{}
	for i, a := range kinds {
		if seen[a.Error()] {
			t.Errorf("two kinds share the message %q", a.Error())
		}
		seen[a.Error()] = true
		for j, b := range kinds {
			if i != j && errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = true, want kinds independent of each other", a, b)
			}
		}
	}
}

func TestConflictSubkinds(t *testing.T) {
	subkinds := map[string]error{
		"ErrEmailTaken": domain.ErrEmailTaken,
		"ErrNameTaken":  domain.ErrNameTaken,
		"ErrLastAdmin":  domain.ErrLastAdmin,
	}
	for name, sub := range subkinds {
		t.Run(name, func(t *testing.T) {
			err := fmt.Errorf("create: %w", sub)
			if !errors.Is(err, sub) || !errors.Is(err, domain.ErrConflict) {
				t.Errorf("wrapped %s: errors.Is(own kind) = %v, errors.Is(ErrConflict) = %v, want both true",
					name, errors.Is(err, sub), errors.Is(err, domain.ErrConflict))
			}
			if errors.Is(err, domain.ErrVersionConflict) {
				t.Errorf("wrapped %s matches ErrVersionConflict", name)
			}
			for other, o := range subkinds {
				if other != name && errors.Is(err, o) {
					t.Errorf("wrapped %s matches %s", name, other)
				}
			}
		})
	}
}
