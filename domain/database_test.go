package domain_test

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// The database of these tests: requested at t0, provisioned a minute later, deleted (when it is)
// at dbDeletedAt; decisions happen at dbNow unless a case says otherwise.
const dbName = "Orders_2025"

var (
	dbID        = domain.DatabaseID(uuidA)
	dbTenant    = domain.TenantID(uuidC)
	dbOwner     = domain.UserID(uuidB)
	dbNewOwner  = domain.UserID(uuidA)
	dbDeletedAt = t0.Add(time.Hour)
	dbUntil     = dbDeletedAt.Add(domain.RecoveryWindow) // end of the recovery window
	dbNow       = dbDeletedAt.Add(time.Hour)             // inside the window
)

// dbStates are all the states, each reached by dbHistory.
var dbStates = []domain.DatabaseState{
	domain.StateProvisioning, domain.StateRunning, domain.StateStopped,
	domain.StateDeleted, domain.StateFailed, domain.StatePurged,
}

func dbRequested() domain.DatabaseRequested {
	return domain.DatabaseRequested{DatabaseID: dbID, TenantID: dbTenant, Name: dbName, Charset: "utf8mb4",
		Collation: "utf8mb4_general_ci", Template: domain.TemplateBlank, OwnerID: dbOwner, Server: "rds-b-1", At: t0}
}

// dbHistory returns the history of a database that reached state; a deleted or purged one was
// running when it was deleted.
func dbHistory(state domain.DatabaseState) []domain.Event {
	requested := dbRequested()
	provisioned := domain.DatabaseProvisioned{At: t0.Add(time.Minute)}
	switch state {
	case domain.StateProvisioning:
		return []domain.Event{requested}
	case domain.StateRunning:
		return []domain.Event{requested, provisioned}
	case domain.StateStopped:
		return []domain.Event{requested, provisioned, domain.DatabaseStopped{Reason: "manual", At: t0.Add(2 * time.Minute)}}
	case domain.StateFailed:
		return []domain.Event{requested, domain.DatabaseProvisioningFailed{Reason: "rds-b unreachable", At: t0.Add(time.Minute)}}
	case domain.StateDeleted:
		return dbDeletedFrom(domain.StateRunning)
	case domain.StatePurged:
		return append(dbDeletedFrom(domain.StateRunning), domain.DatabasePurged{At: dbUntil})
	}
	panic("dbHistory: unknown state " + string(state))
}

// dbDeletedFrom returns the history of a database deleted at dbDeletedAt while it was before.
func dbDeletedFrom(before domain.DatabaseState) []domain.Event {
	return append(dbHistory(before), domain.DatabaseDeleted{At: dbDeletedAt, RecoverableUntil: dbUntil})
}

// loadDatabase returns the database as loaded from the store: no pending events.
func loadDatabase(t *testing.T, history []domain.Event) *domain.Database {
	t.Helper()
	d, err := domain.RebuildDatabase(viaJSON(t, history), int64(len(history)))
	if err != nil {
		t.Fatalf("RebuildDatabase: %v", err)
	}
	return d
}

// dbView is everything a Database shows, to compare a decided database with its rebuilt self.
type dbView struct {
	ID               domain.DatabaseID
	Tenant           domain.TenantID
	Name             string
	Requested        domain.DatabaseRequested
	State            domain.DatabaseState
	Owner            domain.UserID
	RecoverableUntil time.Time
	WritesRestricted bool
}

func viewOf(d *domain.Database) dbView {
	return dbView{d.ID(), d.TenantID(), d.Name(), d.Requested(), d.State(), d.Owner(), d.RecoverableUntil(), d.WritesRestricted()}
}

func TestValidateDatabaseName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"one char", "a", true},
		{"64 chars", strings.Repeat("a", 64), true},
		{"letters digits underscores", "Orders_2025", true},
		{"digits only", "2025", true},
		{"underscore only", "_", true},
		{"reserved word (the schema name is id-derived)", "select", true},
		{"65 chars", strings.Repeat("a", 65), false},
		{"empty", "", false},
		{"single quote", "o'brien", false},
		{"double quote", `say"hi`, false},
		{"backtick", "drop`table", false},
		{"space", "my db", false},
		{"leading space", " orders", false},
		{"trailing newline", "orders\n", false},
		{"unicode letter", "bücher", false},
		{"unicode digit", "db١", false},
		{"emoji", "db🙂", false},
		{"dash", "my-db", false},
		{"dot", "other.db", false},
		{"semicolon", "a;DROP", false},
		{"slash", "a/b", false},
		{"nul byte", "a\x00b", false},
		{"64 multibyte chars", strings.Repeat("é", 64), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := domain.ValidateDatabaseName(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateDatabaseName(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			if !errors.Is(err, domain.ErrInvalidName) {
				t.Fatalf("ValidateDatabaseName(%q) = %v, want ErrInvalidName", tt.in, err)
			}
		})
	}
}

