package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/clouddbmanager/clouddb/api"
	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/activity"
	"github.com/clouddbmanager/clouddb/internal/config"
	"github.com/clouddbmanager/clouddb/internal/console"
	"github.com/clouddbmanager/clouddb/internal/egress"
	"github.com/clouddbmanager/clouddb/internal/idempotency"
	"github.com/clouddbmanager/clouddb/internal/leases"
	"github.com/clouddbmanager/clouddb/internal/localmysql"
	"github.com/clouddbmanager/clouddb/internal/mail"
	"github.com/clouddbmanager/clouddb/internal/mgmtdb"
	"github.com/clouddbmanager/clouddb/internal/monitoring"
	"github.com/clouddbmanager/clouddb/internal/personaldata"
	"github.com/clouddbmanager/clouddb/internal/ratelimit"
	"github.com/clouddbmanager/clouddb/internal/resultarchive"
	"github.com/clouddbmanager/clouddb/internal/secrets"
	"github.com/clouddbmanager/clouddb/migrations"
	"github.com/clouddbmanager/clouddb/projections"
	"github.com/clouddbmanager/clouddb/queryexec"
	"github.com/clouddbmanager/clouddb/queryexec/results"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// App is one clouddb process: the management database, the event store, the projections and,
// once served, the HTTP API. End-to-end tests start it on :0.
type App struct {
	Config      config.Config
	Log         *slog.Logger
	DB          *sql.DB
	Store       *eventstore.Store
	Projections *projections.Runtime
	Identity    *commands.Identity
	Tenants     *commands.Tenants
	Mail        *commands.MailDelivery
	Databases   *commands.Databases
	Fleet       *sandbox.Fleet
	Engine      *queryexec.Engine
	QueryRunner *commands.QueryRunner
	// Idempotency keeps the answers to Idempotency-Keys (internal/idempotency).
	Idempotency *idempotency.Store
	// Lease says this process is alive (internal/leases): query intents and running
	// Idempotency-Keys name it.
	Lease *leases.Lease
	// QueryOutcomes resolves the intents of queries whose process died before their outcome.
	QueryOutcomes *commands.QueryOutcomes
	// HeadSigner signs the heads of the event log's hash chains (CLOUDDB_AUDIT_SIGNING_KEY).
	HeadSigner *eventstore.HeadSigner
	// Members handles the members' lifecycle (deactivation, reactivation, their timers).
	Members *commands.Members
	// MetricsRetention records the hourly cut of the metrics read model (SEED.md's retention).
	MetricsRetention *commands.MetricsRetention
	// LoadSampler records the tenants' load in this process (peak statements at once, pool
	// connections) once a minute when it changed; tests call its Sample directly.
	LoadSampler *queryexec.LoadSampler
	// Alerts handles alert rules, notifications and webhooks; AlertEvaluator evaluates the rules
	// and Webhooks delivers to the tenants' webhooks.
	Alerts         *commands.Alerts
	AlertEvaluator *commands.AlertEvaluator
	Webhooks       *commands.WebhookDelivery
	// Erasure erases a person's personal data (internal/personaldata seals it in the log).
	Erasure *commands.Erasure
	// Now is the clock of the whole process; tests move it.
	Now func() time.Time

	views     *projections.Views // the read side
	vault     *secrets.Vault
	reseal    bool // secrets sealed by another key wait to be sealed with CLOUDDB_SECRET_KEY
	metrics   *prometheus.Registry
	stopMySQL func() error
	server    *http.Server
	handler   *api.Server
	// cancelRequests ends the requests still running when the shutdown drain is over.
	cancelRequests context.CancelCauseFunc
	listener       net.Listener
	served         chan error
	closeOnce      sync.Once
	closeErr       error
	stopWork       context.CancelFunc // ends background work: mail delivery, rebuilds started over the API
	workDone       sync.WaitGroup

	// metricsServer serves GET /metrics on Config.MetricsAddr; nil when that is off.
	metricsServer   *http.Server
	metricsListener net.Listener
	metricsServed   chan error
}

