package domain

import (
	"fmt"
	"maps"
	"math/bits"
	"slices"
)

// Quota events, in a tenant's quota stream. Creating a database appends to the database's stream
// and to this one in one transaction, so concurrent creates at a limit cannot overshoot it.
type (
	QuotaDatabaseReserved struct {
		DatabaseID DatabaseID `json:"database_id"`
		OwnerID    UserID     `json:"owner_id"`
	}
	QuotaDatabaseReleased struct {
		DatabaseID DatabaseID `json:"database_id"`
	}
	// QuotaSubQuotaSet is a member's whole sub-quota: each limit nil is none. The storage and
	// connection limits were added later; events without them set none.
	QuotaSubQuotaSet struct {
		UserID          UserID `json:"user_id"`
		MaxDatabases    *int64 `json:"max_databases,omitempty"`
		MaxStorageBytes *int64 `json:"max_storage_bytes,omitempty"`
		MaxConnections  *int64 `json:"max_connections,omitempty"`
	}
	QuotaDatabaseOwnerChanged struct {
		DatabaseID DatabaseID `json:"database_id"`
		To         UserID     `json:"to"`
	}
)

func (QuotaDatabaseReserved) EventType() string     { return "quota.database_reserved.v1" }
func (QuotaDatabaseReleased) EventType() string     { return "quota.database_released.v1" }
func (QuotaSubQuotaSet) EventType() string          { return "quota.sub_quota_set.v1" }
func (QuotaDatabaseOwnerChanged) EventType() string { return "quota.database_owner_changed.v1" }

// MemberQuota is a member's share of the tenant's limits (PUT /users/{id}/quota); a nil limit is
// none. Databases count what the member owns; storage is their databases' (the storage wall
// restricts the writes of all of them while they are at it); connections bound both the member's
// queries running at once and each of their databases' accounts (MAX_USER_CONNECTIONS).
type MemberQuota struct {
	MaxDatabases    *int64 `json:"max_databases"`
	MaxStorageBytes *int64 `json:"max_storage_bytes"`
	MaxConnections  *int64 `json:"max_connections"`
}

// AccountConnections is the MAX_USER_CONNECTIONS of each account of a database whose owner has
// the sub-quota owner: the plan's connections, or the owner's connection sub-quota when lower.
func AccountConnections(limits Limits, owner MemberQuota) int64 {
	if owner.MaxConnections != nil && *owner.MaxConnections < limits.MaxConnections {
		return *owner.MaxConnections
	}
	return limits.MaxConnections
}

func (m MemberQuota) none() bool {
	return m.MaxDatabases == nil && m.MaxStorageBytes == nil && m.MaxConnections == nil
}

// Quota accounts for a tenant's databases, in total and per owner, and the members' sub-quotas.
type Quota struct {
	aggregate
	databases map[DatabaseID]UserID // counted databases → owner
	perUser   map[UserID]MemberQuota
}

// NewQuota returns the quota of a tenant that has none recorded yet.
func NewQuota() *Quota {
	return &Quota{databases: map[DatabaseID]UserID{}, perUser: map[UserID]MemberQuota{}}
}

// RebuildQuota replays a quota stream; an empty one is a fresh quota (version 0).
func RebuildQuota(history []Event, version int64) (*Quota, error) {
	q := NewQuota()
	q.replay(q, history, version)
	return q, nil
}

func (q *Quota) apply(e Event) {
	switch e := e.(type) {
	case QuotaDatabaseReserved:
		q.databases[e.DatabaseID] = e.OwnerID
	case QuotaDatabaseReleased:
		delete(q.databases, e.DatabaseID)
	case QuotaSubQuotaSet:
		if m := (MemberQuota{MaxDatabases: e.MaxDatabases, MaxStorageBytes: e.MaxStorageBytes, MaxConnections: e.MaxConnections}); m.none() {
			delete(q.perUser, e.UserID)
		} else {
			q.perUser[e.UserID] = m
		}
	case QuotaDatabaseOwnerChanged:
		if _, ok := q.databases[e.DatabaseID]; ok {
			q.databases[e.DatabaseID] = e.To
		}
	}
}

// Databases counts the tenant's counted databases.
func (q *Quota) Databases() int64 { return int64(len(q.databases)) }

