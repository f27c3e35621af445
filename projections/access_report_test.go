package projections_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

// accessWorld names the people, the tenant, the database and the keys of an access test, and
// renders ids back as those names.
type accessWorld struct {
	tenant                    domain.TenantID
	db                        domain.DatabaseID
	admin, dev, heir, visitor domain.UserID
	key, other, loose         domain.APIKeyID
	invitation                domain.InvitationID
}

func newAccessWorld() accessWorld {
	return accessWorld{tenant: domain.TenantID(newID()), db: domain.DatabaseID(newID()),
		admin: domain.UserID(newID()), dev: domain.UserID(newID()), heir: domain.UserID(newID()), visitor: domain.UserID(newID()),
		key: domain.APIKeyID(newID()), other: domain.APIKeyID(newID()), loose: domain.APIKeyID(newID()),
		invitation: domain.InvitationID(newID())}
}

func (w accessWorld) name(id string) string {
	for name, v := range map[string]string{"admin": string(w.admin), "dev": string(w.dev), "heir": string(w.heir),
		"visitor": string(w.visitor), "key": string(w.key), "other": string(w.other), "invitation": string(w.invitation)} {
		if id == v {
			return name
		}
	}
	return id
}

// at is minute m of an access test.
func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// minute renders a DATETIME column as the minute of the test it is, "-" for NULL.
func minute(s string) string {
	if s == "NULL" {
		return "-"
	}
	tm, err := time.Parse("2006-01-02 15:04:05.000000", s)
	if err != nil {
		return s
	}
	return fmt.Sprint(int(tm.Sub(t0) / time.Minute))
}

// accessStep is what a test appends at minute m to one stream.
type accessStep struct {
	m      int
	stream string
	events []domain.Event
}

// intervals renders a database's intervals:
// "who path[/key] role from-to [was previous] [continued] [via invitation]".
func (w accessWorld) intervals(t *testing.T, f *identityFixture) []string {
	t.Helper()
	rows, _ := query(t, f.db, `SELECT user_id, path, key_id, role, previous_role, valid_from, valid_to, continued, invitation_id
		FROM access_intervals WHERE database_id = ? ORDER BY from_position, from_seq`, string(w.db))
	var out []string
	for _, r := range rows {
		s := w.name(r["user_id"]) + " " + r["path"]
		if r["key_id"] != "" {
			s += "/" + w.name(r["key_id"])
		}
		s += " " + r["role"] + " " + minute(r["valid_from"]) + "-" + minute(r["valid_to"])
		if r["previous_role"] != "NULL" {
			s += " was " + r["previous_role"]
		}
		if r["continued"] == "1" {
			s += " continued"
		}
		if r["invitation_id"] != "NULL" {
			s += " via " + w.name(r["invitation_id"])
		}
		out = append(out, s)
	}
	return out
}