// startupWait is how long Open keeps retrying a management database that does not answer.
var startupWait = 30 * time.Second

// Open connects to (or starts) the management database, migrates it and builds the event store
// and the projection runtime, without starting anything that consumes events.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	a := &App{Config: cfg, Log: log, Now: time.Now, metrics: prometheus.NewRegistry(), stopMySQL: func() error { return nil }}
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := a.open(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) open(ctx context.Context) error {
	dsn := a.Config.MgmtDSN
	if dsn == "" {
		var err error
		if dsn, a.stopMySQL, err = localmysql.Resolve(ctx, a.Config.DataDir, a.Log); err != nil {
			return err
		}
	}
	a.announceManagementDatabase(dsn)
	db, err := mgmtdb.Open(ctx, dsn, startupWait, a.Log)
	if err != nil {
		return err
	}
	a.DB = db
	a.metrics.MustRegister(collectors.NewDBStatsCollector(db, "mgmt"))
	if err := a.Config.LoadKeys(); err != nil {
		return err
	}
	now := func() time.Time { return a.Now() }
	var personal *personaldata.Codec // opened by migrations 29 and 30 when they have work, else below
	openPersonal := func(ctx context.Context) (*personaldata.Codec, error) {
		if personal == nil {
			vault, err := a.openVault(ctx, db)
			if err != nil {
				return nil, err
			}
			personal = personaldata.New(vault, now)
		}
		return personal, nil
	}
	if err := migrations.Apply(ctx, db, a.Log, migrations.Options{PersonalData: openPersonal}); err != nil {
		return err
	}
	if _, err := openPersonal(ctx); err != nil {
		return err
	}
	vault := a.vault
	registry := eventstore.NewDomainRegistry()
	a.Store = eventstore.New(db, registry, eventstore.Options{Logger: a.Log, Metrics: a.metrics, Clock: now, PersonalData: personal})
	a.Projections, err = projections.New(db, a.Store, projections.Options{Logger: a.Log, Metrics: a.metrics},
		projections.Streams{},
		projections.NewUsers(registry),
		projections.NewTenants(registry),
		projections.NewSessions(registry),
		projections.NewMailDeliveries(registry),
		projections.NewAPIKeys(registry),
		projections.NewInvitations(registry),
		projections.NewDatabases(registry),
		projections.NewQueryHistory(registry),
		projections.AuditLog{},
		projections.NewMemberQuotas(registry),
		projections.NewMetrics(registry),
		projections.NewMetricsLoad(registry),
		projections.NewAlerts(registry),
		projections.NewNotifications(registry),
		projections.NewAccessReport(registry),
	)
	if err != nil {
		return err
	}
	a.Lease = leases.New(db, now, a.Config.LeaseTTL)
	if a.Idempotency, err = idempotency.New(db, a.Config.SecretKey); err != nil {
		return err
	}
	if a.Config.SecretKeyPrevious != nil {
		if err := a.Idempotency.SetPreviousKey(a.Config.SecretKeyPrevious); err != nil {
			return err
		}
	}
	a.Idempotency.SetOwner(a.Lease.ID())
	views := projections.NewViews(db)
	a.views = views
	a.Identity = commands.NewIdentity(a.Store, vault, views, a.Projections, now, a.Config.BcryptCost)
	a.Tenants = commands.NewTenants(a.Store, a.Projections, now)
	a.Tenants.FreeTenantsPerUser = a.Config.FreeTenantsPerUser
	a.Mail = commands.NewMailDelivery(a.Store, vault, db, a.mailSender(), a.Config.PublicURL, now, a.Log)
	a.Mail.Instance = a.Lease.ID()
	a.Mail.LogLinks = a.Config.SMTPAddr == "" // the development mail path (docs/SECURITY.md)
	sandboxes := a.Config.SandboxDSNs
	if len(sandboxes) == 0 {
		sandboxes = []string{serverDSN(dsn)}
	}
	if a.Fleet, err = sandbox.OpenFleet(ctx, sandboxes, a.Config.SandboxPrefix, a.Log); err != nil {
		return fmt.Errorf("sandbox servers (CLOUDDB_SANDBOX_DSN): %w", err)
	}
	a.Databases = commands.NewDatabases(a.Store, vault, a.Fleet, a.Projections, views, db, now, a.Log)
	a.Databases.Instance = a.Lease.ID()
	if err := a.Databases.RegisterMetrics(a.metrics); err != nil {
		return err
	}
	resultStore, err := results.Open(results.StoreOptions{
		Dir: filepath.Join(a.Config.DataDir, "results"), MemoryBudget: a.Config.ResultMemory, Now: now, Log: a.Log})
	if err != nil {
		return fmt.Errorf("query results (CLOUDDB_DATA_DIR): %w", err)
	}
	a.Engine = queryexec.NewEngine(queryexec.EngineOptions{Fleet: a.Fleet, Passwords: a.Databases.AccountPassword,
		Results: resultStore, Log: a.Log, Now: now, OnWrite: a.Databases.MeasureSoon, MaxResultBytes: a.Config.ResultMaxBytes,
		QueriesInFlight: a.Config.QueriesInFlight, QueryMemory: a.Config.QueryMemory, AdmissionWait: a.Config.QueryWait,
		Processes: a.Lease.Processes})
	a.QueryRunner = commands.NewQueryRunner(a.Engine, a.Store, a.queryTarget, resultarchive.New(db), now, a.Log)
	a.QueryRunner.Instance = a.Lease.ID()
	a.QueryOutcomes = commands.NewQueryOutcomes(a.Store, db, a.Lease.Alive, now, a.Log)
	a.HeadSigner = eventstore.NewHeadSigner(db, a.Config.AuditSigningKey, now, a.Log)
	a.Members = commands.NewMembers(a.Identity, a.Databases, a.Config.DeactivationGrace, a.Config.RecoveryWindow, a.Log)
	a.Erasure = commands.NewErasure(a.Identity, personal, views, a.Projections, a.Log)
	if a.Config.SMTPAddr == "" {
		a.Erasure.ForgetMails = func(ids []domain.MailID) (int, error) { return mail.Forget(a.Config.MailDir, ids) }
	}
	a.MetricsRetention = commands.NewMetricsRetention(a.Store, now, a.Log)
	a.LoadSampler = queryexec.NewLoadSampler(a.Engine.TakeLoad, a.Lease.ID(), a.Config.LoadSampleTenants, now())
	a.Alerts = commands.NewAlerts(a.Store, vault, a.Projections, views, now)
	a.AlertEvaluator = commands.NewAlertEvaluator(a.Store, views, a.Engine.Running, now, a.Log)
	var webhookClient *http.Client // nil: public addresses only
	if a.Config.WebhookPrivateAddresses {
		webhookClient = egress.Client(commands.WebhookTimeout, true)
	}
	a.Webhooks = commands.NewWebhookDelivery(a.Store, vault, db, webhookClient, now, a.Log)
	a.Webhooks.Instance = a.Lease.ID()
	platform := monitoring.New(a.metrics, a.Engine)
	a.QueryRunner.Observe, a.AlertEvaluator.Observe, a.Webhooks.Observe = platform.Query, platform.Alerts, platform.Webhook
	a.Databases.OnAccountsChanged(func(id domain.DatabaseID) {
		a.QueryRunner.Forget(id)
		a.Engine.Forget(id)
	})
	return nil
}