func TestDatabaseNameClaim(t *testing.T) {
	other := domain.TenantID(uuidB)
	tests := []struct {
		name       string
		tenantA    domain.TenantID
		a          string
		tenantB    domain.TenantID
		b          string
		wantShared bool
	}{
		{"same name same tenant", dbTenant, "orders", dbTenant, "orders", true},
		{"case is ignored", dbTenant, "Orders", dbTenant, "ORDERS", true},
		{"different names", dbTenant, "orders", dbTenant, "orders2", false},
		{"same name other tenant", dbTenant, "orders", other, "orders", false},
		{"case-folded name other tenant", dbTenant, "Orders", other, "orders", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := domain.DatabaseNameClaim(tt.tenantA, tt.a), domain.DatabaseNameClaim(tt.tenantB, tt.b)
			if (a == b) != tt.wantShared {
				t.Fatalf("claims %q and %q: shared = %v, want %v", a, b, a == b, tt.wantShared)
			}
		})
	}
	if got, want := domain.DatabaseNameClaim(dbTenant, "Orders_2025"), "dbname:"+uuidC+":orders_2025"; got != want {
		t.Errorf("DatabaseNameClaim = %q, want %q", got, want)
	}
}

func TestRequestDatabase(t *testing.T) {
	r := dbRequested()
	d := domain.RequestDatabase(r)
	wantPending(t, d.PendingEvents(), "database.requested.v1")
	if got := d.PendingEvents()[0]; !reflect.DeepEqual(got, r) {
		t.Errorf("event = %+v, want %+v", got, r)
	}
	want := dbView{dbID, dbTenant, dbName, r, domain.StateProvisioning, dbOwner, time.Time{}, false}
	if got := viewOf(d); !reflect.DeepEqual(got, want) {
		t.Errorf("database = %+v, want %+v", got, want)
	}
	if d.Version() != 0 {
		t.Errorf("Version() = %d, want 0", d.Version())
	}
}

// dbCase is one transition of a database loaded with history.
type dbCase struct {
	name      string
	history   []domain.Event
	now       time.Time // zero: dbNow
	wantErr   error     // an error kind for errors.Is; nil: no error
	wantField string    // a *ValidationError naming this field
	want      domain.Event
	wantState domain.DatabaseState // when there is no error
	wantOwner domain.UserID        // when there is no error; "": dbOwner
	// wantRestricted is WritesRestricted() when there is no error.
	wantRestricted bool
}

// runDatabaseCases applies do to a database loaded with each case's history and checks the
// error, the recorded event, the state and that the state survives a reload.
func runDatabaseCases(t *testing.T, cases []dbCase, do func(d *domain.Database, now time.Time) error) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = dbNow
			}
			d := loadDatabase(t, tt.history)
			before := viewOf(d)
			err := do(d, now)
			switch {
			case tt.wantField != "":
				wantValidation(t, err, tt.wantField)
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				var verr *domain.ValidationError
				if errors.As(err, &verr) {
					t.Fatalf("err = %v, want %v, not a validation error", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("err = %v, want nil", err)
			}
			if err != nil {
				wantPending(t, d.PendingEvents())
				if got := viewOf(d); !reflect.DeepEqual(got, before) {
					t.Fatalf("failed decision changed the database: %+v, was %+v", got, before)
				}
				return
			}
			if tt.want == nil {
				wantPending(t, d.PendingEvents())
			} else {
				wantPending(t, d.PendingEvents(), tt.want.EventType())
				if got := d.PendingEvents()[0]; !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("event = %+v, want %+v", got, tt.want)
				}
			}
			if d.State() != tt.wantState {
				t.Fatalf("State() = %q, want %q", d.State(), tt.wantState)
			}
			wantOwner := tt.wantOwner
			if wantOwner == "" {
				wantOwner = dbOwner
			}
			if d.Owner() != wantOwner {
				t.Fatalf("Owner() = %q, want %q", d.Owner(), wantOwner)
			}
			if d.WritesRestricted() != tt.wantRestricted {
				t.Fatalf("WritesRestricted() = %v, want %v", d.WritesRestricted(), tt.wantRestricted)
			}
			if d.Version() != int64(len(tt.history)) {
				t.Errorf("Version() = %d, want %d (the loaded version)", d.Version(), len(tt.history))
			}
			reloaded := loadDatabase(t, append(append([]domain.Event{}, tt.history...), d.PendingEvents()...))
			if got, want := viewOf(reloaded), viewOf(d); !reflect.DeepEqual(got, want) {
				t.Fatalf("reloaded = %+v, decided = %+v", got, want)
			}
		})
	}
}

