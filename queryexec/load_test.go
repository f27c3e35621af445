package queryexec

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// The sampler records a tenant once a minute at most, only when its figures changed (a tenant
// going quiet records zeros once, then nothing), the busiest max tenants first; the rest are
// counted and compared again a minute later. The clock is the test's.
func TestLoadSamplerOnlyChangesOnceAMinuteBusiestFirst(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)
	var now map[domain.TenantID]TenantLoad
	takes := 0
	s := NewLoadSampler(func() map[domain.TenantID]TenantLoad { takes++; return now }, "proc-1", 2, t0)
	steps := []struct {
		name    string
		after   time.Duration
		load    map[domain.TenantID]TenantLoad
		want    map[domain.TenantID]TenantLoad // recorded, nil: nothing
		minute  time.Time
		skipped int
	}{
		{name: "within the first minute: nothing, not even a look", after: 59 * time.Second,
			load: map[domain.TenantID]TenantLoad{"a": {PeakRunning: 1}}},
		{name: "a minute on: the busiest two of three, the third counted", after: time.Minute,
			load:   map[domain.TenantID]TenantLoad{"a": {PeakRunning: 1}, "b": {PeakRunning: 3, PoolOpen: 2, PoolInUse: 1}, "c": {PeakRunning: 2}},
			want:   map[domain.TenantID]TenantLoad{"b": {PeakRunning: 3, PoolOpen: 2, PoolInUse: 1}, "c": {PeakRunning: 2}},
			minute: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), skipped: 1},
		{name: "30 seconds later: too soon", after: 90 * time.Second,
			load: map[domain.TenantID]TenantLoad{"a": {PeakRunning: 9}}},
		{name: "unchanged b and c record nothing; a, left out before, now", after: 2 * time.Minute,
			load:   map[domain.TenantID]TenantLoad{"a": {PeakRunning: 1}, "b": {PeakRunning: 3, PoolOpen: 2, PoolInUse: 1}, "c": {PeakRunning: 2}},
			want:   map[domain.TenantID]TenantLoad{"a": {PeakRunning: 1}},
			minute: time.Date(2026, 3, 1, 10, 1, 0, 0, time.UTC)},
		{name: "c goes quiet: zeros once; b changes", after: 3 * time.Minute,
			load:   map[domain.TenantID]TenantLoad{"a": {PeakRunning: 1}, "b": {PeakRunning: 3, PoolOpen: 2}},
			want:   map[domain.TenantID]TenantLoad{"b": {PeakRunning: 3, PoolOpen: 2}, "c": {}},
			minute: time.Date(2026, 3, 1, 10, 2, 0, 0, time.UTC)},
		{name: "all quiet as before: nothing", after: 4 * time.Minute,
			load: map[domain.TenantID]TenantLoad{"a": {PeakRunning: 1}, "b": {PeakRunning: 3, PoolOpen: 2}}},
	}
	for _, st := range steps {
		now = st.load
		samples, skipped := s.Sample(t0.Add(st.after))
		got := map[domain.TenantID]TenantLoad{}
		for _, e := range samples {
			if e.ProcessID != "proc-1" || !e.Minute.Equal(st.minute) || !e.At.Equal(t0.Add(st.after)) {
				t.Errorf("%s: sample %+v: want process proc-1, minute %s, at %s", st.name, e, st.minute, t0.Add(st.after))
			}
			got[e.TenantID] = TenantLoad{e.PeakRunning, e.PoolOpen, e.PoolInUse}
		}
		if st.want == nil {
			st.want = map[domain.TenantID]TenantLoad{}
		}
		if !reflect.DeepEqual(got, st.want) || skipped != st.skipped {
			t.Errorf("%s: recorded %v, skipped %d; want %v, skipped %d", st.name, got, skipped, st.want, st.skipped)
		}
	}
	if takes != 4 {
		t.Errorf("the live figures were taken %d times, want 4 (never within a minute)", takes)
	}
	stop := s.Stop(t0.Add(5 * time.Minute))
	if len(stop) != 2 || stop[0].TenantID != "a" || stop[1].TenantID != "b" || stop[0].PeakRunning != 0 || stop[1].PoolOpen != 0 {
		t.Errorf("stop recorded %+v, want zeros for a and b", stop)
	}
	if again := s.Stop(t0.Add(6 * time.Minute)); len(again) != 0 {
		t.Errorf("a second stop recorded %+v", again)
	}
}

// The tenant gate keeps each tenant's peak since the previous take; a statement still running
// counts in the next period.
func TestGatePeaks(t *testing.T) {
	g := newTrackedGate[domain.TenantID]("%d")
	var leaves []func()
	for range 3 {
		leave, err := g.enter(context.Background(), "a", 10, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, leave)
	}
	leaves[0]()
	leaves[1]()
	if got := g.takePeaks(); !reflect.DeepEqual(got, map[domain.TenantID]int64{"a": 3}) {
		t.Errorf("first period's peaks %v, want a: 3", got)
	}
	leaves[2]()
	if got := g.takePeaks(); !reflect.DeepEqual(got, map[domain.TenantID]int64{"a": 1}) {
		t.Errorf("second period's peaks %v, want a: 1 (the statement that ran on)", got)
	}
	if got := g.takePeaks(); len(got) != 0 {
		t.Errorf("a quiet period's peaks %v, want none", got)
	}
}

// BenchmarkGateEnterLeave is a statement's pass through the tenant gate, with and without the
// peak the load sampler reads: the peak costs a map lookup under the lock the gate takes anyway
// and allocates nothing.
func BenchmarkGateEnterLeave(b *testing.B) {
	for _, tracked := range []bool{false, true} {
		b.Run(fmt.Sprintf("peaks=%v", tracked), func(b *testing.B) {
			g := newGate[domain.TenantID]("%d")
			if tracked {
				g = newTrackedGate[domain.TenantID]("%d")
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				leave, err := g.enter(ctx, "tenant", 10, 10, time.Second)
				if err != nil {
					b.Fatal(err)
				}
				leave()
			}
		})
	}
}
