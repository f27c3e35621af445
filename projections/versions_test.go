package projections_test

import (
	"slices"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

// A projector that handles a type must also read the events stored under its earlier versions,
// or it would never see the history recorded before the latest one.
func TestProjectorsReadEveryStoredVersion(t *testing.T) {
	for _, p := range []projections.Projector{
		projections.NewUsers(production), projections.NewTenants(production), projections.NewSessions(production),
		projections.NewMailDeliveries(production), projections.NewAPIKeys(production), projections.NewInvitations(production),
		projections.NewDatabases(production), projections.NewQueryHistory(production), projections.NewMemberQuotas(production),
		projections.NewAccessReport(production),
	} {
		handles := p.Handles()
		for _, u := range domain.Upcasters() {
			if slices.Contains(handles, u.To) && !slices.Contains(handles, u.From) {
				t.Errorf("%s handles %s but not the events stored as %s", p.Name(), u.To, u.From)
			}
		}
	}
}
