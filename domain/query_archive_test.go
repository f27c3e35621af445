package domain_test

import (
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

func TestResultArchiveRecord(t *testing.T) {
	executed := domain.QueryExecuted{QueryID: uuidA}
	kept, deleted := domain.QueryResultArchived{QueryID: uuidA}, domain.QueryResultArchiveDeleted{QueryID: uuidA}
	for _, tc := range []struct {
		name    string
		history []domain.Event
		want    domain.ArchiveRecord
	}{
		{"only executed", []domain.Event{executed}, domain.ArchiveUnrecorded},
		{"kept", []domain.Event{executed, kept}, domain.ArchiveKept},
		{"deleted", []domain.Event{executed, kept, deleted}, domain.ArchiveDeleted},
		{"kept again", []domain.Event{executed, kept, deleted, kept}, domain.ArchiveKept},
		{"deletion of an archive kept before it was recorded", []domain.Event{executed, deleted}, domain.ArchiveDeleted},
	} {
		if got := domain.ResultArchiveRecord(tc.history); got != tc.want {
			t.Errorf("%s: ResultArchiveRecord = %v, want %v", tc.name, got, tc.want)
		}
	}
}