// conflictsFrom returns a conflict case for each state in states.
func conflictsFrom(states ...domain.DatabaseState) []dbCase {
	var out []dbCase
	for _, s := range states {
		out = append(out, dbCase{name: "from " + string(s) + " conflicts", history: dbHistory(s), wantErr: domain.ErrConflict})
	}
	return out
}

func TestDatabaseProvisioned(t *testing.T) {
	cases := []dbCase{
		{name: "from provisioning", history: dbHistory(domain.StateProvisioning),
			want: domain.DatabaseProvisioned{At: dbNow}, wantState: domain.StateRunning},
		{name: "from running records nothing", history: dbHistory(domain.StateRunning), wantState: domain.StateRunning},
	}
	cases = append(cases, conflictsFrom(domain.StateStopped, domain.StateDeleted, domain.StateFailed, domain.StatePurged)...)
	runDatabaseCases(t, cases, func(d *domain.Database, now time.Time) error { return d.Provisioned(now) })
}

func TestDatabaseProvisioningFailed(t *testing.T) {
	cases := []dbCase{
		{name: "from provisioning", history: dbHistory(domain.StateProvisioning),
			want: domain.DatabaseProvisioningFailed{Reason: "out of space", At: dbNow}, wantState: domain.StateFailed},
	}
	cases = append(cases, conflictsFrom(domain.StateRunning, domain.StateStopped, domain.StateDeleted, domain.StateFailed, domain.StatePurged)...)
	runDatabaseCases(t, cases, func(d *domain.Database, now time.Time) error { return d.ProvisioningFailed("out of space", now) })
}

func TestDatabaseStop(t *testing.T) {
	for _, reason := range []string{"manual", "idle"} {
		t.Run(reason, func(t *testing.T) {
			cases := []dbCase{
				{name: "from running", history: dbHistory(domain.StateRunning),
					want: domain.DatabaseStopped{Reason: reason, At: dbNow}, wantState: domain.StateStopped},
				{name: "from stopped records nothing", history: dbHistory(domain.StateStopped), wantState: domain.StateStopped},
			}
			cases = append(cases, conflictsFrom(domain.StateProvisioning, domain.StateDeleted, domain.StateFailed, domain.StatePurged)...)
			runDatabaseCases(t, cases, func(d *domain.Database, now time.Time) error { return d.Stop(reason, now) })
		})
	}
}

func TestDatabaseStart(t *testing.T) {
	cases := []dbCase{
		{name: "from stopped", history: dbHistory(domain.StateStopped),
			want: domain.DatabaseStarted{At: dbNow}, wantState: domain.StateRunning},
		{name: "from running records nothing", history: dbHistory(domain.StateRunning), wantState: domain.StateRunning},
	}
	cases = append(cases, conflictsFrom(domain.StateProvisioning, domain.StateDeleted, domain.StateFailed, domain.StatePurged)...)
	runDatabaseCases(t, cases, func(d *domain.Database, now time.Time) error { return d.Start(now) })
}

