package domain_test

import (
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

func mustPlan(t *testing.T, id domain.PlanID) domain.Plan {
	t.Helper()
	p, err := domain.PlanByID(id)
	if err != nil {
		t.Fatalf("PlanByID(%q): %v", id, err)
	}
	return p
}

func TestPlanByID(t *testing.T) {
	tests := []struct {
		id       domain.PlanID
		wantName string // "" = unknown plan
		timeout  int64
		rows     int64
	}{
		{domain.PlanFree, "Free", 30, 1_000},
		{domain.PlanPro, "Pro", 300, 100_000},
		{domain.PlanEnterprise, "Enterprise", 3_600, 1_000_000},
		{"", "", 0, 0},
		{"Free", "", 0, 0},
		{"gold", "", 0, 0},
		{" free", "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.id), func(t *testing.T) {
			p, err := domain.PlanByID(tt.id)
			if tt.wantName == "" {
				wantValidation(t, err, "plan")
				if p != (domain.Plan{}) {
					t.Errorf("PlanByID(%q) = %+v with its error, want the zero Plan", tt.id, p)
				}
				return
			}
			if err != nil {
				t.Fatalf("PlanByID(%q): %v", tt.id, err)
			}
			if p.ID != tt.id || p.Name != tt.wantName || p.Limits.MaxQueryTimeoutS != tt.timeout || p.Limits.MaxRowLimit != tt.rows {
				t.Errorf("PlanByID(%q) = %+v, want name %q, timeout %d, rows %d", tt.id, p, tt.wantName, tt.timeout, tt.rows)
			}
		})
	}
}

func TestPlansAreCheapestFirst(t *testing.T) {
	if len(domain.Plans) != 3 {
		t.Fatalf("len(Plans) = %d, want 3", len(domain.Plans))
	}
	for i := 1; i < len(domain.Plans); i++ {
		a, b := domain.Plans[i-1].Limits, domain.Plans[i].Limits
		if b.MaxDatabases < a.MaxDatabases || b.MaxStorageBytes < a.MaxStorageBytes || b.MaxConnections < a.MaxConnections ||
			b.MaxUsers < a.MaxUsers || b.MaxQueryTimeoutS < a.MaxQueryTimeoutS || b.MaxRowLimit < a.MaxRowLimit ||
			(a.ResultArchiving && !b.ResultArchiving) {
			t.Errorf("plan %s allows less than the cheaper %s: %+v < %+v", domain.Plans[i].ID, domain.Plans[i-1].ID, b, a)
		}
	}
}

func TestDefaultSettings(t *testing.T) {
	for _, p := range domain.Plans {
		t.Run(string(p.ID), func(t *testing.T) {
			s := domain.DefaultSettings(p.Limits)
			if err := s.Validate(p.Limits); err != nil {
				t.Fatalf("DefaultSettings(%s) = %+v does not validate: %v", p.ID, s, err)
			}
			want := domain.TenantSettings{QueryTimeoutS: 30, RowLimit: 1_000, IdleTimeoutMinutes: 30, AutoStopMinutes: 60, AllowForeignKeys: true}
			if s != want {
				t.Errorf("DefaultSettings(%s) = %+v, want %+v", p.ID, s, want)
			}
		})
	}
	t.Run("capped by small limits", func(t *testing.T) {
		limits := domain.Limits{MaxQueryTimeoutS: 10, MaxRowLimit: 100}
		s := domain.DefaultSettings(limits)
		if s.QueryTimeoutS != 10 || s.RowLimit != 100 {
			t.Errorf("DefaultSettings(%+v) = %+v, want timeout 10 and rows 100", limits, s)
		}
		if err := s.Validate(limits); err != nil {
			t.Errorf("capped defaults do not validate: %v", err)
		}
	})
}

