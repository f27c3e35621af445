package commands_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
)

func TestInviteSeatsAndConflicts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := f.user(t, "owner@example.com")
	member := f.user(t, "member@example.com")
	tenant := f.tenant(t, admin) // free plan: 5 users, the owner is the first
	f.invite(t, tenant, admin, "member@example.com", domain.RoleViewer)
	if _, _, err := f.identity.AcceptInvitation(ctx(t), f.token(t, "member@example.com", "/invitations/accept"), "", "", meta); err != nil {
		t.Fatal(err)
	}
	invite := func(actorRole domain.Role, role domain.Role, emails ...string) ([]commands.Invited, []commands.InviteFailure, error) {
		return f.identity.Invite(ctx(t), commands.Invite{Tenant: tenant, Actor: admin, ActorRole: actorRole, Emails: emails, Role: string(role), Meta: meta})
	}

	t.Run("members and pending invitations fill the plan", func(t *testing.T) {
		// 2 members + 3 invitations = 5 seats; the 4th address would be the 6th user.
		invited, failures, err := invite(domain.RoleTenantAdmin, domain.RoleDeveloper, "a@example.com", "b@example.com", "c@example.com", "d@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if len(invited) != 3 {
			t.Fatalf("invited %d, want 3 (failures %+v)", len(invited), failures)
		}
		if len(failures) != 1 || failures[0].Email != "d@example.com" || failures[0].Code != "quota_exceeded" {
			t.Fatalf("failures %+v, want d@example.com with quota_exceeded", failures)
		}
		if !strings.Contains(failures[0].Message, "5") {
			t.Errorf("failure message %q does not name the limit", failures[0].Message)
		}
		// The tenant's own stream refuses it with the plan's limit.
		if _, failures, _ := invite(domain.RoleTenantAdmin, domain.RoleViewer, "e@example.com"); len(failures) != 1 || failures[0].Code != "quota_exceeded" {
			t.Errorf("a 6th user: %+v, want quota_exceeded", failures)
		}
		// Revoking one frees its seat.
		if err := f.identity.RevokeInvitation(ctx(t), tenant, invited[0].InvitationID, meta); err != nil {
			t.Fatal(err)
		}
		if again, failures, err := invite(domain.RoleTenantAdmin, domain.RoleDeveloper, "d@example.com"); err != nil || len(again) != 1 {
			t.Fatalf("invite after a revoke: %v %+v %v", again, failures, err)
		}
		if _, failures, _ := invite(domain.RoleTenantAdmin, domain.RoleViewer, "e@example.com"); len(failures) != 1 || failures[0].Code != "quota_exceeded" {
			t.Errorf("the freed seat is taken again, yet: %+v", failures)
		}
		f.settle(t)
		pending := 0
		views, err := f.views.InvitationsOf(ctx(t), tenant, f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range views {
			if v.Status == "pending" {
				pending++
			}
		}
		if pending != 3 {
			t.Errorf("read model shows %d pending invitations, want 3: %+v", pending, views)
		}
	})

	t.Run("a member or a pending address is a conflict", func(t *testing.T) {
		_, failures, err := invite(domain.RoleTenantAdmin, domain.RoleViewer, "Member@Example.com", "b@example.com", "owner@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if len(failures) != 3 {
			t.Fatalf("failures %+v, want 3", failures)
		}
		for _, fl := range failures {
			if fl.Code != "conflict" {
				t.Errorf("%s: code %s, want conflict", fl.Email, fl.Code)
			}
		}
	})

	t.Run("a role above the actor's is forbidden", func(t *testing.T) {
		for _, role := range []domain.Role{domain.RoleViewer, domain.RoleDeveloper} {
			_, _, err := invite(role, domain.RoleTenantAdmin, "boss@example.com")
			if !errors.Is(err, domain.ErrForbidden) {
				t.Errorf("a %s invites a tenant_admin: %v, want ErrForbidden", role, err)
			}
		}
		// The role that counts is the one in the tenant's stream: a viewer whose session says
		// tenant_admin is still a viewer.
		_, _, err := f.identity.Invite(ctx(t), commands.Invite{Tenant: tenant, Actor: member, ActorRole: domain.RoleTenantAdmin, Emails: []string{"boss@example.com"}, Role: string(domain.RoleTenantAdmin), Meta: meta})
		if !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("a viewer (tenant_admin in its session) invites a tenant_admin: %v, want ErrForbidden", err)
		}
		if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE event_type = 'tenant.invitation_created.v1' AND JSON_VALUE(payload, '$.email') = 'boss@example.com'`); n != 0 {
			t.Errorf("%d forbidden invitations recorded", n)
		}
	})
}

func TestAcceptInvitation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := f.user(t, "owner@example.com")
	tenant := f.tenant(t, admin)

	t.Run("a new account is created verified, with the role", func(t *testing.T) {
		f.invite(t, tenant, admin, "Newcomer@Example.com", domain.RoleDeveloper)
		token := f.token(t, "newcomer@example.com", "/invitations/accept")
		if _, _, err := f.identity.AcceptInvitation(ctx(t), token, "Newcomer", "", meta); err == nil {
			t.Fatal("a new account without a password was accepted")
		}
		m, id, err := f.identity.AcceptInvitation(ctx(t), token, "Newcomer", password, meta)
		if err != nil {
			t.Fatal(err)
		}
		if m.TenantID != tenant || m.Role != domain.RoleDeveloper {
			t.Errorf("membership %+v, want developer of %s", m, tenant)
		}
		u, err := f.views.User(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if u.Status != domain.UserActive || u.Email != "newcomer@example.com" {
			t.Errorf("new account %+v, want active newcomer@example.com", u)
		}
		if role, err := f.views.RoleIn(ctx(t), tenant, id); err != nil || role != domain.RoleDeveloper {
			t.Errorf("read model role %q, %v", role, err)
		}
		if res := f.login(t, "newcomer@example.com", password, ""); res.Tenant == nil || res.Tenant.Role != domain.RoleDeveloper {
			t.Errorf("login of the new account: tenant %+v", res.Tenant)
		}
		if _, _, err := f.identity.AcceptInvitation(ctx(t), token, "Newcomer", password, meta); !errors.Is(err, domain.ErrExpired) {
			t.Errorf("second use: %v, want ErrExpired", err)
		}
		if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE event_type = 'user.registered.v1' AND JSON_VALUE(payload, '$.email') = 'newcomer@example.com'`); n != 1 {
			t.Errorf("%d accounts registered for newcomer@example.com", n)
		}
	})

	t.Run("an existing account joins", func(t *testing.T) {
		existing := f.user(t, "existing@example.com")
		f.invite(t, tenant, admin, "existing@example.com", domain.RoleViewer)
		token := f.token(t, "existing@example.com", "/invitations/accept")
		m, id, err := f.identity.AcceptInvitation(ctx(t), token, "", "", meta)
		if err != nil {
			t.Fatal(err)
		}
		if id != existing || m.Role != domain.RoleViewer {
			t.Errorf("joined as %s with %s, want %s as viewer", id, m.Role, existing)
		}
		if role, _ := f.views.RoleIn(ctx(t), tenant, existing); role != domain.RoleViewer {
			t.Errorf("read model role %q", role)
		}
		if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE event_type = 'user.registered.v1' AND JSON_VALUE(payload, '$.email') = 'existing@example.com'`); n != 1 {
			t.Errorf("%d accounts for existing@example.com, want 1", n)
		}
		if _, _, err := f.identity.AcceptInvitation(ctx(t), token, "", "", meta); !errors.Is(err, domain.ErrExpired) {
			t.Errorf("second use: %v, want ErrExpired", err)
		}
	})

	t.Run("a revoked invitation is expired", func(t *testing.T) {
		inv := f.invite(t, tenant, admin, "revoked@example.com", domain.RoleViewer)
		token := f.token(t, "revoked@example.com", "/invitations/accept")
		if err := f.identity.RevokeInvitation(ctx(t), tenant, inv.InvitationID, meta); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.identity.AcceptInvitation(ctx(t), token, "Revoked", password, meta); !errors.Is(err, domain.ErrExpired) {
			t.Errorf("accept after revoke: %v, want ErrExpired", err)
		}
	})

	t.Run("a tampered link is expired", func(t *testing.T) {
		f.invite(t, tenant, admin, "tampered@example.com", domain.RoleViewer)
		token := f.token(t, "tampered@example.com", "/invitations/accept")
		id, secret, _ := strings.Cut(token, ".")
		flip := func(s string, i int) string {
			c := byte('A')
			if s[i] == 'A' {
				c = 'B'
			}
			return s[:i] + string(c) + s[i+1:]
		}
		otherTenant := strings.ReplaceAll(string(f.tenant(t, admin)), "-", "")
		for name, bad := range map[string]string{
			"secret changed":    id + "." + flip(secret, 10),
			"secret truncated":  id + "." + secret[:42],
			"secret extended":   token + "A",
			"another tenant":    otherTenant + "." + secret,
			"no separator":      id + secret,
			"empty":             "",
			"not a tenant uuid": strings.Repeat("z", 32) + "." + secret,
		} {
			if _, _, err := f.identity.AcceptInvitation(ctx(t), bad, "Tamperer", password, meta); !errors.Is(err, domain.ErrExpired) {
				t.Errorf("%s: %v, want ErrExpired", name, err)
			}
		}
		// The genuine link still works.
		if _, _, err := f.identity.AcceptInvitation(ctx(t), token, "Tampered", password, meta); err != nil {
			t.Errorf("the genuine link after tampered ones: %v", err)
		}
	})

	// Last: it moves the clock.
	t.Run("an invitation expires after 7 days", func(t *testing.T) {
		f.invite(t, tenant, admin, "late@example.com", domain.RoleViewer)
		token := f.token(t, "late@example.com", "/invitations/accept")
		f.clock.Advance(domain.InvitationValidity)
		if _, _, err := f.identity.AcceptInvitation(ctx(t), token, "Late", password, meta); !errors.Is(err, domain.ErrExpired) {
			t.Errorf("accept after 7 days: %v, want ErrExpired", err)
		}
		// An expired invitation no longer holds a seat: the address can be invited again.
		f.invite(t, tenant, admin, "late@example.com", domain.RoleViewer)
		if _, _, err := f.identity.AcceptInvitation(ctx(t), f.token(t, "late@example.com", "/invitations/accept"), "Late", password, meta); err != nil {
			t.Errorf("accept a fresh invitation: %v", err)
		}
	})
}

// TestInvitationExpiryFreesSeats: the plan counts pending invitations only while they can
// still be accepted.
func TestInvitationExpiryFreesSeats(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := f.user(t, "owner@example.com")
	tenant := f.tenant(t, admin)
	var emails []string
	for i := range 5 {
		emails = append(emails, fmt.Sprintf("seat%d@example.com", i))
	}
	invited, failures, err := f.identity.Invite(ctx(t), commands.Invite{Tenant: tenant, Actor: admin, ActorRole: domain.RoleTenantAdmin, Emails: emails, Meta: meta})
	if err != nil || len(invited) != 4 || len(failures) != 1 || failures[0].Code != "quota_exceeded" {
		t.Fatalf("invited %d, failures %+v, err %v; want 4 and one quota_exceeded", len(invited), failures, err)
	}
	f.clock.Advance(domain.InvitationValidity + time.Second)
	invited, failures, err = f.identity.Invite(ctx(t), commands.Invite{Tenant: tenant, Actor: admin, ActorRole: domain.RoleTenantAdmin, Emails: emails, Meta: meta})
	if err != nil || len(invited) != 4 || len(failures) != 1 {
		t.Fatalf("after expiry: invited %d, failures %+v, err %v; want 4 and one quota_exceeded", len(invited), failures, err)
	}
}
