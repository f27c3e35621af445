package commands

import (
	"context"
	"testing"
)

// TestUnrecordedWaitsForTheOutcomesQueuedBefore: a read waits while an outcome queued before it
// is not recorded, and is let go when it is.
func TestUnrecordedWaitsForTheOutcomesQueuedBefore(t *testing.T) {
	var u unrecorded
	done, cancel := context.WithCancel(context.Background())
	cancel() // wait then only says whether it would have to wait
	if err := u.wait(done); err != nil {
		t.Fatalf("nothing queued: %v", err)
	}
	first, second := u.add(), u.add()
	u.done(second)
	if err := u.wait(done); err == nil {
		t.Fatal("the first outcome is not recorded, yet a read need not wait")
	}
	waited := make(chan error)
	go func() { waited <- u.wait(context.Background()) }()
	u.done(first)
	if err := <-waited; err != nil {
		t.Fatalf("once both are recorded: %v", err)
	}
	if err := u.wait(done); err != nil {
		t.Fatalf("all recorded: %v", err)
	}
}
