package domain

import (
	"crypto/subtle"
	"fmt"
	"slices"
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
		// ImpliesSessionEnds is true for the changes recorded as v1, before the ends of sessions
		// were events of their own: such a change itself ended the member's sessions in the
		// tenant, and only the sessions read model knows. Later changes record session.ended.v1
		// in each session they end.
		ImpliesSessionEnds bool `json:"implies_session_ends,omitempty"`
		// Override: a super admin changed it where the tenant's own admins decide
		// (Tenant.Override); absent (false) in the changes recorded before it was kept.
		Override bool `json:"override,omitempty"`
	}
	TenantSettingsChanged struct {
		Settings TenantSettings `json:"settings"`
	}
	TenantPlanChanged struct {
		From     PlanID         `json:"from"`
		To       PlanID         `json:"to"`
		Settings TenantSettings `json:"settings"` // lowered where the new plan allows less
	}
	TenantInvitationCreated struct {
		InvitationID InvitationID `json:"invitation_id"`
		Email        string       `json:"email"`
		Role         Role         `json:"role"`
		TokenHash    string       `json:"token_hash"`
		ExpiresAt    time.Time    `json:"expires_at"`
		InvitedBy    UserID       `json:"invited_by"`
		Message      string       `json:"message,omitempty"`
		At           time.Time    `json:"at"`
	}
	TenantInvitationAccepted struct {
		InvitationID InvitationID `json:"invitation_id"`
		UserID       UserID       `json:"user_id"`
		At           time.Time    `json:"at"`
	}
	TenantInvitationRevoked struct {
		InvitationID InvitationID `json:"invitation_id"`
	}
)

// InvitationValidity is how long an invitation link works.
const InvitationValidity = 7 * 24 * time.Hour

func (TenantCreated) EventType() string            { return "tenant.created.v1" }
func (TenantMemberAdded) EventType() string        { return "tenant.member_added.v1" }
func (TenantMemberRoleChanged) EventType() string  { return "tenant.member_role_changed.v2" }
func (TenantSettingsChanged) EventType() string    { return "tenant.settings_changed.v1" }
func (TenantPlanChanged) EventType() string        { return "tenant.plan_changed.v1" }
func (TenantInvitationCreated) EventType() string  { return "tenant.invitation_created.v1" }
func (TenantInvitationAccepted) EventType() string { return "tenant.invitation_accepted.v1" }
func (TenantInvitationRevoked) EventType() string  { return "tenant.invitation_revoked.v1" }

// invitation is a pending, accepted or revoked invitation of a tenant.
type invitation struct {
	TenantInvitationCreated
	accepted, revoked bool
}

func (i *invitation) pending(now time.Time) bool {
	return !i.accepted && !i.revoked && now.Before(i.ExpiresAt)
}

// Tenant is an organisation: its plan, settings and members.
type Tenant struct {
	aggregate
	id          TenantID
	name        string
	slug        string
	plan        PlanID
	settings    TenantSettings
	members     map[UserID]Role // active and deactivated members (membership.go)
	deactivated map[UserID]TenantMemberDeactivated
	invitations map[InvitationID]*invitation
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
		t.members, t.invitations = map[UserID]Role{}, map[InvitationID]*invitation{}
		t.deactivated = map[UserID]TenantMemberDeactivated{}
	case TenantMemberAdded:
		t.members[e.UserID] = e.Role
	case TenantMemberRoleChanged:
		t.members[e.UserID] = e.To
	case TenantSettingsChanged:
		t.settings = e.Settings
	case TenantPlanChanged:
		t.plan, t.settings = e.To, e.Settings
	case TenantInvitationCreated:
		t.invitations[e.InvitationID] = &invitation{TenantInvitationCreated: e}
	case TenantInvitationAccepted:
		t.invitations[e.InvitationID].accepted = true
	case TenantInvitationRevoked:
		t.invitations[e.InvitationID].revoked = true
	case TenantMemberDeactivated:
		t.deactivated[e.UserID] = e
	case TenantMemberReactivated:
		delete(t.deactivated, e.UserID)
	case TenantMembershipClosed:
		delete(t.deactivated, e.UserID)
		delete(t.members, e.UserID)
	}
}

