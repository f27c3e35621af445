package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/secrets"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// The reconciler reacts to any difference between what the log says of a database and what its
// sandbox server has: schema and accounts present or gone, the accounts' lock, the read-write
// account's grants (storage wall, allow_procedures), MAX_USER_CONNECTIONS (the plan) and the
// passwords (the vault's, of the current credentials version). Lifecycle commands record their
// intent first and then converge the database; the reconciler converges every database at start,
// every interval, soon after a lifecycle command could not, and a tenant's databases as soon as its
// plan, settings or members' roles change. Whatever a crash left between record and act is thus
// repaired to match the log. It also records the rotations that domain.ReadWriteAccessLost asks
// for, in the same path.

// convergeTimeout bounds one database's convergence: a few short statements on its server.
const convergeTimeout = 30 * time.Second

// reconcileTypes are the tenant events that change what its databases' accounts should be.
var reconcileTypes = []string{
	domain.TenantPlanChanged{}.EventType(), domain.TenantSettingsChanged{}.EventType(),
	domain.TenantMemberRoleChanged{}.EventType(), domain.TenantMemberAdded{}.EventType(),
	domain.TenantMemberDeactivated{}.EventType(),
}

// reconciler is the reconciler's state in a process.
type reconciler struct {
	repairs *prometheus.CounterVec
	locks   sync.Map // domain.DatabaseID → *sync.Mutex: one convergence of a database at a time

	mu   sync.Mutex
	soon map[domain.DatabaseID]bool // to converge again soon: a lifecycle command's convergence failed
	wake chan struct{}
}

func newReconciler() *reconciler {
	return &reconciler{
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clouddb_rdsb_repairs_total",
			Help: "Differences between the event log and a sandbox server (RDS-B) that the reconciler repaired, by kind.",
		}, []string{"kind"}),
		soon: map[domain.DatabaseID]bool{},
		wake: make(chan struct{}, 1),
	}
}

// RegisterMetrics registers the reconciler's repairs counter.
func (h *Databases) RegisterMetrics(reg prometheus.Registerer) error {
	return reg.Register(h.reconciler.repairs)
}

// convergeSoon asks the reconciler to converge id again shortly.
func (h *Databases) convergeSoon(id domain.DatabaseID) {
	h.reconciler.mu.Lock()
	h.reconciler.soon[id] = true
	h.reconciler.mu.Unlock()
	select {
	case h.reconciler.wake <- struct{}{}:
	default:
	}
}

// databaseHistory is a database's stream merged in log order with its tenant's.
type databaseHistory struct {
	database *domain.Database
	tenant   *domain.Tenant
	merged   []domain.Event
}

func (h *Databases) history(ctx context.Context, id domain.DatabaseID) (databaseHistory, error) {
	dbEnvs, err := h.events.ReadStream(ctx, id.Stream(), 0)
	if err != nil {
		return databaseHistory{}, err
	}
	if len(dbEnvs) == 0 {
		return databaseHistory{}, fmt.Errorf("database %s: %w", id, domain.ErrNotFound)
	}
	dbEvents, err := h.decode(dbEnvs)
	if err != nil {
		return databaseHistory{}, err
	}
	database, err := domain.RebuildDatabase(dbEvents, dbEnvs[len(dbEnvs)-1].StreamVersion)
	if err != nil {
		return databaseHistory{}, err
	}
	tenantEnvs, err := h.events.ReadStream(ctx, database.TenantID().Stream(), 0)
	if err != nil {
		return databaseHistory{}, err
	}
	tenantEvents, err := h.decode(tenantEnvs)
	if err != nil {
		return databaseHistory{}, err
	}
	var version int64
	if len(tenantEnvs) > 0 {
		version = tenantEnvs[len(tenantEnvs)-1].StreamVersion
	}
	tenant, err := domain.RebuildTenant(tenantEvents, version)
	if err != nil {
		return databaseHistory{}, err
	}
	merged := make([]domain.Event, 0, len(dbEvents)+len(tenantEvents))
	for i, j := 0, 0; i < len(dbEnvs) || j < len(tenantEnvs); {
		if j == len(tenantEnvs) || (i < len(dbEnvs) && dbEnvs[i].Position < tenantEnvs[j].Position) {
			merged, i = append(merged, dbEvents[i]), i+1
		} else {
			merged, j = append(merged, tenantEvents[j]), j+1
		}
	}
	return databaseHistory{database: database, tenant: tenant, merged: merged}, nil
}

