package main

// Benchmarks of database provisioning end to end: POST /api/v1/databases over real HTTP on
// 127.0.0.1 to a served App (fresh management database, info-level JSON log), whose sandbox server
// is the local MariaDB, until the 201 with the running database and its connection details has
// been read. Every benchmark run has its own CLOUDDB_SANDBOX_PREFIX and drops every schema and
// account of it from the server afterwards (and fails if the count is not what it created). See
// docs/PERFORMANCE.md ("Database provisioning") for the commands and the results.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/internal/config"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// provisionLog is the App's log: it keeps took_ms of every "database provisioned" line (the
// reactor's own time for one database: schema, accounts, grants, secrets, sample data) and drops
// the rest.
type provisionLog struct {
	mu   sync.Mutex
	took []time.Duration
}

func (l *provisionLog) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(`"msg":"database provisioned"`)) {
		var line struct {
			TookMS int64 `json:"took_ms"`
		}
		if json.Unmarshal(p, &line) == nil {
			l.mu.Lock()
			l.took = append(l.took, time.Duration(line.TookMS)*time.Millisecond)
			l.mu.Unlock()
		}
	}
	return len(p), nil
}

func (l *provisionLog) reset() {
	l.mu.Lock()
	l.took = nil
	l.mu.Unlock()
}

func (l *provisionLog) durations() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.took)
}

// percentile is the nearest-rank q-quantile of d (sorted in place).
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := min(len(d)-1, max(0, int(q*float64(len(d))+0.999999)-1))
	return d[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// provisioningBench is a served App with a super admin and a sandbox prefix of its own.
type provisioningBench struct {
	b       *testing.B
	app     *App
	base    string
	hc      *http.Client
	log     *provisionLog
	created atomic.Int64 // databases created (201 running), warm-ups included
}

const provisioningBenchAdmin, provisioningBenchPassword = "bench-root@example.com", "Bench-Root-Password-1!"

// startProvisioningBench serves an App for one benchmark run, configured by extra on top of the
// defaults; when the run ends, it is closed and the sandbox prefix's schemas and accounts are
// dropped and counted.
func startProvisioningBench(b *testing.B, extra map[string]string) *provisioningBench {
	b.Helper()
	prefix := newSandboxPrefix()
	p := &provisioningBench{b: b, log: &provisionLog{}}
	b.Cleanup(func() { // registered first: runs after the App is closed
		schemas, accounts := dropSandboxObjects(b, prefix)
		if n := p.created.Load(); int64(schemas) != n || int64(accounts) != 2*n {
			b.Errorf("dropped %d schemas and %d accounts of %s, want %d and %d (one schema and two accounts per database created)",
				schemas, accounts, prefix, n, 2*n)
		}
	})
	vars := map[string]string{
		"CLOUDDB_MGMT_DSN":                 testdb.DSN(b),
		"CLOUDDB_HTTP_ADDR":                "127.0.0.1:0",
		"CLOUDDB_METRICS_ADDR":             "127.0.0.1:0",
		"CLOUDDB_FREE_TENANTS_PER_USER":    "1000", // the admin founds every benchmark tenant
		"CLOUDDB_DATA_DIR":                 b.TempDir(),
		"CLOUDDB_BCRYPT_COST":              "4", // logins are set-up, not measured
		"CLOUDDB_LOG_LEVEL":                "info",
		"CLOUDDB_SANDBOX_PREFIX":           prefix,
		"CLOUDDB_BOOTSTRAP_ADMIN_EMAIL":    provisioningBenchAdmin,
		"CLOUDDB_BOOTSTRAP_ADMIN_PASSWORD": provisioningBenchPassword,
	}
	for name, value := range extra {
		vars[name] = value
	}
	cfg, err := config.FromEnv(func(name string) string { return vars[name] })
	if err != nil {
		b.Fatal(err)
	}
	app, err := Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(p.log, &slog.HandlerOptions{Level: cfg.LogLevel})))
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
	transport := &http.Transport{MaxIdleConnsPerHost: 32}
	b.Cleanup(transport.CloseIdleConnections)
	p.app, p.base, p.hc = app, "http://"+app.Addr()+"/api/v1", &http.Client{Transport: transport, Timeout: time.Minute}
	return p
}

