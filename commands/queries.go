package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/backoffs"
	"github.com/clouddbmanager/clouddb/internal/resultarchive"
	"github.com/clouddbmanager/clouddb/queryexec"
	"github.com/clouddbmanager/clouddb/queryexec/results"
)

// QueryTargets finds a tenant's database and what its tenant, and user there, may do, for the
// query engine (the read models, in one round trip). Another tenant's database is
// domain.ErrNotFound.
type QueryTargets func(ctx context.Context, tenant domain.TenantID, user domain.UserID, id domain.DatabaseID) (QueryTarget, error)

// QueryTarget is the database a query runs on and what its tenant may do, with the versions of the
// database's and the tenant's streams they reflect. A query's record (its intent, or its refusal)
// is appended against those versions, so a query is never run or refused on a state that the log
// had left behind when the record was written — whichever process recorded the change.
type QueryTarget struct {
	Target          queryexec.Target
	Policy          queryexec.Policy
	DatabaseVersion int64
	TenantVersion   int64
}

// decisive are the event types of a database's and a tenant's streams that change what a query is
// decided on: the database's state, the storage wall, the plan and the settings. Others (storage
// samples, rotations, members, invitations) only move the versions a record is appended against.
var decisive = []string{
	domain.DatabaseProvisioned{}.EventType(), domain.DatabaseProvisioningFailed{}.EventType(),
	domain.DatabaseStopped{}.EventType(), domain.DatabaseStarted{}.EventType(),
	domain.DatabaseDeleted{}.EventType(), domain.DatabaseRestored{}.EventType(), domain.DatabasePurged{}.EventType(),
	domain.DatabaseWritesRestricted{}.EventType(), domain.DatabaseWritesRestored{}.EventType(),
	domain.TenantPlanChanged{}.EventType(), domain.TenantSettingsChanged{}.EventType(),
}

// guards are the streams a record of a query on t is appended against.
func (t QueryTarget) guards() []eventstore.Stream {
	return []eventstore.Stream{
		{ID: t.Target.ID.Stream(), Type: "database", ExpectedVersion: t.DatabaseVersion},
		{ID: t.Target.Tenant.Stream(), Type: "tenant", ExpectedVersion: t.TenantVersion},
	}
}

// errTargetMoved: the database or its tenant recorded a decisive change after the query's target
// was read; the query is decided again on what the log says.
var errTargetMoved = errors.New("commands: the query's database or tenant changed meanwhile")

// maxDecisions bounds how often one request is decided again because its database kept changing.
const maxDecisions = 3

// ResultArchive keeps the results of the plans with result archiving after the result store has
// forgotten them, until their owner deletes them (internal/resultarchive.Store). Another user's or
// tenant's archive is an error wrapping domain.ErrNotFound.
type ResultArchive interface {
	Save(ctx context.Context, m resultarchive.Meta, cols []results.Column, truncated bool, rows func(yield func(json.RawMessage) error) error) error
	Get(ctx context.Context, id string, tenant domain.TenantID, user domain.UserID) (resultarchive.Item, error)
	List(ctx context.Context, tenant domain.TenantID, user domain.UserID, limit int, cursor string) (items []resultarchive.Item, next string, err error)
	Page(ctx context.Context, id string, tenant domain.TenantID, user domain.UserID, offset, limit int64) (results.Page, error)
	Rows(ctx context.Context, id string, tenant domain.TenantID, user domain.UserID, fn func(cols []results.Column, row json.RawMessage) error) error
	Delete(ctx context.Context, id string, tenant domain.TenantID, user domain.UserID) error
}

// QueryLog is what the query runner needs of the event log (*eventstore.Store): besides appends,
// queueing an outcome into the group commit without waiting for its flush.
type QueryLog interface {
	EventStore
	Enqueue(ctx context.Context, a eventstore.Append) (*eventstore.Pending, error)
	ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Envelope, error)
}