// OwnedBy lists the counted databases that user owns, in id order.
func (q *Quota) OwnedBy(user UserID) []DatabaseID {
	var ids []DatabaseID
	for id, owner := range q.databases {
		if owner == user {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Owners returns the owner of each counted database.
func (q *Quota) Owners() map[DatabaseID]UserID { return maps.Clone(q.databases) }

// DatabasesOf counts the databases owned by user.
func (q *Quota) DatabasesOf(user UserID) int64 {
	n := int64(0)
	for _, owner := range q.databases {
		if owner == user {
			n++
		}
	}
	return n
}

// SubQuota returns the user's database sub-quota, if one is set.
func (q *Quota) SubQuota(user UserID) (int64, bool) {
	if limit := q.perUser[user].MaxDatabases; limit != nil {
		return *limit, true
	}
	return 0, false
}

// MemberQuota returns the user's sub-quota (zero: none).
func (q *Quota) MemberQuota(user UserID) MemberQuota { return q.perUser[user] }

// ReserveDatabase counts a new database against the plan's limit and the owner's sub-quota.
// Returns a *QuotaExceededError naming the limit that stops it.
func (q *Quota) ReserveDatabase(id DatabaseID, owner UserID, limits Limits) error {
	if used := q.Databases(); used >= limits.MaxDatabases {
		return &QuotaExceededError{Resource: "databases", Used: used, Limit: limits.MaxDatabases}
	}
	if limit, ok := q.SubQuota(owner); ok {
		if used := q.DatabasesOf(owner); used >= limit {
			return &QuotaExceededError{Resource: "user_databases", Used: used, Limit: limit}
		}
	}
	q.record(q, QuotaDatabaseReserved{DatabaseID: id, OwnerID: owner})
	return nil
}

// ReleaseDatabase stops counting a database (deleted, or failed to provision).
func (q *Quota) ReleaseDatabase(id DatabaseID) {
	if _, ok := q.databases[id]; ok {
		q.record(q, QuotaDatabaseReleased{DatabaseID: id})
	}
}

// ChangeOwner moves a counted database to another owner's count.
func (q *Quota) ChangeOwner(id DatabaseID, to UserID) {
	if owner, ok := q.databases[id]; ok && owner != to {
		q.record(q, QuotaDatabaseOwnerChanged{DatabaseID: id, To: to})
	}
}

// RemoveSubQuotas removes the user's sub-quotas, if any (the membership is closed).
func (q *Quota) RemoveSubQuotas(user UserID) {
	if _, ok := q.perUser[user]; ok {
		q.record(q, QuotaSubQuotaSet{UserID: user})
	}
}

// SetSubQuota sets a user's whole sub-quota (a nil limit removes that one). For each resource the
// sub-quotas of the tenant's members may not add up to more than the plan allows. Returns a
// *ValidationError for a negative limit (or a connection limit under 1: 0 would mean unlimited to
// MySQL), a *QuotaExceededError (databases, storage or connections) for a sum over the plan.
func (q *Quota) SetSubQuota(user UserID, m MemberQuota, limits Limits) error {
	fields := map[string]string{}
	for name, v := range map[string]*int64{"max_databases": m.MaxDatabases, "max_storage_bytes": m.MaxStorageBytes} {
		if v != nil && *v < 0 {
			fields[name] = "must be 0 or more"
		}
	}
	if m.MaxConnections != nil && *m.MaxConnections < 1 {
		fields["max_connections"] = "must be 1 or more"
	}
	if len(fields) > 0 {
		return &ValidationError{Fields: fields}
	}
	for _, r := range subQuotaResources(limits) {
		if r.of(m) == nil {
			continue
		}
		sum := *r.of(m)
		for u, other := range q.perUser {
			if v := r.of(other); u != user && v != nil {
				sum += *v
			}
		}
		if sum > r.limit {
			return fmt.Errorf("sub-quotas would add up to %d of %d (%s): %w", sum, r.limit, r.resource,
				&QuotaExceededError{Resource: r.resource, Used: sum, Limit: r.limit})
		}
	}
	// The event keeps its own copies, whatever the caller does with theirs.
	q.record(q, QuotaSubQuotaSet{UserID: user, MaxDatabases: clonePtr(m.MaxDatabases), MaxStorageBytes: clonePtr(m.MaxStorageBytes),
		MaxConnections: clonePtr(m.MaxConnections)})
	return nil
}

// FitSubQuotas lowers the members' sub-quotas so that, for each resource, they add up to no more
// than limits allow: the tenant moved to a smaller plan. Each sub-quota of a resource over its
// limit is scaled by limit/sum and rounded down, so the members keep their shares; a connection
// sub-quota stays at least 1 (0 would mean unlimited to MySQL), which leaves a sum over the limit
// only when more members hold one than the plan has connections. A resource within its limit is
// left alone; nothing is raised.
func (q *Quota) FitSubQuotas(limits Limits) {
	fitted := map[UserID]MemberQuota{}
	for _, r := range subQuotaResources(limits) {
		sum := int64(0)
		for _, m := range q.perUser {
			if v := r.of(m); v != nil {
				sum += *v
			}
		}
		if sum <= r.limit {
			continue
		}
		for user, m := range q.perUser {
			v := r.of(m)
			if v == nil {
				continue
			}
			hi, lo := bits.Mul64(uint64(*v), uint64(r.limit))
			scaled, _ := bits.Div64(hi, lo, uint64(sum)) // *v ≤ sum: the quotient fits
			share := max(int64(scaled), r.least)
			if f, ok := fitted[user]; ok {
				m = f
			} else {
				m = MemberQuota{MaxDatabases: clonePtr(m.MaxDatabases), MaxStorageBytes: clonePtr(m.MaxStorageBytes),
					MaxConnections: clonePtr(m.MaxConnections)}
			}
			*r.of(m) = share
			fitted[user] = m
		}
	}
	for _, user := range slices.Sorted(maps.Keys(fitted)) {
		m := fitted[user]
		q.record(q, QuotaSubQuotaSet{UserID: user, MaxDatabases: m.MaxDatabases, MaxStorageBytes: m.MaxStorageBytes,
			MaxConnections: m.MaxConnections})
	}
}

// subQuotaResource is one limit a sub-quota shares out: how to find it in a MemberQuota, the
// plan's limit and the least a member's share of it may be.
type subQuotaResource struct {
	resource string
	of       func(MemberQuota) *int64
	limit    int64
	least    int64
}

func subQuotaResources(limits Limits) []subQuotaResource {
	return []subQuotaResource{
		{"databases", func(m MemberQuota) *int64 { return m.MaxDatabases }, limits.MaxDatabases, 0},
		{"storage", func(m MemberQuota) *int64 { return m.MaxStorageBytes }, limits.MaxStorageBytes, 0},
		{"connections", func(m MemberQuota) *int64 { return m.MaxConnections }, limits.MaxConnections, 1},
	}
}

func clonePtr(v *int64) *int64 {
	if v == nil {
		return nil
	}
	c := *v
	return &c
}
