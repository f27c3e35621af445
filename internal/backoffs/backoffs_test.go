package backoffs_test

import (
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/clouddbmanager/clouddb/internal/backoffs"
)

func TestExponentialDoublesUpToMax(t *testing.T) {
	b := backoffs.Exponential(100*time.Millisecond, 5*time.Second, 0)
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for i, w := range want {
		if got := b.NextBackOff(); got != w*time.Millisecond {
			t.Fatalf("wait %d = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.NextBackOff(); got != 100*time.Millisecond {
		t.Errorf("after Reset, wait = %v, want 100ms", got)
	}
}

func TestExponentialFullJitterStaysWithinTwiceTheStep(t *testing.T) {
	b := backoffs.Exponential(time.Millisecond/2, 32*time.Millisecond, 1)
	for i := range 20 {
		step := time.Millisecond / 2 << min(i, 6)
		if got := b.NextBackOff(); got < 0 || got > 2*step {
			t.Fatalf("wait %d = %v, want within [0, %v]", i+1, got, 2*step)
		}
	}
}

func TestUntilCutsTheLastWaitAndStops(t *testing.T) {
	deadline := time.Now().Add(time.Hour)
	b := backoffs.Until(deadline, backoffs.Exponential(2*time.Hour, 2*time.Hour, 0))
	if got := b.NextBackOff(); got <= 0 || got > time.Hour {
		t.Errorf("wait before the deadline = %v, want cut to about 1h", got)
	}
	if got := backoffs.Until(time.Now().Add(-time.Second), backoffs.Exponential(time.Second, time.Second, 0)).NextBackOff(); got != backoff.Stop {
		t.Errorf("wait after the deadline = %v, want backoff.Stop", got)
	}
}
