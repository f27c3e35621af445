// Command clouddb-load is a small HTTP load generator for measuring CloudDB Manager on loopback.
//
//	clouddb-load -email admin@example.com -password '...' -c 32 -d 10s
//	clouddb-load -token "$ACCESS_TOKEN" -path /api/v1/me -c 1 -d 10s -server-metrics
//
// It runs -c workers that send GET requests back to back over kept-alive connections (one
// http.Client whose Transport holds up to -c connections) for -d, or until -n requests, records
// the latency of every request in a log-linear histogram (relative error under 0.8 %), and prints
// requests/s, p50/p90/p99/p99.9/max and the count of each status code. With -rate it sends on a
// fixed schedule instead (open loop) and also reports latency from each request's due time. It
// exits 1 if any request failed or answered anything but 2xx, 2 on a usage error. Only loopback
// targets are accepted: the load generator and the server then share the machine, which the
// numbers must be read with.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const usageText = `usage: clouddb-load [flags]

Sends GET requests to one path of a CloudDB Manager server on loopback (127.0.0.0/8, ::1 or a
name resolving only to those; other targets are refused) from -c concurrent workers over
kept-alive connections, for -d or until -n requests, and prints requests/s, latency percentiles
and status codes. Each worker sends its next request when the previous one is answered, unless
-rate sets a fixed schedule (request k due at k/rate s; latency from the due time is printed too). Authenticates with -token, or logs in first with -email and -password (POST
/api/v1/auth/login), or sends no credentials. Exits 1 if any request failed or was not 2xx.

The load generator competes with the server for the same CPUs: say so next to its numbers.

