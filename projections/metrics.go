package projections

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type runtimeMetrics struct {
	applied  *prometheus.CounterVec
	failures *prometheus.CounterVec
}

func newRuntimeMetrics(r *Runtime, reg prometheus.Registerer) *runtimeMetrics {
	m := &runtimeMetrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clouddb_projection_events_applied_total",
			Help: "Events applied to read models by the live projectors.",
		}, []string{"projection"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clouddb_projection_failures_total",
			Help: "Failed attempts to apply an event; the projector holds and retries.",
		}, []string{"projection"}),
	}
	if reg != nil {
		reg.MustRegister(m.applied, m.failures, positionCollector{r})
	}
	return m
}

var (
	positionDesc = prometheus.NewDesc("clouddb_projection_position", "Last event position applied by the projector.", []string{"projection"}, nil)
	lagDesc      = prometheus.NewDesc("clouddb_projection_lag_events", "Events between the head of the log and the projector.", []string{"projection"}, nil)
)

// positionCollector reads positions and lags when scraped.
type positionCollector struct{ r *Runtime }

func (c positionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- positionDesc
	ch <- lagDesc
}

func (c positionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	statuses, err := c.r.Status(ctx)
	if err != nil {
		c.r.log.Warn("projection metrics: cannot read the head of the log", "err", err)
		return
	}
	for _, s := range statuses {
		ch <- prometheus.MustNewConstMetric(positionDesc, prometheus.GaugeValue, float64(s.Position), s.Name)
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(s.Lag), s.Name)
	}
}
