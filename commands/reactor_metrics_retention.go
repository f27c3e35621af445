package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// The metrics retention reactor reacts to time passing: once an hour it records the cut that
// SEED.md's retention asks for (domain.MetricsPruned, in the one stream "metrics-retention"); the
// metrics projector deletes what falls before it. The cut is an event, not a DELETE of its own, so
// the read model stays a function of the log and a rebuild prunes where the live model did.

// MetricsRetention is the retention reactor.
type MetricsRetention struct {
	events  EventStore
	now     func() time.Time
	log     *slog.Logger
	version int64                // of the stream, as last read
	last    domain.MetricsPruned // the stream's last cut
}

// NewMetricsRetention returns the retention reactor. It panics on a nil store, clock or logger.
func NewMetricsRetention(events EventStore, now func() time.Time, log *slog.Logger) *MetricsRetention {
	if events == nil || now == nil || log == nil {
		panic("commands: NewMetricsRetention needs an event store, a clock and a logger")
	}
	return &MetricsRetention{events: events, now: now, log: log}
}

// Run records the due cut every interval until ctx ends.
func (m *MetricsRetention) Run(ctx context.Context, interval time.Duration) {
	runRounds(ctx, m.log, "metrics retention", within(reactorCallTimeout, m.Cut), nil, interval)
}

// Cut records the cut due now unless the stream already holds it, and returns how many it
// recorded (0 or 1). Processes that cut at once race on the stream's version: one records, the
// others find its cut.
func (m *MetricsRetention) Cut(ctx context.Context) (int, error) {
	envs, err := m.events.ReadStream(ctx, domain.MetricsRetentionStream, m.version)
	if err != nil {
		return 0, fmt.Errorf("read the metrics cuts: %w", err)
	}
	for _, env := range envs {
		e, err := m.events.Registry().Decode(env)
		if err != nil {
			return 0, err
		}
		if cut, ok := e.(domain.MetricsPruned); ok {
			m.last = cut
		}
		m.version = env.StreamVersion
	}
	cut := domain.MetricsCut(m.now())
	if !cut.Moves(m.last) {
		return 0, nil
	}
	_, err = m.events.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{{
		ID: domain.MetricsRetentionStream, Type: "metrics", ExpectedVersion: m.version, Events: []domain.Event{cut},
	}}})
	if errors.Is(err, domain.ErrVersionConflict) {
		return 0, nil // another process cut first; the next round reads its cut
	}
	if err != nil {
		return 0, fmt.Errorf("record the metrics cut: %w", err)
	}
	m.log.Info("metrics cut recorded", "performance_before", cut.PerformanceBefore, "activity_before", cut.ActivityBefore,
		"daily_before", cut.DailyBefore)
	return 1, nil
}
