package localmysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

// Resolve takes the MariaDB at 127.0.0.1:3306 when it answers (.ci/run starts one), and starts a
// private one otherwise (`make test` on a machine without a server).
func TestResolveUsesLocalServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	local := ping(ctx, sharedDSN, time.Second) == nil
	var logs bytes.Buffer
	dataDir := t.TempDir()
	dsn, stop, err := Resolve(ctx, dataDir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if want := "root@unix(" + filepath.Join(dataDir, "mysql.sock") + ")/clouddb"; local && dsn != sharedDSN || !local && dsn != want {
		t.Fatalf("dsn = %q, want the local server if it answers (%v), else a private one", dsn, local)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !strings.Contains(logs.String(), "127.0.0.1:3306") {
		t.Errorf("log does not say which server it uses: %s", logs.String())
	}
}

func TestStartPrivate(t *testing.T) {
	bin, ok := findBinaries(t.TempDir())
	if !ok {
		t.Fatal("no mariadbd and mariadb-install-db on this machine (apt-get install mariadb-server)")
	}
	if bin.unpacked != "" {
		t.Fatalf("found an unpacked copy %s, want the installed server", bin.unpacked)
	}
	dataDir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	pid, port := startAndQuery(t, dataDir, bin, log)
	if !strings.Contains(logs.String(), "initializing") || !strings.Contains(logs.String(), "started private MariaDB") {
		t.Errorf("log does not tell the start: %s", logs.String())
	}
	if !strings.Contains(logs.String(), filepath.Join(dataDir, "mysql.sock")) {
		t.Errorf("log does not name the socket: %s", logs.String())
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "mysql.log")); err != nil || fi.Size() == 0 {
		t.Errorf("mysql.log missing or empty: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("mariadbd %d still exists after stop (kill 0: %v)", pid, err)
	}

	// A second start reuses the initialized datadir and keeps its data, and its port: connection
	// details given before stay true.
	logs.Reset()
	if _, again := startAndQuery(t, dataDir, bin, log); again != port {
		t.Errorf("second start listens on port %d, the first on %d", again, port)
	}
	if strings.Contains(logs.String(), "initializing") {
		t.Errorf("datadir initialized again: %s", logs.String())
	}

	// A kept port that another process holds is refused with a line that says what to do.
	busy, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := startPrivate(ctx, dataDir, bin, false, log); err == nil || !strings.Contains(err.Error(), "taken by another process") {
		t.Errorf("start with the kept port busy: %v, want it refused", err)
	}
}

// Shared starts one server that outlives the caller, and the next caller finds it running.
func TestShared(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	dsn, started, err := Shared(ctx, dir, t.TempDir(), log)
	if err != nil || !started {
		t.Fatalf("Shared = %q, %v, %v; want a server started", dsn, started, err)
	}
	t.Cleanup(func() { stopDetached(t, dir) })
	if !strings.HasPrefix(dsn, "root@tcp(127.0.0.1:") {
		t.Errorf("dsn = %q, want TCP on 127.0.0.1", dsn)
	}
	again, started, err := Shared(ctx, dir, t.TempDir(), log)
	if err != nil || started || again != dsn {
		t.Fatalf("second Shared = %q, %v, %v; want the running %q", again, started, err, dsn)
	}
	if err := ping(ctx, dsn, time.Second); err != nil {
		t.Fatal(err)
	}
}

// stopDetached stops the server Shared left running under dir and waits until it is gone.
func stopDetached(t *testing.T, dir string) {
	raw, err := os.ReadFile(filepath.Join(dir, "mysql.pid"))
	if err != nil {
		t.Error(err)
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Error(err)
		return
	}
	deadline := time.Now().Add(stopTimeout)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronization: the deadline decides
	}
}

// startAndQuery starts the private server on dataDir, checks that a connection to its DSN works,
// stops it and returns the pid and TCP port it had.
func startAndQuery(t *testing.T, dataDir string, bin binaries, log *slog.Logger) (pid, port int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, stop, err := startPrivate(ctx, dataDir, bin, false, log)
	if err != nil {
		t.Fatalf("startPrivate: %v", err)
	}
	t.Cleanup(func() { _ = stop() }) // if the test fails before stopping it
	if want := "root@unix(" + filepath.Join(dataDir, "mysql.sock") + ")/clouddb"; dsn != want {
		t.Errorf("dsn = %q, want %q", dsn, want)
	}
	raw, err := os.ReadFile(filepath.Join(dataDir, "mysql.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}

	server, err := sql.Open("mysql", strings.TrimSuffix(dsn, "clouddb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS clouddb"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	server.Close()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	// Over TCP too, as root without password: what a developer's client would use.
	if err := db.QueryRowContext(ctx, "SELECT @@port").Scan(&port); err != nil {
		t.Fatal(err)
	}
	if err := ping(ctx, "root@tcp(127.0.0.1:"+strconv.Itoa(port)+")/", time.Second); err != nil {
		t.Errorf("TCP port %d: %v", port, err)
	}

	db.Close()
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if err := ping(ctx, dsn, time.Second); err == nil {
		t.Fatal("server still answers after stop")
	}
	return pid, port
}

func TestFetchCommands(t *testing.T) {
	simulated := `NOTE: This is only a simulation!
Reading package lists...
Inst mysql-common (5.8+1.1.0 Debian:12.15/oldstable [all])
Inst mariadb-common (1:10.11.19-0+deb12u1 Debian:12.15/oldstable [all])
Inst liburing2 (2.3-3 Debian:12.15/oldstable [amd64])
Inst libaio1 [0.3.112-13] (0.3.113-4 Debian:12.15/oldstable [amd64])
Inst mariadb-server-core (1:10.11.19-0+deb12u1 Debian:12.15/oldstable [amd64])
Conf liburing2 (2.3-3 Debian:12.15/oldstable [amd64])
`
	got := packagesToFetch(simulated, corePackages)
	want := []string{"mariadb-server-core", "mariadb-client-core", "liburing2", "libaio1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("packagesToFetch = %q, want %q", got, want)
	}
	if got := strings.Join(simulateArgs(corePackages), " "); got != "apt-get --simulate --no-install-recommends install mariadb-server-core mariadb-client-core" {
		t.Errorf("simulateArgs = %s", got)
	}
	if got := strings.Join(downloadArgs(want[:2]), " "); got != "apt-get download mariadb-server-core mariadb-client-core" {
		t.Errorf("downloadArgs = %s", got)
	}
	if got := strings.Join(unpackArgs("/d/x.deb", "/r"), " "); got != "dpkg-deb -x /d/x.deb /r" {
		t.Errorf("unpackArgs = %s", got)
	}
}

func TestSocketPathStaysShort(t *testing.T) {
	if got := socketPath("/srv/data"); got != "/srv/data/mysql.sock" {
		t.Errorf("socketPath = %s", got)
	}
	long := "/" + strings.Repeat("d", 120)
	got := socketPath(long)
	if len(got) >= 100 || got != socketPath(long) {
		t.Errorf("socketPath(long) = %s: want a short path, the same each time", got)
	}
}
