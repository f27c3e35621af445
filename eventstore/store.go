package eventstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clouddbmanager/clouddb/internal/mysqlerr"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
	"github.com/clouddbmanager/clouddb/internal/watch"
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("eventstore: closed")

// Options tune a Store; the zero value is usable.
type Options struct {
	Logger *slog.Logger
	// Clock stamps recorded_at; time.Now by default.
	Clock func() time.Time
	// MaxBatchEvents caps how many events one group-commit transaction carries (default 500).
	MaxBatchEvents int
	// Metrics receives the store's Prometheus collectors when set.
	Metrics prometheus.Registerer
	// UnhurriedWait bounds how long an Unhurried append waits for another to commit with
	// (default DefaultUnhurriedWait).
	UnhurriedWait time.Duration
	// PersonalData seals personal fields as events are appended and opens them as they are read;
	// nil stores them as given.
	PersonalData PersonalData
}

// Store appends to and reads from the event log. It is safe for concurrent use; appends from all
// goroutines of a process go through one writer goroutine that commits them in groups.
type Store struct {
	db       *sql.DB
	registry *Registry
	log      *slog.Logger
	now      func() time.Time
	maxBatch int
	metrics  *storeMetrics
	unhurry  time.Duration
	personal PersonalData // nil: personal data is stored as given
	inserts  *preparedInserts

	mu     sync.RWMutex // guards closed against concurrent sends to queue
	closed bool
	queue  chan *pendingAppend
	stop   chan struct{}
	done   chan struct{}

	head  watch.Position // of this process's own appends
	chain chainState     // the writer's

	typeHeads struct { // the last position of each event type this process appended
		sync.Mutex
		at map[string]int64
	}

	// firsts holds, as stored, the metadata of the streams this process began with a Continuable
	// append, for the reads of the events that continue them (continued): at most maxFirsts.
	firsts struct {
		sync.Mutex
		of map[string]Metadata
	}
}

// maxFirsts bounds Store.firsts; past it the map starts again empty (a read then asks the log).
const maxFirsts = 4096

type pendingAppend struct {
	ctx      context.Context
	append   Append
	messages []*message.Message // one per event: its id and payload, its row put in its context at commit
	links    []Link             // one per message, filled but for the chain sequence and previous hash
	metadata []byte             // the append's metadata as stored
	sealed   Metadata           // the same, decoded: kept for a Continuable append's later reads
	result   chan appendResult
}

type appendResult struct {
	appended Appended
	err      error
}

