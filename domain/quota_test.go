package domain_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

// Members of the quota tests.
var (
	qAlice = domain.UserID(uuidA)
	qBob   = domain.UserID(uuidB)
	qCarol = domain.UserID(uuidC)
)

// qLimits are plan limits allowing n databases.
func qLimits(n int64) domain.Limits { return domain.Limits{MaxDatabases: n} }

// qDB returns the i-th database id of the quota tests.
func qDB(i int) domain.DatabaseID {
	return domain.DatabaseID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
}

func qPtr(n int64) *int64 { return &n }

// loadQuota returns the quota as loaded from the store: no pending events.
func loadQuota(t *testing.T, history ...domain.Event) *domain.Quota {
	t.Helper()
	q, err := domain.RebuildQuota(viaJSON(t, history), int64(len(history)))
	if err != nil {
		t.Fatalf("RebuildQuota: %v", err)
	}
	return q
}

// reserved returns reservation events of databases first..first+n-1 for owner.
func reserved(owner domain.UserID, first, n int) []domain.Event {
	var out []domain.Event
	for i := first; i < first+n; i++ {
		out = append(out, domain.QuotaDatabaseReserved{DatabaseID: qDB(i), OwnerID: owner})
	}
	return out
}

// wantQuotaExceeded fails the test unless err is a *QuotaExceededError with exactly want.
func wantQuotaExceeded(t *testing.T, err error, want domain.QuotaExceededError) {
	t.Helper()
	var qerr *domain.QuotaExceededError
	if !errors.As(err, &qerr) {
		t.Fatalf("err = %v (%T), want a *QuotaExceededError %+v", err, err, want)
	}
	if *qerr != want {
		t.Fatalf("QuotaExceededError = %+v, want %+v", *qerr, want)
	}
}

// qCounts is what the quota counts, for comparisons.
type qCounts struct {
	Total             int64
	Alice, Bob, Carol int64
}

func countsOf(q *domain.Quota) qCounts {
	return qCounts{q.Databases(), q.DatabasesOf(qAlice), q.DatabasesOf(qBob), q.DatabasesOf(qCarol)}
}

// subQuotasOf returns the sub-quotas of the test members; absent ones are -1.
func subQuotasOf(q *domain.Quota) [3]int64 {
	var out [3]int64
	for i, u := range []domain.UserID{qAlice, qBob, qCarol} {
		out[i] = -1
		if n, ok := q.SubQuota(u); ok {
			out[i] = n
		}
	}
	return out
}

