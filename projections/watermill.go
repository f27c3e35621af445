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
//
// The offset is the stored checkpoint or, when it is further, the position this process's commits
// reached: a batch that applied nothing may leave the stored checkpoint behind (lazyCheckpoint),
// and the next batch must not read those events again.
type checkpointOffsets struct {
	committed func() int64
}

var _ wsql.OffsetsAdapter = checkpointOffsets{}

func checkpointOf(consumerGroup string) string { return "`" + consumerGroup + "_checkpoint`" }

func (o checkpointOffsets) NextOffsetQuery(params wsql.NextOffsetQueryParams) (wsql.Query, error) {
	return wsql.Query{Query: `SELECT GREATEST(position, ?) FROM ` + checkpointOf(params.ConsumerGroup) +
		` WHERE id = 1 AND (paused_until IS NULL OR paused_until < UTC_TIMESTAMP(6)) FOR UPDATE`, Args: []any{o.committed()}}, nil
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

// batchHooks are what a subscriber's batches ask of the runtime.
type batchHooks struct {
	committed func() int64 // the position this process's commits reached
	onCommit  func(position int64)
	apply     func(ctx context.Context, tx *sql.Tx, events []eventstore.Envelope) (held *eventstore.Envelope, err error)
	hold      func(env eventstore.Envelope, err error)
}

// committer begins the subscriber's transactions as *batchTx, so that a batch applies its events
// when it commits and the runtime learns which position became visible.
type committer struct {
	db         *sql.DB
	hooks      batchHooks
	checkpoint *checkpointWrites
}

// lazyCheckpoint is how stale a projector's stored checkpoint may be when the events it passed over
// were none of its own. A batch that applied nothing then commits without writing (a read-only
// commit, no log flush): busy event types a projector ignores (executed queries, say) cost it no
// disk write per batch. Events passed over without a write are read again after a restart, to no
// effect; the runtime's position in memory advances either way.
const lazyCheckpoint = time.Second

// checkpointWrites remembers when a projector's checkpoint was last stored.
type checkpointWrites struct {
	mu      sync.Mutex
	written time.Time
}

// skip reports whether an ack may go unwritten now; when not, it counts as written.
func (c *checkpointWrites) skip(applied bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if !applied && now.Sub(c.written) < lazyCheckpoint {
		return true
	}
	c.written = now
	return false
}

func (c committer) BeginTx(ctx context.Context, opts *sql.TxOptions) (wsql.Tx, error) {
	// Not bound to ctx: database/sql would roll the transaction back by itself when the router
	// cancels ctx at shutdown, and watermill's own rollback would then log a failure. Watermill
	// ends every transaction it begins; the statements in it still honour ctx.
	tx, err := c.db.BeginTx(context.WithoutCancel(ctx), opts)
	if err != nil {
		return nil, err
	}
	return &batchTx{Tx: tx, hooks: c.hooks, checkpoint: c.checkpoint}, nil
}

func (c committer) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	return c.db.ExecContext(ctx, query, args...)
}

func (c committer) QueryContext(ctx context.Context, query string, args ...any) (wsql.Rows, error) {
	return c.db.QueryContext(ctx, query, args...)
}

// batchTx is one subscriber batch: the handler collects the events of its projector, the
// subscriber acks the last one read, and Commit applies the collected events and commits them
// with the checkpoint.
//
// At shutdown watermill stops waiting for the handler and commits what was acked while the
// handler may still be looking at the next event. So the batch remembers the last position the
// handler saw and the one acked, and a commit that would store events beyond its checkpoint
// rolls back instead: the whole batch is read again at the next start.
type batchTx struct {
	*sql.Tx
	mu       sync.Mutex // held by the handler while it collects, and by Commit
	pending  []eventstore.Envelope
	applied  int64  // the last position the handler saw in this transaction
	acked    int64  // the position the ack query stored
	ackQuery string // the ack statement, to store another position
	wrote    bool   // the handler collected an event of its projector in this transaction
	hooks    batchHooks

	checkpoint *checkpointWrites
}

func (t *batchTx) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	if !strings.HasPrefix(query, ackMarker) {
		return t.Tx.ExecContext(ctx, query, args...)
	}
	position, _ := args[0].(int64)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.checkpoint.skip(t.wrote) {
		t.acked = position
		return skippedAck{}, nil
	}
	res, err := t.Tx.ExecContext(ctx, query, args...)
	if err == nil {
		t.acked, t.ackQuery = position, query
	}
	return res, err
}

// skippedAck is the result of an ack left unwritten (see lazyCheckpoint).
type skippedAck struct{}

func (skippedAck) LastInsertId() (int64, error) { return 0, nil }
func (skippedAck) RowsAffected() (int64, error) { return 1, nil }

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
	var held *eventstore.Envelope
	var heldErr error
	if len(t.pending) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		held, heldErr = t.hooks.apply(ctx, t.Tx, t.pending)
		switch {
		case held != nil: // commit what applied, with the checkpoint just before the failing event
			before := held.Position - 1
			if _, err := t.Tx.ExecContext(ctx, t.ackQuery, before); err != nil {
				t.Tx.Rollback() //nolint:errcheck // the ack's error is the one to report
				return err
			}
			t.acked = before
		case heldErr != nil:
			t.Tx.Rollback() //nolint:errcheck // the apply's error is the one to report
			return heldErr
		}
	}
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	if t.acked > 0 {
		t.hooks.onCommit(t.acked)
	}
	if held != nil {
		t.hooks.hold(*held, heldErr)
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
	urgent   func() int64 // the last local append that concerns the projector at once

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
	// Wait for a local append of an event the projector handles; appends of other types wake it
	// only to look again, and the poll picks up the rest (other processes' appends too).
	deadline := time.After(w.poll)
	for {
		_, next := w.store.LocalHead()
		if head := w.urgent(); head > w.seenHead {
			// Appended since we last looked: it may have committed after the query.
			w.seenHead = head
			return 0
		}
		select {
		case <-next:
			continue
		case <-deadline:
		case <-w.stopping:
		}
		w.seenHead = w.urgent()
		return 0
	}
}

// newSubscriber returns a subscriber for p's consumer group.
func newSubscriber(db *sql.DB, p *projector, backoff wsql.BackoffManager, hooks batchHooks, log watermill.LoggerAdapter) (*wsql.Subscriber, error) {
	noDeadline := time.Duration(0)
	sub, err := wsql.NewSubscriber(committer{db: db, hooks: hooks, checkpoint: &checkpointWrites{}}, wsql.SubscriberConfig{
		ConsumerGroup:  p.Name(),
		SchemaAdapter:  eventstore.WatermillSchema{BatchSize: 200, Types: p.types(), Except: p.ignores},
		OffsetsAdapter: checkpointOffsets{committed: hooks.committed},
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
