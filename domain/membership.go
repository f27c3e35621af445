package domain

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// A member's lifecycle in a tenant: deactivation (temporary until a date, or permanent and then
// reversible for a grace period), reactivation, and the close of a permanent deactivation's
// membership for good. Members live in the tenant's stream, so these are decided on the same
// version as the last-admin rule and the role changes they race with.

// Events of the members' lifecycle, in the tenant's stream.
type (
	// TenantMemberDeactivated: the member may no longer act in the tenant. Role is the role they
	// had, which a reactivation gives back.
	TenantMemberDeactivated struct {
		UserID       UserID     `json:"user_id"`
		Role         Role       `json:"role"`
		Reason       string     `json:"reason"`
		Note         string     `json:"note,omitempty"`
		Type         string     `json:"type"`                    // DeactivationTemporary, DeactivationPermanent
		ReactivateAt *time.Time `json:"reactivate_at,omitempty"` // temporary: when the timer reactivates
		GraceUntil   *time.Time `json:"grace_until,omitempty"`   // permanent: reversible until, then closed
		Resources    string     `json:"resources"`               // ResourcesTransfer, ResourcesArchive, ResourcesDelete
		TransferTo   UserID     `json:"transfer_to,omitempty"`
		By           UserID     `json:"by"`
		// Override: a super admin decided where the tenant's own admins do (see Override).
		Override bool      `json:"override,omitempty"`
		At       time.Time `json:"at"`
	}
	// TenantMemberReactivated: the member acts again with the role they had.
	TenantMemberReactivated struct {
		UserID   UserID    `json:"user_id"`
		How      string    `json:"how"` // ReactivatedManually, ReactivatedOnSchedule
		By       UserID    `json:"by,omitempty"`
		Override bool      `json:"override,omitempty"`
		At       time.Time `json:"at"`
	}
	// TenantMembershipClosed: a permanent deactivation's grace period passed; the user is no
	// longer a member (a new invitation is the way back).
	TenantMembershipClosed struct {
		UserID UserID    `json:"user_id"`
		At     time.Time `json:"at"`
	}
)

func (TenantMemberDeactivated) EventType() string { return "tenant.member_deactivated.v1" }
func (TenantMemberReactivated) EventType() string { return "tenant.member_reactivated.v1" }
func (TenantMembershipClosed) EventType() string  { return "tenant.membership_closed.v1" }

// Deactivation types, resource policies and reasons.
const (
	DeactivationTemporary = "temporary"
	DeactivationPermanent = "permanent"

	ResourcesTransfer = "transfer" // the member's databases go to another active member
	ResourcesArchive  = "archive"  // stopped, kept
	ResourcesDelete   = "delete"   // soft-deleted, restorable within the recovery window

	ReactivatedManually   = "manual"
	ReactivatedOnSchedule = "scheduled"
)

// DeactivationReasons are the reasons a deactivation may give.
var DeactivationReasons = []string{"departure", "security", "inactivity", "other"}

// DefaultDeactivationGrace is how long a permanent deactivation can be reversed unless configured
// otherwise (CLOUDDB_DEACTIVATION_GRACE).
const DefaultDeactivationGrace = 720 * time.Hour

// MaxTemporaryDeactivation bounds how far ahead a temporary deactivation may end: further is a
// permanent one.
const MaxTemporaryDeactivation = 366 * 24 * time.Hour

// MemberStatus is where a membership stands.
type MemberStatus string

const (
	MemberActive      MemberStatus = "active"
	MemberDeactivated MemberStatus = "deactivated"
)

// StoppedOwnerDeactivated is the reason of a database stopped because its owner was deactivated
// with their resources archived.
const StoppedOwnerDeactivated = "owner_deactivated"

// DeactivationRequest is what a tenant admin asks for.
type DeactivationRequest struct {
	Reason, Note, Type, Resources string
	ReactivateAt                  *time.Time
	TransferTo                    UserID
}

