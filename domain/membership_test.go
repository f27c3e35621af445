package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// The members of the lifecycle tests: two admins, a developer, a viewer.
var (
	mAdmin  = domain.UserID(uuidA)
	mAdmin2 = domain.UserID("22222222-2222-4222-8222-222222222222")
	mDev    = domain.UserID(uuidB)
	mViewer = domain.UserID("33333333-3333-4333-8333-333333333333")
)

func membersTenant(t *testing.T, more ...domain.Event) *domain.Tenant {
	t.Helper()
	return loadTenant(t, domain.PlanPro, mAdmin, append([]domain.Event{
		domain.TenantMemberAdded{UserID: mAdmin2, Role: domain.RoleTenantAdmin, At: t0},
		domain.TenantMemberAdded{UserID: mDev, Role: domain.RoleDeveloper, At: t0},
		domain.TenantMemberAdded{UserID: mViewer, Role: domain.RoleViewer, At: t0},
	}, more...)...)
}

func archive(typ string) domain.DeactivationRequest {
	r := domain.DeactivationRequest{Reason: "departure", Type: typ, Resources: domain.ResourcesArchive}
	if typ == domain.DeactivationTemporary {
		at := t0.Add(time.Hour)
		r.ReactivateAt = &at
	}
	return r
}

func TestDeactivationRequestValidate(t *testing.T) {
	past, soon, far := t0.Add(-time.Second), t0.Add(time.Minute), t0.Add(400*24*time.Hour)
	tests := []struct {
		name string
		req  domain.DeactivationRequest
		want []string // nil: valid
	}{
		{"temporary", domain.DeactivationRequest{Reason: "other", Type: "temporary", ReactivateAt: &soon, Resources: "archive"}, nil},
		{"permanent transfer", domain.DeactivationRequest{Reason: "security", Type: "permanent", Resources: "transfer", TransferTo: mDev}, nil},
		{"nothing", domain.DeactivationRequest{}, []string{"reason", "type", "resources"}},
		{"reactivate_at in the past", domain.DeactivationRequest{Reason: "other", Type: "temporary", ReactivateAt: &past, Resources: "delete"}, []string{"reactivate_at"}},
		{"reactivate_at now", domain.DeactivationRequest{Reason: "other", Type: "temporary", ReactivateAt: &t0, Resources: "delete"}, []string{"reactivate_at"}},
		{"reactivate_at past a year", domain.DeactivationRequest{Reason: "other", Type: "temporary", ReactivateAt: &far, Resources: "delete"}, []string{"reactivate_at"}},
		{"temporary without a date", domain.DeactivationRequest{Reason: "other", Type: "temporary", Resources: "delete"}, []string{"reactivate_at"}},
		{"permanent with a date", domain.DeactivationRequest{Reason: "other", Type: "permanent", ReactivateAt: &soon, Resources: "delete"}, []string{"reactivate_at"}},
		{"transfer to nobody", domain.DeactivationRequest{Reason: "other", Type: "permanent", Resources: "transfer"}, []string{"transfer_to"}},
		{"archive to someone", domain.DeactivationRequest{Reason: "other", Type: "permanent", Resources: "archive", TransferTo: mDev}, []string{"transfer_to"}},
		{"unknown reason and a long note", domain.DeactivationRequest{Reason: "bored", Note: string(make([]byte, 1001)), Type: "permanent", Resources: "archive"}, []string{"reason", "note"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate(t0)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			wantValidation(t, err, tt.want...)
		})
	}
}

