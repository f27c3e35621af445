package main

// End-to-end tests of the members' lifecycle (issue 12, "Members"): the paged member list and
// what a member holds, dry runs, sub-quotas, deactivation and reactivation, and the super admin's
// overrides.

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// memberIDs are the ids of a GET /users page.
func memberIDs(r *e2eResponse) []string {
	var ids []string
	for _, it := range r.items("items") {
		ids = append(ids, describe(it.(map[string]any)["id"]))
	}
	return ids
}

// GET /users pages by email with a cursor and filters; GET /users/{id}/resources lists what a
// member holds in this tenant only, and names nobody outside it.
func TestE2EMemberListAndResources(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	admin := newTenantAdmin(env, "127.0.0.1", "Listed Co")
	dev := invite(env, admin, "127.0.0.2", "developer")
	viewer := invite(env, admin, "127.0.0.3", "viewer")
	other := newTenantAdmin(env, "127.0.0.4", "Elsewhere Co")

	var paged []string
	path := "/users?limit=2"
	for pages := 0; ; pages++ {
		r := admin.c.do("GET", path, nil).expect(t, 200, "")
		if n := len(r.items("items")); n > 2 || pages > 3 {
			t.Fatalf("page %d has %d members: %s", pages, n, r.body)
		}
		paged = append(paged, memberIDs(r)...)
		next := r.str("next_cursor")
		if next == "" {
			if r.get("next_cursor") != nil {
				t.Errorf("last page: next_cursor = %v, want null", r.get("next_cursor"))
			}
			break
		}
		path = "/users?limit=2&cursor=" + next
	}
	all := memberIDs(admin.c.do("GET", "/users", nil).expect(t, 200, ""))
	if len(all) != 3 || !slices.Equal(paged, all) {
		t.Errorf("paged members %v, all at once %v: want the same 3", paged, all)
	}
	if got := memberIDs(admin.c.do("GET", "/users?role=developer", nil).expect(t, 200, "")); !slices.Equal(got, []string{dev.userID}) {
		t.Errorf("?role=developer = %v, want the developer", got)
	}
	if got := memberIDs(admin.c.do("GET", "/users?active_since=2999-01-01T00:00:00Z", nil).expect(t, 200, "")); len(got) != 0 {
		t.Errorf("?active_since in the future = %v, want none", got)
	}
	for _, bad := range []string{"cursor=nonsense", "limit=501", "limit=0", "role=owner", "status=asleep", "active_since=yesterday"} {
		admin.c.do("GET", "/users?"+bad, nil).expect(t, 400, "validation_failed")
	}

	// What the developer holds: a database, an API key for this tenant, a live session.
	db := createDatabase(t, dev.c, map[string]any{"name": "devdb"})
	key := dev.c.do("POST", "/me/api-keys", map[string]any{"name": "ci"}).expect(t, 201, "")
	env.secret(key.str("key"), "API key")
	admin.c.do("POST", "/invitations", map[string]any{"emails": []string{uniqueEmail("pending")}, "role": "viewer"}).expect(t, 201, "")

	r := admin.c.do("GET", "/users/"+dev.userID+"/resources", nil).expect(t, 200, "")
	if r.str("user_id") != dev.userID || len(r.items("databases")) != 1 || r.str("databases.0.id") != db.str("id") ||
		r.str("databases.0.state") != "running" || r.num("storage_bytes") < 0 {
		t.Errorf("the developer's resources: %s", r.body)
	}
	if len(r.items("api_keys")) != 1 || r.str("api_keys.0.id") != key.str("id") || len(r.items("sessions")) != 1 || len(r.items("invitations")) != 0 {
		t.Errorf("the developer's keys, sessions and invitations: %s", r.body)
	}
	if r := admin.c.do("GET", "/users/"+admin.userID+"/resources", nil).expect(t, 200, ""); len(r.items("invitations")) != 1 ||
		len(r.items("databases")) != 0 || len(r.items("api_keys")) != 0 {
		t.Errorf("the admin's resources: %s", r.body)
	}
	if r := admin.c.do("GET", "/users/"+viewer.userID+"/resources", nil).expect(t, 200, ""); len(r.items("sessions")) != 1 {
		t.Errorf("the viewer's resources: %s", r.body)
	}
	// Another tenant's member, an unknown id and a malformed one are not found; a member cannot look.
	admin.c.do("GET", "/users/"+other.userID+"/resources", nil).expect(t, 404, "not_found")
	admin.c.do("GET", "/users/00000000-0000-4000-8000-000000000000/resources", nil).expect(t, 404, "not_found")
	admin.c.do("GET", "/users/nope/resources", nil).expect(t, 404, "not_found")
	other.c.do("GET", "/users/"+dev.userID+"/resources", nil).expect(t, 404, "not_found")
	dev.c.do("GET", "/users/"+dev.userID+"/resources", nil).expect(t, 403, "forbidden")
}

