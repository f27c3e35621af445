package projections

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"

	"github.com/clouddbmanager/clouddb/eventstore"
)

// checkpointOffsets is the watermill-sql offsets adapter that keeps a consumer group's offset in
// its projector's checkpoint table. Reading the offset locks the row (FOR UPDATE), so one batch
// of one process at a time applies a projector's events, and a rebuild pauses the projector by
// setting paused_until: while it is in the future the offset reads as NULL, and nothing matches.
type checkpointOffsets struct{}

var _ wsql.OffsetsAdapter = checkpointOffsets{}

func checkpointOf(consumerGroup string) string { return "`" + consumerGroup + "_checkpoint`" }

func (checkpointOffsets) NextOffsetQuery(params wsql.NextOffsetQueryParams) (wsql.Query, error) {
	return wsql.Query{Query: `SELECT position FROM ` + checkpointOf(params.ConsumerGroup) +
		` WHERE id = 1 AND (paused_until IS NULL OR paused_until < UTC_TIMESTAMP(6)) FOR UPDATE`}, nil
}

// ackMarker starts the ack query, so the batch transaction recognises it (see batchTx.ExecContext).
const ackMarker = "/* checkpoint ack */ "

func (checkpointOffsets) AckMessageQuery(params wsql.AckMessageQueryParams) (wsql.Query, error) {
	return wsql.Query{
		Query: ackMarker + `UPDATE ` + checkpointOf(params.ConsumerGroup) + ` SET position = ?, updated_at = UTC_TIMESTAMP(6) WHERE id = 1`,
		Args:  []any{params.LastRow.Offset},
	}, nil
}

func (checkpointOffsets) ConsumedMessageQuery(wsql.ConsumedMessageQueryParams) (wsql.Query, error) {
	return wsql.Query{}, nil
}

// SchemaInitializingQueries returns nothing: the runtime creates checkpoint tables itself.
func (checkpointOffsets) SchemaInitializingQueries(wsql.OffsetsSchemaInitializingQueriesParams) ([]wsql.Query, error) {
	return nil, nil
}

func (checkpointOffsets) BeforeSubscribingQueries(wsql.BeforeSubscribingQueriesParams) ([]wsql.Query, error) {
	return nil, nil
}

// committer begins the subscriber's transactions as *batchTx, so the runtime learns which position
// became visible when a batch commits.
type committer struct {
	db       *sql.DB
	onCommit func(position int64)
}

func (c committer) BeginTx(ctx context.Context, opts *sql.TxOptions) (wsql.Tx, error) {
	// Not bound to ctx: database/sql would roll the transaction back by itself when the router
	// cancels ctx at shutdown, and watermill's own rollback would then log a failure. Watermill
	// ends every transaction it begins; the statements in it still honour ctx.
	tx, err := c.db.BeginTx(context.WithoutCancel(ctx), opts)
	if err != nil {
		return nil, err
	}
	return &batchTx{Tx: tx, onCommit: c.onCommit}, nil
}

func (c committer) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	return c.db.ExecContext(ctx, query, args...)
}

func (c committer) QueryContext(ctx context.Context, query string, args ...any) (wsql.Rows, error) {
	return c.db.QueryContext(ctx, query, args...)
}

// batchTx is one subscriber batch: the handler applies events in it, the subscriber acks the last
// one in it, and its commit makes both visible at once.
//
// At shutdown watermill stops waiting for the handler and commits what was acked while the
// handler may still be applying the next event. So the batch remembers the last position applied
// and the one acked, and a commit that would store writes beyond its checkpoint rolls back
// instead: the whole batch is applied again at the next start, exactly once.
type batchTx struct {
	*sql.Tx
	mu       sync.Mutex // held by the handler while it applies, and by Commit
	applied  int64      // the last position the handler applied in this transaction
	acked    int64      // the position the ack query stored
	onCommit func(position int64)
}

func (t *batchTx) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	res, err := t.Tx.ExecContext(ctx, query, args...)
	if err == nil && strings.HasPrefix(query, ackMarker) {
		if position, ok := args[0].(int64); ok {
			t.mu.Lock()
			t.acked = position
			t.mu.Unlock()
		}
	}
	return res, err
}

func (t *batchTx) QueryContext(ctx context.Context, query string, args ...any) (wsql.Rows, error) {
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *batchTx) Commit() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.applied > t.acked {
		// Interrupted: an applied event was never acked. Keep the checkpoint and the read model
		// as they were; watermill only logs what Commit returns, so nil after a clean rollback.
		return t.Tx.Rollback()
	}
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	if t.acked > 0 {
		t.onCommit(t.acked)
	}
	return nil
}

// wakeOnAppend is the subscriber's backoff manager. When a query found nothing new it waits for
// this process's next append instead of sleeping a fixed interval, so a projector follows local
// appends within milliseconds; appends of other processes are picked up by the poll.
type wakeOnAppend struct {
	store    *eventstore.Store
	poll     time.Duration
	stopping <-chan struct{}
	log      *slog.Logger
	name     string

	seenHead  int64
	failures  int
	lastError string
}

func (w *wakeOnAppend) HandleError(_ watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	select {
	case <-w.stopping:
		return 0 // the router is closing the subscriber; its errors now are the shutdown's
	default:
	}
	if err != nil {
		w.failures++
		wait := min(50*time.Millisecond<<min(w.failures, 7), 5*time.Second)
		if msg := err.Error(); msg != w.lastError || w.failures%20 == 1 {
			w.log.Error("projection cannot read the event log, retrying", "projection", w.name, "attempt", w.failures, "retry_in_ms", wait.Milliseconds(), "err", err)
			w.lastError = msg
		}
		return wait
	}
	w.failures, w.lastError = 0, ""
	if !noMsg {
		return 0
	}
	head, next := w.store.LocalHead()
	if head > w.seenHead {
		// Something was appended since we last looked: it may have committed after the query.
		w.seenHead = head
		return 0
	}
	select {
	case <-next:
	case <-time.After(w.poll):
	case <-w.stopping:
	}
	w.seenHead, _ = w.store.LocalHead()
	return 0
}

// newSubscriber returns a subscriber for p's consumer group.
func newSubscriber(db *sql.DB, p *projector, backoff wsql.BackoffManager, onCommit func(int64), log watermill.LoggerAdapter) (*wsql.Subscriber, error) {
	noDeadline := time.Duration(0)
	sub, err := wsql.NewSubscriber(committer{db: db, onCommit: onCommit}, wsql.SubscriberConfig{
		ConsumerGroup:  p.Name(),
		SchemaAdapter:  eventstore.WatermillSchema{BatchSize: 200},
		OffsetsAdapter: checkpointOffsets{},
		BackoffManager: backoff,
		AckDeadline:    &noDeadline, // the handler bounds its own retries
		PollInterval:   time.Second,
		ResendInterval: time.Millisecond,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("projections: %s: subscriber: %w", p.Name(), err)
	}
	return sub, nil
}
