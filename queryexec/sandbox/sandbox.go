package sandbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/domain"
)

// Server flavors reported by Sandbox.Flavor.
const (
	FlavorMariaDB = "mariadb"
	FlavorMySQL   = "mysql"
)

// ErrUnsupportedServer: the sandbox server is older than the versions this package supports.
var ErrUnsupportedServer = errors.New("unsupported sandbox server")

// Sandbox is one RDS-B server reached with an admin DSN. It creates, locks, measures and drops the
// physical schema and the two accounts of each tenant database. A Sandbox is safe for concurrent
// use.
//
// Supported servers: MariaDB ≥ 10.4 (the first with ACCOUNT LOCK) and MySQL ≥ 5.7.8 (ACCOUNT
// LOCK came in 5.7.6, DROP USER IF EXISTS in 5.7.8). Both take the same statements: CREATE USER IF
// NOT EXISTS, ALTER USER … WITH MAX_USER_CONNECTIONS … ACCOUNT LOCK|UNLOCK, KILL CONNECTION.
// Tested against MariaDB 10.11. The admin account needs
// CREATE, DROP, CREATE USER, GRANT OPTION and the privileges it grants on the schemas it creates,
// and the right to kill other users' connections (SUPER, or CONNECTION ADMIN on MariaDB ≥ 10.5 and
// MySQL 8).
//
// Every admin session runs with NO_BACKSLASH_ESCAPES added to its sql_mode, so the one literal
// that cannot be a placeholder (a password) is escaped by doubling quotes only.
type Sandbox struct {
	name    string
	prefix  string
	db      *sql.DB
	log     *slog.Logger
	flavor  string
	version string // numeric, "10.11.19"
	full    string // VERSION() as the server says it
	host    string
	port    int
	// tenantNet is how tenant accounts reach the server: the admin DSN's network and address.
	tenantNet *mysql.Config
}

// Pool limits of the admin connection pool. Admin work is short statements; a few connections are
// plenty, and the tenant accounts' own limits are separate.
const (
	adminMaxOpen     = 16
	adminMaxIdle     = 4
	adminMaxIdleTime = 2 * time.Minute
	adminMaxLifetime = 30 * time.Minute
	adminDialTimeout = 5 * time.Second
)