// The intervals that each kind of change of access makes, and a rebuild from zero and redelivered
// events that change none of them.
func TestAccessReportBuildsValidityIntervals(t *testing.T) {
	w := newAccessWorld()
	free, _ := domain.PlanByID(domain.PlanFree)
	tenant, user, database := w.tenant.Stream(), func(u domain.UserID) string { return "user-" + string(u) }, w.db.Stream()
	founded := []accessStep{
		{0, tenant, domain.CreateTenant(w.tenant, "Acme", "acme", free, w.admin, at(0)).PendingEvents()},
		{1, database, []domain.Event{domain.DatabaseRequested{DatabaseID: w.db, TenantID: w.tenant, Name: "shop", OwnerID: w.admin, At: at(1)}}},
		{2, tenant, []domain.Event{domain.TenantMemberAdded{UserID: w.dev, Role: domain.RoleDeveloper, At: at(2)}}},
	}
	expires := at(10)
	cases := []struct {
		name  string
		steps []accessStep
		want  []string
		// states are the database's states, "minute:state".
		states []string
	}{{
		name: "role changes, deactivations, reactivation and the close of a membership",
		steps: append(slices.Clone(founded),
			accessStep{3, tenant, []domain.Event{domain.TenantMemberRoleChanged{UserID: w.dev, From: domain.RoleDeveloper, To: domain.RoleViewer}}},
			accessStep{4, tenant, []domain.Event{domain.TenantMemberDeactivated{UserID: w.dev, Role: domain.RoleViewer, Type: domain.DeactivationTemporary}}},
			// A role change recorded while deactivated (the domain refuses one) waits for the reactivation.
			accessStep{4, tenant, []domain.Event{domain.TenantMemberRoleChanged{UserID: w.dev, From: domain.RoleViewer, To: domain.RoleDeveloper}}},
			accessStep{5, tenant, []domain.Event{domain.TenantMemberReactivated{UserID: w.dev, How: domain.ReactivatedManually, Override: true}}},
			accessStep{6, tenant, []domain.Event{domain.TenantMemberDeactivated{UserID: w.dev, Role: domain.RoleDeveloper, Type: domain.DeactivationPermanent}}},
			accessStep{7, tenant, []domain.Event{domain.TenantMembershipClosed{UserID: w.dev}}},
			// Closed for good: a role change recorded for them changes nothing.
			accessStep{8, tenant, []domain.Event{domain.TenantMemberRoleChanged{UserID: w.dev, From: domain.RoleViewer, To: domain.RoleDeveloper}}},
		),
		want: []string{
			"admin owner tenant_admin 1--", "admin tenant_role tenant_admin 1--",
			"dev tenant_role developer 2-3 continued", "dev tenant_role viewer 3-4 was developer",
			"dev tenant_role developer 5-6",
		},
		states: []string{"1:provisioning"},
	}, {
		name: "an owner deactivated with transfer hands the database over",
		steps: append(slices.Clone(founded),
			accessStep{3, tenant, []domain.Event{domain.TenantMemberAdded{UserID: w.heir, Role: domain.RoleViewer, At: at(3)}}},
			accessStep{4, database, []domain.Event{domain.DatabaseOwnerChanged{From: w.admin, To: w.dev}}},
			accessStep{5, tenant, []domain.Event{domain.TenantMemberDeactivated{UserID: w.dev, Role: domain.RoleDeveloper, Type: domain.DeactivationPermanent,
				Resources: domain.ResourcesTransfer, TransferTo: w.heir}}},
			accessStep{5, database, []domain.Event{domain.DatabaseOwnerChanged{From: w.dev, To: w.heir}}},
		),
		want: []string{
			"admin owner tenant_admin 1-4", "admin tenant_role tenant_admin 1--",
			"dev tenant_role developer 2-5",
			"heir tenant_role viewer 3--",
			"dev owner developer 4-5",
			"heir owner viewer 5--",
		},
		states: []string{"1:provisioning"},
	}, {
		name: "API keys: created, changed with their owner's role, revoked, expired",
		steps: append(slices.Clone(founded),
			accessStep{2, user(w.dev), []domain.Event{
				domain.UserAPIKeyCreated{KeyID: w.key, Name: "ci", TenantID: w.tenant, Hash: "h1", CreatedAt: at(2), ExpiresAt: &expires},
				domain.UserAPIKeyCreated{KeyID: w.other, Name: "laptop", TenantID: w.tenant, Hash: "h2", CreatedAt: at(2)},
				domain.UserAPIKeyCreated{KeyID: w.loose, Name: "no tenant", Hash: "h3", CreatedAt: at(2)},
			}},
			accessStep{3, tenant, []domain.Event{domain.TenantMemberRoleChanged{UserID: w.dev, From: domain.RoleDeveloper, To: domain.RoleViewer}}},
			accessStep{4, user(w.dev), []domain.Event{domain.UserAPIKeyRevoked{KeyID: w.other}, domain.UserAPIKeyRevoked{KeyID: w.loose}}},
			accessStep{12, tenant, []domain.Event{domain.TenantMemberRoleChanged{UserID: w.dev, From: domain.RoleViewer, To: domain.RoleDeveloper}}},
		),
		want: []string{
			"admin owner tenant_admin 1--", "admin tenant_role tenant_admin 1--",
			"dev tenant_role developer 2-3 continued",
			"dev api_key/key developer 2-3 continued", "dev api_key/other developer 2-3 continued",
			"dev api_key/key viewer 3-10 was developer", "dev api_key/other viewer 3-4 was developer",
			"dev tenant_role viewer 3-12 was developer continued",
			"dev tenant_role developer 12-- was viewer",
		},
		states: []string{"1:provisioning"},
	}, {
		name: "a database stopped, deleted, restored, purged",
		steps: append(slices.Clone(founded),
			accessStep{3, database, []domain.Event{domain.DatabaseProvisioned{At: at(3)}}},
			accessStep{4, database, []domain.Event{domain.DatabaseStopped{Reason: "manual", At: at(4)}}},
			accessStep{5, database, []domain.Event{domain.DatabaseDeleted{At: at(5), RecoverableUntil: at(60)}}},
			accessStep{6, database, []domain.Event{domain.DatabaseRestored{At: at(6)}}},
			accessStep{7, database, []domain.Event{domain.DatabaseStarted{At: at(7)}}},
			accessStep{8, database, []domain.Event{domain.DatabaseDeleted{At: at(8), RecoverableUntil: at(60)}}},
			accessStep{9, database, []domain.Event{domain.DatabasePurged{At: at(9)}}},
		),
		want: []string{
			"admin owner tenant_admin 1-5", "admin tenant_role tenant_admin 1-5", "dev tenant_role developer 2-5",
			"admin owner tenant_admin 6-8", "admin tenant_role tenant_admin 6-8", "dev tenant_role developer 6-8",
		},
		states: []string{"1:provisioning", "3:running", "4:stopped", "5:deleted", "6:stopped", "7:running", "8:deleted", "9:purged"},
	}, {
		name: "an invitation accepted, a super admin granted, a failed database",
		steps: append(slices.Clone(founded),
			accessStep{3, tenant, []domain.Event{
				domain.TenantInvitationAccepted{InvitationID: w.invitation, UserID: w.visitor, At: at(3)},
				domain.TenantMemberAdded{UserID: w.visitor, Role: domain.RoleViewer, At: at(3)},
			}},
			accessStep{4, user(w.visitor), []domain.Event{domain.UserSuperAdminGranted{}}},
			accessStep{5, database, []domain.Event{domain.DatabaseProvisioningFailed{Reason: "no server", At: at(5)}}},
		),
		want: []string{
			"admin owner tenant_admin 1-5", "admin tenant_role tenant_admin 1-5", "dev tenant_role developer 2-5",
			"visitor tenant_role viewer 3-4 continued via invitation",
			"visitor tenant_role super_admin 4-5 was viewer",
		},
		states: []string{"1:provisioning", "5:failed"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newIdentityFixture(t)
			p := projections.NewAccessReport(production)
			r := f.start(t, p)
			var last eventstore.Appended
			for _, s := range tc.steps {
				last = f.appendAt(t, at(s.m), s.stream, s.events...)
			}
			wait(t, r, last.LastPosition, p.Name())
			got, want := w.intervals(t, f), slices.Clone(tc.want)
			slices.Sort(got) // an event's intervals are in the order of random ids
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("intervals:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			rows, _ := query(t, f.db, `SELECT at, state FROM access_database_states WHERE database_id = ? ORDER BY position`, string(w.db))
			var states []string
			for _, r := range rows {
				states = append(states, minute(r["at"])+":"+r["state"])
			}
			if !slices.Equal(states, tc.states) {
				t.Errorf("states = %v, want %v", states, tc.states)
			}
			checkReplay(t, f, r, p, map[string]string{
				"access_intervals": "from_position, from_seq", "access_databases": "database_id", "access_database_states": "database_id, position",
				"access_members": "tenant_id, user_id", "access_keys": "key_id", "access_super_admins": "user_id", "access_applied": "id",
			})
		})
	}
}

// holders renders who could reach w's database at a moment: "who path[/key] role".
func (w accessWorld) holders(t *testing.T, views *projections.Views, m float64) []string {
	t.Helper()
	d, err := views.AccessDatabaseOf(context.Background(), w.tenant, w.db)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := views.AccessAt(context.Background(), &d, t0.Add(time.Duration(m*float64(time.Minute))))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range hs {
		s := w.name(h.User.ID) + " " + h.Path
		if h.APIKey != nil {
			s += "/" + w.name(h.APIKey.ID)
		}
		out = append(out, s+" "+h.Role)
	}
	slices.Sort(out)
	return out
}

// The report's reads: who could reach a database at moments between the changes, the changes of a
// period page by page (a key's expiry among them, with no event), and a foreign tenant's database.
func TestAccessReportAnswersAtMomentsAndPeriods(t *testing.T) {
	w := newAccessWorld()
	free, _ := domain.PlanByID(domain.PlanFree)
	f := newIdentityFixture(t)
	p := projections.NewAccessReport(production)
	r := f.start(t, p, projections.NewUsers(production))
	expires := at(10)
	f.appendAt(t, at(0), w.tenant.Stream(), domain.CreateTenant(w.tenant, "Acme", "acme", free, w.admin, at(0)).PendingEvents()...)
	f.appendAt(t, at(1), w.db.Stream(), domain.DatabaseRequested{DatabaseID: w.db, TenantID: w.tenant, Name: "shop", OwnerID: w.admin, At: at(1)})
	f.appendAt(t, at(2), w.tenant.Stream(), domain.TenantMemberAdded{UserID: w.dev, Role: domain.RoleDeveloper, At: at(2)})
	f.appendAt(t, at(3), "user-"+string(w.dev), domain.UserAPIKeyCreated{KeyID: w.key, Name: "ci", TenantID: w.tenant, Hash: "h", CreatedAt: at(3), ExpiresAt: &expires})
	f.appendAt(t, at(4), w.tenant.Stream(), domain.TenantMemberRoleChanged{UserID: w.dev, From: domain.RoleDeveloper, To: domain.RoleViewer, Override: true})
	last := f.appendAt(t, at(12), w.db.Stream(), domain.DatabaseDeleted{At: at(12), RecoverableUntil: at(60)})
	wait(t, r, last.LastPosition, p.Name())
	views := projections.NewViews(f.db)

	for _, tc := range []struct {
		m    float64
		want []string
	}{
		{0.5, nil},
		{1.5, []string{"admin owner tenant_admin", "admin tenant_role tenant_admin"}},
		{3.5, []string{"admin owner tenant_admin", "admin tenant_role tenant_admin", "dev api_key/key developer", "dev tenant_role developer"}},
		{4, []string{"admin owner tenant_admin", "admin tenant_role tenant_admin", "dev api_key/key viewer", "dev tenant_role viewer"}},
		{11, []string{"admin owner tenant_admin", "admin tenant_role tenant_admin", "dev tenant_role viewer"}},
		{12.5, nil},
	} {
		if got := w.holders(t, views, tc.m); !slices.Equal(got, tc.want) {
			t.Errorf("at minute %v: %v, want %v", tc.m, got, tc.want)
		}
	}
	d, _ := views.AccessDatabaseOf(context.Background(), w.tenant, w.db)
	hs, _ := views.AccessAt(context.Background(), &d, at(4))
	if d.State == nil || *d.State != "provisioning" {
		t.Errorf("state at minute 4 = %v, want provisioning", d.State)
	}
	for _, h := range hs {
		wantRW := h.Role == "tenant_admin"
		if h.ReadWritePassword != wantRW || (h.Role == "viewer") != (h.Account == domain.AccountReadOnly) {
			t.Errorf("%s %s %s: read-write password %v, account %s", w.name(h.User.ID), h.Path, h.Role, h.ReadWritePassword, h.Account)
		}
	}

	var all []string
	cursor := ""
	for pages := 0; ; pages++ {
		changes, next, err := views.AccessChanges(context.Background(), string(w.db), at(0), at(13), cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) > 3 || pages > 10 {
			t.Fatalf("page %d has %d changes", pages, len(changes))
		}
		for _, c := range changes {
			s := fmt.Sprintf("%s %s %s %s", minute(ts(c.At)), c.Change, w.name(c.User.ID), c.Path)
			if c.APIKey != nil {
				s += "/" + w.name(c.APIKey.ID)
			}
			if c.RoleBefore != nil {
				s += " from " + *c.RoleBefore
			}
			if c.RoleAfter != nil {
				s += " to " + *c.RoleAfter
			}
			if c.Event == nil {
				s += " " + c.Cause
			} else if c.Event.Override {
				s += " override"
			}
			all = append(all, s)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	want := []string{
		"1 granted admin owner to tenant_admin", "1 granted admin tenant_role to tenant_admin",
		"2 granted dev tenant_role to developer", "3 granted dev api_key/key to developer",
		"4 changed dev api_key/key from developer to viewer override", "4 changed dev tenant_role from developer to viewer override",
		"10 revoked dev api_key/key from viewer api_key_expired",
		"12 revoked admin owner from tenant_admin", "12 revoked admin tenant_role from tenant_admin", "12 revoked dev tenant_role from viewer",
	}
	if !slices.Equal(all, want) {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(all, "\n"), strings.Join(want, "\n"))
	}
	if changes, _, _ := views.AccessChanges(context.Background(), string(w.db), at(5), at(11), "", 50); len(changes) != 1 || changes[0].Cause != "api_key_expired" {
		t.Errorf("changes of minutes 5 to 11 = %+v, want the key's expiry", changes)
	}
	if _, _, err := views.AccessChanges(context.Background(), string(w.db), at(0), at(13), "garbage!", 50); err == nil {
		t.Error("a cursor the report did not make is accepted")
	}
	if _, err := views.AccessDatabaseOf(context.Background(), domain.TenantID(newID()), w.db); err == nil {
		t.Error("another tenant's admin finds the database")
	}
}
