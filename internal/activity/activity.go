// Package activity tracks when sessions were last used, so that sessions without activity end
// after their idle timeout. Writing an event per request would flood the log; instead each
// process records a session's activity at most once per Resolution in session_activity.
package activity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// Resolution is how stale a recorded activity may be: idle timeouts are at least this coarse.
const Resolution = time.Minute

// Retention is how long a recorded activity counts: no session may be idle longer, so an older
// row cannot keep any session alive, and recording prunes such rows (see prune).
const Retention = domain.MaxIdleTimeoutMinutes * time.Minute

// pruneEvery is how often a process's recording also deletes the rows past Retention, and
// pruneBatch how many rows one statement deletes at most.
const (
	pruneEvery = time.Hour
	pruneBatch = 1000
)

const maxCached = 100_000

// Tracker records and reads session activity.
type Tracker struct {
	db *sql.DB
	mu sync.Mutex
	// recorded is when this process last wrote each session's activity.
	recorded map[string]time.Time
	pruned   time.Time // when this process last deleted the rows past Retention
}

// New returns a tracker on the management database.
func New(db *sql.DB) *Tracker {
	return &Tracker{db: db, recorded: map[string]time.Time{}}
}

// Touch records that session is used now, unless it has been idle for longer than idle since
// lastKnown (its start or last refresh) and since its last recorded activity; then it returns
// false and records nothing.
func (t *Tracker) Touch(ctx context.Context, session string, lastKnown time.Time, idle time.Duration, now time.Time) (bool, error) {
	if t.recentlyRecorded(session, now) {
		return true, nil
	}
	active, err := t.Active(ctx, session, lastKnown, idle, now)
	if err != nil || !active {
		return false, err
	}
	return true, t.Record(ctx, session, now)
}

// Active reports, without recording anything, whether session was used within idle of now.
func (t *Tracker) Active(ctx context.Context, session string, lastKnown time.Time, idle time.Duration, now time.Time) (bool, error) {
	var seen sql.NullTime
	err := t.db.QueryRowContext(ctx, `SELECT last_seen_at FROM session_activity WHERE session_id = ?`, session).Scan(&seen)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("activity of session %s: %w", session, err)
	}
	last := lastKnown
	if seen.Valid && seen.Time.After(last) {
		last = seen.Time
	}
	t.mu.Lock()
	if recorded, ok := t.recorded[session]; ok && recorded.After(last) {
		last = recorded
	}
	t.mu.Unlock()
	return now.Sub(last) <= idle, nil
}

// Record notes that session was used at now.
func (t *Tracker) Record(ctx context.Context, session string, now time.Time) error {
	if _, err := t.db.ExecContext(ctx, `INSERT INTO session_activity (session_id, last_seen_at) VALUES (?, ?)
		ON DUPLICATE KEY UPDATE last_seen_at = GREATEST(last_seen_at, VALUES(last_seen_at))`, session, now.UTC()); err != nil {
		return fmt.Errorf("record activity of session %s: %w", session, err)
	}
	t.mu.Lock()
	if len(t.recorded) >= maxCached {
		clear(t.recorded) // cheaper than LRU bookkeeping; costs one read per session afterwards
	}
	t.recorded[session] = now
	pruneDue := now.Sub(t.pruned) >= pruneEvery
	if pruneDue {
		t.pruned = now
	}
	t.mu.Unlock()
	if !pruneDue {
		return nil
	}
	return t.prune(ctx, now)
}

// prune deletes the activity recorded before now - Retention, pruneBatch rows per statement so
// that none holds many locks. Rows only appear by recording, so pruning there bounds the table.
func (t *Tracker) prune(ctx context.Context, now time.Time) error {
	for {
		res, err := t.db.ExecContext(ctx, `DELETE FROM session_activity WHERE last_seen_at < ? LIMIT ?`,
			now.Add(-Retention).UTC(), pruneBatch)
		if err != nil {
			return fmt.Errorf("prune session activity: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n < pruneBatch {
			return err
		}
	}
}

func (t *Tracker) recentlyRecorded(session string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	recorded, ok := t.recorded[session]
	return ok && now.Sub(recorded) < Resolution && !now.Before(recorded)
}
