package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestDefaults(t *testing.T) {
	c, err := FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.MgmtDSN != "" || c.SandboxPrefix != "cdb_" || c.DataDir != "./data" ||
		c.MailDir != filepath.Join("data", "mail") || c.PublicURL.String() != "http://localhost:8080" || c.BcryptCost != 12 ||
		c.QueryRate != 20 || c.ResultMemory != 64<<20 || c.MetricsAddr != "127.0.0.1:9090" || c.FreeTenantsPerUser != 3 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestValues(t *testing.T) {
	c, err := FromEnv(env(map[string]string{
		"CLOUDDB_HTTP_ADDR":             ":9000",
		"CLOUDDB_MGMT_DSN":              "root@tcp(db:3306)/clouddb",
		"CLOUDDB_SANDBOX_DSN":           "root@tcp(a:3306)/, root@tcp(b:3306)/",
		"CLOUDDB_SANDBOX_PUBLIC_PORT":   "13306",
		"CLOUDDB_DATA_DIR":              "/var/lib/clouddb",
		"CLOUDDB_BCRYPT_COST":           "4",
		"CLOUDDB_SECRET_KEY":            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"CLOUDDB_LOG_LEVEL":             "debug",
		"CLOUDDB_QUERY_RATE":            "0.5",
		"CLOUDDB_RESULT_MEMORY":         "2097152",
		"CLOUDDB_METRICS_ADDR":          ":0",
		"CLOUDDB_FREE_TENANTS_PER_USER": "5",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SandboxDSNs) != 2 || c.SandboxPublicPort != 13306 || c.MailDir != "/var/lib/clouddb/mail" ||
		c.BcryptCost != 4 || len(c.SecretKey) != 32 || c.LogLevel.String() != "DEBUG" ||
		c.QueryRate != 0.5 || c.ResultMemory != 2<<20 || c.MetricsAddr != ":0" || c.FreeTenantsPerUser != 5 {
		t.Fatalf("values not read: %+v", c)
	}
}

func TestInvalidValuesNameTheVariableOnOneLine(t *testing.T) {
	tests := map[string]string{
		"CLOUDDB_HTTP_ADDR":             "8080",
		"CLOUDDB_MGMT_DSN":              "root@tcp(db:3306)/",
		"CLOUDDB_SANDBOX_DSN":           "not a dsn",
		"CLOUDDB_SANDBOX_PREFIX":        "Bad-Prefix",
		"CLOUDDB_SANDBOX_PUBLIC_PORT":   "70000",
		"CLOUDDB_PUBLIC_URL":            "ftp://x",
		"CLOUDDB_SMTP_ADDR":             "mail",
		"CLOUDDB_BCRYPT_COST":           "3",
		"CLOUDDB_LOG_LEVEL":             "loud",
		"CLOUDDB_JWT_SECRET":            "short",
		"CLOUDDB_SECRET_KEY":            "c2hvcnQ=",
		"CLOUDDB_SECRET_KEY_PREVIOUS":   "not base64",
		"CLOUDDB_QUERY_RATE":            "0",
		"CLOUDDB_RESULT_MEMORY":         "1000",
		"CLOUDDB_METRICS_ADDR":          "9090",
		"CLOUDDB_FREE_TENANTS_PER_USER": "0",
		"CLOUDDB_EXPORT_IDLE_TIMEOUT":   "1ms",
		"CLOUDDB_EXPORT_MAX_DURATION":   "forever",
		"CLOUDDB_EXPORTS_PER_USER":      "0",
		"CLOUDDB_RESULT_MAX_BYTES":      "1000",
		"CLOUDDB_QUERIES_IN_FLIGHT":     "0",
		"CLOUDDB_QUERY_MEMORY":          "1048576",
		"CLOUDDB_QUERY_WAIT":            "10ms",
		"CLOUDDB_LOAD_SAMPLE_TENANTS":   "0",
	}
	for name, value := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := FromEnv(env(map[string]string{name: value}))
			if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("FromEnv(%s=%q) = %v, want one line naming the variable", name, value, err)
			}
		})
	}
	if c, err := FromEnv(env(map[string]string{"CLOUDDB_METRICS_ADDR": "off"})); err != nil || c.MetricsAddr != "" {
		t.Fatalf("CLOUDDB_METRICS_ADDR=off: %q, %v; want no metrics listener", c.MetricsAddr, err)
	}
	for _, url := range []string{"mysql://root@127.0.0.1:3306/clouddb", "mariadb://u:p@db/x"} {
		_, err := FromEnv(env(map[string]string{"CLOUDDB_MGMT_DSN": url}))
		if err == nil || !strings.Contains(err.Error(), "is a URL, not a DSN") || !strings.Contains(err.Error(), "root@tcp(127.0.0.1:3306)/clouddb") {
			t.Errorf("CLOUDDB_MGMT_DSN=%s: %v, want the expected form said", url, err)
		}
	}
	_, err := FromEnv(env(map[string]string{"CLOUDDB_BOOTSTRAP_ADMIN_EMAIL": "a@b.c"}))
	if err == nil || !strings.Contains(err.Error(), "CLOUDDB_BOOTSTRAP_ADMIN_PASSWORD") {
		t.Fatalf("bootstrap email without password: %v", err)
	}
}

