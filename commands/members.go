package commands

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// MaxInvitationsPerRequest bounds one batch of invitations.
const MaxInvitationsPerRequest = 100

// Invite is POST /invitations.
type Invite struct {
	Tenant    domain.TenantID
	Actor     domain.UserID
	ActorRole domain.Role // what the actor acts as (domain.EffectiveRole): RoleSuperAdmin for a super admin
	Emails    []string
	Role      string
	Message   string
	Meta      eventstore.Metadata
}

// Invited is one invitation sent.
type Invited struct {
	domain.TenantInvitationCreated
}

// InviteFailure is one address that was not invited, and why (an API error code). RetryAfter is
// set for "rate_limited": when the address or the tenant may be invited again.
type InviteFailure struct {
	Email, Code, Message string
	RetryAfter           time.Duration
}

// Invite invites each address separately: the good ones are invited, the others come back as
// failures with a reason. Returns an error only for what concerns the whole request: a role the
// actor may not grant (domain.ErrForbidden), an invalid role, message or list.
func (h *Identity) Invite(ctx context.Context, cmd Invite) ([]Invited, []InviteFailure, error) {
	role, err := domain.ParseTenantRole("role", cmd.Role)
	if err != nil {
		return nil, nil, err
	}
	if !cmd.ActorRole.CanAssign(role) {
		return nil, nil, fmt.Errorf("a %s cannot invite a %s: %w", cmd.ActorRole, role, domain.ErrForbidden)
	}
	if len(cmd.Emails) == 0 || len(cmd.Emails) > MaxInvitationsPerRequest {
		return nil, nil, domain.NewValidationError("emails", fmt.Sprintf("must list 1 to %d addresses", MaxInvitationsPerRequest))
	}
	if utf8.RuneCountInString(cmd.Message) > 1000 || !utf8.ValidString(cmd.Message) {
		return nil, nil, domain.NewValidationError("message", "must be at most 1000 characters of text")
	}
	if cmd.Message != "" {
		tenant, err := load(ctx, h.events, cmd.Tenant.Stream(), domain.RebuildTenant)
		if err != nil {
			return nil, nil, err
		}
		if !tenant.InvitationMessageAllowed() {
			return nil, nil, fmt.Errorf("a message with the invitation: %w", domain.ErrNotInPlan)
		}
	}
	invited := []Invited{}
	failures := []InviteFailure{}
	seen := map[string]bool{}
	for _, raw := range cmd.Emails {
		email, err := domain.NormalizeEmail(raw)
		switch {
		case err != nil:
			failures = append(failures, InviteFailure{Email: raw, Code: "validation_failed", Message: "not an email address"})
			continue
		case seen[email]:
			failures = append(failures, InviteFailure{Email: raw, Code: "conflict", Message: "listed twice"})
			continue
		}
		seen[email] = true
		inv, err := h.inviteOne(ctx, cmd, email, role)
		if err != nil {
			code, msg, ok := inviteFailure(err)
			if !ok {
				return invited, failures, err
			}
			failure := InviteFailure{Email: email, Code: code, Message: msg}
			if limited := (*domain.RateLimitedError)(nil); errors.As(err, &limited) {
				failure.RetryAfter = limited.RetryAfter
			}
			failures = append(failures, failure)
			continue
		}
		invited = append(invited, Invited{inv})
	}
	return invited, failures, nil
}

// inviteFailure turns what stops one address into its reason; ok is false for errors that stop
// the whole request (the database is down, say).
func inviteFailure(err error) (code, message string, ok bool) {
	var quota *domain.QuotaExceededError
	var limited *domain.RateLimitedError
	switch {
	case errors.As(err, &limited) && limited.Resource == "recipient_invitations":
		return "rate_limited", fmt.Sprintf("this address was invited %d times in the last 24 hours", limited.Limit), true
	case errors.As(err, &limited):
		return "rate_limited", fmt.Sprintf("the tenant sent %d invitations in the last 24 hours", limited.Limit), true
	case errors.As(err, &quota):
		return "quota_exceeded", fmt.Sprintf("the plan allows %d users (members and pending invitations)", quota.Limit), true
	case errors.Is(err, domain.ErrConflict):
		return "conflict", "already a member or invited", true
	}
	return "", "", false
}