func TestQuotaReserveDatabase(t *testing.T) {
	t.Run("up to the plan limit", func(t *testing.T) {
		for _, limit := range []int64{0, 1, 5} {
			t.Run(fmt.Sprint(limit), func(t *testing.T) {
				q := domain.NewQuota()
				for i := 0; i < int(limit); i++ {
					owner := qAlice
					if i%2 == 1 {
						owner = qBob
					}
					if err := q.ReserveDatabase(qDB(i), owner, qLimits(limit)); err != nil {
						t.Fatalf("reserve %d of %d: %v", i+1, limit, err)
					}
				}
				if q.Databases() != limit {
					t.Fatalf("Databases() = %d, want %d", q.Databases(), limit)
				}
				n := len(q.PendingEvents())
				err := q.ReserveDatabase(qDB(99), qCarol, qLimits(limit))
				wantQuotaExceeded(t, err, domain.QuotaExceededError{Resource: "databases", Used: limit, Limit: limit})
				if len(q.PendingEvents()) != n || q.Databases() != limit || q.DatabasesOf(qCarol) != 0 {
					t.Fatalf("refused reserve changed the quota: %d events (was %d), %d databases", len(q.PendingEvents()), n, q.Databases())
				}
			})
		}
	})

	t.Run("records the reservation", func(t *testing.T) {
		q := loadQuota(t, reserved(qBob, 0, 1)...)
		if err := q.ReserveDatabase(qDB(1), qAlice, qLimits(5)); err != nil {
			t.Fatal(err)
		}
		wantPending(t, q.PendingEvents(), "quota.database_reserved.v1")
		if got, want := q.PendingEvents()[0], (domain.QuotaDatabaseReserved{DatabaseID: qDB(1), OwnerID: qAlice}); got != want {
			t.Fatalf("event = %+v, want %+v", got, want)
		}
		if got, want := countsOf(q), (qCounts{Total: 2, Alice: 1, Bob: 1}); got != want {
			t.Fatalf("counts = %+v, want %+v", got, want)
		}
		if q.Version() != 1 {
			t.Errorf("Version() = %d, want 1", q.Version())
		}
	})

	tests := []struct {
		name    string
		history []domain.Event
		owner   domain.UserID
		limit   int64
		want    *domain.QuotaExceededError // nil: reserved
	}{
		{"sub-quota not reached", append(reserved(qAlice, 0, 1), domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(2)}),
			qAlice, 5, nil},
		{"sub-quota reached", append(reserved(qAlice, 0, 2), domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(2)}),
			qAlice, 5, &domain.QuotaExceededError{Resource: "user_databases", Used: 2, Limit: 2}},
		{"sub-quota of zero", []domain.Event{domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(0)}},
			qAlice, 5, &domain.QuotaExceededError{Resource: "user_databases", Used: 0, Limit: 0}},
		{"sub-quota lowered below use", append(reserved(qAlice, 0, 3), domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(1)}),
			qAlice, 5, &domain.QuotaExceededError{Resource: "user_databases", Used: 3, Limit: 1}},
		{"someone else's sub-quota does not apply", append(reserved(qAlice, 0, 2), domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(2)}),
			qBob, 5, nil},
		{"others' databases do not count against a sub-quota", append(reserved(qBob, 0, 3), domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(1)}),
			qAlice, 5, nil},
		{"removed sub-quota no longer applies", append(reserved(qAlice, 0, 2),
			domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(2)}, domain.QuotaSubQuotaSet{UserID: qAlice}),
			qAlice, 5, nil},
		{"plan limit wins over a free sub-quota", append(reserved(qBob, 0, 3), domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(2)}),
			qAlice, 3, &domain.QuotaExceededError{Resource: "databases", Used: 3, Limit: 3}},
		{"released databases free the sub-quota", append(reserved(qAlice, 0, 2),
			domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(2)}, domain.QuotaDatabaseReleased{DatabaseID: qDB(0)}),
			qAlice, 5, nil},
		{"a database given away frees the sub-quota", append(reserved(qAlice, 0, 2),
			domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(2)}, domain.QuotaDatabaseOwnerChanged{DatabaseID: qDB(0), To: qBob}),
			qAlice, 5, nil},
		{"a database received counts against the sub-quota", append(reserved(qBob, 0, 1),
			domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(1)}, domain.QuotaDatabaseOwnerChanged{DatabaseID: qDB(0), To: qAlice}),
			qAlice, 5, &domain.QuotaExceededError{Resource: "user_databases", Used: 1, Limit: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := loadQuota(t, tt.history...)
			before := countsOf(q)
			err := q.ReserveDatabase(qDB(50), tt.owner, qLimits(tt.limit))
			if tt.want != nil {
				wantQuotaExceeded(t, err, *tt.want)
				wantPending(t, q.PendingEvents())
				if got := countsOf(q); got != before {
					t.Fatalf("refused reserve changed counts: %+v, was %+v", got, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			wantPending(t, q.PendingEvents(), "quota.database_reserved.v1")
			if q.Databases() != before.Total+1 || q.DatabasesOf(tt.owner) != countsOfOwner(before, tt.owner)+1 {
				t.Fatalf("counts = %+v, was %+v; want one more for %s", countsOf(q), before, tt.owner)
			}
		})
	}
}

