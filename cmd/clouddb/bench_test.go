package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/config"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/projections"
)

// Benchmarks of authentication through the real handler chain of a started App (middleware,
// router, guard, handler, on a fresh migrated database), called with httptest.NewRecorder: no
// network, so the numbers are the server's share of a request. See docs/PERFORMANCE.md
// ("Authentication") for the commands and results.

const authBenchPassword = "Bench-Password-1234!"

// authBenchApp is a served App, its handler and the level of its logger (JSON lines to /dev/null, so
// that an info level pays for formatting and the write system call, as in production).
type authBenchApp struct {
	*App
	handler http.Handler
	level   *slog.LevelVar
}

// startAuthBenchApp serves an App on a fresh database; bcryptCost 0 keeps the default (12).
func startAuthBenchApp(b *testing.B, bcryptCost int) *authBenchApp {
	b.Helper()
	cfg, err := config.FromEnv(func(name string) string {
		switch name {
		case "CLOUDDB_BCRYPT_COST":
			if bcryptCost != 0 {
				return fmt.Sprint(bcryptCost)
			}
		case "CLOUDDB_MGMT_DSN":
			return testdb.DSN(b)
		case "CLOUDDB_HTTP_ADDR", "CLOUDDB_METRICS_ADDR":
			return "127.0.0.1:0"
		case "CLOUDDB_DATA_DIR":
			return b.TempDir()
		}
		return ""
	})
	if err != nil {
		b.Fatal(err)
	}
	if bcryptCost == 0 && cfg.BcryptCost != 12 {
		b.Fatalf("default bcrypt cost is %d, these benchmarks are about 12", cfg.BcryptCost)
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { devNull.Close() })
	level := &slog.LevelVar{}
	level.Set(slog.LevelWarn)
	app, err := Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(devNull, &slog.HandlerOptions{Level: level})))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := app.Close(); err != nil {
			b.Error(err)
		}
	})
	if err := app.Serve(context.Background()); err != nil {
		b.Fatal(err)
	}
	return &authBenchApp{App: app, handler: app.server.Handler, level: level}
}

// createAccounts makes n verified accounts (Bootstrap: a verified super admin without tenant,
// which logs in exactly like any user without tenant), GOMAXPROCS at a time: each costs a bcrypt
// hash at cost 12.
func (a *authBenchApp) createAccounts(b *testing.B, n int) []string {
	b.Helper()
	emails := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range emails {
		emails[i] = "bench-" + uuid.NewString() + "@example.com"
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := a.Identity.Bootstrap(context.Background(), emails[i], authBenchPassword); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("create accounts: %v", err)
	}
	return emails
}

// authClientAddr is a distinct client address per login, so that the per-IP login limit (10 at once,
// then one every 6 s) never refuses a benchmark request.
func authClientAddr(i int64) string {
	return fmt.Sprintf("10.%d.%d.%d:1234", (i>>16)&255, (i>>8)&255, i&255)
}

// login is POST /api/v1/auth/login through the handler chain; it returns the status and the
// access token.
func (a *authBenchApp) login(email, remoteAddr string) (int, string, string) {
	body, _ := json.Marshal(map[string]string{"email": email, "password": authBenchPassword})
	req := httptest.NewRequest(http.MethodPost, "/api/v1/auth/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = remoteAddr
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(rec.Body.Bytes(), &pair) //nolint:errcheck // an empty token fails the caller
	return rec.Code, pair.AccessToken, rec.Body.String()
}

// me is GET /api/v1/me through the handler chain.
func (a *authBenchApp) me(token string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// authLatencies collects the per-goroutine latency slices of a benchmark run.
type authLatencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *authLatencies) add(part []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, part...)
	l.mu.Unlock()
}

// report adds throughput and latency percentiles (nearest rank) to the benchmark's results.
func (l *authLatencies) report(b *testing.B, elapsed time.Duration, unit string, scale time.Duration, scaleName string) {
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	b.ReportMetric(float64(len(l.all))/elapsed.Seconds(), unit)
	b.ReportMetric(authPercentile(l.all, 0.50)/float64(scale), "p50_"+scaleName)
	b.ReportMetric(authPercentile(l.all, 0.99)/float64(scale), "p99_"+scaleName)
}

