// Package localmysql finds a management database for `clouddb serve` when CLOUDDB_MGMT_DSN is
// unset, so that the system starts on a bare machine: it uses the MySQL server on
// 127.0.0.1:3306 when one answers, otherwise it runs a private MariaDB under the data directory,
// fetching Debian's server packages first, without root, into the project's .local/mariadb if no
// server binaries are installed. It never installs system packages: a server started with a typo
// in its production environment must fail, not install and start an empty database.
package localmysql

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/go-sql-driver/mysql"
)

// sharedDSN is the conventional local server: what `apt-get install mariadb-server` gives.
const sharedDSN = "root@tcp(127.0.0.1:3306)/clouddb"

// errNoServer is the one line a user sees when nothing worked; the details are in the log.
var errNoServer = errors.New(`no MySQL server answers at 127.0.0.1:3306, none is installed, and MariaDB could not be downloaded into .local/mariadb (see the log): ` +
	`install one (as root: apt-get install mariadb-server) or set CLOUDDB_MGMT_DSN`)

// Resolve returns a DSN (go-sql-driver format, naming database "clouddb") for the management database.
// stop shuts down anything Resolve started (nil-safe to call; no-op when nothing was started).
//
// ctx bounds only the search and the start-up; a private server then lives until stop is called
// (or this process dies).
func Resolve(ctx context.Context, dataDir string, log *slog.Logger) (dsn string, stop func() error, err error) {
	noop := func() error { return nil }
	err = ping(ctx, sharedDSN, time.Second)
	if err == nil {
		log.Info("using the MySQL server at 127.0.0.1:3306 as management database", "dsn", sharedDSN)
		return sharedDSN, noop, nil
	}
	log.Info("no usable MySQL server at 127.0.0.1:3306, starting a private MariaDB", "err", err)

	local, err := filepath.Abs(localDir)
	if err != nil {
		return "", noop, err
	}
	bin, err := installed(ctx, local, log)
	if err != nil {
		return "", noop, err
	}
	dsn, stop, err = startPrivate(ctx, dataDir, bin, false, log)
	if err != nil {
		return "", noop, err
	}
	return dsn, stop, nil
}

// installed finds the MariaDB server binaries: installed ones, or a copy unpacked under local,
// fetched there first when there is none.
func installed(ctx context.Context, local string, log *slog.Logger) (binaries, error) {
	bin, found := findBinaries(local)
	if found {
		return bin, nil
	}
	log.Info("no MariaDB server binaries installed: fetching Debian's packages with apt-get download", "into", local)
	if err := fetchPackages(ctx, local, log); err != nil {
		log.Warn("fetching MariaDB packages without root failed", "err", err)
		return binaries{}, errNoServer
	}
	if bin, found = findBinaries(local); !found {
		return binaries{}, errNoServer
	}
	return bin, nil
}

// ping opens one connection to dsn (its database need not exist) and checks that the server
// answers, giving up after timeout.
func ping(ctx context.Context, dsn string, timeout time.Duration) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return err
	}
	cfg.DBName = ""
	cfg.Timeout = timeout
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return db.PingContext(ctx)
}

// isRoot reports whether this process runs as root: mariadbd then refuses to start without
// --user=root.
func isRoot() bool { return os.Geteuid() == 0 }