// QueryRunner runs tenant SQL through the query engine. Before a statement is sent to the
// database's server, the intent to run it (domain.QueryStarted) is durable in the log; its outcome
// (domain.QueryExecuted) is queued into the group commit before the answer, which does not wait for
// its flush. Statements refused before reaching the server are recorded before answering. On the
// plans with result archiving, users archive the results they want to keep.
type QueryRunner struct {
	// Instance is this process's lease (internal/leases): intents name it, so the query-outcome
	// reconciler can tell an intent whose process died.
	Instance string
	// Observe, when set, is told of every statement's outcome as it is recorded (GET /metrics).
	Observe func(domain.QueryExecuted)

	engine   *queryexec.Engine
	events   QueryLog
	outcomes sync.WaitGroup // outcomes queued and not yet known to be durable
	// unrecorded is the same outcomes, each with a ticket: a read waits for those queued before it
	unrecorded unrecorded
	targets    QueryTargets
	archive    ResultArchive
	log        *slog.Logger
	now        func() time.Time
	cache      struct { // targets read within targetTTL
		sync.Mutex
		m map[targetKey]cachedTarget
	}
}

// targetTTL is how long a query target serves further queries. Only the tenant's storage usage and
// the user's sub-quota may lag that long: a change of state, storage wall, plan or settings
// recorded meanwhile, by any process, fails the guard of the query's record (QueryTarget), and the
// query is decided again on what the log says.
const targetTTL = time.Second

// maxCachedTargets bounds the target cache; past it, the cache starts over.
const maxCachedTargets = 10_000

type targetKey struct {
	tenant domain.TenantID
	id     domain.DatabaseID
	user   domain.UserID // the policy holds the user's connection sub-quota
}

type cachedTarget struct {
	QueryTarget
	expires time.Time
}

// NewQueryRunner returns the query handlers.
func NewQueryRunner(engine *queryexec.Engine, events QueryLog, targets QueryTargets, archive ResultArchive, now func() time.Time, log *slog.Logger) *QueryRunner {
	if engine == nil || events == nil || targets == nil || archive == nil || now == nil || log == nil {
		panic("commands: NewQueryRunner needs an engine, an event store, targets, a result archive, a clock and a logger")
	}
	h := &QueryRunner{engine: engine, events: events, targets: targets, archive: archive, now: now, log: log}
	h.cache.m = map[targetKey]cachedTarget{}
	return h
}

// Forget drops what the handlers know of database id: its lifecycle changed.
func (h *QueryRunner) Forget(id domain.DatabaseID) {
	h.cache.Lock()
	defer h.cache.Unlock()
	for k := range h.cache.m {
		if k.id == id {
			delete(h.cache.m, k)
		}
	}
}

// target reads the database and the policy of its tenant and user, from the cache when fresh.
func (h *QueryRunner) target(ctx context.Context, tenant domain.TenantID, user domain.UserID, id domain.DatabaseID) (QueryTarget, error) {
	h.cache.Lock()
	c, ok := h.cache.m[targetKey{tenant, id, user}]
	h.cache.Unlock()
	if ok && h.now().Before(c.expires) {
		return c.QueryTarget, nil
	}
	t, err := h.targets(ctx, tenant, user, id)
	if err != nil {
		return t, err
	}
	h.remember(user, t)
	return t, nil
}

// remember keeps user's target t for targetTTL.
func (h *QueryRunner) remember(user domain.UserID, t QueryTarget) {
	h.cache.Lock()
	defer h.cache.Unlock()
	if len(h.cache.m) >= maxCachedTargets {
		clear(h.cache.m)
	}
	h.cache.m[targetKey{t.Target.Tenant, t.Target.ID, user}] = cachedTarget{QueryTarget: t, expires: h.now().Add(targetTTL)}
}

// follow moves user's target t over the events its streams recorded since, and reports whether
// one of them was decisive (t is then out of date; nothing of it moved).
func (h *QueryRunner) follow(ctx context.Context, user domain.UserID, t *QueryTarget) (bool, error) {
	moved := *t
	for _, g := range []struct {
		stream  string
		version *int64
	}{{t.Target.ID.Stream(), &moved.DatabaseVersion}, {t.Target.Tenant.Stream(), &moved.TenantVersion}} {
		envs, err := h.events.ReadStream(ctx, g.stream, *g.version)
		if err != nil {
			return false, err
		}
		for _, env := range envs {
			if slices.Contains(decisive, env.EventType) {
				return true, nil
			}
			*g.version = env.StreamVersion
		}
	}
	*t = moved
	h.remember(user, moved)
	return false, nil
}

