package projections_test

import (
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

// The members' sub-quotas follow quota.sub_quota_set.v1 (the v1 events without storage and
// connections too); a removal leaves a row of NULLs; a replay changes nothing.
func TestMemberQuotasFollowSubQuotas(t *testing.T) {
	f := newIdentityFixture(t)
	p := projections.NewMemberQuotas(production)
	r := f.start(t, p)
	tenant, alice, bob := domain.TenantID(newID()), domain.UserID(newID()), domain.UserID(newID())
	n := func(v int64) *int64 { return &v }
	f.appendAt(t, t0, tenant.QuotaStream(), domain.QuotaSubQuotaSet{UserID: alice, MaxDatabases: n(2)})
	f.appendAt(t, t0, tenant.QuotaStream(), domain.QuotaSubQuotaSet{UserID: bob, MaxStorageBytes: n(1 << 20), MaxConnections: n(3)})
	last := f.appendAt(t, t0, tenant.QuotaStream(), domain.QuotaSubQuotaSet{UserID: alice, MaxConnections: n(4)},
		domain.QuotaSubQuotaSet{UserID: bob})
	wait(t, r, last.LastPosition, "member_quotas")
	key := "CONCAT(tenant_id, '/', user_id)"
	assertRow(t, f.db, "member_quotas", key, string(tenant)+"/"+string(alice), row{"tenant_id": string(tenant), "user_id": string(alice),
		"max_databases": "NULL", "max_storage_bytes": "NULL", "max_connections": "4", "version": "3"})
	assertRow(t, f.db, "member_quotas", key, string(tenant)+"/"+string(bob), row{"tenant_id": string(tenant), "user_id": string(bob),
		"max_databases": "NULL", "max_storage_bytes": "NULL", "max_connections": "NULL", "version": "4"})
	t.Run("rebuild and redelivery change nothing", func(t *testing.T) {
		checkReplay(t, f, r, p, map[string]string{"member_quotas": "tenant_id, user_id"})
	})
}
