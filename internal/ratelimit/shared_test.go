package ratelimit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/clouddbmanager/clouddb/internal/ratelimit"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// TestBucketsHoldAcrossProcesses: two processes (two Buckets on one management database) share a
// limit of 5 then one a minute: 20 concurrent requests get exactly 5 tokens, the refusal says when
// the next one comes, the keys and limits are separate, and full buckets are pruned.
func TestBucketsHoldAcrossProcesses(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	a, b := ratelimit.NewBuckets(db).Limit("mail", rate.Every(time.Minute), 5), ratelimit.NewBuckets(db).Limit("mail", rate.Every(time.Minute), 5)
	var granted atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := a
			if i%2 == 1 {
				l = b
			}
			ok, _, err := l.Allow(ctx, "10.0.0.1", t0)
			if err != nil {
				t.Error(err)
			}
			if ok {
				granted.Add(1)
			}
		}()
	}
	wg.Wait()
	if granted.Load() != 5 {
		t.Fatalf("two processes granted %d tokens of a burst of 5", granted.Load())
	}
	allow := func(l *ratelimit.Shared, key string, at time.Time) (bool, time.Duration) {
		t.Helper()
		ok, retry, err := l.Allow(ctx, key, at)
		if err != nil {
			t.Fatal(err)
		}
		return ok, retry
	}
	// A token comes up to a second early (the reorder slack): 29 s to wait, not 30.
	if ok, retry := allow(b, "10.0.0.1", t0.Add(30*time.Second)); ok || retry != 29*time.Second {
		t.Errorf("half a minute later: allowed %v, retry after %v; want refused, 29s", ok, retry)
	}
	// A burst whose requests read the clock a little apart and reach the row in the other order
	// is still a whole burst: the one that read it first, and comes last, gets its token.
	for i := range 4 {
		if ok, _ := allow(a, "10.0.0.3", t0.Add(time.Duration(i+1)*time.Millisecond)); !ok {
			t.Fatalf("request %d of a burst of 5 refused", i+1)
		}
	}
	if ok, _ := allow(b, "10.0.0.3", t0); !ok {
		t.Error("the burst's first reader, coming last, was refused its token")
	}
	if ok, _ := allow(b, "10.0.0.3", t0.Add(5*time.Millisecond)); ok {
		t.Error("a sixth token was granted in a burst of 5")
	}
	if ok, _ := allow(a, "10.0.0.1", t0.Add(time.Minute)); !ok {
		t.Error("a minute later: refused, want the token the minute made")
	}
	if ok, _ := allow(b, "10.0.0.1", t0.Add(time.Minute)); ok {
		t.Error("a minute later: a second token was granted")
	}
	if ok, _ := allow(a, "10.0.0.2", t0); !ok {
		t.Error("another key was refused")
	}
	if ok, _ := allow(ratelimit.NewBuckets(db).Limit("login", rate.Every(time.Minute), 1), "10.0.0.1", t0); !ok {
		t.Error("another limit on the same key was refused")
	}

	later := t0.Add(time.Hour) // every bucket is full again: the first request of a process prunes them
	if ok, _ := allow(ratelimit.NewBuckets(db).Limit("mail", rate.Every(time.Minute), 5), "10.0.0.3", later); !ok {
		t.Fatal("refused a new key")
	}
	var rows int
	if err := db.QueryRow(`SELECT COUNT(*) FROM rate_limits`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d buckets kept after the prune, want 1 (the new key's)", rows)
	}
}

// A prune that fails (here refused by a trigger; in CI it was a deadlock with a token being taken)
// does not fail the request that ran it, and the next request prunes.
func TestPruneFailureDoesNotFailTheRequest(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	for _, stmt := range []string{
		`INSERT INTO rate_limits (bucket, tat_us) VALUES (REPEAT('x', 32), 1)`,
		`CREATE TRIGGER refuse_prune BEFORE DELETE ON rate_limits FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no prune'`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	l := ratelimit.NewBuckets(db).Limit("mail", rate.Every(time.Minute), 5)
	if ok, _, err := l.Allow(ctx, "10.0.0.1", t0); err != nil || !ok {
		t.Fatalf("Allow while the prune fails = %v, %v; want the token", ok, err)
	}
	if _, err := db.ExecContext(ctx, `DROP TRIGGER refuse_prune`); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := l.Allow(ctx, "10.0.0.1", t0.Add(time.Second)); err != nil || !ok {
		t.Fatalf("Allow after = %v, %v; want the token", ok, err)
	}
	var stale int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM rate_limits WHERE tat_us = 1`).Scan(&stale); err != nil || stale != 0 {
		t.Fatalf("%d full buckets left (%v): the next request did not prune", stale, err)
	}
}
