package commands

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"time"
)

// Reactors act on what the read models show, in rounds, each in a file named for what it reacts
// to: reactor_provisioning.go, reactor_mail.go, reactor_purge.go, reactor_idle.go (auto-stop),
// reactor_storage_sampling.go, reactor_storage_quota.go (the storage wall), reactor_writes.go and
// reactor_housekeeping.go.

// WorkQueue is the management database as the reactors' work queues: tables of read models
// (database_list, tenants, mail_deliveries) that projectors keep and reactors read to find their
// work — databases to provision, purge, measure, restrict or stop, mails to deliver. A reactor never
// writes them: it records what it did as events, and a row leaves the queue when its projector
// applies them. Rows whose work must not run twice at once are claimed with claimDue (BeginTx);
// work that the domain refuses to do twice is read with QueryContext; work that talks to something
// slow (a tenant's schema template, an SMTP server) is taken with a work lease (work_leases.go,
// ExecContext) so that no transaction stays open meanwhile. *sql.DB satisfies it.
type WorkQueue interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// ErrWorkWaits ends a round that left work it cannot do yet (its sandbox server does not answer):
// runRounds looks again after waitingRetry instead of its idle poll.
var ErrWorkWaits = errors.New("work waits for its server")

// waitingRetry is how soon a round that left work waiting runs again.
const waitingRetry = time.Second

// runRounds calls round until ctx ends: again at once after a round that handled something (there
// may be more), otherwise when wake fires (nil: never) or poll has passed; wake is taken before
// the round, so what it signals during the round is not missed. A failed round is logged and
// retried after poll; a round that left work waiting (ErrWorkWaits), after waitingRetry.
func runRounds(ctx context.Context, log *slog.Logger, what string, round func(context.Context) (int, error), wake func() <-chan struct{}, poll time.Duration) {
	for {
		var woken <-chan struct{}
		if wake != nil {
			woken = wake()
		}
		n, err := round(ctx)
		waits := errors.Is(err, ErrWorkWaits)
		if err != nil && !waits && ctx.Err() == nil {
			log.Error(what+" failed, retrying", "err", err)
		}
		if n > 0 && (err == nil || waits) {
			continue
		}
		next := poll
		if waits {
			next = min(poll, waitingRetry)
		}
		if !pause(ctx, next, woken, nil) {
			return
		}
	}
}

// pause waits until woken or also fires (nil: never) or d has passed; false when ctx ended first.
func pause(ctx context.Context, d time.Duration, woken, also <-chan struct{}) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-woken:
	case <-also:
	case <-timer.C:
	}
	return true
}

// within bounds a round by limit: every call it makes to RDS-A, RDS-B or a mail server ends by
// then, whatever the calls' own deadlines.
func within(limit time.Duration, round func(context.Context) (int, error)) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		ctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		return round(ctx)
	}
}

// claimDue begins a READ COMMITTED transaction (no gap locks: the read model keeps taking new
// rows meanwhile) and locks the rows whose ids query selects; query ends in FOR UPDATE SKIP LOCKED,
// so processes sharing the queue never take the same row at once. The caller ends tx.
func claimDue(ctx context.Context, queue WorkQueue, query string, args ...any) (*sql.Tx, []string, error) {
	tx, err := queue.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, nil, err
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		tx.Rollback() //nolint:errcheck // the query's error is the one to report
		return nil, nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			tx.Rollback() //nolint:errcheck // the scan's error is the one to report
			return nil, nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		tx.Rollback() //nolint:errcheck // the rows' error is the one to report
		return nil, nil, err
	}
	return tx, ids, nil
}
