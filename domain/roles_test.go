package domain_test

import (
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

var allRoles = []domain.Role{"", "owner", domain.RoleViewer, domain.RoleDeveloper, domain.RoleTenantAdmin, domain.RoleSuperAdmin}

func TestRoleLevel(t *testing.T) {
	tests := []struct {
		role domain.Role
		want int
	}{
		{domain.RoleViewer, 1},
		{domain.RoleDeveloper, 2},
		{domain.RoleTenantAdmin, 3},
		{domain.RoleSuperAdmin, 4},
		{"", 0},
		{"owner", 0},
		{"Viewer", 0},
		{"admin", 0},
	}
	for _, tt := range tests {
		if got := tt.role.Level(); got != tt.want {
			t.Errorf("Role(%q).Level() = %d, want %d", tt.role, got, tt.want)
		}
	}
}

func TestTenantRolesLowestFirst(t *testing.T) {
	want := []domain.Role{domain.RoleViewer, domain.RoleDeveloper, domain.RoleTenantAdmin}
	if len(domain.TenantRoles) != len(want) {
		t.Fatalf("TenantRoles = %v, want %v", domain.TenantRoles, want)
	}
	for i, r := range domain.TenantRoles {
		if r != want[i] {
			t.Errorf("TenantRoles[%d] = %q, want %q", i, r, want[i])
		}
		if i > 0 && r.Level() <= domain.TenantRoles[i-1].Level() {
			t.Errorf("TenantRoles not in rising level at %d: %v", i, domain.TenantRoles)
		}
	}
}

func TestRoleAtLeast(t *testing.T) {
	// want[r] is the set of minimum roles r satisfies.
	want := map[domain.Role][]domain.Role{
		"":                     nil,
		"owner":                nil,
		domain.RoleViewer:      {"", "owner", domain.RoleViewer},
		domain.RoleDeveloper:   {"", "owner", domain.RoleViewer, domain.RoleDeveloper},
		domain.RoleTenantAdmin: {"", "owner", domain.RoleViewer, domain.RoleDeveloper, domain.RoleTenantAdmin},
		domain.RoleSuperAdmin:  {"", "owner", domain.RoleViewer, domain.RoleDeveloper, domain.RoleTenantAdmin, domain.RoleSuperAdmin},
	}
	for _, r := range allRoles {
		ok := map[domain.Role]bool{}
		for _, m := range want[r] {
			ok[m] = true
		}
		for _, m := range allRoles {
			if got := r.AtLeast(m); got != ok[m] {
				t.Errorf("Role(%q).AtLeast(%q) = %v, want %v", r, m, got, ok[m])
			}
		}
	}
}

func TestRoleCanAssign(t *testing.T) {
	// want[r] is the set of roles r may grant, change or remove: at or below its own level, and
	// only real roles.
	want := map[domain.Role][]domain.Role{
		"":                     nil,
		"owner":                nil,
		domain.RoleViewer:      {domain.RoleViewer},
		domain.RoleDeveloper:   {domain.RoleViewer, domain.RoleDeveloper},
		domain.RoleTenantAdmin: {domain.RoleViewer, domain.RoleDeveloper, domain.RoleTenantAdmin},
		domain.RoleSuperAdmin:  {domain.RoleViewer, domain.RoleDeveloper, domain.RoleTenantAdmin, domain.RoleSuperAdmin},
	}
	for _, r := range allRoles {
		ok := map[domain.Role]bool{}
		for _, target := range want[r] {
			ok[target] = true
		}
		for _, target := range allRoles {
			if got := r.CanAssign(target); got != ok[target] {
				t.Errorf("Role(%q).CanAssign(%q) = %v, want %v", r, target, got, ok[target])
			}
		}
	}
}

func TestParseTenantRole(t *testing.T) {
	tests := []struct {
		in   string
		want domain.Role // "" = rejected
	}{
		{"", domain.RoleViewer},
		{"viewer", domain.RoleViewer},
		{"developer", domain.RoleDeveloper},
		{"tenant_admin", domain.RoleTenantAdmin},
		{"super_admin", ""},
		{"admin", ""},
		{"owner", ""},
		{"Viewer", ""},
		{"DEVELOPER", ""},
		{" viewer", ""},
		{"viewer ", ""},
		{"tenant-admin", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := domain.ParseTenantRole("role", tt.in)
			if tt.want == "" {
				wantValidation(t, err, "role")
				if got != "" {
					t.Errorf("ParseTenantRole(%q) = %q with its error, want \"\"", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseTenantRole(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
	t.Run("field name carried", func(t *testing.T) {
		_, err := domain.ParseTenantRole("invitations[0].role", "root")
		wantValidation(t, err, "invitations[0].role")
	})
}

func TestEffectiveRole(t *testing.T) {
	tests := []struct {
		member     domain.Role
		superAdmin bool
		want       domain.Role
	}{
		{"", false, ""},
		{domain.RoleViewer, false, domain.RoleViewer},
		{domain.RoleDeveloper, false, domain.RoleDeveloper},
		{domain.RoleTenantAdmin, false, domain.RoleTenantAdmin},
		{"owner", false, "owner"}, // not a role: refused later by whoever asks for a level
		// A super admin acts as one in any tenant: not a member, or a member with a lower role.
		{"", true, domain.RoleSuperAdmin},
		{domain.RoleViewer, true, domain.RoleSuperAdmin},
		{domain.RoleDeveloper, true, domain.RoleSuperAdmin},
		{domain.RoleTenantAdmin, true, domain.RoleSuperAdmin},
	}
	for _, tt := range tests {
		got := domain.EffectiveRole(tt.member, tt.superAdmin)
		if got != tt.want {
			t.Errorf("EffectiveRole(%q, %v) = %q, want %q", tt.member, tt.superAdmin, got, tt.want)
		}
		// Whatever it acts as, a super admin may do all a tenant admin may, and assign every tenant role.
		if tt.superAdmin {
			if !got.AtLeast(domain.RoleTenantAdmin) {
				t.Errorf("EffectiveRole(%q, true) = %q, below tenant_admin", tt.member, got)
			}
			for _, r := range domain.TenantRoles {
				if !got.CanAssign(r) {
					t.Errorf("EffectiveRole(%q, true) = %q cannot assign %q", tt.member, got, r)
				}
			}
		}
	}
}
