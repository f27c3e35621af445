package main

import (
	"fmt"
	"sync"
	"testing"
)

// One person may create CLOUDDB_FREE_TENANTS_PER_USER free tenants (issue 10 item 5), even when
// they send the creates all at once; GET /me/tenants shows where they stand.
func TestE2EFreeTenantsPerUser(t *testing.T) {
	env := startE2E(t, e2eOptions{Env: map[string]string{"CLOUDDB_FREE_TENANTS_PER_USER": "2"}})
	c := env.client("127.0.0.1")
	email, password := uniqueEmail("founder"), strongPassword()
	c.signUp(email, "Fay", password)
	me := c.with(c.login(email, password, "").access)
	if r := me.do("GET", "/me/tenants", nil).expect(t, 200, ""); r.num("free_tenants.used") != 0 || r.num("free_tenants.limit") != 2 {
		t.Errorf("GET /me/tenants before = %s, want free_tenants 0 of 2", r.body)
	}
	responses := make([]*e2eResponse, 5)
	var wg sync.WaitGroup
	for i := range responses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			responses[i] = me.do("POST", "/tenants", map[string]any{"name": fmt.Sprint("Venture ", i)})
		}()
	}
	wg.Wait()
	created := 0
	for _, r := range responses {
		switch r.status {
		case 201:
			created++
		case 403:
			r.expect(t, 403, "quota_exceeded")
			if r.str("error.details.resource") != "free_tenants" || r.num("error.details.used") != 2 || r.num("error.details.limit") != 2 {
				t.Errorf("refusal details = %v, want free_tenants 2 of 2", r.get("error.details"))
			}
		default:
			t.Errorf("POST /tenants = %d %s", r.status, r.body)
		}
	}
	if created != 2 {
		t.Errorf("%d of 5 concurrent free tenants created, want 2", created)
	}
	r := me.do("GET", "/me/tenants", nil).expect(t, 200, "")
	if r.num("free_tenants.used") != 2 || r.num("free_tenants.limit") != 2 || len(r.items("items")) != 2 {
		t.Errorf("GET /me/tenants after = %s, want 2 tenants, free_tenants 2 of 2", r.body)
	}
}
