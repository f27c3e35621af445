package queryexec

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/queryexec/results"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// Request bounds and defaults.
const (
	// MaxStatements is how many statements one multi request may hold.
	MaxStatements = 100
	// DefaultPageSize is how many rows a result carries inline unless the request says otherwise.
	DefaultPageSize = 100
	// MaxPageSize bounds page_size and the limit of GET /queries/{id}/results.
	MaxPageSize = 10_000
	// inlineBytes bounds the rows a response carries inline; the rest are pages away.
	inlineBytes = 8 << 20
	// killGrace is how long past its timeout a statement may run on MariaDB, whose server ends it
	// itself, before it is killed from a second connection.
	killGrace = time.Second
	// killWait is how long a request whose statement was killed waits for the server to let go of
	// its session before it answers; past it, the tenant's slot stays taken (see releaseWhenGone).
	killWait = 3 * time.Second
)

// Target is the database a request runs on, as the read model knows it.
type Target struct {
	ID     domain.DatabaseID
	Tenant domain.TenantID
	Name   string
	Server string
	State  domain.DatabaseState
	// WriteWall is the storage quota (the tenant's, or the owner's sub-quota) the database's
	// account may not write past, once over it; nil: writes are not restricted.
	WriteWall *domain.QuotaExceededError
}

// Policy is what the tenant's plan and settings allow, and the storage it uses now.
type Policy struct {
	Settings     domain.TenantSettings
	Limits       domain.Limits
	StorageBytes int64
	// MemberMaxConnections is the caller's connection sub-quota in the tenant: how many of their
	// queries may run at once (domain.MemberQuota); 0 for none.
	MemberMaxConnections int64
}

// Request is one POST /databases/{id}/query (or /validate).
type Request struct {
	User       domain.UserID
	Role       domain.Role
	SuperAdmin bool // acts as domain.EffectiveRole says
	Target     Target
	Policy     Policy
	SQL        string
	TimeoutS   float64 // 0: the tenant's timeout; may only lower it
	RowLimit   int64   // 0: the tenant's row limit; at most the plan's
	PageSize   int64   // 0: DefaultPageSize
	Confirm    bool
	Multi      bool
	// Announce, when set, records the intent to run the request's statements and returns once it
	// is durable; it is called after every check, before the first statement is sent to the
	// server, and an error stops the request there (nothing was sent).
	Announce func(ctx context.Context, intent domain.QueryStarted) error
	// StateNow, when set, says the database's state as the log has it now. The engine asks when
	// the database refuses or drops a session: a database stopped meanwhile (by another process,
	// which records the stop before it locks the accounts) is then answered database_stopped, as
	// a request decided after the stop is.
	StateNow func(ctx context.Context) (domain.DatabaseState, error)
}

// PageInfo says which rows of a result a response holds.
type PageInfo struct {
	Offset int64 `json:"offset"`
	Limit  int64 `json:"limit"`
	Total  int64 `json:"total"`
}

// Result is the outcome of one statement, as API.md shapes it.
type Result struct {
	QueryID       string                 `json:"query_id"`
	StatementType sqlcheck.StatementType `json:"statement_type"`
	Columns       []results.Column       `json:"columns"`
	Rows          []json.RawMessage      `json:"rows"`
	RowCount      int64                  `json:"row_count"`
	AffectedRows  int64                  `json:"affected_rows"`
	LastInsertID  int64                  `json:"last_insert_id"`
	Truncated     bool                   `json:"truncated"`
	ExecutionMS   float64                `json:"execution_ms"`
	Page          PageInfo               `json:"page"`
}

// StatementError says which statement of a multi request failed, and how.
type StatementError struct {
	Index     int // 1-based
	Err       error
	Completed []Result // the statements before it, which ran
}

func (e *StatementError) Error() string { return fmt.Sprintf("statement %d: %v", e.Index, e.Err) }
func (e *StatementError) Unwrap() error { return e.Err }

// ErrTimeout: the statement ran past its timeout and was stopped on the server.
var ErrTimeout = errors.New("queryexec: query timed out")

// ErrOutcomeUnknown: the connection to the database dropped after a statement that may write was
// sent; it may or may not have been applied. Retrying it blindly could apply it twice.
var ErrOutcomeUnknown = errors.New("queryexec: the statement may or may not have been applied")

// BusyError: the tenant has as many queries running as its plan allows connections, the
// database has no free connection, or (Scope "server") the process runs as many statements or
// holds as many bytes of rows as it may, or (Scope "results") the result store has no room for
// the tenant's result now. Retry shortly.
type BusyError struct {
	Scope   string // "", "server" or "results"
	Message string
}

func (e *BusyError) Error() string { return "queryexec: busy: " + e.Message }

