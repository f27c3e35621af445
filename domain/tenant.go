package domain

import (
	"fmt"
	"time"
)

// Tenant events, in the tenant's stream. Members live in the tenant's stream so that rules over
// all of them (the last admin, the plan's user limit) are decided on one consistent version.
type (
	TenantCreated struct {
		TenantID  TenantID       `json:"tenant_id"`
		Name      string         `json:"name"`
		Slug      string         `json:"slug"`
		Plan      PlanID         `json:"plan"`
		Settings  TenantSettings `json:"settings"`
		CreatedBy UserID         `json:"created_by,omitempty"`
	}
	TenantMemberAdded struct {
		UserID UserID    `json:"user_id"`
		Role   Role      `json:"role"`
		At     time.Time `json:"at"`
	}
	TenantMemberRoleChanged struct {
		UserID UserID `json:"user_id"`
		From   Role   `json:"from"`
		To     Role   `json:"to"`
	}
	TenantSettingsChanged struct {
		Settings TenantSettings `json:"settings"`
	}
	TenantPlanChanged struct {
		From     PlanID         `json:"from"`
		To       PlanID         `json:"to"`
		Settings TenantSettings `json:"settings"` // lowered where the new plan allows less
	}
)

func (TenantCreated) EventType() string           { return "tenant.created.v1" }
func (TenantMemberAdded) EventType() string       { return "tenant.member_added.v1" }
func (TenantMemberRoleChanged) EventType() string { return "tenant.member_role_changed.v1" }
func (TenantSettingsChanged) EventType() string   { return "tenant.settings_changed.v1" }
func (TenantPlanChanged) EventType() string       { return "tenant.plan_changed.v1" }

// Tenant is an organisation: its plan, settings and members.
type Tenant struct {
	aggregate
	id       TenantID
	name     string
	slug     string
	plan     PlanID
	settings TenantSettings
	members  map[UserID]Role
}

// CreateTenant records a new tenant on plan with creator as its first tenant admin (none when a
// super admin creates it for someone to be invited).
func CreateTenant(id TenantID, name, slug string, plan Plan, creator UserID, now time.Time) *Tenant {
	t := &Tenant{}
	t.record(t, TenantCreated{TenantID: id, Name: name, Slug: slug, Plan: plan.ID, Settings: DefaultSettings(plan.Limits), CreatedBy: creator})
	if creator != "" {
		t.record(t, TenantMemberAdded{UserID: creator, Role: RoleTenantAdmin, At: now})
	}
	return t
}

// RebuildTenant replays a tenant's history. Returns ErrNotFound for an empty history.
func RebuildTenant(history []Event, version int64) (*Tenant, error) {
	if len(history) == 0 {
		return nil, fmt.Errorf("tenant: %w", ErrNotFound)
	}
	t := &Tenant{}
	t.replay(t, history, version)
	return t, nil
}

func (t *Tenant) apply(e Event) {
	switch e := e.(type) {
	case TenantCreated:
		t.id, t.name, t.slug, t.plan, t.settings = e.TenantID, e.Name, e.Slug, e.Plan, e.Settings
		t.members = map[UserID]Role{}
	case TenantMemberAdded:
		t.members[e.UserID] = e.Role
	case TenantMemberRoleChanged:
		t.members[e.UserID] = e.To
	case TenantSettingsChanged:
		t.settings = e.Settings
	case TenantPlanChanged:
		t.plan, t.settings = e.To, e.Settings
	}
}

func (t *Tenant) ID() TenantID             { return t.id }
func (t *Tenant) Name() string             { return t.name }
func (t *Tenant) Slug() string             { return t.slug }
func (t *Tenant) Plan() PlanID             { return t.plan }
func (t *Tenant) Settings() TenantSettings { return t.settings }

// Limits are the limits of the tenant's plan.
func (t *Tenant) Limits() Limits {
	p, _ := PlanByID(t.plan)
	return p.Limits
}

// Role returns a member's role, or "" for a non-member.
func (t *Tenant) Role(user UserID) Role { return t.members[user] }

// MemberCount is how many members the tenant has.
func (t *Tenant) MemberCount() int { return len(t.members) }

// ChangeSettings replaces the settings after checking them against the plan.
func (t *Tenant) ChangeSettings(s TenantSettings) error {
	if err := s.Validate(t.Limits()); err != nil {
		return err
	}
	if s != t.settings {
		t.record(t, TenantSettingsChanged{Settings: s})
	}
	return nil
}

// ChangePlan moves the tenant to another plan, lowering settings the new plan does not allow.
func (t *Tenant) ChangePlan(plan Plan) {
	if plan.ID != t.plan {
		t.record(t, TenantPlanChanged{From: t.plan, To: plan.ID, Settings: t.settings.FitTo(plan.Limits)})
	}
}

// Membership is one tenant a user belongs to, with the user's role there.
type Membership struct {
	TenantID TenantID `json:"id"`
	Slug     string   `json:"slug"`
	Name     string   `json:"name"`
	Role     Role     `json:"role"`
}