func TestDatabaseDelete(t *testing.T) {
	deleted := domain.DatabaseDeleted{At: dbNow, RecoverableUntil: dbNow.Add(domain.RecoveryWindow)}
	var cases []dbCase
	for _, s := range []domain.DatabaseState{domain.StateRunning, domain.StateStopped, domain.StateFailed} {
		cases = append(cases, dbCase{name: "from " + string(s), history: dbHistory(s), want: deleted, wantState: domain.StateDeleted})
	}
	cases = append(cases, conflictsFrom(domain.StateProvisioning, domain.StateDeleted, domain.StatePurged)...)
	runDatabaseCases(t, cases, func(d *domain.Database, now time.Time) error { return d.Delete(dbName, domain.RecoveryWindow, now) })

	t.Run("recoverable until", func(t *testing.T) {
		d := loadDatabase(t, dbHistory(domain.StateRunning))
		if err := d.Delete(dbName, domain.RecoveryWindow, dbNow); err != nil {
			t.Fatal(err)
		}
		if want := dbNow.Add(30 * 24 * time.Hour); !d.RecoverableUntil().Equal(want) {
			t.Errorf("RecoverableUntil() = %v, want %v (30 days)", d.RecoverableUntil(), want)
		}
	})

	// A wrong confirm_name is a validation error in every state, valid for a delete or not.
	for _, confirm := range []string{"", "orders_2025", "ORDERS_2025", dbName + " ", "other"} {
		var wrong []dbCase
		for _, s := range dbStates {
			wrong = append(wrong, dbCase{name: "from " + string(s), history: dbHistory(s), wantField: "confirm_name"})
		}
		t.Run("confirm "+strconv.Quote(confirm), func(t *testing.T) {
			runDatabaseCases(t, wrong, func(d *domain.Database, now time.Time) error { return d.Delete(confirm, domain.RecoveryWindow, now) })
		})
	}
}

func TestDatabaseRestore(t *testing.T) {
	cases := []dbCase{
		{name: "deleted while running comes back running", history: dbDeletedFrom(domain.StateRunning),
			want: domain.DatabaseRestored{At: dbNow}, wantState: domain.StateRunning},
		{name: "deleted while stopped comes back stopped", history: dbDeletedFrom(domain.StateStopped),
			want: domain.DatabaseRestored{At: dbNow}, wantState: domain.StateStopped},
		{name: "deleted after failing comes back failed", history: dbDeletedFrom(domain.StateFailed),
			want: domain.DatabaseRestored{At: dbNow}, wantState: domain.StateFailed},
		{name: "at the moment of deletion", history: dbDeletedFrom(domain.StateRunning), now: dbDeletedAt,
			want: domain.DatabaseRestored{At: dbDeletedAt}, wantState: domain.StateRunning},
		{name: "just before the end of the window", history: dbDeletedFrom(domain.StateRunning), now: dbUntil.Add(-time.Nanosecond),
			want: domain.DatabaseRestored{At: dbUntil.Add(-time.Nanosecond)}, wantState: domain.StateRunning},
		{name: "at exactly the end of the window expired", history: dbDeletedFrom(domain.StateRunning), now: dbUntil, wantErr: domain.ErrExpired},
		{name: "after the window expired", history: dbDeletedFrom(domain.StateStopped), now: dbUntil.Add(time.Hour), wantErr: domain.ErrExpired},
		{name: "second delete restores to the state before it", now: dbUntil.Add(time.Hour),
			history: append(dbDeletedFrom(domain.StateStopped),
				domain.DatabaseRestored{At: dbNow},
				domain.DatabaseStarted{At: dbNow},
				domain.DatabaseDeleted{At: dbUntil, RecoverableUntil: dbUntil.Add(domain.RecoveryWindow)}),
			want: domain.DatabaseRestored{At: dbUntil.Add(time.Hour)}, wantState: domain.StateRunning},
	}
	cases = append(cases, conflictsFrom(domain.StateProvisioning, domain.StateRunning, domain.StateStopped, domain.StateFailed, domain.StatePurged)...)
	runDatabaseCases(t, cases, func(d *domain.Database, now time.Time) error { return d.Restore(now) })
}

func TestDatabasePurge(t *testing.T) {
	cases := []dbCase{
		{name: "inside the window conflicts", history: dbHistory(domain.StateDeleted), wantErr: domain.ErrConflict},
		{name: "just before the end of the window conflicts", history: dbHistory(domain.StateDeleted),
			now: dbUntil.Add(-time.Nanosecond), wantErr: domain.ErrConflict},
		{name: "at the end of the window", history: dbHistory(domain.StateDeleted), now: dbUntil,
			want: domain.DatabasePurged{At: dbUntil}, wantState: domain.StatePurged},
		{name: "after the window", history: dbDeletedFrom(domain.StateStopped), now: dbUntil.Add(24 * time.Hour),
			want: domain.DatabasePurged{At: dbUntil.Add(24 * time.Hour)}, wantState: domain.StatePurged},
	}
	for _, c := range conflictsFrom(domain.StateProvisioning, domain.StateRunning, domain.StateStopped, domain.StateFailed, domain.StatePurged) {
		c.now = dbUntil.Add(24 * time.Hour) // past any window: the state alone refuses
		cases = append(cases, c)
	}
	runDatabaseCases(t, cases, func(d *domain.Database, now time.Time) error { return d.Purge(now) })
}