// announceManagementDatabase says at start which management database holds the event log and
// every read model: at WARN when CLOUDDB_MGMT_DSN is unset and the development fallback chose it,
// so that a server whose production DSN went missing does not pass unnoticed on an empty database.
// The user and password stay out of the log.
func (a *App) announceManagementDatabase(dsn string) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return // mgmtdb.Open says what is wrong with it
	}
	if a.Config.MgmtDSN == "" {
		a.Log.Warn("CLOUDDB_MGMT_DSN is unset: the management database is the development fallback "+cfg.Net+"("+cfg.Addr+")/"+cfg.DBName+
			"; a production server sets CLOUDDB_MGMT_DSN", "server", cfg.Addr, "database", cfg.DBName)
		return
	}
	a.Log.Info("management database (CLOUDDB_MGMT_DSN): "+cfg.Net+"("+cfg.Addr+")/"+cfg.DBName, "server", cfg.Addr, "database", cfg.DBName)
}

// openVault opens the secrets vault with CLOUDDB_SECRET_KEY (and the key being rotated out), and
// refuses to go on when the stored secrets were sealed with another key (secrets.Vault.CheckKey):
// every database password would fail to open.
func (a *App) openVault(ctx context.Context, db *sql.DB) (*secrets.Vault, error) {
	vault, err := secrets.NewVault(db, a.Config.SecretKey)
	if err != nil {
		return nil, err
	}
	if a.Config.SecretKeyPrevious != nil {
		if err := vault.SetPrevious(a.Config.SecretKeyPrevious); err != nil {
			return nil, err
		}
	}
	if a.reseal, err = vault.CheckKey(ctx); err != nil {
		return nil, err
	}
	a.vault = vault
	return vault, nil
}

