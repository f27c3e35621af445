package domain

import (
	"cmp"
	"slices"
	"time"
)

// Who can reach a tenant database, and through which path: the rule behind GET /access-report.
// It restates nothing: a member's role comes from EffectiveRole, the account from AccountOf and
// the sight of the read-write password from MaySeeReadWrite; this file only says which of those
// apply to whom.

// AccessPath is how someone reaches a database.
type AccessPath string

const (
	// AccessOwner: the database's owner, an active member (with the read-write password when
	// MaySeeReadWrite says so).
	AccessOwner AccessPath = "owner"
	// AccessTenantRole: any active member of the tenant, with their role: the query API lets every
	// member (viewer and up) run statements on every database of the tenant, viewers on the
	// read-only account; tenant admins also see the read-write password.
	AccessTenantRole AccessPath = "tenant_role"
	// AccessAPIKey: an API key bound to the tenant, unrevoked and unexpired, of an active member; it
	// acts with its owner's current role there.
	AccessAPIKey AccessPath = "api_key"
)

// DatabaseReachable reports whether a database in state s can be reached by anyone. Provisioning,
// running and stopped databases can: a stopped database keeps its members' rights (its accounts
// are locked, the query API answers 423 database_stopped, and any developer may start it again);
// the report says the state beside who could reach it. A deleted database is reachable by nobody
// until it is restored; a failed or purged one never again.
func DatabaseReachable(s DatabaseState) bool {
	return s == StateProvisioning || s == StateRunning || s == StateStopped
}

// AccessMember is a member of a tenant as access sees them.
type AccessMember struct {
	UserID     UserID
	Role       Role // the member's role; "" while deactivated
	SuperAdmin bool // a super admin acts as RoleSuperAdmin in a tenant they belong to
}

// AccessKey is an API key bound to a tenant.
type AccessKey struct {
	KeyID     APIKeyID
	UserID    UserID
	ExpiresAt *time.Time
	Revoked   bool
}

// AccessGrant is one way one person reaches a database.
type AccessGrant struct {
	UserID UserID
	Path   AccessPath
	KeyID  APIKeyID // AccessAPIKey only
	Role   Role     // the role they act with (EffectiveRole)
	// Until is when the grant ends by itself (an API key's expiry); nil: until something changes.
	Until *time.Time
}

// Account is the MySQL account the grant's statements run on (AccountOf).
func (g AccessGrant) Account() string { return AccountOf(g.Role) }

// ReadWritePassword reports whether the grant lets its holder see the read-write password
// (MaySeeReadWrite): an owner's while a developer or more, a tenant admin's on every path.
func (g AccessGrant) ReadWritePassword() bool { return MaySeeReadWrite(g.Role, g.Path == AccessOwner) }

// DatabaseAccess lists who reaches a database in state of the tenant whose members and API keys
// are given, at moment now, sorted by user, path and key: every active member through their
// tenant role, its owner (when an active member) as owner, and every unrevoked API key that has
// not expired by now of an active member. Nobody reaches a database that is not reachable
// (DatabaseReachable).
func DatabaseAccess(state DatabaseState, owner UserID, members []AccessMember, keys []AccessKey, now time.Time) []AccessGrant {
	if !DatabaseReachable(state) {
		return nil
	}
	roles := map[UserID]Role{}
	var grants []AccessGrant
	for _, m := range members {
		if m.Role == "" {
			continue // deactivated
		}
		role := EffectiveRole(m.Role, m.SuperAdmin)
		roles[m.UserID] = role
		grants = append(grants, AccessGrant{UserID: m.UserID, Path: AccessTenantRole, Role: role})
		if m.UserID == owner {
			grants = append(grants, AccessGrant{UserID: m.UserID, Path: AccessOwner, Role: role})
		}
	}
	for _, k := range keys {
		role, active := roles[k.UserID]
		if !active || k.Revoked || (k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)) {
			continue
		}
		grants = append(grants, AccessGrant{UserID: k.UserID, Path: AccessAPIKey, KeyID: k.KeyID, Role: role, Until: k.ExpiresAt})
	}
	slices.SortFunc(grants, func(a, b AccessGrant) int {
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Path, b.Path), cmp.Compare(a.KeyID, b.KeyID))
	})
	return grants
}

// MaxAccessReviewRange is the longest period one access review lists: a (leap) year, which holds
// four quarterly reviews.
const MaxAccessReviewRange = 366 * 24 * time.Hour

// AccessReportQuery is what GET /access-report asks: who could reach a database at At, or (when
// Review) every change of access in [From, To).
type AccessReportQuery struct {
	DatabaseID DatabaseID
	At         time.Time
	Review     bool
	From, To   time.Time
}

// NewAccessReportQuery decides an access report's question: at (default now) or from and to
// (to defaults to now), never both. Returns a *ValidationError naming every field that is wrong:
// a missing or malformed database_id, at in the future or given with from or to, to without from,
// from not before to, or more than MaxAccessReviewRange between them.
func NewAccessReportQuery(databaseID string, at, from, to *time.Time, now time.Time) (AccessReportQuery, error) {
	fields := map[string]string{}
	q := AccessReportQuery{At: now.UTC()}
	if databaseID == "" {
		fields["database_id"] = "required"
	} else if id, err := ParseDatabaseID(databaseID); err != nil {
		fields["database_id"] = "must be a database id"
	} else {
		q.DatabaseID = id
	}
	switch {
	case at != nil && (from != nil || to != nil):
		fields["at"] = "give at, or from and to, not both"
	case at != nil && at.After(now):
		fields["at"] = "must not be in the future: the report tells what was, not what will be"
	case at != nil:
		q.At = at.UTC()
	case from == nil && to != nil:
		fields["from"] = "required with to"
	case from != nil:
		q.Review, q.From, q.To = true, from.UTC(), now.UTC()
		if to != nil {
			q.To = to.UTC()
		}
		switch {
		case !q.From.Before(q.To):
			fields["to"] = "must be after from"
		case q.To.Sub(q.From) > MaxAccessReviewRange:
			fields["to"] = "at most 366 days after from: ask for the period in parts"
		}
	}
	if len(fields) > 0 {
		return AccessReportQuery{}, &ValidationError{Fields: fields}
	}
	return q, nil
}
