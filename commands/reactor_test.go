package commands

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// advancing is a read model's advance as Projections.Advanced gives it: a channel closed at the
// next advance.
type advancing struct {
	mu   sync.Mutex
	next chan struct{}
}

func (a *advancing) wake() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next == nil {
		a.next = make(chan struct{})
	}
	return a.next
}

func (a *advancing) advance() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next != nil {
		close(a.next)
	}
	a.next = make(chan struct{})
}

// runRoundsUntil runs round under runRounds with an idle poll of an hour and returns once round
// has been called calls times: any round but the first comes from a wake or a retry, never the
// poll.
func runRoundsUntil(t *testing.T, calls int, round func(call int) (int, error), wake func() <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	call := 0
	go runRounds(ctx, slog.New(slog.DiscardHandler), "test round", func(context.Context) (int, error) {
		call++
		if call == calls {
			close(done)
		}
		if call > calls {
			<-ctx.Done()
			return 0, nil
		}
		return round(call)
	}, wake, time.Hour)
	<-done
}

// An advance during a round (its work appended while it ran) brings another round at once, not
// an idle poll later.
func TestRunRoundsDoesNotMissAnAdvanceDuringItsRound(t *testing.T) {
	var model advancing
	runRoundsUntil(t, 2, func(call int) (int, error) {
		model.advance() // the read model moves on while the round reads it
		return 0, nil
	}, model.wake)
}

// Work left waiting for its server is looked at again within waitingRetry, not an idle poll later.
func TestRunRoundsRetriesWaitingWorkSoon(t *testing.T) {
	runRoundsUntil(t, 2, func(call int) (int, error) { return 0, ErrWorkWaits }, nil)
}
