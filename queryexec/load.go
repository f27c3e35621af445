package queryexec

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// TenantLoad is what the load sampler knows of a tenant in this process: the most statements it
// ran at once since the previous sample, and its account pools' connections now.
type TenantLoad struct {
	PeakRunning, PoolOpen, PoolInUse int64
}

// newTrackedGate is a gate that also keeps each key's peak (takePeaks).
func newTrackedGate[K comparable](busy string) *gate[K] {
	g := newGate[K](busy)
	g.peaks = map[K]int64{}
	return g
}

// takePeaks returns the peaks since the previous call and starts the next period at what runs
// now: a statement still running counts in the next period too.
func (g *gate[K]) takePeaks() map[K]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	peaks := g.peaks
	g.peaks = make(map[K]int64, len(g.keys))
	for k, p := range g.keys {
		g.peaks[k] = p.running
	}
	return peaks
}

// TakeLoad returns the load of every tenant with a statement run since the previous call, or a
// pool open now, and starts the next period of peaks. The load sampler calls it.
func (e *Engine) TakeLoad() map[domain.TenantID]TenantLoad {
	load := map[domain.TenantID]TenantLoad{}
	for t, peak := range e.running.takePeaks() {
		if peak > 0 {
			load[t] = TenantLoad{PeakRunning: peak}
		}
	}
	for t, s := range e.pools.byTenant() {
		if s.OpenConnections == 0 && s.InUse == 0 {
			continue
		}
		l := load[t]
		l.PoolOpen, l.PoolInUse = int64(s.OpenConnections), int64(s.InUse)
		load[t] = l
	}
	return load
}

// DefaultLoadTenants is how many tenants a process records the load of per minute at most
// (CLOUDDB_LOAD_SAMPLE_TENANTS).
const DefaultLoadTenants = 1000

// LoadSampler turns the query module's live figures into domain.TenantLoadSampled events at a
// bounded rate: once a minute at most, for a tenant only when its figures differ from the
// process's previous sample of it (a quiet tenant records nothing, a tenant going quiet records
// zeros once), and for at most Max tenants a minute, the busiest; the others are counted, and
// compared again a minute later. Safe for concurrent use (a test may sample beside the loop).
type LoadSampler struct {
	take    func() map[domain.TenantID]TenantLoad
	process string
	max     int
	mu      sync.Mutex
	started time.Time // of the period the next sample covers
	last    map[domain.TenantID]TenantLoad
}

// NewLoadSampler samples what take returns for process (its lease's instance id), max tenants a
// minute at most (DefaultLoadTenants when max <= 0), the first period starting at start.
func NewLoadSampler(take func() map[domain.TenantID]TenantLoad, process string, max int, start time.Time) *LoadSampler {
	if take == nil || process == "" {
		panic("queryexec: NewLoadSampler needs a source and a process id")
	}
	if max <= 0 {
		max = DefaultLoadTenants
	}
	return &LoadSampler{take: take, process: process, max: max, started: start, last: map[domain.TenantID]TenantLoad{}}
}

// Sample ends the period at now and returns the samples to record, and how many tenants changed
// but were left out by the bound. Less than a minute after the period started it returns nothing
// and the period goes on.
func (s *LoadSampler) Sample(now time.Time) (samples []domain.TenantLoadSampled, skipped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.started) < time.Minute {
		return nil, 0
	}
	minute := s.started.UTC().Truncate(time.Minute)
	s.started = now
	load := s.take()
	changed := make([]domain.TenantID, 0, len(load))
	for t, l := range load {
		if l != s.last[t] {
			changed = append(changed, t)
		}
	}
	for t := range s.last {
		if _, ok := load[t]; !ok {
			changed = append(changed, t) // went quiet: zeros once
		}
	}
	slices.SortFunc(changed, func(a, b domain.TenantID) int {
		la, lb := load[a], load[b]
		return cmp.Or(cmp.Compare(lb.PeakRunning, la.PeakRunning), cmp.Compare(lb.PoolInUse, la.PoolInUse),
			cmp.Compare(lb.PoolOpen, la.PoolOpen), cmp.Compare(a, b))
	})
	if len(changed) > s.max {
		skipped = len(changed) - s.max
		changed = changed[:s.max]
	}
	for _, t := range changed {
		l := load[t]
		samples = append(samples, s.sample(t, minute, l, now))
		if l == (TenantLoad{}) {
			delete(s.last, t)
		} else {
			s.last[t] = l
		}
	}
	return samples, skipped
}

// Stop returns zeros for every tenant the process last reported busy: its part of their load ends
// with it. The sampler starts over empty.
func (s *LoadSampler) Stop(now time.Time) []domain.TenantLoadSampled {
	s.mu.Lock()
	defer s.mu.Unlock()
	minute := now.UTC().Truncate(time.Minute)
	samples := make([]domain.TenantLoadSampled, 0, len(s.last))
	for _, t := range slices.Sorted(maps.Keys(s.last)) {
		samples = append(samples, s.sample(t, minute, TenantLoad{}, now))
	}
	clear(s.last)
	return samples
}

func (s *LoadSampler) sample(t domain.TenantID, minute time.Time, l TenantLoad, now time.Time) domain.TenantLoadSampled {
	return domain.TenantLoadSampled{TenantID: t, ProcessID: s.process, Minute: minute, PeakRunning: l.PeakRunning,
		PoolOpen: l.PoolOpen, PoolInUse: l.PoolInUse, At: now.UTC()}
}

// Run samples every interval (a minute at the least) until ctx ends, and hands the samples to
// record; then it records the zeros of Stop. A sample that cannot be recorded is logged and lost:
// the next one carries the figures that still differ.
func (s *LoadSampler) Run(ctx context.Context, interval time.Duration, now func() time.Time,
	record func(context.Context, []domain.TenantLoadSampled) error, log *slog.Logger) {
	tick := time.NewTicker(max(interval, time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			samples, skipped := s.Sample(now())
			if skipped > 0 {
				log.Warn("load samples over the bound: the busiest tenants recorded, the others next minute",
					"recorded", len(samples), "skipped", skipped)
			}
			if len(samples) > 0 {
				if err := record(ctx, samples); err != nil && ctx.Err() == nil {
					log.Warn("could not record the load samples", "tenants", len(samples), "err", err)
				}
			}
		case <-ctx.Done():
			if samples := s.Stop(now()); len(samples) > 0 {
				stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := record(stopCtx, samples); err != nil {
					log.Warn("could not record the end of this process's load", "tenants", len(samples), "err", err)
				}
			}
			return
		}
	}
}
