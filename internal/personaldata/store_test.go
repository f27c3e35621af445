package personaldata_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
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

// The log holds sealed values only, its readers get them clear, and after an erasure they get
// the placeholders while every chain and signed head verifies as before.
func TestStoreSealsOpensAndVerifiesAfterErasure(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	key := make([]byte, secrets.KeySize)
	rand.Read(key)
	vault, err := secrets.NewVault(db, key)
	if err != nil {
		t.Fatal(err)
	}
	codec := personaldata.New(vault, nil)
	store := eventstore.New(db, eventstore.NewDomainRegistry(), eventstore.Options{Logger: slog.New(slog.DiscardHandler), PersonalData: codec})
	t.Cleanup(func() { store.Close() })

	user := domain.UserID(uuid.NewString())
	meta := eventstore.Metadata{RequestID: "r", IP: "198.51.100.23", UserAgent: "Agent/7.1 (personal)"}
	appendUser := func(version int64, events ...domain.Event) {
		t.Helper()
		if _, err := store.Append(ctx, eventstore.Append{Metadata: meta,
			Streams: []eventstore.Stream{{ID: user.Stream(), Type: "user", ExpectedVersion: version, Events: events}}}); err != nil {
			t.Fatal(err)
		}
	}
	appendUser(0, domain.UserRegistered{UserID: user, Email: "carol@example.com", Name: "Carol Clear", PasswordHash: "h"})
	appendUser(1, domain.UserLoginFailed{At: time.Now().UTC(), Reason: "password", IP: "198.51.100.23", UserAgent: "Agent/7.1 (personal)"})

	clear := []string{"carol@example.com", "Carol Clear", "198.51.100.23", "Agent/7.1"}
	var raw string
	if err := db.QueryRowContext(ctx, `SELECT GROUP_CONCAT(CONCAT(payload, metadata) SEPARATOR ' ') FROM events`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	for _, v := range clear {
		if strings.Contains(raw, v) {
			t.Errorf("the stored events hold %q in clear: %s", v, raw)
		}
	}
	read := func() string {
		t.Helper()
		envs, err := store.ReadStream(ctx, user.Stream(), 0)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, env := range envs {
			if _, err := store.Registry().Decode(env); err != nil {
				t.Fatal(err)
			}
			b.WriteString(string(env.Payload) + env.Metadata.IP + "|" + env.Metadata.UserAgent + " ")
		}
		return b.String()
	}
	before := read()
	for _, v := range clear {
		if !strings.Contains(before, v) {
			t.Errorf("read back without %q: %s", v, before)
		}
	}

	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer := eventstore.NewHeadSigner(db, priv, time.Now, slog.New(slog.DiscardHandler))
	if _, err := signer.Sign(ctx); err != nil {
		t.Fatal(err)
	}
	var hashes string
	db.QueryRowContext(ctx, `SELECT GROUP_CONCAT(HEX(hash) ORDER BY position) FROM events`).Scan(&hashes)

	if err := codec.Erase(ctx, user.Stream()); err != nil {
		t.Fatal(err)
	}
	after := read()
	for _, v := range clear {
		if strings.Contains(after, v) {
			t.Errorf("read back after erasure with %q: %s", v, after)
		}
	}
	if !strings.Contains(after, `"email":"erased-user-`+string(user)+`"`) {
		t.Errorf("after erasure: %s, want the email erased-user-%s", after, user)
	}
	var hashesAfter string
	db.QueryRowContext(ctx, `SELECT GROUP_CONCAT(HEX(hash) ORDER BY position) FROM events`).Scan(&hashesAfter)
	if hashes != hashesAfter {
		t.Error("the erasure changed the events' hashes")
	}
	sum, err := eventstore.VerifyLive(ctx, db, []ed25519.PublicKey{pub}, nil)
	if err != nil {
		t.Fatalf("verify after erasure: %v", err)
	}
	if sum.Records != 2 || sum.SignaturesMatched == 0 {
		t.Errorf("verified %+v, want 2 events", sum)
	}
}
