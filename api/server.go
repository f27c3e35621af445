// Package api is the JSON HTTP API of CloudDB Manager on gorilla/mux: the middleware every request
// passes (request id, panic recovery, body limit, metrics, access log), the error envelope of
// API.md, the operational routes (/healthz, /readyz, /metrics) and the OpenAPI document. Handlers
// only translate between HTTP and commands or read models; they hold no SQL.
package api

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/clouddbmanager/clouddb/internal/idempotency"
)

// DefaultMaxBodyBytes is the request body limit when Config.MaxBodyBytes is zero (1 MiB).
const DefaultMaxBodyBytes int64 = 1 << 20

// readinessTimeout bounds all readiness checks of one GET /readyz together.
const readinessTimeout = 2 * time.Second

// openAPIDocument is the OpenAPI 3.1 document of this API, served at GET /api/v1/openapi.json:
// api/openapi.json, the one copy (the docs point here), which the end-to-end tests check every
// response against and knownQuery reads the query parameters of each route from.
//
//go:embed openapi.json
var openAPIDocument []byte

// ReadinessCheck is one dependency GET /readyz asks about. Check must honour ctx: it is cancelled
// when the readiness deadline passes.
type ReadinessCheck struct {
	Name  string
	Check func(context.Context) error
}

// Config is what New needs. Every field is optional.
type Config struct {
	// Logger receives access logs and the errors behind 5xx responses; nil discards them.
	Logger *slog.Logger
	// Metrics is where the HTTP metrics are registered; nil means a private registry.
	Metrics prometheus.Registerer
	// Gatherer is what MetricsHandler serves; nil means Metrics, which must then also be a
	// prometheus.Gatherer (a *prometheus.Registry is).
	Gatherer prometheus.Gatherer
	// Ready are the checks of GET /readyz, run concurrently.
	Ready []ReadinessCheck
	// MaxBodyBytes limits request bodies; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Version is the build version, exported as the clouddb_build_info metric.
	Version string
	// Idempotency keeps the Idempotency-Key answers of authenticated POST routes; nil ignores the
	// header.
	Idempotency *idempotency.Store
	// Console serves GET and HEAD of every path outside /api/, /healthz, /readyz and /metrics
	// (the web console and its client-side routes); nil leaves them 404.
	Console http.Handler
}

// Server is the HTTP API. It is an http.Handler; later issues add their /api/v1 routes to API().
type Server struct {
	log          *slog.Logger
	router       *mux.Router // the root: operational routes, and api under /api/v1
	api          *mux.Router
	handler      http.Handler // router wrapped in the middleware chain
	metrics      *httpMetrics
	gatherer     prometheus.Gatherer
	ready        []ReadinessCheck
	readyTimeout time.Duration
	maxBody      int64
	identity     IdentityRoutes
	databases    DatabaseRoutes
	queries      QueryRoutes
	queryLimits  queryLimits
	idempotency  *idempotency.Store
	drain        drain
}