// overrideOf reads the override flag of the last event of a type in a tenant's stream.
func overrideOf(t *testing.T, env *e2eEnv, tenant, eventType string) bool {
	t.Helper()
	var payload string
	err := openEventsDB(t, env.dsn).QueryRow(`SELECT payload FROM events WHERE stream_id = ? AND event_type = ?
		ORDER BY stream_version DESC LIMIT 1`, "tenant-"+tenant, eventType).Scan(&payload)
	if err != nil {
		t.Fatalf("%s of tenant %s: %v", eventType, tenant, err)
	}
	return strings.Contains(payload, `"override":true`)
}

// A deactivation, over HTTP: bad requests, the dry run, the deactivation itself (sessions, keys,
// login, the databases handed over with their passwords changed on the server), the lists, the
// reactivation, the timer of a temporary one; and the super admin's reset and overrides.
func TestE2EDeactivation(t *testing.T) {
	rootEmail, rootPassword := uniqueEmail("root"), strongPassword()
	env, _ := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{BootstrapEmail: rootEmail, BootstrapPassword: rootPassword,
		Env: map[string]string{"CLOUDDB_HOUSEKEEPING_INTERVAL": "1s"}}})
	admin := newTenantAdmin(env, "127.0.0.1", "Lifecycle Co")
	dev := invite(env, admin, "127.0.0.2", "developer")
	heir := invite(env, admin, "127.0.0.3", "viewer")
	other := newTenantAdmin(env, "127.0.0.4", "Other Co")
	db := createDatabase(t, dev.c, map[string]any{"name": "handed"})
	oldConn := connect(t, db)
	key := dev.c.do("POST", "/me/api-keys", map[string]any{"name": "ci"}).expect(t, 201, "").str("key")
	env.secret(key, "API key")
	byKey := env.client("127.0.0.2").with(key)
	byKey.do("GET", "/databases", nil).expect(t, 200, "")

	transfer := map[string]any{"reason": "departure", "type": "permanent", "resources": "transfer", "transfer_to": heir.userID}
	path := "/users/" + dev.userID + "/deactivate"
	admin.c.do("POST", "/users/"+admin.userID+"/deactivate", transfer).expect(t, 409, "conflict")
	admin.c.do("POST", "/users/00000000-0000-4000-8000-000000000000/deactivate", transfer).expect(t, 404, "not_found")
	admin.c.do("POST", "/users/"+other.userID+"/deactivate", transfer).expect(t, 404, "not_found")
	for field, body := range map[string]map[string]any{
		"transfer_to":   {"reason": "departure", "type": "permanent", "resources": "transfer", "transfer_to": other.userID},
		"reactivate_at": {"reason": "departure", "type": "temporary", "resources": "archive", "reactivate_at": "2001-01-01T00:00:00Z"},
		"type":          {"reason": "departure", "type": "forever", "resources": "archive"},
	} {
		r := admin.c.do("POST", path, body).expect(t, 400, "validation_failed")
		if r.str("error.details.fields."+field) == "" {
			t.Errorf("%v: details = %v, want fields.%s", body, r.get("error.details"), field)
		}
	}
	dev.c.do("POST", "/users/"+heir.userID+"/deactivate", transfer).expect(t, 403, "forbidden")

	dry := admin.c.do("POST", path+"?dry_run=true", transfer).expect(t, 200, "")
	if dry.num("impact.sessions_ended") != 1 || dry.num("impact.api_keys_revoked") != 1 || dry.str("impact.databases.0.action") != "transfer" ||
		dry.num("impact.quota.member_databases.after") != 0 || dry.num("impact.quota.transfer_to_databases.after") != 1 {
		t.Errorf("dry run = %s", dry.body)
	}
	dev.c.do("GET", "/me", nil).expect(t, 200, "")

	r := admin.c.do("POST", path, transfer).expect(t, 200, "")
	if r.str("status") != "deactivated" || r.str("deactivation.type") != "permanent" || r.str("deactivation.grace_until") == "" {
		t.Errorf("deactivate = %s", r.body)
	}
	dev.c.do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	byKey.do("GET", "/databases", nil).expect(t, 401, "unauthenticated")
	env.client("127.0.0.2").do("POST", "/auth/login", map[string]any{"email": dev.email, "password": dev.password, "tenant": admin.tenantID}).
		expect(t, 400, "validation_failed")
	// Read your writes: the lists show it at once.
	if got := memberIDs(admin.c.do("GET", "/users?status=deactivated", nil).expect(t, 200, "")); !slices.Equal(got, []string{dev.userID}) {
		t.Errorf("?status=deactivated = %v, want the developer", got)
	}
	if r := admin.c.do("GET", "/users/"+heir.userID+"/resources", nil).expect(t, 200, ""); r.str("databases.0.id") != db.str("id") {
		t.Errorf("the heir's resources: %s", r.body)
	}
	if err := oldConn.Ping(); err == nil {
		if _, err := oldConn.Exec("CREATE TABLE after_deactivation (id INT)"); err == nil {
			t.Error("the deactivated owner's password still writes to the database")
		}
	}
	oldConn.Close()
	if _, err := openWith(db, db.str("connection.password")); err == nil {
		t.Error("the deactivated owner's password still connects")
	}
	admin.c.do("POST", "/users/"+heir.userID+"/reactivate", nil).expect(t, 409, "conflict")

	admin.c.do("POST", "/users/"+dev.userID+"/reactivate", nil).expect(t, 200, "")
	s := env.client("127.0.0.2").login(dev.email, dev.password, admin.tenantID)
	if s.resp.str("tenant.role") != "developer" {
		t.Errorf("reactivated: login role %q", s.resp.str("tenant.role"))
	}

	// The super admin: a forced password reset, a role change and a reactivation as overrides.
	root := env.client("127.0.0.9")
	root = root.with(root.login(rootEmail, rootPassword, "").access)
	r = root.do("POST", "/admin/users/"+dev.userID+"/force-password-reset", nil).expect(t, 200, "")
	if r.num("sessions_ended") != 1 {
		t.Errorf("force-password-reset = %s", r.body)
	}
	env.client("127.0.0.2").with(s.access).do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	env.client("127.0.0.2").do("POST", "/auth/login", map[string]any{"email": dev.email, "password": dev.password}).expect(t, 401, "invalid_credentials")
	mail := env.waitMail(dev.email, "reset")
	fresh := strongPassword()
	env.client("127.0.0.2").do("POST", "/auth/password/reset", map[string]any{"token": mail.token, "new_password": fresh}).expect(t, 204, "")
	env.client("127.0.0.2").login(dev.email, fresh, admin.tenantID)
	admin.c.do("POST", "/admin/users/"+dev.userID+"/force-password-reset", nil).expect(t, 403, "forbidden")

	root.do("PUT", "/admin/tenants/"+admin.tenantID+"/users/"+dev.userID+"/role", map[string]any{"role": "viewer"}).expect(t, 200, "")
	if !overrideOf(t, env, admin.tenantID, "tenant.member_role_changed.v2") {
		t.Error("the super admin's role change is not recorded as an override")
	}
	admin.c.do("PUT", "/users/"+dev.userID+"/role", map[string]any{"role": "developer"}).expect(t, 200, "")
	if overrideOf(t, env, admin.tenantID, "tenant.member_role_changed.v2") {
		t.Error("the tenant admin's role change is recorded as an override")
	}
	admin.c.do("POST", path, map[string]any{"reason": "security", "type": "permanent", "resources": "archive"}).expect(t, 200, "")
	root.do("POST", "/admin/tenants/"+admin.tenantID+"/users/"+dev.userID+"/reactivate", nil).expect(t, 200, "")
	if !overrideOf(t, env, admin.tenantID, "tenant.member_reactivated.v1") {
		t.Error("the super admin's reactivation is not recorded as an override")
	}
	root.do("POST", "/admin/tenants/"+other.tenantID+"/users/"+dev.userID+"/reactivate", nil).expect(t, 404, "not_found")

	// A temporary deactivation ends by itself at reactivate_at (CLOUDDB_HOUSEKEEPING_INTERVAL: 1s).
	back := env.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	admin.c.do("POST", "/users/"+heir.userID+"/deactivate", map[string]any{"reason": "inactivity", "type": "temporary",
		"reactivate_at": back, "resources": "archive"}).expect(t, 200, "")
	env.clock.Advance(time.Hour + time.Second)
	mgmt := openEventsDB(t, env.dsn)
	waitUntil(t, 30*time.Second, "the timer reactivates the viewer", func() bool {
		var status string
		if err := mgmt.QueryRow(`SELECT status FROM memberships WHERE tenant_id = ? AND user_id = ?`, admin.tenantID, heir.userID).Scan(&status); err != nil {
			t.Fatal(err)
		}
		return status == "active"
	})
}