func TestLoadKeysGeneratesOnceAndAgreesAcrossConcurrentStarts(t *testing.T) {
	dir := t.TempDir()
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := Config{DataDir: dir}
			if err := c.LoadKeys(); err != nil {
				t.Error(err)
				return
			}
			keys[i] = append(append([]byte{}, c.JWTSecret...), c.SecretKey...)
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) || len(k) != 64 {
			t.Fatal("concurrent starts generated different keys")
		}
	}
	info, err := os.Stat(filepath.Join(dir, "secret.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret.key: %v, mode %v; want 0600", err, info.Mode())
	}
	if err := os.WriteFile(filepath.Join(dir, "jwt.key"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{DataDir: dir}
	if err := c.LoadKeys(); err == nil || !strings.Contains(err.Error(), "jwt.key") {
		t.Fatalf("a corrupt key file was accepted: %v", err)
	}
}

// The bounds of results, exports and query memory (issue 10, items 3 and 4) have defaults and
// can be set.
func TestResultBounds(t *testing.T) {
	c, err := FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.ExportIdle != time.Minute || c.ExportMax != time.Hour || c.ExportsPerUser != 2 || c.ResultMaxBytes != 256<<20 ||
		c.QueriesInFlight != 256 || c.QueryMemory != 128<<20 || c.QueryWait != 2*time.Second || c.LoadSampleTenants != 1000 {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = FromEnv(env(map[string]string{"CLOUDDB_EXPORT_IDLE_TIMEOUT": "5s", "CLOUDDB_EXPORT_MAX_DURATION": "2h",
		"CLOUDDB_EXPORTS_PER_USER": "4", "CLOUDDB_RESULT_MAX_BYTES": "2097152", "CLOUDDB_QUERIES_IN_FLIGHT": "32",
		"CLOUDDB_QUERY_MEMORY": "16777216", "CLOUDDB_QUERY_WAIT": "30s"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ExportIdle != 5*time.Second || c.ExportMax != 2*time.Hour || c.ExportsPerUser != 4 || c.ResultMaxBytes != 2<<20 ||
		c.QueriesInFlight != 32 || c.QueryMemory != 16<<20 || c.QueryWait != 30*time.Second {
		t.Fatalf("values not read: %+v", c)
	}
}

func TestShutdownDrain(t *testing.T) {
	c, err := FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.ShutdownDrain != 30*time.Second {
		t.Fatalf("default drain %v, want 30s", c.ShutdownDrain)
	}
	if c, err = FromEnv(env(map[string]string{"CLOUDDB_SHUTDOWN_DRAIN": "2s"})); err != nil || c.ShutdownDrain != 2*time.Second {
		t.Fatalf("drain 2s: %v, %v", c.ShutdownDrain, err)
	}
	if _, err := FromEnv(env(map[string]string{"CLOUDDB_SHUTDOWN_DRAIN": "soon"})); err == nil || !strings.Contains(err.Error(), "CLOUDDB_SHUTDOWN_DRAIN") {
		t.Fatalf("a bad drain was accepted: %v", err)
	}
}

// Durations with bounds: the default, a value within them, and values refused naming the variable.
func TestBoundedDurations(t *testing.T) {
	for _, tt := range []struct {
		name      string
		of        func(Config) time.Duration
		byDefault time.Duration
		good      string
		goodIs    time.Duration
		bad       []string
	}{
		{"CLOUDDB_LEASE_TTL", func(c Config) time.Duration { return c.LeaseTTL }, 30 * time.Second, "2s", 2 * time.Second, []string{"500ms", "1h", "never"}},
		{"CLOUDDB_HOUSEKEEPING_INTERVAL", func(c Config) time.Duration { return c.HousekeepingInterval }, 30 * time.Second, "5m", 5 * time.Minute, []string{"100ms", "25h", "hourly"}},
		{"CLOUDDB_LOAD_SAMPLE_INTERVAL", func(c Config) time.Duration { return c.LoadSampleInterval }, time.Minute, "5m", 5 * time.Minute, []string{"30s", "2h", "often"}},
		{"CLOUDDB_DEACTIVATION_GRACE", func(c Config) time.Duration { return c.DeactivationGrace }, 720 * time.Hour, "48h", 48 * time.Hour, []string{"30s", "8761h", "a month"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(env(nil))
			if err != nil || tt.of(c) != tt.byDefault {
				t.Fatalf("default %v, %v; want %v", tt.of(c), err, tt.byDefault)
			}
			if c, err = FromEnv(env(map[string]string{tt.name: tt.good})); err != nil || tt.of(c) != tt.goodIs {
				t.Fatalf("%s: %v, %v; want %v", tt.good, tt.of(c), err, tt.goodIs)
			}
			for _, bad := range tt.bad {
				if _, err := FromEnv(env(map[string]string{tt.name: bad})); err == nil || !strings.Contains(err.Error(), tt.name) {
					t.Errorf("%q was accepted: %v", bad, err)
				}
			}
		})
	}
}
