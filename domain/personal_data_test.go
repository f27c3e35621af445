package domain

import (
	"slices"
	"testing"
	"time"
)

func TestPersonalPathsAreTheSealedOnes(t *testing.T) {
	user, invitation := UserID("u"), InvitationID("i")
	full := []Event{
		UserRegistered{UserID: user, Email: "a@example.com", Name: "A"},
		UserLoginFailed{IP: "192.0.2.1", UserAgent: "ua"},
		AddressLoginFailed{IP: "192.0.2.1", UserAgent: "ua"},
		SessionStarted{UserID: user, IP: "192.0.2.1", UserAgent: "ua"},
		TenantInvitationCreated{InvitationID: invitation, Email: "a@example.com"},
		MailRequested{To: "a@example.com", UserID: user, Data: map[string]string{"name": "A"}},
	}
	for _, e := range full {
		var sealed []string
		_, _, err := SealPersonalData(e, "stream", func(subject, path, value string) (string, error) {
			sealed = append(sealed, path)
			return "sealed", nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := PersonalPaths(e.EventType()); !slices.Equal(sealed, want) {
			t.Errorf("%s: SealPersonalData seals %v, PersonalPaths says %v", e.EventType(), sealed, want)
		}
	}
	if len(full) != len(personalPaths) {
		t.Errorf("%d event types have personal paths, %d are tested", len(personalPaths), len(full))
	}
	// The caller's mail data is not changed.
	data := map[string]string{"name": "A"}
	if _, _, err := SealPersonalData(MailRequested{UserID: user, Data: data}, "m", func(_, _, _ string) (string, error) { return "x", nil }); err != nil || data["name"] != "A" {
		t.Errorf("SealPersonalData changed the caller's data: %v %v", data, err)
	}
}

func TestErasePersonalData(t *testing.T) {
	u := RegisterUser("u", "a@example.com", "A", "h", true)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := u.ErasePersonalData("admin", []InvitationID{"i"}, now); err != nil || !u.Erased() {
		t.Fatalf("first erasure: %v, erased %v", err, u.Erased())
	}
	if err := u.ErasePersonalData("admin", nil, now); err == nil {
		t.Error("second erasure: no error, want ErrConflict")
	}
	if got := ErasedValue("user-u", "data.name"); got != "erased-user-u" {
		t.Errorf("ErasedValue of a name: %q", got)
	}
	if got := ErasedValue("user-u", "ip"); got != "" {
		t.Errorf("ErasedValue of an IP: %q", got)
	}
}
