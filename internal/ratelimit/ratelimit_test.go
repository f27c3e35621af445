package ratelimit_test

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/clouddbmanager/clouddb/internal/ratelimit"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func mustAllow(t *testing.T, l *ratelimit.Limiter, key string, now time.Time) {
	t.Helper()
	if ok, retry := l.Allow(key, now); !ok {
		t.Fatalf("Allow(%q, t0%+v) refused (retry after %v), want allowed", key, now.Sub(t0), retry)
	}
}

func mustRefuse(t *testing.T, l *ratelimit.Limiter, key string, now time.Time, wantRetry time.Duration) {
	t.Helper()
	ok, retry := l.Allow(key, now)
	if ok {
		t.Fatalf("Allow(%q, t0%+v) allowed, want refused", key, now.Sub(t0))
	}
	if retry != wantRetry {
		t.Fatalf("Allow(%q, t0%+v) retry after %v, want %v", key, now.Sub(t0), retry, wantRetry)
	}
}

func TestBurstThenRefusal(t *testing.T) {
	l := ratelimit.New(rate.Every(10*time.Second), 5, time.Hour) // 6 a minute, bursts of 5
	for i := 0; i < 5; i++ {
		mustAllow(t, l, "ip-1", t0)
	}
	mustRefuse(t, l, "ip-1", t0, 10*time.Second)
	mustRefuse(t, l, "ip-1", t0, 10*time.Second)                           // a refusal costs nothing
	mustRefuse(t, l, "ip-1", t0.Add(2500*time.Millisecond), 8*time.Second) // 7.5 s rounded up
	mustRefuse(t, l, "ip-1", t0.Add(9999*time.Millisecond), 1*time.Second) // never below 1 s
}

func TestRetryAfterAtLeastOneSecond(t *testing.T) {
	l := ratelimit.New(100, 1, time.Hour) // a token every 10 ms
	mustAllow(t, l, "k", t0)
	mustRefuse(t, l, "k", t0, time.Second)
	mustAllow(t, l, "k", t0.Add(10*time.Millisecond))
}

func TestRefill(t *testing.T) {
	l := ratelimit.New(rate.Every(10*time.Second), 3, time.Hour)
	for i := 0; i < 3; i++ {
		mustAllow(t, l, "u", t0)
	}
	mustRefuse(t, l, "u", t0, 10*time.Second)

	mustAllow(t, l, "u", t0.Add(10*time.Second)) // one token back
	mustRefuse(t, l, "u", t0.Add(10*time.Second), 10*time.Second)

	later := t0.Add(10 * time.Minute) // the bucket is full again, but never over burst
	for i := 0; i < 3; i++ {
		mustAllow(t, l, "u", later)
	}
	mustRefuse(t, l, "u", later, 10*time.Second)
}

func TestKeysAreIndependent(t *testing.T) {
	l := ratelimit.New(rate.Every(time.Minute), 2, time.Hour)
	mustAllow(t, l, "a", t0)
	mustAllow(t, l, "a", t0)
	mustRefuse(t, l, "a", t0, time.Minute)
	mustAllow(t, l, "b", t0)
	mustAllow(t, l, "b", t0)
	mustRefuse(t, l, "b", t0, time.Minute)
	mustAllow(t, l, "", t0) // the empty key is a key like any other
	mustRefuse(t, l, "a", t0, time.Minute)
}

func TestIdleEviction(t *testing.T) {
	l := ratelimit.New(rate.Every(time.Second), 5, time.Minute)
	for i := 0; i < 5; i++ {
		mustAllow(t, l, "idle", t0)
	}
	mustAllow(t, l, "busy", t0)
	if n := l.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}

	mustAllow(t, l, "busy", t0.Add(59*time.Second)) // "idle" is 59 s old: kept
	if n := l.Len(); n != 2 {
		t.Fatalf("Len after 59 s = %d, want 2", n)
	}
	mustAllow(t, l, "busy", t0.Add(60*time.Second)) // "idle" is 60 s old: gone
	if n := l.Len(); n != 1 {
		t.Fatalf("Len after 60 s = %d, want 1 (idle key evicted)", n)
	}
	mustAllow(t, l, "other", t0.Add(2*time.Hour)) // everything else is idle now
	if n := l.Len(); n != 1 {
		t.Fatalf("Len after 2 h = %d, want 1", n)
	}
}

func TestIdleTTLNeverShorterThanRefill(t *testing.T) {
	// A bucket of 3 refilling at one token a minute takes 3 minutes to fill: forgetting it after
	// 10 s idle would hand out a fresh burst early.
	l := ratelimit.New(rate.Every(time.Minute), 3, 10*time.Second)
	for i := 0; i < 3; i++ {
		mustAllow(t, l, "k", t0)
	}
	mustRefuse(t, l, "k", t0, time.Minute)
	mustAllow(t, l, "other", t0.Add(30*time.Second))
	mustRefuse(t, l, "k", t0.Add(30*time.Second), 30*time.Second)
	mustAllow(t, l, "k", t0.Add(time.Minute))
	mustRefuse(t, l, "k", t0.Add(time.Minute), time.Minute)
	if n := l.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	mustAllow(t, l, "other", t0.Add(5*time.Minute)) // 4 min idle ≥ fill time: gone
	if n := l.Len(); n != 1 {
		t.Fatalf("Len = %d, want 1", n)
	}
}