// fromLog reads user's target t's database and tenant from their streams, for a query whose
// target the log has left behind; the tenant's storage usage and the user's sub-quota stay t's
// (read models count them).
func (h *QueryRunner) fromLog(ctx context.Context, user domain.UserID, t QueryTarget) (QueryTarget, error) {
	d, err := load(ctx, h.events, t.Target.ID.Stream(), domain.RebuildDatabase)
	if err != nil {
		return t, err
	}
	if d.TenantID() != t.Target.Tenant || d.State() == domain.StatePurged {
		return t, fmt.Errorf("database %s: %w", t.Target.ID, domain.ErrNotFound)
	}
	tenant, err := load(ctx, h.events, t.Target.Tenant.Stream(), domain.RebuildTenant)
	if err != nil {
		return t, err
	}
	fresh := t
	fresh.Target.Name, fresh.Target.Server, fresh.Target.State = d.Name(), d.Requested().Server, d.State()
	fresh.Target.WriteWall = d.WriteWall()
	fresh.Policy.Settings, fresh.Policy.Limits = tenant.Settings(), tenant.Limits()
	fresh.DatabaseVersion, fresh.TenantVersion = d.Version(), tenant.Version()
	h.remember(user, fresh)
	return fresh, nil
}

// record appends a against the streams user's target t reflects. When they moved by events that
// change nothing a query is decided on, t follows them and the append is tried again; a decisive
// change is errTargetMoved, and nothing was appended.
func (h *QueryRunner) record(ctx context.Context, user domain.UserID, t *QueryTarget, a eventstore.Append) error {
	own := slices.Clip(a.Streams)
	for attempt := 1; ; attempt++ {
		a.Streams = append(own, t.guards()...)
		_, err := h.events.Append(ctx, a)
		var conflict *eventstore.VersionConflictError
		if !errors.As(err, &conflict) || (conflict.StreamID != t.Target.ID.Stream() && conflict.StreamID != t.Target.Tenant.Stream()) ||
			attempt == maxDecisions {
			return err
		}
		moved, ferr := h.follow(ctx, user, t)
		if ferr != nil {
			return ferr
		}
		if moved {
			return errTargetMoved
		}
	}
}

// RunQuery is POST /databases/{id}/query (and, with Validate, /validate).
type RunQuery struct {
	Tenant     domain.TenantID
	User       domain.UserID
	Role       domain.Role // the role in Tenant
	SuperAdmin bool        // what a super admin may do is sqlcheck.Decide's
	Database   domain.DatabaseID
	SQL        string
	TimeoutS   float64
	RowLimit   int64
	PageSize   int64
	Confirm    bool
	Multi      bool
	// RetryOfOrphan: the request retries, under its Idempotency-Key, one that was running when its
	// process died. Statements that only read run again; others are refused with
	// ErrEarlierAttemptMayHaveRun, since the first request may have applied them.
	RetryOfOrphan bool
	Meta          eventstore.Metadata
}

// ErrEarlierAttemptMayHaveRun refuses a retry of writes whose first request, under the same
// Idempotency-Key, was running when its process died: its statements may or may not have been
// applied (the log shows its outcome, unknown if nothing could tell), and running them again could
// apply them twice. It is the request's answer (an unknown outcome, 409), kept under its key.
var ErrEarlierAttemptMayHaveRun = fmt.Errorf("an earlier request with this idempotency key was running when its process ended: %w", queryexec.ErrOutcomeUnknown)

func request(cmd RunQuery, t QueryTarget) queryexec.Request {
	return queryexec.Request{User: cmd.User, Role: cmd.Role, SuperAdmin: cmd.SuperAdmin, Target: t.Target, Policy: t.Policy, SQL: cmd.SQL,
		TimeoutS: cmd.TimeoutS, RowLimit: cmd.RowLimit, PageSize: cmd.PageSize, Confirm: cmd.Confirm, Multi: cmd.Multi}
}

