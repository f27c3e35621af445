package mgmtdb_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/internal/mgmtdb"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		dsn     string
		wantDB  string
		wantErr string // substring; empty means success
	}{
		{"plain", "root@tcp(127.0.0.1:3306)/clouddb", "clouddb", ""},
		{"with password and other params", "app:s3cret@tcp(db.internal:3307)/mgmt?timeout=2s&readTimeout=30s", "mgmt", ""},
		{"overrides forced off", "root@tcp(127.0.0.1:3306)/clouddb?parseTime=false&loc=Local&interpolateParams=false&multiStatements=true", "clouddb", ""},
		{"overrides a time_zone param", "root@tcp(127.0.0.1:3306)/clouddb?time_zone=%27Europe%2FParis%27", "clouddb", ""},
		{"no database", "root@tcp(127.0.0.1:3306)/", "", "names no database"},
		{"no database with params", "root@tcp(127.0.0.1:3306)/?parseTime=true", "", "names no database"},
		{"unparseable", "root@tcp(127.0.0.1:3306)", "", "invalid management DSN"},
		{"bad param value", "root@tcp(127.0.0.1:3306)/clouddb?parseTime=maybe", "", "invalid management DSN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := mgmtdb.Config(tt.dsn)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Config(%q) error = %v, want one containing %q", tt.dsn, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Config(%q): %v", tt.dsn, err)
			}
			if cfg.DBName != tt.wantDB {
				t.Errorf("DBName = %q, want %q", cfg.DBName, tt.wantDB)
			}
			if !cfg.ParseTime {
				t.Error("ParseTime = false, want true")
			}
			if cfg.Loc != time.UTC {
				t.Errorf("Loc = %v, want UTC", cfg.Loc)
			}
			if !cfg.InterpolateParams {
				t.Error("InterpolateParams = false, want true")
			}
			if cfg.MultiStatements {
				t.Error("MultiStatements = true, want false")
			}
			if got := cfg.Params["time_zone"]; got != "'+00:00'" {
				t.Errorf("time_zone param = %q, want '+00:00'", got)
			}
			// The normalized config survives a round trip through its DSN (what Open hands sql.Open).
			again, err := mysql.ParseDSN(cfg.FormatDSN())
			if err != nil {
				t.Fatalf("ParseDSN(FormatDSN()): %v", err)
			}
			if !again.ParseTime || again.Loc != time.UTC || !again.InterpolateParams || again.MultiStatements || again.DBName != tt.wantDB {
				t.Errorf("round trip lost settings: %s", cfg.FormatDSN())
			}
		})
	}
}

