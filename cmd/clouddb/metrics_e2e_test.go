package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
)

// TestMetricsDashboardScopesRangesAndExport: each role sees its scope of what its tenant's
// queries did, the window and its grain follow the range, bad windows are refused, and a tenant
// admin downloads the buckets.
func TestMetricsDashboardScopesRangesAndExport(t *testing.T) {
	adminEmail, adminPassword := uniqueEmail("root"), strongPassword()
	env, _ := startDatabaseE2E(t, dbEnvOptions{e2eOptions: e2eOptions{BootstrapEmail: adminEmail, BootstrapPassword: adminPassword}})
	admin := newTenantAdmin(env, "127.0.13.1", "Metrics")
	dev := invite(env, admin, "127.0.13.2", "developer")
	viewer := invite(env, admin, "127.0.13.3", "viewer")
	dbID := createDatabase(t, admin.c, map[string]any{"name": "watched"}).str("id")
	for i := range 4 {
		query(admin.c, dbID, fmt.Sprintf("SELECT %d", i), nil).expect(t, 200, "")
	}
	query(admin.c, dbID, "SELECT * FROM missing_table", nil).expect(t, 422, "query_failed")
	for i := range 3 {
		query(dev.c, dbID, fmt.Sprintf("SELECT %d + 1", i), nil).expect(t, 200, "")
	}
	// A pending invitation holds a seat as the plan's max_users counts it: 3 members and 1 invitee.
	admin.c.do("POST", "/invitations", map[string]any{"emails": []string{uniqueEmail("seat")}, "role": "viewer"}).expect(t, 201, "")

	var tenant *e2eResponse
	waitUntil(t, 15*time.Second, "the dashboard shows the 8 queries", func() bool {
		tenant = admin.c.do("GET", "/metrics/dashboard?range=15m", nil).expect(t, 200, "")
		return tenant.num("queries.count") == 8
	})
	if tenant.str("scope") != "tenant" || tenant.str("range.grain") != "minute" || tenant.num("queries.errors") != 1 {
		t.Errorf("tenant dashboard: scope %q, grain %q, errors %v", tenant.str("scope"), tenant.str("range.grain"), tenant.get("queries.errors"))
	}
	if n := len(tenant.items("queries.series")); n < 15 || n > 16 {
		t.Errorf("15 minutes by the minute: %d points", n)
	}
	if tenant.num("quotas.databases.used") != 1 || tenant.num("quotas.databases.limit") != 5 || tenant.num("quotas.users.used") != 4 ||
		tenant.num("resources.databases") != 1 || tenant.num("activity.active_sessions") < 3 {
		t.Errorf("quotas %v, resources %v, activity %v", tenant.get("quotas"), tenant.get("resources"), tenant.get("activity"))
	}
	if p := tenant.items("patterns"); len(p) == 0 || !strings.HasPrefix(describe(jsonPath(p[0], "text")), "SELECT") {
		t.Errorf("patterns = %v", p)
	}
	if tenant.num("queries.p95_ms") <= 0 || tenant.get("previous") != nil {
		t.Errorf("p95 %v, previous %v", tenant.get("queries.p95_ms"), tenant.get("previous"))
	}

	// The load sampler, a minute on (or its loop, if it sampled first): the tenant's peak and pools
	// reach the tenant's and the platform's dashboards, and the connections quota counts the
	// deployment's sampled figure.
	samples, _ := env.app.LoadSampler.Sample(env.app.Now().Add(time.Minute))
	if err := commands.RecordLoad(env.app.Store)(context.Background(), samples); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "the dashboard shows the sampled load", func() bool {
		tenant = admin.c.do("GET", "/metrics/dashboard?range=15m", nil).expect(t, 200, "")
		return tenant.num("resources.load.peak.running") >= 1
	})
	if tenant.num("resources.load.now.running") < 1 || tenant.num("resources.load.peak.pool_open") < 1 ||
		len(tenant.items("resources.load.series")) != len(tenant.items("queries.series")) || tenant.num("quotas.connections.used") < 1 {
		t.Errorf("tenant load %v, connections quota %v", tenant.get("resources.load"), tenant.get("quotas.connections"))
	}

	own := dev.c.do("GET", "/metrics/dashboard?range=1h&compare=true", nil).expect(t, 200, "")
	if own.str("scope") != "own" || own.num("queries.count") != 3 || own.get("previous.queries") == nil || own.str("previous.to") == "" {
		t.Errorf("developer dashboard: %s", own.body)
	}
	status := viewer.c.do("GET", "/metrics/dashboard?range=7d", nil).expect(t, 200, "")
	if status.str("scope") != "status" || status.get("queries") != nil || status.num("status.databases.running") != 1 {
		t.Errorf("viewer dashboard: %s", status.body)
	}
	root := env.client("127.0.13.9")
	platform := root.with(root.login(adminEmail, adminPassword, "").access).do("GET", "/metrics/dashboard?range=1d", nil).expect(t, 200, "")
	if platform.str("scope") != "platform" || platform.num("queries.count") < 8 || platform.str("range.grain") != "hour" || platform.get("quotas") != nil ||
		platform.num("resources.load.peak.running") < 1 {
		t.Errorf("platform dashboard: scope %q, count %v, grain %q, load %v", platform.str("scope"), platform.get("queries.count"), platform.str("range.grain"), platform.get("resources.load"))
	}
	narrowed := admin.c.do("GET", "/metrics/dashboard?range=15m&user_id="+dev.userID, nil).expect(t, 200, "")
	if narrowed.num("queries.count") != 3 {
		t.Errorf("the tenant narrowed to the developer: %v queries", narrowed.get("queries.count"))
	}
	admin.c.do("GET", "/metrics/dashboard?database_id=6f9619ff-8b86-4011-b42d-00c04fc964ff", nil).expect(t, 404, "not_found")
	dev.c.do("GET", "/metrics/dashboard?database_id="+dbID, nil).expect(t, 400, "validation_failed")

	now := time.Now().UTC()
	for _, bad := range []struct{ query, field string }{
		{"range=2h", "range"},
		{"range=1h&from=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)), "range"},
		{"from=" + url.QueryEscape(now.Format(time.RFC3339)) + "&to=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)), "from"},
		{"from=" + url.QueryEscape(now.Add(-400*24*time.Hour).Format(time.RFC3339)), "to"},
		{"from=yesterday", "from"},
		{"patterns_by=luck", "patterns_by"},
	} {
		r := admin.c.do("GET", "/metrics/dashboard?"+bad.query, nil).expect(t, 400, "validation_failed")
		if r.get("error.details.fields."+bad.field) == nil {
			t.Errorf("?%s: %s, want a complaint about %s", bad.query, r.body, bad.field)
		}
	}

	code, h, body := download(t, admin.c, "/metrics/export?range=1d")
	if cd := h.Get("Content-Disposition"); code != 200 || !strings.HasPrefix(cd, "attachment; filename=\"metrics-tenant-") {
		t.Errorf("CSV export: %d, Content-Disposition %q", code, cd)
	}
	records, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil || len(records) < 4 || records[0][0] != "at" {
		t.Fatalf("CSV export: %v, %q", err, body)
	}
	scopes := map[string]bool{}
	column := map[string]int{}
	for i, name := range records[0] {
		column[name] = i
	}
	// The tenant's sampled load: the greatest of its buckets' peaks is the dashboard's peak.
	peaks := []string{"peak_running", "peak_pool_open", "peak_pool_in_use"}
	csvPeak := make([]float64, len(peaks))
	for _, rec := range records[1:] {
		scopes[rec[1]] = true
		for i, name := range peaks {
			if v, err := strconv.ParseFloat(rec[column[name]], 64); rec[1] == "tenant" && err == nil {
				csvPeak[i] = max(csvPeak[i], v)
			}
		}
	}
	if !scopes["tenant"] || !scopes["database"] || !scopes["user"] || scopes["platform"] {
		t.Errorf("exported scopes %v, want the tenant, its database and its members", scopes)
	}
	wantPeak := fmt.Sprintf("%v/%v/%v", tenant.num("resources.load.peak.running"), tenant.num("resources.load.peak.pool_open"),
		tenant.num("resources.load.peak.pool_in_use"))
	if got := fmt.Sprintf("%v/%v/%v", csvPeak[0], csvPeak[1], csvPeak[2]); got != wantPeak {
		t.Errorf("CSV export: the tenant's load peak %s, want the dashboard's %s", got, wantPeak)
	}
	jsonExport := admin.c.do("GET", "/metrics/export?range=1d&format=json", nil).expect(t, 200, "")
	if jsonExport.str("grain") != "hour" || len(jsonExport.items("items")) != len(records)-1 {
		t.Errorf("JSON export: %s", jsonExport.body)
	}
	jsonPeak := make([]float64, len(peaks))
	for _, item := range jsonExport.items("items") {
		for i, name := range peaks {
			if v, ok := jsonPath(item, name).(float64); ok && describe(jsonPath(item, "scope")) == "tenant" {
				jsonPeak[i] = max(jsonPeak[i], v)
			}
		}
	}
	if got := fmt.Sprintf("%v/%v/%v", jsonPeak[0], jsonPeak[1], jsonPeak[2]); got != wantPeak {
		t.Errorf("JSON export: the tenant's load peak %s, want the dashboard's %s", got, wantPeak)
	}
	dev.c.do("GET", "/metrics/export", nil).expect(t, 403, "forbidden")
	admin.c.do("GET", "/metrics/export?format=xml", nil).expect(t, 400, "validation_failed")

	// The operator's /metrics has the platform's own series, without tenant labels.
	resp, err := http.Get("http://" + env.app.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	scrape, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`clouddb_queries_total{statement_type="read",status="succeeded"} 7`,
		`clouddb_queries_total{statement_type="read",status="failed"} 1`, `clouddb_query_duration_seconds_count{statement_type="read"} 8`,
		`clouddb_query_pool_connections{state="idle"}`, "clouddb_queries_running 0", "clouddb_alert_evaluations_total"} {
		if !strings.Contains(string(scrape), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(scrape), admin.tenantID) {
		t.Error("/metrics names a tenant")
	}
}