// queryTarget is the read models' answer to "what may run on this database".
func (a *App) queryTarget(ctx context.Context, tenant domain.TenantID, user domain.UserID, id domain.DatabaseID) (commands.QueryTarget, error) {
	t, err := a.views.QueryTarget(ctx, tenant, user, id)
	if err != nil {
		return commands.QueryTarget{}, err
	}
	plan, err := domain.PlanByID(t.Plan)
	if err != nil {
		return commands.QueryTarget{}, err
	}
	d := t.Database
	return commands.QueryTarget{
		Target: queryexec.Target{ID: d.ID, Tenant: d.TenantID, Name: d.Name, Server: d.Server, State: d.State, WriteWall: d.WriteWall},
		Policy: queryexec.Policy{Settings: t.Settings, Limits: plan.Limits, StorageBytes: t.StorageBytes,
			MemberMaxConnections: t.MemberMaxConnections},
		DatabaseVersion: t.DatabaseVersion, TenantVersion: t.TenantVersion,
	}, nil
}

// serverDSN is a DSN's server without its database: the management server as the default sandbox.
func serverDSN(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return dsn
	}
	cfg.DBName = ""
	return cfg.FormatDSN()
}

// mailSender delivers through SMTP when CLOUDDB_SMTP_ADDR is set, else into .eml files.
func (a *App) mailSender() mail.Sender {
	if a.Config.SMTPAddr == "" {
		return mail.NewDir(a.Config.MailDir, a.Config.SMTPFrom)
	}
	return mail.NewSMTP(mail.SMTPConfig{Addr: a.Config.SMTPAddr, From: a.Config.SMTPFrom, User: a.Config.SMTPUser, Password: a.Config.SMTPPassword})
}

// idlePoll is how often the reactors woken by a read model's advance (provisioning, mail, the
// reconciler's tail) look at their work with nothing waking them: for what only time makes due (a
// mail's next attempt, a dead worker's expired lease). Every append they react to advances their
// read model here and wakes them: at once for this process's appends, within the projections'
// head read (200 ms) for another's.
const idlePoll = 10 * time.Second

// alertPoll is how often the alert rules are evaluated with no metric moving: windows slide and
// cooldowns end with time alone.
const alertPoll = 15 * time.Second

// headSigning is how often the heads of the chains that moved are signed: every event is covered by
// a signature within a minute.
const headSigning = time.Minute