func TestQuoteIdentifier(t *testing.T) {
	tests := []struct{ in, want string }{
		{"clouddb", "`clouddb`"},
		{"", "``"},
		{"my db", "`my db`"},
		{"a`b", "`a``b`"},
		{"`", "````"},
		{"``x``", "`````x`````"},
		{"x`; DROP DATABASE y; --", "`x``; DROP DATABASE y; --`"},
		{"naïve_日本", "`naïve_日本`"},
		{`quote"and'`, "`quote\"and'`"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := mgmtdb.QuoteIdentifier(tt.in); got != tt.want {
				t.Errorf("QuoteIdentifier(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// serverDB opens the test server without a database, for looking at what Open did.
func serverDB(t *testing.T) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(testdb.ServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenCreatesMissingDatabase(t *testing.T) {
	ctx := t.Context()
	dsn := testdb.DSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	server := serverDB(t)
	schema := func() (charset, collation string, found bool) {
		t.Helper()
		err := server.QueryRowContext(ctx, `SELECT default_character_set_name, default_collation_name
			FROM information_schema.schemata WHERE schema_name = ?`, cfg.DBName).Scan(&charset, &collation)
		if errors.Is(err, sql.ErrNoRows) {
			return "", "", false
		} else if err != nil {
			t.Fatal(err)
		}
		return charset, collation, true
	}
	if _, _, found := schema(); found {
		t.Fatalf("database %s exists before Open", cfg.DBName)
	}

	db, err := mgmtdb.Open(ctx, dsn, 5*time.Second, discard())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })

	charset, collation, found := schema()
	if !found {
		t.Fatalf("database %s missing after Open", cfg.DBName)
	}
	if charset != "utf8mb4" || collation != "utf8mb4_bin" {
		t.Errorf("database %s is %s/%s, want utf8mb4/utf8mb4_bin", cfg.DBName, charset, collation)
	}

	var current, tz string
	if err := db.QueryRowContext(ctx, `SELECT DATABASE(), @@session.time_zone`).Scan(&current, &tz); err != nil {
		t.Fatal(err)
	}
	if current != cfg.DBName {
		t.Errorf("DATABASE() = %q, want %q", current, cfg.DBName)
	}
	if tz != "+00:00" {
		t.Errorf("session time_zone = %q, want +00:00", tz)
	}

	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id INT PRIMARY KEY, at DATETIME(6) NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	// A time in another zone is stored as its UTC instant and comes back as time.Time in UTC.
	in := time.Date(2024, 3, 31, 1, 30, 0, 123456000, time.FixedZone("UTC+5", 5*3600))
	if _, err := db.ExecContext(ctx, `INSERT INTO t (id, at) VALUES (?, ?)`, 1, in); err != nil {
		t.Fatal(err)
	}
	var out time.Time
	var text string
	if err := db.QueryRowContext(ctx, `SELECT at, CAST(at AS CHAR) FROM t WHERE id = ?`, 1).Scan(&out, &text); err != nil {
		t.Fatalf("scan DATETIME into time.Time: %v", err)
	}
	if out.Location() != time.UTC {
		t.Errorf("DATETIME scanned in %v, want UTC", out.Location())
	}
	if !out.Equal(in) {
		t.Errorf("DATETIME round trip = %v, want %v", out, in)
	}
	if want := "2024-03-30 20:30:00.123456"; text != want {
		t.Errorf("stored DATETIME = %q, want the UTC wall clock %q", text, want)
	}
	// NOW() is UTC too, so server-side and Go-side times agree.
	var now time.Time
	if err := db.QueryRowContext(ctx, `SELECT NOW(6)`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(now); d < -time.Minute || d > time.Minute {
		t.Errorf("NOW(6) = %v is %v away from the local clock; session not in UTC?", now, d)
	}

	// Opening an existing database works as well.
	again, err := mgmtdb.Open(ctx, dsn, 5*time.Second, discard())
	if err != nil {
		t.Fatalf("second Open of an existing database: %v", err)
	}
	defer again.Close()
	var n int
	if err := again.QueryRowContext(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 1 {
		t.Errorf("second pool sees %d rows (err %v), want 1", n, err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	var logs bytes.Buffer // Open logs from the calling goroutine only
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// Open gives up after its 1 s wait; one that ignored it would retry until the context ends, a
	// minute later: the context still running when Open returns tells the two apart.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	db, err := mgmtdb.Open(ctx, "root@tcp(127.0.0.1:1)/clouddb", time.Second, log)
	if err == nil {
		db.Close()
		t.Fatal("Open of 127.0.0.1:1 succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q does not name the address 127.0.0.1:1", err)
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open with a 1s wait retried until its one-minute context ended: %v", err)
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("no retry was logged during the 1s wait; logs:\n%s", logs.String())
	}
}

func TestOpenCanceledContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The wait is 5 minutes: 30 s tells an Open that stops with its context from one that goes
	// on retrying, however busy the machine.
	db, err := mgmtdb.Open(ctx, "root@tcp(127.0.0.1:1)/clouddb", 5*time.Minute, discard())
	elapsed := time.Since(start)
	if err == nil {
		db.Close()
		t.Fatal("Open of 127.0.0.1:1 succeeded, want an error")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want one wrapping context.DeadlineExceeded", err)
	}
	if elapsed > 30*time.Second {
		t.Errorf("Open kept retrying %v after its context ended", elapsed)
	}
}

func TestOpenBadCredentialsFailsAtOnce(t *testing.T) {
	cfg, err := mysql.ParseDSN(testdb.DSN(t)) // fails the test if the server does not answer
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = "nobody_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	cfg.Passwd = "wrong"
	var logs bytes.Buffer // Open logs each retry, from the calling goroutine
	db, err := mgmtdb.Open(t.Context(), cfg.FormatDSN(), 5*time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	if err == nil {
		db.Close()
		t.Fatalf("Open as unknown user %s succeeded, want an error", cfg.User)
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) || (me.Number != 1045 && me.Number != 1698) {
		t.Errorf("error %v, want one wrapping MySQL error 1045 or 1698 (access denied)", err)
	}
	if !strings.Contains(err.Error(), cfg.Addr) {
		t.Errorf("error %q does not name the address %s", err, cfg.Addr)
	}
	if strings.Contains(logs.String(), "retrying") {
		t.Errorf("Open retried refused credentials, want no retries; logs:\n%s", logs.String())
	}
}
