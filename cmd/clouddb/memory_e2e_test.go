package main

import (
	"path/filepath"
	"testing"
)

// The memory attack of issue 10 (item 4): a row of 9 MB (the first row was always answered inline,
// whatever its size) and a result past CLOUDDB_RESULT_MAX_BYTES (answered 500 after writing
// 2.2 GB to disk) are each refused with 413 payload_too_large saying the limit, as soon as the
// engine sees them; nothing is kept, and the database answers the next query.
func TestE2EAnswersAreBoundedInSize(t *testing.T) {
	env, _ := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{Env: map[string]string{
		"CLOUDDB_RESULT_MAX_BYTES": "2097152"}}})
	owner := newTenantAdmin(env, "127.0.0.1", "Big Corp")
	id := createDatabase(t, owner.c, map[string]any{"name": "big"}).str("id")

	r := query(owner.c, id, "SELECT REPEAT('x', 9000000) AS v", nil).expect(t, 413, "payload_too_large")
	if r.str("error.details.reason") != "row_too_large" || r.num("error.details.limit_bytes") != 8<<20 {
		t.Errorf("a 9 MB row = %s, want reason row_too_large and limit_bytes 8388608", r.body)
	}
	r = query(owner.c, id, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
		SELECT i, REPEAT('x', 30000) AS pad FROM n`, map[string]any{"page_size": 1}).expect(t, 413, "payload_too_large")
	if r.str("error.details.reason") != "result_too_large" || r.num("error.details.limit_bytes") != 2<<20 {
		t.Errorf("a 30 MB result = %s, want reason result_too_large and limit_bytes 2097152", r.body)
	}
	if n := len(spillFilesIn(t, env)); n != 0 {
		t.Errorf("%d spill files after the refused results, want 0", n)
	}
	r = query(owner.c, id, "SELECT 1", nil).expect(t, 200, "")
	if r.num("row_count") != 1 {
		t.Errorf("SELECT 1 after the refusals = %s", r.body)
	}
}

// spillFilesIn lists the result store's spill files of the App.
func spillFilesIn(t *testing.T, env *e2eEnv) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(env.app.Config.DataDir, "results", "result-*.rows"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}
