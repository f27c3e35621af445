package queryexec

import (
	"context"
	"errors"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

// A member with a connection sub-quota runs at most that many queries at once; their refusal
// leaves the tenant's count as it was, and members without one share only the tenant's limit.
func TestMemberConnectionGate(t *testing.T) {
	processes := 1
	e := &Engine{running: newGate[domain.TenantID]("tenant %d"), members: newGate[memberKey]("member %d"),
		processes: func() int { return processes }, admission: newAdmission(1, MaxRowBytes, 0)} // refused at once when full
	req := func(user domain.UserID, member int64) Request {
		return Request{User: user, Target: Target{Tenant: "t1"},
			Policy: Policy{Limits: domain.Limits{MaxConnections: 3}, MemberMaxConnections: member}}
	}
	leave, err := e.enterGates(context.Background(), req("alice", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.enterGates(context.Background(), req("alice", 1)); !errors.As(err, new(*BusyError)) {
		t.Fatalf("alice's second query = %v, want busy", err)
	}
	if n := e.running.count("t1"); n != 1 {
		t.Fatalf("the tenant runs %d after alice's refusal, want 1", n)
	}
	bob1, err := e.enterGates(context.Background(), req("bob", 0))
	if err != nil {
		t.Fatal(err)
	}
	bob2, err := e.enterGates(context.Background(), req("bob", 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.enterGates(context.Background(), req("carol", 0)); !errors.As(err, new(*BusyError)) {
		t.Fatalf("a fourth query of the tenant = %v, want busy", err)
	}
	leave()
	bob1()
	bob2()
	if e.running.count("") != 0 || e.members.count(memberKey{}) != 0 {
		t.Fatalf("left: tenant %d, members %d running", e.running.count(""), e.members.count(memberKey{}))
	}
	if leave, err = e.enterGates(context.Background(), req("alice", 1)); err != nil {
		t.Fatalf("alice after leaving: %v", err)
	}
	leave()

	// With three processes, each runs its share: one of the tenant's three.
	processes = 3
	if leave, err = e.enterGates(context.Background(), req("bob", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.enterGates(context.Background(), req("carol", 0)); !errors.As(err, new(*BusyError)) {
		t.Fatalf("a second query of the tenant in one of three processes = %v, want busy", err)
	}
	leave()
}
