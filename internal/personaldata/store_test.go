package personaldata_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
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

// The log holds sealed values only, its readers get them clear, and after an erasure they get
// the placeholders while every chain and signed head verifies as before.
func TestStoreSealsOpensAndVerifiesAfterErasure(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	codec, _ := newCodecOn(t, db)
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

// A query's outcomes are stored with only the tenant, the correlation and the stream of their
// intent (Metadata.Continued), and every read gives them the intent's metadata, opened: the
// address and user agent in clear, their placeholders once the actor is erased; in the process
// that appended the intent (which keeps its metadata) and in another (which reads it).
func TestContinuedMetadataReadsAsTheIntents(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	codec, _ := newCodecOn(t, db)
	open := func() *eventstore.Store {
		s := eventstore.New(db, eventstore.NewDomainRegistry(), eventstore.Options{Logger: slog.New(slog.DiscardHandler), PersonalData: codec})
		t.Cleanup(func() { s.Close() })
		return s
	}
	store, other := open(), open()

	user, tenant := domain.UserID(uuid.NewString()), domain.TenantID(uuid.NewString())
	meta := eventstore.Metadata{ActorID: string(user), TenantID: string(tenant), CorrelationID: "r1", RequestID: "r1",
		IP: "198.51.100.23", UserAgent: "Agent/7.1 (personal)", SessionID: "s1"}
	first, second := uuid.NewString(), uuid.NewString()
	intent := domain.QueryStarted{QueryID: first, TenantID: tenant, UserID: user, At: time.Now().UTC(),
		Statements: []domain.StartedStatement{{QueryID: first, SQL: "SELECT 1"}, {QueryID: second, SQL: "SELECT 2"}}}
	if _, err := store.Append(ctx, eventstore.Append{Metadata: meta, Continuable: true, Streams: []eventstore.Stream{
		{ID: domain.QueryStream(first), Type: "query", Events: []domain.Event{intent}}}}); err != nil {
		t.Fatal(err)
	}
	continued := meta.Continued(domain.QueryStream(first))
	if _, err := store.Append(ctx, eventstore.Append{Metadata: continued, Streams: []eventstore.Stream{
		{ID: domain.QueryStream(first), Type: "query", ExpectedVersion: 1, Events: []domain.Event{domain.QueryExecuted{QueryID: first, Status: "ok"}}},
		{ID: domain.QueryStream(second), Type: "query", Events: []domain.Event{domain.QueryExecuted{QueryID: second, Status: "ok"}}}}}); err != nil {
		t.Fatal(err)
	}
	var stored string
	if err := db.QueryRowContext(ctx, `SELECT metadata FROM events WHERE position = 3`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if want := `{"tenant_id":"` + string(tenant) + `","correlation_id":"r1","continues":"query-` + first + `"}`; stored != want {
		t.Errorf("stored metadata of an outcome %s, want %s", stored, want)
	}

	type read func(s *eventstore.Store) ([]eventstore.Envelope, error)
	reads := map[string]read{
		"its stream, with the intent": func(s *eventstore.Store) ([]eventstore.Envelope, error) {
			return s.ReadStream(ctx, domain.QueryStream(first), 0)
		},
		"its stream, after the intent": func(s *eventstore.Store) ([]eventstore.Envelope, error) {
			return s.ReadStream(ctx, domain.QueryStream(first), 1)
		},
		"another stream": func(s *eventstore.Store) ([]eventstore.Envelope, error) {
			return s.ReadStream(ctx, domain.QueryStream(second), 0)
		},
		"the log":   func(s *eventstore.Store) ([]eventstore.Envelope, error) { return s.ReadAll(ctx, 0, 10) },
		"positions": func(s *eventstore.Store) ([]eventstore.Envelope, error) { return s.ReadPositions(ctx, []int64{2, 3}) },
		"the tail, no intent": func(s *eventstore.Store) ([]eventstore.Envelope, error) {
			return s.ReadTail(ctx, 0, 10, nil, []string{intent.EventType()})
		},
	}
	check := func(want eventstore.Metadata) {
		t.Helper()
		for name, read := range reads {
			for process, s := range map[string]*eventstore.Store{"the appender": store, "another process": other} {
				envs, err := read(s)
				if err != nil {
					t.Fatalf("%s, %s: %v", process, name, err)
				}
				for _, env := range envs {
					if env.Metadata != want {
						t.Errorf("%s, %s: position %d read with %+v, want %+v", process, name, env.Position, env.Metadata, want)
					}
				}
			}
		}
	}
	check(meta)

	if err := codec.Erase(ctx, user.Stream()); err != nil {
		t.Fatal(err)
	}
	erased := meta
	erased.IP, erased.UserAgent = domain.ErasedValue(user.Stream(), "ip"), domain.ErasedValue(user.Stream(), "user_agent")
	check(erased)

	if _, err := store.Append(ctx, eventstore.Append{Metadata: meta.Continued("query-none"), Streams: []eventstore.Stream{
		{ID: "query-orphan", Type: "query", Events: []domain.Event{domain.QueryExecuted{QueryID: "orphan"}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReadStream(ctx, "query-orphan", 0); err == nil {
		t.Error("an event continuing a stream without events was read without error")
	}
}

// An email's claim is held under a keyed hash: the claims table holds no address, and the store
// finds, refuses and releases it by the address as before.
func TestEmailClaimsAreKeyedHashes(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	codec, _ := newCodecOn(t, db)
	store := eventstore.New(db, eventstore.NewDomainRegistry(), eventstore.Options{Logger: slog.New(slog.DiscardHandler), PersonalData: codec})
	t.Cleanup(func() { store.Close() })
	register := func(id domain.UserID) error {
		_, err := store.Append(ctx, eventstore.Append{
			Streams: []eventstore.Stream{{ID: id.Stream(), Type: "user", Events: []domain.Event{domain.UserRegistered{UserID: id, Email: "dave@example.com"}}}},
			Claims:  []eventstore.Claim{{Key: domain.EmailClaim("dave@example.com"), StreamID: id.Stream()}}})
		return err
	}
	first, second := domain.UserID(uuid.NewString()), domain.UserID(uuid.NewString())
	if err := register(first); err != nil {
		t.Fatal(err)
	}
	var keys string
	db.QueryRowContext(ctx, `SELECT GROUP_CONCAT(claim_key) FROM claims`).Scan(&keys)
	if strings.Contains(keys, "dave") || !strings.HasPrefix(keys, personaldata.ClaimKeyPrefix) {
		t.Errorf("claims table: %s, want the address's keyed hash only", keys)
	}
	if holder, err := store.ClaimHolder(ctx, domain.EmailClaim("dave@example.com")); err != nil || holder != first.Stream() {
		t.Errorf("ClaimHolder = %q, %v; want %s", holder, err, first.Stream())
	}
	var taken *eventstore.ClaimTakenError
	if err := register(second); !errors.As(err, &taken) {
		t.Errorf("a second account with the address: %v, want ClaimTakenError", err)
	}
	if _, err := store.Append(ctx, eventstore.Append{
		Streams:  []eventstore.Stream{{ID: first.Stream(), Type: "user", ExpectedVersion: 1, Events: []domain.Event{domain.UserPersonalDataErased{By: "admin"}}}},
		Releases: []eventstore.Claim{{Key: domain.EmailClaim("dave@example.com"), StreamID: first.Stream()}}}); err != nil {
		t.Fatal(err)
	}
	if holder, _ := store.ClaimHolder(ctx, domain.EmailClaim("dave@example.com")); holder != "" {
		t.Errorf("after the release the address is held by %q", holder)
	}
}