func (h *Identity) inviteOne(ctx context.Context, cmd Invite, email string, role domain.Role) (domain.TenantInvitationCreated, error) {
	existing, exists, err := h.userByEmail(ctx, email)
	if err != nil {
		return domain.TenantInvitationCreated{}, err
	}
	// Counted on the read model, which every invitation is in before its request answers: only
	// invitations of one address racing each other can pass the bound together.
	sent, err := h.directory.InvitationsTo(ctx, email, h.now().Add(-domain.InvitationWindow))
	if err != nil {
		return domain.TenantInvitationCreated{}, err
	}
	if err := domain.CheckInvitationsTo(sent, h.now()); err != nil {
		return domain.TenantInvitationCreated{}, err
	}
	var inv domain.TenantInvitationCreated
	err = retry(ctx, func() error {
		tenant, err := load(ctx, h.events, cmd.Tenant.Stream(), domain.RebuildTenant)
		if err != nil {
			return err
		}
		token, tokenHash := newToken(string(cmd.Tenant))
		inv = domain.TenantInvitationCreated{
			InvitationID: domain.InvitationID(uuid.NewString()), Email: email, Role: role, TokenHash: tokenHash,
			ExpiresAt: h.now().Add(domain.InvitationValidity).UTC(), InvitedBy: cmd.Actor, Message: cmd.Message, At: h.now().UTC(),
		}
		isMember := func(string) bool { return exists && tenant.IsMember(existing) }
		if err := tenant.Invite(inv, actingRole(tenant, cmd.Actor, cmd.ActorRole), isMember); err != nil {
			return err
		}
		mail, err := h.requestMail(ctx, email, domain.MailInvitation, token, "", map[string]string{
			"tenant": tenant.Name(), "role": string(role), "message": cmd.Message, "new_account": fmt.Sprint(!exists),
			domain.MailInvitationData: string(inv.InvitationID), // whose address this is (domain.SealPersonalData)
		})
		if err != nil {
			return err
		}
		err = h.append(ctx, eventstore.Append{
			Streams:  []eventstore.Stream{stream(cmd.Tenant.Stream(), "tenant", tenant), mailStream(mail)},
			Metadata: cmd.Meta,
		})
		if err != nil {
			h.forgetMail(mail)
		}
		return err
	})
	return inv, err
}

// RevokeInvitation is DELETE /invitations/{id}.
func (h *Identity) RevokeInvitation(ctx context.Context, tenant domain.TenantID, id domain.InvitationID, meta eventstore.Metadata) error {
	return retry(ctx, func() error {
		t, err := load(ctx, h.events, tenant.Stream(), domain.RebuildTenant)
		if err != nil {
			return err
		}
		if err := t.RevokeInvitation(id, h.now()); err != nil {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(tenant.Stream(), "tenant", t)}, Metadata: meta})
	})
}

// AcceptInvitation is POST /invitations/accept: the link proves the address, so an existing
// account joins, and a new one (name and password given) is created verified. An existing
// account that nobody verified is the invitee's, not its registrant's: whoever registered the
// address first (before the invitation, say) never proved it theirs, so the acceptance needs a
// password, which replaces theirs, and ends their sessions (claimUnverified). Returns
// domain.ErrExpired for a wrong, used, revoked or expired link, a *domain.ValidationError when a
// new account lacks its name or password.
func (h *Identity) AcceptInvitation(ctx context.Context, token, name, password string, meta eventstore.Metadata) (domain.Membership, domain.UserID, error) {
	rawTenant, tokenHash, err := parseToken(token)
	if err != nil {
		return domain.Membership{}, "", err
	}
	tenantID := domain.TenantID(rawTenant)
	var membership domain.Membership
	var userID domain.UserID
	var passwordHash string
	err = retry(ctx, func() error {
		tenant, err := load(ctx, h.events, tenantID.Stream(), domain.RebuildTenant)
		if errors.Is(err, domain.ErrNotFound) {
			return domain.ErrExpired
		} else if err != nil {
			return err
		}
		inv, err := tenant.InvitationByToken(tokenHash, h.now())
		if err != nil {
			return err
		}
		existing, exists, err := h.userByEmail(ctx, inv.Email)
		if err != nil {
			return err
		}
		a := eventstore.Append{Metadata: meta}
		if exists {
			userID = existing
			claimed, err := h.claimUnverified(ctx, existing, name, password, &passwordHash)
			if err != nil {
				return err
			}
			a.Streams = append(a.Streams, claimed...)
		} else {
			if passwordHash == "" {
				if passwordHash, err = h.newAccountPassword(name, password); err != nil {
					return err
				}
			}
			validName, _ := domain.ValidateName("name", name)
			userID = domain.UserID(uuid.NewString())
			user := domain.RegisterUser(userID, inv.Email, validName, passwordHash, true)
			a.Streams = append(a.Streams, stream(userID.Stream(), "user", user))
			a.Claims = []eventstore.Claim{{Key: domain.EmailClaim(inv.Email), StreamID: userID.Stream()}}
		}
		if err := tenant.AcceptInvitation(inv.InvitationID, userID, h.now()); err != nil {
			return err
		}
		a.Streams = append(a.Streams, stream(tenantID.Stream(), "tenant", tenant))
		a.Metadata.ActorID, a.Metadata.TenantID = string(userID), string(tenantID)
		if err := h.append(ctx, a); err != nil {
			var taken *eventstore.ClaimTakenError
			if errors.As(err, &taken) {
				return fmt.Errorf("account created meanwhile: %w", domain.ErrVersionConflict) // decide again: it exists now
			}
			return err
		}
		membership = domain.Membership{TenantID: tenantID, Slug: tenant.Slug(), Name: tenant.Name(), Role: inv.Role}
		return nil
	})
	return membership, userID, err
}

