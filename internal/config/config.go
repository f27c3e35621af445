// Package config reads CloudDB Manager's configuration from the environment, with the names and
// defaults of DESIGN.md. Invalid values fail at start with one line naming the variable.
package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
)

// Config is the whole configuration of one clouddb process.
type Config struct {
	HTTPAddr string
	// MetricsAddr is the operator-only listen address of GET /metrics; empty means no metrics
	// listener (CLOUDDB_METRICS_ADDR=off). The public HTTPAddr never serves /metrics.
	MetricsAddr string
	// MgmtDSN is RDS-A; empty means "find or start a local server" (see internal/localmysql).
	MgmtDSN           string
	SandboxDSNs       []string // RDS-B admin DSNs; empty means the management server
	SandboxPrefix     string
	SandboxPublicHost string
	SandboxPublicPort int
	DataDir           string
	PublicURL         *url.URL
	SMTPAddr          string
	SMTPFrom          string
	SMTPUser          string
	SMTPPassword      string
	MailDir           string
	BootstrapEmail    string
	BootstrapPassword string
	BcryptCost        int
	AccessTokenTTL    time.Duration
	RecoveryWindow    time.Duration // how long a deleted database can be restored
	LogLevel          slog.Level
	// QueryRate is how many queries a second each user may run on average (bursts of twice as
	// many); ResultMemory the bytes of query results kept in memory for paging (more spill to
	// $CLOUDDB_DATA_DIR/results).
	QueryRate    float64
	ResultMemory int64
	// FreeTenantsPerUser is how many free-plan tenants one person may create.
	FreeTenantsPerUser int
	// ProvisioningWorkers is how many databases the process provisions at once (schema templates
	// of different tenants run side by side; a tenant's own one after the other).
	ProvisioningWorkers int
	// ExportIdle cuts a download of a result that makes no progress this long, ExportMax one that
	// takes longer in all; ExportsPerUser is how many downloads one user may run at once.
	ExportIdle     time.Duration
	ExportMax      time.Duration
	ExportsPerUser int
	// ResultMaxBytes bounds the rows of one result; QueriesInFlight the statements the process
	// runs at once; QueryMemory the bytes of rows those hold in memory together; QueryWait how
	// long a statement waits for a place among those, or its tenant's, or a session on its
	// database's account, before it is refused as busy.
	ResultMaxBytes  int64
	QueriesInFlight int
	QueryMemory     int64
	QueryWait       time.Duration
	// WebhookPrivateAddresses lets webhooks reach private, loopback and link-local addresses
	// (CLOUDDB_WEBHOOK_PRIVATE_ADDRESSES=allow), for a development machine whose receivers listen
	// on localhost; by default a webhook reaches the public internet only (internal/egress).
	WebhookPrivateAddresses bool
	// ShutdownDrain is how long SIGTERM waits for running requests before cancelling them (their
	// statements are killed on the server).
	ShutdownDrain time.Duration
	// LeaseTTL is how long a process counts as alive after it last renewed its lease
	// (internal/leases): what a dead process left (query intents, running Idempotency-Keys) is
	// resolved that long after it died, and the query-outcome reconciler looks that often.
	LeaseTTL time.Duration
	// HousekeepingInterval is how often the process measures every database's storage, enforces
	// the storage quotas, stops idle databases and reconnects sandbox servers that were down
	// (databases written to are measured within seconds regardless).
	HousekeepingInterval time.Duration
	// LoadSampleInterval is how often the query module records each tenant's load that changed
	// (queryexec.LoadSampler: peak statements at once, pool connections), a minute at the least;
	// LoadSampleTenants how many tenants a process records per sample at most (the busiest).
	LoadSampleInterval time.Duration
	LoadSampleTenants  int
	// DeactivationGrace is how long a permanent deactivation of a member can be reversed; then the
	// membership is closed for good.
	DeactivationGrace time.Duration
	// JWTSecret, SecretKey and AuditSigningKey come from the environment or are generated once
	// into the data dir by LoadKeys. AuditSigningKey signs the heads of the event log's hash
	// chains (CLOUDDB_AUDIT_SIGNING_KEY: its 32-byte seed or 64-byte private key, base64).
	JWTSecret       []byte
	SecretKey       []byte
	AuditSigningKey ed25519.PrivateKey
	// SecretKeyPrevious is the key being rotated out (CLOUDDB_SECRET_KEY_PREVIOUS): what it
	// sealed is re-sealed with SecretKey in the background; nil when no rotation is under way.
	SecretKeyPrevious []byte
}

