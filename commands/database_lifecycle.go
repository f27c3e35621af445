package commands

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// Each lifecycle change acts on the sandbox server first and records the fact after: the server
// actions are idempotent, so a lost race or a crash in between is repaired by doing it again.

// change loads a database of the tenant, lets decide record what to do, runs act on its server
// when decide recorded something, and appends the recorded events with extra streams and claims.
// When act changed the server but its change was not recorded in the end (an error, or a retry
// after a lost race found nothing left to do), the accounts' lock is set to what the stream says.
func (h *Databases) change(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata,
	decide func(d *domain.Database) (extra []eventstore.Stream, claims, releases []eventstore.Claim, err error),
	act func(server *sandbox.Sandbox, d *domain.Database) error) (*domain.Database, error) {
	return h.changeAndRepair(ctx, tenant, id, meta, decide, act, h.reconcile)
}

// changeAndRepair is change with repair, which sets the server to what the database's stream says
// after act changed it without the change being recorded.
func (h *Databases) changeAndRepair(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata,
	decide func(d *domain.Database) (extra []eventstore.Stream, claims, releases []eventstore.Claim, err error),
	act func(server *sandbox.Sandbox, d *domain.Database) error,
	repair func(ctx context.Context, server *sandbox.Sandbox, id domain.DatabaseID)) (*domain.Database, error) {
	var database *domain.Database
	var acted *sandbox.Sandbox // set once act changed the server
	recorded := false          // whether the last attempt appended what it decided
	err := retry(ctx, func() error {
		recorded = false
		d, err := h.Database(ctx, tenant, id)
		if err != nil {
			return err
		}
		database = d
		extra, claims, releases, err := decide(d)
		if err != nil || len(d.PendingEvents()) == 0 {
			return err
		}
		server, err := h.fleet.Get(d.Requested().Server)
		if err != nil {
			return err
		}
		if act != nil {
			if err := act(server, d); err != nil {
				return err
			}
			acted = server
			if h.accountsChanged != nil {
				h.accountsChanged(id)
			}
		}
		err = h.append(ctx, eventstore.Append{
			Streams: append([]eventstore.Stream{stream(id.Stream(), "database", d)}, extra...),
			Claims:  claims, Releases: releases, Metadata: meta,
		})
		var taken *eventstore.ClaimTakenError
		if errors.As(err, &taken) {
			return fmt.Errorf("database name %q is used by another database now: %w", d.Name(), domain.ErrNameTaken)
		}
		recorded = err == nil
		return err
	})
	if acted != nil && !recorded {
		repair(ctx, acted, id)
	}
	if acted != nil && h.accountsChanged != nil { // again: the read models show the change now
		h.accountsChanged(id)
	}
	return database, err
}

// reconcile sets the accounts' lock to what the database's stream says, after a change acted on
// the server but was not recorded (it lost a race, say): a stop that lost to a start must not leave
// the accounts locked, a start that lost to a delete must not leave them open.
func (h *Databases) reconcile(ctx context.Context, server *sandbox.Sandbox, id domain.DatabaseID) {
	ctx = context.WithoutCancel(ctx)
	d, err := h.load(ctx, id)
	if err == nil {
		if d.State() == domain.StateRunning {
			err = server.Unlock(ctx, string(id))
		} else {
			err = ignoreMissing(server.Lock(ctx, string(id)))
		}
	}
	if err != nil {
		h.log.Error("could not set the accounts' lock after an unrecorded change", "database_id", id, "err", err)
	}
}

// reconcileWrites sets the read-write account's privileges to what the database's stream says,
// after a restriction or restoration of its writes acted on the server but was not recorded.
func (h *Databases) reconcileWrites(ctx context.Context, server *sandbox.Sandbox, id domain.DatabaseID) {
	ctx = context.WithoutCancel(ctx)
	d, err := h.load(ctx, id)
	if err == nil {
		switch d.State() {
		case domain.StateRunning, domain.StateStopped, domain.StateDeleted: // the accounts exist
			err = ignoreMissing(server.RestrictWrites(ctx, string(id), d.WritesRestricted()))
		}
	}
	if err != nil {
		h.log.Error("could not set the writes' restriction after an unrecorded change", "database_id", id, "err", err)
	}
}

// ignoreMissing treats accounts that do not exist (a database whose provisioning failed) as locked.
func ignoreMissing(err error) error {
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	return err
}

func nameClaim(d *domain.Database) eventstore.Claim {
	return eventstore.Claim{Key: domain.DatabaseNameClaim(d.TenantID(), d.Name()), StreamID: d.ID().Stream()}
}

