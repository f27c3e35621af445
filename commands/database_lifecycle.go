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

// Each lifecycle change records its intent first and then converges the database's server on
// what the log says (reactor_reconcile.go): a crash or an error between the two leaves a state the
// reconciler repairs to match the log, never a server that is ahead of it.

// change loads a database of the tenant, lets decide record what to do, appends the recorded
// events with extra streams and claims, and converges the database's server on its stream — also
// when decide recorded nothing, so that repeating a change repairs a server that drifted. A
// convergence that fails is left to the reconciler (converged soon after); the change stands.
func (h *Databases) change(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata,
	decide func(d *domain.Database) (extra []eventstore.Stream, claims, releases []eventstore.Claim, err error)) (*domain.Database, error) {
	database, err := h.record(ctx, tenant, id, meta, decide)
	if err != nil {
		return database, err
	}
	if _, err := h.Converge(ctx, id); err != nil {
		h.log.Warn("the change is recorded but its server was not converged; the reconciler retries", "database_id", id, "err", err)
		h.convergeSoon(id)
	}
	return database, nil
}

// record is change without the convergence.
func (h *Databases) record(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata,
	decide func(d *domain.Database) (extra []eventstore.Stream, claims, releases []eventstore.Claim, err error)) (*domain.Database, error) {
	var database *domain.Database
	err := retry(ctx, func() error {
		d, err := h.Database(ctx, tenant, id)
		if err != nil {
			return err
		}
		database = d
		extra, claims, releases, err := decide(d)
		if err != nil || len(d.PendingEvents()) == 0 {
			return err
		}
		err = h.append(ctx, eventstore.Append{
			Streams: append([]eventstore.Stream{stream(id.Stream(), "database", d)}, extra...),
			Claims:  claims, Releases: releases, Metadata: meta,
		})
		var taken *eventstore.ClaimTakenError
		if errors.As(err, &taken) {
			return fmt.Errorf("database name %q is used by another database now: %w", d.Name(), domain.ErrNameTaken)
		}
		if err == nil && h.accountsChanged != nil { // the query side forgets what it knew of the database
			h.accountsChanged(id)
		}
		return err
	})
	return database, err
}

func nameClaim(d *domain.Database) eventstore.Claim {
	return eventstore.Claim{Key: domain.DatabaseNameClaim(d.TenantID(), d.Name()), StreamID: d.ID().Stream()}
}

// Stop locks the database's accounts and ends their connections ("manual", or "idle" from the
// auto-stop reactor). Stopping a stopped database changes nothing.
func (h *Databases) Stop(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, reason string, meta eventstore.Metadata) (*domain.Database, error) {
	return h.change(ctx, tenant, id, meta, func(d *domain.Database) ([]eventstore.Stream, []eventstore.Claim, []eventstore.Claim, error) {
		return nil, nil, nil, d.Stop(reason, h.now())
	})
}

// Start unlocks a stopped database's accounts.
func (h *Databases) Start(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata) (*domain.Database, error) {
	return h.change(ctx, tenant, id, meta, func(d *domain.Database) ([]eventstore.Stream, []eventstore.Claim, []eventstore.Claim, error) {
		return nil, nil, nil, d.Start(h.now())
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
	})
}

// RotateCredentials gives the read-write account a new password (ending its connections) and
// returns the new connection details' database. Only who may see the read-write credentials may
// ask (domain.MaySeeReadWrite: its owner, a tenant admin; role is the actor's effective role), else
// domain.ErrForbidden. The rotation is recorded first; the new password is set by the convergence,
// whose error is returned, since the caller needs a password that works.
func (h *Databases) RotateCredentials(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, actor domain.UserID, role domain.Role, meta eventstore.Metadata) (*domain.Database, error) {
	d, err := h.record(ctx, tenant, id, meta, func(d *domain.Database) ([]eventstore.Stream, []eventstore.Claim, []eventstore.Claim, error) {
		if !domain.MaySeeReadWrite(role, d.Owner() == actor) {
			return nil, nil, nil, domain.ErrReadWriteHidden
		}
		return nil, nil, nil, d.RotateCredentials(domain.CredentialsManual, h.now())
	})
	if err != nil {
		return d, err
	}
	if _, err := h.Converge(ctx, id); err != nil {
		h.convergeSoon(id)
		return d, err
	}
	return d, nil
}

// ChangeOwner gives a database to another member of the tenant (which moves it between their
// sub-quota counts). The previous owner may have its read-write password: unless they are a tenant
// admin, the convergence records a rotation (domain.ReadWriteAccessLost) and sets a new one.
// Returns domain.ErrNotFound for a user who is not a member.
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
	})
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
