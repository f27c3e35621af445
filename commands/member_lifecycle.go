package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Members handles a member's lifecycle in a tenant: deactivation, with what it does at once to
// their sessions, API keys and databases, reactivation, the timers that reactivate and close
// (reactor_member_timers.go), and a super admin's forced password reset. Each decision is the
// domain's (domain/membership.go); the dry runs make the same decisions and append nothing.
type Members struct {
	identity  *Identity
	databases *Databases
	// Grace is how long a permanent deactivation can be reversed (CLOUDDB_DEACTIVATION_GRACE).
	Grace time.Duration
	// RecoveryWindow is how long databases a deactivation deletes can be restored.
	RecoveryWindow time.Duration
	log            *slog.Logger
}

// NewMembers returns the members' lifecycle handlers.
func NewMembers(identity *Identity, databases *Databases, grace, recoveryWindow time.Duration, log *slog.Logger) *Members {
	if identity == nil || databases == nil || log == nil {
		panic("commands: NewMembers needs its dependencies")
	}
	return &Members{identity: identity, databases: databases, Grace: grace, RecoveryWindow: recoveryWindow, log: log}
}

// memberReadModels are the read models a change of a member's lifecycle shows in: the caller's
// next GET /users, /users/{id}/resources or /databases sees it.
var memberReadModels = append([]string{"databases"}, identityReadModels...)

// Deactivate is POST /users/{id}/deactivate.
type Deactivate struct {
	Tenant    domain.TenantID
	Actor     domain.UserID
	ActorRole domain.Role // domain.EffectiveRole: RoleSuperAdmin for a super admin
	User      domain.UserID
	Request   domain.DeactivationRequest
	// Leave: the member leaves of their own accord (User is Actor, Request a domain.LeaveRequest);
	// the membership closes at once and takes the member's sub-quotas with it.
	Leave  bool
	DryRun bool
	Meta   eventstore.Metadata
}

// DatabaseHandover is what a deactivation does to one of the member's databases.
type DatabaseHandover struct {
	ID     domain.DatabaseID `json:"id"`
	Name   string            `json:"name"`
	Action domain.Handover   `json:"action"`
	To     domain.UserID     `json:"to,omitempty"`
}

// CountChange is a count before and after a change, and its limit (nil: none).
type CountChange struct {
	Before int64  `json:"before"`
	After  int64  `json:"after"`
	Limit  *int64 `json:"limit"`
}

// DeactivationImpact is what a deactivation did, or would do in a dry run.
type DeactivationImpact struct {
	UserID         domain.UserID      `json:"user_id"`
	Role           domain.Role        `json:"role"`
	SessionsEnded  int                `json:"sessions_ended"`
	APIKeysRevoked int                `json:"api_keys_revoked"`
	Databases      []DatabaseHandover `json:"databases"`
	// CredentialsRotated counts the databases whose read-write password changes because the
	// member could see it (domain.ReadWriteAccessLost): all of the tenant's for an admin.
	CredentialsRotated int `json:"credentials_rotated"`
	Quota              struct {
		Databases       CountChange  `json:"databases"`        // the tenant's
		MemberDatabases CountChange  `json:"member_databases"` // the member's
		TransferTo      *CountChange `json:"transfer_to_databases,omitempty"`
	} `json:"quota"`
	ReactivateAt *time.Time `json:"reactivate_at,omitempty"`
	GraceUntil   *time.Time `json:"grace_until,omitempty"`
}

