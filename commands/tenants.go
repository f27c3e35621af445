package commands

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Tenants handles tenants, their plans and settings.
type Tenants struct {
	events     EventStore
	readModels ReadModels
	now        func() time.Time
	// FreeTenantsPerUser is how many free-plan tenants one person may create
	// (CLOUDDB_FREE_TENANTS_PER_USER); set it before use.
	FreeTenantsPerUser int
}

// DefaultFreeTenantsPerUser is FreeTenantsPerUser unless configured.
const DefaultFreeTenantsPerUser = 3

// NewTenants returns the tenant handlers.
func NewTenants(events EventStore, readModels ReadModels, now func() time.Time) *Tenants {
	return &Tenants{events: events, readModels: readModels, now: now, FreeTenantsPerUser: DefaultFreeTenantsPerUser}
}

// FreeTenants is how many of user's free-tenant slots are held (tenants they created on the free
// plan), and how many there are.
func (h *Tenants) FreeTenants(ctx context.Context, user domain.UserID) (used, limit int, err error) {
	held, err := h.freeTenantSlots(ctx, user)
	if err != nil {
		return 0, 0, err
	}
	for _, h := range held {
		if h {
			used++
		}
	}
	return used, len(held), nil
}

// freeTenantSlots reports which of user's free-tenant slots are held.
func (h *Tenants) freeTenantSlots(ctx context.Context, user domain.UserID) ([]bool, error) {
	held := make([]bool, h.FreeTenantsPerUser)
	for i := range held {
		holder, err := h.events.ClaimHolder(ctx, domain.FreeTenantClaim(user, i+1))
		if err != nil {
			return nil, err
		}
		held[i] = holder != ""
	}
	return held, nil
}

func (h *Tenants) append(ctx context.Context, a eventstore.Append) error {
	res, err := h.events.Append(ctx, a)
	if err != nil {
		return err
	}
	return h.readModels.WaitFor(ctx, res.LastPosition, "tenants", "users")
}

func (h *Tenants) load(ctx context.Context, id domain.TenantID) (*domain.Tenant, error) {
	return load(ctx, h.events, id.Stream(), domain.RebuildTenant)
}

// CreateTenant is POST /tenants (creator set: the creator becomes its tenant admin) and
// POST /admin/tenants (no creator).
type CreateTenant struct {
	Name, Slug string // an empty Slug is derived from the name
	Plan       domain.PlanID
	Creator    domain.UserID
	Meta       eventstore.Metadata
}

// CreateTenant creates a tenant. Returns a *domain.ValidationError for a bad name, slug or plan,
// domain.ErrNameTaken for a slug in use (a derived slug gets a suffix instead), or a
// *domain.QuotaExceededError ("free_tenants") when a person creating a free-plan tenant holds all
// FreeTenantsPerUser slots: the tenant claims a slot in its append, so concurrent creates cannot
// exceed the limit (the loser of a race for a slot looks again).
func (h *Tenants) CreateTenant(ctx context.Context, cmd CreateTenant) (*domain.Tenant, error) {
	name, nameErr := domain.ValidateName("name", cmd.Name)
	var slugErr error
	if cmd.Slug != "" {
		slugErr = domain.ValidateSlug(cmd.Slug)
	}
	plan, planErr := domain.PlanByID(cmd.Plan)
	if err := joinValidation(nameErr, slugErr, planErr); err != nil {
		return nil, err
	}
	slug := cmd.Slug
	if slug == "" {
		slug = domain.SlugFrom(name)
	}
	id := domain.TenantID(uuid.NewString())
	countsAsFree := cmd.Creator != "" && plan.ID == domain.PlanFree
	for attempt, slotRaces := 0, 0; ; {
		claims := []eventstore.Claim{{Key: domain.SlugClaim(slug), StreamID: id.Stream()}}
		slotClaim := ""
		if countsAsFree {
			held, err := h.freeTenantSlots(ctx, cmd.Creator)
			if err != nil {
				return nil, err
			}
			slot, err := domain.FreeTenantSlot(held)
			if err != nil {
				return nil, err
			}
			slotClaim = domain.FreeTenantClaim(cmd.Creator, slot)
			claims = append(claims, eventstore.Claim{Key: slotClaim, StreamID: id.Stream()})
		}
		tenant := domain.CreateTenant(id, name, slug, plan, cmd.Creator, h.now())
		meta := cmd.Meta
		meta.TenantID = string(id)
		err := h.append(ctx, eventstore.Append{
			Streams:  []eventstore.Stream{stream(id.Stream(), "tenant", tenant)},
			Claims:   claims,
			Metadata: meta,
		})
		var taken *eventstore.ClaimTakenError
		switch {
		case err == nil:
			return tenant, nil
		case !errors.As(err, &taken):
			return nil, err
		case taken.Key == slotClaim && slotRaces < maxFreeSlotRaces:
			slotRaces++ // a concurrent create took the slot: look again
			continue
		case taken.Key == slotClaim:
			return nil, fmt.Errorf("free-tenant slot of %s: %w", cmd.Creator, domain.ErrConflict)
		case cmd.Slug != "" || attempt == 3:
			return nil, domain.ErrNameTaken
		}
		attempt++
		slug = suffixed(domain.SlugFrom(name))
	}
}

