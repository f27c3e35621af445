package domain_test

import (
	"errors"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

func TestFreeTenantSlot(t *testing.T) {
	for _, tt := range []struct {
		held []bool
		slot int
	}{
		{[]bool{false, false, false}, 1},
		{[]bool{true, false, true}, 2},
		{[]bool{true, true, false}, 3},
	} {
		if slot, err := domain.FreeTenantSlot(tt.held); slot != tt.slot || err != nil {
			t.Errorf("FreeTenantSlot(%v) = %d, %v; want %d", tt.held, slot, err, tt.slot)
		}
	}
	var quota *domain.QuotaExceededError
	_, err := domain.FreeTenantSlot([]bool{true, true, true})
	if !errors.As(err, &quota) || quota.Resource != "free_tenants" || quota.Used != 3 || quota.Limit != 3 {
		t.Errorf("all slots held: %v; want quota_exceeded free_tenants 3 of 3", err)
	}
	if domain.FreeTenantClaim("u1", 2) == domain.FreeTenantClaim("u1", 3) || domain.FreeTenantClaim("u1", 1) == domain.FreeTenantClaim("u2", 1) {
		t.Error("free-tenant claims collide")
	}
}