// Deactivate decides the deactivation on the tenant's stream and, in the same append, ends the
// member's sessions in the tenant, revokes their API keys bound to it, and hands their databases
// over (transferred, stopped or soft-deleted) with the quota that counts them; the databases'
// servers are then converged. Returns a *domain.ValidationError, domain.ErrSelfDeactivation,
// domain.ErrNotFound, domain.ErrConflict, domain.ErrLastAdmin or domain.ErrForbidden
// (domain.Tenant.Deactivate, or Leave). With DryRun nothing is recorded and the impact is returned.
func (h *Members) Deactivate(ctx context.Context, cmd Deactivate) (DeactivationImpact, error) {
	if err := cmd.Request.Validate(h.now()); err != nil {
		return DeactivationImpact{}, err
	}
	var impact DeactivationImpact
	var changed []domain.DatabaseID
	err := retry(ctx, func() error {
		now := h.now()
		t, err := load(ctx, h.identity.events, cmd.Tenant.Stream(), domain.RebuildTenant)
		if err != nil {
			return err
		}
		role := t.MemberRole(cmd.User)
		if cmd.Leave {
			err = t.Leave(cmd.User, cmd.Request, now)
		} else {
			err = t.Deactivate(cmd.User, cmd.Request, cmd.Actor, actingRole(t, cmd.Actor, cmd.ActorRole), h.Grace, now)
		}
		if err != nil {
			return err
		}
		deactivated, _ := t.Deactivation(cmd.User)
		impact = DeactivationImpact{UserID: cmd.User, Role: role, Databases: []DatabaseHandover{},
			ReactivateAt: deactivated.ReactivateAt, GraceUntil: deactivated.GraceUntil}
		member, err := h.identity.loadUser(ctx, cmd.User)
		if err != nil {
			return err
		}
		sessions, err := h.identity.sessionsOf(ctx, member.Logins())
		if err != nil {
			return err
		}
		ended := endedStreams(domain.DeactivationEnding(cmd.Tenant, cmd.User, now), sessions)
		impact.SessionsEnded = len(ended)
		impact.APIKeysRevoked = member.RevokeAPIKeysIn(cmd.Tenant)
		quota, err := load(ctx, h.identity.events, cmd.Tenant.QuotaStream(), domain.RebuildQuota)
		if err != nil {
			return err
		}
		for _, owner := range quota.Owners() {
			if domain.MaySeeReadWrite(role, owner == cmd.User) {
				impact.CredentialsRotated++
			}
		}
		databases, releases, err := h.handOver(ctx, cmd, quota, t.Limits(), &impact, now)
		if err != nil {
			return err
		}
		if cmd.Leave {
			quota.RemoveSubQuotas(cmd.User)
		}
		if cmd.DryRun {
			return nil
		}
		// The member's stream and the quota's are appended with the rest even when nothing of
		// theirs changed: a login or a database created meanwhile makes the decision again.
		streams := append([]eventstore.Stream{stream(cmd.Tenant.Stream(), "tenant", t), stream(cmd.User.Stream(), "user", member),
			stream(cmd.Tenant.QuotaStream(), "quota", quota)}, ended...)
		changed = changed[:0]
		for _, d := range databases {
			streams = append(streams, stream(d.ID().Stream(), "database", d))
			changed = append(changed, d.ID())
		}
		return h.append(ctx, eventstore.Append{Streams: streams, Releases: releases, Metadata: cmd.Meta})
	})
	if err != nil || cmd.DryRun {
		return impact, err
	}
	h.converge(ctx, changed)
	return impact, nil
}

