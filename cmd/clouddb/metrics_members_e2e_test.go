package main

import (
	"testing"
	"time"
)

// TestMetricsFormerMemberNoLongerCounts: once a developer has left the tenant, their failed
// sign-ins count on the platform's dashboard but no longer on the tenant's.
func TestMetricsFormerMemberNoLongerCounts(t *testing.T) {
	rootEmail, rootPassword := uniqueEmail("root"), strongPassword()
	env := startE2E(t, e2eOptions{BootstrapEmail: rootEmail, BootstrapPassword: rootPassword})
	admin := newTenantAdmin(env, "127.0.14.1", "Former")
	dev := invite(env, admin, "127.0.14.2", "developer")
	root := env.client("127.0.14.9")
	root = root.with(root.login(rootEmail, rootPassword, "").access)
	failures := func(c *e2eClient) float64 {
		return c.do("GET", "/metrics/dashboard?range=15m", nil).expect(t, 200, "").num("activity.login_failures")
	}
	failLogin := func() {
		env.client("127.0.14.3").do("POST", "/auth/login", map[string]any{"email": dev.email, "password": "not-" + dev.password}).expect(t, 401, "")
	}

	failLogin()
	waitUntil(t, 15*time.Second, "the member's failed sign-in counts in the tenant", func() bool { return failures(admin.c) == 1 })
	platformBefore := failures(root)

	dev.c.do("POST", "/me/leave", map[string]any{"resources": "archive"}).expect(t, 200, "")
	failLogin()
	waitUntil(t, 15*time.Second, "the platform counts the former member's failed sign-in", func() bool { return failures(root) == platformBefore+1 })
	if n := failures(admin.c); n != 1 {
		t.Errorf("the tenant's failed sign-ins after the developer left: %v, want 1 (theirs while a member)", n)
	}
}