// Engine runs tenant SQL: classify, authorize, run on the database's own account with the
// server-side timeout and the row limit, shape, keep the result for paging and export, and
// describe each statement as a domain.QueryExecuted for the caller to record. It is safe for
// concurrent use.
type Engine struct {
	fleet     *sandbox.Fleet
	pools     *pools
	results   *results.Store
	running   *gate[domain.TenantID]
	members   *gate[memberKey] // the members with a connection sub-quota
	admission *admission
	processes func() int
	maxResult int64 // bytes of one result
	killWait  time.Duration
	log       *slog.Logger
	now       func() time.Time
	onWrite   func(domain.DatabaseID)
	stop      chan struct{}
	done      sync.WaitGroup
}

// EngineOptions configure an Engine.
type EngineOptions struct {
	Fleet     *sandbox.Fleet
	Passwords Passwords
	Results   *results.Store
	Log       *slog.Logger
	Now       func() time.Time // default time.Now
	// OnWrite is told about each database a statement may have changed the size of (the storage
	// sampler measures it soon). Optional.
	OnWrite func(domain.DatabaseID)
	// MaxResultBytes bounds the rows of one result (default DefaultMaxResultBytes);
	// QueriesInFlight the statements the process runs at once (default DefaultQueriesInFlight);
	// QueryMemory the bytes of rows they hold in memory together (default DefaultQueryMemory);
	// AdmissionWait how long a statement waits for either before it is refused as busy (default
	// DefaultAdmissionWait).
	MaxResultBytes  int64
	QueriesInFlight int
	QueryMemory     int64
	AdmissionWait   time.Duration
	// Processes is how many processes serve queries (internal/leases' Processes; default 1): a
	// tenant's and a member's concurrency and an account's pool are their limits divided among
	// them, so that the limits hold for the whole deployment. QueriesInFlight and QueryMemory
	// bound this process alone.
	Processes func() int
}

// NewEngine returns an Engine; Close stops its pool janitor and closes its pools. Panics without
// a fleet, passwords, a result store or a logger.
func NewEngine(opts EngineOptions) *Engine {
	if opts.Fleet == nil || opts.Passwords == nil || opts.Results == nil || opts.Log == nil {
		panic("queryexec: NewEngine needs a fleet, passwords, a result store and a logger")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OnWrite == nil {
		opts.OnWrite = func(domain.DatabaseID) {}
	}
	if opts.MaxResultBytes <= 0 {
		opts.MaxResultBytes = DefaultMaxResultBytes
	}
	if opts.QueriesInFlight <= 0 {
		opts.QueriesInFlight = DefaultQueriesInFlight
	}
	if opts.QueryMemory <= 0 {
		opts.QueryMemory = DefaultQueryMemory
	}
	if opts.AdmissionWait <= 0 {
		opts.AdmissionWait = DefaultAdmissionWait
	}
	if opts.Processes == nil {
		opts.Processes = func() int { return 1 }
	}
	e := &Engine{fleet: opts.Fleet, pools: newPools(opts.Fleet, opts.Passwords, opts.Log, opts.Now), results: opts.Results,
		running: newTrackedGate[domain.TenantID]("the tenant runs %d queries at once, its plan's limit"),
		members: newGate[memberKey]("you run %d queries at once, your connection sub-quota in the tenant"), admission: newAdmission(opts.QueriesInFlight, max(opts.QueryMemory, MaxRowBytes), opts.AdmissionWait),
		processes: opts.Processes, maxResult: opts.MaxResultBytes, killWait: killWait, log: opts.Log, now: opts.Now, onWrite: opts.OnWrite, stop: make(chan struct{})}
	e.done.Add(1)
	go e.janitor()
	return e
}

func (e *Engine) janitor() {
	defer e.done.Done()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if n := e.pools.sweep(); n > 0 {
				e.log.Debug("idle database pools closed", "pools", n)
			}
		case <-e.stop:
			return
		}
	}
}

// Close closes every pool.
func (e *Engine) Close() {
	close(e.stop)
	e.done.Wait()
	e.pools.close()
}

// Forget closes the pools of database id: call it when the database stops, is deleted or its
// password changes.
func (e *Engine) Forget(id domain.DatabaseID) { e.pools.forget(id) }

// Running is how many statements tenant runs in this process now; for tenant "", those of every
// tenant. The dashboards show it as the connections in use.
func (e *Engine) Running(tenant domain.TenantID) int64 { return e.running.count(tenant) }