// Stop locks the database's accounts and ends their connections ("manual", or "idle" from the
// auto-stop reactor). Stopping a stopped database changes nothing.
func (h *Databases) Stop(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, reason string, meta eventstore.Metadata) (*domain.Database, error) {
	return h.change(ctx, tenant, id, meta, func(d *domain.Database) ([]eventstore.Stream, []eventstore.Claim, []eventstore.Claim, error) {
		return nil, nil, nil, d.Stop(reason, h.now())
	}, func(server *sandbox.Sandbox, d *domain.Database) error {
		return server.Lock(ctx, string(d.ID()))
	})
}

// Start unlocks a stopped database's accounts.
func (h *Databases) Start(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata) (*domain.Database, error) {
	return h.change(ctx, tenant, id, meta, func(d *domain.Database) ([]eventstore.Stream, []eventstore.Claim, []eventstore.Claim, error) {
		return nil, nil, nil, d.Start(h.now())
	}, func(server *sandbox.Sandbox, d *domain.Database) error {
		return server.Unlock(ctx, string(d.ID()))
	})
}

// Delete soft-deletes a database: its accounts are locked and its schema kept for the recovery
// window, while its quota and name are freed at once. confirmName must be its name.
func (h *Databases) Delete(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, confirmName string, window time.Duration, meta eventstore.Metadata) (*domain.Database, error) {
	return h.change(ctx, tenant, id, meta, func(d *domain.Database) ([]eventstore.Stream, []eventstore.Claim, []eventstore.Claim, error) {
		if err := d.Delete(confirmName, window, h.now()); err != nil {
			return nil, nil, nil, err
		}
		quota, err := load(ctx, h.events, tenant.QuotaStream(), domain.RebuildQuota)
		if err != nil {
			return nil, nil, nil, err
		}
		quota.ReleaseDatabase(id)
		return []eventstore.Stream{stream(tenant.QuotaStream(), "quota", quota)}, nil, []eventstore.Claim{nameClaim(d)}, nil
	}, func(server *sandbox.Sandbox, d *domain.Database) error {
		return ignoreMissing(server.Lock(ctx, string(d.ID())))
	})
}

// Restore brings a deleted database back within its window, as it was before (running, stopped
// or failed), counting it against the quota again and taking its name back. Returns
// domain.ErrNameTaken when another database took the name meanwhile, domain.ErrExpired after the
// window, or a *domain.QuotaExceededError.
func (h *Databases) Restore(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata) (*domain.Database, error) {
	return h.change(ctx, tenant, id, meta, func(d *domain.Database) ([]eventstore.Stream, []eventstore.Claim, []eventstore.Claim, error) {
		if err := d.Restore(h.now()); err != nil {
			return nil, nil, nil, err
		}
		if d.State() == domain.StateFailed {
			return nil, []eventstore.Claim{nameClaim(d)}, nil, nil // a failed database counts against no quota
		}
		t, err := load(ctx, h.events, tenant.Stream(), domain.RebuildTenant)
		if err != nil {
			return nil, nil, nil, err
		}
		quota, err := load(ctx, h.events, tenant.QuotaStream(), domain.RebuildQuota)
		if err != nil {
			return nil, nil, nil, err
		}
		if err := quota.ReserveDatabase(id, d.Owner(), t.Limits()); err != nil {
			return nil, nil, nil, err
		}
		return []eventstore.Stream{stream(tenant.QuotaStream(), "quota", quota)}, []eventstore.Claim{nameClaim(d)}, nil, nil
	}, func(server *sandbox.Sandbox, d *domain.Database) error {
		if d.State() == domain.StateRunning {
			return server.Unlock(ctx, string(d.ID()))
		}
		return nil
	})
}

// RotateCredentials gives the read-write account a new password (ending its connections) and
// returns the new connection details.
func (h *Databases) RotateCredentials(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata) (*domain.Database, error) {
	return h.change(ctx, tenant, id, meta, func(d *domain.Database) ([]eventstore.Stream, []eventstore.Claim, []eventstore.Claim, error) {
		return nil, nil, nil, d.RotateCredentials(h.now())
	}, func(server *sandbox.Sandbox, d *domain.Database) error {
		password, err := server.RotatePassword(ctx, string(d.ID()))
		if err != nil {
			return err
		}
		return h.secrets.Put(ctx, rwSecret(d.ID()), []byte(password))
	})
}