func TestTenantDeactivate(t *testing.T) {
	grace := 720 * time.Hour
	tests := []struct {
		name      string
		history   []domain.Event
		user      domain.UserID
		req       domain.DeactivationRequest
		actor     domain.UserID
		actorRole domain.Role
		want      error // nil: recorded
		wantField string
	}{
		{"oneself", nil, mAdmin, archive("permanent"), mAdmin, domain.RoleTenantAdmin, domain.ErrSelfDeactivation, ""},
		{"unknown member", nil, domain.UserID(uuidC), archive("permanent"), mAdmin, domain.RoleTenantAdmin, domain.ErrNotFound, ""},
		{"developer deactivates an admin", nil, mAdmin2, archive("permanent"), mDev, domain.RoleDeveloper, domain.ErrForbidden, ""},
		{"transfer to oneself", nil, mDev, domain.DeactivationRequest{Reason: "other", Type: "permanent", Resources: "transfer", TransferTo: mDev},
			mAdmin, domain.RoleTenantAdmin, nil, "transfer_to"},
		{"transfer to a stranger", nil, mDev, domain.DeactivationRequest{Reason: "other", Type: "permanent", Resources: "transfer", TransferTo: domain.UserID(uuidC)},
			mAdmin, domain.RoleTenantAdmin, nil, "transfer_to"},
		{"transfer to a deactivated member", []domain.Event{domain.TenantMemberDeactivated{UserID: mViewer, Role: domain.RoleViewer, Type: "permanent", At: t0}},
			mDev, domain.DeactivationRequest{Reason: "other", Type: "permanent", Resources: "transfer", TransferTo: mViewer}, mAdmin, domain.RoleTenantAdmin, nil, "transfer_to"},
		{"twice", []domain.Event{domain.TenantMemberDeactivated{UserID: mDev, Role: domain.RoleDeveloper, Type: "permanent", At: t0}},
			mDev, archive("permanent"), mAdmin, domain.RoleTenantAdmin, domain.ErrConflict, ""},
		{"the last active admin", []domain.Event{domain.TenantMemberDeactivated{UserID: mAdmin2, Role: domain.RoleTenantAdmin, Type: "permanent", At: t0}},
			mAdmin, archive("permanent"), mAdmin2, domain.RoleSuperAdmin, domain.ErrLastAdmin, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := membersTenant(t, tt.history...)
			err := tn.Deactivate(tt.user, tt.req, tt.actor, tt.actorRole, grace, t0)
			if tt.wantField != "" {
				wantValidation(t, err, tt.wantField)
			} else if !errors.Is(err, tt.want) {
				t.Fatalf("Deactivate = %v, want %v", err, tt.want)
			}
			wantPending(t, tn.PendingEvents())
		})
	}

	t.Run("temporary, then reactivated by the timer", func(t *testing.T) {
		tn := membersTenant(t)
		if err := tn.Deactivate(mDev, archive("temporary"), mAdmin, domain.RoleTenantAdmin, grace, t0); err != nil {
			t.Fatal(err)
		}
		wantPending(t, tn.PendingEvents(), "tenant.member_deactivated.v1")
		e := tn.PendingEvents()[0].(domain.TenantMemberDeactivated)
		if e.Role != domain.RoleDeveloper || e.ReactivateAt == nil || !e.ReactivateAt.Equal(t0.Add(time.Hour)) || e.GraceUntil != nil || e.By != mAdmin || e.Override {
			t.Errorf("event = %+v", e)
		}
		if tn.Role(mDev) != "" || tn.MemberRole(mDev) != domain.RoleDeveloper || !tn.IsMember(mDev) || tn.MemberCount() != 4 {
			t.Errorf("deactivated: Role %q, MemberRole %q, IsMember %v, MemberCount %d", tn.Role(mDev), tn.MemberRole(mDev), tn.IsMember(mDev), tn.MemberCount())
		}
		if err := tn.ChangeRole(mDev, domain.RoleViewer, mAdmin, domain.RoleTenantAdmin); !errors.Is(err, domain.ErrConflict) {
			t.Errorf("ChangeRole of a deactivated member = %v, want ErrConflict", err)
		}
		if tn.ReactivationDue(mDev, t0.Add(time.Hour-time.Second)) || !tn.ReactivationDue(mDev, t0.Add(time.Hour)) {
			t.Error("ReactivationDue does not follow reactivate_at")
		}
		tn.CloseMembership(mDev, t0.Add(10000*time.Hour)) // a temporary deactivation is never closed
		if err := tn.Reactivate(mDev, domain.ReactivatedOnSchedule, "", domain.RoleSuperAdmin, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		wantPending(t, tn.PendingEvents(), "tenant.member_deactivated.v1", "tenant.member_reactivated.v1")
		if r := tn.PendingEvents()[1].(domain.TenantMemberReactivated); r.How != "scheduled" || r.Override {
			t.Errorf("reactivation = %+v", r)
		}
		if tn.Role(mDev) != domain.RoleDeveloper {
			t.Errorf("reactivated: Role = %q, want developer again", tn.Role(mDev))
		}
		if err := tn.Reactivate(mDev, domain.ReactivatedManually, mAdmin, domain.RoleTenantAdmin, t0); !errors.Is(err, domain.ErrConflict) {
			t.Errorf("Reactivate of an active member = %v, want ErrConflict", err)
		}
	})

	t.Run("permanent, closed after the grace", func(t *testing.T) {
		tn := membersTenant(t)
		req := domain.DeactivationRequest{Reason: "departure", Type: "permanent", Resources: "transfer", TransferTo: mViewer}
		if err := tn.Deactivate(mDev, req, mAdmin, domain.RoleTenantAdmin, grace, t0); err != nil {
			t.Fatal(err)
		}
		if e := tn.PendingEvents()[0].(domain.TenantMemberDeactivated); e.GraceUntil == nil || !e.GraceUntil.Equal(t0.Add(grace)) || e.TransferTo != mViewer {
			t.Errorf("event = %+v", e)
		}
		tn.CloseMembership(mDev, t0.Add(grace-time.Second))
		tn.CloseMembership(mViewer, t0.Add(grace)) // active: nothing to close
		wantPending(t, tn.PendingEvents(), "tenant.member_deactivated.v1")
		tn.CloseMembership(mDev, t0.Add(grace))
		wantPending(t, tn.PendingEvents(), "tenant.member_deactivated.v1", "tenant.membership_closed.v1")
		if tn.IsMember(mDev) || tn.MemberCount() != 3 {
			t.Errorf("closed: IsMember %v, MemberCount %d", tn.IsMember(mDev), tn.MemberCount())
		}
		if err := tn.Reactivate(mDev, domain.ReactivatedManually, mAdmin, domain.RoleTenantAdmin, t0.Add(grace)); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Reactivate after the close = %v, want ErrNotFound", err)
		}
	})

	t.Run("two admins deactivating each other: the second is refused", func(t *testing.T) {
		tn := membersTenant(t)
		if err := tn.Deactivate(mAdmin2, archive("permanent"), mAdmin, domain.RoleTenantAdmin, grace, t0); err != nil {
			t.Fatal(err)
		}
		if err := tn.Deactivate(mAdmin, archive("permanent"), mAdmin2, domain.RoleTenantAdmin, grace, t0); !errors.Is(err, domain.ErrLastAdmin) {
			t.Fatalf("the second deactivation = %v, want ErrLastAdmin", err)
		}
		if err := tn.ChangeRole(mAdmin, domain.RoleViewer, mAdmin2, domain.RoleSuperAdmin); !errors.Is(err, domain.ErrLastAdmin) {
			t.Errorf("demoting the only active admin = %v, want ErrLastAdmin", err)
		}
	})

	t.Run("a super admin's decisions are overrides", func(t *testing.T) {
		root := domain.UserID("44444444-4444-4444-8444-444444444444")
		tn := membersTenant(t)
		if err := tn.Deactivate(mDev, archive("permanent"), root, domain.RoleSuperAdmin, grace, t0); err != nil {
			t.Fatal(err)
		}
		if err := tn.Reactivate(mDev, domain.ReactivatedManually, mViewer, domain.RoleViewer, t0); !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("a viewer reactivating a developer = %v, want ErrForbidden", err)
		}
		if err := tn.Reactivate(mDev, domain.ReactivatedManually, root, domain.RoleSuperAdmin, t0); err != nil {
			t.Fatal(err)
		}
		d, r := tn.PendingEvents()[0].(domain.TenantMemberDeactivated), tn.PendingEvents()[1].(domain.TenantMemberReactivated)
		if !d.Override || !r.Override || r.By != root {
			t.Errorf("override not recorded: %+v, %+v", d, r)
		}
		// A super admin who is the tenant's admin decides as its admin.
		if tn.Override(mAdmin, domain.RoleSuperAdmin) || !tn.Override(mDev, domain.RoleSuperAdmin) || tn.Override(mAdmin, domain.RoleTenantAdmin) {
			t.Error("Override does not single out super admins who are not the tenant's admins")
		}
	})
}