// New returns a Store on db (a go-sql-driver pool opened with parseTime=true) and starts its
// writer. Every event type written must be registered in registry.
func New(db *sql.DB, registry *Registry, opts Options) *Store {
	if db == nil || registry == nil {
		panic("eventstore: New needs a database and a registry")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxBatchEvents <= 0 {
		opts.MaxBatchEvents = 500
	}
	if opts.UnhurriedWait <= 0 {
		opts.UnhurriedWait = DefaultUnhurriedWait
	}
	s := &Store{
		db:       db,
		registry: registry,
		log:      opts.Logger,
		now:      opts.Clock,
		maxBatch: opts.MaxBatchEvents,
		unhurry:  opts.UnhurriedWait,
		personal: opts.PersonalData,
		inserts:  newPreparedInserts(db, opts.Logger),
		metrics:  newStoreMetrics(opts.Metrics),
		chain:    chainState{at: -1, heads: map[string]chainHead{}},
		queue:    make(chan *pendingAppend, 1024),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go s.write()
	return s
}

// Registry is the store's event type registry.
func (s *Store) Registry() *Registry { return s.registry }

// Close commits what is already queued and stops the writer. Appends after Close fail with
// ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.inserts.Close()
	return nil
}

// Append writes a atomically. A stream whose version is not the expected one fails the whole
// append with a *VersionConflictError, a claim held by another stream with a *ClaimTakenError.
func (s *Store) Append(ctx context.Context, a Append) (Appended, error) {
	pending, err := s.Enqueue(ctx, a)
	if err != nil {
		return Appended{}, err
	}
	return pending.Wait(ctx)
}

// Pending is an append queued by Enqueue.
type Pending struct {
	s     *Store
	p     *pendingAppend
	start time.Time
}

// Enqueue queues a for the writer's next group commit and returns without waiting for it (Close
// still commits it); Wait on the result learns its outcome. A caller whose answer need not wait
// for the log flush (the outcome of a query whose intent is durable) saves the flush's latency.
// Errors are those of a that could not be queued: invalid, after Close, or ctx done first.
func (s *Store) Enqueue(ctx context.Context, a Append) (*Pending, error) {
	start := time.Now()
	p, err := s.prepare(ctx, a)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	select {
	case s.queue <- p:
		return &Pending{s: s, p: p, start: start}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Wait returns the outcome of the queued append, as Append does.
func (w *Pending) Wait(ctx context.Context) (Appended, error) {
	select {
	case r := <-w.p.result:
		w.s.metrics.observeAppend(r.err, len(w.p.messages), time.Since(w.start))
		return r.appended, r.err
	case <-ctx.Done():
		// The writer may still commit it; like any database call, the outcome is then unknown.
		return Appended{}, ctx.Err()
	}
}

// prepare validates and encodes an append in the caller's goroutine, off the writer's path.
func (s *Store) prepare(ctx context.Context, a Append) (*pendingAppend, error) {
	if a.eventCount() == 0 {
		return nil, errors.New("eventstore: append without events")
	}
	seen := map[string]bool{}
	recordedAt := s.now().UTC().Truncate(time.Microsecond)
	p := &pendingAppend{ctx: ctx, append: a, result: make(chan appendResult, 1),
		messages: make([]*message.Message, 0, a.eventCount()), links: make([]Link, 0, a.eventCount())}
	envs := make([]Envelope, 0, a.eventCount())
	subject := "" // whose personal data the append's metadata is (s.personal)
	for _, st := range a.Streams {
		switch {
		case st.ID == "" || len(st.ID) > 255:
			return nil, fmt.Errorf("eventstore: stream id %q must have 1 to 255 bytes", st.ID)
		case st.Type == "" || len(st.Type) > 64:
			return nil, fmt.Errorf("eventstore: stream %s: type %q must have 1 to 64 bytes", st.ID, st.Type)
		case st.ExpectedVersion < AnyVersion:
			return nil, fmt.Errorf("eventstore: stream %s: invalid expected version %d", st.ID, st.ExpectedVersion)
		case seen[st.ID]:
			return nil, fmt.Errorf("eventstore: stream %s appears twice in one append", st.ID)
		}
		seen[st.ID] = true
		for _, e := range st.Events {
			if len(e.EventType()) > 128 {
				return nil, fmt.Errorf("eventstore: event type %q is longer than 128 bytes", e.EventType())
			}
			if !s.registry.Knows(e.EventType()) {
				return nil, fmt.Errorf("%w: %q (stream %s)", ErrUnknownEventType, e.EventType(), st.ID)
			}
			eventID := uuid.NewString()
			if s.personal != nil {
				sealed, whose, err := s.personal.Seal(ctx, eventID, st.ID, e)
				if err != nil {
					return nil, fmt.Errorf("eventstore: seal the personal data of %s: %w", e.EventType(), err)
				}
				e = sealed
				if subject == "" {
					subject = whose
				}
			}
			payload, err := json.Marshal(e)
			if err != nil {
				return nil, fmt.Errorf("eventstore: encode %s: %w", e.EventType(), err)
			}
			envs = append(envs, Envelope{EventID: eventID, StreamID: st.ID, StreamType: st.Type, EventType: e.EventType(),
				Payload: payload, RecordedAt: recordedAt})
		}
	}
	md := a.Metadata
	if s.personal != nil {
		if md.ActorID != "" {
			subject = "user-" + md.ActorID
		}
		var err error
		if md, err = s.personal.SealMetadata(ctx, md, subject); err != nil {
			return nil, fmt.Errorf("eventstore: seal the personal data of the metadata: %w", err)
		}
	}
	metadata, err := json.Marshal(md) // as InsertQuery stores it
	if err != nil {
		return nil, fmt.Errorf("eventstore: encode metadata: %w", err)
	}
	metadataSHA256, chain := sha256.Sum256(metadata), ChainOf(a.Metadata)
	p.metadata = metadata
	if a.Continuable {
		p.sealed = md
	}
	for _, env := range envs {
		// Only the row the message is inserted as is read on the way in, from its context (setPlace):
		// ToMessage's metadata, what a reader of the topic gets, would cost a map per event for nothing.
		p.messages = append(p.messages, message.NewMessage(env.EventID, message.Payload(env.Payload)))
		p.links = append(p.links, Link{ChainID: chain, EventID: env.EventID, StreamID: env.StreamID, StreamType: env.StreamType,
			EventType: env.EventType, PayloadSHA256: sha256.Sum256(env.Payload), MetadataSHA256: metadataSHA256, RecordedAt: recordedAt})
	}
	for _, c := range append(a.Claims, a.Releases...) {
		if c.Key == "" || len(c.Key) > 255 || c.StreamID == "" || len(c.StreamID) > 255 {
			return nil, fmt.Errorf("eventstore: claim %q must have a key and a stream id of 1 to 255 bytes", c.Key)
		}
	}
	if p.append.Claims, err = s.claimKeys(ctx, a.Claims); err != nil {
		return nil, err
	}
	if p.append.Releases, err = s.claimKeys(ctx, a.Releases); err != nil {
		return nil, err
	}
	return p, nil
}

// claimKeys returns claims with their keys as stored (PersonalData.ClaimKey).
func (s *Store) claimKeys(ctx context.Context, claims []Claim) ([]Claim, error) {
	if s.personal == nil || len(claims) == 0 {
		return claims, nil
	}
	stored := make([]Claim, len(claims))
	for i, c := range claims {
		key, err := s.personal.ClaimKey(ctx, c.Key)
		if err != nil {
			return nil, fmt.Errorf("eventstore: claim key: %w", err)
		}
		stored[i] = Claim{Key: key, StreamID: c.StreamID}
	}
	return stored, nil
}

// write is the writer goroutine: it takes what is queued, up to the batch limit, and commits it as
// one transaction.
func (s *Store) write() {
	defer close(s.done)
	last := 1 // appends in the previous group
	for {
		select {
		case p := <-s.queue:
			batch := s.gather(p, last)
			if unhurried(batch) {
				batch = s.linger(batch)
			}
			last = len(batch)
			s.commit(batch)
		case <-s.stop:
			for {
				select {
				case p := <-s.queue:
					s.commit(s.gather(p, 1))
				default:
					return
				}
			}
		}
	}
}

// gatherWait bounds how long the writer waits for a group to fill.
const gatherWait = time.Millisecond

// DefaultUnhurriedWait is how long an Unhurried append waits for another to commit with: a query
// answered at concurrency 1 is followed by the next one's intent within a millisecond or two.
const DefaultUnhurriedWait = 5 * time.Millisecond

// unhurried reports whether every append of batch may wait.
func unhurried(batch []*pendingAppend) bool {
	for _, p := range batch {
		if !p.append.Unhurried {
			return false
		}
	}
	return true
}

// linger holds a batch of unhurried appends until an append somebody waits for comes (it joins,
// with whatever is queued behind it), the unhurried wait has passed, the batch is full, or the
// store closes.
func (s *Store) linger(batch []*pendingAppend) []*pendingAppend {
	timer := time.NewTimer(s.unhurry)
	defer timer.Stop()
	events := 0
	for _, p := range batch {
		events += len(p.messages)
	}
	for events < s.maxBatch {
		select {
		case p := <-s.queue:
			batch = append(batch, p)
			events += len(p.messages)
			if !p.append.Unhurried {
				return append(batch[:len(batch)-1], s.gather(p, 1)...)
			}
		case <-timer.C:
			return batch
		case <-s.stop:
			return batch
		}
	}
	return batch
}

// gather adds what is queued to first, up to the batch limit. When the previous group was larger,
// it waits up to gatherWait for as many appends: the callers it just answered are about to send
// their next ones, and committing a lone early one would make all of them wait for two commits.
func (s *Store) gather(first *pendingAppend, previous int) []*pendingAppend {
	batch := []*pendingAppend{first}
	events := len(first.messages)
	var deadline <-chan time.Time
	for events < s.maxBatch {
		select {
		case p := <-s.queue:
			batch = append(batch, p)
			events += len(p.messages)
			continue
		default:
		}
		if len(batch) >= previous {
			return batch
		}
		if deadline == nil {
			timer := time.NewTimer(gatherWait)
			defer timer.Stop()
			deadline = timer.C
		}
		select {
		case p := <-s.queue:
			batch = append(batch, p)
			events += len(p.messages)
		case <-deadline:
			return batch
		}
	}
	return batch
}

func (s *Store) commit(batch []*pendingAppend) {
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.result <- appendResult{err: err}
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	s.metrics.batchSize.Observe(float64(len(live)))
	results, err := s.commitTx(live)
	if err != nil && len(live) > 1 {
		// One bad append (an oversized payload, say) must not fail its batch mates: retry each alone.
		s.log.Warn("eventstore: group commit failed, retrying appends one by one", "appends", len(live), "err", err)
		for _, p := range live {
			s.commit([]*pendingAppend{p})
		}
		return
	}
	for i, p := range live {
		if err != nil {
			p.result <- appendResult{err: err}
		} else {
			p.result <- results[i]
		}
	}
}

// commitTx writes the appends of a batch in one transaction and returns each one's outcome; an
// error means the transaction as a whole failed and nothing of the batch was written.
func (s *Store) commitTx(batch []*pendingAppend) ([]appendResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("eventstore: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit

	// Every appender of every process takes this lock, so positions commit in order.
	var position int64
	if err := tx.QueryRowContext(ctx, `SELECT last_position FROM event_sequence WHERE id = 1 FOR UPDATE`).Scan(&position); err != nil {
		return nil, fmt.Errorf("eventstore: lock sequence: %w", err)
	}
	versions, err := currentVersions(ctx, tx, batch)
	if err != nil {
		return nil, err
	}
	chains, err := s.chain.begin(ctx, tx, position, chainsOf(batch))
	if err != nil {
		return nil, err
	}
	results := make([]appendResult, len(batch))
	var messages []*message.Message
	for i, p := range batch {
		if err := checkVersions(p.append.Streams, versions); err != nil {
			results[i].err = err
			continue
		}
		if err := s.writeClaims(ctx, tx, p.append); err != nil {
			var taken *ClaimTakenError
			if !errors.As(err, &taken) {
				return nil, err
			}
			results[i].err = err
			continue
		}
		results[i].appended.FirstPosition = position + 1
		for j, msg := range p.messages {
			link := p.links[j]
			versions[link.StreamID]++
			position++
			link.StreamVersion = versions[link.StreamID]
			hash := chains.link(&link)
			setPlace(msg, position, link, hash, p.metadata)
			messages = append(messages, msg)
		}
		results[i].appended.LastPosition = position
	}
	if len(messages) == 0 {
		return results, nil
	}
	publisher, err := wsql.NewPublisher(publishTx{wsql.StdSQLTx{Tx: tx}, s.inserts}, wsql.PublisherConfig{SchemaAdapter: WatermillSchema{}}, watermill.NopLogger{})
	if err != nil {
		return nil, fmt.Errorf("eventstore: publisher: %w", err)
	}
	if err := publisher.Publish(Topic, messages...); err != nil {
		return nil, fmt.Errorf("eventstore: insert %d events: %w", len(messages), err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE event_sequence SET last_position = ? WHERE id = 1`, position); err != nil {
		return nil, fmt.Errorf("eventstore: advance sequence: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("eventstore: commit: %w", err)
	}
	chains.commit(position)
	s.noteTypes(batch, results, position)
	s.noteFirsts(batch, results)
	s.head.Advance(position)
	return results, nil
}

// chainsOf lists the chains the events of batch go to.
func chainsOf(batch []*pendingAppend) []string {
	var chains []string
	for _, p := range batch {
		if len(p.links) > 0 && !slices.Contains(chains, p.links[0].ChainID) { // one chain per append: its metadata's
			chains = append(chains, p.links[0].ChainID)
		}
	}
	return chains
}

// noteTypes records that the committed appends of batch hold their event types at or before
// position.
func (s *Store) noteTypes(batch []*pendingAppend, results []appendResult, position int64) {
	s.typeHeads.Lock()
	defer s.typeHeads.Unlock()
	if s.typeHeads.at == nil {
		s.typeHeads.at = map[string]int64{}
	}
	for i, p := range batch {
		if results[i].err != nil {
			continue
		}
		for _, st := range p.append.Streams {
			for _, e := range st.Events {
				s.typeHeads.at[e.EventType()] = position
			}
		}
	}
}

// firstsPerRead bounds the streams one query of continued reads the first metadata of.
const firstsPerRead = 1000

// readFirsts reads into firsts the stored metadata of the first event of each of streams.
func (s *Store) readFirsts(ctx context.Context, streams []any, firsts map[string]*Metadata) error {
	rows, err := s.db.QueryContext(ctx, `SELECT stream_id, metadata FROM events WHERE stream_version = 1 AND stream_id IN (`+
		sqlparams.List(len(streams))+`)`, streams...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var stream string
	var metadata []byte
	for rows.Next() {
		md := new(Metadata)
		if err := rows.Scan(&stream, &metadata); err != nil {
			return err
		}
		if err := decodeMetadata(metadata, md); err != nil {
			return fmt.Errorf("metadata of stream %s: %w", stream, err)
		}
		firsts[stream] = md
	}
	return rows.Err()
}

// noteFirsts keeps the metadata of the streams that the committed Continuable appends of batch began.
func (s *Store) noteFirsts(batch []*pendingAppend, results []appendResult) {
	s.firsts.Lock()
	defer s.firsts.Unlock()
	for i, p := range batch {
		if !p.append.Continuable || results[i].err != nil {
			continue
		}
		for _, st := range p.append.Streams {
			if st.ExpectedVersion == 0 && len(st.Events) > 0 {
				if s.firsts.of == nil || len(s.firsts.of) >= maxFirsts {
					s.firsts.of = make(map[string]Metadata, maxFirsts)
				}
				s.firsts.of[st.ID] = p.sealed
			}
		}
	}
}

// LocalHeadExcept is the position of the last append committed by this process that holds an
// event of a type not in types, 0 if none.
func (s *Store) LocalHeadExcept(types []string) int64 {
	s.typeHeads.Lock()
	defer s.typeHeads.Unlock()
	var head int64
	for t, at := range s.typeHeads.at {
		if !slices.Contains(types, t) {
			head = max(head, at)
		}
	}
	return head
}

// LocalHeadOf is the position of the last append committed by this process that holds an event
// of one of types (it may hold later events of other types too), 0 if none.
func (s *Store) LocalHeadOf(types []string) int64 {
	s.typeHeads.Lock()
	defer s.typeHeads.Unlock()
	var head int64
	for _, t := range types {
		head = max(head, s.typeHeads.at[t])
	}
	return head
}

// currentVersions reads the version of every stream the batch touches; the sequence lock keeps
// them current until commit.
func currentVersions(ctx context.Context, tx *sql.Tx, batch []*pendingAppend) (map[string]int64, error) {
	versions := map[string]int64{}
	var ids []any
	for _, p := range batch {
		for _, st := range p.append.Streams {
			if _, ok := versions[st.ID]; !ok {
				versions[st.ID] = 0
				ids = append(ids, st.ID)
			}
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT stream_id, MAX(stream_version) FROM events WHERE stream_id IN (`+
		sqlparams.List(len(ids))+`) GROUP BY stream_id`, ids...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read stream versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var version int64
		if err := rows.Scan(&id, &version); err != nil {
			return nil, fmt.Errorf("eventstore: read stream versions: %w", err)
		}
		versions[id] = version
	}
	return versions, rows.Err()
}

func checkVersions(streams []Stream, versions map[string]int64) error {
	for _, st := range streams {
		if st.ExpectedVersion != AnyVersion && versions[st.ID] != st.ExpectedVersion {
			return &VersionConflictError{StreamID: st.ID, Expected: st.ExpectedVersion, Actual: versions[st.ID]}
		}
	}
	return nil
}

// writeClaims takes the append's claims and frees its releases inside a savepoint, so a taken
// claim undoes only this append's part of the batch.
func (s *Store) writeClaims(ctx context.Context, tx *sql.Tx, a Append) error {
	if len(a.Claims) == 0 && len(a.Releases) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT claims`); err != nil {
		return fmt.Errorf("eventstore: savepoint: %w", err)
	}
	err := s.claim(ctx, tx, a)
	if err != nil {
		if _, rbErr := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT claims`); rbErr != nil {
			return fmt.Errorf("eventstore: rollback to savepoint: %w (after %v)", rbErr, err)
		}
		return err
	}
	return nil
}

func (s *Store) claim(ctx context.Context, tx *sql.Tx, a Append) error {
	for _, r := range a.Releases {
		if _, err := tx.ExecContext(ctx, `DELETE FROM claims WHERE claim_key = ? AND stream_id = ?`, r.Key, r.StreamID); err != nil {
			return fmt.Errorf("eventstore: release claim %q: %w", r.Key, err)
		}
	}
	for _, c := range a.Claims {
		_, err := tx.ExecContext(ctx, `INSERT INTO claims (claim_key, stream_id, claimed_at) VALUES (?, ?, ?)`, c.Key, c.StreamID, s.now().UTC())
		if !mysqlerr.IsDuplicateKey(err) {
			if err != nil {
				return fmt.Errorf("eventstore: claim %q: %w", c.Key, err)
			}
			continue
		}
		var holder string
		if err := tx.QueryRowContext(ctx, `SELECT stream_id FROM claims WHERE claim_key = ?`, c.Key).Scan(&holder); err != nil {
			return fmt.Errorf("eventstore: claim %q: %w", c.Key, err)
		}
		if holder != c.StreamID {
			return &ClaimTakenError{Key: c.Key}
		}
	}
	return nil
}

// ReadStream returns the events of one stream after afterVersion, in version order.
func (s *Store) ReadStream(ctx context.Context, streamID string, afterVersion int64) ([]Envelope, error) {
	return s.query(ctx, `SELECT `+envelopeColumns+` FROM events WHERE stream_id = ? AND stream_version > ? ORDER BY stream_version`, streamID, afterVersion)
}

// ReadAll returns up to limit events of the global log after position, in order.
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]Envelope, error) {
	return s.query(ctx, `SELECT `+envelopeColumns+` FROM events WHERE position > ? ORDER BY position LIMIT ?`, after, limit)
}

// ReadPositions returns the events at positions (at most a few hundred), in order: a reader that
// rewrites what some events made (an erasure's read models) rather than replaying the log.
func (s *Store) ReadPositions(ctx context.Context, positions []int64) ([]Envelope, error) {
	if len(positions) == 0 {
		return nil, nil
	}
	args := make([]any, len(positions))
	for i, p := range positions {
		args[i] = p
	}
	return s.query(ctx, `SELECT `+envelopeColumns+` FROM events WHERE position IN (`+sqlparams.List(len(positions))+`) ORDER BY position`, args...)
}

// ReadTail returns up to limit events after position, in order: only those of types when types is
// not nil, none of except, but always the last event of the log, so that a reader that applies
// what it read may take the last position returned as its own.
func (s *Store) ReadTail(ctx context.Context, after int64, limit int, types, except []string) ([]Envelope, error) {
	where, args := typeFilter("position > ?", []any{after}, types, except)
	return s.query(ctx, `SELECT `+envelopeColumns+` FROM events WHERE `+where+` ORDER BY position LIMIT ?`, append(args, limit)...)
}

// ReadAllBodies is ReadAll for a reader that needs of each event only its position, id, stream,
// type, payload and recording time (a rebuild of the metrics): the other fields are zero. The
// driver's work is per column and metadata is a JSON document of its own to decode, so a reader
// of millions of events reads about half as much.
func (s *Store) ReadAllBodies(ctx context.Context, after int64, limit int) ([]Envelope, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT position, event_id, stream_id, event_type, payload, recorded_at
		FROM events WHERE position > ? ORDER BY position LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read: %w", err)
	}
	defer rows.Close()
	envs := make([]Envelope, 0, min(limit, maxPreallocated))
	types := map[string]string{} // a batch holds a few types: one string each
	var eventType, payload sql.RawBytes
	var arena []byte // the payloads, copied a block at a time rather than one allocation each
	for rows.Next() {
		var env Envelope
		if err := rows.Scan(&env.Position, &env.EventID, &env.StreamID, &eventType, &payload, &env.RecordedAt); err != nil {
			return nil, fmt.Errorf("eventstore: scan event: %w", err)
		}
		if len(payload) > cap(arena)-len(arena) {
			arena = make([]byte, 0, max(payloadArena, len(payload)))
		}
		arena = append(arena, payload...)
		env.Payload = arena[len(arena)-len(payload) : len(arena) : len(arena)]
		t, ok := types[string(eventType)]
		if !ok {
			t = string(eventType)
			types[t] = t
		}
		env.EventType, env.RecordedAt = t, env.RecordedAt.UTC()
		envs = append(envs, env)
	}
	return s.opened(ctx, envs, rows.Err())
}

