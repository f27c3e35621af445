package personaldata_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/personaldata"
	"github.com/clouddbmanager/clouddb/internal/secrets"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

func newCodec(t testing.TB) (*personaldata.Codec, *secrets.Vault) {
	t.Helper()
	return newCodecOn(t, testdb.New(t))
}

// newCodecOn returns a codec whose keys are in a vault on db, with a key of its own.
func newCodecOn(t testing.TB, db *sql.DB) (*personaldata.Codec, *secrets.Vault) {
	t.Helper()
	key := make([]byte, secrets.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	vault, err := secrets.NewVault(db, key)
	if err != nil {
		t.Fatal(err)
	}
	return personaldata.New(vault, nil), vault
}

func TestSealAndOpen(t *testing.T) {
	ctx := context.Background()
	codec, _ := newCodec(t)
	user := domain.UserID(uuid.NewString())
	invitation := domain.InvitationID(uuid.NewString())
	address := domain.AddressStream("nobody@example.com")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		stream  string
		event   domain.Event
		subject string
		clear   []string // the personal values, which the stored payload must not hold
	}{
		{"registration", user.Stream(), domain.UserRegistered{UserID: user, Email: "ann@example.com", Name: "Ann Example", PasswordHash: "$2a$"},
			user.Stream(), []string{"ann@example.com", "Ann Example"}},
		{"failed login", user.Stream(), domain.UserLoginFailed{At: at, Reason: "password", IP: "192.0.2.7", UserAgent: "curl/8.5"},
			user.Stream(), []string{"192.0.2.7", "curl/8.5"}},
		{"failed login of an address", address, domain.AddressLoginFailed{At: at, Reason: "password", IP: "192.0.2.8", UserAgent: "Mozilla/5.0"},
			address, []string{"192.0.2.8", "Mozilla/5.0"}},
		{"session", "session-1", domain.SessionStarted{SessionID: "s", UserID: user, IP: "2001:db8::1", UserAgent: "Firefox"},
			user.Stream(), []string{"2001:db8::1", "Firefox"}},
		{"invitation", "tenant-1", domain.TenantInvitationCreated{InvitationID: invitation, Email: "bob@example.com", At: at},
			domain.InvitationSubject(invitation), []string{"bob@example.com"}},
		{"mail to a user", "mail-1", domain.MailRequested{MailID: "m", To: "ann@example.com", Kind: "verification", UserID: user,
			Data: map[string]string{"name": "Ann <Example>"}}, user.Stream(), []string{"ann@example.com", "Ann <Example>"}},
		{"mail to an invitee", "mail-2", domain.MailRequested{MailID: "m", To: "bob@example.com", Kind: "invitation",
			Data: map[string]string{domain.MailInvitationData: string(invitation), "tenant": "Acme"}},
			domain.InvitationSubject(invitation), []string{"bob@example.com"}},
		{"no personal data", "tenant-1", domain.TenantMemberAdded{UserID: user, Role: domain.RoleViewer, At: at}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eventID := uuid.NewString()
			sealed, subject, err := codec.Seal(ctx, eventID, tt.stream, tt.event)
			if err != nil {
				t.Fatal(err)
			}
			if subject != tt.subject {
				t.Errorf("subject %q, want %q", subject, tt.subject)
			}
			stored, _ := json.Marshal(sealed)
			for _, v := range tt.clear {
				if strings.Contains(string(stored), v) {
					t.Errorf("stored payload %s holds %q", stored, v)
				}
			}
			if tt.subject != "" && !strings.Contains(string(stored), `"pd1:`+tt.subject+`:`) {
				t.Errorf("stored payload %s has no value sealed for %s", stored, tt.subject)
			}
			env := eventstore.Envelope{EventID: eventID, EventType: tt.event.EventType(), Payload: stored}
			if err := codec.Open(ctx, &env); err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(tt.event)
			if !jsonEqual(t, env.Payload, want) {
				t.Errorf("opened %s, want %s", env.Payload, want)
			}
			// Bound to its event: the same bytes under another event id do not open.
			moved := eventstore.Envelope{EventID: uuid.NewString(), EventType: tt.event.EventType(), Payload: stored}
			if err := codec.Open(ctx, &moved); tt.subject != "" && !errors.Is(err, personaldata.ErrMalformed) {
				t.Errorf("opened under another event id: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestErasure(t *testing.T) {
	ctx := context.Background()
	codec, vault := newCodec(t)
	user, other := domain.UserID(uuid.NewString()), domain.UserID(uuid.NewString())
	eventID := uuid.NewString()
	seal := func(id domain.UserID) []byte {
		e, _, err := codec.Seal(ctx, eventID, id.Stream(), domain.UserRegistered{UserID: id, Email: "x@example.com", Name: "X"})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(e)
		return b
	}
	mine, theirs := seal(user), seal(other)
	md, err := codec.SealMetadata(ctx, eventstore.Metadata{ActorID: string(user), IP: "192.0.2.1", UserAgent: "curl"}, user.Stream())
	if err != nil {
		t.Fatal(err)
	}
	before := eventstore.Envelope{EventID: eventID, EventType: "user.registered.v1", Payload: mine, Metadata: md}
	if err := codec.Open(ctx, &before); err != nil || before.Metadata.IP != "192.0.2.1" { // now in the caches
		t.Fatalf("before the erasure: %+v, %v", before.Metadata, err)
	}
	if err := codec.Erase(ctx, user.Stream()); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*personaldata.Codec{"erasing process": codec, "another process": personaldata.New(vault, nil)} {
		env := eventstore.Envelope{EventID: eventID, EventType: "user.registered.v1", Payload: mine, Metadata: md}
		if err := c.Open(ctx, &env); err != nil {
			t.Fatal(err)
		}
		var got domain.UserRegistered
		if err := json.Unmarshal(env.Payload, &got); err != nil {
			t.Fatal(err)
		}
		erased := "erased-user-" + string(user)
		if got.Email != erased || got.Name != erased || env.Metadata.IP != "" || env.Metadata.UserAgent != "" {
			t.Errorf("%s: after erasure %+v %+v, want %s and no IP or user agent", name, got, env.Metadata, erased)
		}
		env = eventstore.Envelope{EventID: eventID, EventType: "user.registered.v1", Payload: theirs}
		if err := c.Open(ctx, &env); err != nil || !strings.Contains(string(env.Payload), "x@example.com") {
			t.Errorf("%s: another person's data %s (%v), want it readable", name, env.Payload, err)
		}
	}
	// An erased subject gets no new key: what is appended for it is stored as its placeholder.
	again := seal(user)
	if want := `"email":"erased-user-` + string(user) + `"`; !strings.Contains(string(again), want) {
		t.Errorf("sealed after erasure: %s, want %s", again, want)
	}
}

func TestValuesThatOnlyLookSealed(t *testing.T) {
	ctx := context.Background()
	codec, _ := newCodec(t)
	// A client's user agent that looks sealed, in a request of nobody known, is not kept as such.
	md, err := codec.SealMetadata(ctx, eventstore.Metadata{IP: "192.0.2.1", UserAgent: "pd1:user-x:AAAA"}, "")
	if err != nil || md.UserAgent != "" || md.IP != "192.0.2.1" {
		t.Errorf("SealMetadata without a subject: %+v, %v", md, err)
	}
	// A field that is not personal is never opened, whatever it holds.
	payload := []byte(`{"tenant_id":"t","name":"pd1:user-x:AAAA","slug":"s","plan":"free","settings":{}}`)
	env := eventstore.Envelope{EventID: "e", EventType: "tenant.created.v1", Payload: payload}
	if err := codec.Open(ctx, &env); err != nil || string(env.Payload) != string(payload) {
		t.Errorf("Open of a tenant named like a sealed value: %s, %v", env.Payload, err)
	}
	// A personal field whose sealed value was tampered with is an error, not a silent placeholder.
	user := domain.UserID(uuid.NewString())
	e, _, err := codec.Seal(ctx, "e", user.Stream(), domain.UserRegistered{UserID: user, Email: "a@example.com", Name: "A"})
	if err != nil {
		t.Fatal(err)
	}
	reg := e.(domain.UserRegistered)
	reg.Email = reg.Email[:len(reg.Email)-4] + "AAAA"
	b, _ := json.Marshal(reg)
	env = eventstore.Envelope{EventID: "e", EventType: "user.registered.v1", Payload: b}
	if err := codec.Open(ctx, &env); !errors.Is(err, personaldata.ErrMalformed) {
		t.Errorf("Open of a tampered value: %v, want ErrMalformed", err)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
