package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

func TestDatabasesWritesRestricted(t *testing.T) {
	f := newIdentityFixture(t)
	databases := projections.NewDatabases(production)
	r := f.start(t, databases)
	tenant, owner, id := domain.TenantID(newID()), domain.UserID(newID()), domain.DatabaseID(newID())
	f.appendAt(t, t0, id.Stream(), domain.DatabaseRequested{DatabaseID: id, TenantID: tenant, Name: "full",
		Charset: "utf8mb4", Collation: "utf8mb4_general_ci", Template: domain.TemplateBlank, OwnerID: owner, Server: "s1", At: t0})
	f.appendAt(t, t0, id.Stream(), domain.DatabaseProvisioned{At: t0})
	at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }
	steps := []struct {
		name  string
		event domain.Event
		want  bool
	}{
		{"measured over the quota", domain.DatabaseStorageMeasured{Bytes: 2 << 30, At: at(1)}, false},
		{"restricted", domain.DatabaseWritesRestricted{Reason: domain.WritesRestrictedStorage, Used: 2 << 30, Limit: 1 << 30, At: at(2)}, true},
		{"stopped", domain.DatabaseStopped{Reason: "idle", At: at(3)}, true},
		{"deleted", domain.DatabaseDeleted{At: at(4), RecoverableUntil: at(60)}, true},
		{"restored", domain.DatabaseRestored{At: at(5)}, true},
		{"writes restored", domain.DatabaseWritesRestored{At: at(6)}, false},
	}
	queries := projections.NewViews(f.db)
	for _, step := range steps {
		wait(t, r, f.appendAt(t, t0, id.Stream(), step.event).LastPosition, "databases")
		view, err := queries.Database(context.Background(), tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		if view.WritesRestricted() != step.want {
			t.Fatalf("after %s: WritesRestricted = %v, want %v", step.name, view.WritesRestricted(), step.want)
		}
		if want := (&domain.QuotaExceededError{Resource: "storage", Used: 2 << 30, Limit: 1 << 30}); step.want && *view.WriteWall != *want {
			t.Fatalf("after %s: WriteWall = %+v, want %+v", step.name, view.WriteWall, want)
		}
	}
	t.Run("rebuild and redelivery change nothing", func(t *testing.T) {
		checkReplay(t, f, r, databases, map[string]string{"database_list": "database_id"})
	})
}