// seats counts members (deactivated ones too: they may come back) and pending invitations: what
// the plan's user limit bounds.
func (t *Tenant) seats(now time.Time) int64 {
	n := int64(len(t.members))
	for _, inv := range t.invitations {
		if inv.pending(now) {
			n++
		}
	}
	return n
}

// Invite records an invitation of email with role, by a member whose role is actorRole (a super
// admin passes RoleSuperAdmin). Returns ErrForbidden for a role above the inviter's, ErrConflict
// (with a reason) for a member or a pending invitation of that email, and a *QuotaExceededError
// when members and pending invitations would pass the plan's user limit.
func (t *Tenant) Invite(inv TenantInvitationCreated, actorRole Role, isMember func(email string) bool) error {
	if !actorRole.CanAssign(inv.Role) || inv.Role == RoleSuperAdmin {
		return fmt.Errorf("a %s cannot invite a %s: %w", actorRole, inv.Role, ErrForbidden)
	}
	if isMember(inv.Email) {
		return fmt.Errorf("%s is a member already: %w", inv.Email, ErrConflict)
	}
	for _, other := range t.invitations {
		if other.Email == inv.Email && other.pending(inv.At) {
			return fmt.Errorf("%s has a pending invitation: %w", inv.Email, ErrConflict)
		}
	}
	if limit := t.Limits().MaxUsers; t.seats(inv.At) >= limit {
		return &QuotaExceededError{Resource: "users", Used: t.seats(inv.At), Limit: limit}
	}
	var sent []time.Time
	for _, other := range t.invitations {
		sent = append(sent, other.At)
	}
	if err := rateOf("tenant_invitations", sent, t.InvitationsPerDay(), inv.At); err != nil {
		return err
	}
	t.record(t, inv)
	return nil
}

// Invitations are mail the platform sends to addresses a tenant names, so they are bounded like
// the relay they could become: per tenant InvitationsPerDay (revoked ones count, so revoking and
// inviting again is no way around it), and per address InvitationsPerRecipient from all tenants
// together (CheckInvitationsTo), each within InvitationWindow.
const (
	InvitationWindow        = 24 * time.Hour
	InvitationsPerRecipient = 3
	// maxInvitationsPerDay caps InvitationsPerDay for plans with very many users.
	maxInvitationsPerDay = 1000
)

// InvitationsPerDay is how many invitations the tenant may send within InvitationWindow: ten per
// user its plan allows (50 on the free plan), at most maxInvitationsPerDay.
func (t *Tenant) InvitationsPerDay() int {
	return int(min(10*t.Limits().MaxUsers, maxInvitationsPerDay))
}

// InvitationMessageAllowed reports whether the tenant's invitations may carry a message of the
// inviter's: not on the free plan, where anyone could sign up to have the platform mail their
// text to strangers.
func (t *Tenant) InvitationMessageAllowed() bool { return t.plan != PlanFree }

// CheckInvitationsTo refuses an invitation of an address that was invited InvitationsPerRecipient
// times within InvitationWindow before now, by any tenants (sent are those times). Returns a
// *RateLimitedError.
func CheckInvitationsTo(sent []time.Time, now time.Time) error {
	return rateOf("recipient_invitations", sent, InvitationsPerRecipient, now)
}

// rateOf returns a *RateLimitedError when limit of sent fall within InvitationWindow before now;
// it says when the oldest of them leaves the window.
func rateOf(resource string, sent []time.Time, limit int, now time.Time) error {
	var recent []time.Time
	for _, at := range sent {
		if now.Sub(at) < InvitationWindow {
			recent = append(recent, at)
		}
	}
	if len(recent) < limit {
		return nil
	}
	slices.SortFunc(recent, time.Time.Compare)
	return &RateLimitedError{Resource: resource, Limit: limit, RetryAfter: recent[len(recent)-limit].Add(InvitationWindow).Sub(now)}
}

