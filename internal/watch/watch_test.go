package watch

import (
	"sync"
	"testing"
	"time"
)

// closed reports whether ch is closed, without blocking. Advance and Reset close the channel
// before they return, so the answer is deterministic right after the call.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestPositionZeroValue(t *testing.T) {
	var p Position
	v, ch := p.Load()
	if v != 0 {
		t.Errorf("Load() = %d, want 0", v)
	}
	if closed(ch) {
		t.Error("channel from Load on the zero value is closed, want open")
	}
	if _, ch2 := p.Load(); ch2 != ch {
		t.Error("two Loads without a change returned different channels")
	}
}

func TestPositionChanges(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(p *Position) // before the waiter loads
		change    func(p *Position)
		want      int64
		wantWoken bool
	}{
		{"advance from zero", nil, func(p *Position) { p.Advance(1) }, 1, true},
		{"advance raises", func(p *Position) { p.Advance(5) }, func(p *Position) { p.Advance(9) }, 9, true},
		{"advance twice", nil, func(p *Position) { p.Advance(3); p.Advance(4) }, 4, true},
		{"lower advance ignored", func(p *Position) { p.Advance(5) }, func(p *Position) { p.Advance(3) }, 5, false},
		{"equal advance ignored", func(p *Position) { p.Advance(5) }, func(p *Position) { p.Advance(5) }, 5, false},
		{"zero advance on zero value ignored", nil, func(p *Position) { p.Advance(0) }, 0, false},
		{"negative advance ignored", nil, func(p *Position) { p.Advance(-1) }, 0, false},
		{"reset lowers", func(p *Position) { p.Advance(10) }, func(p *Position) { p.Reset(2) }, 2, true},
		{"reset to zero", func(p *Position) { p.Advance(10) }, func(p *Position) { p.Reset(0) }, 0, true},
		{"reset raises", func(p *Position) { p.Advance(10) }, func(p *Position) { p.Reset(12) }, 12, true},
		{"reset to the same value wakes", func(p *Position) { p.Advance(10) }, func(p *Position) { p.Reset(10) }, 10, true},
		{"advance after reset counts from the reset value", func(p *Position) { p.Advance(10) },
			func(p *Position) { p.Reset(2); p.Advance(3) }, 3, true},
		{"lower advance after a reset ignored", func(p *Position) { p.Advance(10); p.Reset(4) },
			func(p *Position) { p.Advance(4) }, 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Position
			if tt.setup != nil {
				tt.setup(&p)
			}
			_, ch1 := p.Load()
			_, ch2 := p.Load() // a second waiter shares the wake-up
			tt.change(&p)
			if got := closed(ch1); got != tt.wantWoken {
				t.Errorf("first waiter woken = %v, want %v", got, tt.wantWoken)
			}
			if got := closed(ch2); got != tt.wantWoken {
				t.Errorf("second waiter woken = %v, want %v", got, tt.wantWoken)
			}
			v, next := p.Load()
			if v != tt.want {
				t.Errorf("Load() = %d, want %d", v, tt.want)
			}
			if closed(next) {
				t.Error("channel from Load after the change is already closed, want a fresh open one")
			}
		})
	}
}

func TestPositionWakesBlockedWaiter(t *testing.T) {
	var p Position
	started := make(chan struct{})
	got := make(chan int64, 1)
	go func() {
		// Wait for the position to reach 3 the way callers do: Load, check, wait, repeat.
		v, ch := p.Load()
		close(started)
		for v < 3 {
			<-ch
			v, ch = p.Load()
		}
		got <- v
	}()
	<-started
	p.Advance(1)
	p.Advance(2)
	p.Advance(3)
	select {
	case v := <-got:
		if v != 3 {
			t.Errorf("waiter saw %d, want 3", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken 10s after Advance(3)")
	}
}

func TestPositionConcurrentAdvance(t *testing.T) {
	const goroutines, perGoroutine = 50, 200
	var p Position
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	start := make(chan struct{})

	// Readers check that the position never goes back while writers race.
	errs := make(chan string, 4)
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			<-start
			last := int64(0)
			for {
				v, ch := p.Load()
				if v < last {
					errs <- "position went back"
					return
				}
				last = v
				select {
				case <-stop:
					return
				case <-ch:
				}
			}
		}()
	}
	for g := range goroutines {
		writers.Add(1)
		go func() {
			defer writers.Done()
			<-start
			// Interleaved values: goroutine g advances to g, g+goroutines, g+2*goroutines, …
			// and, now and then, to a value far below the current one.
			for i := range perGoroutine {
				p.Advance(int64(g + i*goroutines))
				if i%10 == 0 {
					p.Advance(int64(g))
				}
			}
		}()
	}
	close(start)
	writers.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	want := int64(goroutines - 1 + (perGoroutine-1)*goroutines)
	if v, _ := p.Load(); v != want {
		t.Errorf("after concurrent Advance, Load() = %d, want the maximum %d", v, want)
	}
}