func TestDatabaseChangeOwner(t *testing.T) {
	changed := domain.DatabaseOwnerChanged{From: dbOwner, To: dbNewOwner}
	var toNew, toSame []dbCase
	for _, s := range []domain.DatabaseState{domain.StateProvisioning, domain.StateRunning, domain.StateStopped, domain.StateFailed} {
		toNew = append(toNew, dbCase{name: "from " + string(s), history: dbHistory(s), want: changed, wantState: s, wantOwner: dbNewOwner})
		toSame = append(toSame, dbCase{name: "from " + string(s) + " records nothing", history: dbHistory(s), wantState: s})
	}
	toNew = append(toNew, conflictsFrom(domain.StateDeleted, domain.StatePurged)...)
	toSame = append(toSame, conflictsFrom(domain.StateDeleted, domain.StatePurged)...)
	t.Run("to another member", func(t *testing.T) {
		runDatabaseCases(t, toNew, func(d *domain.Database, _ time.Time) error { return d.ChangeOwner(dbNewOwner) })
	})
	t.Run("to the owner", func(t *testing.T) {
		runDatabaseCases(t, toSame, func(d *domain.Database, _ time.Time) error { return d.ChangeOwner(dbOwner) })
	})
}

func TestDatabaseRotateCredentials(t *testing.T) {
	cases := []dbCase{
		{name: "from running", history: dbHistory(domain.StateRunning),
			want: domain.DatabaseCredentialsRotated{At: dbNow}, wantState: domain.StateRunning},
		{name: "from stopped", history: dbHistory(domain.StateStopped),
			want: domain.DatabaseCredentialsRotated{At: dbNow}, wantState: domain.StateStopped},
	}
	cases = append(cases, conflictsFrom(domain.StateProvisioning, domain.StateDeleted, domain.StateFailed, domain.StatePurged)...)
	runDatabaseCases(t, cases, func(d *domain.Database, now time.Time) error {
		return d.RotateCredentials(domain.CredentialsManual, now)
	})
}

// dbRestricted is the history of a database whose writes were restricted while it was in state
// (running or stopped), then deleted when then is domain.StateDeleted.
func dbRestricted(state, then domain.DatabaseState) []domain.Event {
	h := append(dbHistory(state), domain.DatabaseWritesRestricted{Reason: "storage_quota", Used: 2 << 30, Limit: 1 << 30, At: dbDeletedAt.Add(-time.Minute)})
	if then == domain.StateDeleted {
		h = append(h, domain.DatabaseDeleted{At: dbDeletedAt, RecoverableUntil: dbUntil})
	}
	return h
}

func TestDatabaseRestrictWrites(t *testing.T) {
	const used, limit = 3 << 30, 1 << 30
	restricted := domain.DatabaseWritesRestricted{Reason: domain.WritesRestrictedStorage, Used: used, Limit: limit, At: dbNow}
	cases := []dbCase{
		{name: "running", history: dbHistory(domain.StateRunning), want: restricted, wantState: domain.StateRunning, wantRestricted: true},
		{name: "stopped", history: dbHistory(domain.StateStopped), want: restricted, wantState: domain.StateStopped, wantRestricted: true},
		{name: "restricted already records nothing", history: dbRestricted(domain.StateRunning, domain.StateRunning),
			wantState: domain.StateRunning, wantRestricted: true},
		{name: "restricted while running, now stopped, records nothing",
			history:   append(dbRestricted(domain.StateRunning, domain.StateRunning), domain.DatabaseStopped{Reason: "idle", At: dbDeletedAt}),
			wantState: domain.StateStopped, wantRestricted: true},
		{name: "restricted, restored, restricted again",
			history: append(dbRestricted(domain.StateRunning, domain.StateRunning), domain.DatabaseWritesRestored{At: dbDeletedAt}),
			want:    restricted, wantState: domain.StateRunning, wantRestricted: true},
		{name: "deleted records nothing", history: dbHistory(domain.StateDeleted), wantState: domain.StateDeleted},
	}
	for _, s := range []domain.DatabaseState{domain.StateProvisioning, domain.StateFailed, domain.StatePurged} {
		cases = append(cases, dbCase{name: string(s) + " records nothing", history: dbHistory(s), wantState: s})
	}
	runDatabaseCases(t, cases, func(d *domain.Database, now time.Time) error { d.RestrictWrites(used, limit, now); return nil })
}

