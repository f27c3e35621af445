package faults

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// variant is how much of everything a run does. The short one runs in CI (`go test ./...`); the
// long one with CLOUDDB_FAULTS_LONG=1.
type variant struct {
	name     string
	rounds   int // each round: every fault once
	perPhase int // answers the load gets between two faults
	workers  int // concurrent clients of the load, each with its own API key
}

var (
	shortRun = variant{name: "short", rounds: 1, perPhase: 40, workers: 6}
	// 8 workers: each takes a new key once or twice (keysPerAPIKey), and a user holds 20 at most.
	longRun = variant{name: "long", rounds: 4, perPhase: 300, workers: 8}
)

// leaseTTL is CLOUDDB_LEASE_TTL of the processes under test: what a killed process left is
// resolved this long after it died.
const leaseTTL = 2 * time.Second

// TestFaults runs the load through every fault, then checks the answers against the rows and the
// log (see check). Its figures are logged as one line starting "faults:" (docs/RELIABILITY.md).
func TestFaults(t *testing.T) {
	v := shortRun
	if os.Getenv("CLOUDDB_FAULTS_LONG") == "1" {
		v = longRun
	}
	began := time.Now()
	h := newHarness(t, v)
	h.setUp()
	h.load.start(h)
	for round := 0; round < v.rounds; round++ {
		// First: a provisioning cut short resumes once its work lease (30 s, commands/work_leases.go)
		// expired, and the check waits for it.
		h.killDuringProvisioning()
		h.killMidLoad()
		h.cutSandbox()
		h.hangSandbox()
		h.hangSandboxAndKill()
		h.cutManagement()
		h.hangManagement()
		h.killDuringStop()
	}
	h.load.stop()
	h.terminateDuringLongStatements()
	h.restart()
	h.check()
	if err := h.srv.terminate(30 * time.Second); err != nil {
		t.Errorf("the last process's exit after SIGTERM: %v", err)
	}
	h.figures.duration = time.Since(began)
	t.Logf("faults: %s", h.figures)
}

// figures are what a run did and found.
type figures struct {
	variant                         string
	requests, answered2xx, noAnswer int
	kills, cuts, hangs, terms       int
	statements, unknown, cancelled  int
	answeredThenUnknown             int // answered 2xx, recorded unknown (see checkRowsAndLog)
	repairs, rows                   int
	retried, retriesAnswered        int // keys retried; retries not replayed (the first got no final answer)
	retriesRefused                  int // of which refused as outcome_unknown: the first may have run
	unrecordedKeys                  int // answered 2xx while the key could not record it (RDS-A out)
	provisioned, provisionedFailed  int
	duration                        time.Duration
}

func (f figures) String() string {
	return fmt.Sprintf("variant=%s requests=%d answered_2xx=%d no_answer=%d kills=%d cuts=%d hangs=%d sigterms=%d "+
		"statements=%d unknown=%d answered_2xx_recorded_unknown=%d cancelled=%d repairs=%d rows=%d databases_provisioned=%d "+
		"provisioning_failed=%d retried_keys=%d retries_not_replayed=%d retries_refused_outcome_unknown=%d answered_2xx_key_unrecorded=%d duration=%v",
		f.variant, f.requests, f.answered2xx, f.noAnswer, f.kills, f.cuts, f.hangs, f.terms,
		f.statements, f.unknown, f.answeredThenUnknown, f.cancelled, f.repairs, f.rows, f.provisioned,
		f.provisionedFailed, f.retried, f.retriesAnswered, f.retriesRefused, f.unrecordedKeys, f.duration.Round(time.Second))
}

// harness is the system under test: RDS-A and RDS-B behind proxies, the current clouddb process,
// the tenant and its databases, and the load.
type harness struct {
	t       *testing.T
	v       variant
	mgmtDSN string // direct, for the checker
	prefix  string // CLOUDDB_SANDBOX_PREFIX
	rdsA    *faultProxy
	rdsB    *faultProxy
	env     []string
	logFile *os.File
	srv     *server
	base    atomic.Pointer[string]
	admin   *sql.DB // root on the sandbox server, direct
	mgmt    *sql.DB // the management database, direct

	tenant    string
	token     string   // the tenant admin's access token
	databases []string // every database created, in order
	life      string   // the database stopped and started during the load
	load      load
	figures   figures
}