// call sends one JSON request and decodes the JSON answer.
func (p *provisioningBench) call(method, path, token string, body any) (int, map[string]any, error) {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, p.base+path, reader)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil && err != io.EOF {
		return resp.StatusCode, nil, fmt.Errorf("%s %s = %d: %w", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, doc, nil
}

func (p *provisioningBench) must(status int, method, path, token string, body any) map[string]any {
	p.b.Helper()
	got, doc, err := p.call(method, path, token, body)
	if err != nil || got != status {
		p.b.Fatalf("%s %s = %d %v (%v), want %d", method, path, got, doc, err, status)
	}
	return doc
}

// tenants makes n tenants on the enterprise plan (500 databases each) and returns an access token
// of a session in each: the super admin creates them (becoming their tenant_admin), moves them to
// the enterprise plan and logs in to each.
func (p *provisioningBench) tenants(n int) []string {
	p.b.Helper()
	login := func(tenant string) string {
		body := map[string]any{"email": provisioningBenchAdmin, "password": provisioningBenchPassword}
		if tenant != "" {
			body["tenant"] = tenant
		}
		token, _ := p.must(200, "POST", "/auth/login", "", body)["access_token"].(string)
		return token
	}
	admin := login("")
	tokens := make([]string, n)
	for i := range tokens {
		id, _ := p.must(201, "POST", "/tenants", admin, map[string]any{"name": fmt.Sprintf("Bench tenant %d", i)})["id"].(string)
		p.must(200, "PUT", "/admin/tenants/"+id+"/plan", admin, map[string]any{"plan": "enterprise"})
		tokens[i] = login(id)
	}
	return tokens
}

// create posts one database and returns how long the answer took; anything but 201 running fails
// the benchmark.
func (p *provisioningBench) create(token, name, template string) (time.Duration, error) {
	began := time.Now()
	status, doc, err := p.call("POST", "/databases", token, map[string]any{"name": name, "template": template})
	took := time.Since(began)
	if err != nil {
		return took, err
	}
	if status != 201 || doc["state"] != "running" {
		return took, fmt.Errorf("POST /databases %s = %d %v, want 201 running", name, status, doc)
	}
	if conn, _ := doc["connection"].(map[string]any); conn == nil || conn["password"] == "" {
		return took, fmt.Errorf("POST /databases %s: no connection details: %v", name, doc)
	}
	p.created.Add(1)
	return took, nil
}

// BenchmarkDatabaseProvisioning is the latency of one POST /databases at a time (blank or sample
// template), from sending the request to reading the 201 with the running database. Reported:
// p50_ms and p99_ms end to end, and reactor_p50_ms, the provisioning reactor's own time (schema,
// accounts, grants, secrets, sample data) from its log. One warm-up create precedes the timer.
//
//	go test -run '^$' -bench 'BenchmarkDatabaseProvisioning' -benchtime 50x -count 3 ./cmd/clouddb/
func BenchmarkDatabaseProvisioning(b *testing.B) {
	for _, template := range []string{"blank", "sample"} {
		b.Run("template="+template, func(b *testing.B) {
			p := startProvisioningBench(b, nil)
			token := p.tenants(1)[0]
			if _, err := p.create(token, "warm_up", template); err != nil {
				b.Fatal(err)
			}
			p.log.reset()
			latencies := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				took, err := p.create(token, fmt.Sprintf("db_%d", i), template)
				if err != nil {
					b.Fatal(err)
				}
				latencies = append(latencies, took)
			}
			b.StopTimer()
			b.ReportMetric(ms(percentile(latencies, 0.50)), "p50_ms")
			b.ReportMetric(ms(percentile(latencies, 0.99)), "p99_ms")
			b.ReportMetric(ms(percentile(p.log.durations(), 0.50)), "reactor_p50_ms")
		})
	}
}

// BenchmarkDatabaseCreateThroughput is concurrent creators, each in its own tenant (blank
// template), sharing b.N creates: creators=8 is the measurement, creators=1 the same loop
// one at a time for comparison. Reported: databases/s (created and answered 201 running), p50_ms
// and p99_ms of each create as its creator saw it.
//
//	go test -run '^$' -bench 'BenchmarkDatabaseCreateThroughput' -benchtime 400x -count 3 ./cmd/clouddb/
func BenchmarkDatabaseCreateThroughput(b *testing.B) {
	for _, creators := range []int{1, 8} {
		b.Run(fmt.Sprintf("creators=%d", creators), func(b *testing.B) { benchmarkCreateThroughput(b, creators) })
	}
}

func benchmarkCreateThroughput(b *testing.B, creators int) {
	p := startProvisioningBench(b, nil)
	tokens := p.tenants(creators)
	for i, token := range tokens {
		if _, err := p.create(token, fmt.Sprintf("warm_up_%d", i), "blank"); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	var failures []string
	var wg sync.WaitGroup
	b.ResetTimer()
	began := time.Now()
	for g := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					break
				}
				took, err := p.create(tokens[g], fmt.Sprintf("db_%d", i), "blank")
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					return
				}
				mine = append(mine, took)
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	b.StopTimer()
	if len(failures) > 0 {
		b.Fatalf("%d creates failed: %s", len(failures), strings.Join(failures[:min(3, len(failures))], "; "))
	}
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "databases/s")
	b.ReportMetric(ms(percentile(latencies, 0.50)), "p50_ms")
	b.ReportMetric(ms(percentile(latencies, 0.99)), "p99_ms")
}