// The last active tenant admin can never be deactivated: two admins deactivating each other at
// the same moment leave exactly one.
func TestE2EAdminsDeactivatingEachOther(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	a := newTenantAdmin(env, "127.0.0.1", "Two Heads Co")
	b := invite(env, a, "127.0.0.2", "tenant_admin")
	body := map[string]any{"reason": "other", "type": "permanent", "resources": "archive"}
	var wg sync.WaitGroup
	start := make(chan struct{})
	results := make([]*e2eResponse, 2)
	for i, pair := range [][2]dbMember{{a, b}, {b, a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = pair[0].c.do("POST", "/users/"+pair[1].userID+"/deactivate", body)
		}()
	}
	close(start)
	wg.Wait()
	statuses := []int{results[0].status, results[1].status}
	slices.Sort(statuses)
	if !slices.Equal(statuses, []int{200, 409}) {
		t.Fatalf("statuses %v, want one 200 and one 409: %s / %s", statuses, results[0].body, results[1].body)
	}
	for _, r := range results {
		if r.status == 409 && r.str("error.code") != "last_admin" {
			t.Errorf("the loser got %s, want last_admin", r.body)
		}
	}
	winner := a
	if results[1].status == 200 {
		winner = b
	}
	if got := memberIDs(winner.c.do("GET", "/users?role=tenant_admin&status=active", nil).expect(t, 200, "")); !slices.Equal(got, []string{winner.userID}) {
		t.Errorf("active admins = %v, want the winner %s", got, winner.userID)
	}
}