func countsOfOwner(c qCounts, owner domain.UserID) int64 {
	switch owner {
	case qAlice:
		return c.Alice
	case qBob:
		return c.Bob
	}
	return c.Carol
}

func TestQuotaReleaseDatabase(t *testing.T) {
	t.Run("frees a slot", func(t *testing.T) {
		q := loadQuota(t, append(reserved(qAlice, 0, 3), reserved(qBob, 3, 2)...)...)
		wantQuotaExceeded(t, q.ReserveDatabase(qDB(9), qCarol, qLimits(5)), domain.QuotaExceededError{Resource: "databases", Used: 5, Limit: 5})
		q.ReleaseDatabase(qDB(3))
		wantPending(t, q.PendingEvents(), "quota.database_released.v1")
		if got, want := q.PendingEvents()[0], (domain.QuotaDatabaseReleased{DatabaseID: qDB(3)}); got != want {
			t.Fatalf("event = %+v, want %+v", got, want)
		}
		if got, want := countsOf(q), (qCounts{Total: 4, Alice: 3, Bob: 1}); got != want {
			t.Fatalf("counts = %+v, want %+v", got, want)
		}
		if err := q.ReserveDatabase(qDB(9), qCarol, qLimits(5)); err != nil {
			t.Fatalf("reserve after release: %v", err)
		}
	})

	tests := []struct {
		name    string
		history []domain.Event
		id      domain.DatabaseID
	}{
		{"unknown id records nothing", reserved(qAlice, 0, 2), qDB(7)},
		{"on a fresh quota records nothing", nil, qDB(0)},
		{"released twice records nothing the second time", append(reserved(qAlice, 0, 2), domain.QuotaDatabaseReleased{DatabaseID: qDB(1)}), qDB(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := loadQuota(t, tt.history...)
			before := countsOf(q)
			q.ReleaseDatabase(tt.id)
			wantPending(t, q.PendingEvents())
			if got := countsOf(q); got != before {
				t.Fatalf("counts = %+v, was %+v", got, before)
			}
		})
	}
}

func TestQuotaChangeOwner(t *testing.T) {
	tests := []struct {
		name    string
		id      domain.DatabaseID
		to      domain.UserID
		want    domain.Event // nil: nothing recorded
		wantNow qCounts
	}{
		{"moves the count", qDB(0), qBob, domain.QuotaDatabaseOwnerChanged{DatabaseID: qDB(0), To: qBob}, qCounts{Total: 3, Alice: 1, Bob: 2}},
		{"to a new owner", qDB(2), qCarol, domain.QuotaDatabaseOwnerChanged{DatabaseID: qDB(2), To: qCarol}, qCounts{Total: 3, Alice: 2, Carol: 1}},
		{"to the owner records nothing", qDB(0), qAlice, nil, qCounts{Total: 3, Alice: 2, Bob: 1}},
		{"unknown id records nothing", qDB(9), qBob, nil, qCounts{Total: 3, Alice: 2, Bob: 1}},
		{"released id records nothing", qDB(3), qBob, nil, qCounts{Total: 3, Alice: 2, Bob: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			history := append(reserved(qAlice, 0, 2), append(reserved(qBob, 2, 2), domain.QuotaDatabaseReleased{DatabaseID: qDB(3)})...)
			q := loadQuota(t, history...)
			q.ChangeOwner(tt.id, tt.to)
			if tt.want == nil {
				wantPending(t, q.PendingEvents())
			} else {
				wantPending(t, q.PendingEvents(), tt.want.EventType())
				if got := q.PendingEvents()[0]; got != tt.want {
					t.Fatalf("event = %+v, want %+v", got, tt.want)
				}
			}
			if got := countsOf(q); got != tt.wantNow {
				t.Fatalf("counts = %+v, want %+v", got, tt.wantNow)
			}
			if got := countsOf(loadQuota(t, append(history, q.PendingEvents()...)...)); got != tt.wantNow {
				t.Fatalf("reloaded counts = %+v, want %+v", got, tt.wantNow)
			}
		})
	}
}