// InvitationByToken finds the pending invitation whose token hash matches. Returns ErrExpired
// when none does (wrong, used, revoked or expired link).
func (t *Tenant) InvitationByToken(tokenHash string, now time.Time) (TenantInvitationCreated, error) {
	for _, inv := range t.invitations {
		if subtle.ConstantTimeCompare([]byte(inv.TokenHash), []byte(tokenHash)) == 1 && inv.pending(now) {
			return inv.TenantInvitationCreated, nil
		}
	}
	return TenantInvitationCreated{}, ErrExpired
}

// AcceptInvitation makes user a member with the invitation's role. Returns ErrExpired for an
// invitation that is no longer pending, ErrConflict when the user is a member already.
func (t *Tenant) AcceptInvitation(id InvitationID, user UserID, now time.Time) error {
	inv, ok := t.invitations[id]
	if !ok || !inv.pending(now) {
		return ErrExpired
	}
	if _, member := t.members[user]; member {
		return fmt.Errorf("user %s is a member already: %w", user, ErrConflict)
	}
	t.record(t, TenantInvitationAccepted{InvitationID: id, UserID: user, At: now})
	t.record(t, TenantMemberAdded{UserID: user, Role: inv.Role, At: now})
	return nil
}

// RevokeInvitation withdraws a pending invitation. Returns ErrNotFound for an unknown one,
// ErrConflict for one no longer pending.
func (t *Tenant) RevokeInvitation(id InvitationID, now time.Time) error {
	inv, ok := t.invitations[id]
	if !ok {
		return fmt.Errorf("invitation %s: %w", id, ErrNotFound)
	}
	if !inv.pending(now) {
		return fmt.Errorf("invitation %s is no longer pending: %w", id, ErrConflict)
	}
	t.record(t, TenantInvitationRevoked{InvitationID: id})
	return nil
}

// ChangeRole sets a member's role, decided by actor acting as actorRole. A role may only grant,
// change or remove roles at or below its own; the last tenant admin cannot be demoted
// (ErrLastAdmin); a non-member is ErrNotFound, a deactivated one ErrConflict (reactivate first).
// A super admin's change is recorded as an override (Override).
func (t *Tenant) ChangeRole(user UserID, to Role, actor UserID, actorRole Role) error {
	from, ok := t.members[user]
	if !ok {
		return fmt.Errorf("member %s: %w", user, ErrNotFound)
	}
	if _, inactive := t.deactivated[user]; inactive {
		return fmt.Errorf("member %s is deactivated; reactivate them first: %w", user, ErrConflict)
	}
	if !actorRole.CanAssign(from) || !actorRole.CanAssign(to) || to == RoleSuperAdmin {
		return fmt.Errorf("a %s cannot change a %s into a %s: %w", actorRole, from, to, ErrForbidden)
	}
	if from == to {
		return nil
	}
	if from == RoleTenantAdmin && t.admins() == 1 {
		return ErrLastAdmin
	}
	t.record(t, TenantMemberRoleChanged{UserID: user, From: from, To: to, Override: t.Override(actor, actorRole)})
	return nil
}

// admins counts the active tenant admins.
func (t *Tenant) admins() int {
	n := 0
	for user, r := range t.members {
		if _, inactive := t.deactivated[user]; r == RoleTenantAdmin && !inactive {
			n++
		}
	}
	return n
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

// Role returns an active member's role: "" for a non-member, and for a deactivated member, who
// may do nothing in the tenant (MemberRole has their role).
func (t *Tenant) Role(user UserID) Role {
	if _, inactive := t.deactivated[user]; inactive {
		return ""
	}
	return t.members[user]
}

// MemberCount is how many members the tenant has, deactivated ones included.
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
