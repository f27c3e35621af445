package commands

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/internal/mysqlerr"
)

// Work leases (the work_leases table, migrations/0009_work_leases.sql) let one worker of any
// process take a piece of reactor work whose doing talks to something slow — a tenant's schema
// template on RDS-B, an SMTP server — without holding a transaction or a row lock on RDS-A
// meanwhile: the lease is taken and committed in one statement, the work runs, the outcome is
// recorded as events, the lease is deleted. A worker that dies leaves its lease to expire; the next
// worker to want the work takes it over.

// workLeaseTTL is how long a lease lasts unless its holder renews it (every workLeaseTTL/3 while
// the work runs): how long the work of a crashed worker waits before another one resumes it.
const workLeaseTTL = 30 * time.Second

// leaseStatementTimeout bounds each statement on work_leases.
const leaseStatementTimeout = 5 * time.Second

// workLease is a lease this process holds.
type workLease struct {
	queue WorkQueue
	key   string
	token string // this taking's own id: a renewal or release never touches a later taker's lease
	now   func() time.Time
}

// takeLease takes the lease key for the work item on behalf of owner (the process's instance id),
// deleting it first if its holder let it expire. It returns nil, nil when another worker holds it.
func takeLease(ctx context.Context, queue WorkQueue, now func() time.Time, key, item, owner string) (*workLease, error) {
	ctx, cancel := context.WithTimeout(ctx, leaseStatementTimeout)
	defer cancel()
	at := now().UTC()
	if _, err := queue.ExecContext(ctx, `DELETE FROM work_leases WHERE lease_key = ? AND expires_at <= ?`, key, at); err != nil {
		return nil, fmt.Errorf("take lease %s: %w", key, err)
	}
	l := &workLease{queue: queue, key: key, token: uuid.NewString(), now: now}
	_, err := queue.ExecContext(ctx, `INSERT INTO work_leases (lease_key, item, owner, token, taken_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`, key, item, owner, l.token, at, at.Add(workLeaseTTL))
	if mysqlerr.IsDuplicateKey(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("take lease %s: %w", key, err)
	}
	return l, nil
}

// renew moves the lease's expiry workLeaseTTL past now; held is false when the lease is no longer
// this worker's (it expired and another worker took the work over).
func (l *workLease) renew(ctx context.Context) (held bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, leaseStatementTimeout)
	defer cancel()
	res, err := l.queue.ExecContext(ctx, `UPDATE work_leases SET expires_at = ? WHERE lease_key = ? AND token = ?`,
		l.now().UTC().Add(workLeaseTTL), l.key, l.token)
	if err != nil {
		return true, fmt.Errorf("renew lease %s: %w", l.key, err)
	}
	n, err := res.RowsAffected()
	return n > 0 || err != nil, err
}

// keep renews the lease every workLeaseTTL/3 until the returned stop is called, and calls lost
// when the lease is gone, or could not be renewed for so long that another worker may take it
// over at the next failure. stop waits for the renewals to end.
func (l *workLease) keep(ctx context.Context, log *slog.Logger, lost func()) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		tick := time.NewTicker(workLeaseTTL / 3)
		defer tick.Stop()
		renewed := time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			held, err := l.renew(ctx)
			if err != nil {
				log.Warn("work lease not renewed", "lease", l.key, "err", err)
			}
			if !held || (err != nil && time.Since(renewed) >= workLeaseTTL-workLeaseTTL/3) {
				lost()
				return
			}
			if err == nil {
				renewed = time.Now()
			}
		}
	}()
	return func() { close(done); <-ended }
}

// release deletes the lease: the work is done (or left for the next worker to take at once).
func (l *workLease) release(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseStatementTimeout)
	defer cancel()
	if _, err := l.queue.ExecContext(ctx, `DELETE FROM work_leases WHERE lease_key = ? AND token = ?`, l.key, l.token); err != nil {
		return fmt.Errorf("release lease %s: %w", l.key, err)
	}
	return nil
}

// leasedOutbox is an outbox read model (mail_deliveries, webhook_deliveries): rows whose status
// is 'pending' and whose next_attempt_at has come are due, and a worker takes each one with a
// work lease "<kind>:<id>" just before working on it, so that several processes never work on one
// item at once and no row lock is held during the slow outbound call.
type leasedOutbox struct {
	queue          WorkQueue
	now            func() time.Time
	log            *slog.Logger
	table, idField string // the read model and its id column
	kind           string // the lease key's prefix and the log's name of an item
}

// drain works on the due items, up to a batch of 20, each under its lease, as owner, and returns
// how many it took. work's context ends when the lease is lost (another worker took the item over).
func (o leasedOutbox) drain(ctx context.Context, owner string, work func(ctx context.Context, id string) error) (int, error) {
	due, err := o.due(ctx)
	if err != nil {
		return 0, fmt.Errorf("due %s items: %w", o.kind, err)
	}
	taken := 0
	for _, id := range due {
		lease, err := takeLease(ctx, o.queue, o.now, o.kind+":"+id, id, owner)
		if err != nil {
			return taken, err
		}
		if lease == nil {
			continue // another worker has it
		}
		taken++
		err = o.workLeased(ctx, lease, id, work)
		if releaseErr := lease.release(ctx); releaseErr != nil {
			o.log.Warn("work lease not released; it expires", "kind", o.kind, "id", id, "err", releaseErr)
		}
		if err != nil {
			return taken, fmt.Errorf("%s %s: %w", o.kind, id, err)
		}
	}
	return taken, nil
}

// due lists the items due now that no worker holds a lease on.
func (o leasedOutbox) due(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, reactorCallTimeout)
	defer cancel()
	now := o.now().UTC()
	rows, err := o.queue.QueryContext(ctx, `SELECT t.`+o.idField+` FROM `+o.table+` t
		WHERE t.status = 'pending' AND t.next_attempt_at <= ?
		AND NOT EXISTS (SELECT 1 FROM work_leases l WHERE l.lease_key = CONCAT(?, t.`+o.idField+`) AND l.expires_at > ?)
		ORDER BY t.next_attempt_at LIMIT 20`, now, o.kind+":", now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// workLeased runs work on id while keeping lease; a lost lease cancels it.
func (o leasedOutbox) workLeased(ctx context.Context, lease *workLease, id string, work func(ctx context.Context, id string) error) error {
	leased, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := lease.keep(leased, o.log, func() { cancel(errLeaseLost) })
	defer stop()
	return work(leased, id)
}