// ChangeOwner gives a database to another member of the tenant (which moves it between their
// sub-quota counts). Returns domain.ErrNotFound for a user who is not a member.
func (h *Databases) ChangeOwner(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, to domain.UserID, meta eventstore.Metadata) (*domain.Database, error) {
	return h.change(ctx, tenant, id, meta, func(d *domain.Database) ([]eventstore.Stream, []eventstore.Claim, []eventstore.Claim, error) {
		t, err := load(ctx, h.events, tenant.Stream(), domain.RebuildTenant)
		if err != nil {
			return nil, nil, nil, err
		}
		if t.Role(to) == "" {
			return nil, nil, nil, fmt.Errorf("user %s is not a member: %w", to, domain.ErrNotFound)
		}
		if err := d.ChangeOwner(to); err != nil {
			return nil, nil, nil, err
		}
		quota, err := load(ctx, h.events, tenant.QuotaStream(), domain.RebuildQuota)
		if err != nil {
			return nil, nil, nil, err
		}
		quota.ChangeOwner(id, to)
		return []eventstore.Stream{stream(tenant.QuotaStream(), "quota", quota)}, nil, nil, nil
	}, nil)
}

// Schema lists the database's tables, views, columns and indexes, read from its server.
func (h *Databases) Schema(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID) ([]sandbox.Table, error) {
	d, err := h.Database(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if d.State() != domain.StateRunning && d.State() != domain.StateStopped {
		return nil, fmt.Errorf("database %s is %s: %w", id, d.State(), domain.ErrConflict)
	}
	server, err := h.fleet.Get(d.Requested().Server)
	if err != nil {
		return nil, err
	}
	return server.Schema(ctx, string(id))
}

// RunPurge purges databases past their recovery window every interval until ctx ends.
func (h *Databases) RunPurge(ctx context.Context, interval time.Duration) {
	runRounds(ctx, h.log, "purge round", h.PurgeDue, nil, interval)
}

// PurgeDue drops the schema and accounts of deleted databases whose recovery window has passed,
// up to a batch, and returns how many it purged.
func (h *Databases) PurgeDue(ctx context.Context) (int, error) {
	tx, due, err := claimDue(ctx, h.db, `SELECT database_id FROM database_list WHERE state = 'deleted'
		AND recoverable_until <= ? ORDER BY recoverable_until LIMIT 20 FOR UPDATE SKIP LOCKED`, h.now().UTC())
	if err != nil {
		return 0, fmt.Errorf("databases to purge: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	purged := 0
	for _, raw := range due {
		id := domain.DatabaseID(raw)
		d, err := h.load(ctx, id)
		if err != nil {
			return purged, err
		}
		if err := d.Purge(h.now()); err != nil {
			continue // restored, or purged already: the read model lags behind
		}
		server, err := h.fleet.Get(d.Requested().Server)
		if err == nil {
			err = server.Drop(ctx, string(id))
		}
		if err != nil {
			h.log.Warn("purge waits for the sandbox server", "database_id", id, "server", d.Requested().Server, "err", err)
			continue
		}
		// No waiting for the read model: this transaction holds the row it would update.
		if _, err := h.events.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "database", d)}}); err != nil {
			return purged, err
		}
		for _, secret := range []string{rwSecret(id), roSecret(id)} {
			if err := h.secrets.Erase(ctx, secret); err != nil {
				return purged, err
			}
		}
		h.log.Info("database purged", "database_id", id, "server", d.Requested().Server)
		purged++
	}
	return purged, tx.Commit()
}

// StopIdle stops running databases that nobody used for their tenant's auto_stop_minutes
// (counted from the later of the last query and the moment they became usable), recording the
// reason "idle". It returns how many it stopped.
func (h *Databases) StopIdle(ctx context.Context) (int, error) {
	rows, err := h.db.QueryContext(ctx, `SELECT d.tenant_id, d.database_id FROM database_list d JOIN tenants t ON t.tenant_id = d.tenant_id
		WHERE d.state = 'running'
		AND GREATEST(COALESCE(d.last_used_at, d.idle_since), COALESCE(d.idle_since, d.created_at))
			+ INTERVAL CAST(JSON_VALUE(t.settings, '$.auto_stop_minutes') AS INTEGER) MINUTE < ?
		LIMIT 100`, h.now().UTC())
	if err != nil {
		return 0, fmt.Errorf("idle databases: %w", err)
	}
	type idle struct {
		tenant domain.TenantID
		id     domain.DatabaseID
	}
	var due []idle
	for rows.Next() {
		var d idle
		if err := rows.Scan(&d.tenant, &d.id); err != nil {
			rows.Close()
			return 0, err
		}
		due = append(due, d)
	}
	rows.Close()
	stopped := 0
	for _, d := range due {
		if _, err := h.Stop(ctx, d.tenant, d.id, "idle", eventstore.Metadata{UserAgent: "clouddb auto-stop"}); err != nil {
			h.log.Warn("auto-stop failed, retrying later", "database_id", d.id, "err", err)
			continue
		}
		h.log.Info("database stopped after idling", "database_id", d.id)
		stopped++
	}
	return stopped, rows.Err()
}

