package commands

import (
	"context"
	"errors"
	"fmt"
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

// provisioningDeadline is how long a database may wait for an unreachable sandbox server before
// its provisioning is given up.
const provisioningDeadline = 2 * time.Minute

// ProvisionDue provisions the databases waiting in the read model, up to a batch, and returns how
// many it handled. Each is taken in a transaction of its own that locks its row (READ COMMITTED:
// no gap locks, so the read model keeps taking new databases) with SKIP LOCKED, so processes
// share the work without doing any twice at once; provisioning itself is idempotent, so a crash
// at any step is resumed by the next attempt.
func (h *Databases) ProvisionDue(ctx context.Context) (int, error) {
	handled := 0
	var seen []any // taken this round: provisioned (the read model may lag) or waiting for its server
	for range 10 {
		id, changed, err := h.provisionNext(ctx, seen)
		if err != nil || id == "" {
			return handled, err
		}
		seen = append(seen, string(id))
		if changed {
			handled++
		}
	}
	return handled, nil
}

// provisionNext provisions the oldest waiting database not in seen; id is "" when none waits.
func (h *Databases) provisionNext(ctx context.Context, seen []any) (id domain.DatabaseID, changed bool, err error) {
	query := `SELECT database_id FROM database_list WHERE state = 'provisioning'`
	if len(seen) > 0 {
		query += ` AND database_id NOT IN (` + sqlparams.List(len(seen)) + `)`
	}
	tx, ids, err := claimDue(ctx, h.queue, query+` ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED`, seen...)
	if err != nil {
		return "", false, fmt.Errorf("databases to provision: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if len(ids) == 0 {
		return "", false, nil
	}
	id = domain.DatabaseID(ids[0])
	if changed, err = h.provision(ctx, id); err != nil {
		return id, false, fmt.Errorf("provision %s: %w", id, err)
	}
	return id, changed, tx.Commit()
}

// provision creates one database on its server and records the outcome; changed is false when
// there was nothing to do (the read model lags) or the server does not answer (it waits).
func (h *Databases) provision(ctx context.Context, id domain.DatabaseID) (changed bool, err error) {
	database, err := h.load(ctx, id)
	if err != nil {
		return false, err
	}
	if database.State() != domain.StateProvisioning {
		return false, nil // the read model lags behind the database's stream
	}
	req := database.Requested()
	tenant, err := load(ctx, h.events, req.TenantID.Stream(), domain.RebuildTenant)
	if err != nil {
		return false, err
	}
	started := time.Now()
	err = h.createOnServer(ctx, req, tenant)
	switch {
	case err == nil:
		if err := database.Provisioned(h.now()); err != nil {
			return false, err
		}
		h.log.Info("database provisioned", "database_id", id, "server", req.Server, "template", req.Template, "took_ms", time.Since(started).Milliseconds())
		// No waiting for the read model here: this transaction holds the row it would update.
		_, err := h.events.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "database", database)}})
		return true, err
	case errors.Is(err, domain.ErrUnavailable) && h.now().Sub(req.At) < provisioningDeadline:
		h.log.Warn("sandbox server unavailable, provisioning waits", "database_id", id, "server", req.Server, "err", err)
		return false, nil
	}
	h.log.Error("provisioning failed; the quota is released", "database_id", id, "server", req.Server, "err", err)
	return true, h.failProvisioning(ctx, database, err)
}

func (h *Databases) createOnServer(ctx context.Context, req domain.DatabaseRequested, tenant *domain.Tenant) error {
	server, err := h.fleet.Get(req.Server)
	if err != nil {
		return err
	}
	rw, ro, err := server.Provision(ctx, sandbox.Spec{ID: string(req.DatabaseID), Charset: req.Charset, Collation: req.Collation,
		MaxUserConnections: int(min(tenant.Limits().MaxConnections, sandbox.MaxUserConnectionsLimit)),
		Grants:             sandbox.Grants{NoRoutines: !tenant.Settings().AllowProcedures}})
	if err != nil {
		return err
	}
	if err := h.putReadWritePassword(ctx, req.DatabaseID, 0, rw); err != nil {
		return err
	}
	if err := h.secrets.Put(ctx, roSecret(req.DatabaseID), []byte(ro)); err != nil {
		return err
	}
	switch req.Template {
	case domain.TemplateSample:
		return server.LoadSample(ctx, string(req.DatabaseID))
	case domain.TemplateSchema:
		timeout := time.Duration(tenant.Settings().QueryTimeoutS) * time.Second
		return server.RunAsOwner(ctx, string(req.DatabaseID), rw, req.SchemaSQL, timeout)
	}
	return nil
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
	case errors.Is(err, domain.ErrUnavailable):
		return "the database server did not answer in time; nothing was kept"
	}
	var statement *sandbox.StatementError
	var refused *mysql.MySQLError
	if errors.As(err, &statement) && sandbox.TimedOut(err) {
		return fmt.Sprintf("schema_sql statement %d ran longer than the tenant's statement timeout and was stopped; nothing was kept", statement.Index)
	}
	if errors.As(err, &statement) && errors.As(err, &refused) {
		return fmt.Sprintf("schema_sql statement %d failed: %s (MySQL error %d); nothing was kept", statement.Index, refused.Message, refused.Number)
	}
	return "the database server could not create the database; nothing was kept"
}

// RunProvisioning provisions requested databases until ctx ends, looking again when wake fires
// or every poll.
func (h *Databases) RunProvisioning(ctx context.Context, wake func() <-chan struct{}, poll time.Duration) {
	runRounds(ctx, h.log, "provisioning round", h.ProvisionDue, wake, poll)
}
