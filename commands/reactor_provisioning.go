package commands

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// The provisioning reactor reacts to database.requested.v1 (the databases waiting in the
// database_list read model, a WorkQueue): it creates each database on its sandbox server and
// records database.provisioned.v1, or database.provisioning_failed.v1 with the quota given back.
//
// A schema template is the tenant's own SQL, so nothing of the platform waits on it: a worker
// takes a tenant's provisioning with a work lease (work_leases, `provision:<tenant>`, committed at
// once), then creates schema and accounts and runs the template with no transaction open and no
// row locked on RDS-A, and records the outcome. A pool of workers (RunProvisioning) shares the
// queue; the lease is per tenant, so a tenant has one provisioning at a time across every process
// and a slow template delays only its own tenant's next databases.

// provisioningDeadline is how long a database may wait for an unreachable sandbox server before
// its provisioning is given up.
const provisioningDeadline = 2 * time.Minute

// Deadlines of provisioning's calls: the platform's own steps on RDS-B (schema, accounts, the
// sample's rows), each read or append on RDS-A, and a schema template in all (each of its
// statements is cut at the tenant's statement timeout before that).
const (
	provisioningStepsTimeout = time.Minute
	reactorCallTimeout       = 30 * time.Second
	maxTemplateRun           = 10 * time.Minute
)

// errLeaseLost stops work whose lease another worker took over.
var errLeaseLost = errors.New("the work lease expired and another worker took the work over")

// errTemplateTooLong is a schema template cut at maxTemplateRun.
var errTemplateTooLong = errors.New("the schema template ran longer than it may in all")

func provisioningLeaseKey(tenant domain.TenantID) string { return "provision:" + string(tenant) }

// ProvisionDue provisions the databases waiting in the read model, up to a batch, and returns how
// many it handled, with ErrWorkWaits when one of them waits for its server to answer. Each is taken with its tenant's work lease, so workers and processes share the
// work without doing any twice at once and a tenant's databases are provisioned one at a time;
// provisioning itself is idempotent, so a crash at any step is resumed by the next attempt once
// the lease has expired.
func (h *Databases) ProvisionDue(ctx context.Context) (int, error) {
	handled := 0
	var waits error // ErrWorkWaits once a database waits for its server
	var seen []any  // taken this round: provisioned (the read model may lag) or waiting for its server
	for range 10 {
		id, changed, err := h.provisionNext(ctx, seen)
		switch {
		case errors.Is(err, ErrWorkWaits):
			waits = err
		case err != nil || id == "":
			return handled, cmp.Or(err, waits)
		}
		seen = append(seen, string(id))
		if changed {
			handled++
		}
	}
	return handled, waits
}

// provisionNext provisions the oldest waiting database not in seen whose tenant has no
// provisioning under way; id is "" when none waits.
func (h *Databases) provisionNext(ctx context.Context, seen []any) (id domain.DatabaseID, changed bool, err error) {
	query := `SELECT d.database_id, d.tenant_id FROM database_list d WHERE d.state = 'provisioning'
		AND NOT EXISTS (SELECT 1 FROM work_leases l WHERE l.lease_key = CONCAT('provision:', d.tenant_id) AND l.expires_at > ?)`
	if len(seen) > 0 {
		query += ` AND d.database_id NOT IN (` + sqlparams.List(len(seen)) + `)`
	}
	candidates, err := h.waiting(ctx, query+` ORDER BY d.created_at LIMIT 10`, append([]any{h.now().UTC()}, seen...)...)
	if err != nil {
		return "", false, fmt.Errorf("databases to provision: %w", err)
	}
	for _, c := range candidates {
		lease, err := takeLease(ctx, h.queue, h.now, provisioningLeaseKey(c.tenant), string(c.id), h.Instance)
		if err != nil || lease == nil { // lease == nil: another worker took this tenant meanwhile
			if err != nil {
				return "", false, err
			}
			continue
		}
		changed, err = h.provisionLeased(ctx, lease, c.id)
		if releaseErr := lease.release(ctx); releaseErr != nil {
			h.log.Warn("provisioning lease not released; it expires", "database_id", c.id, "err", releaseErr)
		}
		if err != nil && !errors.Is(err, ErrWorkWaits) {
			return c.id, false, fmt.Errorf("provision %s: %w", c.id, err)
		}
		return c.id, changed, err
	}
	return "", false, nil
}

type waitingDatabase struct {
	id     domain.DatabaseID
	tenant domain.TenantID
}

