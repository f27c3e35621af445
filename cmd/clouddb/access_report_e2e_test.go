package main

// End-to-end test of GET /access-report (issue 12, "Access report as of any moment"): a database
// walked through role changes, API keys, a deactivation with transfer, a reactivation, a delete and
// restore, a stop, a super admin's override and a key's expiry, asked about at moments between
// them and over the whole period; and the bad requests.

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// accessAt renders who could reach a database at a moment: "who path role", sorted; names maps
// user ids to the test's names. It also returns the database's state then.
func accessAt(t *testing.T, c *e2eClient, db string, at time.Time, names map[string]string) ([]string, string) {
	t.Helper()
	r := c.do("GET", "/access-report?database_id="+db+"&at="+url.QueryEscape(at.UTC().Format(time.RFC3339Nano)), nil).expect(t, 200, "")
	var out []string
	for _, it := range r.items("items") {
		item := it.(map[string]any)
		out = append(out, names[describe(jsonPath(item, "user.id"))]+" "+describe(item["path"])+" "+describe(item["role"]))
	}
	slices.Sort(out)
	return out, r.str("database.state")
}

// accessChanges renders every change of access in a period, following the cursor:
// "change who path before>after cause".
func accessChanges(t *testing.T, c *e2eClient, db string, from, to time.Time, names map[string]string) []string {
	t.Helper()
	var out []string
	path := "/access-report?limit=4&database_id=" + db + "&from=" + url.QueryEscape(from.UTC().Format(time.RFC3339Nano)) +
		"&to=" + url.QueryEscape(to.UTC().Format(time.RFC3339Nano))
	for pages := 0; ; pages++ {
		r := c.do("GET", path, nil).expect(t, 200, "")
		if len(r.items("items")) > 4 || pages > 30 {
			t.Fatalf("page %d: %s", pages, r.body)
		}
		for _, it := range r.items("items") {
			item := it.(map[string]any)
			s := describe(item["change"]) + " " + names[describe(jsonPath(item, "user.id"))] + " " + describe(item["path"]) + " " +
				describe(item["role_before"]) + ">" + describe(item["role_after"]) + " " + describe(item["cause"])
			if jsonPath(item, "event.override") == true {
				s += " override"
			}
			out = append(out, s)
		}
		next := r.str("next_cursor")
		if next == "" {
			return out
		}
		path = "/access-report?limit=4&database_id=" + db + "&from=" + url.QueryEscape(from.UTC().Format(time.RFC3339Nano)) +
			"&to=" + url.QueryEscape(to.UTC().Format(time.RFC3339Nano)) + "&cursor=" + next
	}
}