// FromEnv reads the configuration through getenv (os.Getenv in production).
func FromEnv(getenv func(string) string) (Config, error) {
	get := func(name, fallback string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return fallback
	}
	c := Config{
		HTTPAddr:          get("CLOUDDB_HTTP_ADDR", "127.0.0.1:8080"),
		MgmtDSN:           get("CLOUDDB_MGMT_DSN", ""),
		SandboxPrefix:     get("CLOUDDB_SANDBOX_PREFIX", "cdb_"),
		SandboxPublicHost: get("CLOUDDB_SANDBOX_PUBLIC_HOST", ""),
		DataDir:           get("CLOUDDB_DATA_DIR", "./data"),
		SMTPAddr:          get("CLOUDDB_SMTP_ADDR", ""),
		SMTPFrom:          get("CLOUDDB_SMTP_FROM", "CloudDB Manager <no-reply@localhost>"),
		SMTPUser:          get("CLOUDDB_SMTP_USER", ""),
		SMTPPassword:      getenv("CLOUDDB_SMTP_PASSWORD"),
		BootstrapEmail:    get("CLOUDDB_BOOTSTRAP_ADMIN_EMAIL", ""),
		BootstrapPassword: getenv("CLOUDDB_BOOTSTRAP_ADMIN_PASSWORD"),
	}
	c.MailDir = get("CLOUDDB_MAIL_DIR", filepath.Join(c.DataDir, "mail"))
	var problems []string
	fail := func(name, format string, args ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, args...))
	}

	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		fail("CLOUDDB_HTTP_ADDR", "%q is not host:port", c.HTTPAddr)
	}
	switch metrics := get("CLOUDDB_METRICS_ADDR", "127.0.0.1:9090"); {
	case metrics == "off":
	case validHostPort(metrics):
		c.MetricsAddr = metrics
	default:
		fail("CLOUDDB_METRICS_ADDR", "%q is not host:port (or off)", metrics)
	}
	if c.MgmtDSN != "" {
		if cfg, err := parseDSN(c.MgmtDSN); err != nil {
			fail("CLOUDDB_MGMT_DSN", "%v", err)
		} else if cfg.DBName == "" {
			fail("CLOUDDB_MGMT_DSN", "names no database (add /clouddb)")
		}
	}
	for _, dsn := range strings.Split(get("CLOUDDB_SANDBOX_DSN", ""), ",") {
		if dsn = strings.TrimSpace(dsn); dsn == "" {
			continue
		}
		if _, err := parseDSN(dsn); err != nil {
			fail("CLOUDDB_SANDBOX_DSN", "%v", err)
		}
		c.SandboxDSNs = append(c.SandboxDSNs, dsn)
	}
	if !sandbox.ValidPrefix(c.SandboxPrefix) {
		fail("CLOUDDB_SANDBOX_PREFIX", "%q must be 1 to %d lower-case letters, digits or underscores, starting with a letter (account names stay within 32 characters)", c.SandboxPrefix, sandbox.MaxPrefixLength)
	}
	if port := get("CLOUDDB_SANDBOX_PUBLIC_PORT", ""); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			fail("CLOUDDB_SANDBOX_PUBLIC_PORT", "%q is not a port number", port)
		}
		c.SandboxPublicPort = n
	}
	publicURL := get("CLOUDDB_PUBLIC_URL", "http://localhost:8080")
	if u, err := url.Parse(publicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fail("CLOUDDB_PUBLIC_URL", "%q is not an http(s) URL", publicURL)
	} else {
		c.PublicURL = u
	}
	if c.SMTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.SMTPAddr); err != nil {
			fail("CLOUDDB_SMTP_ADDR", "%q is not host:port", c.SMTPAddr)
		}
	}
	if (c.BootstrapEmail == "") != (c.BootstrapPassword == "") {
		fail("CLOUDDB_BOOTSTRAP_ADMIN_EMAIL", "and CLOUDDB_BOOTSTRAP_ADMIN_PASSWORD must be set together")
	}
	cost := get("CLOUDDB_BCRYPT_COST", "12")
	if n, err := strconv.Atoi(cost); err != nil || n < 4 || n > 31 {
		fail("CLOUDDB_BCRYPT_COST", "%q must be a number from 4 to 31", cost)
	} else {
		c.BcryptCost = n
	}
	window := get("CLOUDDB_RECOVERY_WINDOW", "720h")
	if d, err := time.ParseDuration(window); err != nil || d < time.Second {
		fail("CLOUDDB_RECOVERY_WINDOW", "%q must be a duration of at least 1s", window)
	} else {
		c.RecoveryWindow = d
	}
	ttl := get("CLOUDDB_ACCESS_TOKEN_TTL", "12h")
	if d, err := time.ParseDuration(ttl); err != nil || d < time.Minute || d > 7*24*time.Hour {
		fail("CLOUDDB_ACCESS_TOKEN_TTL", "%q must be a duration from 1m to 168h", ttl)
	} else {
		c.AccessTokenTTL = d
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("CLOUDDB_LOG_LEVEL", "info"))); err != nil {
		fail("CLOUDDB_LOG_LEVEL", "must be debug, info, warn or error")
	}
	rateText := get("CLOUDDB_QUERY_RATE", "20")
	if r, err := strconv.ParseFloat(rateText, 64); err != nil || !(r > 0 && r <= 1e6) {
		fail("CLOUDDB_QUERY_RATE", "%q must be a number of queries per second above 0", rateText)
	} else {
		c.QueryRate = r
	}
	memText := get("CLOUDDB_RESULT_MEMORY", strconv.Itoa(64<<20))
	if n, err := strconv.ParseInt(memText, 10, 64); err != nil || n < 1<<20 {
		fail("CLOUDDB_RESULT_MEMORY", "%q must be a number of bytes, at least 1048576", memText)
	} else {
		c.ResultMemory = n
	}
	switch private := get("CLOUDDB_WEBHOOK_PRIVATE_ADDRESSES", "refuse"); private {
	case "allow", "refuse":
		c.WebhookPrivateAddresses = private == "allow"
	default:
		fail("CLOUDDB_WEBHOOK_PRIVATE_ADDRESSES", "%q must be allow or refuse", private)
	}
	freeText := get("CLOUDDB_FREE_TENANTS_PER_USER", "3")
	if n, err := strconv.Atoi(freeText); err != nil || n < 1 || n > 1000 {
		fail("CLOUDDB_FREE_TENANTS_PER_USER", "%q must be a number from 1 to 1000", freeText)
	} else {
		c.FreeTenantsPerUser = n
	}
	workersText := get("CLOUDDB_PROVISIONING_WORKERS", "4")
	if n, err := strconv.Atoi(workersText); err != nil || n < 1 || n > 64 {
		fail("CLOUDDB_PROVISIONING_WORKERS", "%q must be a number from 1 to 64", workersText)
	} else {
		c.ProvisioningWorkers = n
	}
	idleText := get("CLOUDDB_EXPORT_IDLE_TIMEOUT", "60s")
	if d, err := time.ParseDuration(idleText); err != nil || d < 100*time.Millisecond || d > time.Hour {
		fail("CLOUDDB_EXPORT_IDLE_TIMEOUT", "%q must be a duration from 100ms to 1h", idleText)
	} else {
		c.ExportIdle = d
	}
	maxText := get("CLOUDDB_EXPORT_MAX_DURATION", "1h")
	if d, err := time.ParseDuration(maxText); err != nil || d < time.Second || d > 24*time.Hour {
		fail("CLOUDDB_EXPORT_MAX_DURATION", "%q must be a duration from 1s to 24h", maxText)
	} else {
		c.ExportMax = d
	}
	exportsText := get("CLOUDDB_EXPORTS_PER_USER", "2")
	if n, err := strconv.Atoi(exportsText); err != nil || n < 1 || n > 100 {
		fail("CLOUDDB_EXPORTS_PER_USER", "%q must be a number from 1 to 100", exportsText)
	} else {
		c.ExportsPerUser = n
	}
	resultMaxText := get("CLOUDDB_RESULT_MAX_BYTES", strconv.Itoa(256<<20))
	if n, err := strconv.ParseInt(resultMaxText, 10, 64); err != nil || n < 1<<20 || n > 1<<40 {
		fail("CLOUDDB_RESULT_MAX_BYTES", "%q must be a number of bytes from 1048576 to 1099511627776", resultMaxText)
	} else {
		c.ResultMaxBytes = n
	}
	inFlightText := get("CLOUDDB_QUERIES_IN_FLIGHT", "256")
	if n, err := strconv.Atoi(inFlightText); err != nil || n < 1 || n > 100_000 {
		fail("CLOUDDB_QUERIES_IN_FLIGHT", "%q must be a number from 1 to 100000", inFlightText)
	} else {
		c.QueriesInFlight = n
	}
	queryMemText := get("CLOUDDB_QUERY_MEMORY", strconv.Itoa(128<<20))
	if n, err := strconv.ParseInt(queryMemText, 10, 64); err != nil || n < 8<<20 {
		fail("CLOUDDB_QUERY_MEMORY", "%q must be a number of bytes, at least 8388608 (a row's most)", queryMemText)
	} else {
		c.QueryMemory = n
	}
	queryWaitText := get("CLOUDDB_QUERY_WAIT", "2s")
	if d, err := time.ParseDuration(queryWaitText); err != nil || d < 100*time.Millisecond || d > 5*time.Minute {
		fail("CLOUDDB_QUERY_WAIT", "%q must be a duration from 100ms to 5m", queryWaitText)
	} else {
		c.QueryWait = d
	}
	drainText := get("CLOUDDB_SHUTDOWN_DRAIN", "30s")
	if d, err := time.ParseDuration(drainText); err != nil || d < 0 || d > time.Hour {
		fail("CLOUDDB_SHUTDOWN_DRAIN", "%q must be a duration from 0s to 1h", drainText)
	} else {
		c.ShutdownDrain = d
	}
	leaseText := get("CLOUDDB_LEASE_TTL", "30s")
	if d, err := time.ParseDuration(leaseText); err != nil || d < time.Second || d > 10*time.Minute {
		fail("CLOUDDB_LEASE_TTL", "%q must be a duration from 1s to 10m", leaseText)
	} else {
		c.LeaseTTL = d
	}
	housekeepingText := get("CLOUDDB_HOUSEKEEPING_INTERVAL", "30s")
	if d, err := time.ParseDuration(housekeepingText); err != nil || d < time.Second || d > 24*time.Hour {
		fail("CLOUDDB_HOUSEKEEPING_INTERVAL", "%q must be a duration from 1s to 24h", housekeepingText)
	} else {
		c.HousekeepingInterval = d
	}
	loadText := get("CLOUDDB_LOAD_SAMPLE_INTERVAL", "1m")
	if d, err := time.ParseDuration(loadText); err != nil || d < time.Minute || d > time.Hour {
		fail("CLOUDDB_LOAD_SAMPLE_INTERVAL", "%q must be a duration from 1m to 1h", loadText)
	} else {
		c.LoadSampleInterval = d
	}
	loadTenantsText := get("CLOUDDB_LOAD_SAMPLE_TENANTS", "1000")
	if n, err := strconv.Atoi(loadTenantsText); err != nil || n < 1 || n > 100_000 {
		fail("CLOUDDB_LOAD_SAMPLE_TENANTS", "%q must be a number from 1 to 100000", loadTenantsText)
	} else {
		c.LoadSampleTenants = n
	}
	graceText := get("CLOUDDB_DEACTIVATION_GRACE", "720h")
	if d, err := time.ParseDuration(graceText); err != nil || d < time.Minute || d > 8760*time.Hour {
		fail("CLOUDDB_DEACTIVATION_GRACE", "%q must be a duration from 1m to 8760h", graceText)
	} else {
		c.DeactivationGrace = d
	}
	if v := getenv("CLOUDDB_JWT_SECRET"); v != "" {
		if len(v) < 32 {
			fail("CLOUDDB_JWT_SECRET", "must have at least 32 bytes")
		}
		c.JWTSecret = []byte(v)
	}
	if v := getenv("CLOUDDB_SECRET_KEY"); v != "" {
		key, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(key) != 32 {
			fail("CLOUDDB_SECRET_KEY", "must be 32 bytes, base64-encoded")
		}
		c.SecretKey = key
	}
	if v := getenv("CLOUDDB_SECRET_KEY_PREVIOUS"); v != "" {
		key, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(key) != 32 {
			fail("CLOUDDB_SECRET_KEY_PREVIOUS", "must be 32 bytes, base64-encoded")
		}
		c.SecretKeyPrevious = key
	}
	if v := getenv("CLOUDDB_AUDIT_SIGNING_KEY"); v != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		switch {
		case err == nil && len(key) == ed25519.SeedSize:
			c.AuditSigningKey = ed25519.NewKeyFromSeed(key)
		case err == nil && len(key) == ed25519.PrivateKeySize && ed25519.NewKeyFromSeed(key[:ed25519.SeedSize]).Equal(ed25519.PrivateKey(key)):
			c.AuditSigningKey = ed25519.PrivateKey(key)
		default:
			fail("CLOUDDB_AUDIT_SIGNING_KEY", "must be an Ed25519 seed (32 bytes) or private key (64 bytes), base64-encoded")
		}
	}
	if len(problems) > 0 {
		return Config{}, errors.New("invalid configuration: " + strings.Join(problems, "; "))
	}
	return c, nil
}