// claimUnverified hands the unverified account id to the invitee who accepts with password: it
// returns the account's stream (its password replaced, verified) and the streams of the sessions
// this ends, or nothing for a verified account. hash caches the password's hash across retries.
// Returns a *domain.ValidationError without a password.
func (h *Identity) claimUnverified(ctx context.Context, id domain.UserID, name, password string, hash *string) ([]eventstore.Stream, error) {
	user, err := h.loadUser(ctx, id)
	if err != nil || user.Status() != domain.UserPendingVerification {
		return nil, err
	}
	if *hash == "" {
		if password == "" {
			return nil, domain.NewValidationError("password", "this address has an account that was never verified: choose its password")
		}
		if *hash, err = h.newAccountPassword(cmp.Or(name, user.Name()), password); err != nil {
			return nil, err
		}
	}
	sessions, err := h.sessionsOf(ctx, user.Logins())
	if err != nil {
		return nil, err
	}
	now := h.now()
	user.ClaimUnverified(*hash, "invitation", now)
	ended := endedStreams(domain.PasswordChangeEnding(id, now), sessions)
	return append([]eventstore.Stream{stream(id.Stream(), "user", user)}, ended...), nil
}

func (h *Identity) newAccountPassword(name, password string) (string, error) {
	_, nameErr := domain.ValidateName("name", name)
	var passwordErr error
	if password == "" {
		passwordErr = domain.NewValidationError("password", "a new account needs a password")
	}
	if err := joinValidation(nameErr, passwordErr); err != nil {
		return "", err
	}
	if err := domain.CheckPasswordStrength(password); err != nil {
		return "", err
	}
	return h.hash(password)
}

// RoleChange is what a role change did, or would do in a dry run.
type RoleChange struct {
	From, To      domain.Role
	SessionsEnded int // the member's sessions in the tenant that the change ends
	// CredentialsRotated counts the databases whose read-write password changes because the
	// member loses the sight of it (domain.ReadWriteAccessLost).
	CredentialsRotated int
}

// ChangeRole is PUT /users/{id}/role. The member's sessions in this tenant end
// (domain.RoleChangeEnding), recorded with the change. With dryRun nothing is recorded and the
// impact is returned.
func (h *Identity) ChangeRole(ctx context.Context, tenant domain.TenantID, actor domain.UserID, actorRole domain.Role, user domain.UserID, roleName string, dryRun bool, meta eventstore.Metadata) (RoleChange, error) {
	to, err := domain.ParseTenantRole("role", roleName)
	if err != nil {
		return RoleChange{}, err
	}
	var change RoleChange
	err = retry(ctx, func() error {
		t, err := load(ctx, h.events, tenant.Stream(), domain.RebuildTenant)
		if err != nil {
			return err
		}
		change = RoleChange{From: t.Role(user), To: to}
		if err := t.ChangeRole(user, to, actor, actingRole(t, actor, actorRole)); err != nil || len(t.PendingEvents()) == 0 {
			return err
		}
		member, err := h.loadUser(ctx, user)
		if err != nil {
			return err
		}
		sessions, err := h.sessionsOf(ctx, member.Logins())
		if err != nil {
			return err
		}
		ended := endedStreams(domain.RoleChangeEnding(tenant, user, h.now()), sessions)
		change.SessionsEnded = len(ended)
		quota, err := load(ctx, h.events, tenant.QuotaStream(), domain.RebuildQuota)
		if err != nil {
			return err
		}
		for _, owner := range quota.Owners() {
			if domain.LosesReadWrite(change.From, to, owner == user) {
				change.CredentialsRotated++
			}
		}
		if dryRun {
			return nil
		}
		// The member's stream is appended nothing but must not move: a login committed meanwhile
		// would start a session this decision did not see.
		streams := append([]eventstore.Stream{stream(tenant.Stream(), "tenant", t), stream(user.Stream(), "user", member)}, ended...)
		return h.append(ctx, eventstore.Append{Streams: streams, Metadata: meta})
	})
	return change, err
}

// actingRole is the role a decision on t is made with (domain.EffectiveRole): the actor's role in
// the tenant's own stream (a role changed a moment ago counts, not the one the session started
// with), unless the request's role says super admin.
func actingRole(t *domain.Tenant, actor domain.UserID, requestRole domain.Role) domain.Role {
	return domain.EffectiveRole(t.Role(actor), requestRole == domain.RoleSuperAdmin)
}
