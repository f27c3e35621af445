package queryexec

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The process's bounds: a statement past the places, or a row past the memory the running
// statements hold, waits, then is refused as busy (scope server); memory given back lets the next
// one in, and a wait ends with its context.
func TestAdmissionBoundsPlacesAndMemory(t *testing.T) {
	a := newAdmission(2, MaxRowBytes, time.Millisecond)
	var busy *BusyError
	first, err := a.enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.enter(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.enter(context.Background()); !errors.As(err, &busy) || busy.Scope != "server" {
		t.Fatalf("a third statement with two places: %v, want a BusyError of scope server", err)
	}
	first()
	if _, err := a.enter(context.Background()); err != nil {
		t.Fatalf("a place given back: %v", err)
	}

	if err := a.hold(context.Background(), MaxRowBytes-10); err != nil {
		t.Fatal(err)
	}
	if err := a.hold(context.Background(), 11); !errors.As(err, &busy) || busy.Scope != "server" {
		t.Fatalf("a row past the memory: %v, want a BusyError of scope server", err)
	}
	a.memory.give(MaxRowBytes - 10)
	if err := a.hold(context.Background(), MaxRowBytes); err != nil {
		t.Fatalf("the whole memory once given back: %v", err)
	}
	waiting := newAdmission(1, MaxRowBytes, time.Hour)
	waiting.memory.tryTake(MaxRowBytes)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := waiting.hold(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("a wait whose context ends: %v", err)
	}
	done := make(chan error)
	go func() { done <- waiting.hold(context.Background(), 1) }()
	waiting.memory.give(1)
	if err := <-done; err != nil {
		t.Fatalf("a wait for memory given back: %v", err)
	}
}