func newHarness(t *testing.T, v variant) *harness {
	h := &harness{t: t, v: v, mgmtDSN: testdb.DSN(t), prefix: newPrefix()}
	h.figures.variant = v.name
	t.Cleanup(func() { dropSandboxObjects(t, h.prefix) })
	server, err := mysql.ParseDSN(testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	mgmt, err := mysql.ParseDSN(h.mgmtDSN)
	if err != nil {
		t.Fatal(err)
	}
	h.rdsA, h.rdsB = startProxy(t, mgmt.Addr), startProxy(t, server.Addr)
	viaA, viaB := *mgmt, *server
	viaA.Addr, viaB.Addr, viaB.DBName = h.rdsA.addr(), h.rdsB.addr(), ""
	dir := t.TempDir()
	if h.logFile, err = os.Create(filepath.Join(dir, "clouddb.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.logFile.Close()
		if t.Failed() {
			data, _ := os.ReadFile(h.logFile.Name())
			lines := strings.Split(string(data), "\n")
			t.Logf("last lines of the processes' log:\n%s", strings.Join(lines[max(0, len(lines)-80):], "\n"))
		}
	})
	h.env = []string{
		"HOME=" + dir,
		"CLOUDDB_MGMT_DSN=" + viaA.FormatDSN(),
		"CLOUDDB_SANDBOX_DSN=" + viaB.FormatDSN(),
		"CLOUDDB_SANDBOX_PREFIX=" + h.prefix,
		"CLOUDDB_DATA_DIR=" + filepath.Join(dir, "data"),
		"CLOUDDB_HTTP_ADDR=127.0.0.1:0",
		"CLOUDDB_METRICS_ADDR=off",
		"CLOUDDB_BCRYPT_COST=4",
		"CLOUDDB_LOG_LEVEL=info",
		"CLOUDDB_QUERY_RATE=100000",
		"CLOUDDB_LEASE_TTL=" + leaseTTL.String(),
		"CLOUDDB_SHUTDOWN_DRAIN=1s",
		"CLOUDDB_JWT_SECRET=" + randomText(48),
		"CLOUDDB_SECRET_KEY=" + base64.StdEncoding.EncodeToString(randomBytes(32)),
		"CLOUDDB_BOOTSTRAP_ADMIN_EMAIL=faults@example.com",
		"CLOUDDB_BOOTSTRAP_ADMIN_PASSWORD=Faults-" + randomText(8) + "-9!",
	}
	h.admin = openDB(t, testdb.ServerDSN())
	h.mgmt = openDB(t, h.mgmtDSN)
	return h
}

func openDB(t *testing.T, dsn string) *sql.DB {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randomText(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n))[:n] }

// newPrefix is a sandbox prefix of this run only: "f", 6 random letters, "_".
func newPrefix() string {
	b := randomBytes(6)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return "f" + string(b) + "_"
}

