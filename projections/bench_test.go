package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(float64(len(sorted)-1)*p)].Microseconds()) / 1000
}

// BenchmarkAppendToReadModel measures read-your-writes: from the start of an Append until the
// streams read model shows it, with 32 concurrent appenders.
func BenchmarkAppendToReadModel(b *testing.B) {
	f := newFixture(b)
	r, err := projections.New(f.db, f.store, projections.Options{Logger: quiet()}, projections.Streams{})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer r.Close()

	const appenders = 32
	latencies := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	started := time.Now()
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < b.N; i += appenders {
				t0 := time.Now()
				res, err := f.store.Append(context.Background(), eventstore.Append{Streams: []eventstore.Stream{{
					ID: fmt.Sprintf("tick-%d", rand.IntN(10_000)), Type: "tick", ExpectedVersion: eventstore.AnyVersion,
					Events: []domain.Event{ticked{N: i}},
				}}})
				if err != nil {
					b.Error(err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err = r.WaitFor(ctx, res.LastPosition, "streams")
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
				latencies[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(started)
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(percentile(latencies, 0.50), "p50-ms")
	b.ReportMetric(percentile(latencies, 0.99), "p99-ms")
}

// BenchmarkRebuild measures a rebuild of the streams read model from zero over 100,000 events in
// 10,000 streams.
func BenchmarkRebuild(b *testing.B) {
	f := newFixture(b)
	const total, perAppend = 100_000, 10
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < total/perAppend; i += 16 {
				events := make([]domain.Event, perAppend)
				for j := range events {
					events[j] = ticked{N: i*perAppend + j}
				}
				_, err := f.store.Append(context.Background(), eventstore.Append{Streams: []eventstore.Stream{{
					ID: fmt.Sprintf("tick-%d", i%10_000), Type: "tick", ExpectedVersion: eventstore.AnyVersion, Events: events,
				}}})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r, err := projections.New(f.db, f.store, projections.Options{Logger: quiet()}, projections.Streams{})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Prepare(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	started := time.Now()
	for range b.N {
		if err := r.Rebuild(context.Background(), "streams"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total*b.N)/time.Since(started).Seconds(), "events/s")
}