func TestQuotaSetSubQuota(t *testing.T) {
	tests := []struct {
		name      string
		history   []domain.Event
		user      domain.UserID
		max       *int64
		limit     int64
		wantField string                     // a *ValidationError on this field
		wantQuota *domain.QuotaExceededError // refused by the plan limit
		wantSubs  [3]int64                   // alice, bob, carol after; -1: none
	}{
		{name: "first", user: qAlice, max: qPtr(3), limit: 5, wantSubs: [3]int64{3, -1, -1}},
		{name: "zero", user: qAlice, max: qPtr(0), limit: 5, wantSubs: [3]int64{0, -1, -1}},
		{name: "equal to the plan limit", user: qAlice, max: qPtr(5), limit: 5, wantSubs: [3]int64{5, -1, -1}},
		{name: "above the plan limit", user: qAlice, max: qPtr(6), limit: 5,
			wantQuota: &domain.QuotaExceededError{Resource: "databases", Used: 6, Limit: 5}, wantSubs: [3]int64{-1, -1, -1}},
		{name: "negative", user: qAlice, max: qPtr(-1), limit: 5, wantField: "max_databases", wantSubs: [3]int64{-1, -1, -1}},
		{name: "sum up to the limit", history: []domain.Event{domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(3)}},
			user: qBob, max: qPtr(2), limit: 5, wantSubs: [3]int64{3, 2, -1}},
		{name: "sum above the limit", history: []domain.Event{domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(3)},
			domain.QuotaSubQuotaSet{UserID: qCarol, MaxDatabases: qPtr(1)}},
			user: qBob, max: qPtr(2), limit: 5,
			wantQuota: &domain.QuotaExceededError{Resource: "databases", Used: 6, Limit: 5}, wantSubs: [3]int64{3, -1, 1}},
		{name: "replacing one's own does not count it twice", history: []domain.Event{domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(3)},
			domain.QuotaSubQuotaSet{UserID: qBob, MaxDatabases: qPtr(1)}},
			user: qAlice, max: qPtr(4), limit: 5, wantSubs: [3]int64{4, 1, -1}},
		{name: "lowering always fits", history: []domain.Event{domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(3)},
			domain.QuotaSubQuotaSet{UserID: qBob, MaxDatabases: qPtr(2)}},
			user: qAlice, max: qPtr(1), limit: 5, wantSubs: [3]int64{1, 2, -1}},
		{name: "nil removes", history: []domain.Event{domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(3)},
			domain.QuotaSubQuotaSet{UserID: qBob, MaxDatabases: qPtr(2)}},
			user: qAlice, max: nil, limit: 5, wantSubs: [3]int64{-1, 2, -1}},
		{name: "nil removes even above a lowered plan", history: []domain.Event{domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(30)},
			domain.QuotaSubQuotaSet{UserID: qBob, MaxDatabases: qPtr(20)}},
			user: qAlice, max: nil, limit: 5, wantSubs: [3]int64{-1, 20, -1}},
		{name: "removal frees room for others", history: []domain.Event{domain.QuotaSubQuotaSet{UserID: qAlice, MaxDatabases: qPtr(3)},
			domain.QuotaSubQuotaSet{UserID: qAlice}},
			user: qBob, max: qPtr(5), limit: 5, wantSubs: [3]int64{-1, 5, -1}},
		{name: "use does not count, only sub-quotas", history: reserved(qCarol, 0, 5),
			user: qAlice, max: qPtr(5), limit: 5, wantSubs: [3]int64{5, -1, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := loadQuota(t, tt.history...)
			err := q.SetSubQuota(tt.user, domain.MemberQuota{MaxDatabases: tt.max}, qLimits(tt.limit))
			switch {
			case tt.wantField != "":
				wantValidation(t, err, tt.wantField)
				wantPending(t, q.PendingEvents())
			case tt.wantQuota != nil:
				wantQuotaExceeded(t, err, *tt.wantQuota)
				wantPending(t, q.PendingEvents())
			default:
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				wantPending(t, q.PendingEvents(), "quota.sub_quota_set.v1")
				got := q.PendingEvents()[0].(domain.QuotaSubQuotaSet)
				if got.UserID != tt.user || !reflect.DeepEqual(got.MaxDatabases, tt.max) {
					t.Fatalf("event = {%s %v}, want {%s %v}", got.UserID, got.MaxDatabases, tt.user, tt.max)
				}
				reloaded := loadQuota(t, append(tt.history, q.PendingEvents()...)...)
				if got := subQuotasOf(reloaded); got != tt.wantSubs {
					t.Fatalf("reloaded sub-quotas = %v, want %v", got, tt.wantSubs)
				}
			}
			if got := subQuotasOf(q); got != tt.wantSubs {
				t.Fatalf("sub-quotas = %v, want %v", got, tt.wantSubs)
			}
		})
	}
}

