package eventstore

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clouddbmanager/clouddb/domain"
)

type storeMetrics struct {
	appends   *prometheus.CounterVec
	events    prometheus.Counter
	latency   prometheus.Histogram
	batchSize prometheus.Histogram
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	m := &storeMetrics{
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clouddb_eventstore_appends_total",
			Help: "Appends to the event log by result (ok, conflict, error).",
		}, []string{"result"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clouddb_eventstore_events_appended_total",
			Help: "Events appended to the event log.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "clouddb_eventstore_append_duration_seconds",
			Help:    "Time from Append to its commit, as the caller sees it.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1},
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "clouddb_eventstore_group_commit_appends",
			Help:    "Appends committed together in one group-commit transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.appends, m.events, m.latency, m.batchSize)
	}
	return m
}

func (m *storeMetrics) observeAppend(err error, events int, took time.Duration) {
	switch {
	case err == nil:
		m.appends.WithLabelValues("ok").Inc()
		m.events.Add(float64(events))
		m.latency.Observe(took.Seconds())
	case errors.Is(err, domain.ErrVersionConflict), errors.Is(err, domain.ErrConflict):
		m.appends.WithLabelValues("conflict").Inc()
	default:
		m.appends.WithLabelValues("error").Inc()
	}
}
