package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
)

// requestIDHeader carries the request id in both directions.
const requestIDHeader = "X-Request-Id"

// unmatchedRoute is the route label of requests no route matched (404, 405).
const unmatchedRoute = "unmatched"

type ctxKey int

const (
	requestIDKey ctxKey = iota
	routeKey
	bodyLimitKey
)

// RequestID returns the id of the request ctx belongs to, or "" outside a request served by a
// Server.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// middleware wraps the router in the chain every request passes, outermost first: the request id
// (so every response, even a panic's, carries it), metrics and access log (so they see the final
// status), panic recovery, and the body limit.
func (s *Server) middleware(next http.Handler) http.Handler {
	return withRequestID(s.observe(s.recoverPanics(s.limitBody(next))))
}

// withRequestID echoes a sane X-Request-Id (1 to 128 characters of [A-Za-z0-9._-]) or makes a new
// one, and puts it in the response header and the request context.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(requestIDHeader)
		if !validRequestID(id) {
			id = uuid.NewString()
		}
		w.Header().Set(requestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// routeInfo is filled in by recordRoute once mux has matched; observe reads it afterwards.
type routeInfo struct {
	template string
}

// recordRoute is a mux middleware (it runs for matched routes only) that tells observe the path
// template of the route, the metrics label that keeps cardinality bounded.
func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(routeKey).(*routeInfo); ok {
			if route := mux.CurrentRoute(r); route != nil {
				if tmpl, err := route.GetPathTemplate(); err == nil {
					info.template = tmpl
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// observe counts and times every request and writes its access log line. It logs the path only:
// query strings and headers may carry tokens.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &routeInfo{template: unmatchedRoute}
		rec := &responseRecorder{ResponseWriter: w}
		defer func() { // deferred: an aborted response is still counted
			took := time.Since(start)
			status := rec.status
			if status == 0 {
				status = http.StatusOK // net/http's answer to a handler that wrote nothing
			}
			method := methodLabel(r.Method)
			s.metrics.requests.WithLabelValues(method, info.template, strconv.Itoa(status)).Inc()
			s.metrics.duration.WithLabelValues(method, info.template).Observe(took.Seconds())
			level := slog.LevelInfo
			switch {
			case status == http.StatusServiceUnavailable: // asks for a retry (a drain, an outage whose cause is logged)
				level = slog.LevelWarn
			case status >= 500:
				level = slog.LevelError
			}
			s.log.LogAttrs(r.Context(), level, "http request",
				slog.String("method", r.Method),
				slog.String("route", info.template),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Int64("bytes", rec.bytes),
				slog.Float64("duration_ms", float64(took.Microseconds())/1000),
				// No client IP address or user agent: they are personal data, which an erasure must
				// reach (docs/SECURITY.md, "Personal data"); the request id leads to the events, whose
				// metadata keeps them sealed.
				slog.String("request_id", RequestID(r.Context())),
			)
		}()
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), routeKey, info)))
	})
}

// recoverPanics turns a panic into the 500 envelope and logs it with its stack. When the response
// has already begun it cannot be replaced: the connection is aborted instead.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler { // net/http's own way to abort; not a bug
				panic(p)
			}
			s.log.ErrorContext(r.Context(), "panic serving request",
				"request_id", RequestID(r.Context()),
				"method", r.Method,
				"path", r.URL.Path,
				"panic", fmt.Sprint(p),
				"stack", string(debug.Stack()),
			)
			if rec, ok := w.(*responseRecorder); ok && rec.wroteHeader {
				panic(http.ErrAbortHandler)
			}
			h := w.Header() // drop what the handler set (Content-Disposition, ...) but the id
			id := h.Get(requestIDHeader)
			clear(h)
			h.Set(requestIDHeader, id)
			s.respond(w, r, errInternal)
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody refuses a body whose declared length is over the limit and caps the others, so a
// handler reading too much gets an *http.MaxBytesError (→ 413 in writeError).
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.maxBody {
			s.writeError(w, r, &http.MaxBytesError{Limit: s.maxBody})
			return
		}
		r2 := r.WithContext(context.WithValue(r.Context(), bodyLimitKey, s.maxBody))
		if r.Body != nil {
			r2.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		}
		next.ServeHTTP(w, r2)
	})
}

// bodyLimit is the body limit of the request ctx belongs to.
func bodyLimit(ctx context.Context) int64 {
	if n, ok := ctx.Value(bodyLimitKey).(int64); ok {
		return n
	}
	return DefaultMaxBodyBytes
}

// responseRecorder remembers the status and size of a response for metrics, logs and recovery.
type responseRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (rw *responseRecorder) WriteHeader(code int) {
	if !rw.wroteHeader && code >= 200 { // 1xx are interim; the real status follows
		rw.status, rw.wroteHeader = code, true
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *responseRecorder) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.bytes += int64(n)
	return n, err
}

// Flush lets streaming handlers (exports) flush through the recorder.
func (rw *responseRecorder) Flush() {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(rw.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (rw *responseRecorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// httpMetrics are the request metrics; labels are bounded (method names, route templates, statuses).
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer, version string) *httpMetrics {
	m := &httpMetrics{
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clouddb_http_requests_total",
			Help: "HTTP requests by method, route template (\"unmatched\" when none matched) and status.",
		}, []string{"method", "route", "status"})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "clouddb_http_request_duration_seconds",
			Help: "Time to serve an HTTP request, by method and route template.",
			// Fine below 5 ms too: authenticated requests take a fraction of a millisecond.
			Buckets: []float64{.00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"})),
	}
	if version == "" {
		version = "unknown"
	}
	register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "clouddb_build_info",
		Help: "Always 1; the version label is the running build.",
	}, []string{"version"})).WithLabelValues(version).Set(1)
	return m
}

// register registers c, or returns the collector already registered under its name (a second
// Server on the same registry shares the first one's metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(fmt.Sprintf("api: register metrics: %v", err))
}

// methodLabel keeps the method label bounded: a client can send any token as a method.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// maxUserAgent is the most bytes of a User-Agent that reach the event log (metadata, sessions,
// failed logins): a client chooses the header, and net/http lets through up to 1 MB of headers.
const maxUserAgent = 512

// userAgent is the request's User-Agent as it is recorded: invalid UTF-8 replaced by U+FFFD, then
// cut to at most maxUserAgent bytes at a rune boundary.
func userAgent(r *http.Request) string {
	ua := strings.ToValidUTF8(r.UserAgent(), "\uFFFD")
	if len(ua) <= maxUserAgent {
		return ua
	}
	cut := maxUserAgent
	for cut > 0 && !utf8.RuneStart(ua[cut]) {
		cut--
	}
	return ua[:cut]
}

// remoteIP is the peer address without its port. Forwarding headers are not trusted here.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
