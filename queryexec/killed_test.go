package queryexec

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox/sandboxtest"
)

// TestEngineKilledStatementLeavesBeforeItsSlot: a request whose statement was killed (here: its
// client went away) answers only once the server no longer lists the session, so the tenant's
// slot it gives back is really free.
func TestEngineKilledStatementLeavesBeforeItsSlot(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	req := f.request(domain.RoleDeveloper, "SELECT SLEEP(20) AS killed_leaves")
	req.Policy.Limits.MaxConnections = 1
	ctx, cancel := context.WithCancel(sandboxtest.Context(t))
	done := make(chan error, 1)
	go func() {
		_, _, err := f.engine.Run(ctx, req)
		done <- err
	}()
	eventually(t, 10*time.Second, "the statement runs", func() bool { return f.running(t, "killed_leaves") == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want cancelled", err)
	}
	if n := f.running(t, "killed_leaves"); n != 0 {
		t.Errorf("the request answered while the server still ran its killed statement: %s", f.processes(t))
	}
	leave, err := f.engine.running.enter(context.Background(), f.tenant, 1, 1, 0)
	if err != nil {
		t.Fatalf("the tenant's only slot is still taken after the statement left: %v", err)
	}
	leave()
}

// TestEngineSlotOfAKilledStatementWaitsForTheServer: while the server still lists the session of
// a killed statement, its tenant's slot stays taken, past the request's bounded wait, and comes
// free once the server lets go. A statement that ignores KILL for minutes (the optimizer planning
// 30,000 subqueries did) is hard to make on demand, so a session the test holds open stands in
// for it: the test proves the accounting, not that MariaDB ignores the KILL.
func TestEngineSlotOfAKilledStatementWaitsForTheServer(t *testing.T) {
	t.Parallel()
	f := newEngineFixture(t)
	f.engine.killWait = time.Millisecond // go straight to the janitor
	ctx := sandboxtest.Context(t)
	holder, err := f.root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	var id uint64
	if err := holder.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	release, err := f.engine.running.enter(context.Background(), f.tenant, 1, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	freed := make(chan struct{})
	f.engine.releaseWhenGone(&conn{id: id, server: f.server, key: poolKey{server: f.server.Name(), id: f.id}, killed: true},
		func() { release(); close(freed) })

	if _, err := f.engine.running.enter(context.Background(), f.tenant, 1, 1, 0); !errors.As(err, new(*BusyError)) {
		t.Fatalf("while the server lists the killed session, a second query of the tenant = %v, want busy", err)
	}
	select {
	case <-freed:
		t.Fatal("the slot was given back while the server still lists the session")
	default:
	}
	if _, err := f.root.ExecContext(ctx, "KILL CONNECTION ?", id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-freed:
	case <-ctx.Done():
		t.Fatal("the slot was never given back after the session ended")
	}
	leave, err := f.engine.running.enter(context.Background(), f.tenant, 1, 1, 0)
	if err != nil {
		t.Fatalf("after the session ended: %v", err)
	}
	leave()
}