func (h *harness) env_(name string) string {
	for _, kv := range h.env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// start runs a new clouddb process on the same RDS-A and data directory.
func (h *harness) start() {
	h.srv = startServer(h.t, h.env, h.logFile)
	base := h.srv.base
	h.base.Store(&base)
}

// restart starts the process again after a kill or a shutdown.
func (h *harness) restart() { h.start() }

func (h *harness) call(token, key, method, path string, body any) answer {
	return call(context.Background(), *h.base.Load(), token, key, method, path, body)
}

// setUp starts the first process and makes the tenant (pro plan), its databases with a table t
// each, and one API key per worker.
func (h *harness) setUp() {
	t := h.t
	h.start()
	email, password := h.env_("CLOUDDB_BOOTSTRAP_ADMIN_EMAIL"), h.env_("CLOUDDB_BOOTSTRAP_ADMIN_PASSWORD")
	login := func(tenant string) string {
		body := map[string]any{"email": email, "password": password}
		if tenant != "" {
			body["tenant"] = tenant
		}
		return h.call("", "", "POST", "/auth/login", body).must(t, "login", 200).str("access_token")
	}
	token := login("")
	h.tenant = h.call(token, "", "POST", "/tenants", map[string]any{"name": "Faults"}).must(t, "POST /tenants", 201).str("id")
	h.call(token, "", "PUT", "/admin/tenants/"+h.tenant+"/plan", map[string]any{"plan": "pro"}).must(t, "plan", 200)
	h.token = login(h.tenant)
	for i := range 3 {
		h.createDatabase(fmt.Sprintf("load%d", i))
	}
	h.life = h.createDatabase("life")
	for range h.v.workers {
		h.load.tokens = append(h.load.tokens, h.newAPIKey())
	}
	h.load.databases = append([]string(nil), h.databases...)
}

// newAPIKey creates an API key of the tenant admin: each is a principal of its own, with its own
// allowance of Idempotency-Keys (1,000 a day); "" when the process does not answer. A key is a
// credential: past the reauthentication window after the login (the long variant runs longer),
// the admin confirms the password first, as a console would ask its user to.
func (h *harness) newAPIKey() string {
	create := func() answer {
		return h.call(h.token, "", "POST", "/me/api-keys", map[string]any{"name": "load " + randomText(6)})
	}
	a := create()
	if a.code == "reauthentication_required" {
		h.call(h.token, "", "POST", "/me/reauth", map[string]any{"password": h.env_("CLOUDDB_BOOTSTRAP_ADMIN_PASSWORD")})
		a = create()
	}
	return a.str("key")
}

// keysPerAPIKey is how many Idempotency-Keys a worker uses before it takes a new API key.
const keysPerAPIKey = 900

// createDatabase creates a database with table t and waits until it runs.
func (h *harness) createDatabase(name string) string {
	t := h.t
	r := h.call(h.token, "", "POST", "/databases", map[string]any{"name": name})
	if r.status != 201 && r.status != 202 {
		t.Fatalf("POST /databases %s = %d %v", name, r.status, r.doc)
	}
	id := r.str("id")
	until(t, 30*time.Second, "database "+name+" runs", func() bool {
		return h.call(h.token, "", "GET", "/databases/"+id, nil).str("state") == "running"
	})
	h.call(h.token, "", "POST", "/databases/"+id+"/query", map[string]any{"sql": "CREATE TABLE t (v BIGINT NOT NULL)"}).must(t, "CREATE TABLE", 200)
	h.databases = append(h.databases, id)
	return id
}

// ---- the faults ----

// killMidLoad: SIGKILL while the load runs, then a new process.
func (h *harness) killMidLoad() {
	h.load.waitAnswers(h.t, h.v.perPhase)
	h.kill()
	h.restart()
}

func (h *harness) kill() {
	h.srv.kill()
	h.figures.kills++
}

// cutSandbox: every connection to RDS-B ends and new ones are refused until the load has had
// a few answers without it.
func (h *harness) cutSandbox() {
	h.load.waitAnswers(h.t, h.v.perPhase)
	h.rdsB.set("cut")
	h.figures.cuts++
	h.load.waitFailures(h.t, 3)
	h.rdsB.set("pass")
}

// hangSandbox: RDS-B stops answering (connections stay open) until an INSERT waits in the hang.
func (h *harness) hangSandbox() {
	h.load.waitAnswers(h.t, h.v.perPhase)
	h.rdsB.set("hang")
	hit := h.rdsB.watch("INSERT INTO t")
	h.figures.hangs++
	h.wait(hit, "an INSERT reaches the hung RDS-B")
	h.rdsB.set("pass")
}

// hangSandboxAndKill: the process dies while its INSERTs hang on the way to RDS-B; they reach
// the server after the process is gone (recorded, outcome unknown).
func (h *harness) hangSandboxAndKill() {
	h.load.waitAnswers(h.t, h.v.perPhase)
	h.rdsB.set("hang")
	hit := h.rdsB.watch("INSERT INTO t")
	h.figures.hangs++
	h.wait(hit, "an INSERT reaches the hung RDS-B")
	h.kill()
	h.rdsB.set("pass")
	h.restart()
}

// cutManagement: every connection to RDS-A ends and new ones are refused until the load has had
// a few answers without it.
func (h *harness) cutManagement() {
	h.load.waitAnswers(h.t, h.v.perPhase)
	h.rdsA.set("cut")
	h.figures.cuts++
	h.load.waitFailures(h.t, 3)
	h.rdsA.set("pass")
}

// hangManagement: RDS-A stops answering until the process's statements wait in the hang.
func (h *harness) hangManagement() {
	h.load.waitAnswers(h.t, h.v.perPhase)
	h.rdsA.set("hang")
	hit := h.rdsA.watch()
	h.figures.hangs++
	h.wait(hit, "a statement reaches the hung RDS-A")
	h.rdsA.set("pass")
}

// killDuringProvisioning: SIGKILL while a new database's accounts are being created.
func (h *harness) killDuringProvisioning() {
	h.load.waitAnswers(h.t, h.v.perPhase)
	hit := h.rdsB.watch("CREATE USER")
	name := "prov_" + strings.ToLower(newPrefix()[1:7])
	go h.call(h.token, "", "POST", "/databases", map[string]any{"name": name})
	h.wait(hit, "provisioning creates the accounts")
	h.kill()
	h.restart()
}

// killDuringStop: SIGKILL while a stop locks the accounts on RDS-B (after it was recorded).
func (h *harness) killDuringStop() {
	h.load.waitAnswers(h.t, h.v.perPhase)
	h.call(h.token, "", "POST", "/databases/"+h.life+"/start", nil)
	hit := h.rdsB.watch("ALTER USER", "ACCOUNT LOCK")
	go h.call(h.token, "", "POST", "/databases/"+h.life+"/stop", nil)
	h.wait(hit, "the stop locks the accounts")
	h.kill()
	h.restart()
	h.call(h.token, "", "POST", "/databases/"+h.life+"/start", nil)
}

// terminateDuringLongStatements: SIGTERM while INSERTs that take 25 s run; with a drain of 1 s
// they are killed on the server, recorded cancelled, answered 503, and the process exits 0.
func (h *harness) terminateDuringLongStatements() {
	t := h.t
	const slow = 3
	answers := make(chan *request, slow)
	for i := range slow {
		go func() {
			// The admin's session is a principal of its own, with its own Idempotency-Keys: the
			// workers' API keys may be near their daily allowance, and a user holds 20 keys at most.
			r := h.load.newRequest(h.token, h.databases[i%3], "INSERT INTO t (v) SELECT %d FROM (SELECT SLEEP(25)) s")
			h.load.send(h, r)
			answers <- r
		}()
	}
	// All three must run at once and still run when the 1 s drain ends: the first to reach the
	// server must not finish (SLEEP(25), under the plan's 30 s timeout) before the last arrives and
	// the drain is over, which SLEEP(8) left to 7 s of a loaded machine. The drain kills them, so
	// the longer sleep costs no time.
	until(t, 20*time.Second, "the long INSERTs run on the server", func() bool {
		if len(answers) > 0 {
			r := <-answers
			t.Fatalf("a long INSERT answered before the shutdown: %d %v", r.first.status, r.first.doc)
		}
		var n int
		h.admin.QueryRow(`SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER LIKE ? AND INFO LIKE '%INSERT INTO t (v) SELECT % SLEEP(25)%'`,
			h.prefix+"%").Scan(&n)
		return n == slow
	})
	h.figures.terms++
	if err := h.srv.terminate(30 * time.Second); err != nil {
		t.Errorf("exit after SIGTERM during long statements: %v, want status 0", err)
	}
	for range slow {
		if r := <-answers; r.first.status != 503 {
			t.Errorf("a long INSERT cut by the shutdown = %d %s, want 503", r.first.status, r.first.code)
		}
	}
}

// wait waits for a watched statement; a tenant's provisioning may wait for the 30 s work lease
// of one cut short by the previous round.
func (h *harness) wait(c <-chan struct{}, what string) {
	select {
	case <-c:
	case <-time.After(45 * time.Second):
		h.t.Fatalf("%s: not within 45 s", what)
	}
}

// ---- the load ----

// request is one INSERT of a unique value under its own Idempotency-Key, and what it was answered.
type request struct {
	value         int64
	database, key string
	sql, token    string
	first, retry  answer
}

// load is the workers sending INSERTs: each picks the next value, a database in turn, and its
// own key.
type load struct {
	tokens    []string
	databases []string
	next      atomic.Int64
	answers   atomic.Int64 // HTTP answers of any status
	failures  atomic.Int64 // answers other than 2xx, and no answers
	stopped   atomic.Bool
	wg        sync.WaitGroup

	mu       sync.Mutex
	requests []*request
}

func (l *load) newRequest(token, database, format string) *request {
	v := l.next.Add(1)
	r := &request{value: v, database: database, key: fmt.Sprintf("insert-%d", v), sql: fmt.Sprintf(format, v), token: token}
	l.mu.Lock()
	l.requests = append(l.requests, r)
	l.mu.Unlock()
	return r
}

func (l *load) send(h *harness, r *request) {
	r.first = h.call(r.token, r.key, "POST", "/databases/"+r.database+"/query", map[string]any{"sql": r.sql})
	if r.first.status != 0 {
		l.answers.Add(1)
	}
	if r.first.status < 200 || r.first.status > 299 {
		l.failures.Add(1)
	}
}

func (l *load) start(h *harness) {
	for w := range len(l.tokens) {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			token, used := l.tokens[w], 0
			for i := w; !l.stopped.Load(); i++ {
				if used >= keysPerAPIKey {
					if fresh := h.newAPIKey(); fresh != "" {
						token, used = fresh, 0
					}
				}
				used++
				r := l.newRequest(token, l.databases[i%len(l.databases)], "INSERT INTO t (v) VALUES (%d)")
				l.send(h, r)
				if r.first.status == 0 {
					time.Sleep(20 * time.Millisecond) // pacing while no process serves, not synchronisation
				}
			}
		}()
	}
}

func (l *load) stop() {
	l.stopped.Store(true)
	l.wg.Wait()
}

// waitAnswers waits until the load has had n more answers.
func (l *load) waitAnswers(t *testing.T, n int) {
	t.Helper()
	target := l.answers.Load() + int64(n)
	until(t, 60*time.Second, fmt.Sprintf("%d answers", n), func() bool { return l.answers.Load() >= target })
}

// waitFailures waits until the load has had n more failed requests.
func (l *load) waitFailures(t *testing.T, n int) {
	t.Helper()
	target := l.failures.Load() + int64(n)
	until(t, 60*time.Second, fmt.Sprintf("%d failed requests", n), func() bool { return l.failures.Load() >= target })
}