// authPercentile is the nearest-rank q-th value of sorted.
func authPercentile(sorted []time.Duration, q float64) float64 {
	i := min(len(sorted)-1, max(0, int(math.Ceil(q*float64(len(sorted))))-1))
	return float64(sorted[i])
}

// authLoad is how a benchmark calls its operation b.N times:
//
//	goroutines=1     a plain loop, one call at a time (latency without queueing)
//	goroutines=32    b.RunParallel with 32 goroutines, each calling as soon as its last call
//	                 returned (closed loop: the most the process serves; latency is then mostly
//	                 queueing, about 32 / throughput)
//	rate=3000        32 goroutines calling on a fixed schedule, call k due at k/3000 s (open
//	                 loop at the goal's rate); p99_from_due_us adds any wait for a free goroutine
type authLoad struct {
	name       string
	goroutines int
	rate       int // calls/s; 0: closed loop
}

var authLoads = []authLoad{{"goroutines=1", 1, 0}, {"goroutines=32", 32, 0}, {"rate=3000", 32, 3000}}

// authMeasure calls op b.N times under ld and reports calls/s (as unit) and p50/p99 in µs; any
// error fails the benchmark.
func authMeasure(b *testing.B, ld authLoad, unit string, op func() error) {
	b.ReportAllocs()
	var lat, fromDue authLatencies
	var failed atomic.Int64
	var firstErr atomic.Value
	call := func(local []time.Duration) []time.Duration {
		t0 := time.Now()
		err := op()
		local = append(local, time.Since(t0))
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}
		return local
	}
	b.ResetTimer()
	start := time.Now()
	switch {
	case ld.rate > 0:
		var next atomic.Int64
		var wg sync.WaitGroup
		for range ld.goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var local, localDue []time.Duration
				for k := next.Add(1) - 1; k < int64(b.N); k = next.Add(1) - 1 {
					due := start.Add(time.Duration(k) * time.Second / time.Duration(ld.rate))
					time.Sleep(time.Until(due))
					local = call(local)
					localDue = append(localDue, time.Since(due))
				}
				lat.add(local)
				fromDue.add(localDue)
			}()
		}
		wg.Wait()
	case ld.goroutines == 1:
		local := make([]time.Duration, 0, b.N)
		for range b.N {
			local = call(local)
		}
		lat.add(local)
	default:
		b.SetParallelism(max(1, ld.goroutines/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			var local []time.Duration
			for pb.Next() {
				local = call(local)
			}
			lat.add(local)
		})
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d calls failed; first: %v", n, b.N, firstErr.Load())
	}
	lat.report(b, elapsed, unit, time.Microsecond, "us")
	if len(fromDue.all) > 0 {
		slices.Sort(fromDue.all)
		b.ReportMetric(authPercentile(fromDue.all, 0.99)/float64(time.Microsecond), "p99_from_due_us")
	}
}

// BenchmarkAuthenticatedRequest is GET /api/v1/me with a bearer token: request id, metrics, access
// log, router, guard (JWT verify, sessions read model, activity tracker), the handler (users read
// model) and the JSON answer, under each load (see authLoad). log=warn is the setting of the
// measurements; log=info adds the access log line of every request. p50_us and p99_us are the
// time in ServeHTTP.
//
//	go test -run '^$' -bench 'BenchmarkAuthenticatedRequest' -benchtime 30000x ./cmd/clouddb/
func BenchmarkAuthenticatedRequest(b *testing.B) {
	a := startAuthBenchApp(b, 0)
	email := a.createAccounts(b, 1)[0]
	code, token, body := a.login(email, "127.0.0.1:40000")
	if code != http.StatusOK || token == "" {
		b.Fatalf("login = %d %s", code, body)
	}
	// The first request of a session reads and writes its activity row; later ones within a
	// minute find it in the tracker's cache. Do it now, so the runs authMeasure the steady state.
	if code, body := a.me(token); code != http.StatusOK || !strings.Contains(body, email) {
		b.Fatalf("GET /me = %d %s", code, body)
	}
	for _, level := range []slog.Level{slog.LevelWarn, slog.LevelInfo} {
		for _, ld := range authLoads {
			b.Run(fmt.Sprintf("log=%s/%s", strings.ToLower(level.String()), ld.name), func(b *testing.B) {
				a.level.Set(level)
				defer a.level.Set(slog.LevelWarn)
				authMeasure(b, ld, "req/s", func() error {
					if code, body := a.me(token); code != http.StatusOK {
						return fmt.Errorf("GET /me = %d %s", code, body)
					}
					return nil
				})
			})
		}
	}
}