func TestTenantSettingsValidateBounds(t *testing.T) {
	pro := mustPlan(t, domain.PlanPro).Limits
	valid := domain.DefaultSettings(pro)
	type setter func(s *domain.TenantSettings, v int64)
	fields := []struct {
		field  string
		set    setter
		lo, hi int64
	}{
		{"query_timeout_s", func(s *domain.TenantSettings, v int64) { s.QueryTimeoutS = v }, 1, pro.MaxQueryTimeoutS},
		{"row_limit", func(s *domain.TenantSettings, v int64) { s.RowLimit = v }, 1, pro.MaxRowLimit},
		{"idle_timeout_minutes", func(s *domain.TenantSettings, v int64) { s.IdleTimeoutMinutes = v }, 5, 24 * 60},
		{"auto_stop_minutes", func(s *domain.TenantSettings, v int64) { s.AutoStopMinutes = v }, 5, 30 * 24 * 60},
	}
	for _, f := range fields {
		for _, c := range []struct {
			name string
			v    int64
			ok   bool
		}{
			{"negative", -1, false},
			{"lo-1", f.lo - 1, false},
			{"lo", f.lo, true},
			{"hi", f.hi, true},
			{"hi+1", f.hi + 1, false},
		} {
			t.Run(f.field+"/"+c.name, func(t *testing.T) {
				s := valid
				f.set(&s, c.v)
				err := s.Validate(pro)
				if c.ok {
					if err != nil {
						t.Fatalf("%s = %d: %v, want valid", f.field, c.v, err)
					}
					return
				}
				verr := wantValidation(t, err, f.field)
				if msg := verr.Fields[f.field]; !strings.Contains(msg, "from ") || !strings.Contains(msg, " to ") {
					t.Errorf("%s message = %q, want it to state the bounds", f.field, msg)
				}
			})
		}
	}

	t.Run("bounds follow the plan", func(t *testing.T) {
		free := mustPlan(t, domain.PlanFree).Limits
		s := valid
		s.QueryTimeoutS, s.RowLimit = 300, 100_000 // pro's maxima
		if err := s.Validate(pro); err != nil {
			t.Fatalf("pro maxima on pro: %v", err)
		}
		verr := wantValidation(t, s.Validate(free), "query_timeout_s", "row_limit")
		if got, want := verr.Fields["query_timeout_s"], "must be from 1 to 30"; got != want {
			t.Errorf("query_timeout_s message on free = %q, want %q", got, want)
		}
		if got, want := verr.Fields["row_limit"], "must be from 1 to 1000"; got != want {
			t.Errorf("row_limit message on free = %q, want %q", got, want)
		}
	})

	t.Run("all bad fields listed together", func(t *testing.T) {
		s := domain.TenantSettings{QueryTimeoutS: 0, RowLimit: pro.MaxRowLimit + 1, IdleTimeoutMinutes: 4, AutoStopMinutes: 30*24*60 + 1}
		wantValidation(t, s.Validate(pro), "query_timeout_s", "row_limit", "idle_timeout_minutes", "auto_stop_minutes")
	})

	t.Run("booleans are free", func(t *testing.T) {
		s := valid
		s.AllowProcedures, s.AllowForeignKeys, s.AllowHighImpactAlter = true, false, true
		if err := s.Validate(pro); err != nil {
			t.Errorf("booleans: %v", err)
		}
	})
}

func TestTenantSettingsFitTo(t *testing.T) {
	free := mustPlan(t, domain.PlanFree).Limits
	enterprise := mustPlan(t, domain.PlanEnterprise).Limits
	tests := []struct {
		name   string
		in     domain.TenantSettings
		limits domain.Limits
		want   domain.TenantSettings
	}{
		{"lowered to a smaller plan",
			domain.TenantSettings{QueryTimeoutS: 300, RowLimit: 50_000, IdleTimeoutMinutes: 120, AutoStopMinutes: 600, AllowProcedures: true, AllowHighImpactAlter: true},
			free,
			domain.TenantSettings{QueryTimeoutS: 30, RowLimit: 1_000, IdleTimeoutMinutes: 120, AutoStopMinutes: 600, AllowProcedures: true, AllowHighImpactAlter: true}},
		{"within limits unchanged",
			domain.TenantSettings{QueryTimeoutS: 10, RowLimit: 500, IdleTimeoutMinutes: 5, AutoStopMinutes: 5, AllowForeignKeys: true},
			free,
			domain.TenantSettings{QueryTimeoutS: 10, RowLimit: 500, IdleTimeoutMinutes: 5, AutoStopMinutes: 5, AllowForeignKeys: true}},
		{"exactly at the limits unchanged",
			domain.TenantSettings{QueryTimeoutS: 30, RowLimit: 1_000, IdleTimeoutMinutes: 30, AutoStopMinutes: 60},
			free,
			domain.TenantSettings{QueryTimeoutS: 30, RowLimit: 1_000, IdleTimeoutMinutes: 30, AutoStopMinutes: 60}},
		{"never raised by a bigger plan",
			domain.TenantSettings{QueryTimeoutS: 30, RowLimit: 1_000, IdleTimeoutMinutes: 30, AutoStopMinutes: 60},
			enterprise,
			domain.TenantSettings{QueryTimeoutS: 30, RowLimit: 1_000, IdleTimeoutMinutes: 30, AutoStopMinutes: 60}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.FitTo(tt.limits)
			if got != tt.want {
				t.Errorf("FitTo = %+v, want %+v", got, tt.want)
			}
			if err := got.Validate(tt.limits); err != nil {
				t.Errorf("fitted settings do not validate: %v", err)
			}
		})
	}
}