// maxPreallocated bounds the envelopes a read makes room for before it knows how many come;
// payloadArena is the size of the blocks ReadAllBodies copies payloads into.
const (
	maxPreallocated = 50_000
	payloadArena    = 1 << 20
)

func (s *Store) query(ctx context.Context, query string, args ...any) ([]Envelope, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read: %w", err)
	}
	defer rows.Close()
	var envs []Envelope
	for rows.Next() {
		env, err := scanEnvelope(rows)
		if err != nil {
			return nil, err
		}
		envs = append(envs, env)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: read: %w", err)
	}
	return s.opened(ctx, envs, s.continued(ctx, envs))
}

// continued gives each of envs that continues a request recorded first in another stream
// (Metadata.Continues) the metadata of that stream's first event, as stored (opened afterwards
// with the others): taken from envs when the read holds that event, else from what this process
// appended (Append.Continuable), else read from the log (a query per firstsPerRead streams).
func (s *Store) continued(ctx context.Context, envs []Envelope) error {
	var firsts map[string]*Metadata
	for i := range envs {
		if c := envs[i].Metadata.Continues; c != "" {
			if firsts == nil {
				firsts = map[string]*Metadata{}
			}
			firsts[c] = nil
		}
	}
	if firsts == nil {
		return nil
	}
	var missing []any
	for i := range envs {
		if _, ok := firsts[envs[i].StreamID]; ok && envs[i].StreamVersion == 1 {
			md := envs[i].Metadata
			firsts[envs[i].StreamID] = &md
		}
	}
	s.firsts.Lock()
	for stream, md := range firsts {
		if md != nil {
			continue
		}
		if kept, ok := s.firsts.of[stream]; ok {
			firsts[stream] = &kept
		} else {
			missing = append(missing, stream)
		}
	}
	s.firsts.Unlock()
	for len(missing) > 0 {
		n := min(len(missing), firstsPerRead)
		if err := s.readFirsts(ctx, missing[:n], firsts); err != nil {
			return err
		}
		missing = missing[n:]
	}
	for i := range envs {
		if c := envs[i].Metadata.Continues; c != "" {
			md := firsts[c]
			if md == nil || md.Continues != "" {
				return fmt.Errorf("position %d continues the request of stream %s, whose first event does not record one", envs[i].Position, c)
			}
			envs[i].Metadata = *md
		}
	}
	return nil
}

