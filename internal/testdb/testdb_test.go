package testdb

import (
	"errors"
	"strings"
	"testing"
)

// The test server: CLOUDDB_TEST_DSN when set, else the local server when it answers, else the
// shared private one; and an error that says why when none can be had.
func TestFindServer(t *testing.T) {
	private := func() (string, error) { return "root@tcp(127.0.0.1:40000)/", nil }
	up := func(string) bool { return true }
	down := func(string) bool { return false }
	for _, tc := range []struct {
		name, env string
		answers   func(string) bool
		want      string
	}{
		{"set", "root@tcp(db:3306)/", down, "root@tcp(db:3306)/"},
		{"local server", "", up, localDSN},
		{"fallback", "", down, "root@tcp(127.0.0.1:40000)/"},
	} {
		if got, err := findServer(tc.env, tc.answers, private); err != nil || got != tc.want {
			t.Errorf("%s: findServer = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	_, err := findServer("", down, func() (string, error) { return "", errors.New("no mariadbd") })
	if err == nil || !strings.Contains(err.Error(), "CLOUDDB_TEST_DSN") || !strings.Contains(err.Error(), "no mariadbd") {
		t.Errorf("findServer without any server: %v, want an error saying what was tried", err)
	}
}