// PoolStats adds up the statistics of the open account pools, and says how many are open: what
// GET /metrics shows of the sessions held on tenant accounts.
func (e *Engine) PoolStats() (pools int, stats sql.DBStats) {
	e.pools.mu.Lock()
	dbs := make([]*sql.DB, 0, len(e.pools.m))
	for _, p := range e.pools.m {
		dbs = append(dbs, p.db)
	}
	e.pools.mu.Unlock()
	for _, db := range dbs {
		s := db.Stats()
		stats.MaxOpenConnections += s.MaxOpenConnections
		stats.OpenConnections += s.OpenConnections
		stats.InUse += s.InUse
		stats.Idle += s.Idle
		stats.WaitCount += s.WaitCount
		stats.WaitDuration += s.WaitDuration
	}
	return len(dbs), stats
}

// Results is the store of results for paging and exports.
func (e *Engine) Results() *results.Store { return e.results }

// bounds are a request's effective limits.
type bounds struct {
	timeout  time.Duration
	rowLimit int64
	pageSize int64
}

// bounds checks the request's limits against the tenant's: the timeout may only be lowered, the
// row limit raised up to the plan's. Returns a *domain.ValidationError naming each bad field.
func (r Request) bounds() (bounds, error) {
	fields := map[string]string{}
	settings, limits := r.Policy.Settings, r.Policy.Limits
	b := bounds{timeout: time.Duration(settings.QueryTimeoutS) * time.Second, rowLimit: settings.RowLimit, pageSize: DefaultPageSize}
	switch {
	case r.TimeoutS < 0 || math.IsNaN(r.TimeoutS) || r.TimeoutS > float64(settings.QueryTimeoutS):
		fields["timeout_s"] = fmt.Sprintf("must be more than 0 and at most %d (the tenant's query timeout)", settings.QueryTimeoutS)
	case r.TimeoutS > 0:
		b.timeout = time.Duration(r.TimeoutS * float64(time.Second))
		if b.timeout < time.Millisecond {
			fields["timeout_s"] = "must be at least 0.001"
		}
	}
	switch {
	case r.RowLimit < 0 || r.RowLimit > limits.MaxRowLimit:
		fields["row_limit"] = fmt.Sprintf("must be between 1 and %d (the plan's row limit)", limits.MaxRowLimit)
	case r.RowLimit > 0:
		b.rowLimit = r.RowLimit
	}
	switch {
	case r.PageSize < 0 || r.PageSize > MaxPageSize:
		fields["page_size"] = fmt.Sprintf("must be between 1 and %d", MaxPageSize)
	case r.PageSize > 0:
		b.pageSize = r.PageSize
	}
	if strings.TrimSpace(r.SQL) == "" {
		fields["sql"] = "is required"
	}
	if len(fields) > 0 {
		return b, &domain.ValidationError{Fields: fields}
	}
	b.pageSize = min(b.pageSize, b.rowLimit)
	return b, nil
}

// statement is one statement of a request on its way through the pipeline.
type statement struct {
	sql      string
	secret   bool   // the text holds a password or key: error messages quoting it are not recorded
	schema   string // the database's physical schema, and its name as its users know it
	name     string
	decision sqlcheck.Decision
	record   domain.QueryExecuted
	held     int64 // bytes of the admission's memory its inline rows hold
}

// Run runs the request's statement (or, with Multi, each statement in order, stopping at the
// first failure) and returns the results of those that succeeded and one QueryExecuted per
// statement that ran or was refused: the caller records them whatever the error.
//
// Errors: a *domain.ValidationError for bad limits or empty SQL (nothing recorded),
// domain.ErrDatabaseStopped, an error wrapping domain.ErrDatabaseUnavailable, a *NotAllowedError,
// a *ConfirmationError, a *domain.QuotaExceededError (storage, for writes), a *BusyError, a
// *QueryError (the database refused it; Syntax() for syntax errors), a *TooLargeError, ErrTimeout,
// or the context's error. With Multi, the error of statement i (1-based) is wrapped in a *StatementError.
func (e *Engine) Run(ctx context.Context, req Request) ([]Result, []domain.QueryExecuted, error) {
	b, err := req.bounds()
	if err != nil {
		return nil, nil, err
	}
	stmts, refused, err := e.prepare(req)
	if err != nil {
		if refused == nil {
			return nil, nil, err
		}
		if e.unparsable(err) && req.Target.State == domain.StateRunning {
			err = e.syntaxCheck(ctx, req, refused, err)
		}
		return nil, []domain.QueryExecuted{refused.record}, err
	}
	release, err := e.enterGates(ctx, req)
	if err != nil {
		return nil, e.refuse(stmts, err), err
	}
	var killed *conn
	defer func() {
		if killed != nil {
			e.releaseWhenGone(killed, release)
			return
		}
		release()
	}()
	leave, err := e.admission.enter(ctx)
	if err != nil {
		return nil, e.refuse(stmts, err), err
	}
	defer leave()
	defer func() { // the rows answered inline were held until now
		for i := range stmts {
			e.admission.memory.give(stmts[i].held)
		}
	}()
	account := stmts[0].decision.Account
	if req.Announce != nil {
		name := "rw"
		if account == sqlcheck.ReadOnly {
			name = "ro"
		}
		intent := domain.StartQueries(recordsOf(stmts), req.Target.Server, name, b.timeout.Seconds(), e.now().UTC())
		if err := req.Announce(ctx, intent); err != nil {
			return nil, nil, fmt.Errorf("record the intent to run %d statements: %w", len(stmts), err)
		}
	}
	// The session is taken once the intent is durable: a pooled session is held while statements
	// run, not while the log flushes, so the few sessions of a plan shared among processes serve
	// many queries.
	c, err := e.session(ctx, req, account)
	if err != nil {
		err = e.stoppedMeanwhile(ctx, req, err)
		return nil, e.refuse(stmts, err), err
	}
	discard := false
	defer func() {
		e.pools.release(c, discard, mayLock(stmts))
		if c.killed {
			killed = c
		}
	}()

	var results []Result
	for i := range stmts {
		st := &stmts[i]
		res, err := e.runOne(ctx, c, req, b, st)
		discard = discard || err != nil || changesSession(st)
		if err != nil {
			stmts = stmts[:i+1] // statements after a failure neither ran nor count
			if req.Multi {
				err = &StatementError{Index: i + 1, Err: err, Completed: results}
			}
			return results, recordsOf(stmts), err
		}
		results = append(results, res)
	}
	return results, recordsOf(stmts), nil
}

