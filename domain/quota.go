package domain

import (
	"fmt"
	"maps"
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
	QuotaSubQuotaSet struct {
		UserID       UserID `json:"user_id"`
		MaxDatabases *int64 `json:"max_databases,omitempty"` // nil: no sub-quota
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

// Quota accounts for a tenant's databases, in total and per owner.
type Quota struct {
	aggregate
	databases map[DatabaseID]UserID // counted databases → owner
	perUser   map[UserID]int64      // sub-quotas on databases
}

// NewQuota returns the quota of a tenant that has none recorded yet.
func NewQuota() *Quota {
	return &Quota{databases: map[DatabaseID]UserID{}, perUser: map[UserID]int64{}}
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
		if e.MaxDatabases == nil {
			delete(q.perUser, e.UserID)
		} else {
			q.perUser[e.UserID] = *e.MaxDatabases
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
	limit, ok := q.perUser[user]
	return limit, ok
}

// ReserveDatabase counts a new database against the plan's limit and the owner's sub-quota.
// Returns a *QuotaExceededError naming the limit that stops it.
func (q *Quota) ReserveDatabase(id DatabaseID, owner UserID, limits Limits) error {
	if used := q.Databases(); used >= limits.MaxDatabases {
		return &QuotaExceededError{Resource: "databases", Used: used, Limit: limits.MaxDatabases}
	}
	if limit, ok := q.perUser[owner]; ok {
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

// SetSubQuota sets (or with nil removes) a user's database sub-quota. The sum of sub-quotas may
// not exceed the plan's limit.
func (q *Quota) SetSubQuota(user UserID, maxDatabases *int64, limits Limits) error {
	if maxDatabases != nil {
		if *maxDatabases < 0 {
			return NewValidationError("max_databases", "must be 0 or more")
		}
		sum := *maxDatabases
		for u, limit := range q.perUser {
			if u != user {
				sum += limit
			}
		}
		if sum > limits.MaxDatabases {
			return fmt.Errorf("sub-quotas would add up to %d databases of %d: %w", sum, limits.MaxDatabases,
				&QuotaExceededError{Resource: "databases", Used: sum, Limit: limits.MaxDatabases})
		}
	}
	if maxDatabases != nil {
		v := *maxDatabases // the event keeps its own copy, whatever the caller does with theirs
		maxDatabases = &v
	}
	q.record(q, QuotaSubQuotaSet{UserID: user, MaxDatabases: maxDatabases})
	return nil
}