// Run runs the statement(s) and records each one that ran or was refused. No statement is sent
// before the intent to run it is durable (an intent that cannot be recorded stops the request:
// nothing ran); the outcomes follow, queued before the answer and committed with the next group
// (Drain waits for them). A request refused before reaching the server is recorded before the
// answer. Records are written even when the caller has gone away meanwhile. The intent and a
// refusal are appended against the versions of the database and its tenant the query was decided
// on: when another process (or this one) recorded a change of state, storage wall, plan or
// settings meanwhile, the query is decided again on what the log says. Errors are those of
// queryexec.Engine.Run, domain.ErrNotFound for a database of another tenant, an error wrapping
// domain.ErrVersionConflict when the database kept changing, or the event store's when the intent
// or a refusal could not be recorded.
func (h *QueryRunner) Run(ctx context.Context, cmd RunQuery) ([]queryexec.Result, error) {
	t, err := h.target(ctx, cmd.Tenant, cmd.User, cmd.Database)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		results, err := h.run(ctx, cmd, &t)
		if !errors.Is(err, errTargetMoved) {
			return results, err
		}
		if attempt == maxDecisions {
			return nil, fmt.Errorf("database %s changed %d times while a query was decided: %w", cmd.Database, attempt, domain.ErrVersionConflict)
		}
		if t, err = h.fromLog(ctx, cmd.User, t); err != nil {
			return nil, err
		}
	}
}

// run decides and runs the request on t once; errTargetMoved when the log had left t behind
// (nothing ran, nothing was recorded).
func (h *QueryRunner) run(ctx context.Context, cmd RunQuery, t *QueryTarget) ([]queryexec.Result, error) {
	req := request(cmd, *t)
	announced := false
	req.Announce = func(ctx context.Context, intent domain.QueryStarted) error {
		if cmd.RetryOfOrphan && !onlyReads(intent) {
			return ErrEarlierAttemptMayHaveRun
		}
		intent.Instance = h.Instance
		err := h.record(context.WithoutCancel(ctx), cmd.User, t, eventstore.Append{Metadata: cmd.Meta, Continuable: true, Streams: []eventstore.Stream{
			{ID: domain.QueryStream(intent.QueryID), Type: "query", Events: []domain.Event{intent}}}})
		announced = err == nil
		return err
	}
	req.StateNow = func(ctx context.Context) (domain.DatabaseState, error) {
		moved, err := h.follow(ctx, cmd.User, t)
		if err != nil || !moved {
			return t.Target.State, err
		}
		fresh, err := h.fromLog(ctx, cmd.User, *t)
		if err != nil {
			return "", err
		}
		*t = fresh // the refusal is recorded against the state it names
		return fresh.Target.State, nil
	}
	results, records, err := h.engine.Run(ctx, req)
	if errors.Is(err, errTargetMoved) || len(records) == 0 {
		return results, err
	}
	if announced {
		h.recordOutcomes(context.WithoutCancel(ctx), records, cmd.Meta)
		return results, err
	}
	if rerr := h.record(context.WithoutCancel(ctx), cmd.User, t, outcomes(records, 0, cmd.Meta)); rerr != nil {
		if errors.Is(rerr, errTargetMoved) {
			return nil, rerr
		}
		h.log.Error("refused queries could not be recorded", "database_id", cmd.Database, "queries", len(records), "err", rerr)
		return nil, fmt.Errorf("record %d queries: %w", len(records), rerr)
	}
	h.observe(records)
	return results, err
}

// observe tells Observe of each outcome recorded.
func (h *QueryRunner) observe(records []domain.QueryExecuted) {
	if h.Observe != nil {
		for _, r := range records {
			h.Observe(r)
		}
	}
}

// onlyReads reports whether every statement of intent only reads.
func onlyReads(intent domain.QueryStarted) bool {
	for _, st := range intent.Statements {
		if st.StatementType != "read" {
			return false
		}
	}
	return true
}

