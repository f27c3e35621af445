package localmysql

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Shared returns the DSN (TCP, root without password, no database) of a private MariaDB under
// dir that outlives this process, so that the next process finds it running: the test binaries
// of one `make test` (and of the next runs) share one server instead of each initializing and
// starting its own. The first caller starts it; the others wait for it on a lock file and then
// find it answering. local is where Debian's packages are fetched when no server is installed
// (the project's .local/mariadb). started reports whether this call started the server.
//
// The server keeps running: `kill $(cat dir/mysql.pid)` stops it.
func Shared(ctx context.Context, dir, local string, log *slog.Logger) (dsn string, started bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "start.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", false, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil { // released by Close
		return "", false, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if dsn, err := keptDSN(dir); err == nil && ping(ctx, dsn, time.Second) == nil {
		return dsn, false, nil
	}
	bin, err := installed(ctx, local, log)
	if err != nil {
		return "", false, err
	}
	if _, _, err := startPrivate(ctx, dir, bin, true, log); err != nil {
		return "", false, err
	}
	dsn, err = keptDSN(dir)
	return dsn, err == nil, err
}

// keptDSN is the TCP DSN of the server under dir, on the port kept there.
func keptDSN(dir string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, portFile))
	if err != nil {
		return "", err
	}
	return "root@tcp(127.0.0.1:" + strings.TrimSpace(string(raw)) + ")/", nil
}