func TestRebuildQuota(t *testing.T) {
	t.Run("empty history is a fresh quota", func(t *testing.T) {
		for _, history := range [][]domain.Event{nil, {}} {
			q, err := domain.RebuildQuota(history, 0)
			if err != nil || q == nil {
				t.Fatalf("RebuildQuota(%v) = %v, %v; want a quota", history, q, err)
			}
			if q.Version() != 0 || len(q.PendingEvents()) != 0 || countsOf(q) != (qCounts{}) || subQuotasOf(q) != [3]int64{-1, -1, -1} {
				t.Fatalf("fresh quota: version %d, %d pending, counts %+v, sub-quotas %v",
					q.Version(), len(q.PendingEvents()), countsOf(q), subQuotasOf(q))
			}
			// A rebuilt fresh quota takes decisions like a new one.
			if err := q.ReserveDatabase(qDB(0), qAlice, qLimits(1)); err != nil {
				t.Fatalf("reserve on a rebuilt fresh quota: %v", err)
			}
			if err := q.SetSubQuota(qBob, domain.MemberQuota{MaxDatabases: qPtr(1)}, qLimits(1)); err != nil {
				t.Fatalf("sub-quota on a rebuilt fresh quota: %v", err)
			}
		}
	})

	t.Run("round trip", func(t *testing.T) {
		limits := qLimits(5)
		steps := []struct {
			name string
			do   func(q *domain.Quota) error
		}{
			{"alice's sub-quota", func(q *domain.Quota) error {
				return q.SetSubQuota(qAlice, domain.MemberQuota{MaxDatabases: qPtr(2)}, limits)
			}},
			{"bob's sub-quota", func(q *domain.Quota) error {
				return q.SetSubQuota(qBob, domain.MemberQuota{MaxDatabases: qPtr(3)}, limits)
			}},
			{"alice reserves", func(q *domain.Quota) error { return q.ReserveDatabase(qDB(0), qAlice, limits) }},
			{"alice reserves again", func(q *domain.Quota) error { return q.ReserveDatabase(qDB(1), qAlice, limits) }},
			{"carol reserves", func(q *domain.Quota) error { return q.ReserveDatabase(qDB(2), qCarol, limits) }},
			{"alice gives one to bob", func(q *domain.Quota) error { q.ChangeOwner(qDB(1), qBob); return nil }},
			{"carol's is released", func(q *domain.Quota) error { q.ReleaseDatabase(qDB(2)); return nil }},
			{"bob's sub-quota removed", func(q *domain.Quota) error { return q.SetSubQuota(qBob, domain.MemberQuota{}, limits) }},
			{"bob reserves", func(q *domain.Quota) error { return q.ReserveDatabase(qDB(3), qBob, limits) }},
		}
		q := domain.NewQuota()
		for _, step := range steps {
			if err := step.do(q); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			history := q.PendingEvents()
			rebuilt := loadQuota(t, history...)
			if countsOf(rebuilt) != countsOf(q) || subQuotasOf(rebuilt) != subQuotasOf(q) {
				t.Fatalf("after %s: rebuilt %+v %v, decided %+v %v", step.name, countsOf(rebuilt), subQuotasOf(rebuilt), countsOf(q), subQuotasOf(q))
			}
			if rebuilt.Version() != int64(len(history)) || len(rebuilt.PendingEvents()) != 0 {
				t.Fatalf("after %s: rebuilt version %d with %d pending, want %d and none",
					step.name, rebuilt.Version(), len(rebuilt.PendingEvents()), len(history))
			}
		}
		if got, want := countsOf(q), (qCounts{Total: 3, Alice: 1, Bob: 2}); got != want {
			t.Fatalf("end counts = %+v, want %+v", got, want)
		}
		if got, want := subQuotasOf(q), [3]int64{2, -1, -1}; got != want {
			t.Fatalf("end sub-quotas = %v, want %v", got, want)
		}
	})
}

