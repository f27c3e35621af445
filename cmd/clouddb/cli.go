package main

// The command line: the commands, their help, and the version.

import (
	"cmp"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
)

// cliCommand is one command of the binary as its help shows it.
type cliCommand struct {
	name    string // as typed: "projections rebuild"
	args    string // its arguments and flags, as usage shows them
	summary string // one line
	detail  string // what `clouddb help NAME` adds
}

var cliCommands = []cliCommand{
	{name: "serve", summary: "Run the HTTP API, the projections and the reactors (the default command)",
		detail: `Binds CLOUDDB_HTTP_ADDR (default 127.0.0.1:8080) and CLOUDDB_METRICS_ADDR (127.0.0.1:9090)
first, failing at once when one is taken; then opens the management database (CLOUDDB_MGMT_DSN;
unset, the development fallback: the MySQL at 127.0.0.1:3306, or a private MariaDB under
CLOUDDB_DATA_DIR), migrates it and serves. Ctrl-C or SIGTERM drains the requests in flight
(CLOUDDB_SHUTDOWN_DRAIN) and stops.`},
	{name: "migrate", summary: "Apply the management database's migrations, then exit",
		detail: "Opens CLOUDDB_MGMT_DSN as serve does and applies the migrations it lacks; safe while servers run."},
	{name: "projections status", summary: "Print each read model's position, lag and status as JSON",
		detail: `Reads the checkpoints in the management database: "running" while a serving process holds a
lease, "rebuilding" during a rebuild, "stopped" when no server runs. Whether a projection is
failing is known to the servers: GET /api/v1/admin/projections.`},
	{name: "projections rebuild", args: "NAME", summary: "Rebuild a read model from the event log, then print the statuses as JSON",
		detail: `NAME is one of the names projections status prints. The old read model keeps serving until the new
one replaces it; one rebuild of a projection runs at a time.`},
	{name: "audit verify", args: "[--key KEY]... FILE | --live", summary: "Verify an audit export, or the whole event log",
		detail: auditUsage},
	{name: "version", summary: "Print the version, the commit and the build date",
		detail: "Also --version."},
	{name: "help", args: "[COMMAND]", summary: "Show this help, or a command's (also -h, --help)"},
}

// usage is the help of the whole binary.
func usage(w io.Writer) {
	fmt.Fprint(w, `clouddb — CloudDB Manager: the API server and its operations, in one binary.

Usage:
  clouddb [COMMAND] [ARGUMENTS]

Commands:
`)
	for _, c := range cliCommands {
		fmt.Fprintf(w, "  %-46s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprint(w, `
Flags:
  -h, --help                                     Show this help (after a command: the command's)
  --version                                      Print the version

Configuration comes from the environment (CLOUDDB_*): README.md, "Configuration".
Logs are JSON lines on standard error; what a command prints is on standard output.
`)
}

// commandUsage is the help of one command.
func commandUsage(w io.Writer, c cliCommand) {
	fmt.Fprintf(w, "Usage: clouddb %s\n\n%s.\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	if c.detail != "" {
		fmt.Fprintf(w, "\n%s\n", c.detail)
	}
	fmt.Fprint(w, "\nFlags:\n  -h, --help   Show this help\n")
}

// findCommand matches args against the commands: the command and the arguments after its name.
// ok is false for a command that does not exist; group is then the known first word it began
// with ("projections", "audit"), if any.
func findCommand(args []string) (c cliCommand, rest []string, group string, ok bool) {
	for _, c := range cliCommands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return c, args[len(words):], "", true
		}
		if len(words) > 1 && args[0] == words[0] {
			group = words[0]
		}
	}
	return cliCommand{}, nil, group, false
}

// unknownCommand says that args name no command, and what does.
func unknownCommand(w io.Writer, args []string, group string) {
	if group != "" {
		var names []string
		for _, c := range cliCommands {
			if strings.HasPrefix(c.name, group+" ") {
				names = append(names, strings.TrimPrefix(c.name, group+" "))
			}
		}
		fmt.Fprintf(w, "clouddb: unknown command %q: %s takes %s. Run 'clouddb help' for every command.\n",
			strings.Join(args, " "), group, strings.Join(names, " or "))
		return
	}
	fmt.Fprintf(w, "clouddb: unknown command %q. Run 'clouddb help' for the commands.\n", args[0])
}

// Set by the Makefile (-ldflags "-X main.buildVersion=… -X main.buildCommit=… -X main.buildDate=…");
// empty in a plain go build, where the VCS information Go records stands in.
var buildVersion, buildCommit, buildDate string

// buildInfo is the version, commit and build date of this binary ("unknown" for what is not known).
func buildInfo() (ver, commit, date string) {
	ver, commit, date = buildVersion, buildCommit, buildDate
	modified := false
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = cmp.Or(commit, s.Value)
			case "vcs.time":
				date = cmp.Or(date, s.Value) // the commit's time: the nearest a plain go build knows
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if ver == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			ver = info.Main.Version
		}
	}
	if ver == "" && commit != "" {
		ver = commit[:min(12, len(commit))]
		if modified {
			ver += "-dirty"
		}
	}
	return cmp.Or(ver, "unknown"), cmp.Or(commit, "unknown"), cmp.Or(date, "unknown")
}

// version is the version the API and the logs report.
func version() string {
	v, _, _ := buildInfo()
	return v
}

// printVersion is `clouddb version`.
func printVersion(w io.Writer) {
	v, commit, date := buildInfo()
	fmt.Fprintf(w, "clouddb %s (commit %s, built %s, %s)\n", v, commit, date, runtime.Version())
}