// mayLock reports whether one of stmts could have taken a user-level lock on its session: each
// but a SELECT of literals (sqlcheck.Classification.Literal), which runs no stored code.
func mayLock(stmts []statement) bool {
	for i := range stmts {
		if !stmts[i].decision.Class.Literal {
			return true
		}
	}
	return false
}

// prepare splits and checks every statement before any runs: the classifier, the role and the
// tenant's restrictions, confirmations, the database's state and the storage quota. On error,
// refused is the statement the request is recorded as (nil for a bad request, recorded as nothing).
func (e *Engine) prepare(req Request) (stmts []statement, refused *statement, err error) {
	texts := []string{req.SQL}
	if req.Multi {
		if texts, err = sqlcheck.Split(req.SQL); err != nil {
			st := e.newStatement(req, req.SQL)
			return nil, &st, e.fail(&st, sqlcheck.NotAllowed("", err))
		}
		if len(texts) > MaxStatements {
			return nil, nil, domain.NewValidationError("sql", fmt.Sprintf("holds %d statements; send at most %d per request", len(texts), MaxStatements))
		}
	}
	stmts = make([]statement, 0, len(texts))
	for i, text := range texts {
		st := e.newStatement(req, text)
		stmts = append(stmts, st)
		last := &stmts[len(stmts)-1]
		if err := e.check(last); err != nil {
			if req.Multi {
				err = &StatementError{Index: i + 1, Err: err}
			}
			return nil, last, err
		}
	}
	switch req.Target.State {
	case domain.StateRunning:
		return stmts, nil, nil
	case domain.StateStopped:
		return nil, &stmts[0], e.fail(&stmts[0], domain.ErrDatabaseStopped)
	default:
		return nil, &stmts[0], e.fail(&stmts[0], fmt.Errorf("database %s is %s: %w", req.Target.Name, req.Target.State, domain.ErrDatabaseUnavailable))
	}
}

// check records what the decision on st found, and its refusal.
func (e *Engine) check(st *statement) error {
	if c := st.decision.Class; c.Type != "" {
		st.record.StatementType, st.record.Tables = string(c.Type), unqualified(c.Tables, st.schema)
	}
	return e.fail(st, st.decision.Err())
}

// question asks whether st of req may run; estimate is what the server estimated for the first
// decision's Measure (nil before).
func (st *statement) question(req Request, estimate *int64) sqlcheck.Question {
	return sqlcheck.Question{
		SQL: st.sql,
		Who: sqlcheck.Principal{Role: req.Role, SuperAdmin: req.SuperAdmin},
		Where: sqlcheck.Place{Schema: st.schema, Settings: req.Policy.Settings, Limits: req.Policy.Limits,
			StorageBytes: req.Policy.StorageBytes, WriteWall: req.Target.WriteWall},
		Confirm:  req.Confirm,
		Estimate: estimate,
	}
}

// newStatement is text of req with its record and sqlcheck.Decide's decision on it.
func (e *Engine) newStatement(req Request, text string) statement {
	redacted := sqlcheck.RedactSecrets(text)
	recorded, truncated := domain.RecordedSQL(redacted)
	schema := sandbox.SchemaName(e.fleet.Prefix(), string(req.Target.ID))
	st := statement{sql: text, secret: redacted != text, schema: schema, name: req.Target.Name, record: domain.QueryExecuted{
		QueryID: uuid.NewString(), TenantID: req.Target.Tenant, UserID: req.User, DatabaseID: req.Target.ID,
		SQL: recorded, SQLTruncated: truncated, Fingerprint: sqlcheck.Fingerprint(text), Status: domain.QuerySucceeded, At: e.now().UTC(),
	}}
	st.decision = sqlcheck.Decide(st.question(req, nil))
	return st
}