// SampleStorage measures the schemas of every database that has one, server by server, and records
// the sizes that changed. It returns how many changed; the databases read model shows them when it
// returns.
func (h *Databases) SampleStorage(ctx context.Context) (int, error) {
	return h.sampleStorage(ctx, nil)
}

// sampleStorage measures the databases in ids (all when nil).
func (h *Databases) sampleStorage(ctx context.Context, ids []domain.DatabaseID) (int, error) {
	query := `SELECT server, database_id, storage_bytes FROM database_list WHERE state IN ('running', 'stopped', 'deleted')`
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	if ids != nil {
		if len(ids) == 0 {
			return 0, nil
		}
		query += ` AND database_id IN (?` + strings.Repeat(`, ?`, len(ids)-1) + `)`
	}
	rows, err := h.db.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("databases to measure: %w", err)
	}
	byServer := map[string][]string{}
	known := map[string]int64{}
	for rows.Next() {
		var server, id string
		var bytes int64
		if err := rows.Scan(&server, &id, &bytes); err != nil {
			rows.Close()
			return 0, err
		}
		byServer[server] = append(byServer[server], id)
		known[id] = bytes
	}
	rows.Close()
	changed := 0
	var last int64 // position of the last measurement recorded
	for name, ids := range byServer {
		server, err := h.fleet.Get(name)
		if err != nil {
			continue
		}
		sizes, err := server.StorageBytes(ctx, ids)
		if err != nil {
			h.log.Warn("storage sampling skipped a server", "server", name, "err", err)
			continue
		}
		for id, bytes := range sizes {
			if bytes == known[id] {
				continue
			}
			position, err := h.recordStorage(ctx, domain.DatabaseID(id), bytes)
			if err != nil {
				return changed, err
			}
			last = max(last, position)
			changed++
		}
	}
	if last > 0 { // the storage quota is enforced from the read model
		return changed, h.readModels.WaitFor(ctx, last, "databases")
	}
	return changed, nil
}

// recordStorage records a database's new size and returns the position of the event (0 when the
// size was recorded already).
func (h *Databases) recordStorage(ctx context.Context, id domain.DatabaseID, bytes int64) (int64, error) {
	var position int64
	err := retry(ctx, func() error {
		d, err := h.load(ctx, id)
		if err != nil {
			return err
		}
		if d.MeasureStorage(bytes, h.now()); len(d.PendingEvents()) == 0 {
			return nil
		}
		res, err := h.events.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "database", d)},
			Metadata: eventstore.Metadata{UserAgent: "clouddb storage sampler"}})
		position = res.LastPosition
		return err
	})
	return position, err
}

// EnforceStorage puts up the storage wall behind the query API's quota check: for each tenant
// whose storage (as DatabaseUsage counts it, from the read model) is at or over its plan's
// MaxStorageBytes, it restricts the writes of its databases that are running or stopped (their
// read-write account keeps reading, DELETE, DROP and TRUNCATE: see sandbox.Sandbox.RestrictWrites),
// and for each tenant under its limit it restores the writes it restricted. Each change acts on the
// server first and records database.writes_restricted.v1 or database.writes_restored.v1 after,
// as the other lifecycle changes do. It returns how many databases changed; a database whose
// server does not answer is left for the next round.
func (h *Databases) EnforceStorage(ctx context.Context) (int, error) {
	return h.enforceStorage(ctx, nil)
}