func TestE2EAccessReport(t *testing.T) {
	rootEmail, rootPassword := uniqueEmail("root"), strongPassword()
	env, _ := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{BootstrapEmail: rootEmail, BootstrapPassword: rootPassword}})
	admin := newTenantAdmin(env, "127.0.0.1", "Reviewed Co")
	dev := invite(env, admin, "127.0.0.2", "developer")
	heir := invite(env, admin, "127.0.0.3", "viewer")
	other := newTenantAdmin(env, "127.0.0.4", "Elsewhere Co")
	otherDB := createDatabase(t, other.c, map[string]any{"name": "theirs"}).str("id")
	root := env.client("127.0.0.9")
	root = root.with(root.login(rootEmail, rootPassword, "").access)
	names := map[string]string{admin.userID: "admin", dev.userID: "dev", heir.userID: "heir"}
	relogin := func(m *dbMember, ip string) {
		m.c = env.client(ip).with(env.client(ip).login(m.email, m.password, m.tenantID).access)
	}

	start := env.clock.Now()
	db := createDatabase(t, dev.c, map[string]any{"name": "audited"}).str("id")
	m1 := env.clock.Now()
	key := dev.c.do("POST", "/me/api-keys", map[string]any{"name": "ci"}).expect(t, 201, "")
	env.secret(key.str("key"), "API key")
	m2 := env.clock.Now()
	admin.c.do("PUT", "/users/"+dev.userID+"/role", map[string]any{"role": "viewer"}).expect(t, 200, "")
	m3 := env.clock.Now()
	admin.c.do("PUT", "/users/"+dev.userID+"/role", map[string]any{"role": "developer"}).expect(t, 200, "")
	m4 := env.clock.Now()
	// A deactivation that hands the database over: the heir (a viewer) owns it.
	admin.c.do("POST", "/users/"+dev.userID+"/deactivate", map[string]any{"reason": "other", "type": "temporary",
		"reactivate_at": env.clock.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339), "resources": "transfer", "transfer_to": heir.userID}).
		expect(t, 200, "")
	m5 := env.clock.Now()
	admin.c.do("POST", "/users/"+dev.userID+"/reactivate", nil).expect(t, 200, "")
	m6 := env.clock.Now()
	admin.c.do("DELETE", "/databases/"+db, map[string]any{"confirm_name": "audited"}).expect(t, 200, "")
	m7 := env.clock.Now()
	admin.c.do("POST", "/databases/"+db+"/restore", nil).expect(t, 200, "")
	m8 := env.clock.Now()
	admin.c.do("POST", "/databases/"+db+"/stop", nil).expect(t, 200, "")
	m9 := env.clock.Now()
	root.do("PUT", "/admin/tenants/"+admin.tenantID+"/users/"+heir.userID+"/role", map[string]any{"role": "developer"}).expect(t, 200, "")
	m10 := env.clock.Now()
	relogin(&dev, "127.0.0.2")
	expiring := dev.c.do("POST", "/me/api-keys", map[string]any{"name": "short",
		"expires_at": env.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)}).expect(t, 201, "")
	env.secret(expiring.str("key"), "API key")
	m11 := env.clock.Now()
	env.clock.Advance(time.Hour + time.Minute) // past the key's expiry (and the sessions' idle timeout)
	relogin(&admin, "127.0.0.1")
	relogin(&dev, "127.0.0.2")
	root = env.client("127.0.0.9")
	root = root.with(root.login(rootEmail, rootPassword, "").access)
	m12 := env.clock.Now()

	everyone := []string{"admin tenant_role tenant_admin", "dev owner developer", "dev tenant_role developer", "heir tenant_role viewer"}
	afterTransfer := []string{"admin tenant_role tenant_admin", "dev tenant_role developer", "heir owner viewer", "heir tenant_role viewer"}
	for _, tc := range []struct {
		name  string
		at    time.Time
		want  []string
		state string
	}{
		{"before the database", start, nil, ""},
		{"created", m1, everyone, "running"},
		{"with a key", m2, append(slices.Clone(everyone), "dev api_key developer"), "running"},
		{"demoted", m3, []string{"admin tenant_role tenant_admin", "dev api_key viewer", "dev owner viewer", "dev tenant_role viewer", "heir tenant_role viewer"}, "running"},
		{"promoted again", m4, append(slices.Clone(everyone), "dev api_key developer"), "running"},
		{"deactivated with transfer", m5, []string{"admin tenant_role tenant_admin", "heir owner viewer", "heir tenant_role viewer"}, "running"},
		{"reactivated: the role, not the key nor the database", m6, afterTransfer, "running"},
		{"deleted", m7, nil, "deleted"},
		{"restored", m8, afterTransfer, "running"},
		{"stopped: still reachable", m9, afterTransfer, "stopped"},
		{"a super admin's override", m10, []string{"admin tenant_role tenant_admin", "dev tenant_role developer", "heir owner developer", "heir tenant_role developer"}, "stopped"},
		{"with a short key", m11, []string{"admin tenant_role tenant_admin", "dev api_key developer", "dev tenant_role developer", "heir owner developer", "heir tenant_role developer"}, "stopped"},
		{"the key expired", m12, []string{"admin tenant_role tenant_admin", "dev tenant_role developer", "heir owner developer", "heir tenant_role developer"}, "stopped"},
	} {
		got, state := accessAt(t, admin.c, db, tc.at, names)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) || state != tc.state {
			t.Errorf("%s: %v in state %q\nwant %v in state %q", tc.name, got, state, tc.want, tc.state)
		}
	}

	review := accessChanges(t, admin.c, db, start, m12, names)
	for _, want := range []string{
		"granted dev owner <nil>>developer event", "changed dev api_key developer>viewer event",
		"revoked dev api_key developer><nil> event", "granted heir owner <nil>>viewer event", "revoked dev owner developer><nil> event",
		"revoked admin tenant_role tenant_admin><nil> event", "changed heir owner viewer>developer event override",
		"revoked dev api_key developer><nil> api_key_expired",
	} {
		if !slices.Contains(review, want) {
			t.Errorf("the review lacks %q:\n%s", want, strings.Join(review, "\n"))
		}
	}
	if n := len(accessChanges(t, admin.c, db, m6, m7, names)); n != 4 {
		t.Errorf("the delete's changes: %d, want 4 (admin, dev, and the heir's two paths)", n)
	}

	// A super admin asks about any tenant; a rebuild from zero answers the same.
	if got, _ := accessAt(t, root, db, m1, names); !slices.Equal(got, everyone) {
		t.Errorf("the super admin's report at m1: %v", got)
	}
	root.do("POST", "/admin/projections/access_report/rebuild", nil).expect(t, 202, "")
	waitUntil(t, 30*time.Second, "the rebuilt report answers the same", func() bool {
		return slices.Equal(accessChanges(t, admin.c, db, start, m12, names), review)
	})

	// Bad requests.
	admin.c.do("GET", "/access-report?database_id="+otherDB, nil).expect(t, 404, "not_found")
	admin.c.do("GET", "/access-report?database_id=00000000-0000-4000-8000-000000000000", nil).expect(t, 404, "not_found")
	dev.c.do("GET", "/access-report?database_id="+db, nil).expect(t, 403, "forbidden")
	future := env.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for field, query := range map[string]string{
		"database_id": "at=2026-01-01T00:00:00Z",
		"at":          "database_id=" + db + "&at=yesterday",
		"from":        "database_id=" + db + "&from=2026-13-01",
		"to":          "database_id=" + db + "&from=2026-06-01T00:00:00Z&to=2026-05-01T00:00:00Z",
	} {
		r := admin.c.do("GET", "/access-report?"+query, nil).expect(t, 400, "validation_failed")
		if r.str("error.details.fields."+field) == "" {
			t.Errorf("%s: details = %v, want fields.%s", query, r.get("error.details"), field)
		}
	}
	for field, query := range map[string]string{
		"to": "database_id=" + db + "&from=2024-01-01T00:00:00Z&to=2025-06-01T00:00:00Z",
		"at": "database_id=" + db + "&at=" + url.QueryEscape(future),
	} {
		if r := admin.c.do("GET", "/access-report?"+query, nil).expect(t, 400, "validation_failed"); r.str("error.details.fields."+field) == "" {
			t.Errorf("%s: details = %v, want fields.%s", query, r.get("error.details"), field)
		}
	}
	if r := admin.c.do("GET", "/access-report?database_id="+db+"&at=2026-01-01T00:00:00Z&from=2025-12-01T00:00:00Z", nil).
		expect(t, 400, "validation_failed"); r.str("error.details.fields.at") == "" {
		t.Errorf("at with from: %v, want fields.at", r.get("error.details"))
	}
	admin.c.do("GET", "/access-report?database_id="+db+"&from=2026-01-01T00:00:00Z&cursor=nonsense", nil).expect(t, 400, "validation_failed")
	if r := admin.c.do("GET", "/access-report?database_id="+db+"&limit=10", nil).expect(t, 400, "validation_failed"); r.str("error.details.fields.limit") == "" {
		t.Errorf("limit without from: %v, want fields.limit", r.get("error.details"))
	}
}