func TestDatabaseRestoreWrites(t *testing.T) {
	restored := domain.DatabaseWritesRestored{At: dbNow}
	cases := []dbCase{
		{name: "restricted while running", history: dbRestricted(domain.StateRunning, domain.StateRunning),
			want: restored, wantState: domain.StateRunning},
		{name: "restricted while stopped", history: dbRestricted(domain.StateStopped, domain.StateStopped),
			want: restored, wantState: domain.StateStopped},
		{name: "restricted, stopped, started", wantState: domain.StateRunning, want: restored,
			history: append(dbRestricted(domain.StateRunning, domain.StateRunning),
				domain.DatabaseStopped{Reason: "manual", At: dbDeletedAt}, domain.DatabaseStarted{At: dbDeletedAt})},
		{name: "restricted, deleted: records nothing and stays restricted", history: dbRestricted(domain.StateRunning, domain.StateDeleted),
			wantState: domain.StateDeleted, wantRestricted: true},
		{name: "restricted, deleted, restored", wantState: domain.StateRunning, want: restored,
			history: append(dbRestricted(domain.StateRunning, domain.StateDeleted), domain.DatabaseRestored{At: dbDeletedAt})},
	}
	for _, s := range dbStates {
		cases = append(cases, dbCase{name: "not restricted, " + string(s) + ", records nothing", history: dbHistory(s), wantState: s})
	}
	runDatabaseCases(t, cases, func(d *domain.Database, now time.Time) error { d.RestoreWrites(now); return nil })
}

func TestRebuildDatabase(t *testing.T) {
	t.Run("empty history is not found", func(t *testing.T) {
		for _, history := range [][]domain.Event{nil, {}} {
			d, err := domain.RebuildDatabase(history, 0)
			if !errors.Is(err, domain.ErrNotFound) || d != nil {
				t.Errorf("RebuildDatabase(%v) = %v, %v; want nil, ErrNotFound", history, d, err)
			}
		}
	})

	t.Run("round trip", func(t *testing.T) {
		at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }
		steps := []struct {
			name string
			do   func(d *domain.Database) error
		}{
			{"provisioned", func(d *domain.Database) error { return d.Provisioned(at(1)) }},
			{"stopped", func(d *domain.Database) error { return d.Stop("idle", at(2)) }},
			{"started", func(d *domain.Database) error { return d.Start(at(3)) }},
			{"rotated", func(d *domain.Database) error { return d.RotateCredentials(domain.CredentialsManual, at(4)) }},
			{"writes restricted", func(d *domain.Database) error { d.RestrictWrites(2<<30, 1<<30, at(4)); return nil }},
			{"writes restored", func(d *domain.Database) error { d.RestoreWrites(at(4)); return nil }},
			{"writes restricted again", func(d *domain.Database) error { d.RestrictWrites(2<<30, 1<<30, at(4)); return nil }},
			{"owner changed", func(d *domain.Database) error { return d.ChangeOwner(dbNewOwner) }},
			{"stopped again", func(d *domain.Database) error { return d.Stop("manual", at(5)) }},
			{"deleted", func(d *domain.Database) error { return d.Delete(dbName, domain.RecoveryWindow, at(6)) }},
			{"restored", func(d *domain.Database) error { return d.Restore(at(7)) }},
			{"started again", func(d *domain.Database) error { return d.Start(at(8)) }},
			{"deleted again", func(d *domain.Database) error { return d.Delete(dbName, domain.RecoveryWindow, at(9)) }},
			{"purged", func(d *domain.Database) error { return d.Purge(at(9).Add(domain.RecoveryWindow)) }},
		}
		d := domain.RequestDatabase(dbRequested())
		for _, step := range steps {
			if err := step.do(d); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			history := d.PendingEvents()
			rebuilt := loadDatabase(t, history)
			if got, want := viewOf(rebuilt), viewOf(d); !reflect.DeepEqual(got, want) {
				t.Fatalf("after %s: rebuilt = %+v, decided = %+v", step.name, got, want)
			}
			if rebuilt.Version() != int64(len(history)) || len(rebuilt.PendingEvents()) != 0 {
				t.Fatalf("after %s: rebuilt version %d with %d pending, want %d and none",
					step.name, rebuilt.Version(), len(rebuilt.PendingEvents()), len(history))
			}
		}
		if d.State() != domain.StatePurged || d.Owner() != dbNewOwner || !d.WritesRestricted() || len(d.PendingEvents()) != len(steps)+1 {
			t.Fatalf("end: state %q, owner %q, %d events", d.State(), d.Owner(), len(d.PendingEvents()))
		}
	})
}
