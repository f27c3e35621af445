package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// stalledDownload starts GET path on a raw connection, reads the status line and headers, and
// then reads nothing more: a client that stopped reading. It returns the status and the
// connection (closed when the test ends).
func stalledDownload(t *testing.T, c *e2eClient, path string) (int, *bufio.Reader, net.Conn) {
	t.Helper()
	u, err := url.Parse(c.env.base + path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", u.RequestURI(), u.Host, c.token)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, br, conn
}

// bigResult stores a result of 1,000 rows of 30,000 bytes (30 MB: more than loopback's socket
// buffers hold) and returns its query id.
func bigResult(t *testing.T, c *e2eClient, id string) string {
	t.Helper()
	return query(c, id, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
		SELECT i, REPEAT('x', 30000) AS pad FROM n`, map[string]any{"page_size": 1}).expect(t, 200, "").str("query_id")
}

// A client that starts downloads of a big result and stops reading (issue 10, item 3: three such
// exports pinned 4 GB of spill files): a third one at once is refused with 429 and Retry-After,
// and the stalled ones are cut once they make no progress for the idle timeout, which frees the
// user's slots.
func TestE2EStalledExportsAreCutAndCapped(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{Env: map[string]string{
		"CLOUDDB_EXPORT_IDLE_TIMEOUT": "1s", "CLOUDDB_EXPORTS_PER_USER": "2"}}})
	owner := newTenantAdmin(env, "127.0.0.1", "Stall Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "stall"}).str("id")
	qid := bigResult(t, owner.c, id)

	var stalled []*bufio.Reader
	for range 2 {
		status, br, _ := stalledDownload(t, owner.c, "/queries/"+qid+"/export?format=csv")
		if status != 200 {
			t.Fatalf("download = %d, want 200", status)
		}
		stalled = append(stalled, br)
	}
	r := owner.c.do("GET", "/queries/"+qid+"/export?format=csv", nil).expect(t, 429, "rate_limited")
	if r.header.Get("Retry-After") == "" || r.num("error.details.limit") != 2 {
		t.Errorf("third download at once = %s (Retry-After %q), want the limit 2 and Retry-After", r.body, r.header.Get("Retry-After"))
	}

	// Both stalled downloads are cut: each reads to a premature end, not to the last row.
	waitUntil(t, 30*time.Second, "the stalled downloads to be cut", func() bool {
		return strings.Count(env.logs.String(), `"msg":"export interrupted"`) >= 2
	})
	for i, br := range stalled {
		body, err := io.ReadAll(br)
		if err == nil && strings.HasSuffix(string(body), "0\r\n\r\n") {
			t.Errorf("stalled download %d ran to its end (%d bytes)", i, len(body))
		}
	}
	// Their slots are free again: a download that reads runs to the end.
	status, _, body := download(t, owner.c, "/queries/"+qid+"/export?format=csv")
	if status != 200 || strings.Count(string(body), "\r\n") != 1001 {
		t.Errorf("download after the cut = %d with %d lines, want 200 and 1,001", status, strings.Count(string(body), "\r\n"))
	}
}

// CSV exports neutralise spreadsheet formulas in text cells by default (issue 10, item 15), keep
// numbers as numbers, and write cells as they are with csv_formulas=raw.
func TestE2ECSVExportNeutralisesFormulas(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{})
	owner := newTenantAdmin(env, "127.0.0.1", "Sheet Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "sheet"}).str("id")
	qid := query(owner.c, id, `SELECT '=HYPERLINK("http://evil.example","click")' AS a, '+1+1' AS b, '@SUM(A1)' AS c,
		-5 AS n, CAST(-2.50 AS DECIMAL(5,2)) AS d, 'safe' AS s`, nil).expect(t, 200, "").str("query_id")

	status, _, body := download(t, owner.c, "/queries/"+qid+"/export?format=csv")
	want := "a,b,c,n,d,s\r\n\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\",'+1+1,'@SUM(A1),-5,-2.50,safe\r\n"
	if status != 200 || string(body) != want {
		t.Errorf("CSV export = %d\n%q\nwant\n%q", status, body, want)
	}
	status, _, body = download(t, owner.c, "/queries/"+qid+"/export?format=csv&csv_formulas=raw")
	want = "a,b,c,n,d,s\r\n\"=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\",+1+1,@SUM(A1),-5,-2.50,safe\r\n"
	if status != 200 || string(body) != want {
		t.Errorf("CSV export with csv_formulas=raw = %d\n%q\nwant\n%q", status, body, want)
	}
	owner.c.do("GET", "/queries/"+qid+"/export?format=csv&csv_formulas=maybe", nil).expect(t, 400, "validation_failed")
}
