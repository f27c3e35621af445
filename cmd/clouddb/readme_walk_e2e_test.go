package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readmeWalk is the README's first session: the code of its ```sh first-session blocks, in
// order.
func readmeWalk(t *testing.T, readme string) string {
	t.Helper()
	f, err := os.Open(readme)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var script strings.Builder
	blocks, in := 0, false
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		line := lines.Text()
		switch {
		case !in && strings.TrimSpace(line) == "```sh first-session":
			in = true
			blocks++
		case in && strings.TrimSpace(line) == "```":
			in = false
		case in:
			script.WriteString(line + "\n")
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	if blocks < 5 || in {
		t.Fatalf("%s: %d ```sh first-session blocks (the last one unclosed: %v), want the whole walk", readme, blocks, in)
	}
	return script.String()
}

// TestReadmeFirstSession runs the README's first session with bash against a started server, as
// a person pastes it into a shell in the project folder (its data/ is the server's data dir):
// any command that fails, or any request answered with an error, fails the test.
func TestReadmeFirstSession(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's first session needs %s (.ci/run installs it): %v", tool, err)
		}
	}
	script := readmeWalk(t, "../../README.md")
	project := t.TempDir()
	env, _ := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{Env: map[string]string{
		"CLOUDDB_DATA_DIR": filepath.Join(project, "data"),
	}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// curl -s alone ignores HTTP errors: here every answer of 400 or more fails the walk.
	harness := "set -euo pipefail\ncurl() { command curl --fail-with-body \"$@\"; }\nset -x\n"
	cmd := exec.CommandContext(ctx, "bash", "-c", harness+script)
	cmd.Dir = project
	cmd.Env = append(os.Environ(), "API="+env.base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's first session failed (%v):\n%s", err, out)
	}

	var result struct {
		RowCount int64 `json:"row_count"`
		Page     struct{ Limit int64 }
	}
	raw, err := os.ReadFile(filepath.Join(project, "result.json"))
	if err == nil {
		err = json.Unmarshal(raw, &result)
	}
	if err != nil || result.RowCount != 10 || result.Page.Limit != 3 {
		t.Errorf("result.json = %s (%v), want the 10 products, 3 of them inline", raw, err)
	}
	csv, err := os.ReadFile(filepath.Join(project, "products.csv"))
	if err != nil || !strings.HasPrefix(string(csv), "id,name,price") || strings.Count(string(csv), "\n") != 11 {
		t.Errorf("products.csv = %q (%v), want a header and the 10 products", csv, err)
	}
	if !strings.Contains(string(out), `"account": "read_write"`) {
		t.Errorf("the walk did not show connection details:\n%s", out)
	}
}
