// Command clouddb is CloudDB Manager: one binary for the server and its operations.
//
//	clouddb [serve]                    run the API, projections and reactors
//	clouddb migrate                    apply the management database migrations
//	clouddb projections status         show every projection's position and lag
//	clouddb projections rebuild NAME   rebuild a read model from the event log
//	clouddb audit verify FILE|--live   verify an audit export, or the whole event log
//	clouddb version                    print the version
//
// Configuration comes from the environment (see README.md).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/internal/config"
)

const usage = `usage: clouddb [serve | migrate | projections status | projections rebuild NAME | audit verify FILE|--live | version]`

// defaultGCPercent replaces Go's 100 when GOGC is not set: the heap of a serving process is a few
// MB, so at 100 the collector runs some 25 times a second under load and its pauses make the
// p99 of every request (measured in docs/PERFORMANCE.md); at 400 it runs 4 times with ~15 MB.
const defaultGCPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code: 0 done, 1 failed, 2 misused.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	switch {
	case args[0] == "version" && len(args) == 1:
		fmt.Fprintln(stdout, version())
		return 0
	case args[0] == "audit": // a file needs no configuration: an auditor runs it anywhere
		return runAudit(ctx, args[1:], getenv, stdout, stderr)
	case (args[0] == "serve" || args[0] == "migrate") && len(args) == 1,
		args[0] == "projections" && len(args) == 2 && args[1] == "status",
		args[0] == "projections" && len(args) == 3 && args[1] == "rebuild":
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "clouddb: "+err.Error())
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// The MySQL driver reports connections it found dead (killed sessions, restarted servers) on
	// its own logger, as plain text on stderr: they belong in the structured log, at debug.
	mysql.SetLogger(driverLog{log}) //nolint:errcheck // fails only for a nil logger
	if err := execute(ctx, args, cfg, log, stdout); err != nil {
		log.Error("clouddb failed", "command", args[0], "err", err)
		return 1
	}
	return 0
}

func execute(ctx context.Context, args []string, cfg config.Config, log *slog.Logger, stdout io.Writer) error {
	app, err := Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()
	switch args[0] {
	case "migrate":
		log.Info("management database is up to date")
		return nil
	case "projections":
		if err := app.Projections.Prepare(ctx); err != nil {
			return err
		}
		if args[1] == "rebuild" {
			if err := app.Projections.Rebuild(ctx, args[2]); err != nil {
				return err
			}
		}
		statuses, err := app.Projections.Status(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(statuses)
	}
	if err := app.Serve(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down: finishing in-flight requests")
	if err := app.Close(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// driverLog is the MySQL driver's logger writing to slog.
type driverLog struct{ log *slog.Logger }

func (d driverLog) Print(v ...any) { d.log.Debug("mysql driver", "msg", fmt.Sprint(v...)) }

// version is the module version, or the VCS revision the binary was built from.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v = s.Value[:12]
		}
		if s.Key == "vcs.modified" && s.Value == "true" {
			v += "-dirty"
		}
	}
	return v
}