func (h *Databases) waiting(ctx context.Context, query string, args ...any) ([]waitingDatabase, error) {
	ctx, cancel := context.WithTimeout(ctx, reactorCallTimeout)
	defer cancel()
	rows, err := h.queue.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []waitingDatabase
	for rows.Next() {
		var w waitingDatabase
		if err := rows.Scan(&w.id, &w.tenant); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// provisionLeased provisions database id while keeping lease; the work stops when the lease is
// lost, and its outcome is then left to the worker that took it over.
func (h *Databases) provisionLeased(ctx context.Context, lease *workLease, id domain.DatabaseID) (bool, error) {
	work, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := lease.keep(work, h.log, func() { cancel(errLeaseLost) })
	defer stop()
	return h.provision(work, id)
}

// provision creates one database on its server and records the outcome; changed is false when
// there was nothing to do (the read model lags), and err ErrWorkWaits when the server does not
// answer (the database waits for it until provisioningDeadline).
func (h *Databases) provision(ctx context.Context, id domain.DatabaseID) (changed bool, err error) {
	database, tenant, err := h.loadForProvisioning(ctx, id)
	if err != nil || database.State() != domain.StateProvisioning { // else the read model lags behind the database's stream
		return false, err
	}
	req := database.Requested()
	started := time.Now()
	err = h.createOnServer(ctx, req, tenant)
	if cause := context.Cause(ctx); cause != nil {
		// Shutting down, or the lease was lost: nothing is recorded, the next worker starts again.
		return false, fmt.Errorf("stopped before its outcome was recorded (%w); provisioning resumes later", cause)
	}
	record, cancel := context.WithTimeout(ctx, reactorCallTimeout)
	defer cancel()
	switch {
	case err == nil:
		if err := database.Provisioned(h.now()); err != nil {
			return false, err
		}
		h.log.Info("database provisioned", "database_id", id, "server", req.Server, "template", req.Template, "took_ms", time.Since(started).Milliseconds())
		// The version loaded above fences the append: if this worker's lease was taken over, one
		// outcome only is recorded.
		_, err := h.events.Append(record, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "database", database)},
			Metadata: eventstore.Metadata{TenantID: string(req.TenantID), UserAgent: "clouddb provisioning"}})
		return true, err
	case errors.Is(err, domain.ErrUnavailable) && h.now().Sub(req.At) < provisioningDeadline:
		h.log.Warn("sandbox server unavailable, provisioning waits", "database_id", id, "server", req.Server, "err", err)
		return false, ErrWorkWaits
	}
	h.log.Error("provisioning failed; the quota is released", "database_id", id, "server", req.Server, "err", err)
	return true, h.failProvisioning(record, database, err)
}

