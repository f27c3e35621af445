package localmysql

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// binaries is one MariaDB server installation.
type binaries struct {
	mariadbd  string
	installDB string
	// unpacked is the root of a copy unpacked from .deb files, "" for an installed server. Such a
	// copy has /usr paths compiled in, so it is pointed at its own share and library folders.
	unpacked string
}

// findBinaries looks for an installed server (PATH, /usr/sbin, /usr/bin), then for a copy unpacked
// under localDir by fetchPackages.
func findBinaries(localDir string) (binaries, bool) {
	if b := (binaries{mariadbd: lookPath("mariadbd"), installDB: lookPath("mariadb-install-db")}); b.mariadbd != "" && b.installDB != "" {
		return b, true
	}
	root := filepath.Join(localDir, "root")
	b := binaries{
		mariadbd:  filepath.Join(root, "usr", "sbin", "mariadbd"),
		installDB: filepath.Join(root, "usr", "bin", "mariadb-install-db"),
		unpacked:  root,
	}
	return b, isExecutable(b.mariadbd) && isExecutable(b.installDB)
}

// lookPath finds name in PATH or in /usr/sbin and /usr/bin, which a user's PATH often lacks.
func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// usr is the unpacked copy's /usr, "" for an installed server.
func (b binaries) usr() string {
	if b.unpacked == "" {
		return ""
	}
	return filepath.Join(b.unpacked, "usr")
}

// env is the environment of the server's processes: an unpacked copy finds the libraries that
// were unpacked with it through LD_LIBRARY_PATH. nil means this process's environment.
func (b binaries) env() []string {
	if b.unpacked == "" {
		return nil
	}
	var dirs []string
	for _, pattern := range []string{"lib/*-linux-gnu", "usr/lib/*-linux-gnu"} {
		found, _ := filepath.Glob(filepath.Join(b.unpacked, pattern))
		dirs = append(dirs, found...)
	}
	if len(dirs) == 0 {
		return nil
	}
	if old := os.Getenv("LD_LIBRARY_PATH"); old != "" {
		dirs = append(dirs, old)
	}
	return append(os.Environ(), "LD_LIBRARY_PATH="+strings.Join(dirs, ":"))
}

// startPrivate runs mariadbd on dataDir/mysql, initializing that first if needed, listening on a
// unix socket in dataDir and on a port of 127.0.0.1 (stablePort), and returns a DSN on the socket
// once the server answers. stop ends the server; ctx bounds only the start. A detached server
// outlives this process (Shared); otherwise it dies with it.
func startPrivate(ctx context.Context, dataDir string, bin binaries, detached bool, log *slog.Logger) (dsn string, stop func() error, err error) {
	if dataDir, err = filepath.Abs(dataDir); err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", nil, err
	}
	datadir := filepath.Join(dataDir, "mysql")
	logPath := filepath.Join(dataDir, "mysql.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", nil, err
	}
	defer logFile.Close() // the started processes hold their own copies

	if _, err := os.Stat(datadir); errors.Is(err, os.ErrNotExist) {
		log.Info("initializing the private MariaDB data directory", "datadir", datadir)
		if err := initialize(ctx, bin, datadir, logFile); err != nil {
			return "", nil, fmt.Errorf("initialize MariaDB data directory %s (see %s): %w", datadir, logPath, err)
		}
	}

	socket := socketPath(dataDir)
	port, err := stablePort(dataDir)
	if err != nil {
		return "", nil, err
	}
	args := []string{
		"--no-defaults", // first, or it is ignored: /etc/mysql belongs to the system's server
		"--datadir=" + datadir,
		"--socket=" + socket,
		"--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(port),
		"--pid-file=" + filepath.Join(dataDir, "mysql.pid"),
		"--log-error=" + logPath,
	}
	if isRoot() {
		args = append(args, "--user=root") // mariadbd refuses to run as root without it
	}
	if usr := bin.usr(); usr != "" {
		args = append(args,
			"--basedir="+usr,
			"--lc-messages-dir="+filepath.Join(usr, "share", "mysql"),
			"--character-sets-dir="+filepath.Join(usr, "share", "mysql", "charsets"),
			"--plugin-dir="+filepath.Join(usr, "lib", "mysql", "plugin"))
	}
	// Not exec.CommandContext: the server must outlive ctx, which bounds only the start.
	cmd := exec.Command(bin.mariadbd, args...)
	cmd.Env = bin.env()
	cmd.Stdout, cmd.Stderr = logFile, logFile // what mariadbd prints before it opens --log-error
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a Ctrl-C in the terminal reaches clouddb, which stops the server in order
		Pdeathsig: syscall.SIGTERM, // and if clouddb dies, the server must not keep the datadir locked
	}
	if detached {
		cmd.SysProcAttr.Pdeathsig = 0
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start %s: %w", bin.mariadbd, err)
	}
	srv := &server{cmd: cmd, exited: make(chan struct{})}
	go func() {
		srv.exitErr = cmd.Wait()
		close(srv.exited)
	}()

	dsn = "root@unix(" + socket + ")/clouddb"
	if err := srv.waitReady(ctx, dsn); err != nil {
		_ = srv.stop()
		return "", nil, fmt.Errorf("private MariaDB did not start (see %s): %w", logPath, err)
	}
	log.Info("started private MariaDB", "socket", socket, "port", port, "datadir", datadir, "log", logPath, "pid", cmd.Process.Pid)
	return dsn, srv.stop, nil
}

