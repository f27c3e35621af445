package main

// End-to-end tests of the members' lifecycle (issue 12, "Members"): the paged member list and
// what a member holds, dry runs, sub-quotas, deactivation and reactivation, and the super admin's
// overrides.

import (
	"slices"
	"testing"
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
