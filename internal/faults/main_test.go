package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the clouddb executable built once for the suite.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clouddb-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "clouddb")
	build := exec.Command("go", "build", "-o", binary, "github.com/clouddbmanager/clouddb/cmd/clouddb")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building clouddb:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one `clouddb serve` child process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string // http://host:port/api/v1
	done chan struct{}
	exit error

	mu    sync.Mutex
	lines []string // its JSON log
}

// startServer runs clouddb serve with env and waits until it serves and /readyz answers 200.
func startServer(t *testing.T, env []string, logFile io.Writer) *server {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, done: make(chan struct{})}
	t.Cleanup(func() { // a test that stops half-way leaves no process behind
		select {
		case <-s.done:
		default:
			s.kill()
		}
	})
	serving := make(chan string, 1)
	go func() {
		scan := bufio.NewScanner(stderr)
		scan.Buffer(make([]byte, 1<<20), 1<<20)
		for scan.Scan() {
			line := scan.Text()
			fmt.Fprintln(logFile, line)
			s.mu.Lock()
			s.lines = append(s.lines, line)
			s.mu.Unlock()
			var entry struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving" {
				serving <- entry.Addr
			}
		}
		s.exit = cmd.Wait()
		close(s.done)
	}()
	select {
	case addr := <-serving:
		s.base = "http://" + addr + "/api/v1"
	case <-s.done:
		t.Fatalf("clouddb exited before serving: %v\n%s", s.exit, strings.Join(s.log(), "\n"))
	case <-time.After(60 * time.Second):
		s.kill()
		t.Fatalf("clouddb does not serve within 60 s:\n%s", strings.Join(s.log(), "\n"))
	}
	until(t, 30*time.Second, "/readyz answers 200", func() bool {
		resp, err := http.Get(strings.TrimSuffix(s.base, "/api/v1") + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

func (s *server) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// kill ends the process with SIGKILL and waits for it.
func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// terminate sends SIGTERM and returns the process's exit once it is gone.
func (s *server) terminate(within time.Duration) error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return s.exit
	case <-time.After(within):
		s.kill()
		return fmt.Errorf("still running %v after SIGTERM", within)
	}
}

// until polls cond every 20 ms until it holds or the deadline passes.
func until(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond) // polling interval; the deadline decides
	}
}

// answer is one HTTP answer; status 0 means no answer (the connection failed).
type answer struct {
	status   int
	code     string // error.code
	replayed bool
	doc      map[string]any
	err      error
}

var httpClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// call sends a JSON request to base+path with the bearer token and optional Idempotency-Key.
func call(ctx context.Context, base, token, key, method, path string, body any) answer {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, reader)
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{err: err}
	}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &a.doc); err != nil {
			a.err = fmt.Errorf("%d with a body that is not JSON: %q", resp.StatusCode, data)
		}
	}
	if e, ok := a.doc["error"].(map[string]any); ok {
		a.code, _ = e["code"].(string)
	}
	return a
}

// str is the string at key of a JSON object.
func (a answer) str(key string) string {
	s, _ := a.doc[key].(string)
	return s
}

// must fails t unless a has status.
func (a answer) must(t *testing.T, what string, status int) answer {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s = %d %s %v %v, want %d", what, a.status, a.code, a.doc, a.err, status)
	}
	return a
}