// A member may leave of their own accord, whatever their role: a deactivation by themselves whose
// membership closes at once, with no grace to reverse it; the last active admin may not.
func TestTenantLeave(t *testing.T) {
	for _, leaver := range []domain.UserID{mViewer, mDev, mAdmin2} {
		tn := membersTenant(t)
		role := tn.Role(leaver)
		if err := tn.Leave(leaver, domain.LeaveRequest(domain.ResourcesArchive, "", "moving on"), t0); err != nil {
			t.Fatalf("%s leaves: %v", role, err)
		}
		wantPending(t, tn.PendingEvents(), "tenant.member_deactivated.v1", "tenant.membership_closed.v1")
		e := tn.PendingEvents()[0].(domain.TenantMemberDeactivated)
		if e.By != leaver || e.Role != role || e.Reason != "departure" || e.Type != domain.DeactivationPermanent || e.Note != "moving on" ||
			e.GraceUntil == nil || !e.GraceUntil.Equal(t0) || e.Override {
			t.Errorf("%s leaves: %+v", role, e)
		}
		if tn.IsMember(leaver) {
			t.Errorf("%s is still a member after leaving", role)
		}
		if err := tn.Reactivate(leaver, domain.ReactivatedManually, mAdmin, domain.RoleTenantAdmin, t0); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("an admin reactivates the %s who left: %v, want ErrNotFound", role, err)
		}
	}

	tn := membersTenant(t, domain.TenantMemberDeactivated{UserID: mAdmin2, Role: domain.RoleTenantAdmin, Type: "permanent", At: t0})
	if err := tn.Leave(mAdmin, domain.LeaveRequest(domain.ResourcesArchive, "", ""), t0); !errors.Is(err, domain.ErrLastAdmin) {
		t.Errorf("the last active admin leaves: %v, want ErrLastAdmin", err)
	}
	if err := tn.Leave(mDev, domain.LeaveRequest(domain.ResourcesTransfer, mAdmin2, ""), t0); err == nil {
		t.Error("a leaver hands their databases to a deactivated member")
	}
	if err := tn.Leave(domain.UserID(uuidC), domain.LeaveRequest(domain.ResourcesArchive, "", ""), t0); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("a stranger leaves: %v, want ErrNotFound", err)
	}
	wantPending(t, tn.PendingEvents())
}

