package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/clouddbmanager/clouddb/api"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/config"
	"github.com/clouddbmanager/clouddb/internal/localmysql"
	"github.com/clouddbmanager/clouddb/internal/mgmtdb"
	"github.com/clouddbmanager/clouddb/migrations"
	"github.com/clouddbmanager/clouddb/projections"
)

// App is one clouddb process: the management database, the event store, the projections and,
// once served, the HTTP API. End-to-end tests start it on :0.
type App struct {
	Config      config.Config
	Log         *slog.Logger
	DB          *sql.DB
	Store       *eventstore.Store
	Projections *projections.Runtime

	metrics   *prometheus.Registry
	stopMySQL func() error
	server    *http.Server
	listener  net.Listener
	served    chan error
	closeOnce sync.Once
	closeErr  error
}

// startupWait is how long Open keeps retrying a management database that does not answer.
var startupWait = 30 * time.Second

// Open connects to (or starts) the management database, migrates it and builds the event store
// and the projection runtime, without starting anything that consumes events.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	a := &App{Config: cfg, Log: log, metrics: prometheus.NewRegistry(), stopMySQL: func() error { return nil }}
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
	db, err := mgmtdb.Open(ctx, dsn, startupWait, a.Log)
	if err != nil {
		return err
	}
	a.DB = db
	a.metrics.MustRegister(collectors.NewDBStatsCollector(db, "mgmt"))
	if err := migrations.Apply(ctx, db, a.Log); err != nil {
		return err
	}
	a.Store = eventstore.New(db, eventstore.NewRegistry(), eventstore.Options{Logger: a.Log, Metrics: a.metrics})
	a.Projections, err = projections.New(db, a.Store, projections.Options{Logger: a.Log, Metrics: a.metrics},
		projections.Streams{},
	)
	return err
}

// Serve starts the projections and the HTTP API on Config.HTTPAddr, and returns once it listens.
func (a *App) Serve(ctx context.Context) error {
	if err := a.Config.LoadKeys(); err != nil {
		return err
	}
	if err := a.Projections.Start(ctx); err != nil {
		return err
	}
	handler := api.New(api.Config{
		Logger:   a.Log,
		Metrics:  a.metrics,
		Gatherer: a.metrics,
		Version:  version(),
		Ready: []api.ReadinessCheck{
			{Name: "management_database", Check: a.DB.PingContext},
			{Name: "projections", Check: a.Projections.Ready},
		},
	})
	ln, err := net.Listen("tcp", a.Config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.Config.HTTPAddr, err)
	}
	a.listener = ln
	a.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	a.served = make(chan error, 1)
	go func() { a.served <- a.server.Serve(ln) }()
	a.Log.Info("serving", "addr", ln.Addr().String(), "version", version())
	return nil
}

// Addr is where the API listens, once served.
func (a *App) Addr() string { return a.listener.Addr().String() }

// Close finishes in-flight requests (for up to 30 s), then stops the projections after their
// current event, the event store after its queued appends, and the database.
func (a *App) Close() error {
	a.closeOnce.Do(func() { a.closeErr = a.close() })
	return a.closeErr
}

func (a *App) close() error {
	var errs []error
	if a.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		if err := <-a.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if a.Projections != nil {
		errs = append(errs, a.Projections.Close())
	}
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	if a.DB != nil {
		errs = append(errs, a.DB.Close())
	}
	errs = append(errs, a.stopMySQL())
	return errors.Join(errs...)
}
