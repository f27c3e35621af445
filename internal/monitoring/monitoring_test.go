package monitoring_test

import (
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/monitoring"
)

type fakePools struct{}

func (fakePools) PoolStats() (int, sql.DBStats) { return 2, sql.DBStats{InUse: 3, Idle: 1} }
func (fakePools) Running(domain.TenantID) int64 { return 3 }

// series renders what reg gathers as "name{label=value,...} value" lines, histograms as their
// sample counts.
func series(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			value := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			lines = append(lines, fmt.Sprintf("%s{%s} %g", f.GetName(), strings.Join(labels, ","), value))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := monitoring.New(reg, fakePools{})
	m.Query(domain.QueryExecuted{Status: domain.QuerySucceeded, StatementType: "read", ExecutionMS: 12})
	m.Query(domain.QueryExecuted{Status: domain.QueryDenied, StatementType: "ddl"})
	m.Query(domain.QueryExecuted{Status: domain.QueryFailed})
	m.Alerts(12, []string{"in_app", "email", "email"})
	m.Webhook(true)
	m.Webhook(false)
	want := strings.Join([]string{
		"clouddb_alert_evaluations_total{} 12",
		"clouddb_alert_notifications_total{channel=email} 2",
		"clouddb_alert_notifications_total{channel=in_app} 1",
		"clouddb_queries_running{} 3",
		"clouddb_queries_total{statement_type=ddl,status=denied} 1",
		"clouddb_queries_total{statement_type=read,status=succeeded} 1",
		"clouddb_queries_total{statement_type=unknown,status=failed} 1",
		"clouddb_query_duration_seconds{statement_type=read} 1", // a denied statement ran nowhere
		"clouddb_query_duration_seconds{statement_type=unknown} 1",
		"clouddb_query_pool_connections{state=idle} 1",
		"clouddb_query_pool_connections{state=in_use} 3",
		"clouddb_query_pools{} 2",
		"clouddb_webhook_attempts_total{outcome=delivered} 1",
		"clouddb_webhook_attempts_total{outcome=failed} 1",
	}, "\n")
	if got := series(t, reg); got != want {
		t.Errorf("series:\n%s\nwant:\n%s", got, want)
	}
}