// Validate checks the request's fields on their own (the members they name are the tenant's
// business), all of them at once. Returns a *ValidationError.
func (r DeactivationRequest) Validate(now time.Time) error {
	fields := map[string]string{}
	if !slices.Contains(DeactivationReasons, r.Reason) {
		fields["reason"] = "must be " + strings.Join(DeactivationReasons, ", ")
	}
	if utf8.RuneCountInString(r.Note) > 1000 || !utf8.ValidString(r.Note) {
		fields["note"] = "must be at most 1000 characters of text"
	}
	switch r.Type {
	case DeactivationTemporary:
		switch {
		case r.ReactivateAt == nil:
			fields["reactivate_at"] = "is required for a temporary deactivation"
		case !r.ReactivateAt.After(now):
			fields["reactivate_at"] = "must be in the future"
		case r.ReactivateAt.Sub(now) > MaxTemporaryDeactivation:
			fields["reactivate_at"] = "must be within a year; longer is a permanent deactivation"
		}
	case DeactivationPermanent:
		if r.ReactivateAt != nil {
			fields["reactivate_at"] = "is only for a temporary deactivation"
		}
	default:
		fields["type"] = "must be temporary or permanent"
	}
	switch r.Resources {
	case ResourcesTransfer:
		if r.TransferTo == "" {
			fields["transfer_to"] = "is required to transfer the resources"
		}
	case ResourcesArchive, ResourcesDelete:
		if r.TransferTo != "" {
			fields["transfer_to"] = "is only for resources: transfer"
		}
	default:
		fields["resources"] = "must be transfer, archive or delete"
	}
	if len(fields) > 0 {
		return &ValidationError{Fields: fields}
	}
	return nil
}

// Override reports whether a decision on t by actor, acting as actorRole (EffectiveRole), is a
// super admin's override of the tenant's own management: a super admin who is not one of the
// tenant's active admins.
func (t *Tenant) Override(actor UserID, actorRole Role) bool {
	return actorRole == RoleSuperAdmin && t.Role(actor) != RoleTenantAdmin
}

// Deactivate records that user may no longer act in the tenant, decided by actor acting as
// actorRole. A permanent deactivation is reversible until now + grace. Returns ErrSelfDeactivation
// for the actor themselves, ErrNotFound for a non-member, ErrConflict for a member deactivated
// already, ErrLastAdmin for the last active tenant admin, ErrForbidden for a member whose role is
// above the actor's, and a *ValidationError when transfer_to is not another active member. The
// request's own fields are checked by DeactivationRequest.Validate.
func (t *Tenant) Deactivate(user UserID, req DeactivationRequest, actor UserID, actorRole Role, grace time.Duration, now time.Time) error {
	if user == actor {
		return ErrSelfDeactivation
	}
	return t.deactivate(user, req, actor, actorRole, grace, now)
}

// LeaveRequest is the deactivation a member asks for themselves when leaving: for departure,
// permanent, their databases handed over as resources says (to transferTo for a transfer).
func LeaveRequest(resources string, transferTo UserID, note string) DeactivationRequest {
	return DeactivationRequest{Reason: "departure", Type: DeactivationPermanent, Resources: resources, TransferTo: transferTo, Note: note}
}

// Leave is a member leaving the tenant of their own accord (POST /me/leave): their deactivation
// by themselves as req (a LeaveRequest) says, whose membership closes at once, without the grace period in
// which admins could reverse it: a new invitation is the way back. Returns what Deactivate does,
// but for ErrSelfDeactivation and ErrForbidden (anyone may leave); the last active tenant admin
// gets ErrLastAdmin.
func (t *Tenant) Leave(user UserID, req DeactivationRequest, now time.Time) error {
	if err := t.deactivate(user, req, user, t.members[user], 0, now); err != nil {
		return err
	}
	t.record(t, TenantMembershipClosed{UserID: user, At: now})
	return nil
}

func (t *Tenant) deactivate(user UserID, req DeactivationRequest, actor UserID, actorRole Role, grace time.Duration, now time.Time) error {
	role, ok := t.members[user]
	if !ok {
		return fmt.Errorf("member %s: %w", user, ErrNotFound)
	}
	if _, inactive := t.deactivated[user]; inactive {
		return fmt.Errorf("member %s is deactivated already: %w", user, ErrConflict)
	}
	// Before the actor's authority: of two admins deactivating each other at once, the one decided
	// second is told why, although its actor has just lost the right to ask.
	if role == RoleTenantAdmin && t.admins() == 1 {
		return ErrLastAdmin
	}
	if user != actor && !actorRole.CanAssign(role) {
		return fmt.Errorf("a %s cannot deactivate a %s: %w", actorRole, role, ErrForbidden)
	}
	if req.Resources == ResourcesTransfer && (req.TransferTo == user || t.Role(req.TransferTo) == "") {
		return NewValidationError("transfer_to", "must be another active member of this tenant")
	}
	e := TenantMemberDeactivated{UserID: user, Role: role, Reason: req.Reason, Note: req.Note, Type: req.Type,
		Resources: req.Resources, TransferTo: req.TransferTo, By: actor, Override: t.Override(actor, actorRole), At: now}
	if req.Type == DeactivationTemporary {
		at := req.ReactivateAt.UTC()
		e.ReactivateAt = &at
	} else {
		until := now.Add(grace)
		e.GraceUntil = &until
	}
	t.record(t, e)
	return nil
}

