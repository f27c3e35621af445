package domain_test

import (
	"errors"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

// loadTenant creates a tenant and returns it as loaded from the store: no pending events.
func loadTenant(t *testing.T, plan domain.PlanID, creator domain.UserID, more ...domain.Event) *domain.Tenant {
	t.Helper()
	history := append(domain.CreateTenant(domain.TenantID(uuidC), "Acme Corp", "acme-corp", mustPlan(t, plan), creator, t0).PendingEvents(), more...)
	tn, err := domain.RebuildTenant(viaJSON(t, history), int64(len(history)))
	if err != nil {
		t.Fatalf("RebuildTenant: %v", err)
	}
	return tn
}

func TestCreateTenant(t *testing.T) {
	tests := []struct {
		name    string
		plan    domain.PlanID
		creator domain.UserID
	}{
		{"by a user on free", domain.PlanFree, domain.UserID(uuidA)},
		{"by a user on pro", domain.PlanPro, domain.UserID(uuidA)},
		{"by a super admin for someone to be invited", domain.PlanEnterprise, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := mustPlan(t, tt.plan)
			tn := domain.CreateTenant(domain.TenantID(uuidC), "Acme Corp", "acme-corp", plan, tt.creator, t0)
			created := domain.TenantCreated{TenantID: domain.TenantID(uuidC), Name: "Acme Corp", Slug: "acme-corp", Plan: tt.plan,
				Settings: domain.DefaultSettings(plan.Limits), CreatedBy: tt.creator}
			if tt.creator != "" {
				wantPending(t, tn.PendingEvents(), "tenant.created.v1", "tenant.member_added.v1")
				if got, want := tn.PendingEvents()[1], (domain.TenantMemberAdded{UserID: tt.creator, Role: domain.RoleTenantAdmin, At: t0}); got != want {
					t.Errorf("member event = %+v, want %+v", got, want)
				}
			} else {
				wantPending(t, tn.PendingEvents(), "tenant.created.v1")
			}
			if got := tn.PendingEvents()[0]; got != created {
				t.Errorf("created event = %+v, want %+v", got, created)
			}
			for name, tenant := range map[string]*domain.Tenant{"decided": tn, "rebuilt": loadTenant(t, tt.plan, tt.creator)} {
				if tenant.ID() != domain.TenantID(uuidC) || tenant.Name() != "Acme Corp" || tenant.Slug() != "acme-corp" || tenant.Plan() != tt.plan {
					t.Errorf("%s: tenant = %v %q %q %v", name, tenant.ID(), tenant.Name(), tenant.Slug(), tenant.Plan())
				}
				if tenant.Settings() != domain.DefaultSettings(plan.Limits) || tenant.Limits() != plan.Limits {
					t.Errorf("%s: settings %+v, limits %+v; want the plan's defaults and limits", name, tenant.Settings(), tenant.Limits())
				}
				wantCount := 0
				if tt.creator != "" {
					wantCount = 1
					if r := tenant.Role(tt.creator); r != domain.RoleTenantAdmin {
						t.Errorf("%s: creator's role = %q, want tenant_admin", name, r)
					}
				}
				if tenant.MemberCount() != wantCount {
					t.Errorf("%s: MemberCount() = %d, want %d", name, tenant.MemberCount(), wantCount)
				}
				if r := tenant.Role(domain.UserID(uuidB)); r != "" {
					t.Errorf("%s: non-member's role = %q, want \"\"", name, r)
				}
			}
		})
	}
}

func TestTenantMembers(t *testing.T) {
	admin, dev, viewer := domain.UserID(uuidA), domain.UserID(uuidB), domain.UserID("11111111-1111-1111-1111-111111111111")
	tn := loadTenant(t, domain.PlanPro, admin,
		domain.TenantMemberAdded{UserID: dev, Role: domain.RoleViewer, At: t0},
		domain.TenantMemberAdded{UserID: viewer, Role: domain.RoleViewer, At: t0},
		domain.TenantMemberRoleChanged{UserID: dev, From: domain.RoleViewer, To: domain.RoleDeveloper},
	)
	for user, want := range map[domain.UserID]domain.Role{admin: domain.RoleTenantAdmin, dev: domain.RoleDeveloper, viewer: domain.RoleViewer, "": "", domain.UserID(uuidC): ""} {
		if got := tn.Role(user); got != want {
			t.Errorf("Role(%q) = %q, want %q", user, got, want)
		}
	}
	if tn.MemberCount() != 3 {
		t.Errorf("MemberCount() = %d, want 3", tn.MemberCount())
	}
	if tn.Version() != 5 {
		t.Errorf("Version() = %d, want 5", tn.Version())
	}
}

