package commands_test

import (
	"errors"
	"testing"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// Sub-quotas set at the same moment for different members never add up to more than the plan:
// the free plan's 10 connections take three sub-quotas of 3, and the others are refused.
func TestSubQuotasRaceWithinThePlan(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	admin, tenant := f.owner(t, "admin@example.com")
	members := []domain.UserID{admin}
	for _, email := range []string{"m1@example.com", "m2@example.com", "m3@example.com", "m4@example.com"} {
		members = append(members, f.member(t, tenant, admin, email))
	}
	errs := race(len(members), func(i int) error {
		return f.dbs.SetSubQuota(ctx(t), tenant, members[i], domain.MemberQuota{MaxConnections: ptr(int64(3))}, meta)
	})
	won := 0
	for _, err := range errs {
		var quota *domain.QuotaExceededError
		switch {
		case err == nil:
			won++
		case errors.As(err, &quota) && quota.Resource == "connections" && quota.Limit == 10:
		default:
			t.Errorf("%v, want nil or quota_exceeded on connections", err)
		}
	}
	q := f.quota(t, tenant)
	sum := int64(0)
	for _, m := range members {
		if c := q.MemberQuota(m).MaxConnections; c != nil {
			sum += *c
		}
	}
	if won != 3 || sum != 9 {
		t.Fatalf("%d sub-quotas set, adding up to %d connections; want 3 and 9:%s", won, sum, describe(errs))
	}
}

// A storage sub-quota is the tenant's storage wall for one member: at it, their databases' writes
// are restricted on the server and they create no database; a connection sub-quota is their
// databases' accounts' MAX_USER_CONNECTIONS.
func TestSubQuotasReachTheServer(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	admin, tenant := f.owner(t, "admin@example.com")
	dev := f.member(t, tenant, admin, "dev@example.com")
	mine := f.running(t, tenant, dev, "mine", domain.TemplateBlank)
	theirs := f.running(t, tenant, admin, "theirs", domain.TemplateBlank)
	rw, _ := sandbox.AccountNames(f.prefix, string(mine.ID()))
	maxConnections := func() int {
		var n int
		if err := f.admin.QueryRowContext(ctx(t), `SELECT max_user_connections FROM mysql.user WHERE User = ?`, rw).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := maxConnections(); n != 10 {
		t.Fatalf("max_user_connections = %d before any sub-quota, want the free plan's 10", n)
	}

	// An empty database uses 0 bytes: a sub-quota of 0 is reached at once.
	if err := f.dbs.SetSubQuota(ctx(t), tenant, dev, domain.MemberQuota{MaxStorageBytes: ptr(int64(0)), MaxConnections: ptr(int64(2))}, meta); err != nil {
		t.Fatal(err)
	}
	if v := f.view(t, tenant, mine.ID()); !v.WritesRestricted() {
		t.Error("the member's database is not restricted at their storage sub-quota")
	}
	if v := f.view(t, tenant, theirs.ID()); v.WritesRestricted() {
		t.Error("another member's database is restricted")
	}
	if n := maxConnections(); n != 2 {
		t.Errorf("max_user_connections = %d, want the member's 2", n)
	}
	db := mustDial(t, f.conn(t, tenant, mine.ID()))
	if _, err := db.ExecContext(ctx(t), "CREATE TABLE grows (id INT)"); err == nil {
		t.Error("the restricted account still creates tables")
	}
	_, _, err := f.dbs.CreateDatabase(ctx(t), commands.CreateDatabase{Tenant: tenant, Owner: dev, Name: "another", Meta: meta})
	var quota *domain.QuotaExceededError
	if !errors.As(err, &quota) || quota.Resource != "user_storage" {
		t.Errorf("create at the storage sub-quota = %v, want quota_exceeded on user_storage", err)
	}
	if events := f.events(t, mine.ID().Stream()); !hasRestriction(events, domain.WritesRestrictedMemberStorage) {
		t.Error("the restriction is not recorded with the member's reason")
	}

	if err := f.dbs.SetSubQuota(ctx(t), tenant, dev, domain.MemberQuota{}, meta); err != nil {
		t.Fatal(err)
	}
	if v := f.view(t, tenant, mine.ID()); v.WritesRestricted() {
		t.Error("the restriction outlives the sub-quota")
	}
	if n := maxConnections(); n != 10 {
		t.Errorf("max_user_connections = %d after the sub-quota is removed, want 10", n)
	}
}

func hasRestriction(events []domain.Event, reason string) bool {
	for _, e := range events {
		if r, ok := e.(domain.DatabaseWritesRestricted); ok && r.Reason == reason {
			return true
		}
	}
	return false
}
