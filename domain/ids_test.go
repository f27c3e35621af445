package domain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

func TestParseIDs(t *testing.T) {
	parsers := []struct {
		field string
		parse func(string) (string, error)
	}{
		{"user_id", func(s string) (string, error) { id, err := domain.ParseUserID(s); return string(id), err }},
		{"tenant_id", func(s string) (string, error) { id, err := domain.ParseTenantID(s); return string(id), err }},
		{"session_id", func(s string) (string, error) { id, err := domain.ParseSessionID(s); return string(id), err }},
		{"invitation_id", func(s string) (string, error) { id, err := domain.ParseInvitationID(s); return string(id), err }},
		{"api_key_id", func(s string) (string, error) { id, err := domain.ParseAPIKeyID(s); return string(id), err }},
	}
	tests := []struct {
		name string
		in   string
		want string // "" = rejected
	}{
		{"canonical v1", uuidA, uuidA},
		{"canonical v4", uuidB, uuidB},
		// uuid.Parse accepts upper-case hex; the id is returned in canonical lower case.
		{"upper case made canonical", strings.ToUpper(uuidA), uuidA},
		{"mixed case made canonical", "6BA7b810-9dad-11D1-80b4-00c04fd430C8", uuidA},
		{"nil uuid", "00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"},

		{"empty", "", ""},
		{"not hex", "6ba7b810-9dad-11d1-80b4-00c04fd430cg", ""},
		{"dash misplaced", "6ba7b8109-dad-11d1-80b4-00c04fd430c8", ""},
		{"separator not a dash", "6ba7b810x9dad-11d1-80b4-00c04fd430c8", ""},
		// Forms uuid.Parse accepts but that are not canonical: rejected.
		{"braces", "{" + uuidA + "}", ""},
		{"urn prefix", "urn:uuid:" + uuidA, ""},
		{"no dashes", strings.ReplaceAll(uuidA, "-", ""), ""},
		{"surrounding space", " " + uuidA + " ", ""},
		{"trailing newline", uuidA + "\n", ""},
		{"too short", uuidA[:35], ""},
		{"too long", uuidA + "0", ""},
		{"path traversal", "../" + uuidA[3:], ""},
	}
	for _, p := range parsers {
		for _, tt := range tests {
			t.Run(p.field+"/"+tt.name, func(t *testing.T) {
				got, err := p.parse(tt.in)
				if tt.want == "" {
					wantValidation(t, err, p.field)
					if got != "" {
						t.Errorf("parse(%q) = %q with its error, want \"\"", tt.in, got)
					}
					return
				}
				if err != nil || got != tt.want {
					t.Errorf("parse(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
			})
		}
	}
}

func TestStreamIDs(t *testing.T) {
	tests := []struct{ got, want string }{
		{domain.UserID(uuidA).Stream(), "user-" + uuidA},
		{domain.TenantID(uuidA).Stream(), "tenant-" + uuidA},
		{domain.SessionID(uuidA).Stream(), "session-" + uuidA},
		{domain.MailID(uuidA).Stream(), "mail-" + uuidA},
		{domain.EmailClaim("ada@example.com"), "email:ada@example.com"},
		{domain.SlugClaim("acme"), "slug:acme"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestStreamUser(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		id := domain.UserID(uuidB)
		got, err := domain.StreamUser(id.Stream())
		if err != nil || got != id {
			t.Fatalf("StreamUser(%q) = %q, %v; want %q", id.Stream(), got, err, id)
		}
	})
	t.Run("upper case id made canonical", func(t *testing.T) {
		got, err := domain.StreamUser("user-" + strings.ToUpper(uuidB))
		if err != nil || got != domain.UserID(uuidB) {
			t.Fatalf("StreamUser(upper) = %q, %v; want %q", got, err, uuidB)
		}
	})
	for _, tt := range []struct {
		name, stream string
		validation   bool // the id part is present but not a UUID
	}{
		{"empty", "", false},
		{"prefix only", "user-", false},
		{"prefix without dash", "user", false},
		{"tenant stream", domain.TenantID(uuidA).Stream(), false},
		{"session stream", domain.SessionID(uuidA).Stream(), false},
		{"mail stream", domain.MailID(uuidA).Stream(), false},
		{"upper-case prefix", "User-" + uuidA, false},
		{"bare uuid", uuidA, false},
		{"id not a uuid", "user-42", true},
		{"id with suffix", "user-" + uuidA + "-x", true},
		{"double prefix", "user-user-" + uuidA, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domain.StreamUser(tt.stream)
			if err == nil {
				t.Fatalf("StreamUser(%q) = %q, nil; want an error", tt.stream, got)
			}
			if got != "" {
				t.Errorf("StreamUser(%q) = %q with its error, want \"\"", tt.stream, got)
			}
			var verr *domain.ValidationError
			if errors.As(err, &verr) != tt.validation {
				t.Errorf("StreamUser(%q) error = %v; *ValidationError = %v, want %v", tt.stream, err, !tt.validation, tt.validation)
			}
		})
	}
}
