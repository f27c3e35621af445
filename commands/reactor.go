package commands

import (
	"context"
	"database/sql"
	"log/slog"
	"time"
)

// Reactors (mail delivery, provisioning, purge, housekeeping) work through queues kept in read
// models, in rounds.

// runRounds calls round until ctx ends: again at once after a round that handled something (there
// may be more), otherwise when wake fires (nil: never) or poll has passed. A failed round is logged
// and retried after poll.
func runRounds(ctx context.Context, log *slog.Logger, what string, round func(context.Context) (int, error), wake func() <-chan struct{}, poll time.Duration) {
	for {
		n, err := round(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error(what+" failed, retrying", "err", err)
		}
		if n > 0 && err == nil {
			continue
		}
		var woken <-chan struct{}
		if wake != nil {
			woken = wake()
		}
		select {
		case <-ctx.Done():
			return
		case <-woken:
		case <-time.After(poll):
		}
	}
}

// claimDue begins a READ COMMITTED transaction (no gap locks: the read model keeps taking new
// rows meanwhile) and locks the rows whose ids query selects; query ends in FOR UPDATE SKIP LOCKED,
// so processes sharing the queue never take the same row at once. The caller ends tx.
func claimDue(ctx context.Context, db *sql.DB, query string, args ...any) (*sql.Tx, []string, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
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
