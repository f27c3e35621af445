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
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// Migrations 29 and 30 on a log recorded in clear: the claims become keyed hashes, the personal
// data is sealed, the chains are re-chained and verify (the heads signed before are recorded and
// replaced), readers read what was there, and an erasure then reaches the old events too.
func TestMigrationsSealWhatWasRecordedInClear(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	db := testdb.New(t)
	old := eventstore.New(db, eventstore.NewDomainRegistry(), eventstore.Options{Logger: log}) // before the sealing
	user, tenant := domain.UserID(uuid.NewString()), domain.TenantID(uuid.NewString())
	meta := eventstore.Metadata{IP: "203.0.113.77", UserAgent: "OldAgent/1.0"}
	must := func(_ eventstore.Appended, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(old.Append(ctx, eventstore.Append{Metadata: meta,
		Streams: []eventstore.Stream{{ID: user.Stream(), Type: "user", Events: []domain.Event{
			domain.UserRegistered{UserID: user, Email: "erin@example.com", Name: "Erin Old", PasswordHash: "h"}}}},
		Claims: []eventstore.Claim{{Key: domain.EmailClaim("erin@example.com"), StreamID: user.Stream()}}}))
	meta.ActorID, meta.TenantID = string(user), string(tenant)
	must(old.Append(ctx, eventstore.Append{Metadata: meta, Streams: []eventstore.Stream{{ID: tenant.Stream(), Type: "tenant", Events: []domain.Event{
		domain.TenantCreated{TenantID: tenant, Name: "Old Co", Slug: "old-co", Plan: "free"},
		domain.TenantInvitationCreated{InvitationID: domain.InvitationID(uuid.NewString()), Email: "frank@example.com", At: time.Now().UTC()}}}}}))
	old.Close()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer := eventstore.NewHeadSigner(db, priv, time.Now, log)
	if _, err := signer.Sign(ctx); err != nil {
		t.Fatal(err)
	}

	codec, _ := newCodecOn(t, db)
	open := func(context.Context) (*personaldata.Codec, error) { return codec, nil }
	if err := personaldata.MigrateClaims(ctx, db, nil, log); err == nil {
		t.Error("migration 29 without the vault's key on clear claims: no error")
	}
	if err := personaldata.MigrateClaims(ctx, db, open, log); err != nil {
		t.Fatal(err)
	}
	if err := personaldata.SealRecorded(ctx, db, open, log); err != nil {
		t.Fatal(err)
	}
	if err := personaldata.SealRecorded(ctx, db, open, log); err != nil { // again: nothing left, nothing recorded
		t.Fatal(err)
	}
	clear := []string{"erin@example.com", "Erin Old", "frank@example.com", "203.0.113.77", "OldAgent"}
	var raw string
	db.QueryRowContext(ctx, `SELECT CONCAT((SELECT GROUP_CONCAT(CONCAT(payload, metadata)) FROM events), (SELECT GROUP_CONCAT(claim_key) FROM claims))`).Scan(&raw)
	for _, v := range clear {
		if strings.Contains(raw, v) {
			t.Errorf("after the migrations the log or the claims hold %q", v)
		}
	}
	var records int
	db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE event_type = 'platform.personal_data_sealed.v1'`).Scan(&records)
	if records != 1 {
		t.Errorf("%d records of the sealing, want 1", records)
	}
	var superseded int
	db.QueryRowContext(ctx, `SELECT COUNT(*) FROM chain_signatures`).Scan(&superseded)
	if superseded != 0 {
		t.Errorf("%d signed heads of the re-chained chains are left", superseded)
	}
	if _, err := signer.Sign(ctx); err != nil {
		t.Fatal(err)
	}
	if sum, err := eventstore.VerifyLive(ctx, db, []ed25519.PublicKey{pub}, nil); err != nil || sum.SignaturesMatched == 0 {
		t.Fatalf("verify after the migration: %+v, %v", sum, err)
	}

	store := eventstore.New(db, eventstore.NewDomainRegistry(), eventstore.Options{Logger: log, PersonalData: codec})
	defer store.Close()
	readAll := func() string {
		envs, err := store.ReadAll(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, env := range envs {
			b.WriteString(string(env.Payload) + env.Metadata.IP + env.Metadata.UserAgent)
		}
		return b.String()
	}
	if got := readAll(); !strings.Contains(got, "erin@example.com") || !strings.Contains(got, "203.0.113.77") || !strings.Contains(got, "frank@example.com") {
		t.Errorf("read after the migration: %s", got)
	}
	if holder, err := store.ClaimHolder(ctx, domain.EmailClaim("erin@example.com")); err != nil || holder != user.Stream() {
		t.Errorf("the migrated claim: %q, %v", holder, err)
	}
	if err := codec.Erase(ctx, user.Stream()); err != nil {
		t.Fatal(err)
	}
	if got := readAll(); strings.Contains(got, "erin@example.com") || strings.Contains(got, "203.0.113.77") || !strings.Contains(got, "erased-user-"+string(user)) {
		t.Errorf("read after the erasure: %s", got)
	}
	if _, err := eventstore.VerifyLive(ctx, db, []ed25519.PublicKey{pub}, nil); err != nil {
		t.Errorf("verify after the erasure: %v", err)
	}
}