func (h *Databases) decode(envs []eventstore.Envelope) ([]domain.Event, error) {
	out := make([]domain.Event, len(envs))
	for i, env := range envs {
		var err error
		if out[i], err = h.events.Registry().Decode(env); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Converge makes database id on its server what the log says, and returns the kinds of the repairs
// it made. A database being provisioned, or purged, is left to its reactor. When someone who could
// see the read-write password lost the right since it was set (domain.ReadWriteAccessLost), the
// rotation is recorded first and the new password set with the rest. When the database's stream
// moved while the server was being changed, it converges again on what the stream says now, so a
// convergence never leaves the server as an older state said.
func (h *Databases) Converge(ctx context.Context, id domain.DatabaseID) ([]string, error) {
	lock, _ := h.reconciler.locks.LoadOrStore(id, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), convergeTimeout)
	defer cancel()
	var all []string
	for attempt := 0; attempt < 5; attempt++ {
		hist, err := h.history(ctx, id)
		if err != nil {
			return all, err
		}
		d := hist.database
		if d.State() == domain.StateProvisioning || d.State() == domain.StatePurged {
			return all, nil
		}
		if reason := domain.ReadWriteAccessLost(hist.merged); reason != "" && d.RotateCredentials(reason, h.now()) == nil {
			_, err := h.events.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "database", d)},
				Metadata: eventstore.Metadata{TenantID: string(d.TenantID()), UserAgent: "clouddb reconciler"}})
			if err == nil {
				h.log.Info("database credentials rotated: someone who could see them no longer may", "database_id", id, "reason", reason)
			} else if !errors.Is(err, domain.ErrVersionConflict) {
				return all, err
			}
			continue // converge on the stream with the rotation
		}
		server, err := h.fleet.Get(d.Requested().Server)
		if err != nil {
			return all, err
		}
		intent, err := h.intent(ctx, d, hist.tenant)
		if err != nil {
			return all, err
		}
		repairs, err := server.Converge(ctx, string(id), intent)
		for _, kind := range repairs {
			h.reconciler.repairs.WithLabelValues(kind).Inc()
		}
		all = append(all, repairs...)
		if len(repairs) > 0 && h.accountsChanged != nil {
			h.accountsChanged(id)
		}
		if err != nil {
			return all, err
		}
		later, err := h.events.ReadStream(ctx, id.Stream(), d.Version())
		if err != nil || len(later) == 0 {
			return all, err
		}
	}
	return all, fmt.Errorf("database %s keeps changing while it converges: %w", id, domain.ErrVersionConflict)
}

// intent is what the log says database d is on its server, with its tenant t.
func (h *Databases) intent(ctx context.Context, d *domain.Database, t *domain.Tenant) (sandbox.Intent, error) {
	if !d.OnServer() {
		return sandbox.Intent{}, nil
	}
	rw, err := h.readWritePassword(ctx, d)
	if err != nil {
		return sandbox.Intent{}, err
	}
	ro, err := h.secrets.Get(ctx, roSecret(d.ID()))
	if errors.Is(err, secrets.ErrNotFound) { // lost: the account gets a new one
		var password string
		if password, err = sandbox.NewPassword(); err == nil {
			ro, err = []byte(password), h.secrets.Put(ctx, roSecret(d.ID()), []byte(password))
		}
	}
	if err != nil {
		return sandbox.Intent{}, err
	}
	connections, err := h.accountConnections(ctx, t, d.Owner())
	if err != nil {
		return sandbox.Intent{}, err
	}
	req := d.Requested()
	return sandbox.Intent{
		Exists: true, Locked: d.State() != domain.StateRunning,
		Grants:             sandbox.Grants{WritesRestricted: d.WritesRestricted(), NoRoutines: !t.Settings().AllowProcedures},
		MaxUserConnections: connections,
		RWPassword:         rw, ROPassword: string(ro), Charset: req.Charset, Collation: req.Collation,
	}, nil
}

// The vault keeps the read-write password as "<credentials version>:<password>" (a password has no
// ':'), so a rotation recorded but not yet carried out is known by its version; a value without a
// version, kept before versions were, is the current password.

// accountConnections is the MAX_USER_CONNECTIONS of the accounts of a database of tenant t owned
// by owner (domain.AccountConnections), within what the server takes.
func (h *Databases) accountConnections(ctx context.Context, t *domain.Tenant, owner domain.UserID) (int, error) {
	quota, err := load(ctx, h.events, t.ID().QuotaStream(), domain.RebuildQuota)
	if err != nil {
		return 0, err
	}
	return int(min(domain.AccountConnections(t.Limits(), quota.MemberQuota(owner)), sandbox.MaxUserConnectionsLimit)), nil
}

// readWritePassword is the read-write password of d's current credentials version: the vault's,
// or a new one put there when the vault's is older than the last rotation the log records.
func (h *Databases) readWritePassword(ctx context.Context, d *domain.Database) (string, error) {
	value, err := h.secrets.Get(ctx, rwSecret(d.ID()))
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return "", err
	}
	version, password, versioned := strings.Cut(string(value), ":")
	if !versioned {
		password = version
	}
	if n, _ := strconv.ParseInt(version, 10, 64); password != "" && (!versioned || n >= d.CredentialsVersion()) {
		return password, nil
	}
	if password, err = sandbox.NewPassword(); err != nil {
		return "", err
	}
	return password, h.putReadWritePassword(ctx, d.ID(), d.CredentialsVersion(), password)
}

func (h *Databases) putReadWritePassword(ctx context.Context, id domain.DatabaseID, version int64, password string) error {
	return h.secrets.Put(ctx, rwSecret(id), []byte(strconv.FormatInt(version, 10)+":"+password))
}

