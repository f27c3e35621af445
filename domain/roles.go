package domain

// Role is what a user may do in a tenant; super_admin is platform-wide.
type Role string

const (
	RoleViewer      Role = "viewer"
	RoleDeveloper   Role = "developer"
	RoleTenantAdmin Role = "tenant_admin"
	RoleSuperAdmin  Role = "super_admin"
)

// TenantRoles are the roles a tenant member can have, lowest first.
var TenantRoles = []Role{RoleViewer, RoleDeveloper, RoleTenantAdmin}

// Level orders roles: viewer 1 < developer 2 < tenant_admin 3 < super_admin 4; 0 for no role.
func (r Role) Level() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleDeveloper:
		return 2
	case RoleTenantAdmin:
		return 3
	case RoleSuperAdmin:
		return 4
	}
	return 0
}

// AtLeast reports whether r is min or above.
func (r Role) AtLeast(min Role) bool { return r.Level() >= min.Level() && r.Level() > 0 }

// CanAssign reports whether a member with role r may grant, change or remove target: only roles
// at or below one's own.
func (r Role) CanAssign(target Role) bool { return target.Level() > 0 && target.Level() <= r.Level() }

// EffectiveRole is the one rule for what a user acting in a tenant may do there: a super admin
// acts as RoleSuperAdmin, whatever its membership (it may do all a tenant admin may, within the
// tenant's settings, and assign every tenant role); anyone else acts with its member role, "" for
// none. The HTTP routes' access levels, the decision on a statement (queryexec/sqlcheck.Decide)
// and member management (commands/members.go) all decide with it.
func EffectiveRole(member Role, superAdmin bool) Role {
	if superAdmin {
		return RoleSuperAdmin
	}
	return member
}

// ParseTenantRole validates a role a tenant member can have. An empty role is viewer, the default.
func ParseTenantRole(field, s string) (Role, error) {
	if s == "" {
		return RoleViewer, nil
	}
	for _, r := range TenantRoles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", NewValidationError(field, "must be viewer, developer or tenant_admin")
}
