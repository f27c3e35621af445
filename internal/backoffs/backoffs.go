// Package backoffs is the one way this code waits before trying again: exponential backoff from
// github.com/cenkalti/backoff/v5, whose backoff.Retry runs the retry loops. Each caller picks its
// steps here, so the shape of every wait is read in one place.
package backoffs

import (
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Exponential waits first, then twice as long each time up to max. Each wait is drawn from
// [d·(1−jitter), d·(1+jitter)] around its step d: jitter 0 waits exactly d, jitter 1 anywhere in
// [0, 2d] (which keeps contenders that failed together from trying again together).
func Exponential(first, max time.Duration, jitter float64) *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{InitialInterval: first, RandomizationFactor: jitter, Multiplier: 2, MaxInterval: max}
	b.Reset()
	return b
}

// Until stops b at deadline: a wait that would pass it is cut short to end there, and after the
// deadline b says backoff.Stop.
func Until(deadline time.Time, b backoff.BackOff) backoff.BackOff {
	return &until{deadline: deadline, BackOff: b}
}

type until struct {
	deadline time.Time
	backoff.BackOff
}

func (u *until) NextBackOff() time.Duration {
	left := time.Until(u.deadline)
	if left <= 0 {
		return backoff.Stop
	}
	return min(u.BackOff.NextBackOff(), left)
}
