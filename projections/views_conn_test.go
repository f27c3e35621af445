package projections_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/internal/mgmtdb"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/projections"
)

// SessionAndUser's prepared statement lives on its connection: when the server ends that
// connection, the next request reads the session on a new one (prepared again), not an error.
func TestSessionAndUserAfterItsConnectionIsKilled(t *testing.T) {
	f := newIdentityFixture(t)
	r := f.start(t, projections.NewUsers(production), projections.NewSessions(production))
	ctx := context.Background()
	var name string
	if err := f.db.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	cfg, err := mysql.ParseDSN(testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = name
	db, err := mgmtdb.Open(ctx, cfg.FormatDSN(), 10*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	views := projections.NewViews(db)

	user, session := f.signedIn(t, r)
	for i := range 3 {
		if s, _, err := views.SessionAndUser(ctx, session); err != nil || s.UserID != user {
			t.Fatalf("read %d: %+v %v", i, s, err)
		}
		var id int64
		if err := db.QueryRowContext(ctx, `SELECT CONNECTION_ID()`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if _, err := f.db.ExecContext(ctx, `KILL CONNECTION ?`, id); err != nil {
			t.Fatal(err)
		}
	}
}