// opened returns envs, their personal data opened, unless reading them failed (err).
func (s *Store) opened(ctx context.Context, envs []Envelope, err error) ([]Envelope, error) {
	if err != nil {
		return nil, fmt.Errorf("eventstore: read: %w", err)
	}
	if s.personal != nil {
		for i := range envs {
			if err := s.personal.Open(ctx, &envs[i]); err != nil {
				return nil, fmt.Errorf("eventstore: open the personal data of position %d: %w", envs[i].Position, err)
			}
		}
	}
	return envs, nil
}

// Head is the position of the last committed event (0 for an empty log).
func (s *Store) Head(ctx context.Context) (int64, error) {
	var head int64
	if err := s.db.QueryRowContext(ctx, `SELECT last_position FROM event_sequence WHERE id = 1`).Scan(&head); err != nil {
		return 0, fmt.Errorf("eventstore: read head: %w", err)
	}
	return head, nil
}

// LocalHead returns the position of the last append committed by this process, and a channel
// closed when this process commits the next one. Appends of other processes are not signalled:
// subscribers poll for those.
func (s *Store) LocalHead() (int64, <-chan struct{}) {
	return s.head.Load()
}

// ClaimHolder returns the stream holding a claim, or "" when nobody holds it.
func (s *Store) ClaimHolder(ctx context.Context, key string) (string, error) {
	if s.personal != nil {
		var err error
		if key, err = s.personal.ClaimKey(ctx, key); err != nil {
			return "", fmt.Errorf("eventstore: claim key: %w", err)
		}
	}
	var stream string
	err := s.db.QueryRowContext(ctx, `SELECT stream_id FROM claims WHERE claim_key = ?`, key).Scan(&stream)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("eventstore: read claim %q: %w", key, err)
	}
	return stream, nil
}
