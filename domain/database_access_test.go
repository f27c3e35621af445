package domain_test

import (
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

func TestReadWriteAccessLost(t *testing.T) {
	const admin, dev, other = domain.UserID("admin"), domain.UserID("dev"), domain.UserID("other")
	start := []domain.Event{
		domain.TenantMemberAdded{UserID: admin, Role: domain.RoleTenantAdmin},
		domain.TenantMemberAdded{UserID: dev, Role: domain.RoleDeveloper},
		domain.TenantMemberAdded{UserID: other, Role: domain.RoleDeveloper},
		domain.DatabaseRequested{OwnerID: dev},
	}
	demote := func(u domain.UserID, from, to domain.Role) domain.Event {
		return domain.TenantMemberRoleChanged{UserID: u, From: from, To: to}
	}
	rotated := domain.DatabaseCredentialsRotated{}
	for _, c := range []struct {
		name  string
		after []domain.Event
		want  string
	}{
		{"nothing changed", nil, ""},
		{"owner demoted to viewer", []domain.Event{demote(dev, domain.RoleDeveloper, domain.RoleViewer)}, domain.CredentialsRoleChanged},
		{"owner demoted, then rotated", []domain.Event{demote(dev, domain.RoleDeveloper, domain.RoleViewer), rotated}, ""},
		{"another developer demoted: never could see it", []domain.Event{demote(other, domain.RoleDeveloper, domain.RoleViewer)}, ""},
		{"admin demoted to developer", []domain.Event{demote(admin, domain.RoleTenantAdmin, domain.RoleDeveloper)}, domain.CredentialsRoleChanged},
		{"owner promoted", []domain.Event{demote(dev, domain.RoleDeveloper, domain.RoleTenantAdmin)}, ""},
		{"owner changed from a developer", []domain.Event{domain.DatabaseOwnerChanged{From: dev, To: other}}, domain.CredentialsOwnerChanged},
		{"owner changed from an admin", []domain.Event{domain.DatabaseOwnerChanged{From: dev, To: admin},
			domain.DatabaseOwnerChanged{From: admin, To: other}}, domain.CredentialsOwnerChanged},
		{"given by an admin who keeps seeing it", []domain.Event{domain.DatabaseOwnerChanged{From: dev, To: admin}, rotated,
			domain.DatabaseOwnerChanged{From: admin, To: other}}, ""},
	} {
		if got := domain.ReadWriteAccessLost(append(append([]domain.Event{}, start...), c.after...)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
