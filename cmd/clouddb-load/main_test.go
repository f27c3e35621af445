package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer answers like clouddb: a login route, a bearer-protected /api/v1/me and /metrics.
type fakeServer struct {
	me, logins atomic.Int64
	failEvery  int64 // answer 500 to every failEvery-th /me; 0 never
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/auth/login":
		var req struct{ Email, Password string }
		if json.NewDecoder(r.Body).Decode(&req) != nil || req.Email != "a@example.com" || req.Password != "Secret-123" {
			http.Error(w, `{"error":{"code":"invalid_credentials"}}`, http.StatusUnauthorized)
			return
		}
		f.logins.Add(1)
		fmt.Fprint(w, `{"access_token":"tok-1","token_type":"Bearer"}`)
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/me":
		if r.Header.Get("Authorization") != "Bearer tok-1" {
			http.Error(w, "{}", http.StatusUnauthorized)
			return
		}
		n := f.me.Add(1)
		if f.failEvery > 0 && n%f.failEvery == 0 {
			http.Error(w, "{}", http.StatusInternalServerError)
			return
		}
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		fmt.Fprint(w, `{"user":{"id":"u"}}`)
	case r.URL.Path == "/metrics":
		n := f.me.Load()
		fmt.Fprintf(w, "# TYPE clouddb_http_request_duration_seconds histogram\n")
		for _, b := range []struct {
			le string
			v  int64
		}{{"0.001", n * 6 / 10}, {"0.005", n}, {"+Inf", n}} {
			fmt.Fprintf(w, "clouddb_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/me\",le=%q} %d\n", b.le, b.v)
		}
		fmt.Fprintf(w, "clouddb_http_request_duration_seconds_sum{method=\"GET\",route=\"/api/v1/me\"} %g\n", float64(n)*0.0005)
		fmt.Fprintf(w, "clouddb_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/me\"} %d\n", n)
	default:
		http.NotFound(w, r)
	}
}

func runTool(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestLoadRunsForItsDurationAndReportsEveryRequest(t *testing.T) {
	fake := &fakeServer{}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	started := time.Now()
	code, out, errs := runTool(t, "-url", srv.URL, "-email", "a@example.com", "-password", "Secret-123",
		"-c", "4", "-d", "500ms", "-warmup", "100ms", "-server-metrics", "-metrics-url", srv.URL, "-progress", "100ms")
	took := time.Since(started)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	// A run that ignored -d would measure for the default 10 s: 9 s, some 14 times what this run
	// takes, tells the two apart however busy the machine.
	if took < 600*time.Millisecond || took > 9*time.Second {
		t.Fatalf("a 100 ms warmup and a 500 ms run took %v", took)
	}
	if fake.logins.Load() != 1 {
		t.Fatalf("%d logins, want 1", fake.logins.Load())
	}
	m := regexp.MustCompile(`requests:\s+(\d+) in`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no request count in:\n%s", out)
	}
	measured, _ := strconv.ParseInt(m[1], 10, 64)
	warm := regexp.MustCompile(`warmup: (\d+) requests`).FindStringSubmatch(out)
	if warm == nil {
		t.Fatalf("no warmup line in:\n%s", out)
	}
	warmed, _ := strconv.ParseInt(warm[1], 10, 64)
	if measured == 0 || measured+warmed != fake.me.Load() {
		t.Fatalf("reported %d measured + %d warmup requests, the server answered %d", measured, warmed, fake.me.Load())
	}
	for _, want := range []string{"requests/s", "p50 ", "p90 ", "p99 ", "max ", fmt.Sprintf("200×%d", measured),
		fmt.Sprintf("server:      %d requests to /api/v1/me, mean 0.500ms, p50 ≤ 1ms, p99 ≤ 5ms", measured)} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "msg=progress") {
		t.Errorf("no progress log lines:\n%s", errs)
	}
}

func TestLoadFailsOnNon2xxAndStopsAtMaxRequests(t *testing.T) {
	fake := &fakeServer{failEvery: 10}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	code, out, _ := runTool(t, "-url", srv.URL, "-token", "tok-1", "-c", "3", "-d", "10s", "-n", "50")
	if code != 1 {
		t.Fatalf("exit code %d with 500s, want 1:\n%s", code, out)
	}
	if fake.me.Load() != 50 || !strings.Contains(out, "200×45, 500×5") {
		t.Fatalf("server saw %d requests, want 50 (45 × 200, 5 × 500):\n%s", fake.me.Load(), out)
	}
}

func TestLoadRefusesMisuse(t *testing.T) {
	for _, args := range [][]string{
		{"-url", "http://192.0.2.1:8080"}, // not loopback
		{"-token", "x", "-email", "a@example.com", "-password", "p"},
		{"-email", "a@example.com"},
		{"-c", "0"},
		{"-d", "2h"},
		{"-url", "ftp://127.0.0.1"},
	} {
		if code, _, errs := runTool(t, args...); code != 2 {
			t.Errorf("%v: exit code %d, want 2 (%s)", args, code, errs)
		}
	}
}

func TestHistogramQuantilesAreWithinOnePercent(t *testing.T) {
	var h histogram
	var values []time.Duration
	for i := 1; i <= 100_000; i++ {
		d := time.Duration(i) * 700 * time.Nanosecond // 0.7 µs to 70 ms
		values = append(values, d)
		h.record(d)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := values[int(q*float64(len(values)))-1]
		got := h.quantile(q)
		if got < exact || float64(got-exact) > 0.008*float64(exact) {
			t.Errorf("q%v = %v, exact %v", q, got, exact)
		}
	}
	if h.quantile(1) != values[len(values)-1] || h.max != values[len(values)-1] {
		t.Errorf("max = %v / %v, want %v", h.quantile(1), h.max, values[len(values)-1])
	}
	for _, v := range []time.Duration{0, 1, 255, 256, 511, 512, 1 << 40, 1<<63 - 1} {
		if i := bucketOf(v); i < 0 || i >= histBuckets || bucketHigh(i) < v || (i > 0 && bucketHigh(i-1) >= v) {
			t.Errorf("value %d in bucket %d, which holds up to %d", v, i, bucketHigh(i))
		}
	}
}

func TestLoadKeepsAFixedRate(t *testing.T) {
	fake := &fakeServer{}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	// 100 requests at 200/s: the last is due 495 ms after the first, so the run cannot end sooner,
	// and 10 s leaves a loaded machine room to send them all. (Counting the requests of a 500 ms
	// run instead loses the last ones when the machine stalls the workers near its end.)
	started := time.Now()
	code, out, errs := runTool(t, "-url", srv.URL, "-token", "tok-1", "-c", "4", "-d", "10s", "-n", "100", "-rate", "200")
	took := time.Since(started)
	if code != 0 {
		t.Fatalf("exit code %d\n%s\n%s", code, out, errs)
	}
	if n := fake.me.Load(); n != 100 {
		t.Fatalf("%d requests, want 100", n)
	}
	if took < 495*time.Millisecond {
		t.Fatalf("100 requests at 200/s took %v, want at least 495 ms", took)
	}
	if !strings.Contains(out, "from due:") {
		t.Fatalf("no latency from due time:\n%s", out)
	}
}