func TestKeyCapUnderFlood(t *testing.T) {
	l := ratelimit.New(rate.Every(time.Second), 1, time.Hour) // DefaultMaxKeys
	mustAllow(t, l, "victim", t0)
	mustRefuse(t, l, "victim", t0, time.Second)
	peak := 0
	for i := 0; i < 200_000; i++ {
		now := t0.Add(time.Duration(i) * time.Microsecond)
		if ok, _ := l.Allow("flood-"+strconv.Itoa(i), now); !ok {
			t.Fatalf("new key %d refused: a new key always gets its burst", i)
		}
		if i%1000 == 0 {
			peak = max(peak, l.Len())
		}
	}
	peak = max(peak, l.Len())
	if peak > ratelimit.DefaultMaxKeys {
		t.Fatalf("tracked %d keys, cap is %d", peak, ratelimit.DefaultMaxKeys)
	}
	if n := l.Len(); n != ratelimit.DefaultMaxKeys {
		t.Fatalf("Len = %d, want the cap %d", n, ratelimit.DefaultMaxKeys)
	}
	// The least recently used keys went first: the last 100,000 flood keys remain, each with an
	// empty bucket.
	now := t0.Add(200_000 * time.Microsecond)
	mustRefuse(t, l, "flood-199999", now, time.Second)
	mustRefuse(t, l, "flood-100000", now, time.Second)
	mustAllow(t, l, "flood-99999", now) // evicted, so new again
}

func TestMaxKeysOption(t *testing.T) {
	l := ratelimit.New(rate.Every(time.Second), 1, time.Hour, ratelimit.WithMaxKeys(3))
	for _, k := range []string{"a", "b", "c"} {
		mustAllow(t, l, k, t0)
	}
	mustRefuse(t, l, "a", t0, time.Second) // a is now the most recently used; b the least
	mustAllow(t, l, "d", t0)               // evicts b
	if n := l.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	mustRefuse(t, l, "a", t0, time.Second)
	mustRefuse(t, l, "c", t0, time.Second) // c was kept
	mustRefuse(t, l, "d", t0, time.Second) // most to least recent: d, c, a
	mustAllow(t, l, "b", t0)               // b was forgotten: a fresh bucket (evicts a)
	mustAllow(t, l, "a", t0)               // so was a (evicts c)
	mustRefuse(t, l, "d", t0, time.Second) // d stays
}

func TestInfiniteRate(t *testing.T) {
	l := ratelimit.New(rate.Inf, 1, time.Minute)
	for i := 0; i < 100; i++ {
		mustAllow(t, l, "k", t0)
	}
}

func TestNewPanicsOnBadConfig(t *testing.T) {
	for _, tc := range []struct {
		r     rate.Limit
		burst int
		ttl   time.Duration
		opts  []ratelimit.Option
	}{
		{0, 1, time.Minute, nil},
		{-1, 1, time.Minute, nil},
		{1, 0, time.Minute, nil},
		{1, 1, 0, nil},
		{1, 1, time.Minute, []ratelimit.Option{ratelimit.WithMaxKeys(0)}},
	} {
		t.Run(fmt.Sprintf("%v/%d/%v", tc.r, tc.burst, tc.ttl), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("New did not panic")
				}
			}()
			ratelimit.New(tc.r, tc.burst, tc.ttl, tc.opts...)
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	const (
		workers = 16
		calls   = 2000
		burst   = 10
	)
	l := ratelimit.New(rate.Every(time.Hour), burst, time.Minute, ratelimit.WithMaxKeys(1000))
	var shared atomic.Int64 // allowed calls on the one key every worker hits
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				if ok, _ := l.Allow("shared", t0); ok {
					shared.Add(1)
				}
				l.Allow(fmt.Sprintf("w%d-%d", w, i%1500), t0.Add(time.Duration(i)*time.Millisecond))
				if i%100 == 0 {
					_ = l.Len()
				}
			}
		}()
	}
	wg.Wait()
	if got := shared.Load(); got != burst {
		t.Errorf("the shared key was allowed %d times, want exactly its burst %d", got, burst)
	}
	if n := l.Len(); n > 1000 {
		t.Errorf("Len = %d, over the cap 1000", n)
	}
}

// TestShareDividesTheLimitAmongProcesses: three processes applying their share of 6 a minute
// with bursts of 6 grant 6 together at once and then 1 each every 30 s (a third of the rate):
// never more than the limit; when one process is left it has the whole limit again.
func TestShareDividesTheLimitAmongProcesses(t *testing.T) {
	processes := atomic.Int64{}
	processes.Store(3)
	share := func() int { return int(processes.Load()) }
	var ls []*ratelimit.Limiter
	for range 3 {
		ls = append(ls, ratelimit.New(rate.Every(10*time.Second), 6, time.Hour, ratelimit.WithShare(share)))
	}
	granted := 0
	for range 5 {
		for _, l := range ls {
			if ok, _ := l.Allow("user", t0); ok {
				granted++
			}
		}
	}
	if granted != 6 {
		t.Fatalf("three processes granted %d of a burst of 6", granted)
	}
	mustRefuse(t, ls[0], "user", t0.Add(29*time.Second), 1*time.Second)
	mustAllow(t, ls[0], "user", t0.Add(30*time.Second))

	processes.Store(1)
	for range 5 { // the bucket is the whole limit's again, refilled at its rate
		mustAllow(t, ls[1], "user", t0.Add(time.Hour))
	}
}
