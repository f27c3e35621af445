package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Benchmarks of the query endpoint against the same MariaDB, side by side with go-sql-driver
// talking to the database directly. See docs/PERFORMANCE.md ("Query execution").

// queryBench is a served App with one enterprise tenant and one database in it.
type queryBench struct {
	*provisioningBench
	token, id string
	conn      map[string]any // the database's connection details
}

func startQueryBench(b *testing.B) *queryBench {
	b.Helper()
	p := startProvisioningBench(b, map[string]string{"CLOUDDB_QUERY_RATE": "1000000"})
	q := &queryBench{provisioningBench: p, token: p.tenants(1)[0]}
	doc := p.must(201, "POST", "/databases", q.token, map[string]any{"name": "bench"})
	p.created.Add(1)
	q.id, _ = doc["id"].(string)
	q.conn, _ = doc["connection"].(map[string]any)
	return q
}

// direct opens a pool on the database's read-write account, as a client of the database would.
func (q *queryBench) direct() *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, _ = q.conn["username"].(string)
	cfg.Passwd, _ = q.conn["password"].(string)
	cfg.DBName, _ = q.conn["database"].(string)
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(fmt.Sprint(q.conn["host"]), fmt.Sprint(q.conn["port"]))
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		q.b.Fatal(err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	q.b.Cleanup(func() { db.Close() })
	return db
}

// run posts one query and checks the answer is a result; body is the JSON request.
func (q *queryBench) run(body []byte) error {
	req, err := http.NewRequest("POST", q.base+"/databases/"+q.id+"/query", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+q.token)
	resp, err := q.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("POST query = %d %s", resp.StatusCode, answer)
	}
	return nil
}

// recorded counts the QueryExecuted events in the log.
func (q *queryBench) recorded() int64 {
	var n int64
	if err := q.app.DB.QueryRow(`SELECT COUNT(*) FROM events WHERE event_type = 'query.executed.v1'`).Scan(&n); err != nil {
		q.b.Fatal(err)
	}
	return n
}

// BenchmarkQuerySelect1 is SELECT 1 sent directly with go-sql-driver (path=direct) and through
// POST /databases/{id}/query over loopback HTTP (path=api: authentication, classification, the
// tenant's pool, shaping, the result cache, the query.started.v1 intent made durable before the
// statement and the QueryExecuted outcome queued before the answer), one at a time and from 32
// goroutines. Reported: queries/s, p50_us, p99_us. After the api runs, every query must be in
// the event log.
//
//	go test -run '^$' -bench 'BenchmarkQuerySelect1' -benchtime 3000x -count 3 ./cmd/clouddb/
func BenchmarkQuerySelect1(b *testing.B) {
	q := startQueryBench(b)
	direct := q.direct()
	body, _ := json.Marshal(map[string]any{"sql": "SELECT 1"})
	sent := atomic.Int64{}
	before := q.recorded()
	for _, ld := range authLoads[:2] {
		b.Run("path=direct/"+ld.name, func(b *testing.B) {
			authMeasure(b, ld, "queries/s", func() error {
				var one int
				return direct.QueryRow("SELECT 1").Scan(&one)
			})
		})
		b.Run("path=api/"+ld.name, func(b *testing.B) {
			authMeasure(b, ld, "queries/s", func() error {
				sent.Add(1)
				return q.run(body)
			})
		})
	}
	q.app.QueryRunner.Drain() // outcomes are queued before the answer, committed with the next group
	if got := q.recorded() - before; got != sent.Load() {
		b.Fatalf("%d QueryExecuted events for %d queries answered", got, sent.Load())
	}
}

// BenchmarkQueryExport runs a SELECT of 100,000 rows (about 100 bytes each) with row_limit
// 100000 and downloads its CSV export, per iteration. Reported: peak_extra_MB, the largest heap
// in use above the idle heap (worst iteration) while the query and the export run (sampled every 5 ms), and
// export_MB/s.
//
//	go test -run '^$' -bench 'BenchmarkQueryExport' -benchtime 3x ./cmd/clouddb/
func BenchmarkQueryExport(b *testing.B) {
	q := startQueryBench(b)
	q.must(200, "POST", "/databases/"+q.id+"/query", q.token, map[string]any{"sql": "CREATE TABLE rows100k (id INT PRIMARY KEY, name VARCHAR(60), price DECIMAL(10,2), created DATETIME, note VARCHAR(40))"})
	q.must(200, "POST", "/databases/"+q.id+"/query", q.token, map[string]any{"sql": `INSERT INTO rows100k
		WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 399)
		SELECT a.i * 400 + c.i, CONCAT('customer name number ', a.i * 400 + c.i), (a.i * 400 + c.i) / 100,
			'2026-11-30 12:00:00' - INTERVAL (a.i * 400 + c.i) MINUTE, REPEAT('x', 30)
		FROM n a, n c WHERE a.i < 250`})
	var baseline runtime.MemStats
	var peak atomic.Uint64
	var bytesOut int64
	var worst uint64
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&baseline)
		peak.Store(baseline.HeapInuse)
		stop := make(chan struct{})
		var sampler sync.WaitGroup
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			var m runtime.MemStats
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					runtime.ReadMemStats(&m)
					if m.HeapInuse > peak.Load() {
						peak.Store(m.HeapInuse)
					}
				}
			}
		}()
		b.StartTimer()
		doc := q.must(200, "POST", "/databases/"+q.id+"/query", q.token, map[string]any{
			"sql": "SELECT * FROM rows100k ORDER BY id", "row_limit": 100000, "page_size": 100})
		if doc["row_count"] != float64(100000) {
			b.Fatalf("row_count = %v, want 100000", doc["row_count"])
		}
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/queries/%s/export?format=csv", q.base, doc["query_id"]), nil)
		req.Header.Set("Authorization", "Bearer "+q.token)
		resp, err := q.hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("export = %d, %v", resp.StatusCode, err)
		}
		bytesOut += n
		b.StopTimer()
		close(stop)
		sampler.Wait()
		worst = max(worst, peak.Load()-baseline.HeapInuse)
		b.StartTimer()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(worst)/(1<<20), "peak_extra_MB")
	b.ReportMetric(float64(bytesOut)/(1<<20)/elapsed.Seconds(), "export_MB/s")
}