func (h *Databases) loadForProvisioning(ctx context.Context, id domain.DatabaseID) (*domain.Database, *domain.Tenant, error) {
	ctx, cancel := context.WithTimeout(ctx, reactorCallTimeout)
	defer cancel()
	database, err := h.load(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	tenant, err := load(ctx, h.events, database.TenantID().Stream(), domain.RebuildTenant)
	return database, tenant, err
}

// createOnServer makes the database on its server: the platform's steps under
// provisioningStepsTimeout, then the schema template, if any, as the tenant's own SQL.
func (h *Databases) createOnServer(ctx context.Context, req domain.DatabaseRequested, tenant *domain.Tenant) error {
	server, err := h.fleet.Get(req.Server)
	if err != nil {
		return err
	}
	steps, cancel := context.WithTimeout(ctx, provisioningStepsTimeout)
	defer cancel()
	connections, err := h.accountConnections(steps, tenant, req.OwnerID)
	if err != nil {
		return err
	}
	rw, ro, err := server.Provision(steps, sandbox.Spec{ID: string(req.DatabaseID), Charset: req.Charset, Collation: req.Collation,
		MaxUserConnections: connections,
		Grants:             sandbox.Grants{NoRoutines: !tenant.Settings().AllowProcedures}})
	if err != nil {
		return err
	}
	if err := h.putReadWritePassword(steps, req.DatabaseID, 0, rw); err != nil {
		return err
	}
	if err := h.secrets.Put(steps, roSecret(req.DatabaseID), []byte(ro)); err != nil {
		return err
	}
	switch req.Template {
	case domain.TemplateSample:
		return server.LoadSample(steps, string(req.DatabaseID))
	case domain.TemplateSchema:
		template, cancel := context.WithTimeoutCause(ctx, maxTemplateRun, errTemplateTooLong)
		defer cancel()
		timeout := time.Duration(tenant.Settings().QueryTimeoutS) * time.Second
		err := server.RunAsOwner(template, string(req.DatabaseID), rw, req.SchemaSQL, timeout, h.templateWithinStorage(server, req, tenant))
		if err != nil && ctx.Err() == nil && errors.Is(context.Cause(template), errTemplateTooLong) {
			return fmt.Errorf("%w: %w", errTemplateTooLong, err)
		}
		return err
	}
	return nil
}

// templateWithinStorage is the storage wall of the query API's writes, for a schema template: it
// stops the template after the statement that takes the tenant past its plan's storage, instead of
// at the sampler's next round. The sizes are the server's statistics, which lag a little behind
// the writes. (The plan's other write limit, the rows one UPDATE or DELETE may touch, is an
// estimate from the tables' statistics, which a template's new tables do not have.)
func (h *Databases) templateWithinStorage(server *sandbox.Sandbox, req domain.DatabaseRequested, tenant *domain.Tenant) func(context.Context) error {
	limit := tenant.Limits().MaxStorageBytes
	return func(ctx context.Context) error {
		if limit <= 0 {
			return nil
		}
		_, used, err := h.usage.DatabaseUsage(ctx, req.TenantID)
		if err != nil {
			return err
		}
		sizes, err := server.StorageBytes(ctx, []string{string(req.DatabaseID)})
		if err != nil {
			return err
		}
		if total := used + sizes[string(req.DatabaseID)]; total > limit {
			return &domain.QuotaExceededError{Resource: "storage", Used: total, Limit: limit}
		}
		return nil
	}
}

// failProvisioning undoes what was made on the server, records the failure and gives back the
// quota and the name, in one append.
func (h *Databases) failProvisioning(ctx context.Context, database *domain.Database, cause error) error {
	req := database.Requested()
	if server, err := h.fleet.Get(req.Server); err == nil {
		if err := server.Drop(ctx, string(req.DatabaseID)); err != nil {
			h.log.Warn("could not drop what a failed provisioning made; the purge of a deleted database drops it", "database_id", req.DatabaseID, "err", err)
		}
	}
	return retry(ctx, func() error {
		database, err := h.load(ctx, req.DatabaseID)
		if err != nil {
			return err
		}
		quota, err := load(ctx, h.events, req.TenantID.QuotaStream(), domain.RebuildQuota)
		if err != nil {
			return err
		}
		if err := database.ProvisioningFailed(failureReason(cause), h.now()); err != nil {
			return err
		}
		quota.ReleaseDatabase(req.DatabaseID)
		_, err = h.events.Append(ctx, eventstore.Append{
			Streams:  []eventstore.Stream{stream(req.DatabaseID.Stream(), "database", database), stream(req.TenantID.QuotaStream(), "quota", quota)},
			Releases: []eventstore.Claim{{Key: domain.DatabaseNameClaim(req.TenantID, req.Name), StreamID: req.DatabaseID.Stream()}},
			Metadata: eventstore.Metadata{TenantID: string(req.TenantID), UserAgent: "clouddb provisioning"},
		})
		return err
	})
}

// failureReason is what the database's users are told of a failed provisioning; the details
// (server address, driver errors) go to the log only.
func failureReason(err error) string {
	var invalid *domain.ValidationError
	switch {
	case errors.As(err, &invalid):
		return invalid.Error()
	case errors.Is(err, errTemplateTooLong):
		return fmt.Sprintf("schema_sql ran longer than %s in all and was stopped; nothing was kept", maxTemplateRun)
	case errors.Is(err, domain.ErrUnavailable):
		return "the database server did not answer in time; nothing was kept"
	}
	var statement *sandbox.StatementError
	var refused *mysql.MySQLError
	var quota *domain.QuotaExceededError
	if errors.As(err, &statement) && sandbox.TimedOut(err) {
		return fmt.Sprintf("schema_sql statement %d ran longer than the tenant's statement timeout and was stopped; nothing was kept", statement.Index)
	}
	if errors.As(err, &statement) && errors.As(err, &quota) {
		return fmt.Sprintf("schema_sql statement %d took the tenant's storage to %d bytes, past its plan's %d; nothing was kept", statement.Index, quota.Used, quota.Limit)
	}
	if errors.As(err, &statement) && errors.As(err, &refused) {
		return fmt.Sprintf("schema_sql statement %d failed: %s (MySQL error %d); nothing was kept", statement.Index, refused.Message, refused.Number)
	}
	return "the database server could not create the database; nothing was kept"
}

// RunProvisioning provisions requested databases with a pool of workers (at least one) until ctx
// ends, each looking again when wake fires or every poll.
func (h *Databases) RunProvisioning(ctx context.Context, workers int, wake func() <-chan struct{}, poll time.Duration) {
	var pool sync.WaitGroup
	for range max(workers, 1) {
		pool.Go(func() { runRounds(ctx, h.log, "provisioning round", h.ProvisionDue, wake, poll) })
	}
	pool.Wait()
}
