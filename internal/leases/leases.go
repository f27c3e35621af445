// Package leases says which clouddb processes are alive: each serving process holds a row of
// process_leases (migrations/0007_process_leases.sql) under its instance id and renews it while it
// runs. A lease past its expiry belongs to a process that died without deleting it.
//
// What depends on it: a query intent whose process is gone is resolved as unknown
// (commands/reactor_query_outcomes.go), a running Idempotency-Key of a dead process is released
// (internal/idempotency), and an account's connections are shared among the live processes
// (queryexec).
package leases

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// DefaultTTL is how long a lease lasts unless renewed (CLOUDDB_LEASE_TTL). A live process renews
// it every third of that, so that a process missing two renewals in a row (a long GC pause, an
// RDS-A blip) still counts as alive.
const DefaultTTL = 30 * time.Second

// Lease is this process's row of process_leases.
type Lease struct {
	db  *sql.DB
	id  string
	now func() time.Time
	ttl time.Duration
	// live is how many processes held a live lease when this one was last taken or renewed.
	live atomic.Int64
}

// New returns a lease with a fresh instance id lasting ttl unless renewed, not yet taken (Take).
func New(db *sql.DB, now func() time.Time, ttl time.Duration) *Lease {
	if db == nil || now == nil || ttl <= 0 {
		panic("leases: New needs a database, a clock and a TTL")
	}
	return &Lease{db: db, id: uuid.NewString(), now: now, ttl: ttl}
}

// TTL is how long the lease lasts unless renewed.
func (l *Lease) TTL() time.Duration { return l.ttl }

// ID is this process's instance id.
func (l *Lease) ID() string { return l.id }

// Take writes this process's lease, or moves its expiry TTL past now, and counts the live
// processes again (Processes).
func (l *Lease) Take(ctx context.Context) error {
	host, _ := os.Hostname()
	now := l.now().UTC()
	if _, err := l.db.ExecContext(ctx, `INSERT INTO process_leases (instance_id, host, started_at, expires_at) VALUES (?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE expires_at = VALUES(expires_at)`, l.id, host, now, now.Add(l.ttl)); err != nil {
		return fmt.Errorf("leases: take %s: %w", l.id, err)
	}
	n, err := l.Live(ctx)
	if err != nil {
		return err
	}
	l.live.Store(int64(n))
	return nil
}

// Processes is how many processes held a live lease when this one was last taken or renewed, at
// least 1: the number a limit of the whole deployment is divided by, so that each process keeps
// its share (queryexec's pools and tenant gate, the per-user query rate). A process that starts
// counts itself and the others at once; the others count it at their next renewal (a third of
// the TTL), and a process that died counts until its lease expires, which only makes the shares
// smaller.
func (l *Lease) Processes() int { return max(1, int(l.live.Load())) }

// Run renews the lease every third of its TTL until ctx ends; failures go to report (RDS-A may be
// away for a moment: the lease lasts TTL).
func (l *Lease) Run(ctx context.Context, report func(error)) {
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := l.Take(ctx); err != nil && ctx.Err() == nil {
				report(err)
			}
		}
	}
}

// Release deletes the lease: the process ends cleanly, and whatever it left running is over.
// Expired leases of other processes are deleted too (a day after expiry, so that what their
// process left behind is resolved first).
func (l *Lease) Release(ctx context.Context) error {
	if _, err := l.db.ExecContext(ctx, `DELETE FROM process_leases WHERE instance_id = ? OR expires_at < ?`,
		l.id, l.now().UTC().Add(-24*time.Hour)); err != nil {
		return fmt.Errorf("leases: release %s: %w", l.id, err)
	}
	return nil
}

// Alive reports whether instance holds an unexpired lease.
func (l *Lease) Alive(ctx context.Context, instance string) (bool, error) {
	var n int
	if err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM process_leases WHERE instance_id = ? AND expires_at > ?`,
		instance, l.now().UTC()).Scan(&n); err != nil {
		return false, fmt.Errorf("leases: read: %w", err)
	}
	return n > 0, nil
}

// Live is how many processes hold an unexpired lease, at least 1 (this one).
func (l *Lease) Live(ctx context.Context) (int, error) {
	n, err := l.Serving(ctx)
	if err != nil {
		return 1, err
	}
	return max(n, 1), nil
}

// Serving is how many processes hold an unexpired lease: the serving ones, this one if it took
// its lease.
func (l *Lease) Serving(ctx context.Context) (int, error) {
	var n int
	if err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM process_leases WHERE expires_at > ?`, l.now().UTC()).Scan(&n); err != nil {
		return 0, fmt.Errorf("leases: count: %w", err)
	}
	return n, nil
}