// outcomes is the append of records, the first in a stream at version first (1 after its
// intent), the others each in a new stream.
func outcomes(records []domain.QueryExecuted, first int64, meta eventstore.Metadata) eventstore.Append {
	streams := make([]eventstore.Stream, len(records))
	for i, r := range records {
		streams[i] = eventstore.Stream{ID: domain.QueryStream(r.QueryID), Type: "query", Events: []domain.Event{r.Bounded()}}
	}
	streams[0].ExpectedVersion = first
	return eventstore.Append{Streams: streams, Metadata: meta}
}

// outcomeRetries bounds how long an outcome whose group commit failed is tried again (RDS-A
// blips); after that its intent stays open until the query-outcome reconciler resolves it as
// unknown, once this process is gone.
const outcomeRetries = 30 * time.Second

// recordOutcomes queues the outcomes of announced statements into the log's group commit and
// returns; a goroutine learns whether they committed and tries again for a while if not.
func (h *QueryRunner) recordOutcomes(ctx context.Context, records []domain.QueryExecuted, meta eventstore.Metadata) {
	h.observe(records)
	// The intent holds the request's metadata (actor, address, session): the outcomes do not repeat it.
	a := outcomes(records, 1, meta.Continued(domain.QueryStream(records[0].QueryID)))
	a.Unhurried = true // rides with the next intent: at concurrency 1, still one flush per answer
	ticket := h.unrecorded.add()
	pending, err := h.events.Enqueue(ctx, a)
	h.outcomes.Add(1)
	go func() {
		defer h.outcomes.Done()
		defer h.unrecorded.done(ticket)
		if err == nil {
			if _, err = pending.Wait(ctx); err == nil {
				return
			}
		}
		retry := backoffs.Exponential(100*time.Millisecond, 5*time.Second, 0)
		_, err = backoff.Retry(ctx, func() (struct{}, error) {
			_, err := h.events.Append(ctx, a)
			if errors.Is(err, domain.ErrVersionConflict) || errors.Is(err, eventstore.ErrClosed) {
				return struct{}{}, backoff.Permanent(err) // resolved meanwhile, or the process is ending
			}
			return struct{}{}, err
		}, backoff.WithBackOff(retry), backoff.WithMaxElapsedTime(outcomeRetries))
		if err != nil {
			h.log.Warn("query outcomes could not be recorded; the reconciler will record them as unknown",
				"query_id", records[0].QueryID, "queries", len(records), "err", err)
		}
	}()
}

// Drain waits until every queued outcome is committed or given up: call it before closing the
// event store.
func (h *QueryRunner) Drain() { h.outcomes.Wait() }

// Archive is POST /queries/{id}/archive: the caller keeps a result of theirs beyond the result
// store's 15 minutes, until they delete it, on the plans with result archiving. The result must
// still be kept (the result store's errors otherwise: domain.ErrNotFound, or
// results.ErrExpired); archiving it again changes nothing. Returns an error wrapping
// domain.ErrNotInPlan on the other plans. It is recorded as query.result_archived.v1.
func (h *QueryRunner) Archive(ctx context.Context, tenant domain.TenantID, user domain.UserID, queryID string, eventMeta eventstore.Metadata) (resultarchive.Item, error) {
	executed, err := h.executed(ctx, tenant, user, queryID)
	if err != nil {
		return resultarchive.Item{}, err
	}
	t, err := h.target(ctx, tenant, user, executed.DatabaseID)
	if err != nil {
		return resultarchive.Item{}, err
	}
	if !t.Policy.Limits.ResultArchiving {
		return resultarchive.Item{}, fmt.Errorf("result archiving: %w", domain.ErrNotInPlan)
	}
	store := h.engine.Results()
	first, err := store.Page(queryID, string(user), 0, 1)
	if err != nil {
		if !forgotten(err) {
			return resultarchive.Item{}, err
		}
		if item, aerr := h.archive.Get(ctx, queryID, tenant, user); aerr == nil {
			return h.recordArchived(ctx, tenant, user, item, eventMeta) // archived before
		}
		return resultarchive.Item{}, err
	}
	meta := resultarchive.Meta{QueryID: queryID, TenantID: tenant, UserID: user, DatabaseID: executed.DatabaseID,
		SQL: executed.SQL, ArchivedAt: h.now()}
	err = h.archive.Save(ctx, meta, first.Columns, first.Truncated, func(yield func(json.RawMessage) error) error {
		return store.Rows(ctx, queryID, string(user), func(_ []results.Column, row json.RawMessage) error {
			return yield(row)
		})
	})
	if err != nil {
		return resultarchive.Item{}, fmt.Errorf("archive result %s: %w", queryID, err)
	}
	h.log.Info("query result archived", "query_id", queryID, "tenant_id", tenant, "rows", first.Total)
	item, err := h.archive.Get(ctx, queryID, tenant, user)
	if err != nil {
		return resultarchive.Item{}, err
	}
	return h.recordArchived(ctx, tenant, user, item, eventMeta)
}

