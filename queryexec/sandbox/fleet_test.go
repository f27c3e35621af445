package sandbox_test

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox/sandboxtest"
)

func TestFleetStartsWithAServerDownAndPlacesOnTheOthers(t *testing.T) {
	ctx := sandboxtest.Context(t)
	const down = "root@tcp(127.0.0.1:1)/"
	fleet, err := sandbox.OpenFleet(ctx, []string{down, testdb.ServerDSN()}, "tfleet_", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("a fleet with one server down did not open: %v", err)
	}
	defer fleet.Close()
	if n := len(fleet.Servers()); n != 1 {
		t.Fatalf("%d servers connected, want the 1 that answers", n)
	}
	placed, err := fleet.Place(ctx, map[string]int{})
	if err != nil || placed.Name() == "127.0.0.1:1" {
		t.Fatalf("Place = %v, %v; want the server that answers", placed, err)
	}
	if _, err := fleet.Get("127.0.0.1:1"); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Get of the down server = %v, want ErrUnavailable", err)
	}
	if err := fleet.Reconnect(ctx); err != nil {
		t.Fatalf("Reconnect with the server still down = %v, want nil (it stays down)", err)
	}
	if _, err := sandbox.OpenFleet(ctx, []string{testdb.ServerDSN(), testdb.ServerDSN()}, "tfleet_", slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a server listed twice was accepted")
	}
}