// New builds a Server with its middleware and operational routes. It panics on a configuration
// that cannot work: a readiness check without a name or function, two checks of one name, or a
// Metrics registerer that is not a Gatherer when no Gatherer is given.
func New(cfg Config) *Server {
	s := &Server{
		log:          cfg.Logger,
		ready:        cfg.Ready,
		readyTimeout: readinessTimeout,
		maxBody:      cfg.MaxBodyBytes,
		idempotency:  cfg.Idempotency,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	names := map[string]bool{}
	for _, c := range cfg.Ready {
		if c.Name == "" || c.Check == nil {
			panic("api: a ReadinessCheck needs a Name and a Check")
		}
		if names[c.Name] {
			panic("api: two ReadinessChecks are named " + c.Name)
		}
		names[c.Name] = true
	}
	reg, gatherer := cfg.Metrics, cfg.Gatherer
	if reg == nil {
		private := prometheus.NewRegistry()
		reg = private
		if gatherer == nil {
			gatherer = private
		}
	}
	if gatherer == nil {
		g, ok := reg.(prometheus.Gatherer)
		if !ok {
			panic("api: Config.Gatherer is required when Config.Metrics is not a prometheus.Gatherer")
		}
		gatherer = g
	}
	s.gatherer = gatherer
	s.metrics = newHTTPMetrics(reg, cfg.Version)

	s.router = mux.NewRouter()
	s.router.NotFoundHandler = http.HandlerFunc(s.handleNoRoute)
	s.router.MethodNotAllowedHandler = http.HandlerFunc(s.handleNoRoute)
	s.router.Use(recordRoute)
	s.router.HandleFunc("/healthz", s.handleHealthz).Methods(http.MethodGet)
	s.router.HandleFunc("/readyz", s.handleReadyz).Methods(http.MethodGet)
	s.api = s.router.PathPrefix("/api/v1").Subrouter()
	s.api.HandleFunc("/openapi.json", s.handleOpenAPI).Methods(http.MethodGet)
	if cfg.Console != nil {
		s.router.PathPrefix("/").Methods(http.MethodGet, http.MethodHead).MatcherFunc(consolePath).Handler(cfg.Console)
	}

	s.handler = s.middleware(s.refuseWhileDraining(s.router))
	return s
}

// MetricsHandler serves GET /metrics (the Prometheus text format) and nothing else. It is meant
// for the operator address (CLOUDDB_METRICS_ADDR), never the public one: the metrics tell route
// volumes, pools and process internals that are no business of the platform's users.
func (s *Server) MetricsHandler() http.Handler {
	metrics := promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/metrics":
			http.NotFound(w, r)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		default:
			metrics.ServeHTTP(w, r)
		}
	})
}

// now is the process clock: the identity routes' when mounted.
func (s *Server) now() time.Time {
	if s.identity.Now != nil {
		return s.identity.Now()
	}
	return time.Now()
}

// ServeHTTP serves a request through the middleware chain and the router.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Router returns the root router (operational routes and everything under /api/v1).
// Prefer API for new endpoints.
func (s *Server) Router() *mux.Router { return s.router }

// API returns the /api/v1 subrouter: routes added here are registered relative to /api/v1
// (API().HandleFunc("/databases", h) serves /api/v1/databases). Every route must also be
// described in api/openapi.json; a test enforces it.
func (s *Server) API() *mux.Router { return s.api }

// consolePath tells the console's paths from the API's and the operational ones, which keep their
// JSON 404 when nothing matches.
func consolePath(r *http.Request, _ *mux.RouteMatch) bool {
	p := r.URL.Path
	return !strings.HasPrefix(p, "/api/") && p != "/api" && p != "/healthz" && p != "/readyz" && p != "/metrics"
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// Readiness values of one check in the /readyz document. The document is public: it says which
// component is not ready, never why (addresses, driver errors); the reason goes to the log.
const (
	checkOK       = "ok"
	checkDown     = "down"
	checkTimedOut = "timed_out"
)

// handleReadyz runs every readiness check concurrently under one deadline. A check that has not
// answered by then is reported as timed out; its goroutine ends when it honours the cancelled ctx.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.readyTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.ready)) // buffered: a late check never blocks
	for _, c := range s.ready {
		go func() {
			res := result{name: c.Name}
			defer func() {
				if p := recover(); p != nil { // a broken check must not take the process down
					res.err = fmt.Errorf("check panicked: %v", p)
				}
				results <- res
			}()
			res.err = c.Check(ctx)
		}()
	}
	doc := readiness{Status: "ready", Checks: make(map[string]string, len(s.ready))}
	for _, c := range s.ready {
		doc.Checks[c.Name] = checkTimedOut
	}
collect:
	for range s.ready {
		select {
		case res := <-results:
			doc.Checks[res.name] = checkOK
			if res.err != nil {
				doc.Checks[res.name] = checkDown
				s.log.WarnContext(r.Context(), "readiness check failed", "check", res.name, "err", res.err,
					"request_id", RequestID(r.Context()))
			}
		case <-ctx.Done():
			break collect
		}
	}
	status := http.StatusOK
	for name, v := range doc.Checks {
		if v == checkTimedOut {
			s.log.WarnContext(r.Context(), "readiness check timed out", "check", name, "after", s.readyTimeout,
				"request_id", RequestID(r.Context()))
		}
		if v != checkOK {
			doc.Status, status = "not_ready", http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, doc)
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(http.StatusOK)
	w.Write(openAPIDocument)
}
