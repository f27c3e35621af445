package commands_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// TestMetricsRetentionCutsOnceAnHour: the cut of an hour is recorded once, however many reactors
// (processes) look, and the next hour's cut follows.
func TestMetricsRetentionCutsOnceAnHour(t *testing.T) {
	db := testdb.New(t)
	clk := &clock{now: t0.Add(10 * time.Minute)}
	store := eventstore.New(db, eventstore.NewDomainRegistry(), eventstore.Options{Logger: quiet(), Clock: clk.Now})
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	reactors := make([]*commands.MetricsRetention, 4)
	for i := range reactors {
		reactors[i] = commands.NewMetricsRetention(store, clk.Now, quiet())
	}
	cutAll := func() int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		recorded := 0
		for _, r := range reactors {
			wg.Go(func() {
				n, err := r.Cut(ctx)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				recorded += n
				mu.Unlock()
			})
		}
		wg.Wait()
		return recorded
	}
	if n := cutAll(); n != 1 {
		t.Fatalf("4 reactors recorded %d cuts, want 1", n)
	}
	clk.Advance(40 * time.Minute) // same hour
	if n := cutAll(); n != 0 {
		t.Fatalf("a second cut in the same hour: %d", n)
	}
	clk.Advance(20 * time.Minute) // next hour
	if n := cutAll(); n != 1 {
		t.Fatalf("the next hour recorded %d cuts, want 1", n)
	}
	envs, err := store.ReadStream(ctx, domain.MetricsRetentionStream, 0)
	if err != nil || len(envs) != 2 {
		t.Fatalf("%d cuts in the stream, %v; want 2", len(envs), err)
	}
	e, err := store.Registry().Decode(envs[1])
	if err != nil {
		t.Fatal(err)
	}
	cut := e.(domain.MetricsPruned)
	hour := t0.Add(time.Hour)
	if !cut.PerformanceBefore.Equal(hour.Add(-30*24*time.Hour)) || !cut.ActivityBefore.Equal(hour.Add(-90*24*time.Hour)) ||
		!cut.DailyBefore.Equal(hour.Add(-365*24*time.Hour).Truncate(24*time.Hour)) {
		t.Errorf("cut = %+v: want 30 days, 90 days and a year (whole days) before %s", cut, hour)
	}
}