// executed reads the record of a query the caller ran in tenant, from the log; anyone else's is
// domain.ErrNotFound. The outcome is queued (recordOutcomes) and may not be in the log yet when a
// request follows the answer at once: then the intent, committed before the statement ran, gives
// the query's database and SQL (the outcome commits with the next append, the caller's own
// included).
func (h *QueryRunner) executed(ctx context.Context, tenant domain.TenantID, user domain.UserID, queryID string) (domain.QueryExecuted, error) {
	notFound := fmt.Errorf("query %s: %w", queryID, domain.ErrNotFound)
	if _, err := uuid.Parse(queryID); err != nil {
		return domain.QueryExecuted{}, notFound
	}
	envs, err := h.events.ReadStream(ctx, domain.QueryStream(queryID), 0)
	if err != nil {
		return domain.QueryExecuted{}, err
	}
	var intent domain.QueryExecuted
	for _, env := range envs { // the intent comes first when the statement reached the server
		e, err := h.events.Registry().Decode(env)
		if err != nil {
			return domain.QueryExecuted{}, err
		}
		switch q := e.(type) {
		case domain.QueryExecuted:
			if q.TenantID == tenant && q.UserID == user {
				return q, nil
			}
		case domain.QueryStarted:
			for _, st := range q.Statements {
				if st.QueryID == queryID && q.TenantID == tenant && q.UserID == user {
					intent = domain.QueryExecuted{QueryID: queryID, TenantID: tenant, UserID: user, DatabaseID: q.DatabaseID,
						SQL: st.SQL, SQLTruncated: st.SQLTruncated, Fingerprint: st.Fingerprint, StatementType: st.StatementType, Tables: st.Tables}
				}
			}
		}
	}
	if intent.QueryID != "" {
		return intent, nil
	}
	return domain.QueryExecuted{}, notFound
}

// Validate is POST /databases/{id}/validate: the checks of Run, nothing run, nothing recorded.
func (h *QueryRunner) Validate(ctx context.Context, cmd RunQuery) (queryexec.Validation, error) {
	t, err := h.target(ctx, cmd.Tenant, cmd.User, cmd.Database)
	if err != nil {
		return queryexec.Validation{}, err
	}
	return h.engine.Validate(ctx, request(cmd, t))
}

// forgotten reports whether the result store's err means it no longer has (or never had, in
// this process) the result: the archive may still have it.
func forgotten(err error) bool {
	return errors.Is(err, domain.ErrNotFound) || errors.Is(err, results.ErrExpired)
}

// Page is GET /queries/{id}/results: rows of a kept result, for the user who ran the query, from
// the result store, else from the archive (in tenant). When neither has it, the result store's
// error: domain.ErrNotFound, or results.ErrExpired for a result it has forgotten.
func (h *QueryRunner) Page(ctx context.Context, tenant domain.TenantID, user domain.UserID, queryID string, offset, limit int64) (results.Page, error) {
	page, err := h.engine.Results().Page(queryID, string(user), offset, limit)
	if !forgotten(err) {
		return page, err
	}
	archived, aerr := h.archive.Page(ctx, queryID, tenant, user, offset, limit)
	if errors.Is(aerr, domain.ErrNotFound) {
		return page, err
	}
	return archived, aerr
}

