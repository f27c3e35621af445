// Package mgmtdb opens the management database (RDS-A) the way the rest of the code relies on:
// times parsed as UTC, parameters interpolated client-side (one round trip per statement instead
// of three), the database created if it is missing, and a clear error if the server never answers.
package mgmtdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/internal/backoffs"
)

// Config normalizes dsn for RDS-A. Returns an error naming the problem if dsn cannot be parsed or
// names no database.
func Config(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid management DSN: %w", err)
	}
	if cfg.DBName == "" {
		return nil, errors.New("invalid management DSN: it names no database (…/clouddb)")
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true
	cfg.MultiStatements = false
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	return cfg, nil
}

// Open connects to the management database, creating it if missing. While the server does not
// answer it retries with backoff, logging each attempt, until ctx ends or wait has passed.
func Open(ctx context.Context, dsn string, wait time.Duration, log *slog.Logger) (*sql.DB, error) {
	cfg, err := Config(dsn)
	if err != nil {
		return nil, err
	}
	attempt := 0
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		err := createDatabase(ctx, cfg)
		if permanent(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(backoffs.Until(time.Now().Add(wait), backoffs.Exponential(200*time.Millisecond, 5*time.Second, 0))),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, delay time.Duration) {
			log.Warn("management database not reachable yet, retrying", "addr", cfg.Addr, "attempt", attempt, "retry_in_ms", delay.Milliseconds(), "err", err)
		}))
	if err != nil {
		return nil, fmt.Errorf("management database at %s: %w", cfg.Addr, err)
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(64)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("management database at %s: %w", cfg.Addr, err)
	}
	return db, nil
}

// permanent reports whether the server answered with a refusal that retrying will not change (a
// bad password, a missing privilege), as opposed to not answering or being busy (too many
// connections, shutting down, starting).
func permanent(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013:
		return false
	}
	return true
}

// createDatabase creates the database if a connection to it says it does not exist; a user that
// may use but not create databases is fine when it exists.
func createDatabase(ctx context.Context, cfg *mysql.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	probe, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	err = probe.PingContext(ctx)
	probe.Close()
	var me *mysql.MySQLError
	if err == nil || !errors.As(err, &me) || me.Number != 1049 { // 1049: unknown database
		return err
	}
	server := cfg.Clone()
	server.DBName = ""
	db, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+QuoteIdentifier(cfg.DBName)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	return err
}

// QuoteIdentifier quotes a MySQL identifier with backticks.
func QuoteIdentifier(name string) string {
	out := []byte{'`'}
	for i := 0; i < len(name); i++ {
		if name[i] == '`' {
			out = append(out, '`')
		}
		out = append(out, name[i])
	}
	return string(append(out, '`'))
}