func TestValidateSlug(t *testing.T) {
	tests := []struct {
		slug string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"acme", true},
		{"acme-corp", true},
		{"acme-corp-42", true},
		{"a-b", true},
		{"a--b", true},
		{"42", true},
		{strings.Repeat("a", 40), true},
		{"a" + strings.Repeat("-", 38) + "b", true},

		{"", false},
		{strings.Repeat("a", 41), false},
		{"-", false},
		{"-acme", false},
		{"acme-", false},
		{"Acme", false},
		{"acme corp", false},
		{"acme_corp", false},
		{"acme.corp", false},
		{" acme", false},
		{"acme\n", false},
		{"ünï", false},
		{"acme/corp", false},
	}
	for _, tt := range tests {
		t.Run(tt.slug, func(t *testing.T) {
			err := domain.ValidateSlug(tt.slug)
			if tt.ok {
				if err != nil {
					t.Errorf("ValidateSlug(%q) = %v, want nil", tt.slug, err)
				}
				return
			}
			wantValidation(t, err, "slug")
		})
	}
}

func TestSlugFrom(t *testing.T) {
	tests := []struct {
		name string
		want string
	}{
		{"Acme Corp", "acme-corp"},
		{"acme", "acme"},
		{"ACME", "acme"},
		// Non-ASCII letters are separators, not transliterated: "Ü" and "ï" split "n" from "code".
		{"  --Ünïcode!! 42 ", "n-code-42"},
		{"Acme   &   Sons, Ltd.", "acme-sons-ltd"},
		{"__init__", "init"},
		{"42", "42"},
		{"a-b", "a-b"},
		{"a--b", "a-b"},
		{"!!!", "tenant"},
		{"", "tenant"},
		{"   ", "tenant"},
		{"日本語", "tenant"},
		// Long names are cut: at most 37 characters here, never ending with a dash.
		{strings.Repeat("ab ", 30), "ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-a"},
		{strings.Repeat("x", 100), strings.Repeat("x", 36)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := domain.SlugFrom(tt.name)
			if got != tt.want {
				t.Errorf("SlugFrom(%q) = %q, want %q", tt.name, got, tt.want)
			}
			if err := domain.ValidateSlug(got); err != nil {
				t.Errorf("SlugFrom(%q) = %q is not a valid slug: %v", tt.name, got, err)
			}
		})
	}
}

func TestSlugFromAlwaysValid(t *testing.T) {
	// Every derived slug passes ValidateSlug, whatever the name: lengths around the cut, runs of
	// separators at every position, non-ASCII input.
	pieces := []string{"a", "Z", "9", " ", "-", "!", "ü", "日", "--", "ab"}
	for n := 0; n < 60; n++ {
		for i, p := range pieces {
			name := strings.Repeat(p+pieces[(i+n)%len(pieces)], n) + p
			if got := domain.SlugFrom(name); domain.ValidateSlug(got) != nil {
				t.Errorf("SlugFrom(%q) = %q (%d bytes) is not a valid slug", name, got, len(got))
			}
		}
	}
}

func TestQuotaExceededError(t *testing.T) {
	err := &domain.QuotaExceededError{Resource: "databases", Used: 5, Limit: 5}
	if got, want := err.Error(), "quota exceeded: databases 5 of 5"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