func TestDatabaseHandOver(t *testing.T) {
	to := domain.UserID(uuidC)
	tests := []struct {
		state     domain.DatabaseState
		resources string
		want      domain.Handover
		wantTypes []string
		wantErr   error
	}{
		{domain.StateRunning, domain.ResourcesTransfer, domain.HandoverTransfer, []string{"database.owner_changed.v1"}, nil},
		{domain.StateProvisioning, domain.ResourcesTransfer, domain.HandoverTransfer, []string{"database.owner_changed.v1"}, nil},
		{domain.StateRunning, domain.ResourcesArchive, domain.HandoverStop, []string{"database.stopped.v1"}, nil},
		{domain.StateStopped, domain.ResourcesArchive, domain.HandoverKeep, nil, nil},
		{domain.StateProvisioning, domain.ResourcesArchive, domain.HandoverStop, nil, domain.ErrConflict},
		{domain.StateStopped, domain.ResourcesDelete, domain.HandoverDelete, []string{"database.deleted.v1"}, nil},
		{domain.StateProvisioning, domain.ResourcesDelete, domain.HandoverDelete, nil, domain.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(string(tt.state)+" "+tt.resources, func(t *testing.T) {
			d := loadDatabase(t, dbHistory(tt.state))
			got, err := d.HandOver(tt.resources, to, domain.RecoveryWindow, t0)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("HandOver = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			wantPending(t, d.PendingEvents(), tt.wantTypes...)
			if e, ok := firstOf[domain.DatabaseStopped](d.PendingEvents()); ok && e.Reason != domain.StoppedOwnerDeactivated {
				t.Errorf("stopped with reason %q", e.Reason)
			}
		})
	}
}

func firstOf[E domain.Event](events []domain.Event) (E, bool) {
	for _, e := range events {
		if v, ok := e.(E); ok {
			return v, true
		}
	}
	var zero E
	return zero, false
}

func TestReadWriteAccessLostByDeactivation(t *testing.T) {
	requested := dbRequested()
	owner := requested.OwnerID
	other := domain.UserID("55555555-5555-4555-8555-555555555555")
	base := []domain.Event{
		domain.TenantMemberAdded{UserID: owner, Role: domain.RoleDeveloper, At: t0},
		domain.TenantMemberAdded{UserID: other, Role: domain.RoleDeveloper, At: t0},
		requested, domain.DatabaseProvisioned{At: t0},
	}
	deactivate := func(u domain.UserID) domain.Event {
		return domain.TenantMemberDeactivated{UserID: u, Role: domain.RoleDeveloper, Type: "temporary", At: t0}
	}
	tests := []struct {
		name string
		more []domain.Event
		want string
	}{
		{"the owner deactivated", []domain.Event{deactivate(owner)}, domain.CredentialsDeactivated},
		{"another developer deactivated", []domain.Event{deactivate(other)}, ""},
		{"rotated since", []domain.Event{deactivate(owner), domain.DatabaseCredentialsRotated{At: t0}}, ""},
		{"reactivated, then demoted", []domain.Event{deactivate(owner), domain.DatabaseCredentialsRotated{At: t0},
			domain.TenantMemberReactivated{UserID: owner, How: "manual", At: t0},
			domain.TenantMemberRoleChanged{UserID: owner, From: domain.RoleDeveloper, To: domain.RoleViewer}}, domain.CredentialsRoleChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := domain.ReadWriteAccessLost(append(append([]domain.Event{}, base...), tt.more...)); got != tt.want {
				t.Errorf("ReadWriteAccessLost = %q, want %q", got, tt.want)
			}
		})
	}
}