// fail marks st's record with err and returns err; a nil err changes nothing.
func (e *Engine) fail(st *statement, err error) error {
	if err == nil {
		return nil
	}
	r := &st.record
	r.Status, r.ErrorCode, r.Error = domain.QueryFailed, ErrorCode(err), err.Error()
	var (
		na *sqlcheck.NotAllowedError
		ce *sqlcheck.ConfirmationError
		qe *QueryError
	)
	switch {
	case errors.As(err, &na), errors.As(err, &ce):
		r.Status = domain.QueryDenied
	case errors.Is(err, ErrTimeout):
		r.Status = domain.QueryTimedOut
	case errors.Is(err, ErrOutcomeUnknown):
		r.Status = domain.QueryUnknown
	case errors.Is(err, context.Canceled):
		r.Status = domain.QueryCancelled
	case errors.As(err, &qe):
		r.MySQLCode, r.Error = int(qe.MySQLCode), qe.Message
		if st.secret { // MySQL's messages quote the statement
			r.Error = fmt.Sprintf("MySQL error %d (the statement holds a secret; its message is not recorded)", qe.MySQLCode)
		}
	}
	var quota *domain.QuotaExceededError
	if errors.As(err, &quota) || errors.As(err, new(*BusyError)) {
		r.Status = domain.QueryDenied
	}
	return err
}

// refuse records a request refused before its first statement ran as its first statement.
func (e *Engine) refuse(stmts []statement, err error) []domain.QueryExecuted {
	e.fail(&stmts[0], err)
	return recordsOf(stmts[:1])
}

func recordsOf(stmts []statement) []domain.QueryExecuted {
	out := make([]domain.QueryExecuted, len(stmts))
	for i, st := range stmts {
		out[i] = st.record
	}
	return out
}

// ErrorCode is the API error code an engine error is recorded with in QueryExecuted.
func ErrorCode(err error) string {
	var (
		na    *sqlcheck.NotAllowedError
		ce    *sqlcheck.ConfirmationError
		qe    *QueryError
		quota *domain.QuotaExceededError
		busy  *BusyError
		verr  *domain.ValidationError
	)
	switch {
	case errors.As(err, &na):
		return "statement_not_allowed"
	case errors.As(err, &ce):
		return "confirmation_required"
	case errors.As(err, &qe):
		if qe.Syntax() {
			return "syntax_error"
		}
		return "query_failed"
	case errors.As(err, &quota):
		return "quota_exceeded"
	case errors.As(err, &busy):
		return "rate_limited"
	case errors.As(err, new(*TooLargeError)):
		return "payload_too_large"
	case errors.As(err, &verr):
		return "validation_failed"
	case errors.Is(err, ErrTimeout):
		return "query_timeout"
	case errors.Is(err, ErrOutcomeUnknown):
		return "outcome_unknown"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, domain.ErrDatabaseStopped):
		return "database_stopped"
	case errors.Is(err, domain.ErrDatabaseUnavailable):
		return "database_unavailable"
	}
	return "internal"
}

// unqualified strips the physical schema from table names: history shows what the user wrote.
func unqualified(tables []string, schema string) []string {
	out := make([]string, 0, len(tables))
	for _, t := range tables {
		out = append(out, strings.TrimPrefix(t, schema+"."))
	}
	return out
}

// changesSession reports whether a statement may leave state on its session that must not reach
// another request: transactions, variables, temporary tables, routines that could do either.
func changesSession(st *statement) bool {
	switch st.decision.Class.Verb {
	case "SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "INSERT", "UPDATE", "DELETE", "REPLACE",
		"CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME":
		return strings.Contains(st.sql, "@") || containsFold(st.sql, "TEMPORARY")
	}
	return true
}

func containsFold(s, word string) bool {
	return strings.Contains(strings.ToUpper(s), word)
}

