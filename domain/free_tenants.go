package domain

import "fmt"

// ResourceFreeTenants is the quota_exceeded resource of a person's free-plan tenants.
const ResourceFreeTenants = "free_tenants"

// FreeTenantClaim is the claim key of one of a person's free-tenant slots (1 to the limit). A
// free-plan tenant its creator creates holds one slot for as long as it exists, whatever plan it
// moves to later: upgrading and downgrading does not mint new free tenants. Claims are unique, so
// two concurrent creates cannot take one slot, and a person never holds more tenants than slots.
func FreeTenantClaim(user UserID, slot int) string {
	return fmt.Sprintf("free-tenant:%s:%d", user, slot)
}

// FreeTenantSlot decides which slot a person's new free-plan tenant takes, given which of the
// slots 1..len(held) are held: the first free one. When all are held it returns a
// *QuotaExceededError for ResourceFreeTenants.
func FreeTenantSlot(held []bool) (int, error) {
	for i, h := range held {
		if !h {
			return i + 1, nil
		}
	}
	return 0, &QuotaExceededError{Resource: ResourceFreeTenants, Used: int64(len(held)), Limit: int64(len(held))}
}