// Serve starts the projections and the HTTP API on Config.HTTPAddr, and returns once it listens.
func (a *App) Serve(ctx context.Context) error {
	if err := a.Lease.Take(ctx); err != nil {
		return err
	}
	if err := a.Projections.Start(ctx); err != nil {
		return err
	}
	if a.Config.BootstrapEmail != "" {
		if _, err := a.Identity.Bootstrap(ctx, a.Config.BootstrapEmail, a.Config.BootstrapPassword); err != nil {
			return fmt.Errorf("bootstrap admin (CLOUDDB_BOOTSTRAP_ADMIN_EMAIL): %w", err)
		}
	}
	work, stop := context.WithCancel(context.Background())
	a.stopWork = stop
	a.workDone.Add(9)
	go func() {
		defer a.workDone.Done()
		a.Lease.Run(work, func(err error) { a.Log.Warn("could not renew the process lease", "err", err) })
	}()
	go func() {
		defer a.workDone.Done()
		a.QueryOutcomes.Run(work, a.Config.LeaseTTL) // an intent of a dead process waits for its lease to expire
	}()
	go func() {
		defer a.workDone.Done()
		a.Databases.RunWriteSampling(work, 2*time.Second)
	}()
	go func() {
		defer a.workDone.Done()
		a.Databases.RunHousekeeping(work, a.Config.HousekeepingInterval)
	}()
	go func() {
		defer a.workDone.Done()
		a.Databases.RunPurge(work, min(time.Minute, a.Config.RecoveryWindow/4+time.Second))
	}()
	go func() {
		defer a.workDone.Done()
		a.Databases.RunProvisioning(work, a.Config.ProvisioningWorkers, func() <-chan struct{} { return a.Projections.Advanced("databases") }, idlePoll)
	}()
	go func() {
		defer a.workDone.Done()
		a.purgeIdempotencyKeys(work, time.Minute)
	}()
	a.workDone.Add(1)
	go func() {
		defer a.workDone.Done()
		// Reactivation dates and grace periods are days away: the housekeeping's pace is enough.
		a.Members.RunTimers(work, a.DB, a.Lease.ID(), a.Config.HousekeepingInterval)
	}()
	a.workDone.Add(1)
	go func() {
		defer a.workDone.Done()
		a.MetricsRetention.Run(work, 10*time.Minute) // the hour's cut within 10 minutes of its start
	}()
	a.workDone.Add(1)
	go func() {
		defer a.workDone.Done()
		a.LoadSampler.Run(work, a.Config.LoadSampleInterval, func() time.Time { return a.Now() }, commands.RecordLoad(a.Store), a.Log)
	}()
	a.workDone.Add(2)
	go func() {
		defer a.workDone.Done()
		// Metrics move when their read model commits; quotas and windows also move with time.
		a.AlertEvaluator.Run(work, func() <-chan struct{} { return a.Projections.Advanced("metrics") }, alertPoll)
	}()
	go func() {
		defer a.workDone.Done()
		a.Webhooks.Run(work, func() <-chan struct{} { return a.Projections.Advanced("notifications") }, idlePoll)
	}()
	go func() {
		defer a.workDone.Done()
		a.Databases.RunReconciler(work, a.Store, func() <-chan struct{} { return a.Projections.Advanced("tenants") }, time.Minute, idlePoll)
	}()
	go func() {
		defer a.workDone.Done()
		a.Mail.Run(work, func() <-chan struct{} { return a.Projections.Advanced("mail_deliveries") }, idlePoll)
	}()
	a.workDone.Add(1)
	go func() {
		defer a.workDone.Done()
		a.HeadSigner.Run(work, headSigning)
	}()
	if a.reseal {
		a.workDone.Add(1)
		go func() {
			defer a.workDone.Done()
			if _, _, err := a.vault.Reseal(work, a.Log); err != nil && work.Err() == nil {
				a.Log.Warn("re-sealing the secrets stopped; the next start goes on with it", "err", err)
			}
		}()
	}
	handler := api.New(api.Config{
		Logger:      a.Log,
		Metrics:     a.metrics,
		Gatherer:    a.metrics,
		Version:     version(),
		Idempotency: a.Idempotency,
		Console:     console.New(),
		Ready: []api.ReadinessCheck{
			{Name: "management_database", Check: a.DB.PingContext},
			{Name: "projections", Check: a.Projections.Ready},
			{Name: "sandbox_servers", Check: func(ctx context.Context) error { _, err := a.Fleet.Place(ctx, nil); return err }},
		},
	})
	// The query routes first: mux tries the routes in the order they were added, one regular
	// expression each, and the 57 identity and database routes before them cost every query
	// about 20 µs of matching (docs/PERFORMANCE.md, issue 11). No path of theirs is another's.
	handler.MountQueries(api.QueryRoutes{Commands: a.QueryRunner, History: a.views.QueryHistory, Store: a.Store, Projections: a.Projections,
		PerSecond: a.Config.QueryRate, Processes: a.Lease.Processes, Exports: api.ExportLimits{Idle: a.Config.ExportIdle, Max: a.Config.ExportMax, PerUser: a.Config.ExportsPerUser}})
	handler.MountIdentity(api.IdentityRoutes{
		Commands:     a.Identity,
		Tenants:      a.Tenants,
		Members:      a.Members,
		Views:        a.views,
		Activity:     activity.New(a.DB),
		Tokens:       api.NewTokens(a.Config.JWTSecret, a.Config.AccessTokenTTL, a.Now),
		Events:       a.Store,
		Projections:  a.Projections,
		Limits:       api.NewSharedLimits(ratelimit.NewBuckets(a.DB)),
		SecureCookie: a.Config.PublicURL.Scheme == "https",
		Now:          a.Now,
	})
	handler.MountDatabases(api.DatabaseRoutes{Commands: a.Databases, PublicHost: a.Config.SandboxPublicHost,
		PublicPort: a.Config.SandboxPublicPort, RecoveryWindow: a.Config.RecoveryWindow})
	handler.MountAudit(api.AuditRoutes{Signer: a.HeadSigner, Views: a.views, Projections: a.Projections, Store: a.Store, DB: a.DB})
	handler.MountAccessReport(api.AccessReportRoutes{Views: a.views, Projections: a.Projections, Store: a.Store})
	handler.MountErasure(api.ErasureRoutes{Commands: a.Erasure})
	handler.MountAlerts(api.AlertRoutes{Commands: a.Alerts, Views: a.views, Store: a.Store, Projections: a.Projections})
	handler.MountMetrics(api.MetricsRoutes{Views: a.views, Connections: a.Engine.Running,
		Exports: api.ExportLimits{Idle: a.Config.ExportIdle, Max: a.Config.ExportMax, PerUser: a.Config.ExportsPerUser}})
	if a.listener == nil { // `clouddb serve` binds first (listen), before Open
		listeners, err := listen(a.Config)
		if err != nil {
			return err
		}
		a.listener, a.metricsListener = listeners[0], listeners[1]
	}
	ln := a.listener
	a.handler = handler
	requests, cancelRequests := context.WithCancelCause(context.Background())
	a.cancelRequests = cancelRequests
	a.server = &http.Server{
		Handler:           handler,
		BaseContext:       func(net.Listener) context.Context { return requests },
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	a.served = make(chan error, 1)
	go func() { a.served <- a.server.Serve(ln) }()
	a.Log.Info("serving", "addr", ln.Addr().String(), "version", version())
	a.serveMetrics(handler.MetricsHandler())
	return nil
}

// serveMetrics serves GET /metrics on the operator address, CLOUDDB_METRICS_ADDR (nothing when it
// is off): the public address answers 404 there.
func (a *App) serveMetrics(metrics http.Handler) {
	if a.metricsListener == nil {
		return
	}
	a.metricsServer = &http.Server{
		Handler:           metrics,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	a.metricsServed = make(chan error, 1)
	go func() { a.metricsServed <- a.metricsServer.Serve(a.metricsListener) }()
	a.Log.Info("serving metrics", "addr", a.metricsListener.Addr().String())
}

// MetricsAddr is where GET /metrics is served, once served; "" when CLOUDDB_METRICS_ADDR is off.
func (a *App) MetricsAddr() string {
	if a.metricsListener == nil {
		return ""
	}
	return a.metricsListener.Addr().String()
}

// purgeIdempotencyKeys deletes, every interval until ctx ends, the idempotency keys past their
// 24 hours: they answer nothing any more (the next use of such a key reclaims its row anyway).
func (a *App) purgeIdempotencyKeys(ctx context.Context, every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		n, err := a.Idempotency.Purge(ctx, a.Now().Add(-idempotency.TTL), 1000)
		switch {
		case err != nil && ctx.Err() == nil:
			a.Log.Warn("could not purge expired idempotency keys", "err", err)
		case n > 0:
			a.Log.Info("expired idempotency keys purged", "rows", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Addr is where the API listens, once served.
func (a *App) Addr() string { return a.listener.Addr().String() }

// afterDrain bounds how long the requests cancelled at the end of the drain take to answer (their
// statements are killed on the server and recorded first).
const afterDrain = 10 * time.Second

// Close shuts down: GET /readyz turns unready and new requests are answered 503 at once; the
// requests in flight get Config.ShutdownDrain to finish, then are cancelled (their statements
// killed on the server and recorded as cancelled). Then the projections stop after their current
// event, the queued query outcomes and the event store's queued appends are committed, the lease
// is released and the database closed.
func (a *App) Close() error {
	a.closeOnce.Do(func() { a.closeErr = a.close() })
	return a.closeErr
}

// drain answers the requests in flight, cancelling those still running after the drain time.
func (a *App) drain() {
	idle := a.handler.Drain()
	timer := time.NewTimer(a.Config.ShutdownDrain)
	defer timer.Stop()
	select {
	case <-idle:
		return
	case <-timer.C:
	}
	a.Log.Info("shutdown drain is over: cancelling the requests still running")
	a.cancelRequests(api.ErrShuttingDown)
	select {
	case <-idle:
	case <-time.After(afterDrain):
		a.Log.Warn("requests still running after being cancelled", "waited", afterDrain)
	}
}

func (a *App) close() error {
	var errs []error
	if a.handler != nil {
		a.drain()
	}
	if a.metricsServer != nil {
		if err := a.metricsServer.Close(); err != nil {
			errs = append(errs, fmt.Errorf("metrics shutdown: %w", err))
		}
		if err := <-a.metricsServed; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if a.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), afterDrain)
		defer cancel()
		if err := a.server.Shutdown(ctx); err != nil {
			a.Log.Warn("closing the HTTP connections", "err", err)
			a.server.Close()
		}
		if err := <-a.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if a.stopWork != nil {
		a.stopWork()
		a.workDone.Wait()
	}
	if a.Projections != nil {
		errs = append(errs, a.Projections.Close())
	}
	if a.QueryRunner != nil {
		a.QueryRunner.Drain()
	}
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	if a.Engine != nil {
		a.Engine.Close()
		errs = append(errs, a.Engine.Results().Close())
	}
	if a.Fleet != nil {
		errs = append(errs, a.Fleet.Close())
	}
	if a.DB != nil {
		if a.server != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := a.Lease.Release(ctx); err != nil {
				a.Log.Warn("could not release the process lease; it expires by itself", "err", err)
			}
			cancel()
		}
		errs = append(errs, a.DB.Close())
	}
	errs = append(errs, a.stopMySQL())
	return errors.Join(errs...)
}
