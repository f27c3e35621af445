package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/backoffs"
	"github.com/clouddbmanager/clouddb/internal/mysqlerr"
	"github.com/clouddbmanager/clouddb/internal/watch"
)

// Options tune a Runtime; the zero value is usable.
type Options struct {
	Logger *slog.Logger
	// Poll is how often an idle runtime reads the head of the log to find events appended by other
	// processes (default 200 ms); this process's own appends wake it at once.
	Poll time.Duration
	// MaxLag is how many events a projector may be behind the head and still count as ready
	// (default 10,000).
	MaxLag int64
	// Metrics receives the runtime's Prometheus collectors when set.
	Metrics prometheus.Registerer
}

// Status is what GET /admin/projections shows of one projector.
type Status struct {
	Name        string     `json:"name"`
	Position    int64      `json:"position"`
	Lag         int64      `json:"lag"`
	Status      string     `json:"status"` // starting, running, failing, rebuilding, stopped
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// Runtime runs projectors: live through one loop over the log's tail, and rebuilds on demand.
type Runtime struct {
	db      *sql.DB
	store   *eventstore.Store
	log     *slog.Logger
	opts    Options
	states  []*state
	byName  map[string]*state
	metrics *runtimeMetrics

	started   bool
	stopping  chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once

	background     context.Context // ends at Close: rebuilds started by StartRebuild run under it
	stopBackground context.CancelFunc
	rebuilds       sync.WaitGroup
}

// state is the runtime's view of one projector.
type state struct {
	*projector
	position watch.Position // the committed checkpoint, as far as this process knows
	// applied is the last position at which a batch of the projector's own events was committed,
	// as far as this process knows (Advanced): passing over events it does not handle moves only
	// position, so the reactors that follow a read model are not woken by every round of the loop.
	applied watch.Position
	cursor  // the loop's own

	mu             sync.Mutex
	rebuildStarted bool // by StartRebuild, until its goroutine ends
	status         string
	lastError      string
	lastErrorAt    time.Time
	failures       int
}

func (s *state) setStatus(status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// New registers projectors. It returns an error for invalid or duplicate names.
func New(db *sql.DB, store *eventstore.Store, opts Options, projectors ...Projector) (*Runtime, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Poll <= 0 {
		opts.Poll = 200 * time.Millisecond
	}
	if opts.MaxLag <= 0 {
		opts.MaxLag = 10_000
	}
	r := &Runtime{db: db, store: store, log: opts.Logger, opts: opts, byName: map[string]*state{},
		stopping: make(chan struct{}), stopped: make(chan struct{})}
	r.background, r.stopBackground = context.WithCancel(context.Background())
	for _, p := range projectors {
		registered, err := newProjector(p)
		if err != nil {
			return nil, err
		}
		if r.byName[p.Name()] != nil {
			return nil, fmt.Errorf("projections: %q registered twice", p.Name())
		}
		st := &state{projector: registered, status: "stopped"}
		r.states = append(r.states, st)
		r.byName[p.Name()] = st
	}
	r.metrics = newRuntimeMetrics(r, opts.Metrics)
	return r, nil
}

// Names lists the registered projectors.
func (r *Runtime) Names() []string {
	names := make([]string, len(r.states))
	for i, st := range r.states {
		names[i] = st.Name()
	}
	return names
}

// Prepare creates missing read-model tables and rebuilds every read model whose table definitions
// changed since it was built. Start calls it; the CLI calls it before a rebuild.
func (r *Runtime) Prepare(ctx context.Context) error {
	for _, st := range r.states {
		if err := st.create(ctx, r.db, ""); err != nil {
			return err
		}
		position, hash, err := st.checkpoint(ctx, r.db)
		if err != nil {
			return err
		}
		st.position.Reset(position)
		if hash != st.schemaHash {
			r.log.Info("read model definition changed, rebuilding", "projection", st.Name())
			if err := r.Rebuild(ctx, st.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Start prepares the read models and starts the loop that applies the log to them. It returns once
// it runs; Close stops it.
func (r *Runtime) Start(ctx context.Context) error {
	if err := r.Prepare(ctx); err != nil {
		return err
	}
	for _, st := range r.states {
		st.setStatus("running")
	}
	r.started = true
	go r.follow()
	r.log.Info("projections running", "projections", r.Names())
	return nil
}

// Close stops the loop after the batch it is applying; what it applied is committed, the rest is
// applied at the next start.
func (r *Runtime) Close() error {
	r.stopBackground()
	r.rebuilds.Wait()
	if !r.started {
		return nil
	}
	r.closeOnce.Do(func() {
		close(r.stopping)
		<-r.stopped
		for _, st := range r.states {
			st.setStatus("stopped")
		}
	})
	return nil
}

// failed records a failure on an event and holds the projector there: it is retried with
// exponential backoff (100 ms up to 5 s) while the others go on.
func (r *Runtime) failed(st *state, env eventstore.Envelope, err error) {
	st.mu.Lock()
	st.failures++
	attempt := st.failures
	st.status, st.lastError, st.lastErrorAt = "failing", err.Error(), time.Now().UTC()
	st.mu.Unlock()
	r.metrics.failures.WithLabelValues(st.Name()).Inc()
	if attempt == 1 {
		st.hold = backoffs.Exponential(100*time.Millisecond, 5*time.Second, 0)
	}
	wait := st.hold.NextBackOff()
	st.heldUntil = time.Now().Add(wait)
	r.log.Error("projection failed on an event and holds there; retrying",
		"projection", st.Name(), "position", env.Position, "event_type", env.EventType,
		"attempt", attempt, "retry_in_ms", wait.Milliseconds(), "err", err)
}

func (r *Runtime) recovered(st *state) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failures > 0 {
		r.log.Info("projection recovered", "projection", st.Name(), "after_attempts", st.failures)
		st.failures = 0
		st.status = "running"
	}
}

// Advanced returns a channel closed when the named projector next commits a batch of its events
// (in this process, or another process's commit found here), for reactors that act on what a
// read model shows.
func (r *Runtime) Advanced(name string) <-chan struct{} {
	_, next := r.byName[name].applied.Load()
	return next
}

// WaitFor waits until every named projector (all when none is named) has applied the log up to
// position, for read-your-writes after an append. It returns ctx's error, wrapped with where the
// slowest projector stands, if ctx ends first.
func (r *Runtime) WaitFor(ctx context.Context, position int64, names ...string) error {
	if len(names) == 0 {
		names = r.Names()
	}
	for _, name := range names {
		st, ok := r.byName[name]
		if !ok {
			return fmt.Errorf("projections: no projection %q: %w", name, domain.ErrNotFound)
		}
		for {
			current, advanced := st.position.Load()
			if current >= position {
				break
			}
			if types := st.types(); types != nil && r.store.LocalHeadOf(types) <= current {
				break // nothing this process appended up to position concerns the projector
			}
			select {
			case <-advanced:
			case <-time.After(50 * time.Millisecond):
				// Another process may be the one applying: look at the checkpoint itself.
				if committed, _, err := st.checkpoint(ctx, r.db); err == nil {
					st.position.Advance(committed)
				}
			case <-ctx.Done():
				return fmt.Errorf("projections: %s is at %d, waiting for %d: %w", name, current, position, ctx.Err())
			}
		}
	}
	return nil
}

// Status reports every projector's position, lag behind the head of the log, and health.
func (r *Runtime) Status(ctx context.Context) ([]Status, error) {
	head, err := r.store.Head(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, len(r.states))
	for i, st := range r.states {
		position, _ := st.position.Load()
		st.mu.Lock()
		out[i] = Status{Name: st.Name(), Position: position, Lag: max(head-position, 0), Status: st.status, LastError: st.lastError}
		if !st.lastErrorAt.IsZero() {
			at := st.lastErrorAt
			out[i].LastErrorAt = &at
		}
		st.mu.Unlock()
	}
	return out, nil
}

// StoredStatus is Status as the management database tells it, for a process that does not run
// the projections itself (`clouddb projections status` beside the servers): each projector's
// checkpoint and lag, "rebuilding" while a rebuild has paused it, else "running" when serving
// processes hold a lease (they all run every projector), "stopped" when none does. Whether one
// is failing lives in the serving processes (GET /api/v1/admin/projections, /readyz).
func (r *Runtime) StoredStatus(ctx context.Context, serving int) ([]Status, error) {
	head, err := r.store.Head(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, len(r.states))
	for i, st := range r.states {
		var paused bool
		err := r.db.QueryRowContext(ctx, `SELECT position, COALESCE(paused_until > UTC_TIMESTAMP(6), FALSE) FROM `+st.quotedCheckpoint()+` WHERE id = 1`).
			Scan(&out[i].Position, &paused)
		if err != nil && !mysqlerr.IsNoSuchTable(err) { // a read model no process created yet is at 0
			return nil, fmt.Errorf("projections: %s: read checkpoint: %w", st.Name(), err)
		}
		out[i].Name, out[i].Lag = st.Name(), max(head-out[i].Position, 0)
		switch {
		case paused:
			out[i].Status = "rebuilding"
		case serving > 0:
			out[i].Status = "running"
		default:
			out[i].Status = "stopped"
		}
	}
	return out, nil
}

// Ready returns an error naming every projector that is failing or further behind than MaxLag.
func (r *Runtime) Ready(ctx context.Context) error {
	statuses, err := r.Status(ctx)
	if err != nil {
		return err
	}
	var problems []error
	for _, s := range statuses {
		switch {
		case s.Status == "failing":
			problems = append(problems, fmt.Errorf("%s is failing: %s", s.Name, s.LastError))
		case s.Lag > r.opts.MaxLag:
			problems = append(problems, fmt.Errorf("%s is %d events behind", s.Name, s.Lag))
		}
	}
	return errors.Join(problems...)
}
