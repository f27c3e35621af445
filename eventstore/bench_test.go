package eventstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// BenchmarkAppend measures appends as commands make them when they create something: each append
// starts a new stream (uuid id, ExpectedVersion 0) with a realistic payload and full metadata.
// b.N is the total number of appends, shared by the appenders. Reported:
//
//	events/s         events committed per second of wall time
//	p50_ms, p99_ms   latency of one Append as its caller sees it
//	appends/commit   appends per group-commit transaction (from the store's histogram)
//
// After the run it checks that nothing was lost: the log holds exactly appends × events events, at
// positions 1..N.
//
//	go test -run '^$' -bench 'BenchmarkAppend/appenders=32/events=1$' -benchtime 20000x ./eventstore/
func BenchmarkAppend(b *testing.B) {
	for _, appenders := range []int{1, 32} {
		for _, events := range []int{1, 10} {
			b.Run(fmt.Sprintf("appenders=%d/events=%d", appenders, events), func(b *testing.B) {
				benchmarkAppend(b, appenders, events)
			})
		}
	}
}

func benchmarkAppend(b *testing.B, appenders, events int) {
	reg := prometheus.NewRegistry()
	s, db := newStore(b, eventstore.Options{Metrics: reg})
	ctx := context.Background()
	md := eventstore.Metadata{
		ActorID: "user-" + uuid.NewString(), TenantID: "tenant-" + uuid.NewString(),
		RequestID: "req-" + uuid.NewString(), IP: "203.0.113.7",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
	}
	evs := make([]domain.Event, events)
	for i := range evs {
		evs[i] = itemAdded{Item: "database-" + uuid.NewString(), Qty: i}
	}

	var next atomic.Int64
	latencies := make([][]time.Duration, appenders)
	errs := make([]error, appenders)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, b.N/appenders+1)
			for next.Add(1) <= int64(b.N) {
				a := eventstore.Append{
					Streams:  []eventstore.Stream{{ID: "database-" + uuid.NewString(), Type: "database", ExpectedVersion: 0, Events: evs}},
					Metadata: md,
				}
				a.Metadata.CorrelationID = uuid.NewString()
				t0 := time.Now()
				if _, err := s.Append(ctx, a); err != nil {
					errs[g] = err
					return
				}
				lat = append(lat, time.Since(t0))
			}
			latencies[g] = lat
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	for _, err := range errs {
		if err != nil {
			b.Fatalf("append failed: %v", err)
		}
	}
	all := slices.Concat(latencies...)
	if len(all) != b.N {
		b.Fatalf("%d appends succeeded, want %d", len(all), b.N)
	}
	// Zero loss: every acknowledged event is in the log, at gapless positions.
	want := int64(b.N * events)
	if count, lo, hi := logShape(b, db); count != want || lo != 1 || hi != want {
		b.Fatalf("log has %d events at %d..%d after %d acknowledged appends of %d: want %d at 1..%d", count, lo, hi, b.N, events, want, want)
	}
	if head, err := s.Head(ctx); err != nil || head != want {
		b.Fatalf("head = %d, %v; want %d", head, err, want)
	}

	slices.Sort(all)
	b.ReportMetric(float64(want)/elapsed.Seconds(), "events/s")
	b.ReportMetric(ms(all[len(all)/2]), "p50_ms")
	b.ReportMetric(ms(all[min(len(all)-1, len(all)*99/100)]), "p99_ms")
	b.ReportMetric(float64(b.N)/float64(batches(b, reg)), "appends/commit")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
