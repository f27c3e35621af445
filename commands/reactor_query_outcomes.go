package commands

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// QueryOutcomes resolves the intents to run queries (domain.QueryStarted) whose outcome was never
// recorded: their process died between sending the statements and committing the outcome (kill -9,
// a lost machine, RDS-A gone until the process gave up). Nothing can tell whether such statements
// were applied, so each is recorded as domain.QueryUnknown, visible in history and audit.
//
// An intent is resolved when its process holds no live lease (internal/leases), or when it is
// older than its timeout plus outcomeMargin whoever holds it (no statement runs that long; its
// process failed to record the outcome). Every process runs the reconciler at start and then
// periodically; the unknown outcomes are appended at the intent stream's version, so of processes
// resolving one intent at once exactly one records it, and an outcome committed late wins over it.
type QueryOutcomes struct {
	events QueryLog
	log    *slog.Logger
	now    func() time.Time
	alive  func(ctx context.Context, instance string) (bool, error)
	db     *sql.DB
	after  int64 // every intent at or below this position has its outcome
}

// outcomeMargin is how long past its timeout an intent whose process lives is left to its
// process.
const outcomeMargin = 2 * time.Minute

// intentsPerRound bounds the open intents one round reads.
const intentsPerRound = 1000

// NewQueryOutcomes returns the reconciler; alive tells whether a process's lease is live.
func NewQueryOutcomes(events QueryLog, db *sql.DB, alive func(ctx context.Context, instance string) (bool, error), now func() time.Time, log *slog.Logger) *QueryOutcomes {
	if events == nil || db == nil || alive == nil || now == nil || log == nil {
		panic("commands: NewQueryOutcomes needs an event log, a database, a liveness check, a clock and a logger")
	}
	return &QueryOutcomes{events: events, db: db, alive: alive, now: now, log: log}
}

// Run resolves open intents now and then every poll until ctx ends.
func (r *QueryOutcomes) Run(ctx context.Context, poll time.Duration) {
	runRounds(ctx, r.log, "resolving query outcomes", within(reactorCallTimeout, r.Round), nil, poll)
}

// Round reads the intents appended since the last round that have no outcome, records those it
// may resolve as unknown, and returns how many it resolved.
func (r *QueryOutcomes) Round(ctx context.Context) (int, error) {
	var head int64
	if err := r.db.QueryRowContext(ctx, `SELECT last_position FROM event_sequence WHERE id = 1`).Scan(&head); err != nil {
		return 0, fmt.Errorf("query outcomes: read the head: %w", err)
	}
	// The outcome of the first statement is the intent stream's second event.
	rows, err := r.db.QueryContext(ctx, `SELECT position FROM events i
		WHERE i.position > ? AND i.position <= ? AND i.event_type = ?
		  AND NOT EXISTS (SELECT 1 FROM events o WHERE o.stream_id = i.stream_id AND o.stream_version = 2)
		ORDER BY i.position LIMIT ?`, r.after, head, domain.QueryStarted{}.EventType(), intentsPerRound)
	if err != nil {
		return 0, fmt.Errorf("query outcomes: read open intents: %w", err)
	}
	var open []int64
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return 0, err
		}
		open = append(open, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	resolved, pending := 0, int64(0)
	for _, p := range open {
		done, err := r.resolve(ctx, p)
		if err != nil {
			return resolved, err
		}
		if done {
			resolved++
		} else if pending == 0 {
			pending = p
		}
	}
	switch {
	case pending > 0:
		r.after = pending - 1
	case len(open) == intentsPerRound:
		r.after = open[len(open)-1]
	default:
		r.after = head
	}
	return resolved, nil
}

// resolve records the intent at position p as unknown when its process is gone or it is long
// past its timeout; done reports that it has an outcome now.
func (r *QueryOutcomes) resolve(ctx context.Context, p int64) (done bool, err error) {
	envs, err := r.events.ReadAll(ctx, p-1, 1)
	if err != nil || len(envs) != 1 {
		return false, err
	}
	e, err := r.events.Registry().Decode(envs[0])
	if err != nil {
		return false, err
	}
	intent, ok := e.(domain.QueryStarted)
	if !ok {
		return false, fmt.Errorf("query outcomes: position %d is a %s", p, envs[0].EventType)
	}
	alive, err := r.alive(ctx, intent.Instance)
	if err != nil {
		return false, err
	}
	overdue := r.now().After(intent.At.Add(time.Duration(intent.TimeoutS*float64(time.Second)) + outcomeMargin))
	if alive && !overdue {
		return false, nil
	}
	reason := "its process ended before recording whether it was applied"
	if alive {
		reason = "its process did not record whether it was applied"
	}
	meta := envs[0].Metadata
	meta.CausationID, meta.UserAgent = envs[0].EventID, "clouddb query-outcome reconciler"
	_, err = r.events.Append(ctx, outcomes(intent.Unknown(reason), 1, meta))
	if err != nil && !errors.Is(err, domain.ErrVersionConflict) { // an outcome came meanwhile
		return false, fmt.Errorf("query outcomes: resolve %s: %w", intent.QueryID, err)
	}
	if err == nil {
		r.log.Warn("query outcome unknown: recorded", "query_id", intent.QueryID, "database_id", intent.DatabaseID,
			"statements", len(intent.Statements), "instance", intent.Instance, "reason", reason)
	}
	return true, nil
}
