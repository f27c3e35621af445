package domain

// Who may hold a database's read-write password, and when it must change because someone who could
// see it no longer may.

// Reasons of a rotation of the read-write password.
const (
	CredentialsManual       = "manual"        // its owner or a tenant admin asked
	CredentialsOwnerChanged = "owner_changed" // the previous owner may no longer see it
	CredentialsRoleChanged  = "role_changed"  // a member who could see it was demoted
	CredentialsDeactivated  = "member_deactivated"
)

// The two MySQL accounts of a database.
const (
	AccountReadWrite = "read_write"
	AccountReadOnly  = "read_only"
)

// AccountOf is the account a member's statements run on, and whose connection details they are
// shown: the read-only one for viewers (so a statement the parser misjudges still cannot write),
// the read-write one for every other role.
func AccountOf(role Role) string {
	if role == RoleViewer {
		return AccountReadOnly
	}
	return AccountReadWrite
}

// MaySeeReadWrite is who may see (and rotate) a database's read-write credentials: its owner
// while a developer or more, and the tenant's admins (a super admin acts as one). Other members —
// developers who do not own it, viewers — reach it through the query API, with their role's
// account; the read-only account's password is never shown to anyone.
func MaySeeReadWrite(role Role, owner bool) bool {
	return role.AtLeast(RoleTenantAdmin) || (owner && role.AtLeast(RoleDeveloper))
}

// LosesReadWrite reports whether a member whose role goes from one role to another ("" for none:
// deactivated) loses the sight of a database's read-write password, as its owner or not.
func LosesReadWrite(from, to Role, owner bool) bool {
	return MaySeeReadWrite(from, owner) && !MaySeeReadWrite(to, owner)
}

// ReadWriteAccessLost reads a database's events merged in log order with its tenant's, and
// returns why its read-write password must change now: a member who could see it (MaySeeReadWrite)
// lost the right — demoted (CredentialsRoleChanged), deactivated (CredentialsDeactivated), or no
// longer its owner (CredentialsOwnerChanged) — after the password was last set. "" when nobody did.
func ReadWriteAccessLost(history []Event) string {
	var owner UserID
	roles := map[UserID]Role{}
	suspended := map[UserID]Role{} // the roles of deactivated members, given back on reactivation
	reason := ""
	for _, e := range history {
		switch e := e.(type) {
		case TenantMemberAdded:
			roles[e.UserID] = e.Role
		case TenantMemberRoleChanged:
			isOwner := owner != "" && e.UserID == owner
			if owner != "" && LosesReadWrite(e.From, e.To, isOwner) {
				reason = CredentialsRoleChanged
			}
			roles[e.UserID] = e.To
		case TenantMemberDeactivated:
			if owner != "" && LosesReadWrite(roles[e.UserID], "", e.UserID == owner) {
				reason = CredentialsDeactivated
			}
			roles[e.UserID], suspended[e.UserID] = "", e.Role
		case TenantMemberReactivated:
			roles[e.UserID] = suspended[e.UserID]
		case DatabaseRequested:
			owner = e.OwnerID
		case DatabaseOwnerChanged:
			if MaySeeReadWrite(roles[e.From], true) && !MaySeeReadWrite(roles[e.From], false) {
				reason = CredentialsOwnerChanged
			}
			owner = e.To
		case DatabaseCredentialsRotated:
			reason = ""
		}
	}
	return reason
}
