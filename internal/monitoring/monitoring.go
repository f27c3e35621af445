// Package monitoring is the platform's own series on GET /metrics (the operator address): the
// statements run and how long they took, the sessions the query module holds on tenant accounts,
// the alert evaluations and the notifications they sent, the webhook attempts. No series has a
// tenant label: tenants are unbounded, and their numbers are the dashboards' (GET
// /api/v1/metrics/dashboard); the labels here take a handful of values each.
package monitoring

import (
	"database/sql"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clouddbmanager/clouddb/domain"
)

// Pools is what the query module says of its connection pools (*queryexec.Engine).
type Pools interface {
	// PoolStats adds up the statistics of the open account pools, and says how many are open.
	PoolStats() (pools int, stats sql.DBStats)
	// Running is how many statements tenant runs now; for "", every tenant.
	Running(tenant domain.TenantID) int64
}

// Metrics holds the series; its methods are the hooks the reactors and the query runner call.
type Metrics struct {
	queries       *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	evaluations   prometheus.Counter
	notifications *prometheus.CounterVec
	webhooks      *prometheus.CounterVec
}

// New registers the series with reg, reading the pools when scraped.
func New(reg prometheus.Registerer, pools Pools) *Metrics {
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clouddb_queries_total",
			Help: "Statements recorded by the query API, by status (succeeded, failed, timeout, denied, cancelled, unknown) and statement type.",
		}, []string{"status", "statement_type"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "clouddb_query_duration_seconds",
			Help:    "Execution time of the statements that reached a tenant database, by statement type.",
			Buckets: prometheus.ExponentialBucketsRange(0.0005, 300, 20),
		}, []string{"statement_type"}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clouddb_alert_evaluations_total",
			Help: "Alert rules evaluated (one per rule per round).",
		}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clouddb_alert_notifications_total",
			Help: "Notifications alerts sent, by channel (in_app per alert, email per admin, webhook per webhook).",
		}, []string{"channel"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clouddb_webhook_attempts_total",
			Help: "Webhook delivery attempts, by outcome (delivered, failed).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.queries, m.latency, m.evaluations, m.notifications, m.webhooks, poolCollector{pools})
	return m
}

// Query counts one recorded statement.
func (m *Metrics) Query(e domain.QueryExecuted) {
	typ := e.StatementType
	if typ == "" {
		typ = "unknown"
	}
	m.queries.WithLabelValues(string(e.Status), typ).Inc()
	if e.Status != domain.QueryDenied {
		m.latency.WithLabelValues(typ).Observe(e.ExecutionMS / 1000)
	}
}

// Alerts counts a round's evaluations and the notifications it sent.
func (m *Metrics) Alerts(evaluations int, notified []string) {
	m.evaluations.Add(float64(evaluations))
	for _, channel := range notified {
		m.notifications.WithLabelValues(channel).Inc()
	}
}

// Webhook counts a delivery attempt.
func (m *Metrics) Webhook(delivered bool) {
	outcome := "failed"
	if delivered {
		outcome = "delivered"
	}
	m.webhooks.WithLabelValues(outcome).Inc()
}

var (
	poolsDesc   = prometheus.NewDesc("clouddb_query_pools", "Connection pools open on tenant accounts.", nil, nil)
	connsDesc   = prometheus.NewDesc("clouddb_query_pool_connections", "Sessions on tenant accounts, by state (in_use, idle).", []string{"state"}, nil)
	runningDesc = prometheus.NewDesc("clouddb_queries_running", "Statements running now on tenant databases.", nil, nil)
)

// poolCollector reads the pools when scraped.
type poolCollector struct{ pools Pools }

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolsDesc
	ch <- connsDesc
	ch <- runningDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	n, s := c.pools.PoolStats()
	ch <- prometheus.MustNewConstMetric(poolsDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, float64(s.InUse), "in_use")
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, float64(s.Idle), "idle")
	ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(c.pools.Running("")))
}
