package commands_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
)

// membersOf wires the members' lifecycle on a database fixture.
func membersOf(f *dbFixture) *commands.Members {
	return commands.NewMembers(f.identity, f.dbs, 48*time.Hour, domain.RecoveryWindow, quiet())
}

// tenantOf rebuilds a tenant from its stream.
func (f *fixture) tenantOf(t *testing.T, tenant domain.TenantID) *domain.Tenant {
	t.Helper()
	_, envs := f.stream(t, tenant.Stream())
	history := make([]domain.Event, len(envs))
	for i, env := range envs {
		var err error
		if history[i], err = f.store.Registry().Decode(env); err != nil {
			t.Fatal(err)
		}
	}
	rebuilt, err := domain.RebuildTenant(history, int64(len(envs)))
	if err != nil {
		t.Fatal(err)
	}
	return rebuilt
}

// A deactivation ends the member's sessions and revokes their keys in the tenant only, refuses
// their login there, hands their databases over with the quota and has the credentials they could
// see rotated; the dry run announces the same and records nothing; a reactivation gives the role
// back, not the databases.
func TestDeactivateWithTransfer(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	m := membersOf(f)
	admin, tenant := f.owner(t, "admin@example.com")
	dev := f.member(t, tenant, admin, "dev@example.com")
	heir := f.member(t, tenant, admin, "heir@example.com")
	elsewhere := f.tenant(t, dev) // the developer's own tenant, which the deactivation leaves alone
	db1 := f.running(t, tenant, dev, "first", domain.TemplateBlank)
	db2 := f.running(t, tenant, dev, "second", domain.TemplateBlank)

	here, err := f.identity.Login(ctx(t), commands.Login{Email: "dev@example.com", Password: password, Tenant: string(tenant), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	there, err := f.identity.Login(ctx(t), commands.Login{Email: "dev@example.com", Password: password, Tenant: string(elsewhere), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	keyHere, _, err := f.identity.CreateAPIKey(ctx(t), commands.Caller{User: dev, Session: here.Session.SessionID}, tenant, "here", nil, meta)
	if err != nil {
		t.Fatal(err)
	}
	keyThere, _, err := f.identity.CreateAPIKey(ctx(t), commands.Caller{User: dev, Session: there.Session.SessionID}, elsewhere, "there", nil, meta)
	if err != nil {
		t.Fatal(err)
	}

	f.clock.Advance(time.Second) // the sessions a change ends started before it
	cmd := commands.Deactivate{Tenant: tenant, Actor: admin, ActorRole: domain.RoleTenantAdmin, User: dev, Meta: meta, DryRun: true,
		Request: domain.DeactivationRequest{Reason: "departure", Type: domain.DeactivationPermanent, Resources: domain.ResourcesTransfer, TransferTo: heir}}
	f.settle(t)
	before, _ := f.stream(t, tenant.Stream())
	dry, err := m.Deactivate(ctx(t), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if dry.SessionsEnded != 1 || dry.APIKeysRevoked != 1 || len(dry.Databases) != 2 || dry.CredentialsRotated != 2 ||
		dry.Quota.MemberDatabases.Before != 2 || dry.Quota.MemberDatabases.After != 0 || dry.Quota.TransferTo == nil ||
		dry.Quota.TransferTo.After != 2 || dry.Quota.Databases.After != 2 || dry.GraceUntil == nil {
		t.Errorf("dry run impact = %+v", dry)
	}
	if after, _ := f.stream(t, tenant.Stream()); len(after) != len(before) {
		t.Fatalf("the dry run recorded %v", after[len(before):])
	}

	cmd.DryRun = false
	done, err := m.Deactivate(ctx(t), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if done.SessionsEnded != dry.SessionsEnded || len(done.Databases) != len(dry.Databases) || done.APIKeysRevoked != dry.APIKeysRevoked {
		t.Errorf("impact %+v differs from the dry run's %+v", done, dry)
	}
	quota := f.quota(t, tenant)
	if quota.DatabasesOf(heir) != 2 || quota.DatabasesOf(dev) != 0 {
		t.Errorf("quota after the transfer: heir %d, dev %d", quota.DatabasesOf(heir), quota.DatabasesOf(dev))
	}
	for _, id := range []domain.DatabaseID{db1.ID(), db2.ID()} {
		d := f.load(t, tenant, id)
		if d.Owner() != heir || d.State() != domain.StateRunning || d.CredentialsVersion() != 1 {
			t.Errorf("database %s: owner %s, state %s, credentials version %d; want the heir's, running, rotated once", d.Name(), d.Owner(), d.State(), d.CredentialsVersion())
		}
	}
	if s, err := f.views.Session(ctx(t), here.Session.SessionID); err != nil || s.EndedAt == nil || s.EndReason != domain.EndDeactivated {
		t.Errorf("the session in the tenant: %+v, %v; want ended (deactivated)", s, err)
	}
	if s, err := f.views.Session(ctx(t), there.Session.SessionID); err != nil || s.EndedAt != nil {
		t.Errorf("the session in the other tenant: %+v, %v; want live", s, err)
	}
	if k, err := f.views.APIKey(ctx(t), keyHere); err != nil || k.RevokedAt == nil {
		t.Errorf("the key of the tenant: %+v, %v; want revoked", k, err)
	}
	if k, err := f.views.APIKey(ctx(t), keyThere); err != nil || k.RevokedAt != nil {
		t.Errorf("the key of the other tenant: %+v, %v; want live", k, err)
	}
	var verr *domain.ValidationError
	if _, err := f.identity.Login(ctx(t), commands.Login{Email: "dev@example.com", Password: password, Tenant: string(tenant), Meta: meta}); !errors.As(err, &verr) {
		t.Errorf("login into the tenant = %v, want refused", err)
	}
	if res, err := f.identity.Login(ctx(t), commands.Login{Email: "dev@example.com", Password: password, Meta: meta}); err != nil || res.Tenant == nil || res.Tenant.TenantID != elsewhere {
		t.Errorf("login naming no tenant = %+v, %v; want the only active one", res.Tenant, err)
	}
	if role, err := f.views.RoleIn(ctx(t), tenant, dev); err != nil || role != "" {
		t.Errorf("RoleIn = %q, %v; want none while deactivated", role, err)
	}
	member, err := f.views.Member(ctx(t), tenant, dev)
	if err != nil || member.Status != "deactivated" || member.Role != domain.RoleDeveloper || member.Deactivation == nil ||
		member.Deactivation.GraceUntil == nil || member.Deactivation.Type != "permanent" {
		t.Errorf("member view = %+v, %v", member, err)
	}

	// Transfer to a deactivated member, deactivating again, reactivating an active one.
	cmd.User, cmd.Request.TransferTo = heir, dev
	if _, err := m.Deactivate(ctx(t), cmd); !errors.As(err, &verr) || verr.Fields["transfer_to"] == "" {
		t.Errorf("transfer to a deactivated member = %v, want a validation error on transfer_to", err)
	}
	cmd.User, cmd.Request.TransferTo = dev, heir
	if _, err := m.Deactivate(ctx(t), cmd); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("deactivating twice = %v, want ErrConflict", err)
	}
	if err := m.Reactivate(ctx(t), tenant, admin, domain.RoleTenantAdmin, heir, meta); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("reactivating an active member = %v, want ErrConflict", err)
	}

	if err := m.Reactivate(ctx(t), tenant, admin, domain.RoleTenantAdmin, dev, meta); err != nil {
		t.Fatal(err)
	}
	if role, err := f.views.RoleIn(ctx(t), tenant, dev); err != nil || role != domain.RoleDeveloper {
		t.Errorf("RoleIn after reactivation = %q, %v; want developer", role, err)
	}
	if f.load(t, tenant, db1.ID()).Owner() != heir {
		t.Error("the reactivation gave the databases back")
	}
}

// Archive stops the member's databases and a timer reactivates a temporary deactivation; delete
// soft-deletes them (restorable) and a permanent deactivation is closed after its grace.
func TestDeactivateArchiveDeleteAndTimers(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	m := membersOf(f)
	admin, tenant := f.owner(t, "admin@example.com")
	temp := f.member(t, tenant, admin, "temp@example.com")
	gone := f.member(t, tenant, admin, "gone@example.com")
	kept := f.running(t, tenant, temp, "kept", domain.TemplateBlank)
	dropped := f.running(t, tenant, gone, "dropped", domain.TemplateBlank)
	if err := f.dbs.SetSubQuota(ctx(t), tenant, gone, domain.MemberQuota{MaxDatabases: ptr(int64(2))}, meta); err != nil {
		t.Fatal(err)
	}

	back := f.clock.Now().Add(3 * time.Hour)
	if _, err := m.Deactivate(ctx(t), commands.Deactivate{Tenant: tenant, Actor: admin, ActorRole: domain.RoleTenantAdmin, User: temp, Meta: meta,
		Request: domain.DeactivationRequest{Reason: "inactivity", Type: domain.DeactivationTemporary, ReactivateAt: &back, Resources: domain.ResourcesArchive}}); err != nil {
		t.Fatal(err)
	}
	if v := f.view(t, tenant, kept.ID()); v.State != domain.StateStopped {
		t.Errorf("archived database is %s, want stopped", v.State)
	}
	deleted, err := m.Deactivate(ctx(t), commands.Deactivate{Tenant: tenant, Actor: admin, ActorRole: domain.RoleTenantAdmin, User: gone, Meta: meta,
		Request: domain.DeactivationRequest{Reason: "security", Type: domain.DeactivationPermanent, Resources: domain.ResourcesDelete}})
	if err != nil {
		t.Fatal(err)
	}
	if v := f.view(t, tenant, dropped.ID()); v.State != domain.StateDeleted || v.RecoverableUntil == nil {
		t.Errorf("deleted database is %s (recoverable until %v), want deleted and recoverable", v.State, v.RecoverableUntil)
	}
	if deleted.Quota.Databases.Before != 2 || deleted.Quota.Databases.After != 1 || f.quota(t, tenant).Databases() != 1 {
		t.Errorf("quota after the delete: impact %+v, counted %d", deleted.Quota, f.quota(t, tenant).Databases())
	}

	if n, err := m.TimersDue(ctx(t), f.db, "test"); err != nil || n != 0 {
		t.Fatalf("TimersDue before anything is due = %d, %v", n, err)
	}
	f.clock.Advance(3 * time.Hour)
	if n, err := m.TimersDue(ctx(t), f.db, "test"); err != nil || n != 1 {
		t.Fatalf("TimersDue at reactivate_at = %d, %v; want 1", n, err)
	}
	f.settle(t)
	if role, _ := f.views.RoleIn(ctx(t), tenant, temp); role != domain.RoleDeveloper {
		t.Errorf("the temporary member's role after the timer = %q, want developer", role)
	}
	if v := f.view(t, tenant, kept.ID()); v.State != domain.StateStopped {
		t.Errorf("the reactivation started the archived database: %s", v.State)
	}
	if _, err := f.dbs.Restore(ctx(t), tenant, dropped.ID(), meta); err != nil {
		t.Errorf("restore a database the deactivation deleted: %v", err)
	}

	f.clock.Advance(48 * time.Hour)
	if n, err := m.TimersDue(ctx(t), f.db, "test"); err != nil || n != 1 {
		t.Fatalf("TimersDue past the grace = %d, %v; want 1", n, err)
	}
	tn := f.tenantOf(t, tenant)
	if tn.IsMember(gone) || !tn.IsMember(temp) {
		t.Errorf("after the grace: gone is a member %v, temp %v", tn.IsMember(gone), tn.IsMember(temp))
	}
	if _, ok := f.quota(t, tenant).SubQuota(gone); ok {
		t.Error("a closed membership keeps its sub-quota")
	}
	if _, err := f.views.Member(ctx(t), tenant, gone); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("member view after the close: %v, want ErrNotFound", err)
	}
	if err := m.Reactivate(ctx(t), tenant, admin, domain.RoleTenantAdmin, gone, meta); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("reactivating a closed membership = %v, want ErrNotFound", err)
	}
	if n, err := m.TimersDue(ctx(t), f.db, "test"); err != nil || n != 0 {
		t.Errorf("TimersDue again = %d, %v; want nothing", n, err)
	}
}

// The last active tenant admin survives every race: two admins deactivating each other at once,
// and a deactivation racing a role change of the same member decide one after the other.
func TestDeactivationRaces(t *testing.T) {
	t.Parallel()
	f := newDBFixture(t)
	m := membersOf(f)
	a := f.user(t, "admin-a@example.com")
	b := f.user(t, "admin-b@example.com")
	archiveFor := func(tenant domain.TenantID, actor, user domain.UserID) commands.Deactivate {
		return commands.Deactivate{Tenant: tenant, Actor: actor, ActorRole: domain.RoleTenantAdmin, User: user, Meta: meta,
			Request: domain.DeactivationRequest{Reason: "other", Type: domain.DeactivationPermanent, Resources: domain.ResourcesArchive}}
	}
	for round := range 5 {
		f.clock.Advance(domain.InvitationWindow) // an address is invited at most InvitationsPerRecipient times a day
		tenant := f.tenant(t, a)
		f.invite(t, tenant, a, "admin-b@example.com", domain.RoleTenantAdmin)
		if _, _, err := f.identity.AcceptInvitation(ctx(t), f.token(t, "admin-b@example.com", "/invitations/accept"), "", "", meta); err != nil {
			t.Fatal(err)
		}
		pairs := [][2]domain.UserID{{a, b}, {b, a}}
		errs := race(2, func(i int) error {
			_, err := m.Deactivate(ctx(t), archiveFor(tenant, pairs[i][0], pairs[i][1]))
			return err
		})
		won := winners(t, fmt.Sprintf("round %d", round), errs, domain.ErrLastAdmin)
		tn := f.tenantOf(t, tenant)
		active := 0
		for _, u := range []domain.UserID{a, b} {
			if tn.Role(u) == domain.RoleTenantAdmin {
				active++
			}
		}
		if won != 1 || active != 1 {
			t.Fatalf("round %d: %d deactivations won, %d active admins left; want 1 and 1:%s", round, won, active, describe(errs))
		}
	}

	// A deactivation and a role change of one member, at once.
	admin, tenant := f.owner(t, "third@example.com")
	outcomes := map[string]int{}
	for round := range 4 { // the free plan's 5 users
		email := "racer" + string(rune('a'+round)) + "@example.com"
		dev := f.member(t, tenant, admin, email)
		errs := race(2, func(i int) error {
			if i == 0 {
				_, err := m.Deactivate(ctx(t), archiveFor(tenant, admin, dev))
				return err
			}
			_, err := f.identity.ChangeRole(ctx(t), tenant, admin, domain.RoleTenantAdmin, dev, string(domain.RoleViewer), false, meta)
			return err
		})
		if errs[0] != nil {
			t.Fatalf("round %d: the deactivation failed: %v", round, errs[0])
		}
		tn := f.tenantOf(t, tenant)
		d, ok := tn.Deactivation(dev)
		switch {
		case !ok:
			t.Fatalf("round %d: not deactivated", round)
		case errs[1] == nil && d.Role == domain.RoleViewer: // the role change first, then the deactivation on it
			outcomes["role change first"]++
		case errors.Is(errs[1], domain.ErrConflict) && d.Role == domain.RoleDeveloper:
			outcomes["deactivation first"]++
		default:
			t.Fatalf("round %d: role change %v, deactivated as %s", round, errs[1], d.Role)
		}
		if tn.MemberRole(dev) != d.Role {
			t.Fatalf("round %d: the role changed under the deactivation: %s, recorded %s", round, tn.MemberRole(dev), d.Role)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}