// initialize creates a data directory with a root account without password. It is built beside
// datadir and renamed into place, so that an interrupted run leaves no half-made datadir that
// would later pass for an initialized one.
func initialize(ctx context.Context, bin binaries, datadir string, logFile *os.File) error {
	tmp := datadir + ".init"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	args := []string{
		"--no-defaults",
		"--datadir=" + tmp,
		"--auth-root-authentication-method=normal", // root@localhost without password, socket or TCP
		"--skip-name-resolve",                      // hostnames that do not resolve in containers would abort it
		"--skip-test-db",
	}
	if isRoot() {
		args = append(args, "--user=root")
	}
	if usr := bin.usr(); usr != "" {
		args = append(args, "--basedir="+usr)
	}
	cmd := exec.CommandContext(ctx, bin.installDB, args...)
	cmd.Env = bin.env()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(bin.installDB), err)
	}
	return os.Rename(tmp, datadir)
}

// socketPath is dataDir/mysql.sock, unless that is too long for a unix socket address (108 bytes
// on Linux): then a name in the temp folder, fixed for dataDir, stands in.
func socketPath(dataDir string) string {
	path := filepath.Join(dataDir, "mysql.sock")
	if len(path) < 100 {
		return path
	}
	h := fnv.New32a()
	h.Write([]byte(dataDir))
	return filepath.Join(os.TempDir(), fmt.Sprintf("clouddb-mysql-%08x.sock", h.Sum32()))
}

// portFile keeps, in the data dir, the TCP port the private server listens on.
const portFile = "mysql.port"

// stablePort is the TCP port of the private server: the one kept in dataDir/mysql.port, else a
// free one of 127.0.0.1 chosen now and kept there. It must not change between starts: it is the
// port of every database's connection details (the sandbox server is this one), which clients
// keep. A kept port that another process holds now is an error that says so, rather than a new
// port that would silently break those details.
func stablePort(dataDir string) (int, error) {
	path := filepath.Join(dataDir, portFile)
	raw, err := os.ReadFile(path)
	if err == nil {
		port, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || port < 1 || port > 65535 {
			return 0, fmt.Errorf("%s does not hold a TCP port (%q): delete it to choose a new one", path, strings.TrimSpace(string(raw)))
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return 0, fmt.Errorf("the private MariaDB's port %d (kept in %s) is taken by another process: stop it, or delete the file to choose a new port (connection details given before then change)", port, path)
		}
		l.Close()
		return port, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	// Another process may take the port before mariadbd binds it; mariadbd then exits, the start
	// fails with its log to tell, and the next start finds the port free again or says so.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port, os.WriteFile(path, []byte(strconv.Itoa(port)+"\n"), 0o600)
}

// server is a running mariadbd.
type server struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited and been reaped
	exitErr error

	stopOnce sync.Once
	stopErr  error
}

// waitReady polls until the server answers on dsn, it exits, ctx ends or startTimeout passes.
func (s *server) waitReady(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(ctx, dsn, time.Second)
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("mariadbd exited: %v", s.exitErr)
		case <-ctx.Done():
			return fmt.Errorf("no answer within %s: %w", startTimeout, err)
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM, mariadbd's orderly shutdown, and waits for the exit; past stopTimeout it
// kills the process. Later calls return the first result.
func (s *server) stop() error {
	s.stopOnce.Do(func() {
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.stopErr = err
			return
		}
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.exited
			s.stopErr = fmt.Errorf("mariadbd did not stop within %s and was killed", stopTimeout)
		}
	})
	return s.stopErr
}
