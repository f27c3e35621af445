package localmysql

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// localDir is the project-local, git-ignored folder that holds MariaDB fetched without root.
const localDir = ".local/mariadb"

// corePackages hold mariadbd, mariadb-install-db and the my_print_defaults that the latter runs.
var corePackages = []string{"mariadb-server-core", "mariadb-client-core"}

// fetchTimeout bounds the package work, which may wait on slow mirrors.
const fetchTimeout = 10 * time.Minute

// fetchPackages downloads Debian's MariaDB core packages, with the libraries they need that are
// not installed, into dir/debs and unpacks them into dir/root. It needs no root: apt-get reads the
// package lists the system already has, and dpkg-deb only unpacks files.
func fetchPackages(ctx context.Context, dir string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	debs, root := filepath.Join(dir, "debs"), filepath.Join(dir, "root")
	// Start clean, so that packages of an older attempt are not unpacked over newer ones.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	plan, err := run(ctx, "", simulateArgs(corePackages))
	if err != nil {
		return err
	}
	pkgs := packagesToFetch(plan, corePackages)
	log.Info("downloading MariaDB packages", "packages", pkgs, "into", debs)
	if _, err := run(ctx, debs, downloadArgs(pkgs)); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(debs, "*.deb"))
	if err != nil {
		return err
	}
	for _, deb := range files {
		if _, err := run(ctx, "", unpackArgs(deb, root)); err != nil {
			return err
		}
	}
	log.Info("unpacked MariaDB packages", "root", root)
	return nil
}

// simulateArgs asks apt-get, without installing anything (and so without root), what installing
// pkgs would bring in: the dependencies missing from this system, with alternatives resolved.
func simulateArgs(pkgs []string) []string {
	return append([]string{"apt-get", "--simulate", "--no-install-recommends", "install"}, pkgs...)
}

// packagesToFetch reads the "Inst NAME ..." lines of simulateArgs' output and returns want
// followed by the libraries (lib*) apt-get would install: the programs are all in want, the rest
// (config files, debconf, ...) is not needed to run them from an unpacked copy.
func packagesToFetch(simulateOutput string, want []string) []string {
	pkgs := append([]string(nil), want...)
	seen := map[string]bool{}
	for _, p := range want {
		seen[p] = true
	}
	for _, line := range strings.Split(simulateOutput, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "Inst" {
			continue
		}
		if name := fields[1]; strings.HasPrefix(name, "lib") && !seen[name] {
			seen[name] = true
			pkgs = append(pkgs, name)
		}
	}
	return pkgs
}

// downloadArgs fetches pkgs' .deb files into the working directory.
func downloadArgs(pkgs []string) []string {
	return append([]string{"apt-get", "download"}, pkgs...)
}

// unpackArgs extracts deb's files under root, running none of its maintainer scripts.
func unpackArgs(deb, root string) []string {
	return []string{"dpkg-deb", "-x", deb, root}
}

// run runs args in dir ("" for the current one) without stdin and returns its combined output;
// an error carries the output's last line, where apt-get and dpkg say what went wrong.
func run(ctx context.Context, dir string, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive") // debconf must never ask
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return "", fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, lines[len(lines)-1])
	}
	return string(out), nil
}