// ReconcileAll converges every database whose schema and accounts the log places on a server, or
// whose provisioning failed (what it left is dropped), and returns how many needed a repair. A
// database that cannot be converged (its server does not answer) is logged and left for the next
// pass.
func (h *Databases) ReconcileAll(ctx context.Context) (int, error) {
	return h.reconcile(ctx, `SELECT database_id FROM database_list WHERE state NOT IN ('provisioning', 'purged')`)
}

// ReconcileTenant converges the databases of one tenant (its plan, settings or roles changed).
func (h *Databases) ReconcileTenant(ctx context.Context, tenant domain.TenantID) (int, error) {
	return h.reconcile(ctx, `SELECT database_id FROM database_list WHERE state NOT IN ('provisioning', 'purged') AND tenant_id = ?`, tenant)
}

func (h *Databases) reconcile(ctx context.Context, query string, args ...any) (int, error) {
	list, cancel := context.WithTimeout(ctx, reactorCallTimeout)
	defer cancel()
	rows, err := h.queue.QueryContext(list, query, args...)
	if err != nil {
		return 0, fmt.Errorf("databases to reconcile: %w", err)
	}
	var ids []domain.DatabaseID
	for rows.Next() {
		var id domain.DatabaseID
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	return h.convergeAll(ctx, ids), nil
}

// convergeAll converges ids and returns how many needed a repair; failures are logged.
func (h *Databases) convergeAll(ctx context.Context, ids []domain.DatabaseID) int {
	repaired := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		repairs, err := h.Converge(ctx, id)
		if err != nil {
			h.log.Warn("reconciler: database not converged, retrying later", "database_id", id, "err", err)
		}
		if len(repairs) > 0 {
			repaired++
			h.log.Warn("reconciler: the server differed from the log and was repaired", "database_id", id, "repairs", repairs)
		}
	}
	return repaired
}

// LogTail reads the log's tail (*eventstore.Store).
type LogTail interface {
	Head(ctx context.Context) (int64, error)
	ReadTail(ctx context.Context, after int64, limit int, types, except []string) ([]eventstore.Envelope, error)
}

// RunReconciler converges every database at once and every interval, the databases a lifecycle
// command could not converge soon after, and a tenant's databases when its plan, settings or roles
// change in the log (read from its tail when wake fires, and every poll for other processes'
// appends), until ctx ends.
func (h *Databases) RunReconciler(ctx context.Context, tail LogTail, wake func() <-chan struct{}, interval, poll time.Duration) {
	types := h.events.Registry().StoredAs(reconcileTypes...)
	head := func() (int64, error) {
		ctx, cancel := context.WithTimeout(ctx, reactorCallTimeout)
		defer cancel()
		return tail.Head(ctx)
	}
	after, err := head()
	for err != nil && ctx.Err() == nil { // the management database is away: the full pass waits for it too
		h.log.Warn("reconciler: reading the log's head failed, retrying", "err", err)
		pause(ctx, poll, nil, nil)
		after, err = head()
	}
	nextFull := time.Now()
	for ctx.Err() == nil {
		var woken <-chan struct{} // taken before the tail is read: an append meanwhile is not missed
		if wake != nil {
			woken = wake()
		}
		if !time.Now().Before(nextFull) {
			if _, err := h.ReconcileAll(ctx); err != nil && ctx.Err() == nil {
				h.log.Error("reconciler: full pass failed", "err", err)
			}
			nextFull = time.Now().Add(interval)
		}
		read, cancel := context.WithTimeout(ctx, reactorCallTimeout)
		envs, err := tail.ReadTail(read, after, 500, types, nil)
		cancel()
		if err != nil && ctx.Err() == nil {
			h.log.Warn("reconciler: reading the log's tail failed", "err", err)
		}
		var tenants []domain.TenantID
		for _, env := range envs {
			after = env.Position
			if !slices.Contains(types, env.EventType) {
				continue // the log's last event, which the tail always ends with
			}
			if tenant := domain.TenantID(strings.TrimPrefix(env.StreamID, "tenant-")); !slices.Contains(tenants, tenant) {
				tenants = append(tenants, tenant)
			}
		}
		for _, tenant := range tenants {
			if _, err := h.ReconcileTenant(ctx, tenant); err != nil && ctx.Err() == nil {
				h.log.Warn("reconciler: tenant's databases not converged", "tenant_id", tenant, "err", err)
			}
		}
		h.reconciler.mu.Lock()
		soon := make([]domain.DatabaseID, 0, len(h.reconciler.soon))
		for id := range h.reconciler.soon {
			soon = append(soon, id)
		}
		clear(h.reconciler.soon)
		h.reconciler.mu.Unlock()
		h.convergeAll(ctx, soon) // one prompt retry; the full pass takes what still fails
		if len(envs) == 500 {
			continue
		}
		pause(ctx, min(poll, time.Until(nextFull)), woken, h.reconciler.wake)
	}
}
