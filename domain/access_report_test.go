package domain

import (
	"errors"
	"testing"
	"time"
)

func TestDatabaseAccessFollowsTheRoleRules(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	members := []AccessMember{
		{UserID: "a", Role: RoleTenantAdmin},
		{UserID: "d", Role: RoleDeveloper},
		{UserID: "v", Role: RoleViewer, SuperAdmin: true},
		{UserID: "x", Role: "", SuperAdmin: true}, // deactivated: a super admin flag gives nothing
	}
	keys := []AccessKey{
		{KeyID: "k1", UserID: "d", ExpiresAt: &future},
		{KeyID: "k2", UserID: "d", ExpiresAt: &past},
		{KeyID: "k3", UserID: "d", Revoked: true},
		{KeyID: "k4", UserID: "x"},
	}
	got := DatabaseAccess(StateStopped, "d", members, keys, now)
	want := []AccessGrant{
		{UserID: "a", Path: AccessTenantRole, Role: RoleTenantAdmin},
		{UserID: "d", Path: AccessAPIKey, KeyID: "k1", Role: RoleDeveloper, Until: &future},
		{UserID: "d", Path: AccessOwner, Role: RoleDeveloper},
		{UserID: "d", Path: AccessTenantRole, Role: RoleDeveloper},
		{UserID: "v", Path: AccessTenantRole, Role: RoleSuperAdmin},
	}
	if len(got) != len(want) {
		t.Fatalf("grants = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].UserID != want[i].UserID || got[i].Path != want[i].Path || got[i].KeyID != want[i].KeyID || got[i].Role != want[i].Role ||
			(got[i].Until == nil) != (want[i].Until == nil) {
			t.Errorf("grant %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if !got[2].ReadWritePassword() || got[3].ReadWritePassword() || !got[0].ReadWritePassword() || got[4].Account() != AccountReadWrite {
		t.Errorf("read-write password or account: %+v", got)
	}
	for _, s := range []DatabaseState{StateDeleted, StateFailed, StatePurged} {
		if g := DatabaseAccess(s, "d", members, keys, now); len(g) != 0 {
			t.Errorf("%s: %+v, want nobody", s, g)
		}
	}
}

func TestNewAccessReportQuery(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	id := "3f1c9a52-8d5e-4c1e-9a7b-2f4d6e8a0b1c"
	p := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	q, err := NewAccessReportQuery(id, nil, nil, nil, now)
	if err != nil || q.Review || !q.At.Equal(now) {
		t.Errorf("default = %+v, %v; want at now", q, err)
	}
	q, err = NewAccessReportQuery(id, nil, p(-90*24*time.Hour), nil, now)
	if err != nil || !q.Review || !q.To.Equal(now) {
		t.Errorf("from only = %+v, %v; want a review up to now", q, err)
	}
	for name, c := range map[string]struct {
		id           string
		at, from, to *time.Time
		fields       []string
	}{
		"no database":         {"", nil, nil, nil, []string{"database_id"}},
		"malformed database":  {"nope", p(-time.Hour), nil, nil, []string{"database_id"}},
		"at and from":         {id, p(-time.Hour), p(-2 * time.Hour), nil, []string{"at"}},
		"to without from":     {id, nil, nil, p(-time.Hour), []string{"from"}},
		"from after to":       {id, nil, p(-time.Hour), p(-2 * time.Hour), []string{"to"}},
		"from equal to":       {id, nil, p(-time.Hour), p(-time.Hour), []string{"to"}},
		"over the limit":      {id, nil, p(-400 * 24 * time.Hour), nil, []string{"to"}},
		"at in the future":    {id, p(time.Hour), nil, nil, []string{"at"}},
		"two wrongs together": {"", p(-time.Hour), p(-time.Hour), nil, []string{"at", "database_id"}},
	} {
		_, err := NewAccessReportQuery(c.id, c.at, c.from, c.to, now)
		var verr *ValidationError
		if !errors.As(err, &verr) || len(verr.Fields) != len(c.fields) {
			t.Errorf("%s: %v, want fields %v", name, err, c.fields)
			continue
		}
		for _, f := range c.fields {
			if verr.Fields[f] == "" {
				t.Errorf("%s: %v, want field %s", name, verr.Fields, f)
			}
		}
	}
}