// enforceStorage enforces the storage quota of the tenants of the databases in ids (all when nil).
func (h *Databases) enforceStorage(ctx context.Context, ids []domain.DatabaseID) (int, error) {
	if ids != nil && len(ids) == 0 {
		return 0, nil
	}
	limitOfPlan := `CASE t.plan` // NULL for a plan that no longer exists: no limit
	var args []any
	for _, p := range domain.Plans {
		limitOfPlan += ` WHEN ? THEN ?`
		args = append(args, p.ID, p.Limits.MaxStorageBytes)
	}
	limitOfPlan += ` END`
	scope := ``
	if ids != nil {
		scope = ` WHERE x.tenant_id IN (SELECT tenant_id FROM database_list WHERE database_id IN (?` + strings.Repeat(`, ?`, len(ids)-1) + `))`
		for _, id := range ids {
			args = append(args, id)
		}
	}
	// The databases whose restriction differs from what their tenant's usage asks for.
	rows, err := h.db.QueryContext(ctx, `SELECT d.tenant_id, d.database_id, u.used, u.storage_limit
		FROM database_list d JOIN (
			SELECT x.tenant_id, SUM(IF(x.state IN ('running', 'stopped', 'deleted'), x.storage_bytes, 0)) AS used,
				`+limitOfPlan+` AS storage_limit
			FROM database_list x JOIN tenants t ON t.tenant_id = x.tenant_id`+scope+`
			GROUP BY x.tenant_id, t.plan) u ON u.tenant_id = d.tenant_id
		WHERE d.state IN ('running', 'stopped')
		AND d.writes_restricted <> COALESCE(u.storage_limit > 0 AND u.used >= u.storage_limit, FALSE)
		ORDER BY d.tenant_id, d.database_id`, args...)
	if err != nil {
		return 0, fmt.Errorf("databases over or back under their storage quota: %w", err)
	}
	type due struct {
		tenant      domain.TenantID
		id          domain.DatabaseID
		used, limit int64
	}
	var dues []due
	for rows.Next() {
		var d due
		var limit sql.NullInt64
		if err := rows.Scan(&d.tenant, &d.id, &d.used, &limit); err != nil {
			rows.Close()
			return 0, err
		}
		d.limit = limit.Int64
		dues = append(dues, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	changed := 0
	for _, d := range dues {
		restrict := d.limit > 0 && d.used >= d.limit
		recorded := false
		_, err := h.changeAndRepair(ctx, d.tenant, d.id, eventstore.Metadata{TenantID: string(d.tenant), UserAgent: "clouddb storage quota"},
			func(db *domain.Database) ([]eventstore.Stream, []eventstore.Claim, []eventstore.Claim, error) {
				if restrict {
					db.RestrictWrites(d.used, d.limit, h.now())
				} else {
					db.RestoreWrites(h.now())
				}
				recorded = len(db.PendingEvents()) > 0
				return nil, nil, nil, nil
			}, func(server *sandbox.Sandbox, db *domain.Database) error {
				return server.RestrictWrites(ctx, string(db.ID()), restrict)
			}, h.reconcileWrites)
		if err != nil {
			h.log.Warn("storage quota: changing the writes' restriction failed, retrying later", "database_id", d.id, "restrict", restrict, "err", err)
			continue
		}
		if recorded {
			changed++
			if restrict {
				h.log.Info("database writes restricted: the tenant is over its storage quota", "database_id", d.id, "tenant_id", d.tenant, "used", d.used, "limit", d.limit)
			} else {
				h.log.Info("database writes restored: the tenant is under its storage quota", "database_id", d.id, "tenant_id", d.tenant, "used", d.used, "limit", d.limit)
			}
		}
	}
	return changed, nil
}

// MeasureSoon asks for database id's storage to be measured within a few seconds: a statement
// may have changed it. The query engine calls it after writes.
func (h *Databases) MeasureSoon(id domain.DatabaseID) {
	h.written.Lock()
	defer h.written.Unlock()
	if h.written.ids == nil {
		h.written.ids = map[domain.DatabaseID]bool{}
	}
	h.written.ids[id] = true
}

// RunWriteSampling measures the databases written to since its last round, every interval.
func (h *Databases) RunWriteSampling(ctx context.Context, interval time.Duration) {
	runRounds(ctx, h.log, "storage sampling after writes", func(ctx context.Context) (int, error) {
		h.written.Lock()
		ids := make([]domain.DatabaseID, 0, len(h.written.ids))
		for id := range h.written.ids {
			ids = append(ids, id)
		}
		h.written.ids = nil
		h.written.Unlock()
		changed, err := h.sampleStorage(ctx, ids)
		if err != nil || changed == 0 {
			return 0, err
		}
		// The wall follows the writes: their tenants' storage quota is enforced at once.
		_, err = h.enforceStorage(ctx, ids)
		return 0, err
	}, nil, interval)
}

// RunHousekeeping reconnects sandbox servers that are down, samples storage, enforces the storage
// quotas and stops idle databases every interval until ctx ends.
func (h *Databases) RunHousekeeping(ctx context.Context, interval time.Duration) {
	runRounds(ctx, h.log, "housekeeping", func(ctx context.Context) (int, error) {
		reconnectErr := h.fleet.Reconnect(ctx)
		_, sampleErr := h.SampleStorage(ctx)
		_, enforceErr := h.EnforceStorage(ctx)
		_, stopErr := h.StopIdle(ctx)
		return 0, errors.Join(reconnectErr, sampleErr, enforceErr, stopErr)
	}, nil, interval)
}