// BenchmarkAuthenticationParts times the pieces of an authenticated request that
// BenchmarkAuthenticatedRequest puts together:
//
//	jwt_verify          the access token check as api.Tokens.parse does it (HS256, issuer, expiry)
//	session_query       the sessions read model by id (the guard, on every authenticated request)
//	user_query          the users read model by id (the /me handler)
//	session_then_user   both, one after the other, as GET /me does them
//	session_join_user   the same rows in one query (sessions JOIN users): what /me would cost
//	                    with one round trip fewer
//
// The activity tracker's cached check is a map lookup under a mutex, not worth a benchmark.
//
//	go test -run '^$' -bench 'BenchmarkAuthenticationParts' -benchtime 30000x ./cmd/clouddb/
func BenchmarkAuthenticationParts(b *testing.B) {
	a := startAuthBenchApp(b, 0)
	email := a.createAccounts(b, 1)[0]
	code, token, body := a.login(email, "127.0.0.1:40000")
	if code != http.StatusOK {
		b.Fatalf("login = %d %s", code, body)
	}
	type claims struct {
		jwt.RegisteredClaims
		SessionID string `json:"sid"`
	}
	var c claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		b.Fatal(err)
	}
	b.Run("jwt_verify", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var got claims
			_, err := jwt.ParseWithClaims(token, &got, func(*jwt.Token) (any, error) { return a.Config.JWTSecret, nil },
				jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithExpirationRequired(),
				jwt.WithIssuer("clouddb"), jwt.WithTimeFunc(a.Now))
			if err != nil || got.SessionID != c.SessionID {
				b.Fatalf("verify: %v", err)
			}
		}
	})
	ctx := context.Background()
	session := func() error { _, err := a.views.Session(ctx, domain.SessionID(c.SessionID)); return err }
	user := func() error { _, err := a.views.User(ctx, domain.UserID(c.Subject)); return err }
	join := func() error {
		var s projections.SessionView
		var u projections.UserView
		var tenant, role, endReason string
		var idle int64
		var refreshed, ended, lastLogin, changed sql.NullTime
		return a.DB.QueryRowContext(ctx, `SELECT s.session_id, s.user_id, COALESCE(s.tenant_id, ''), COALESCE(s.role, ''),
			s.super_admin, s.started_at, s.expires_at, s.idle_timeout_s, s.ip, s.user_agent, s.refreshed_at, s.ended_at,
			COALESCE(s.end_reason, ''), u.email, u.name, u.status, u.super_admin, u.totp_enabled, u.created_at,
			u.last_login_at, u.password_changed_at
			FROM sessions s JOIN users u ON u.user_id = s.user_id WHERE s.session_id = ?`, c.SessionID).Scan(
			&s.ID, &s.UserID, &tenant, &role, &s.SuperAdmin, &s.StartedAt, &s.ExpiresAt, &idle, &s.IP, &s.UserAgent,
			&refreshed, &ended, &endReason, &u.Email, &u.Name, &u.Status, &u.SuperAdmin, &u.TOTPEnabled, &u.CreatedAt,
			&lastLogin, &changed)
	}
	for _, q := range []struct {
		name string
		op   func() error
	}{
		{"session_query", session},
		{"user_query", user},
		{"session_then_user", func() error {
			if err := session(); err != nil {
				return err
			}
			return user()
		}},
		{"session_join_user", join},
	} {
		for _, ld := range authLoads {
			b.Run(q.name+"/"+ld.name, func(b *testing.B) { authMeasure(b, ld, "calls/s", q.op) })
		}
	}
}

