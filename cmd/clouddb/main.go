// Command clouddb is CloudDB Manager: one binary for the server and its operations.
//
//	clouddb [serve]                    run the API, projections and reactors
//	clouddb migrate                    apply the management database migrations
//	clouddb projections status         show every projection's position and lag
//	clouddb projections rebuild NAME   rebuild a read model from the event log
//	clouddb audit verify FILE|--live   verify an audit export, or the whole event log
//	clouddb version                    print the version, commit and build date
//	clouddb help [COMMAND]             the commands and their flags (cli.go)
//
// Configuration comes from the environment (see README.md).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/internal/config"
)

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
// What a command prints goes to stdout, logs and errors to stderr; a failure ends with one line
// that says what went wrong.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "--version", "-version":
		printVersion(stdout)
		return 0
	case "help":
		if len(args) == 1 {
			usage(stdout)
			return 0
		}
		c, rest, group, ok := findCommand(args[1:])
		if !ok || len(rest) > 0 {
			unknownCommand(stderr, args[1:], group)
			return 2
		}
		commandUsage(stdout, c)
		return 0
	}
	c, rest, group, ok := findCommand(args)
	if !ok {
		unknownCommand(stderr, args, group)
		return 2
	}
	if slices.Contains(rest, "-h") || slices.Contains(rest, "--help") {
		commandUsage(stdout, c)
		return 0
	}
	switch {
	case c.name == "audit verify": // a file needs no configuration: an auditor runs it anywhere
		return runAudit(ctx, args[1:], getenv, stdout, stderr)
	case c.name == "projections rebuild" && len(rest) != 1,
		c.name != "projections rebuild" && len(rest) > 0:
		fmt.Fprintf(stderr, "clouddb: usage: clouddb %s (got %q). Run 'clouddb help %s'.\n",
			strings.TrimSpace(c.name+" "+c.args), strings.Join(rest, " "), c.name)
		return 2
	case c.name == "version":
		printVersion(stdout)
		return 0
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
	if err := execute(ctx, c.name, rest, cfg, log, stdout); err != nil {
		fmt.Fprintln(stderr, "clouddb: "+err.Error())
		return 1
	}
	return 0
}

func execute(ctx context.Context, command string, args []string, cfg config.Config, log *slog.Logger, stdout io.Writer) error {
	var listeners []net.Listener
	if command == "serve" {
		// Bound before anything starts, so that a taken port fails at once, alone.
		var err error
		if listeners, err = listen(cfg); err != nil {
			return err
		}
	}
	app, err := Open(ctx, cfg, log)
	if err != nil {
		for _, ln := range listeners {
			ln.Close()
		}
		return err
	}
	defer app.Close()
	switch command {
	case "migrate":
		log.Info("management database is up to date")
		return nil
	case "projections status":
		return printStatuses(ctx, app, stdout)
	case "projections rebuild":
		if err := app.Projections.Prepare(ctx); err != nil {
			return err
		}
		if err := app.Projections.Rebuild(ctx, args[0]); err != nil {
			return err
		}
		return printStatuses(ctx, app, stdout)
	}
	app.listener, app.metricsListener = listeners[0], listeners[1]
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

// listen binds CLOUDDB_HTTP_ADDR and CLOUDDB_METRICS_ADDR (nil when off).
func listen(cfg config.Config) ([]net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s (CLOUDDB_HTTP_ADDR): %w", cfg.HTTPAddr, err)
	}
	if cfg.MetricsAddr == "" {
		return []net.Listener{ln, nil}, nil
	}
	metrics, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot listen on %s (CLOUDDB_METRICS_ADDR, or off): %w", cfg.MetricsAddr, err)
	}
	return []net.Listener{ln, metrics}, nil
}

// printStatuses prints the projections' statuses as the management database tells them, as JSON.
func printStatuses(ctx context.Context, app *App, stdout io.Writer) error {
	serving, err := app.Lease.Serving(ctx)
	if err != nil {
		return err
	}
	statuses, err := app.Projections.StoredStatus(ctx, serving)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(statuses)
}

// driverLog is the MySQL driver's logger writing to slog.
type driverLog struct{ log *slog.Logger }

func (d driverLog) Print(v ...any) { d.log.Debug("mysql driver", "msg", fmt.Sprint(v...)) }