// Reactivate gives a deactivated member their access back, with the role they had, decided by
// actor acting as actorRole (how: ReactivatedManually), or by the timer of a temporary
// deactivation (ReactivatedOnSchedule, actor "" and actorRole RoleSuperAdmin). Returns ErrNotFound
// for a non-member (a closed membership included), ErrConflict for an active member, ErrForbidden
// for a member whose role is above the actor's.
func (t *Tenant) Reactivate(user UserID, how string, actor UserID, actorRole Role, now time.Time) error {
	role, ok := t.members[user]
	if !ok {
		return fmt.Errorf("member %s: %w", user, ErrNotFound)
	}
	if _, inactive := t.deactivated[user]; !inactive {
		return fmt.Errorf("member %s is active: %w", user, ErrConflict)
	}
	if !actorRole.CanAssign(role) {
		return fmt.Errorf("a %s cannot reactivate a %s: %w", actorRole, role, ErrForbidden)
	}
	override := how == ReactivatedManually && t.Override(actor, actorRole)
	t.record(t, TenantMemberReactivated{UserID: user, How: how, By: actor, Override: override, At: now})
	return nil
}

// CloseMembership ends the membership of a member deactivated for good once its grace period has
// passed. It records nothing for anyone else (reactivated meanwhile, temporary, within the grace).
func (t *Tenant) CloseMembership(user UserID, now time.Time) {
	if d, ok := t.deactivated[user]; ok && d.GraceUntil != nil && !now.Before(*d.GraceUntil) {
		t.record(t, TenantMembershipClosed{UserID: user, At: now})
	}
}

// ReactivationDue reports whether user's temporary deactivation has reached its reactivate_at.
func (t *Tenant) ReactivationDue(user UserID, now time.Time) bool {
	d, ok := t.deactivated[user]
	return ok && d.ReactivateAt != nil && !now.Before(*d.ReactivateAt)
}

// Deactivation returns the deactivation of a deactivated member.
func (t *Tenant) Deactivation(user UserID) (TenantMemberDeactivated, bool) {
	d, ok := t.deactivated[user]
	return d, ok
}

// IsMember reports whether user is a member, active or deactivated.
func (t *Tenant) IsMember(user UserID) bool {
	_, ok := t.members[user]
	return ok
}

// MemberRole returns a member's role, also while deactivated; "" for a non-member.
func (t *Tenant) MemberRole(user UserID) Role { return t.members[user] }

// Handover is what a deactivation's resource policy does to one of the member's databases.
type Handover string

const (
	HandoverTransfer Handover = "transfer" // the owner changes
	HandoverStop     Handover = "stop"     // stopped, kept
	HandoverDelete   Handover = "delete"   // soft-deleted
	HandoverKeep     Handover = "keep"     // archived already (stopped)
)

// HandOver applies a deactivation's resources policy to d, a database its owner still counts
// (provisioning, running or stopped): transfer gives it to to, archive stops it, delete
// soft-deletes it for window. Returns what it did, or ErrConflict for a database being
// provisioned that archive or delete cannot act on yet.
func (d *Database) HandOver(resources string, to UserID, window time.Duration, now time.Time) (Handover, error) {
	switch resources {
	case ResourcesTransfer:
		return HandoverTransfer, d.ChangeOwner(to)
	case ResourcesArchive:
		if d.state == StateStopped {
			return HandoverKeep, nil
		}
		return HandoverStop, d.Stop(StoppedOwnerDeactivated, now)
	case ResourcesDelete:
		return HandoverDelete, d.Delete(d.Name(), window, now)
	}
	return "", NewValidationError("resources", "must be transfer, archive or delete")
}
