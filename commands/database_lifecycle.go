package commands

import (
	"context"
	"errors"
	"fmt"
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