// runOne runs one checked statement on session c.
func (e *Engine) runOne(ctx context.Context, c *conn, req Request, b bounds, st *statement) (Result, error) {
	if err := e.impact(ctx, c, req, st); err != nil {
		return Result{}, e.fail(st, err)
	}
	started := time.Now()
	res, err := e.execute(ctx, c, b, st)
	elapsed := time.Since(started)
	if err == nil && elapsed >= b.timeout*9/10 && c.server.Flavor() == sandbox.FlavorMariaDB {
		// Some functions (BENCHMARK) end quietly when max_statement_time interrupts them: ask
		// the server whether it did.
		if interrupted, cerr := c.interrupted(ctx); cerr != nil || interrupted {
			err = errors.Join(ErrTimeout, cerr)
		}
	}
	res.ExecutionMS = float64(elapsed.Microseconds()) / 1000
	st.record.ExecutionMS = res.ExecutionMS
	if st.decision.Class.Type == sqlcheck.TypeDML || st.decision.Class.Type == sqlcheck.TypeDDL {
		e.onWrite(req.Target.ID)
	}
	if err != nil {
		if mayHaveApplied(err, st) {
			err = fmt.Errorf("%w: the connection to the database dropped while it ran: %w", ErrOutcomeUnknown, err)
		}
		return Result{}, e.fail(st, e.stoppedMeanwhile(ctx, req, e.translate(err, st)))
	}
	st.record.RowCount, st.record.AffectedRows = res.RowCount, res.AffectedRows
	return res, nil
}

// stoppedMeanwhile turns err, a database that does not answer, into domain.ErrDatabaseStopped
// when the log says the database is stopped now (Request.StateNow).
func (e *Engine) stoppedMeanwhile(ctx context.Context, req Request, err error) error {
	if req.StateNow == nil || !errors.Is(err, domain.ErrDatabaseUnavailable) {
		return err
	}
	if state, serr := req.StateNow(ctx); serr == nil && state == domain.StateStopped {
		return fmt.Errorf("database %s was stopped while the query ran: %w", req.Target.Name, domain.ErrDatabaseStopped)
	}
	return err
}

// mayHaveApplied reports whether err, the end of statement st after it was sent, leaves its
// effect unknown: a statement that may write lost its connection before the server answered (the
// driver's ErrBadConn says nothing was sent; a server refusing connections answered before
// running anything). Reads are safe to run again.
func mayHaveApplied(err error, st *statement) bool {
	if st.decision.Class.Type == sqlcheck.TypeRead || !sandbox.Unreachable(err) || errors.Is(err, driver.ErrBadConn) {
		return false
	}
	switch sandbox.Errno(err) {
	case 1040, 1053: // too many connections, shutdown in progress: refused before it ran
		return false
	}
	return true
}

func (e *Engine) translate(err error, st *statement) error {
	if errors.Is(err, ErrTimeout) || errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, context.Canceled) || errors.As(err, new(*TooLargeError)) ||
		errors.As(err, new(*BusyError)) {
		return err
	}
	if IsTimeout(err) {
		return ErrTimeout
	}
	if sandbox.Unreachable(err) {
		return fmt.Errorf("%w: %w", domain.ErrDatabaseUnavailable, err)
	}
	return TranslateError(err, st.sql, st.schema, st.name)
}

// impact measures what the decision on st asked the server for (the rows an UPDATE or DELETE
// touches, the size of the table an ALTER TABLE changes) and has sqlcheck.Decide decide again
// with it.
func (e *Engine) impact(ctx context.Context, c *conn, req Request, st *statement) error {
	var rows int64
	var err error
	switch st.decision.Measure {
	case sqlcheck.MeasureWriteRows:
		rows, err = explainRows(ctx, c, st.sql)
	case sqlcheck.MeasureTableRows:
		rows, err = tableRows(ctx, c, st.decision.Table)
	default:
		return nil
	}
	if err != nil {
		return e.translate(err, st)
	}
	return sqlcheck.Decide(st.question(req, &rows)).Err()
}

// explainRows estimates the rows a statement examines: the largest estimate of its plan.
func explainRows(ctx context.Context, c *conn, stmt string) (int64, error) {
	plan, err := explain(ctx, c, stmt)
	var most int64
	for _, step := range plan {
		most = max(most, step.rows)
	}
	return most, err
}

