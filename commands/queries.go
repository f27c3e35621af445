package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/queryexec"
)

// QueryTargets finds a tenant's database and what its tenant may do, for the query engine (the
// read models, in one round trip). Another tenant's database is domain.ErrNotFound.
type QueryTargets func(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID) (queryexec.Target, queryexec.Policy, error)

// Queries runs tenant SQL through the query engine and records every statement it ran or refused
// as a QueryExecuted event before answering.
type Queries struct {
	engine  *queryexec.Engine
	events  EventStore
	targets QueryTargets
	log     *slog.Logger
	now     func() time.Time
	cache   struct { // targets read within targetTTL
		sync.Mutex
		m map[targetKey]cachedTarget
	}
}

// targetTTL is how long a query target read from the read models serves further queries: plan,
// settings and storage usage may lag that long; the database's own lifecycle changes made by this
// process reach it at once (Forget).
const targetTTL = time.Second

// maxCachedTargets bounds the target cache; past it, the cache starts over.
const maxCachedTargets = 10_000

type targetKey struct {
	tenant domain.TenantID
	id     domain.DatabaseID
}

type cachedTarget struct {
	target  queryexec.Target
	policy  queryexec.Policy
	expires time.Time
}

// NewQueries returns the query handlers.
func NewQueries(engine *queryexec.Engine, events EventStore, targets QueryTargets, now func() time.Time, log *slog.Logger) *Queries {
	if engine == nil || events == nil || targets == nil || now == nil || log == nil {
		panic("commands: NewQueries needs an engine, an event store, targets, a clock and a logger")
	}
	h := &Queries{engine: engine, events: events, targets: targets, now: now, log: log}
	h.cache.m = map[targetKey]cachedTarget{}
	return h
}

// Forget drops what the handlers know of database id: its lifecycle changed.
func (h *Queries) Forget(id domain.DatabaseID) {
	h.cache.Lock()
	defer h.cache.Unlock()
	for k := range h.cache.m {
		if k.id == id {
			delete(h.cache.m, k)
		}
	}
}

// target reads the database and its tenant's policy, from the cache when fresh.
func (h *Queries) target(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID) (queryexec.Target, queryexec.Policy, error) {
	key, now := targetKey{tenant, id}, h.now()
	h.cache.Lock()
	c, ok := h.cache.m[key]
	h.cache.Unlock()
	if ok && now.Before(c.expires) {
		return c.target, c.policy, nil
	}
	target, policy, err := h.targets(ctx, tenant, id)
	if err != nil {
		return target, policy, err
	}
	h.cache.Lock()
	defer h.cache.Unlock()
	if len(h.cache.m) >= maxCachedTargets {
		clear(h.cache.m)
	}
	h.cache.m[key] = cachedTarget{target: target, policy: policy, expires: now.Add(targetTTL)}
	return target, policy, nil
}

// RunQuery is POST /databases/{id}/query (and, with Validate, /validate).
type RunQuery struct {
	Tenant   domain.TenantID
	User     domain.UserID
	Role     domain.Role
	Database domain.DatabaseID
	SQL      string
	TimeoutS float64
	RowLimit int64
	PageSize int64
	Confirm  bool
	Multi    bool
	Meta     eventstore.Metadata
}

func (h *Queries) request(ctx context.Context, cmd RunQuery) (queryexec.Request, error) {
	target, policy, err := h.target(ctx, cmd.Tenant, cmd.Database)
	if err != nil {
		return queryexec.Request{}, err
	}
	return queryexec.Request{User: cmd.User, Role: cmd.Role, Target: target, Policy: policy, SQL: cmd.SQL,
		TimeoutS: cmd.TimeoutS, RowLimit: cmd.RowLimit, PageSize: cmd.PageSize, Confirm: cmd.Confirm, Multi: cmd.Multi}, nil
}

// Run runs the statement(s) and records each one that ran or was refused; the answer waits for
// the record, so an answered query is never missing from history and audit. The record is
// written even when the caller has gone away meanwhile. Errors are those of queryexec.Engine.Run,
// domain.ErrNotFound for a database of another tenant, or the event store's when the record
// could not be written (the statement may have run).
func (h *Queries) Run(ctx context.Context, cmd RunQuery) ([]queryexec.Result, error) {
	req, err := h.request(ctx, cmd)
	if err != nil {
		return nil, err
	}
	results, records, err := h.engine.Run(ctx, req)
	if len(records) > 0 {
		if rerr := h.record(context.WithoutCancel(ctx), records, cmd.Meta); rerr != nil {
			h.log.Error("executed queries could not be recorded", "database_id", cmd.Database, "queries", len(records), "err", rerr)
			return nil, rerr
		}
	}
	return results, err
}

func (h *Queries) record(ctx context.Context, records []domain.QueryExecuted, meta eventstore.Metadata) error {
	streams := make([]eventstore.Stream, len(records))
	for i, r := range records {
		streams[i] = eventstore.Stream{ID: domain.QueryStream(r.QueryID), Type: "query", Events: []domain.Event{r}}
	}
	if _, err := h.events.Append(ctx, eventstore.Append{Streams: streams, Metadata: meta}); err != nil {
		return fmt.Errorf("record %d queries: %w", len(records), err)
	}
	return nil
}

// Validate is POST /databases/{id}/validate: the checks of Run, nothing run, nothing recorded.
func (h *Queries) Validate(ctx context.Context, cmd RunQuery) (queryexec.Validation, error) {
	req, err := h.request(ctx, cmd)
	if err != nil {
		return queryexec.Validation{}, err
	}
	return h.engine.Validate(ctx, req)
}

// Page is GET /queries/{id}/results: rows of a kept result, for the user who ran the query.
func (h *Queries) Page(user domain.UserID, queryID string, offset, limit int64) (queryexec.ResultPage, error) {
	return h.engine.Results().Page(queryID, string(user), offset, limit)
}

// Export is GET /queries/{id}/export: the whole kept result in format, streamed to w as it is
// read. start is called once the result is found, before anything is written (to send headers);
// an error after it means the download is incomplete.
func (h *Queries) Export(ctx context.Context, user domain.UserID, queryID, format, table string, w io.Writer, start func()) error {
	results := h.engine.Results()
	first, err := results.Page(queryID, string(user), 0, 1)
	if err != nil {
		return err
	}
	exporter, err := queryexec.NewExporter(format, w, table)
	if err != nil {
		return err
	}
	start()
	if err := exporter.Begin(first.Columns); err != nil {
		return err
	}
	err = results.Rows(ctx, queryID, string(user), func(_ []queryexec.ResultColumn, row json.RawMessage) error {
		return exporter.Row(row)
	})
	if err != nil {
		return err
	}
	return exporter.End()
}