// BenchmarkLogin is POST /api/v1/auth/login through the handler chain: the per-IP and
// per-account limits, the email claim lookup, loading the user's stream, one bcrypt comparison,
// the tenant lookup, appending user and session events, waiting for the identity read models, and
// signing the access token. cost=12 is the default bcrypt cost; cost=4 (a 1 ms bcrypt) shows what
// everything but bcrypt costs. Compare with BenchmarkBcryptCompare at the same cost.
//
// The App's login limits would refuse a benchmark: each request comes from its own client address
// (10.x.y.z), and each account serves at most 10 logins (its burst), so b.N/10 accounts are made
// before the timer starts. parallel is b.RunParallel with GOMAXPROCS goroutines.
//
//	go test -run '^$' -bench 'BenchmarkLogin/cost=12|BenchmarkBcryptCompare/cost=12' -benchtime 40x ./cmd/clouddb/
//	go test -run '^$' -bench 'BenchmarkLogin/cost=4|BenchmarkBcryptCompare/cost=4' -benchtime 2000x ./cmd/clouddb/
func BenchmarkLogin(b *testing.B) {
	for _, cost := range []int{12, 4} {
		b.Run(fmt.Sprintf("cost=%d", cost), func(b *testing.B) {
			a := startAuthBenchApp(b, cost)
			var addr atomic.Int64 // across runs: a client address is never used twice
			for _, mode := range []string{"sequential", "parallel"} {
				b.Run(mode, func(b *testing.B) { benchmarkLogin(b, a, mode == "parallel", &addr) })
			}
		})
	}
}

func benchmarkLogin(b *testing.B, a *authBenchApp, parallel bool, addr *atomic.Int64) {
	emails := a.createAccounts(b, (b.N+9)/10)
	var next atomic.Int64
	var lat authLatencies
	var failed atomic.Int64
	var firstFailure atomic.Value
	login := func(local []time.Duration) []time.Duration {
		i := next.Add(1) - 1
		t0 := time.Now()
		code, token, body := a.login(emails[i/10], authClientAddr(addr.Add(1)))
		local = append(local, time.Since(t0))
		if code != http.StatusOK || token == "" {
			failed.Add(1)
			firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %s", code, body))
		}
		return local
	}
	b.ResetTimer()
	start := time.Now()
	if !parallel {
		local := make([]time.Duration, 0, b.N)
		for range b.N {
			local = login(local)
		}
		lat.add(local)
	} else {
		b.RunParallel(func(pb *testing.PB) {
			var local []time.Duration
			for pb.Next() {
				local = login(local)
			}
			lat.add(local)
		})
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d logins failed; first: %v", n, b.N, firstFailure.Load())
	}
	lat.report(b, elapsed, "logins/s", time.Microsecond, "us")
}

// BenchmarkBcryptCompare is the raw cost of the password check of a login:
// golang.org/x/crypto/bcrypt.CompareHashAndPassword against a hash of the given cost, one at a
// time and on every core (b.RunParallel).
//
//	go test -run '^$' -bench 'BenchmarkBcryptCompare/cost=12' -benchtime 40x ./cmd/clouddb/
func BenchmarkBcryptCompare(b *testing.B) {
	for _, cost := range []int{12, 4} {
		b.Run(fmt.Sprintf("cost=%d", cost), func(b *testing.B) {
			hash, err := bcrypt.GenerateFromPassword([]byte(authBenchPassword), cost)
			if err != nil {
				b.Fatal(err)
			}
			compare := func() {
				if err := bcrypt.CompareHashAndPassword(hash, []byte(authBenchPassword)); err != nil {
					panic(err)
				}
			}
			b.Run("sequential", func(b *testing.B) {
				start := time.Now()
				for range b.N {
					compare()
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "compares/s")
			})
			b.Run("parallel", func(b *testing.B) {
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						compare()
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "compares/s")
			})
		})
	}
}