// Storage and connection sub-quotas add up per resource against the plan, each on its own; a
// connection limit of 0 would mean none to MySQL and is refused.
func TestQuotaMemberQuotaPerResource(t *testing.T) {
	limits := domain.Limits{MaxDatabases: 5, MaxStorageBytes: 1000, MaxConnections: 10}
	q := loadQuota(t, domain.QuotaSubQuotaSet{UserID: qAlice, MaxStorageBytes: qPtr(600), MaxConnections: qPtr(6)})
	if got := q.MemberQuota(qAlice); *got.MaxStorageBytes != 600 || *got.MaxConnections != 6 || got.MaxDatabases != nil {
		t.Fatalf("MemberQuota(alice) = %+v", got)
	}
	if _, ok := q.SubQuota(qAlice); ok {
		t.Error("a storage and connection sub-quota reads as a database sub-quota")
	}
	wantQuotaExceeded(t, q.SetSubQuota(qBob, domain.MemberQuota{MaxStorageBytes: qPtr(401)}, limits),
		domain.QuotaExceededError{Resource: "storage", Used: 1001, Limit: 1000})
	wantQuotaExceeded(t, q.SetSubQuota(qBob, domain.MemberQuota{MaxStorageBytes: qPtr(400), MaxConnections: qPtr(5)}, limits),
		domain.QuotaExceededError{Resource: "connections", Used: 11, Limit: 10})
	wantValidation(t, q.SetSubQuota(qBob, domain.MemberQuota{MaxConnections: qPtr(0), MaxStorageBytes: qPtr(-1)}, limits),
		"max_connections", "max_storage_bytes")
	wantPending(t, q.PendingEvents())
	if err := q.SetSubQuota(qBob, domain.MemberQuota{MaxDatabases: qPtr(5), MaxStorageBytes: qPtr(400), MaxConnections: qPtr(4)}, limits); err != nil {
		t.Fatal(err)
	}
	q.RemoveSubQuotas(qAlice)
	wantPending(t, q.PendingEvents(), "quota.sub_quota_set.v1", "quota.sub_quota_set.v1")
	if got := q.MemberQuota(qAlice); got != (domain.MemberQuota{}) {
		t.Errorf("after RemoveSubQuotas: %+v", got)
	}
	q.RemoveSubQuotas(qAlice) // none left: nothing recorded
	wantPending(t, q.PendingEvents(), "quota.sub_quota_set.v1", "quota.sub_quota_set.v1")
}