// Export is GET /queries/{id}/export: the whole kept result as o says, streamed to w as it is
// read, from the result store, else from the archive (errors as for Page). start is called once
// the result is found, before anything is written (to send headers); an error after it means the
// download is incomplete. A whole download is recorded (query.result_exported.v1, with meta) before
// Export returns.
func (h *QueryRunner) Export(ctx context.Context, tenant domain.TenantID, user domain.UserID, queryID string, o results.ExportOptions, w io.Writer, start func(), meta eventstore.Metadata) error {
	store := h.engine.Results()
	var (
		cols []results.Column
		rows func(fn func(cols []results.Column, row json.RawMessage) error) error
	)
	source, database := "results", domain.DatabaseID("")
	first, err := store.Page(queryID, string(user), 0, 1)
	switch {
	case err == nil:
		cols = first.Columns
		rows = func(fn func([]results.Column, json.RawMessage) error) error {
			return store.Rows(ctx, queryID, string(user), fn)
		}
	case forgotten(err):
		item, aerr := h.archive.Get(ctx, queryID, tenant, user)
		if errors.Is(aerr, domain.ErrNotFound) {
			return err
		} else if aerr != nil {
			return aerr
		}
		cols, source, database = item.Columns, "archive", item.DatabaseID
		rows = func(fn func([]results.Column, json.RawMessage) error) error {
			return h.archive.Rows(ctx, queryID, tenant, user, fn)
		}
	default:
		return err
	}
	exporter, err := results.NewExporter(w, o)
	if err != nil {
		return err
	}
	start()
	if err := exporter.Begin(cols); err != nil {
		return err
	}
	var exported int64
	if err := rows(func(_ []results.Column, row json.RawMessage) error { exported++; return exporter.Row(row) }); err != nil {
		return err
	}
	if err := exporter.End(); err != nil {
		return err
	}
	return h.recordExport(context.WithoutCancel(ctx), queryID, database, o.Format, exported, source, meta)
}

// recordExport records a whole download of a query's result in the query's stream; meta names the
// caller, whose result it is (the result store and the archive checked that).
func (h *QueryRunner) recordExport(ctx context.Context, queryID string, database domain.DatabaseID, format string, rows int64, source string, meta eventstore.Metadata) error {
	if database == "" {
		var err error
		if database, err = h.databaseOf(ctx, queryID); err != nil {
			return err
		}
	}
	_, err := h.events.Append(ctx, eventstore.Append{Metadata: meta, Streams: []eventstore.Stream{{
		ID: domain.QueryStream(queryID), Type: "query", ExpectedVersion: eventstore.AnyVersion,
		Events: []domain.Event{domain.QueryResultExported{QueryID: queryID, DatabaseID: database, Format: format,
			RowCount: rows, Source: source, At: h.now().UTC()}},
	}}})
	return err
}

// databaseOf reads which database a query ran on from its stream: its intent, or its outcome. ""
// when neither is there yet: a later statement of a request has no intent of its own, and its
// outcome may still be on its way to the log (the entry of its execution names the database).
func (h *QueryRunner) databaseOf(ctx context.Context, queryID string) (domain.DatabaseID, error) {
	envs, err := h.events.ReadStream(ctx, domain.QueryStream(queryID), 0)
	if err != nil {
		return "", err
	}
	for _, env := range envs {
		e, err := h.events.Registry().Decode(env)
		if err != nil {
			return "", err
		}
		switch e := e.(type) {
		case domain.QueryStarted:
			return e.DatabaseID, nil
		case domain.QueryExecuted:
			return e.DatabaseID, nil
		}
	}
	return "", nil
}

// Archived is GET /queries/archive: the caller's archived results in tenant, newest first, limit
// at a time after cursor; next is the following page's cursor, "" at the end.
func (h *QueryRunner) Archived(ctx context.Context, tenant domain.TenantID, user domain.UserID, limit int, cursor string) ([]resultarchive.Item, string, error) {
	return h.archive.List(ctx, tenant, user, limit, cursor)
}