// dsnForm is the form of a DSN, as the errors about one say it.
const dsnForm = "the form is the Go MySQL driver's DSN, user:password@tcp(host:port)/database, e.g. root@tcp(127.0.0.1:3306)/clouddb"

// parseDSN parses a go-sql-driver DSN, and says which form is expected when it is not one: a URL
// (mysql://user@host:3306/db, the form of many other tools) otherwise fails with the driver's
// puzzling "default addr for network '…' unknown".
func parseDSN(dsn string) (*mysql.Config, error) {
	if scheme, _, ok := strings.Cut(dsn, "://"); ok && !strings.ContainsAny(scheme, "@/(") {
		return nil, fmt.Errorf("%s://… is a URL, not a DSN: %s", scheme, dsnForm)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, dsnForm)
	}
	return cfg, nil
}

func validHostPort(addr string) bool {
	_, _, err := net.SplitHostPort(addr)
	return err == nil
}

// LoadKeys fills JWTSecret, SecretKey and AuditSigningKey when the environment did not set them,
// from files in the data dir, generating each once (mode 0600) so that tokens, stored secrets and
// the chain heads' signatures survive restarts.
func (c *Config) LoadKeys() error {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("CLOUDDB_DATA_DIR: %w", err)
	}
	var err error
	if c.JWTSecret == nil {
		if c.JWTSecret, err = keyFile(filepath.Join(c.DataDir, "jwt.key"), 32); err != nil {
			return err
		}
	}
	if c.SecretKey == nil {
		if c.SecretKey, err = keyFile(filepath.Join(c.DataDir, "secret.key"), 32); err != nil {
			return err
		}
	}
	if c.AuditSigningKey == nil {
		seed, err := keyFile(filepath.Join(c.DataDir, "audit-signing.key"), ed25519.SeedSize)
		if err != nil {
			return err
		}
		c.AuditSigningKey = ed25519.NewKeyFromSeed(seed)
	}
	return nil
}

// keyFile reads a base64 key of size bytes from path, creating it if missing. The new key is
// written aside and linked into place, so two processes starting at once agree on one key.
func keyFile(path string, size int) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := createKeyFile(path, size); err != nil {
			return nil, err
		}
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) != size {
		return nil, fmt.Errorf("%s: not a base64 key of %d bytes; delete it to generate a new one", path, size)
	}
	return key, nil
}

func createKeyFile(path string, size int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	key := make([]byte, size)
	rand.Read(key)
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