// Sub-quotas on storage and connections: their sum stays within the plan, and a member at their
// storage sub-quota cannot write to their databases (the query API's check and the account's
// grants).
func TestE2ESubQuotas(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	admin := newTenantAdmin(env, "127.0.0.1", "Shares Co")
	dev := invite(env, admin, "127.0.0.2", "developer")
	other := invite(env, admin, "127.0.0.3", "developer")
	db := createDatabase(t, dev.c, map[string]any{"name": "shared"})
	query(dev.c, db.str("id"), "CREATE TABLE t (id INT)", nil).expect(t, 200, "")

	r := admin.c.do("PUT", "/users/"+dev.userID+"/quota", map[string]any{"max_storage_bytes": 0, "max_connections": 6}).expect(t, 200, "")
	if r.num("quota.max_storage_bytes") != 0 || r.num("quota.max_connections") != 6 || r.get("quota.max_databases") != nil {
		t.Errorf("PUT quota = %s", r.body)
	}
	r = admin.c.do("PUT", "/users/"+other.userID+"/quota", map[string]any{"max_connections": 5}).expect(t, 403, "quota_exceeded")
	if r.str("error.details.resource") != "connections" || r.num("error.details.used") != 11 || r.num("error.details.limit") != 10 {
		t.Errorf("connections past the plan: %s", r.body)
	}
	admin.c.do("PUT", "/users/"+other.userID+"/quota", map[string]any{"max_connections": 0}).expect(t, 400, "validation_failed")
	admin.c.do("PUT", "/users/"+other.userID+"/quota", map[string]any{"max_storage_bytes": 2 << 30}).expect(t, 403, "quota_exceeded")
	admin.c.do("PUT", "/users/00000000-0000-4000-8000-000000000000/quota", map[string]any{"max_connections": 1}).expect(t, 404, "not_found")

	var quota map[string]any
	for _, it := range admin.c.do("GET", "/users", nil).expect(t, 200, "").items("items") {
		if m := it.(map[string]any); m["id"] == dev.userID {
			quota, _ = m["quota"].(map[string]any)
		}
	}
	if quota["max_connections"] != 6.0 || quota["max_storage_bytes"] != 0.0 {
		t.Errorf("GET /users quota of the developer = %v", quota)
	}
	r = query(dev.c, db.str("id"), "INSERT INTO t VALUES (1)", nil).expect(t, 403, "quota_exceeded")
	if r.str("error.details.resource") != "user_storage" || r.num("error.details.limit") != 0 {
		t.Errorf("a write over the owner's storage sub-quota names the tenant's storage: %s", r.body)
	}
	query(dev.c, db.str("id"), "SELECT COUNT(*) FROM t", nil).expect(t, 200, "")
	if r := dev.c.do("GET", "/databases/"+db.str("id"), nil).expect(t, 200, ""); r.get("writes_restricted") != true {
		t.Errorf("the database at its owner's storage sub-quota: %s", r.body)
	}
	dev.c.do("POST", "/databases", map[string]any{"name": "more"}).expect(t, 403, "quota_exceeded")

	admin.c.do("PUT", "/users/"+dev.userID+"/quota", map[string]any{}).expect(t, 200, "")
	query(dev.c, db.str("id"), "INSERT INTO t VALUES (1)", nil).expect(t, 200, "")
}