flags:
`

// config is one run's settings, from the command line.
type config struct {
	base          *url.URL
	path          string
	token         string
	email         string
	password      string
	concurrency   int
	duration      time.Duration
	maxRequests   int64
	rate          float64
	warmup        time.Duration
	timeout       time.Duration
	serverMetrics bool
	metricsBase   *url.URL
	route         string
	progress      time.Duration
}

// Bounds that keep a run finite whatever the flags say.
const (
	maxDuration    = time.Hour
	maxConcurrency = 1024
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code: 0 all 2xx, 1 failures, 2 misuse.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "clouddb-load: "+err.Error())
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := checkLoopback(ctx, cfg.base.Hostname()); err != nil {
		fmt.Fprintln(stderr, "clouddb-load: "+err.Error())
		return 2
	}
	client := newClient(cfg.concurrency, cfg.timeout)
	defer client.CloseIdleConnections()

	if cfg.email != "" {
		token, err := login(ctx, client, cfg.base, cfg.email, cfg.password)
		if err != nil {
			fmt.Fprintln(stderr, "clouddb-load: log in: "+err.Error())
			return 1
		}
		cfg.token = token
		log.Info("logged in", "email", cfg.email)
	}
	target := cfg.base.JoinPath(cfg.path)
	l := &loader{client: client, target: target.String(), token: cfg.token, log: log}

	failed := false
	if cfg.warmup > 0 {
		log.Info("warming up", "duration", cfg.warmup, "concurrency", cfg.concurrency)
		w := l.load(ctx, phase{concurrency: cfg.concurrency, duration: cfg.warmup, rate: cfg.rate, progress: cfg.progress})
		fmt.Fprintf(stdout, "warmup: %d requests in %v, statuses %s\n", w.total(), w.elapsed.Round(time.Millisecond), w.statusText())
		failed = w.failed()
	}
	var before map[string]float64
	if cfg.serverMetrics {
		if before, err = scrape(ctx, client, cfg.metricsBase); err != nil {
			fmt.Fprintln(stderr, "clouddb-load: read server metrics: "+err.Error())
			return 1
		}
	}
	log.Info("measuring", "url", target.String(), "concurrency", cfg.concurrency, "duration", cfg.duration,
		"max_requests", cfg.maxRequests, "rate", cfg.rate)
	res := l.load(ctx, phase{concurrency: cfg.concurrency, duration: cfg.duration, maxRequests: cfg.maxRequests, rate: cfg.rate, progress: cfg.progress})
	res.print(stdout, cfg.concurrency)
	if cfg.serverMetrics {
		after, err := scrape(ctx, client, cfg.metricsBase)
		if err != nil {
			fmt.Fprintln(stderr, "clouddb-load: read server metrics: "+err.Error())
			return 1
		}
		printServerMetrics(stdout, serverLatency(before, after, cfg.route))
	}
	if failed || res.failed() {
		fmt.Fprintln(stderr, "clouddb-load: some requests failed or were not 2xx")
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("clouddb-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	var cfg config
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the server (loopback only)")
	fs.StringVar(&cfg.path, "path", "/api/v1/me", "path to GET, relative to -url")
	fs.StringVar(&cfg.token, "token", "", "bearer access token (or use -email and -password)")
	fs.StringVar(&cfg.email, "email", "", "log in with this email first (POST /api/v1/auth/login)")
	fs.StringVar(&cfg.password, "password", "", "password for -email")
	fs.IntVar(&cfg.concurrency, "c", 32, "concurrent workers, each with at most one request in flight")
	fs.DurationVar(&cfg.duration, "d", 10*time.Second, "how long to measure (at most 1h)")
	fs.Int64Var(&cfg.maxRequests, "n", 0, "stop after this many measured requests (0: only -d bounds the run)")
	fs.Float64Var(&cfg.rate, "rate", 0, "send this many requests/s in all, on a fixed schedule (0: each worker sends as fast as it is answered)")
	fs.DurationVar(&cfg.warmup, "warmup", 0, "load for this long before measuring, and discard those latencies")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.BoolVar(&cfg.serverMetrics, "server-metrics", false, "read the server's /metrics before and after, and print its latency histogram for -route")
	metricsBase := fs.String("metrics-url", "http://127.0.0.1:9090", "base URL of the server's operator address (CLOUDDB_METRICS_ADDR) for -server-metrics")
	fs.StringVar(&cfg.route, "route", "", "route label of -server-metrics (default: -path)")
	fs.DurationVar(&cfg.progress, "progress", time.Second, "interval of the progress log lines")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return config{}, fmt.Errorf("-url %q is not an http(s) URL", *base)
	}
	cfg.base = u
	if cfg.metricsBase, err = url.Parse(*metricsBase); err != nil || (cfg.metricsBase.Scheme != "http" && cfg.metricsBase.Scheme != "https") || cfg.metricsBase.Host == "" {
		return config{}, fmt.Errorf("-metrics-url %q is not an http(s) URL", *metricsBase)
	}
	switch {
	case cfg.token != "" && (cfg.email != "" || cfg.password != ""):
		return config{}, errors.New("use -token or -email/-password, not both")
	case (cfg.email == "") != (cfg.password == ""):
		return config{}, errors.New("-email and -password go together")
	case cfg.concurrency < 1 || cfg.concurrency > maxConcurrency:
		return config{}, fmt.Errorf("-c must be from 1 to %d", maxConcurrency)
	case cfg.duration <= 0 || cfg.duration > maxDuration:
		return config{}, fmt.Errorf("-d must be above 0 and at most %v", maxDuration)
	case cfg.warmup < 0 || cfg.warmup > maxDuration:
		return config{}, fmt.Errorf("-warmup must be from 0 to %v", maxDuration)
	case cfg.maxRequests < 0:
		return config{}, errors.New("-n must not be negative")
	case cfg.rate < 0 || cfg.rate > 1e6:
		return config{}, errors.New("-rate must be from 0 to 1000000")
	case cfg.timeout <= 0:
		return config{}, errors.New("-timeout must be positive")
	case cfg.progress <= 0:
		return config{}, errors.New("-progress must be positive")
	}
	if !strings.HasPrefix(cfg.path, "/") {
		cfg.path = "/" + cfg.path
	}
	if cfg.route == "" {
		cfg.route = cfg.path
	}
	return cfg, nil
}

// checkLoopback refuses a target that is not this machine.
func checkLoopback(ctx context.Context, host string) error {
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s is not a loopback address: clouddb-load only targets this machine", host)
		}
		return nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, not a loopback address: clouddb-load only targets this machine", host, ip.IP)
		}
	}
	return nil
}

// newClient keeps one connection per worker alive for the whole run.
func newClient(concurrency int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil, // loopback: never through a proxy
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        concurrency,
			MaxIdleConnsPerHost: concurrency,
			MaxConnsPerHost:     concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// login returns the access token of a new session.
func login(ctx context.Context, client *http.Client, base *url.URL, email, password string) (string, error) {
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.JoinPath("/api/v1/auth/login").String(), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(data, &pair); err != nil || pair.AccessToken == "" {
		return "", fmt.Errorf("the answer carries no access_token: %s", data)
	}
	return pair.AccessToken, nil
}

// loader sends the requests of one run.
type loader struct {
	client *http.Client
	target string
	token  string
	log    *slog.Logger
}

// result is what the workers of one phase saw.
type result struct {
	hist     *histogram
	fromDue  *histogram // with -rate: latency from the due time of each request
	statuses map[int]int64
	errors   map[string]int64 // transport errors by message, requests that got no answer
	elapsed  time.Duration
}

func (r *result) total() int64 {
	var n int64
	for _, c := range r.statuses {
		n += c
	}
	for _, c := range r.errors {
		n += c
	}
	return n
}

func (r *result) failed() bool {
	if len(r.errors) > 0 {
		return true
	}
	for code := range r.statuses {
		if code < 200 || code > 299 {
			return true
		}
	}
	return false
}

func (r *result) statusText() string {
	codes := make([]int, 0, len(r.statuses))
	for code := range r.statuses {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	parts := make([]string, 0, len(codes)+len(r.errors))
	for _, code := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", code, r.statuses[code]))
	}
	for msg, n := range r.errors {
		parts = append(parts, fmt.Sprintf("error×%d (%s)", n, msg))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (r *result) print(w io.Writer, concurrency int) {
	n := r.hist.count()
	fmt.Fprintf(w, "requests:    %d in %v at concurrency %d\n", r.total(), r.elapsed.Round(time.Millisecond), concurrency)
	fmt.Fprintf(w, "throughput:  %.0f requests/s\n", float64(r.total())/r.elapsed.Seconds())
	if n > 0 {
		fmt.Fprintf(w, "latency:     %s  (%d answered)\n", r.hist.summary(), n)
	}
	if r.fromDue != nil && r.fromDue.count() > 0 {
		fmt.Fprintf(w, "from due:    %s  (latency from each request's scheduled time)\n", r.fromDue.summary())
	}
	fmt.Fprintf(w, "statuses:    %s\n", r.statusText())
}

func (h *histogram) summary() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s",
		fmtDur(h.quantile(0.50)), fmtDur(h.quantile(0.90)), fmtDur(h.quantile(0.99)),
		fmtDur(h.quantile(0.999)), fmtDur(h.max), fmtDur(h.mean()))
}

func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
}

// worker is one worker's share of a result; merged at the end so the hot path takes no lock.
type worker struct {
	hist, fromDue histogram
	statuses      map[int]int64
	errors        map[string]int64
}

// phase is what one call of load does.
type phase struct {
	concurrency int
	duration    time.Duration
	maxRequests int64   // stop after this many started requests; 0: no bound
	rate        float64 // requests/s on a fixed schedule; 0: closed loop
	progress    time.Duration
}

// load runs p.concurrency workers for p.duration or until p.maxRequests have been started, and
// waits for the requests in flight. Latency is from just before client.Do to the end of the
// body. With a rate, request k is due at start + k/rate: a worker waits for the next due time,
// and the latency from the due time is recorded too, so that a server (or a client) falling
// behind the schedule shows in the numbers instead of slowing the schedule down.
func (l *loader) load(ctx context.Context, p phase) *result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var started, done, bad atomic.Int64
	var stop atomic.Bool
	workers := make([]*worker, p.concurrency)
	var wg sync.WaitGroup
	begin := time.Now()
	deadline := begin.Add(p.duration)
	for i := range workers {
		w := &worker{statuses: map[int]int64{}, errors: map[string]int64{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil {
				k := started.Add(1)
				if p.maxRequests > 0 && k > p.maxRequests {
					return
				}
				var due time.Time
				if p.rate > 0 {
					due = begin.Add(time.Duration(float64(k-1) / p.rate * float64(time.Second)))
					if !due.Before(deadline) {
						return
					}
					if wait := time.Until(due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
							return
						}
					}
				} else if !time.Now().Before(deadline) {
					return
				}
				t0 := time.Now()
				code, err := l.do(ctx)
				end := time.Now()
				done.Add(1)
				switch {
				case err != nil && ctx.Err() != nil:
					return // interrupted: not the server's failure
				case err != nil:
					w.errors[errText(err)]++
					bad.Add(1)
					continue
				}
				w.hist.record(end.Sub(t0))
				if p.rate > 0 {
					w.fromDue.record(end.Sub(due))
				}
				w.statuses[code]++
				if code < 200 || code > 299 {
					bad.Add(1)
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	ticker := time.NewTicker(p.progress)
	defer ticker.Stop()
	timer := time.NewTimer(p.duration)
	defer timer.Stop()
	var last int64
	lastAt := begin
	for running := true; running; {
		select {
		case <-finished:
			running = false
		case <-timer.C:
			stop.Store(true)
		case <-ctx.Done():
			stop.Store(true)
		case now := <-ticker.C:
			n := done.Load()
			l.log.Info("progress", "elapsed", now.Sub(begin).Round(time.Millisecond), "requests", n,
				"requests_per_s", math.Round(float64(n-last)/now.Sub(lastAt).Seconds()), "failed", bad.Load())
			last, lastAt = n, now
		}
	}
	res := &result{hist: &histogram{}, statuses: map[int]int64{}, errors: map[string]int64{}, elapsed: time.Since(begin)}
	if p.rate > 0 {
		res.fromDue = &histogram{}
	}
	for _, w := range workers {
		res.hist.merge(&w.hist)
		if res.fromDue != nil {
			res.fromDue.merge(&w.fromDue)
		}
		for code, n := range w.statuses {
			res.statuses[code] += n
		}
		for msg, n := range w.errors {
			res.errors[msg] += n
		}
	}
	return res
}

// do sends one request and reads its whole answer, so the connection can be reused.
func (l *loader) do(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.target, nil)
	if err != nil {
		return 0, err
	}
	if l.token != "" {
		req.Header.Set("Authorization", "Bearer "+l.token)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// errText is an error without the URL, so that errors group by cause.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// histogram is a log-linear latency histogram in nanoseconds: values under 256 ns are exact, and
// above that every power of two is split into 128 buckets, so a bucket is at most 1/128 (0.8 %)
// of its values wide. It holds any duration in 7,296 counters, whatever the number of requests.
type histogram struct {
	counts [histBuckets]int64
	n      int64
	sum    time.Duration
	max    time.Duration
}

const (
	subBits     = 7
	subBuckets  = 1 << subBits                             // buckets per power of two
	histBuckets = 2*subBuckets + (64-subBits-2)*subBuckets // enough for any int64
)

func bucketOf(v time.Duration) int {
	u := uint64(max(v, 0))
	if u < 2*subBuckets {
		return int(u)
	}
	shift := bits.Len64(u) - (subBits + 1) // u>>shift is in [128, 256)
	return 2*subBuckets + (shift-1)*subBuckets + int(u>>shift) - subBuckets
}

// bucketHigh is the largest value bucket i holds.
func bucketHigh(i int) time.Duration {
	if i < 2*subBuckets {
		return time.Duration(i)
	}
	k := i - 2*subBuckets
	shift := k/subBuckets + 1
	m := uint64(k%subBuckets + subBuckets)
	return time.Duration((m+1)<<shift - 1)
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

func (h *histogram) count() int64 { return h.n }

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// quantile is the upper bound of the bucket holding the q-th value (never above the maximum):
// at most 0.8 % above the exact value.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen int64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return min(bucketHigh(i), h.max)
		}
	}
	return h.max
}

// scrape reads the Prometheus text exposition at base/metrics into series → value.
func scrape(ctx context.Context, client *http.Client, base *url.URL) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.JoinPath("/metrics").String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	series := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series[line[:i]] = v
	}
	return series, sc.Err()
}

// histogramName is the server's request latency histogram (api/middleware.go).
const histogramName = "clouddb_http_request_duration_seconds"

// serverSide is the server's own view of the requests to one route during the run.
type serverSide struct {
	route   string
	count   float64
	sum     float64
	buckets []bucketDelta // ascending le
}

type bucketDelta struct {
	le    float64
	count float64 // cumulative, as Prometheus exposes it
}

// serverLatency is the difference of the route's GET histogram between two scrapes.
func serverLatency(before, after map[string]float64, route string) serverSide {
	s := serverSide{route: route}
	labels := fmt.Sprintf(`method="GET",route=%q`, route)
	s.count = after[histogramName+"_count{"+labels+"}"] - before[histogramName+"_count{"+labels+"}"]
	s.sum = after[histogramName+"_sum{"+labels+"}"] - before[histogramName+"_sum{"+labels+"}"]
	prefix := histogramName + "_bucket{" + labels + `,le="`
	for series, v := range after {
		if !strings.HasPrefix(series, prefix) {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(series, prefix), `"}`), 64)
		if err != nil {
			continue
		}
		s.buckets = append(s.buckets, bucketDelta{le: le, count: v - before[series]})
	}
	slices.SortFunc(s.buckets, func(a, b bucketDelta) int {
		switch {
		case a.le < b.le:
			return -1
		case a.le > b.le:
			return 1
		}
		return 0
	})
	return s
}

// bound is the smallest bucket bound under which at least q of the requests finished.
func (s serverSide) bound(q float64) float64 {
	for _, b := range s.buckets {
		if b.count >= q*s.count {
			return b.le
		}
	}
	return math.Inf(1)
}

func printServerMetrics(w io.Writer, s serverSide) {
	if s.count <= 0 {
		fmt.Fprintf(w, "server:      no %s{route=%q} observations during the run\n", histogramName, s.route)
		return
	}
	fmt.Fprintf(w, "server:      %.0f requests to %s, mean %.3fms, p50 ≤ %s, p99 ≤ %s (bucket bounds)\n",
		s.count, s.route, 1000*s.sum/s.count, fmtSeconds(s.bound(0.5)), fmtSeconds(s.bound(0.99)))
	var parts []string
	for _, b := range s.buckets {
		parts = append(parts, fmt.Sprintf("≤%s:%.0f", fmtSeconds(b.le), b.count))
	}
	fmt.Fprintf(w, "server buckets (cumulative): %s\n", strings.Join(parts, " "))
}

func fmtSeconds(s float64) string {
	if math.IsInf(s, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(s*1000, 'g', -1, 64) + "ms"
}
