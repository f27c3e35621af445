package commands_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
)

// Races that only the event store can decide: the handlers load, decide and append concurrently,
// and the append's claims and expected versions pick the winner.

func TestRegisterRaceOneEmail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	spellings := []string{"race@example.com", "Race@example.com", "RACE@EXAMPLE.COM", "race@Example.com", "rAce@example.COM"}
	ids := make([]domain.UserID, 10)
	errs := race(10, func(i int) error {
		id, _, err := f.identity.Register(ctx(t), commands.Register{Email: spellings[i%len(spellings)], Password: password, Name: "Racer", Meta: meta})
		ids[i] = id
		return err
	})
	var winner domain.UserID
	for i, err := range errs {
		switch {
		case err == nil && winner == "":
			winner = ids[i]
		case err == nil:
			t.Errorf("two registrations of one email succeeded: %s and %s", winner, ids[i])
		case !errors.Is(err, domain.ErrEmailTaken):
			t.Errorf("registration #%d: %v, want ErrEmailTaken", i, err)
		}
	}
	if winner == "" {
		t.Fatalf("no registration succeeded:%s", describe(errs))
	}
	if n := f.scalar(t, `SELECT COUNT(DISTINCT stream_id) FROM events WHERE stream_type = 'user'`); n != 1 {
		t.Errorf("%d user streams, want 1", n)
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE event_type = 'user.registered.v1' AND stream_id = ?`, winner.Stream()); n != 1 {
		t.Errorf("%d user.registered events in the winner's stream, want 1", n)
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM claims`); n != 1 {
		t.Errorf("%d claims, want 1", n)
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM claims WHERE claim_key = 'email:race@example.com' AND stream_id = ?`, winner.Stream()); n != 1 {
		t.Errorf("the claim of race@example.com is not the winner's")
	}
	// One verification mail was requested, and the losers' mail tokens were erased from the vault.
	if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE event_type = 'mail.requested.v1'`); n != 1 {
		t.Errorf("%d mails requested, want 1", n)
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM secrets`); n != 1 {
		t.Errorf("%d secrets kept, want 1 (the winner's mail token)", n)
	}
}

func TestLoginLockoutRace(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Several rounds on fresh accounts: each round, 8 wrong passwords at once.
	for round := range 3 {
		email := fmt.Sprintf("locked%d@example.com", round)
		id := f.user(t, email)
		errs := race(8, func(int) error {
			_, err := f.identity.Login(ctx(t), commands.Login{Email: email, Password: "Wrong-Horse-42", IP: "198.51.100.1", UserAgent: "brute", Meta: meta})
			return err
		})
		locked := 0
		for i, err := range errs {
			switch {
			case isLocked(err):
				locked++
			case errors.Is(err, domain.ErrInvalidCredentials):
			default:
				t.Errorf("round %d, attempt #%d: %v, want ErrInvalidCredentials or *AccountLockedError", round, i, err)
			}
		}
		// Every attempt is recorded, those after the lock too, but only one lock.
		types, _ := f.stream(t, id.Stream())
		if n := count(types, "user.login_failed.v1"); n != 8 {
			t.Errorf("round %d: %d user.login_failed.v1 events, want 8", round, n)
		}
		if n := count(types, "user.locked.v1"); n != 1 {
			t.Errorf("round %d: %d user.locked.v1 events, want 1", round, n)
		}
		if locked == 0 {
			t.Errorf("round %d: no attempt was told the account is locked", round)
		}
		// Locked: even the right password is refused, like a wrong one (recorded as a failure
		// during the lock, which starts no new lock).
		if _, err := f.identity.Login(ctx(t), commands.Login{Email: email, Password: password}); !isLocked(err) {
			t.Errorf("round %d: login with the right password on a locked account: %v, want *AccountLockedError", round, err)
		}
		if again, _ := f.stream(t, id.Stream()); len(again) != len(types)+1 || again[len(again)-1] != "user.login_failed.v1" {
			t.Errorf("round %d: a login refused for a lock recorded %v", round, again[len(types):])
		}
	}
}

func TestChangeRoleRaceKeepsATenantAdmin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.user(t, "admin-a@example.com")
	b := f.user(t, "admin-b@example.com")
	root, err := f.identity.Bootstrap(ctx(t), "root@example.com", password)
	if err != nil {
		t.Fatal(err)
	}
	// twoAdmins returns a fresh tenant of which a and b are tenant admins.
	twoAdmins := func(t *testing.T) domain.TenantID {
		f.clock.Advance(domain.InvitationWindow) // an address is invited at most InvitationsPerRecipient times a day
		tenant := f.tenant(t, a)
		inv := f.invite(t, tenant, a, "admin-b@example.com", domain.RoleTenantAdmin)
		if _, joined, err := f.identity.AcceptInvitation(ctx(t), f.token(t, "admin-b@example.com", "/invitations/accept"), "", "", meta); err != nil || joined != b {
			t.Fatalf("accept invitation %s: joined as %s, %v", inv.InvitationID, joined, err)
		}
		return tenant
	}
	admins := func(t *testing.T, tenant domain.TenantID) int {
		rebuilt := f.tenantOf(t, tenant)
		n := 0
		for _, u := range []domain.UserID{a, b} {
			if rebuilt.Role(u) == domain.RoleTenantAdmin {
				n++
			}
		}
		f.settle(t)
		readModel := f.scalar(t, `SELECT COUNT(*) FROM memberships WHERE tenant_id = ? AND role = 'tenant_admin'`, tenant)
		if readModel != n {
			t.Errorf("read model shows %d tenant admins, the stream %d", readModel, n)
		}
		return n
	}

	t.Run("admins demote each other", func(t *testing.T) {
		losers := map[string]int{}
		for round := range 20 {
			tenant := twoAdmins(t)
			pairs := [][2]domain.UserID{{a, b}, {b, a}}
			errs := race(2, func(i int) error {
				_, err := f.identity.ChangeRole(ctx(t), tenant, pairs[i][0], domain.RoleTenantAdmin, pairs[i][1], string(domain.RoleDeveloper), false, meta)
				return err
			})
			if errs[0] == nil && errs[1] == nil {
				t.Fatalf("round %d: both demotions succeeded", round)
			}
			for _, err := range errs {
				switch {
				case err == nil:
				case errors.Is(err, domain.ErrLastAdmin):
					losers["ErrLastAdmin"]++
				case errors.Is(err, domain.ErrForbidden):
					// The loser decides again on the state that won: it is no longer an admin.
					losers["ErrForbidden"]++
				default:
					t.Errorf("round %d: %v, want ErrLastAdmin or ErrForbidden", round, err)
				}
			}
			if n := admins(t, tenant); n != 1 {
				t.Fatalf("round %d: %d tenant admins left, want exactly 1 (errors %v)", round, n, errs)
			}
		}
		t.Logf("the loser of each race got: %v", losers)
	})

	t.Run("a super admin demotes both at once", func(t *testing.T) {
		for round := range 20 {
			tenant := twoAdmins(t)
			targets := []domain.UserID{a, b}
			errs := race(2, func(i int) error {
				_, err := f.identity.ChangeRole(ctx(t), tenant, root, domain.RoleSuperAdmin, targets[i], string(domain.RoleViewer), false, meta)
				return err
			})
			won := winners(t, fmt.Sprintf("round %d", round), errs, domain.ErrLastAdmin)
			if won != 1 {
				t.Fatalf("round %d: %d demotions succeeded, want 1:%s", round, won, describe(errs))
			}
			if n := admins(t, tenant); n != 1 {
				t.Fatalf("round %d: %d tenant admins left, want 1", round, n)
			}
		}
	})
}

func TestBootstrapRace(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ids := make([]domain.UserID, 10)
	errs := race(10, func(i int) error {
		var err error
		ids[i], err = f.identity.Bootstrap(ctx(t), []string{"Root@Example.com", "root@example.com"}[i%2], password)
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("bootstrap #%d: %v", i, err)
		} else if ids[i] != ids[0] {
			t.Errorf("bootstrap #%d returned account %s, #0 %s", i, ids[i], ids[0])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE event_type = 'user.registered.v1'`); n != 1 {
		t.Errorf("%d user.registered events, want 1", n)
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE event_type = 'user.super_admin_granted.v1'`); n != 1 {
		t.Errorf("%d user.super_admin_granted events, want 1", n)
	}
	f.settle(t)
	u, err := f.views.User(ctx(t), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if !u.SuperAdmin || u.Status != domain.UserActive || u.Email != "root@example.com" {
		t.Errorf("bootstrapped account: %+v, want an active super admin root@example.com", u)
	}
	// It can log in, and bootstrapping again changes nothing.
	f.login(t, "root@example.com", password, "")
	before := f.scalar(t, `SELECT COUNT(*) FROM events`)
	if id, err := f.identity.Bootstrap(ctx(t), "root@example.com", password); err != nil || id != ids[0] {
		t.Errorf("bootstrap again: %s, %v", id, err)
	}
	if after := f.scalar(t, `SELECT COUNT(*) FROM events`); after != before {
		t.Errorf("bootstrapping an existing super admin appended %d events", after-before)
	}
}

func TestCreateTenantRaces(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	creator := f.user(t, "founder@example.com")

	t.Run("same explicit slug", func(t *testing.T) {
		errs := race(8, func(i int) error {
			_, err := f.tenants.CreateTenant(ctx(t), commands.CreateTenant{Name: fmt.Sprintf("Contender %d", i), Slug: "contested", Plan: domain.PlanPro, Creator: creator, Meta: meta})
			return err
		})
		won := winners(t, "slug contested", errs, domain.ErrNameTaken)
		if won != 1 {
			t.Errorf("%d tenants got slug contested, want 1:%s", won, describe(errs))
		}
		if n := f.scalar(t, `SELECT COUNT(*) FROM claims WHERE claim_key = 'slug:contested'`); n != 1 {
			t.Errorf("%d claims of slug:contested", n)
		}
		if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE event_type = 'tenant.created.v1' AND JSON_VALUE(payload, '$.slug') = 'contested'`); n != 1 {
			t.Errorf("%d tenant.created events with slug contested, want 1", n)
		}
	})

	t.Run("same derived name", func(t *testing.T) {
		tenants := make([]*domain.Tenant, 8)
		errs := race(8, func(i int) error {
			var err error
			tenants[i], err = f.tenants.CreateTenant(ctx(t), commands.CreateTenant{Name: "Acme Widgets", Plan: domain.PlanFree, Creator: creator, Meta: meta})
			return err
		})
		slugs := map[string]bool{}
		for i, err := range errs {
			if err != nil {
				t.Errorf("#%d: %v", i, err)
				continue
			}
			slug := tenants[i].Slug()
			if slugs[slug] {
				t.Errorf("two tenants got slug %s", slug)
			}
			slugs[slug] = true
			if slug != "acme-widgets" && !strings.HasPrefix(slug, "acme-widgets-") {
				t.Errorf("slug %q is not derived from the name", slug)
			}
			if holder := f.scalar(t, `SELECT COUNT(*) FROM claims WHERE claim_key = ? AND stream_id = ?`, domain.SlugClaim(slug), tenants[i].ID().Stream()); holder != 1 {
				t.Errorf("slug %s is not claimed by its tenant", slug)
			}
		}
		if !slugs["acme-widgets"] {
			t.Errorf("nobody got the plain slug: %v", slugs)
		}
		f.settle(t)
		if n := f.scalar(t, `SELECT COUNT(*) FROM tenants WHERE name = 'Acme Widgets'`); n != 8 {
			t.Errorf("read model has %d tenants named Acme Widgets, want 8", n)
		}
	})
}

