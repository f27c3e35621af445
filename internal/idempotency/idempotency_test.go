package idempotency_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/idempotency"
	"github.com/clouddbmanager/clouddb/internal/secrets"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

func newStore(t *testing.T) (*idempotency.Store, *sql.DB) {
	t.Helper()
	db := testdb.New(t)
	key := make([]byte, secrets.KeySize)
	rand.Read(key)
	s, err := idempotency.New(db, key)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func hash(body string) [32]byte { return sha256.Sum256([]byte(body)) }

// t0 is the tests' clock: a fixed time, so ages are exact.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func begin(t *testing.T, s *idempotency.Store, principal, key, body string, now time.Time) (*idempotency.Response, error) {
	t.Helper()
	return s.Begin(context.Background(), principal, key, "POST", "/api/v1/databases", hash(body), now)
}

func rows(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM idempotency_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBeginCompleteReplay(t *testing.T) {
	ctx := context.Background()
	s, db := newStore(t)
	if r, err := begin(t, s, "u1", "k1", `{"name":"a"}`, t0); r != nil || err != nil {
		t.Fatalf("first Begin = %v, %v; want nil, nil", r, err)
	}
	want := idempotency.Response{Status: 201, ContentType: "application/json; charset=utf-8",
		Location: "/api/v1/databases/x", Body: []byte(`{"id":"x","password":"hunter2-secret"}`)}
	if err := s.Complete(ctx, "u1", "k1", want); err != nil {
		t.Fatal(err)
	}
	got, err := begin(t, s, "u1", "k1", `{"name":"a"}`, t0.Add(time.Hour))
	if err != nil || got == nil {
		t.Fatalf("replay Begin = %v, %v", got, err)
	}
	if got.Status != want.Status || got.ContentType != want.ContentType || got.Location != want.Location || !bytes.Equal(got.Body, want.Body) {
		t.Errorf("replay = %+v, want %+v", got, want)
	}
	// The body is sealed: the table never holds the password.
	var stored []byte
	if err := db.QueryRow(`SELECT body FROM idempotency_keys WHERE principal = 'u1'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte("hunter2")) {
		t.Error("the stored body holds the plaintext")
	}
	// A body sealed for one key does not open under another.
	if _, err := begin(t, s, "u1", "k2", `{"name":"a"}`, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE idempotency_keys d, (SELECT body FROM idempotency_keys WHERE idem_key = 'k1') src
		SET d.body = src.body, d.status = 201 WHERE d.idem_key = 'k2'`); err != nil {
		t.Fatal(err)
	}
	if r, err := begin(t, s, "u1", "k2", `{"name":"a"}`, t0); !errors.Is(err, secrets.ErrDecrypt) {
		t.Errorf("Begin of a key holding another key's body = %v, %v; want ErrDecrypt", r, err)
	}

	// An empty body (204) replays as empty, not as too large.
	if _, err := begin(t, s, "u1", "k3", ``, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, "u1", "k3", idempotency.Response{Status: 204}); err != nil {
		t.Fatal(err)
	}
	if r, err := begin(t, s, "u1", "k3", ``, t0); err != nil || r.Status != 204 || len(r.Body) != 0 || r.ContentType != "" || r.Location != "" {
		t.Errorf("replay of a 204 = %+v, %v", r, err)
	}
	// Keys are compared byte for byte, and belong to their principal.
	for _, p := range []struct{ principal, key string }{{"u1", "K1"}, {"u1", "k1 "}, {"u2", "k1"}, {"key:u1", "k1"}} {
		if r, err := begin(t, s, p.principal, p.key, `{"name":"a"}`, t0); r != nil || err != nil {
			t.Errorf("Begin(%q, %q) = %v, %v; want a fresh key", p.principal, p.key, r, err)
		}
	}
}

func TestMismatch(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := begin(t, s, "u1", "k", `{"name":"a"}`, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, "u1", "k", idempotency.Response{Status: 201, Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string]struct {
		method, path, body string
	}{
		"body":   {"POST", "/api/v1/databases", `{"name":"b"}`},
		"path":   {"POST", "/api/v1/databases?dry_run=true", `{"name":"a"}`},
		"method": {"PUT", "/api/v1/databases", `{"name":"a"}`},
	} {
		r, err := s.Begin(ctx, "u1", "k", req.method, req.path, hash(req.body), t0)
		if !errors.Is(err, idempotency.ErrKeyReused) || !errors.Is(err, domain.ErrConflict) || r != nil {
			t.Errorf("another %s: %v, %v; want ErrKeyReused", name, r, err)
		}
	}
}

func TestRunningAndAbandon(t *testing.T) {
	ctx := context.Background()
	s, db := newStore(t)
	if _, err := begin(t, s, "u1", "k", `{}`, t0); err != nil {
		t.Fatal(err)
	}
	if r, err := begin(t, s, "u1", "k", `{}`, t0.Add(time.Second)); !errors.Is(err, idempotency.ErrInProgress) || r != nil {
		t.Fatalf("Begin while running = %v, %v; want ErrInProgress", r, err)
	}
	// Another request with the running key is a mismatch, not a wait.
	if _, err := begin(t, s, "u1", "k", `{"other":1}`, t0); !errors.Is(err, idempotency.ErrKeyReused) {
		t.Errorf("another body while running: %v, want ErrKeyReused", err)
	}
	if err := s.Abandon(ctx, "u1", "k"); err != nil {
		t.Fatal(err)
	}
	if n := rows(t, db); n != 0 {
		t.Errorf("%d rows after Abandon, want 0", n)
	}
	// After abandoning, the key is fresh: even another body may use it.
	if r, err := begin(t, s, "u1", "k", `{"other":1}`, t0); r != nil || err != nil {
		t.Fatalf("Begin after Abandon = %v, %v", r, err)
	}
	if err := s.Complete(ctx, "u1", "k", idempotency.Response{Status: 403, ContentType: "application/json", Body: []byte(`{"error":{}}`)}); err != nil {
		t.Fatal(err)
	}
	// Abandon and a second Complete leave a completed key alone: a 4xx is the key's answer.
	if err := s.Abandon(ctx, "u1", "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, "u1", "k", idempotency.Response{Status: 200}); err != nil {
		t.Fatal(err)
	}
	if r, err := begin(t, s, "u1", "k", `{"other":1}`, t0); err != nil || r.Status != 403 || string(r.Body) != `{"error":{}}` {
		t.Errorf("replay after Abandon = %+v, %v; want the 403", r, err)
	}
}

func TestTooLarge(t *testing.T) {
	ctx := context.Background()
	s, db := newStore(t)
	if _, err := begin(t, s, "u1", "big", `{}`, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, "u1", "big", idempotency.Response{Status: 200, ContentType: "application/json",
		Body: make([]byte, idempotency.MaxBodySize+1)}); err != nil {
		t.Fatal(err)
	}
	var tooLarge *idempotency.TooLargeError
	r, err := begin(t, s, "u1", "big", `{}`, t0)
	if !errors.As(err, &tooLarge) || tooLarge.Status != 200 || !errors.Is(err, domain.ErrConflict) || r != nil {
		t.Fatalf("replay of a response over MaxBodySize = %v, %v; want TooLargeError{200}", r, err)
	}
	var size sql.NullInt64
	if err := db.QueryRow(`SELECT LENGTH(body) FROM idempotency_keys WHERE idem_key = 'big'`).Scan(&size); err != nil || size.Valid {
		t.Errorf("stored body of the large response: %v bytes, %v; want NULL", size, err)
	}
	// Exactly MaxBodySize is kept.
	if _, err := begin(t, s, "u1", "max", `{}`, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, "u1", "max", idempotency.Response{Status: 200, Body: bytes.Repeat([]byte("x"), idempotency.MaxBodySize)}); err != nil {
		t.Fatal(err)
	}
	if r, err := begin(t, s, "u1", "max", `{}`, t0); err != nil || len(r.Body) != idempotency.MaxBodySize {
		t.Errorf("replay of a MaxBodySize response: %v", err)
	}
}

// A principal cannot fill the table: past its limit of keys or stored bytes a new key is refused
// with a FullError saying when its oldest key expires, while its keys already used still answer,
// and other principals are unaffected; the table's total bound holds for everyone.
func TestLimits(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if idempotency.MaxBodySize != 64<<10 {
		t.Errorf("MaxBodySize = %d, want 64 KiB", idempotency.MaxBodySize)
	}
	s.SetLimits(idempotency.Limits{PerPrincipalKeys: 3, PerPrincipalBytes: 1 << 20, TotalKeys: 5})
	for i := range 3 {
		key := fmt.Sprint("k", i)
		if _, err := begin(t, s, "u1", key, `{}`, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, "u1", key, idempotency.Response{Status: 201, Body: []byte(`{"n":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	var full *idempotency.FullError
	now := t0.Add(time.Hour)
	if r, err := begin(t, s, "u1", "k3", `{}`, now); !errors.As(err, &full) || r != nil || full.Scope != "principal" ||
		full.Limit != 3 || full.RetryAfter != idempotency.TTL-time.Hour {
		t.Fatalf("a fourth key = %v, %v; want FullError{principal, 3, 23h}", r, err)
	}
	if r, err := begin(t, s, "u1", "k0", `{}`, now); err != nil || r == nil || r.Status != 201 {
		t.Errorf("replay of a key used before, at the limit = %v, %v", r, err)
	}
	if _, err := begin(t, s, "u2", "k0", `{}`, now); err != nil {
		t.Errorf("another principal: %v", err)
	}
	// Once the oldest key is past its TTL, there is room again.
	if _, err := begin(t, s, "u1", "k3", `{}`, t0.Add(idempotency.TTL+time.Second)); err != nil {
		t.Errorf("a new key after the oldest expired: %v", err)
	}
	// The table holds 5 keys now (u1: 4, u2: 1): the total bound refuses everyone's new key.
	if _, err := begin(t, s, "u3", "k", `{}`, t0.Add(idempotency.TTL)); !errors.As(err, &full) || full.Scope != "total" || full.Limit != 5 {
		t.Errorf("a new key with the table full = %v; want FullError{total, 5}", err)
	}

	// Stored bytes count too.
	s2, _ := newStore(t)
	s2.SetLimits(idempotency.Limits{PerPrincipalKeys: 100, PerPrincipalBytes: 100 << 10, TotalKeys: 100})
	for i := range 2 {
		key := fmt.Sprint("big", i)
		if _, err := begin(t, s2, "u1", key, `{}`, t0); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		if err := s2.Complete(ctx, "u1", key, idempotency.Response{Status: 200, Body: make([]byte, idempotency.MaxBodySize)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := begin(t, s2, "u1", "more", `{}`, t0); !errors.As(err, &full) || full.Scope != "principal" || full.Limit != 100<<10 {
		t.Errorf("a new key past the byte limit = %v; want FullError{principal, 102400}", err)
	}
}

func TestExpiryReclaimAndPurge(t *testing.T) {
	ctx := context.Background()
	s, db := newStore(t)
	// A completed key and a key whose request never finished (a crashed process), both at t0.
	if _, err := begin(t, s, "u1", "done", `{"a":1}`, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, "u1", "done", idempotency.Response{Status: 201, Body: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	if _, err := begin(t, s, "u1", "stuck", `{}`, t0); err != nil {
		t.Fatal(err)
	}
	// Within 24 h, they replay and wait.
	edge := t0.Add(idempotency.TTL)
	if r, err := begin(t, s, "u1", "done", `{"a":1}`, edge); err != nil || string(r.Body) != "first" {
		t.Fatalf("replay at 24 h = %v, %v", r, err)
	}
	if _, err := begin(t, s, "u1", "stuck", `{}`, edge); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("running key at 24 h: %v, want ErrInProgress", err)
	}
	// Past 24 h, each is a new request, even with another body.
	later := edge.Add(time.Millisecond)
	if r, err := begin(t, s, "u1", "done", `{"a":2}`, later); r != nil || err != nil {
		t.Fatalf("Begin past 24 h = %v, %v; want a fresh request", r, err)
	}
	if r, err := begin(t, s, "u1", "done", `{"a":2}`, later); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("the reclaimed key = %v, %v; want it running", r, err)
	}
	if err := s.Complete(ctx, "u1", "done", idempotency.Response{Status: 200, Body: []byte("second")}); err != nil {
		t.Fatal(err)
	}
	if r, err := begin(t, s, "u1", "done", `{"a":2}`, later); err != nil || r.Status != 200 || string(r.Body) != "second" {
		t.Fatalf("replay of the reclaimed key = %+v, %v", r, err)
	}
	if r, err := begin(t, s, "u1", "stuck", `{}`, later); r != nil || err != nil {
		t.Fatalf("Begin of a stuck key past 24 h = %v, %v", r, err)
	}

	// Purge deletes rows created before its time, in batches, and keeps the others.
	for i := range 7 {
		if _, err := begin(t, s, "u2", "old-"+strings.Repeat("x", i+1), `{}`, t0.Add(-time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Purge(ctx, later.Add(-idempotency.TTL), 3)
	if err != nil || n != 7 {
		t.Fatalf("Purge = %d, %v; want 7", n, err)
	}
	if got := rows(t, db); got != 2 {
		t.Errorf("%d rows after Purge, want the 2 reclaimed ones", got)
	}
	if n, err := s.Purge(ctx, later.Add(-idempotency.TTL), 3); err != nil || n != 0 {
		t.Errorf("second Purge = %d, %v; want 0", n, err)
	}
	if n, err := s.Purge(ctx, later.Add(time.Second), 0); err != nil || n != 2 {
		t.Errorf("Purge of everything = %d, %v; want 2", n, err)
	}
}

// Of many concurrent Begins of one key, exactly one proceeds; the others see it running. The same
// holds when the key is an expired row that all of them try to reclaim.
func TestConcurrentBegins(t *testing.T) {
	s, _ := newStore(t)
	race := func(key string, now time.Time) (proceeded, running int) {
		const n = 12
		var wg sync.WaitGroup
		results := make(chan error, n)
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				r, err := begin(t, s, "u1", key, `{}`, now)
				if r != nil {
					err = errors.New("replayed")
				}
				results <- err
			})
		}
		close(start)
		wg.Wait()
		close(results)
		for err := range results {
			switch {
			case err == nil:
				proceeded++
			case errors.Is(err, idempotency.ErrInProgress):
				running++
			default:
				t.Errorf("concurrent Begin: %v", err)
			}
		}
		return proceeded, running
	}
	if p, r := race("race", t0); p != 1 || r != 11 {
		t.Errorf("new key: %d proceeded, %d saw it running; want 1 and 11", p, r)
	}
	if p, r := race("race", t0.Add(25*time.Hour)); p != 1 || r != 11 {
		t.Errorf("expired key: %d proceeded, %d saw it running; want 1 and 11", p, r)
	}
}

func TestBounds(t *testing.T) {
	ctx := context.Background()
	s, db := newStore(t)
	for _, c := range []struct{ principal, key string }{
		{"", "k"}, {strings.Repeat("p", idempotency.MaxPrincipalSize+1), "k"}, {"u", ""}, {"u", strings.Repeat("k", idempotency.MaxKeySize+1)},
	} {
		if _, err := s.Begin(ctx, c.principal, c.key, "POST", "/", hash(""), t0); err == nil {
			t.Errorf("Begin(%d-byte principal, %d-byte key) succeeded", len(c.principal), len(c.key))
		}
	}
	if _, err := s.Begin(ctx, strings.Repeat("p", idempotency.MaxPrincipalSize), strings.Repeat("k", idempotency.MaxKeySize), "POST",
		"/"+strings.Repeat("a", idempotency.MaxPathSize-1), hash(""), t0); err != nil {
		t.Errorf("Begin at the bounds: %v", err)
	}
	if _, err := s.Begin(ctx, "u", "k", "POST", "/"+strings.Repeat("a", idempotency.MaxPathSize), hash(""), t0); err == nil {
		t.Error("Begin with a path over the bound succeeded")
	}
	if _, err := idempotency.New(db, make([]byte, 16)); !errors.Is(err, secrets.ErrInvalidKey) {
		t.Errorf("New with a 16-byte key: %v, want ErrInvalidKey", err)
	}
}

// A running key whose process holds no live lease is taken over with ErrOrphaned (the first
// request may have done its work) and keeps its created_at; while the taker lives, another
// process sees it running; an expired key is reclaimed as new.
func TestRunningKeyOfADeadProcessIsOrphaned(t *testing.T) {
	s, db := newStore(t)
	lease := func(instance string, expires time.Time) {
		if _, err := db.Exec(`INSERT INTO process_leases (instance_id, host, started_at, expires_at) VALUES (?, 'h', ?, ?)`,
			instance, t0.Add(-time.Hour), expires); err != nil {
			t.Fatal(err)
		}
	}
	lease("dead", t0.Add(-time.Second))
	lease("taker", t0.Add(time.Minute))
	s.SetOwner("dead")
	if _, err := begin(t, s, "u1", "k", "body", t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	taker, other := *s, *s
	taker.SetOwner("taker")
	other.SetOwner("other")
	if r, err := begin(t, &taker, "u1", "k", "body", t0); r != nil || !errors.Is(err, idempotency.ErrOrphaned) {
		t.Fatalf("Begin of a dead process's key = %v, %v; want ErrOrphaned", r, err)
	}
	var created time.Time
	if err := db.QueryRow(`SELECT created_at FROM idempotency_keys WHERE idem_key = 'k'`).Scan(&created); err != nil {
		t.Fatal(err)
	}
	if !created.Equal(t0.Add(-time.Minute)) {
		t.Errorf("created_at %v after the takeover, want the first request's %v", created, t0.Add(-time.Minute))
	}
	if _, err := begin(t, &other, "u1", "k", "body", t0); !errors.Is(err, idempotency.ErrInProgress) {
		t.Errorf("Begin while the taker lives = %v, want ErrInProgress", err)
	}
	if r, err := begin(t, &other, "u1", "k", "body", t0.Add(idempotency.TTL)); r != nil || err != nil {
		t.Errorf("Begin of an expired key = %v, %v; want nil, nil", r, err)
	}
}
