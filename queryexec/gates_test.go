package queryexec

import (
	"errors"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

// A member with a connection sub-quota runs at most that many queries at once; their refusal
// leaves the tenant's count as it was, and members without one share only the tenant's limit.
func TestMemberConnectionGate(t *testing.T) {
	e := &Engine{running: newGate[domain.TenantID]("tenant %d"), members: newGate[memberKey]("member %d")}
	req := func(user domain.UserID, member int64) Request {
		return Request{User: user, Target: Target{Tenant: "t1"},
			Policy: Policy{Limits: domain.Limits{MaxConnections: 3}, MemberMaxConnections: member}}
	}
	leave, err := e.enterGates(req("alice", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.enterGates(req("alice", 1)); !errors.As(err, new(*BusyError)) {
		t.Fatalf("alice's second query = %v, want busy", err)
	}
	if n := e.running.count("t1"); n != 1 {
		t.Fatalf("the tenant runs %d after alice's refusal, want 1", n)
	}
	bob1, err := e.enterGates(req("bob", 0))
	if err != nil {
		t.Fatal(err)
	}
	bob2, err := e.enterGates(req("bob", 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.enterGates(req("carol", 0)); !errors.As(err, new(*BusyError)) {
		t.Fatalf("a fourth query of the tenant = %v, want busy", err)
	}
	leave()
	bob1()
	bob2()
	if e.running.count("") != 0 || e.members.count(memberKey{}) != 0 {
		t.Fatalf("left: tenant %d, members %d running", e.running.count(""), e.members.count(memberKey{}))
	}
	if leave, err = e.enterGates(req("alice", 1)); err != nil {
		t.Fatalf("alice after leaving: %v", err)
	}
	leave()
}