var versionPattern = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`)

// Open connects to the RDS-B server named name with adminDSN and detects its flavor and
// version. prefix is the prefix of every physical schema and account name (see ValidPrefix).
//
// Returns an error wrapping domain.ErrUnavailable when the server does not answer (including a
// refused connection, within the DSN's dial timeout, 5 s when it sets none), an error wrapping
// ErrUnsupportedServer for servers older than MariaDB 10.4 or MySQL 5.7.8, and a plain error for
// a bad DSN, a bad prefix or refused credentials. Panics if log is nil.
func Open(ctx context.Context, name, adminDSN, prefix string, log *slog.Logger) (*Sandbox, error) {
	if log == nil {
		panic("queryexec: sandbox.Open with a nil logger")
	}
	if name == "" {
		return nil, errors.New("queryexec: sandbox name is empty")
	}
	if !ValidPrefix(prefix) {
		return nil, fmt.Errorf("queryexec: sandbox %s: invalid prefix %q: want a lower-case letter then up to %d lower-case letters, digits or underscores", name, prefix, MaxPrefixLength-1)
	}
	cfg, err := mysql.ParseDSN(adminDSN)
	if err != nil {
		return nil, fmt.Errorf("queryexec: sandbox %s: invalid admin DSN: %w", name, err)
	}
	cfg.DBName = "" // every statement names its schema; the DSN's database need not exist
	cfg.MultiStatements = false
	cfg.InterpolateParams = true
	if cfg.Timeout == 0 {
		cfg.Timeout = adminDialTimeout
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	mode := "@@sql_mode"
	if m, ok := cfg.Params["sql_mode"]; ok {
		mode = m
	}
	cfg.Params["sql_mode"] = "CONCAT_WS(',',NULLIF(" + mode + ",''),'NO_BACKSLASH_ESCAPES')"

	s := &Sandbox{name: name, prefix: prefix, log: log}
	if s.db, err = s.open(ctx, cfg); err != nil {
		return nil, err
	}
	var comment, sqlMode string
	var port int
	err = s.db.QueryRowContext(ctx, `SELECT VERSION(), @@version_comment, @@port, @@SESSION.sql_mode`).Scan(&s.full, &comment, &port, &sqlMode)
	if err == nil {
		err = s.detect(s.full, comment)
	}
	if err == nil && !strings.Contains(sqlMode, "NO_BACKSLASH_ESCAPES") {
		err = fmt.Errorf("NO_BACKSLASH_ESCAPES did not stick to the session (sql_mode %q)", sqlMode)
	}
	if err != nil {
		s.db.Close()
		return nil, s.Wrap("identify server", err)
	}
	if s.flavor == FlavorMySQL && !strings.HasPrefix(s.version, "5.") {
		// MySQL 8 caches information_schema.TABLES statistics for a day by default: storage
		// measurements must read the live values.
		s.db.Close()
		cfg.Params["information_schema_stats_expiry"] = "0"
		if s.db, err = s.open(ctx, cfg); err != nil {
			return nil, err
		}
	}
	s.host, s.port = hostPort(cfg, port)
	s.tenantNet = mysql.NewConfig()
	s.tenantNet.Net, s.tenantNet.Addr, s.tenantNet.Timeout = cfg.Net, cfg.Addr, cfg.Timeout
	s.tenantNet.TLS, s.tenantNet.TLSConfig = cfg.TLS, cfg.TLSConfig
	log.Info("sandbox server connected", "sandbox", name, "addr", cfg.Addr, "flavor", s.flavor, "version", s.full)
	return s, nil
}

func (s *Sandbox) open(ctx context.Context, cfg *mysql.Config) (*sql.DB, error) {
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("queryexec: sandbox %s: invalid admin DSN: %w", s.name, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(adminMaxOpen)
	db.SetMaxIdleConns(adminMaxIdle)
	db.SetConnMaxIdleTime(adminMaxIdleTime)
	db.SetConnMaxLifetime(adminMaxLifetime)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, s.Wrap("connect to "+cfg.Addr, err)
	}
	return db, nil
}

// detect sets flavor and version from VERSION() and @@version_comment, and refuses servers too old
// for ACCOUNT LOCK.
func (s *Sandbox) detect(full, comment string) error {
	s.flavor = FlavorMySQL
	if strings.Contains(strings.ToLower(full+" "+comment), "mariadb") {
		s.flavor = FlavorMariaDB
	}
	m := versionPattern.FindStringSubmatch(full)
	if m == nil {
		return fmt.Errorf("cannot read the server version %q", full)
	}
	s.version = m[1] + "." + m[2] + "." + m[3]
	v := [3]int{}
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	older := func(min [3]int) bool {
		for i := range v {
			if v[i] != min[i] {
				return v[i] < min[i]
			}
		}
		return false
	}
	if (s.flavor == FlavorMariaDB && older([3]int{10, 4, 0})) || (s.flavor == FlavorMySQL && older([3]int{5, 7, 8})) {
		return fmt.Errorf("%s %s is too old, account locking needs MariaDB ≥ 10.4 or MySQL ≥ 5.7.8: %w", s.flavor, s.version, ErrUnsupportedServer)
	}
	return nil
}

// hostPort is where clients reach the server according to the admin DSN: the TCP address, or
// 127.0.0.1 and the server's port for a Unix socket (not "localhost", which the mysql and mariadb
// clients take to mean their own default socket, not the port: the details would not connect).
func hostPort(cfg *mysql.Config, serverPort int) (string, int) {
	if cfg.Net == "tcp" || cfg.Net == "tcp6" || cfg.Net == "tcp4" {
		if h, p, err := net.SplitHostPort(cfg.Addr); err == nil {
			if n, err := strconv.Atoi(p); err == nil {
				return h, n
			}
		}
	}
	return "127.0.0.1", serverPort
}

// Name is the sandbox's name in configuration and events.
func (s *Sandbox) Name() string { return s.name }

// Flavor is FlavorMariaDB or FlavorMySQL.
func (s *Sandbox) Flavor() string { return s.flavor }

// Version is the server's numeric version, e.g. "10.11.19".
func (s *Sandbox) Version() string { return s.version }

// Prefix is the prefix of the sandbox's physical names.
func (s *Sandbox) Prefix() string { return s.prefix }

// Host is the address clients use to reach the server, from the admin DSN (a Unix socket DSN gives
// "localhost" and the server's port). Connection details may override it from configuration.
func (s *Sandbox) Host() (host string, port int) { return s.host, s.port }

// Close closes the admin pool.
func (s *Sandbox) Close() error { return s.db.Close() }

// Wrap prefixes err with the sandbox and the operation, and marks the errors that mean the server
// is not reachable with domain.ErrUnavailable.
func (s *Sandbox) Wrap(op string, err error) error {
	if errors.Is(err, domain.ErrUnavailable) {
		return err
	}
	if Unreachable(err) {
		return fmt.Errorf("queryexec: sandbox %s: %s: %w: %w", s.name, op, domain.ErrUnavailable, err)
	}
	return fmt.Errorf("queryexec: sandbox %s: %s: %w", s.name, op, err)
}

// Unreachable reports whether err says the server did not answer or dropped the connection, as
// opposed to refusing a statement.
func Unreachable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1040, // too many connections
			1053, // server shutdown in progress
			1927, // connection killed (MariaDB)
			2002, 2003, 2006, 2013:
			return true
		}
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// Errno returns the server error number of err, or 0.
func Errno(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// AccountConfig is how to reach database id's schema as its read-write account, or its read-only
// one when readOnly, with password: the admin DSN's network and address, nothing of its options.
func (s *Sandbox) AccountConfig(id, password string, readOnly bool) (*mysql.Config, error) {
	n, err := s.names(id)
	if err != nil {
		return nil, err
	}
	cfg := s.tenantNet.Clone()
	cfg.User, cfg.Passwd, cfg.DBName = n.rw, password, n.schema
	if readOnly {
		cfg.User = n.ro
	}
	return cfg, nil
}

// Listed reports whether the server still lists connection connectionID in its processlist: a
// killed statement holds its thread, and the server's CPU, until it next looks at the kill.
func (s *Sandbox) Listed(ctx context.Context, connectionID uint64) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", connectionID).Scan(&n)
	return n > 0, err
}

// KillQuery ends the statement running on the server's connection connectionID from the admin
// connection: cancelling a client's context only closes its socket, and the server would run the
// statement on. A connection that ended meanwhile is no error.
func (s *Sandbox) KillQuery(ctx context.Context, connectionID uint64) error {
	_, err := s.db.ExecContext(ctx, "KILL QUERY "+strconv.FormatUint(connectionID, 10))
	if Errno(err) == 1094 { // unknown thread: it ended meanwhile
		return nil
	}
	return err
}