func TestTenantChangeSettings(t *testing.T) {
	defaults := domain.DefaultSettings(mustPlan(t, domain.PlanFree).Limits)
	with := func(f func(s *domain.TenantSettings)) domain.TenantSettings { s := defaults; f(&s); return s }
	tests := []struct {
		name       string
		plan       domain.PlanID
		settings   domain.TenantSettings
		wantFields []string // nil: valid
		wantRecord bool
	}{
		{"unchanged records nothing", domain.PlanFree, defaults, nil, false},
		{"lower timeout", domain.PlanFree, with(func(s *domain.TenantSettings) { s.QueryTimeoutS = 10 }), nil, true},
		{"toggle procedures", domain.PlanFree, with(func(s *domain.TenantSettings) { s.AllowProcedures = true }), nil, true},
		{"free maxima", domain.PlanFree, with(func(s *domain.TenantSettings) { s.QueryTimeoutS, s.RowLimit = 30, 1_000 }), nil, false},
		{"timeout above free", domain.PlanFree, with(func(s *domain.TenantSettings) { s.QueryTimeoutS = 31 }), []string{"query_timeout_s"}, false},
		{"rows above free", domain.PlanFree, with(func(s *domain.TenantSettings) { s.RowLimit = 1_001 }), []string{"row_limit"}, false},
		{"same on pro is fine", domain.PlanPro, with(func(s *domain.TenantSettings) { s.QueryTimeoutS, s.RowLimit = 31, 1_001 }), nil, true},
		{"every field wrong", domain.PlanPro, domain.TenantSettings{}, []string{"query_timeout_s", "row_limit", "idle_timeout_minutes", "auto_stop_minutes"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := loadTenant(t, tt.plan, domain.UserID(uuidA))
			before := tn.Settings()
			err := tn.ChangeSettings(tt.settings)
			if tt.wantFields != nil {
				wantValidation(t, err, tt.wantFields...)
				wantPending(t, tn.PendingEvents())
				if tn.Settings() != before {
					t.Errorf("Settings() = %+v after a refused change, want %+v", tn.Settings(), before)
				}
				return
			}
			if err != nil {
				t.Fatalf("ChangeSettings = %v, want nil", err)
			}
			if !tt.wantRecord {
				wantPending(t, tn.PendingEvents())
			} else {
				wantPending(t, tn.PendingEvents(), "tenant.settings_changed.v1")
				if got, want := tn.PendingEvents()[0], (domain.TenantSettingsChanged{Settings: tt.settings}); got != want {
					t.Errorf("event = %+v, want %+v", got, want)
				}
			}
			if tn.Settings() != tt.settings {
				t.Errorf("Settings() = %+v, want %+v", tn.Settings(), tt.settings)
			}
		})
	}
}

func TestTenantChangePlan(t *testing.T) {
	big := domain.TenantSettings{QueryTimeoutS: 300, RowLimit: 50_000, IdleTimeoutMinutes: 120, AutoStopMinutes: 600, AllowProcedures: true}
	tests := []struct {
		name       string
		from, to   domain.PlanID
		settings   domain.TenantSettings
		want       domain.TenantSettings
		wantRecord bool
	}{
		{"enterprise to free lowers timeout and rows", domain.PlanEnterprise, domain.PlanFree, big,
			domain.TenantSettings{QueryTimeoutS: 30, RowLimit: 1_000, IdleTimeoutMinutes: 120, AutoStopMinutes: 600, AllowProcedures: true}, true},
		{"enterprise to pro keeps what pro allows", domain.PlanEnterprise, domain.PlanPro, big, big, true},
		{"free to enterprise raises nothing", domain.PlanFree, domain.PlanEnterprise,
			domain.TenantSettings{QueryTimeoutS: 20, RowLimit: 500, IdleTimeoutMinutes: 30, AutoStopMinutes: 60},
			domain.TenantSettings{QueryTimeoutS: 20, RowLimit: 500, IdleTimeoutMinutes: 30, AutoStopMinutes: 60}, true},
		{"same plan records nothing", domain.PlanEnterprise, domain.PlanEnterprise, big, big, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := loadTenant(t, tt.from, domain.UserID(uuidA), domain.TenantSettingsChanged{Settings: tt.settings})
			tn.ChangePlan(mustPlan(t, tt.to))
			if !tt.wantRecord {
				wantPending(t, tn.PendingEvents())
			} else {
				wantPending(t, tn.PendingEvents(), "tenant.plan_changed.v1")
				if got, want := tn.PendingEvents()[0], (domain.TenantPlanChanged{From: tt.from, To: tt.to, Settings: tt.want}); got != want {
					t.Errorf("event = %+v, want %+v", got, want)
				}
			}
			if tn.Plan() != tt.to || tn.Settings() != tt.want || tn.Limits() != mustPlan(t, tt.to).Limits {
				t.Errorf("after ChangePlan: plan %q, settings %+v; want %q, %+v", tn.Plan(), tn.Settings(), tt.to, tt.want)
			}
			if err := tn.Settings().Validate(tn.Limits()); err != nil {
				t.Errorf("settings after the plan change do not validate: %v", err)
			}
		})
	}
}

func TestRebuildTenantEmpty(t *testing.T) {
	for _, history := range [][]domain.Event{nil, {}} {
		tn, err := domain.RebuildTenant(history, 0)
		if !errors.Is(err, domain.ErrNotFound) || tn != nil {
			t.Errorf("RebuildTenant(%v) = %v, %v; want nil, ErrNotFound", history, tn, err)
		}
	}
}