func TestInvitationRaces(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := f.user(t, "owner@example.com")

	t.Run("the last seat", func(t *testing.T) {
		tenant := f.tenant(t, admin)
		for i := range 3 {
			f.invite(t, tenant, admin, fmt.Sprintf("early%d@example.com", i), domain.RoleViewer)
		}
		// 1 member + 3 invitations: one seat left, 6 administrators want it at once.
		failures := make([][]commands.InviteFailure, 6)
		errs := race(6, func(i int) error {
			var invited []commands.Invited
			var err error
			invited, failures[i], err = f.identity.Invite(ctx(t), commands.Invite{Tenant: tenant, Actor: admin, ActorRole: domain.RoleTenantAdmin, Emails: []string{fmt.Sprintf("late%d@example.com", i)}, Meta: meta})
			if err == nil && len(invited) == 0 {
				err = errNotInvited
			}
			return err
		})
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, errNotInvited) && len(failures[i]) == 1 && failures[i][0].Code == "quota_exceeded":
			default:
				t.Errorf("#%d: %v %+v, want invited or quota_exceeded", i, err, failures[i])
			}
		}
		if won != 1 {
			t.Errorf("%d invitations took the last seat", won)
		}
		if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE stream_id = ? AND event_type = 'tenant.invitation_created.v1'`, tenant.Stream()); n != 4 {
			t.Errorf("%d invitations recorded, want 4", n)
		}
	})

	t.Run("one link accepted at once", func(t *testing.T) {
		tenant := f.tenant(t, admin)
		f.invite(t, tenant, admin, "popular@example.com", domain.RoleDeveloper)
		token := f.token(t, "popular@example.com", "/invitations/accept")
		users := make([]domain.UserID, 6)
		errs := race(6, func(i int) error {
			var err error
			_, users[i], err = f.identity.AcceptInvitation(ctx(t), token, "Popular", password, meta)
			return err
		})
		won := winners(t, "one invitation", errs, domain.ErrExpired)
		if won != 1 {
			t.Errorf("%d acceptances succeeded, want 1", won)
		}
		if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE event_type = 'user.registered.v1' AND JSON_VALUE(payload, '$.email') = 'popular@example.com'`); n != 1 {
			t.Errorf("%d accounts for popular@example.com, want 1", n)
		}
		if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE stream_id = ? AND event_type = 'tenant.member_added.v1'`, tenant.Stream()); n != 2 {
			t.Errorf("%d members added (creator included), want 2", n)
		}
	})
}

var errNotInvited = errors.New("not invited")