// tableRows is the server's row estimate of a table of the session's schema (0 when unknown).
func tableRows(ctx context.Context, c *conn, table string) (int64, error) {
	if i := strings.LastIndexByte(table, '.'); i >= 0 {
		table = table[i+1:]
	}
	var rows sql.NullInt64
	err := c.QueryRowContext(ctx, `SELECT TABLE_ROWS FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table).Scan(&rows)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return rows.Int64, err
}

// returnsRows reports whether the statement answers with a result set.
func returnsRows(c sqlcheck.Classification, text string) bool {
	switch c.Verb {
	case "SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "CALL", "ANALYZE", "CHECK", "OPTIMIZE", "REPAIR", "CHECKSUM", "VALUES", "TABLE":
		return true
	case "INSERT", "REPLACE", "DELETE":
		return containsFold(text, "RETURNING")
	}
	return c.Type == sqlcheck.TypeRead
}

// execute runs the statement with the server-side limits. On MariaDB, SET STATEMENT applies
// max_statement_time (every statement) and sql_select_limit (the server stops producing rows
// after the first one past the row limit); on MySQL the session variables are set first, and a
// statement MAX_EXECUTION_TIME does not cover (all but SELECT) is killed at its deadline.
func (e *Engine) execute(ctx context.Context, c *conn, b bounds, st *statement) (Result, error) {
	res := Result{QueryID: st.record.QueryID, StatementType: st.decision.Class.Type, Columns: []results.Column{}, Rows: []json.RawMessage{}}
	rowsWanted := returnsRows(st.decision.Class, st.sql)
	text := st.sql
	deadline := b.timeout
	if c.server.Flavor() == sandbox.FlavorMariaDB {
		limits := "max_statement_time=" + strconv.FormatFloat(b.timeout.Seconds(), 'f', 3, 64)
		if rowsWanted {
			limits += ", sql_select_limit=" + strconv.FormatInt(b.rowLimit+1, 10)
		}
		text = "SET STATEMENT " + limits + " FOR " + text
		deadline += killGrace
	} else {
		set := "SET SESSION max_execution_time=" + strconv.FormatInt(b.timeout.Milliseconds(), 10) +
			", sql_select_limit=" + strconv.FormatInt(b.rowLimit+1, 10)
		if _, err := c.ExecContext(ctx, set); err != nil {
			return res, err
		}
	}
	runCtx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	kill := func() {
		killCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		if err := c.kill(killCtx); err != nil {
			e.log.Warn("could not kill a statement past its deadline", "database_id", c.key.id, "connection", c.id, "err", err)
		}
	}
	stopWatch := context.AfterFunc(runCtx, kill)
	var err error
	if rowsWanted {
		err = e.read(runCtx, c, b, st, &res, text)
	} else {
		var r sql.Result
		if r, err = c.ExecContext(runCtx, text); err == nil {
			res.AffectedRows, _ = r.RowsAffected()
			res.LastInsertID, _ = r.LastInsertId()
		}
	}
	stopped := stopWatch()
	if runCtx.Err() == nil {
		return res, err
	}
	// The deadline passed or the client went away. The driver may have noticed before the
	// watchdog ran (a context's Done closes before its AfterFuncs start): then kill here.
	if stopped {
		kill()
	}
	c.killed = true
	if ctx.Err() != nil {
		return res, context.Cause(ctx) // the process's shutdown says so
	}
	return res, ErrTimeout
}

// read streams the rows of a statement: the first page inline (up to inlineBytes), all of them (up
// to the row limit) into the result store, and stops at the first row past the limit. Each row
// is held in the admission's memory while it is handled, and until Run returns when it is
// answered inline. A row over MaxRowBytes or a result over maxResult stops the statement there
// (its connection is dropped rather than drained) with a *TooLargeError.
func (e *Engine) read(ctx context.Context, c *conn, b bounds, st *statement, res *Result, text string) (err error) {
	readCtx, stop := context.WithCancel(ctx)
	defer stop()
	rows, err := c.QueryContext(readCtx, text)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			stop() // the driver drops the connection instead of reading the rest of the result
			e.admission.memory.give(st.held)
			st.held, res.Rows = 0, nil
		}
		rows.Close()
	}()
	reader, err := results.NewRowReader(rows)
	if err != nil {
		return err
	}
	reader.Limit(MaxRowBytes)
	res.Columns = reader.Columns()
	for i, c := range res.Columns { // SHOW TABLES answers "Tables_in_<schema>"
		res.Columns[i].Name = strings.ReplaceAll(c.Name, st.schema, st.name)
	}
	w := e.results.Begin(res.QueryID, string(st.record.TenantID), string(st.record.UserID), res.Columns)
	defer w.Abort()
	var inline, stored int64
	for {
		row, ok, err := reader.Next()
		if errors.Is(err, results.ErrRowTooLarge) {
			return &TooLargeError{Reason: "row_too_large", Limit: MaxRowBytes}
		} else if err != nil {
			return err
		}
		if !ok {
			break
		}
		if res.RowCount == b.rowLimit {
			res.Truncated = true
			break
		}
		n := int64(len(row))
		if n > MaxRowBytes {
			return &TooLargeError{Reason: "row_too_large", Limit: MaxRowBytes}
		}
		if stored += n; stored > e.maxResult {
			return &TooLargeError{Reason: "result_too_large", Limit: e.maxResult}
		}
		if err := e.admission.hold(ctx, n); err != nil {
			return err
		}
		kept := int64(len(res.Rows)) < b.pageSize && inline+n <= inlineBytes
		if kept {
			res.Rows = append(res.Rows, row)
			inline += n
			st.held += n
		}
		err = w.Add(row)
		if !kept {
			e.admission.memory.give(n)
		}
		if errors.Is(err, results.ErrNoRoom) {
			return &BusyError{Scope: "results", Message: "the result store has no room for the tenant's result now"}
		} else if err != nil {
			return err
		}
		res.RowCount++
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	res.Page = PageInfo{Offset: 0, Limit: int64(len(res.Rows)), Total: res.RowCount}
	return w.Commit(res.Truncated)
}

// releaseWhenGone gives back the tenant's slot of a session whose statement was killed once the
// server no longer lists the session. The server looks at a kill only now and then (an optimizer
// planning thousands of subqueries did not for minutes): until it does, the statement still holds
// a connection of the account and the server's CPU, so it counts against the tenant's concurrency
// as if it still ran. The request waits up to killWait; past it, a goroutine asks every second.
func (e *Engine) releaseWhenGone(c *conn, release func()) {
	wait, cancel := context.WithTimeout(context.Background(), e.killWait)
	defer cancel()
	if c.gone(wait, 20*time.Millisecond, e.stop) {
		release()
		return
	}
	e.log.Warn("a killed statement still runs on the server; its tenant's slot stays taken until it ends",
		"database_id", c.key.id, "connection", c.id)
	e.done.Add(1)
	go func() {
		defer e.done.Done()
		defer release()
		c.gone(context.Background(), time.Second, e.stop)
	}()
}

// share is this process's part of a limit of the whole deployment: the limit divided by the
// processes that serve queries, at least 1 (so past as many processes as the limit, the deployment
// may exceed it by one per process).
func (e *Engine) share(limit int64) int64 {
	return max(1, limit/int64(max(1, e.processes())))
}

// enterGates admits the request's statements as one more query of its tenant and, when the
// caller has a connection sub-quota, of the caller, each within this process's share of the
// limit, waiting for a place up to the admission's wait; the returned func leaves both.
func (e *Engine) enterGates(ctx context.Context, req Request) (func(), error) {
	leaveTenant, err := e.running.enter(ctx, req.Target.Tenant, req.Policy.Limits.MaxConnections, e.share(req.Policy.Limits.MaxConnections), e.admission.wait)
	if err != nil || req.Policy.MemberMaxConnections <= 0 {
		return leaveTenant, err
	}
	leaveMember, err := e.members.enter(ctx, memberKey{req.Target.Tenant, req.User}, req.Policy.MemberMaxConnections,
		e.share(req.Policy.MemberMaxConnections), e.admission.wait)
	if err != nil {
		leaveTenant()
		return nil, err
	}
	return func() { leaveMember(); leaveTenant() }, nil
}

// memberKey is a member of a tenant.
type memberKey struct {
	tenant domain.TenantID
	user   domain.UserID
}

// gate caps the queries running at once per key (a tenant, a member). A query that finds every
// place of its key taken waits for one.
type gate[K comparable] struct {
	mu   sync.Mutex
	keys map[K]*places
	busy string // the BusyError's message, with the limit
	// peaks, when tracked (non-nil), is the most queries each key ran at once since takePeaks.
	peaks map[K]int64
}

type places struct {
	running int64
	freed   chan struct{} // closed (and replaced) whenever a query of the key leaves
}

func newGate[K comparable](busy string) *gate[K] { return &gate[K]{keys: map[K]*places{}, busy: busy} }

// count is how many queries key runs, or all keys together for the zero key.
func (g *gate[K]) count(key K) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var zero K
	if key != zero {
		if p := g.keys[key]; p != nil {
			return p.running
		}
		return 0
	}
	var n int64
	for _, p := range g.keys {
		n += p.running
	}
	return n
}

// enter admits one more query of key once fewer than share run, waiting up to wait; the returned
// func leaves. limit is what the refusal names (share is this process's part of it).
func (g *gate[K]) enter(ctx context.Context, key K, limit, share int64, wait time.Duration) (func(), error) {
	var deadline <-chan time.Time
	for {
		g.mu.Lock()
		p := g.keys[key]
		if p == nil {
			p = &places{freed: make(chan struct{})}
			g.keys[key] = p
		}
		if p.running < max(share, 1) {
			p.running++
			if g.peaks != nil && p.running > g.peaks[key] {
				g.peaks[key] = p.running
			}
			g.mu.Unlock()
			return func() { g.leave(key) }, nil
		}
		freed := p.freed
		g.mu.Unlock()
		if deadline == nil {
			timer := time.NewTimer(wait)
			defer timer.Stop()
			deadline = timer.C
		}
		select {
		case <-freed:
		case <-deadline:
			return nil, &BusyError{Message: fmt.Sprintf(g.busy, limit)}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (g *gate[K]) leave(key K) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.keys[key]
	p.running--
	close(p.freed)
	p.freed = make(chan struct{})
	if p.running <= 0 {
		delete(g.keys, key) // a waiter woken by the close looks the key up again
	}
}
