// Package ratelimit limits how often each key (a client IP, a user id, an email being logged in
// with) may act, with one token bucket (golang.org/x/time/rate) per key.
//
// Memory stays bounded: a key unused for its idle TTL is forgotten (lazily, on later calls: no
// goroutine runs, so there is nothing to close), and at most MaxKeys keys are tracked. When a new
// key arrives with the table full, the least recently used key is forgotten to make room. The
// alternative, refusing new keys, would let a flood of distinct keys lock every newcomer out; the
// cost of eviction is that a key forgotten early starts again with a full bucket, which a flood of
// more than MaxKeys keys could use to reset a victim's bucket. That attacker already has MaxKeys
// keys of budget to spend, so eviction gives little away.
package ratelimit

import (
	"container/list"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys is how many keys a Limiter tracks unless WithMaxKeys says otherwise.
const DefaultMaxKeys = 100_000

// Limiter applies one token-bucket limit to each key separately. It is safe for concurrent use.
type Limiter struct {
	limit   rate.Limit
	burst   int
	ttl     time.Duration // idle time after which a key is forgotten
	maxKeys int
	share   func() int // how many processes the limit is divided among

	mu    sync.Mutex
	keys  map[string]*list.Element // of *entry
	order *list.List               // most recently used at the front
}

type entry struct {
	key      string
	bucket   *rate.Limiter
	share    int // the division the bucket's rate and burst were set for
	lastSeen time.Time
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithMaxKeys sets how many keys the Limiter tracks at most (DefaultMaxKeys by default).
func WithMaxKeys(n int) Option {
	return func(l *Limiter) { l.maxKeys = n }
}

// WithShare divides the limit among the processes that apply it, as many as share says now (at
// least 1): each key's bucket refills at the rate divided by it and holds the burst divided by it
// (at least one token), so that the processes together never grant more than the limit, at no
// cost per request. A client whose requests all reach one process gets that process's share:
// for an exact limit whatever the spread, see Buckets. A bucket follows a change of share at its
// key's next request.
func WithShare(share func() int) Option {
	return func(l *Limiter) { l.share = share }
}

// New returns a Limiter that lets each key act r times a second on average, with bursts of up to
// burst, and forgets a key unused for idleTTL. A key is never forgotten before its bucket has had
// time to refill (burst/r), so forgetting never grants more than the limit would.
// New panics if r <= 0, burst < 1, idleTTL <= 0 or a max-keys option is < 1: these are programming
// errors.
func New(r rate.Limit, burst int, idleTTL time.Duration, opts ...Option) *Limiter {
	if r <= 0 || burst < 1 || idleTTL <= 0 {
		panic(fmt.Sprintf("ratelimit: New(%v, %d, %v): need a positive rate, burst and idle TTL", r, burst, idleTTL))
	}
	l := &Limiter{
		limit:   r,
		burst:   burst,
		ttl:     max(idleTTL, fillTime(r, burst)),
		maxKeys: DefaultMaxKeys,
		share:   func() int { return 1 },
		keys:    make(map[string]*list.Element),
		order:   list.New(),
	}
	for _, opt := range opts {
		opt(l)
	}
	if l.maxKeys < 1 || l.share == nil {
		panic(fmt.Sprintf("ratelimit: max keys %d < 1, or no share", l.maxKeys))
	}
	return l
}

// fillTime is how long an empty bucket takes to fill up, rounded up.
func fillTime(r rate.Limit, burst int) time.Duration {
	if r == rate.Inf {
		return 0
	}
	secs := float64(burst) / float64(r)
	if secs >= float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil(secs * float64(time.Second)))
}

// Allow takes one token from key's bucket at now. When the bucket is empty it returns false and how
// long to wait before a token is available, rounded up to whole seconds and at least one second
// (the value of a Retry-After header). now comes from the caller's clock (time.Now in production),
// which keeps tests free of sleeps.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()

	l.evictIdle(now)
	share := max(1, l.share())
	var e *entry
	if el, found := l.keys[key]; found {
		l.order.MoveToFront(el)
		e = el.Value.(*entry)
	} else {
		if len(l.keys) >= l.maxKeys {
			l.remove(l.order.Back()) // the least recently used
		}
		e = &entry{key: key, bucket: rate.NewLimiter(l.limit/rate.Limit(share), max(1, l.burst/share)), share: share}
		l.keys[key] = l.order.PushFront(e)
	}
	if e.share != share {
		e.bucket.SetLimitAt(now, l.limit/rate.Limit(share))
		e.bucket.SetBurstAt(now, max(1, l.burst/share))
		e.share = share
	}
	if now.After(e.lastSeen) {
		e.lastSeen = now
	}

	if e.bucket.AllowN(now, 1) {
		return true, 0
	}
	return false, wait(e.bucket.TokensAt(now), e.bucket.Limit())
}

// wait is how long a bucket holding tokens (< 1) takes to hold one at limit, in whole seconds, at
// least 1.
func wait(tokens float64, limit rate.Limit) time.Duration {
	secs := math.Ceil((1 - tokens) / float64(limit))
	if secs < 1 || math.IsNaN(secs) {
		secs = 1
	}
	if secs >= float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64 / int64(time.Second) * int64(time.Second))
	}
	return time.Duration(secs) * time.Second
}

// evictIdle forgets the keys unused for the idle TTL. They sit at the back of the list, so each
// call does work only for the keys it removes.
func (l *Limiter) evictIdle(now time.Time) {
	for el := l.order.Back(); el != nil; el = l.order.Back() {
		if now.Sub(el.Value.(*entry).lastSeen) < l.ttl {
			return
		}
		l.remove(el)
	}
}

func (l *Limiter) remove(el *list.Element) {
	delete(l.keys, el.Value.(*entry).key)
	l.order.Remove(el)
}

// Len returns how many keys the Limiter tracks now (for metrics and tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
