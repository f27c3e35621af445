package projections_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

// TestAuditLog: each event an auditor asks about becomes an entry with its actor (and how they
// authenticated), tenant, target and details; the plumbing is left out; the list filters and
// pages newest first, and a rebuild gives the same entries.
func TestAuditLog(t *testing.T) {
	f := newIdentityFixture(t)
	ctx := context.Background()
	tenant, admin, member, db := newID(), newID(), newID(), newID()
	record := func(at time.Time, stream string, md eventstore.Metadata, events ...domain.Event) int64 {
		t.Helper()
		f.clock.set(at)
		typ := stream[:len(stream)-37]
		res, err := f.store.Append(ctx, eventstore.Append{Metadata: md, Streams: []eventstore.Stream{{
			ID: stream, Type: typ, ExpectedVersion: eventstore.AnyVersion, Events: events}}})
		if err != nil {
			t.Fatal(err)
		}
		return res.LastPosition
	}
	web := eventstore.Metadata{ActorID: admin, TenantID: tenant, SessionID: "s-1", IP: "203.0.113.5", UserAgent: "Firefox"}
	script := eventstore.Metadata{ActorID: admin, TenantID: tenant, APIKeyID: "k-1", IP: "198.51.100.2", UserAgent: "curl"}
	record(t0, "user-"+admin, eventstore.Metadata{IP: "203.0.113.5"}, domain.UserRegistered{UserID: domain.UserID(admin), Email: "admin@example.com", Name: "Ada", PasswordHash: "$2a$bcrypt"})
	record(t0.Add(time.Second), "user-"+admin, eventstore.Metadata{TenantID: tenant, IP: "203.0.113.5"}, domain.UserLoginSucceeded{SessionID: "s-1", TenantID: domain.TenantID(tenant)})
	record(t0.Add(2*time.Second), "session-"+newID(), web, domain.SessionRefreshed{RefreshHash: "x"}) // left out
	record(t0.Add(3*time.Second), "tenant-"+tenant, script, domain.TenantMemberRoleChanged{UserID: domain.UserID(member), From: domain.RoleViewer, To: domain.RoleDeveloper})
	record(t0.Add(4*time.Second), "query-"+newID(), web, domain.QueryExecuted{QueryID: "q", TenantID: domain.TenantID(tenant), UserID: domain.UserID(admin),
		DatabaseID: domain.DatabaseID(db), SQL: "SELECT secret FROM t", Fingerprint: "select secret from t", StatementType: "read", Tables: []string{"t"}, Status: "succeeded", RowCount: 3})
	record(t0.Add(5*time.Second), "database-"+db, eventstore.Metadata{TenantID: tenant, UserAgent: "clouddb auto-stop"}, domain.DatabaseStopped{Reason: "idle"})
	last := record(t0.Add(6*time.Second), "user-"+member, eventstore.Metadata{IP: "192.0.2.66", UserAgent: "hydra"}, domain.UserLoginFailed{Reason: "password", IP: "192.0.2.66"})

	r := f.start(t, projections.AuditLog{})
	wait(t, r, last, "audit_log")
	views := projections.NewViews(f.db)
	entries, next, err := views.Audit(ctx, projections.AuditFilter{Chain: tenant, Limit: 10})
	if err != nil || next != "" {
		t.Fatalf("audit: %v (next %q)", err, next)
	}
	type summary struct{ action, actor, email, via, target, ip string }
	str := func(p *string) string {
		if p == nil {
			return "-"
		}
		return *p
	}
	var got []summary
	for _, e := range entries {
		got = append(got, summary{e.Action, str(e.Actor.ID), str(e.Actor.Email), str(e.Actor.Via), e.Target.Type + ":" + e.Target.ID, str(e.IP)})
		if str(e.TenantID) != tenant {
			t.Errorf("%s is in tenant %s", e.Action, str(e.TenantID))
		}
	}
	want := []summary{
		{"database.stopped", "-", "-", "system", "database:" + db, "-"},
		{"query.executed", admin, "admin@example.com", "session", "query:" + entries[1].Target.ID, "203.0.113.5"},
		{"member.role_changed", admin, "admin@example.com", "api_key", "user:" + member, "198.51.100.2"},
		{"auth.signed_in", admin, "admin@example.com", "-", "user:" + admin, "203.0.113.5"},
	}
	if len(got) != len(want) {
		t.Fatalf("entries %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	var details map[string]any
	if err := json.Unmarshal(entries[1].Details, &details); err != nil || details["fingerprint"] != "select secret from t" ||
		details["rows"] != 3.0 || details["statement_type"] != "read" || details["sql"] != nil {
		t.Errorf("query details %s", entries[1].Details)
	}
	if entries[2].Actor.APIKeyID != "k-1" || entries[1].Actor.SessionID != "s-1" {
		t.Errorf("how the actor came in: %+v, %+v", entries[2].Actor, entries[1].Actor)
	}
	type reflected projections.AuditEntry // the same fields, without the hand-written encoding
	for _, e := range entries {
		if want, err := json.Marshal(reflected(e)); err != nil || string(e.AppendJSON(nil)) != string(want) {
			t.Errorf("AppendJSON writes\n%s\nwhere json.Marshal writes\n%s", e.AppendJSON(nil), want)
		}
	}

	// The platform's chain: the registration (no hash shown) and the failed sign-in, whose actor is
	// nobody known.
	platform, _, err := views.Audit(ctx, projections.AuditFilter{Chain: eventstore.PlatformChain, Limit: 10})
	if err != nil || len(platform) != 2 || platform[0].Action != "auth.sign_in_failed" || platform[0].Actor.ID != nil ||
		platform[0].Target.ID != member || platform[1].Action != "user.registered" || string(platform[1].Details) == "" {
		t.Fatalf("platform entries %+v, %v", platform, err)
	}
	if json.Valid(platform[1].Details) && string(platform[1].Details) != `{"email":"admin@example.com","name":"Ada","user_id":"`+admin+`","verified":false}` {
		t.Errorf("registration details %s", platform[1].Details)
	}

	// Filters: an action prefix, an actor, a target, a period; pages newest first.
	for name, tc := range map[string]struct {
		f    projections.AuditFilter
		want []string
	}{
		"prefix":        {projections.AuditFilter{Chain: tenant, Action: "member."}, []string{"member.role_changed"}},
		"exact":         {projections.AuditFilter{Chain: tenant, Action: "query.executed"}, []string{"query.executed"}},
		"actor":         {projections.AuditFilter{Chain: tenant, ActorID: admin}, []string{"query.executed", "member.role_changed", "auth.signed_in"}},
		"target":        {projections.AuditFilter{Chain: tenant, TargetID: db}, []string{"database.stopped"}},
		"period":        {projections.AuditFilter{Chain: tenant, From: t0.Add(3 * time.Second), To: t0.Add(5 * time.Second)}, []string{"query.executed", "member.role_changed"}},
		"all tenants":   {projections.AuditFilter{Action: "auth."}, []string{"auth.sign_in_failed", "auth.signed_in"}},
		"nothing there": {projections.AuditFilter{Chain: newID()}, nil},
	} {
		tc.f.Limit = 10
		entries, _, err := views.Audit(ctx, tc.f)
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action)
		}
		if err != nil || len(actions) != len(tc.want) || (len(actions) > 0 && actions[0] != tc.want[0]) || (len(actions) > 1 && actions[len(actions)-1] != tc.want[len(tc.want)-1]) {
			t.Errorf("%s: %v, %v; want %v", name, actions, err, tc.want)
		}
	}
	var paged []string
	cursor := ""
	for {
		page, next, err := views.Audit(ctx, projections.AuditFilter{Chain: tenant, Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			paged = append(paged, e.Action)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(paged) != 4 || paged[0] != "database.stopped" || paged[3] != "auth.signed_in" {
		t.Errorf("paged %v", paged)
	}
	if _, _, err := views.Audit(ctx, projections.AuditFilter{Chain: tenant, Limit: 3, Cursor: "bogus"}); err != projections.ErrBadAuditCursor {
		t.Errorf("a bad cursor: %v", err)
	}
	if ranges, err := views.AuditRanges(ctx, tenant, time.Time{}, time.Time{}); err != nil || len(ranges) != 1 || ranges[0].First != 1 || ranges[0].Last != 5 {
		t.Errorf("ranges %+v, %v", ranges, err)
	}
	checkReplay(t, f, r, projections.AuditLog{}, map[string]string{"audit_log": "position", "audit_log_emails": "user_id"})
}