// A plan downgrade scales the sub-quotas of each resource over its new limit down to fit, rounded
// down and connections to at least 1; resources within their limit, and members without a
// sub-quota, are left alone.
func TestQuotaFitSubQuotas(t *testing.T) {
	const gib = int64(1) << 30
	type subs [3]domain.MemberQuota // alice, bob, carol
	q := func(db, storage, conns *int64) domain.MemberQuota {
		return domain.MemberQuota{MaxDatabases: db, MaxStorageBytes: storage, MaxConnections: conns}
	}
	tests := []struct {
		name   string
		before subs
		limits domain.Limits
		after  subs
		events int
	}{
		{name: "within every limit", before: subs{q(qPtr(2), qPtr(100), qPtr(3)), q(qPtr(3), nil, nil)},
			limits: domain.Limits{MaxDatabases: 5, MaxStorageBytes: 100, MaxConnections: 10},
			after:  subs{q(qPtr(2), qPtr(100), qPtr(3)), q(qPtr(3), nil, nil)}},
		{name: "databases scaled, the rest kept", before: subs{q(qPtr(30), qPtr(100), nil), q(qPtr(20), nil, nil)},
			limits: domain.Limits{MaxDatabases: 5, MaxStorageBytes: 100, MaxConnections: 10},
			after:  subs{q(qPtr(3), qPtr(100), nil), q(qPtr(2), nil, nil)}, events: 2},
		{name: "rounded down, never over", before: subs{q(qPtr(1), nil, nil), q(qPtr(1), nil, nil), q(qPtr(1), nil, nil)},
			limits: domain.Limits{MaxDatabases: 2, MaxStorageBytes: 1, MaxConnections: 1},
			after:  subs{q(qPtr(0), nil, nil), q(qPtr(0), nil, nil), q(qPtr(0), nil, nil)}, events: 3},
		{name: "terabytes of storage do not overflow", before: subs{q(nil, qPtr(700*gib), nil), q(nil, qPtr(324*gib), nil)},
			limits: domain.Limits{MaxDatabases: 5, MaxStorageBytes: gib, MaxConnections: 10},
			after:  subs{q(nil, qPtr(700*gib/1024), nil), q(nil, qPtr(324*gib/1024), nil)}, events: 2},
		{name: "connections keep at least 1", before: subs{q(nil, nil, qPtr(90)), q(nil, nil, qPtr(5)), q(nil, nil, qPtr(5))},
			limits: domain.Limits{MaxDatabases: 5, MaxStorageBytes: gib, MaxConnections: 10},
			after:  subs{q(nil, nil, qPtr(9)), q(nil, nil, qPtr(1)), q(nil, nil, qPtr(1))}, events: 3},
		{name: "two resources of one member in one event", before: subs{q(qPtr(40), qPtr(2*gib), qPtr(50)), q(qPtr(10), qPtr(2*gib), qPtr(50))},
			limits: domain.Limits{MaxDatabases: 5, MaxStorageBytes: gib, MaxConnections: 10},
			after:  subs{q(qPtr(4), qPtr(gib/2), qPtr(5)), q(qPtr(1), qPtr(gib/2), qPtr(5))}, events: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var history []domain.Event
			for i, u := range []domain.UserID{qAlice, qBob, qCarol} {
				if m := tt.before[i]; m != (domain.MemberQuota{}) {
					history = append(history, domain.QuotaSubQuotaSet{UserID: u, MaxDatabases: m.MaxDatabases,
						MaxStorageBytes: m.MaxStorageBytes, MaxConnections: m.MaxConnections})
				}
			}
			quota := loadQuota(t, history...)
			quota.FitSubQuotas(tt.limits)
			if got := len(quota.PendingEvents()); got != tt.events {
				t.Errorf("%d events recorded, want %d", got, tt.events)
			}
			reloaded := loadQuota(t, append(history, quota.PendingEvents()...)...)
			for i, u := range []domain.UserID{qAlice, qBob, qCarol} {
				if got := reloaded.MemberQuota(u); !reflect.DeepEqual(got, tt.after[i]) {
					t.Errorf("%s: %s, want %s", u, fmtMemberQuota(got), fmtMemberQuota(tt.after[i]))
				}
			}
		})
	}
}

func fmtMemberQuota(m domain.MemberQuota) string {
	v := func(p *int64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("{databases %s storage %s connections %s}", v(m.MaxDatabases), v(m.MaxStorageBytes), v(m.MaxConnections))
}