// maxFreeSlotRaces bounds how often one create looks again after losing a free-tenant slot to a
// concurrent create of the same person: each loss means another tenant took a slot.
const maxFreeSlotRaces = 8

// suffixed appends a short random suffix to a derived slug that is taken.
func suffixed(slug string) string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	b := make([]byte, 4)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return slug + "-" + string(b)
}

// SettingsPatch is PATCH /tenant/settings: the fields given replace the current ones.
type SettingsPatch struct {
	QueryTimeoutS        *int64
	RowLimit             *int64
	IdleTimeoutMinutes   *int64
	AutoStopMinutes      *int64
	AllowProcedures      *bool
	AllowForeignKeys     *bool
	AllowHighImpactAlter *bool
}

func (p SettingsPatch) applyTo(s domain.TenantSettings) domain.TenantSettings {
	set := func(dst *int64, v *int64) {
		if v != nil {
			*dst = *v
		}
	}
	setBool := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	set(&s.QueryTimeoutS, p.QueryTimeoutS)
	set(&s.RowLimit, p.RowLimit)
	set(&s.IdleTimeoutMinutes, p.IdleTimeoutMinutes)
	set(&s.AutoStopMinutes, p.AutoStopMinutes)
	setBool(&s.AllowProcedures, p.AllowProcedures)
	setBool(&s.AllowForeignKeys, p.AllowForeignKeys)
	setBool(&s.AllowHighImpactAlter, p.AllowHighImpactAlter)
	return s
}

// ChangeSettings applies a settings patch within the plan's bounds.
func (h *Tenants) ChangeSettings(ctx context.Context, id domain.TenantID, patch SettingsPatch, meta eventstore.Metadata) (*domain.Tenant, error) {
	var tenant *domain.Tenant
	err := retry(ctx, func() error {
		var err error
		if tenant, err = h.load(ctx, id); err != nil {
			return err
		}
		if err := tenant.ChangeSettings(patch.applyTo(tenant.Settings())); err != nil || len(tenant.PendingEvents()) == 0 {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "tenant", tenant)}, Metadata: meta})
	})
	return tenant, err
}

// ChangePlan moves a tenant to another plan (super admin). A smaller plan lowers the members'
// sub-quotas to fit it in the same append (domain.Quota.FitSubQuotas), guarded by the quota's
// stream as SetSubQuota is by the tenant's, so no sub-quota set at the same moment slips past the
// new limits; the reconciler then brings the accounts' MAX_USER_CONNECTIONS down with the plan.
func (h *Tenants) ChangePlan(ctx context.Context, id domain.TenantID, planID domain.PlanID, meta eventstore.Metadata) (*domain.Tenant, error) {
	meta.TenantID = string(id) // a super admin changes it from anywhere: the change is the tenant's (its audit chain)
	plan, err := domain.PlanByID(planID)
	if err != nil {
		return nil, err
	}
	var tenant *domain.Tenant
	err = retry(ctx, func() error {
		var err error
		if tenant, err = h.load(ctx, id); err != nil {
			return err
		}
		if tenant.ChangePlan(plan); len(tenant.PendingEvents()) == 0 {
			return nil
		}
		quota, err := load(ctx, h.events, id.QuotaStream(), domain.RebuildQuota)
		if err != nil {
			return err
		}
		quota.FitSubQuotas(tenant.Limits())
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "tenant", tenant),
			stream(id.QuotaStream(), "quota", quota)}, Metadata: meta})
	})
	return tenant, err
}

// Tenant loads a tenant; other tenants' ids are simply not found.
func (h *Tenants) Tenant(ctx context.Context, id domain.TenantID) (*domain.Tenant, error) {
	return h.load(ctx, id)
}