// A member leaves a tenant of their own accord: their session there ends, their databases go as
// they say, the membership closes at once (no admin can reverse it); the last admin cannot leave,
// also when two admins leave at the same moment.
func TestE2ELeave(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	admin := newTenantAdmin(env, "127.0.0.1", "Door Co")
	second := invite(env, admin, "127.0.0.2", "tenant_admin")
	dev := invite(env, admin, "127.0.0.3", "developer")
	db := createDatabase(t, dev.c, map[string]any{"name": "kept"})

	dev.c.do("POST", "/me/leave", map[string]any{"resources": "transfer"}).expect(t, 400, "validation_failed")
	dev.c.do("POST", "/me/leave", map[string]any{"resources": "transfer", "transfer_to": dev.userID}).expect(t, 400, "validation_failed")
	transfer := map[string]any{"resources": "transfer", "transfer_to": admin.userID, "note": "new job"}
	dry := dev.c.do("POST", "/me/leave?dry_run=true", transfer).expect(t, 200, "")
	if dry.str("impact.databases.0.action") != "transfer" || dry.num("impact.sessions_ended") != 1 {
		t.Errorf("dry run = %s", dry.body)
	}
	dev.c.do("GET", "/me", nil).expect(t, 200, "")
	if r := dev.c.do("POST", "/me/leave", transfer).expect(t, 200, ""); r.str("impact.databases.0.to") != admin.userID {
		t.Errorf("leave = %s", r.body)
	}
	dev.c.do("GET", "/me", nil).expect(t, 401, "unauthenticated")
	env.client("127.0.0.3").do("POST", "/auth/login", map[string]any{"email": dev.email, "password": dev.password, "tenant": admin.tenantID}).
		expect(t, 400, "validation_failed")
	if got := memberIDs(admin.c.do("GET", "/users", nil).expect(t, 200, "")); slices.Contains(got, dev.userID) {
		t.Errorf("members after the developer left: %v", got)
	}
	admin.c.do("POST", "/users/"+dev.userID+"/reactivate", nil).expect(t, 404, "not_found")
	if r := admin.c.do("GET", "/databases/"+db.str("id"), nil).expect(t, 200, ""); r.str("owner_id") != admin.userID {
		t.Errorf("the leaver's database: %s", r.body)
	}

	results := make([]*e2eResponse, 2)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, m := range []dbMember{admin, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = m.c.do("POST", "/me/leave", map[string]any{"resources": "archive"})
		}()
	}
	close(start)
	wg.Wait()
	statuses := []int{results[0].status, results[1].status}
	slices.Sort(statuses)
	if !slices.Equal(statuses, []int{200, 409}) {
		t.Fatalf("two admins leaving at once: %v, want one 200 and one 409: %s / %s", statuses, results[0].body, results[1].body)
	}
	for _, r := range results {
		if r.status == 409 && r.str("error.code") != "last_admin" {
			t.Errorf("the admin who stayed got %s, want last_admin", r.body)
		}
	}
}