// handOver applies the deactivation's resources policy to each database the member owns (those
// the quota counts), recording on quota what it changes there, and fills in the impact. It
// returns the databases with their recorded changes and the name claims that deleted ones give up.
func (h *Members) handOver(ctx context.Context, cmd Deactivate, quota *domain.Quota, limits domain.Limits, impact *DeactivationImpact, now time.Time) ([]*domain.Database, []eventstore.Claim, error) {
	to := cmd.Request.TransferTo
	tenantBefore, memberBefore, toBefore := quota.Databases(), quota.DatabasesOf(cmd.User), quota.DatabasesOf(to)
	var databases []*domain.Database
	var releases []eventstore.Claim
	for _, id := range quota.OwnedBy(cmd.User) {
		d, err := h.databases.load(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		action, err := d.HandOver(cmd.Request.Resources, to, h.RecoveryWindow, now)
		if err != nil {
			return nil, nil, fmt.Errorf("database %s of the member: %w", d.Name(), err)
		}
		switch action {
		case domain.HandoverTransfer:
			quota.ChangeOwner(id, to)
		case domain.HandoverDelete:
			quota.ReleaseDatabase(id)
			releases = append(releases, nameClaim(d))
		}
		handed := DatabaseHandover{ID: id, Name: d.Name(), Action: action}
		if action == domain.HandoverTransfer {
			handed.To = to
		}
		impact.Databases = append(impact.Databases, handed)
		databases = append(databases, d)
	}
	impact.Quota.Databases = CountChange{Before: tenantBefore, After: quota.Databases(), Limit: &limits.MaxDatabases}
	impact.Quota.MemberDatabases = countChange(quota, cmd.User, memberBefore)
	if to != "" {
		c := countChange(quota, to, toBefore)
		impact.Quota.TransferTo = &c
	}
	return databases, releases, nil
}

func countChange(quota *domain.Quota, user domain.UserID, before int64) CountChange {
	c := CountChange{Before: before, After: quota.DatabasesOf(user)}
	if limit, ok := quota.SubQuota(user); ok {
		c.Limit = &limit
	}
	return c
}

// Reactivate is POST /users/{id}/reactivate: the member acts again with the role they had;
// what was done to their databases stays done. Returns domain.ErrNotFound, domain.ErrConflict for
// an active member, domain.ErrForbidden (domain.Tenant.Reactivate).
func (h *Members) Reactivate(ctx context.Context, tenant domain.TenantID, actor domain.UserID, actorRole domain.Role, user domain.UserID, meta eventstore.Metadata) error {
	return retry(ctx, func() error {
		t, err := load(ctx, h.identity.events, tenant.Stream(), domain.RebuildTenant)
		if err != nil {
			return err
		}
		if err := t.Reactivate(user, domain.ReactivatedManually, actor, actingRole(t, actor, actorRole), h.now()); err != nil {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(tenant.Stream(), "tenant", t)}, Metadata: meta})
	})
}

// ForcePasswordReset is POST /admin/users/{id}/force-password-reset (super admins): the user's
// password stops working, every session and API key of theirs ends, and a reset link is mailed
// (the mail reactor sends it). Returns domain.ErrNotFound for an unknown user.
func (h *Members) ForcePasswordReset(ctx context.Context, by, user domain.UserID, meta eventstore.Metadata) (sessionsEnded int, err error) {
	err = retry(ctx, func() error {
		u, sessions, err := h.identity.userWithSessions(ctx, user)
		if err != nil {
			return err
		}
		now := h.now()
		token, tokenHash := newToken(string(user))
		u.ForcePasswordReset(by, tokenHash, now)
		ended := endedStreams(domain.ForcedResetEnding(user, now), sessions)
		mail, err := h.identity.requestMail(ctx, u.Email(), domain.MailPasswordReset, token, user, map[string]string{"name": u.Name()})
		if err != nil {
			return err
		}
		streams := append([]eventstore.Stream{stream(user.Stream(), "user", u), mailStream(mail)}, ended...)
		if err := h.append(ctx, eventstore.Append{Streams: streams, Metadata: meta}); err != nil {
			h.identity.forgetMail(mail)
			return err
		}
		sessionsEnded = len(ended)
		return nil
	})
	return sessionsEnded, err
}

func (h *Members) now() time.Time { return h.identity.now() }

// append writes a and waits until the read models of members show it.
func (h *Members) append(ctx context.Context, a eventstore.Append) error {
	res, err := h.identity.events.Append(ctx, a)
	if err != nil {
		return err
	}
	return h.identity.readModels.WaitFor(ctx, res.LastPosition, memberReadModels...)
}

// converge brings the servers of the databases a change recorded on in line with it; one that
// cannot be converged now is left to the reconciler.
func (h *Members) converge(ctx context.Context, ids []domain.DatabaseID) {
	for _, id := range ids {
		if h.databases.accountsChanged != nil {
			h.databases.accountsChanged(id)
		}
		if _, err := h.databases.Converge(ctx, id); err != nil && !errors.Is(err, context.Canceled) {
			h.log.Warn("the member's change is recorded but a database's server was not converged; the reconciler retries", "database_id", id, "err", err)
			h.databases.convergeSoon(id)
		}
	}
}
