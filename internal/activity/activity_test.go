package activity_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/internal/activity"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

func TestIdleSessionsAreRefusedAndActiveOnesKeptAlive(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	idle := 30 * time.Minute
	tests := []struct {
		name  string
		steps []time.Duration // requests, as offsets from the session's start
		want  []bool
	}{
		{"used within the timeout", []time.Duration{10 * time.Minute, 35 * time.Minute, 60 * time.Minute}, []bool{true, true, true}},
		{"idle longer than the timeout", []time.Duration{31 * time.Minute}, []bool{false}},
		{"idle after some use", []time.Duration{20 * time.Minute, 51 * time.Minute}, []bool{true, false}},
		{"exactly at the timeout", []time.Duration{30 * time.Minute}, []bool{true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tracker := activity.New(db) // a new process for each case: nothing cached
			session := uuid.NewString()
			for i, offset := range tt.steps {
				got, err := tracker.Touch(ctx, session, start, idle, start.Add(offset))
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want[i] {
					t.Fatalf("request at +%v: active = %v, want %v", offset, got, tt.want[i])
				}
			}
		})
	}
}

func TestActivityRecordedByOneProcessCountsInAnother(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	session := uuid.NewString()
	if ok, err := activity.New(db).Touch(ctx, session, start, 30*time.Minute, start.Add(25*time.Minute)); err != nil || !ok {
		t.Fatalf("first process: %v, %v", ok, err)
	}
	other := activity.New(db)
	if ok, err := other.Active(ctx, session, start, 30*time.Minute, start.Add(50*time.Minute)); err != nil || !ok {
		t.Fatalf("the other process does not see the recorded use: %v, %v", ok, err)
	}
	if ok, err := other.Active(ctx, session, start, 30*time.Minute, start.Add(56*time.Minute)); err != nil || ok {
		t.Fatalf("31 minutes after the last use: active = %v, %v; want idle", ok, err)
	}
}

// TestRecordingPrunesActivityPastRetention: rows older than any session's idle limit go when a
// process records, at most once per hour, and never a row that still counts.
func TestRecordingPrunesActivityPastRetention(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	// Another process recorded these earlier: one per minute over the last two days.
	old := activity.New(db)
	for minutes := 48 * 60; minutes > 0; minutes -= 7 {
		if err := old.Record(ctx, uuid.NewString(), now.Add(-time.Duration(minutes)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	kept := func() (past, within int) {
		t.Helper()
		if err := db.QueryRow(`SELECT COUNT(CASE WHEN last_seen_at < ? THEN 1 END), COUNT(CASE WHEN last_seen_at >= ? THEN 1 END)
			FROM session_activity`, now.Add(-activity.Retention), now.Add(-activity.Retention)).Scan(&past, &within); err != nil {
			t.Fatal(err)
		}
		return past, within
	}
	pastBefore, withinBefore := kept()
	if pastBefore == 0 || withinBefore == 0 {
		t.Fatalf("setup: %d rows past retention, %d within", pastBefore, withinBefore)
	}
	tracker := activity.New(db)
	if err := tracker.Record(ctx, uuid.NewString(), now); err != nil {
		t.Fatal(err)
	}
	if past, within := kept(); past != 0 || within != withinBefore+1 {
		t.Fatalf("after recording: %d rows past retention, %d within (want 0 and %d)", past, within, withinBefore+1)
	}
	// Within the hour, recording prunes nothing: a row that ages past retention stays a while.
	if _, err := db.Exec(`INSERT INTO session_activity VALUES (?, ?)`, uuid.NewString(), now.Add(-activity.Retention-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := tracker.Record(ctx, uuid.NewString(), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if past, _ := kept(); past != 1 {
		t.Fatalf("recording within the hour pruned: %d rows past retention, want 1", past)
	}
}

// TestPruneFindsOldRowsByIndex: the prune's DELETE can read the rows past retention from an index
// on last_seen_at instead of scanning every session's row (migrations/0010).
func TestPruneFindsOldRowsByIndex(t *testing.T) {
	db := testdb.New(t)
	var id, selectType, table, kind, possibleKeys, key, keyLen, ref, rows, extra sql.NullString
	// The cutoff is written out: EXPLAIN of a statement prepared with a placeholder names no keys.
	if err := db.QueryRow(`EXPLAIN DELETE FROM session_activity WHERE last_seen_at < '2026-03-01 09:00:00' LIMIT 1000`).
		Scan(&id, &selectType, &table, &kind, &possibleKeys, &key, &keyLen, &ref, &rows, &extra); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(possibleKeys.String, "session_activity_last_seen") {
		t.Fatalf("the prune's DELETE can use keys %q, want session_activity_last_seen", possibleKeys.String)
	}
}
