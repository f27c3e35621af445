package latency_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/clouddbmanager/clouddb/internal/latency"
)

// maxError is what the dashboards promise: every percentile within 2 % of the exact one.
const maxError = 0.02

// exact is the nearest-rank percentile of sorted values: the value of rank ⌈q·n⌉ (at least 1).
func exact(sorted []float64, q float64) float64 {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

// sets are known latency sets, in milliseconds, of the shapes queries have.
func sets() map[string][]float64 {
	rng := rand.New(rand.NewPCG(13, 42))
	gen := func(n int, f func() float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = f()
		}
		return out
	}
	return map[string][]float64{
		"constant":    gen(1000, func() float64 { return 42 }),
		"one value":   {3.7},
		"uniform":     gen(20000, func() float64 { return 1 + rng.Float64()*999 }),
		"exponential": gen(20000, func() float64 { return rng.ExpFloat64() * 25 }),
		"lognormal":   gen(20000, func() float64 { return math.Exp(rng.NormFloat64()*1.5 + 2) }),
		// fast reads and a few slow scans: p99 sits in the second hump
		"bimodal": gen(20000, func() float64 {
			if rng.IntN(100) < 97 {
				return 0.3 + rng.Float64()*0.4
			}
			return 2000 + rng.Float64()*8000
		}),
		"seven decades": gen(20000, func() float64 { return math.Pow(10, rng.Float64()*7-2) }),
		"timeouts":      append(gen(900, func() float64 { return 5 + rng.Float64() }), gen(100, func() float64 { return 30000 })...),
	}
}

var quantiles = []float64{0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}

// checkQuantiles fails unless every quantile of h is within maxError of the exact one of values.
func checkQuantiles(t *testing.T, h *latency.Histogram, values []float64) {
	t.Helper()
	sorted := slices.Sorted(slices.Values(values))
	if got := h.Count(); got != uint64(len(values)) {
		t.Fatalf("count = %d, want %d", got, len(values))
	}
	for _, q := range quantiles {
		want, got := exact(sorted, q), h.Quantile(q)
		if rel := math.Abs(got-want) / want; rel > maxError {
			t.Errorf("q%.3f = %.6g, exact %.6g: %.2f %% off", q, got, want, 100*rel)
		}
	}
	var sum float64
	for _, v := range values {
		sum += v
	}
	// each value counts to the microsecond
	if math.Abs(h.Sum()-sum) > 0.0005*float64(len(values))+1e-9*sum || h.Min() != sorted[0] || h.Max() != sorted[len(sorted)-1] {
		t.Errorf("sum, min, max = %g, %g, %g; want %g, %g, %g", h.Sum(), h.Min(), h.Max(), sum, sorted[0], sorted[len(sorted)-1])
	}
}

func TestQuantilesWithinTwoPercentOfExact(t *testing.T) {
	for name, values := range sets() {
		t.Run(name, func(t *testing.T) {
			var h latency.Histogram
			for _, v := range values {
				h.Add(v)
			}
			checkQuantiles(t, &h, values)
		})
	}
}

// roundTrip encodes and decodes h, as the read models store it.
func roundTrip(t *testing.T, h *latency.Histogram) *latency.Histogram {
	t.Helper()
	data, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := latency.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// TestMergedBucketsKeepTheirAccuracy splits each set into parts in several ways — per value, by
// arrival, interleaved, every part stored and read back — and checks the merge as one histogram.
func TestMergedBucketsKeepTheirAccuracy(t *testing.T) {
	for name, values := range sets() {
		for _, parts := range []int{2, 7, 60} {
			t.Run(name, func(t *testing.T) {
				hs := make([]latency.Histogram, parts)
				for i, v := range values {
					hs[(i*31+i/3)%parts].Add(v) // neither contiguous nor sorted
				}
				var merged latency.Histogram
				for i := range hs {
					merged.Merge(roundTrip(t, &hs[i]))
				}
				checkQuantiles(t, &merged, values)
				var direct latency.Histogram
				for _, v := range values {
					direct.Add(v)
				}
				for _, q := range quantiles {
					if merged.Quantile(q) != direct.Quantile(q) {
						t.Errorf("q%.3f merged %g, added one by one %g: a merge must equal adding", q, merged.Quantile(q), direct.Quantile(q))
					}
				}
			})
		}
	}
}

// TestRollupsMinuteHourDay spreads a day of queries over minutes, rolls the minutes up into hours
// and the hours into the day (each level stored and read back), and checks every level against
// the exact percentiles of the values it covers.
func TestRollupsMinuteHourDay(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const minutes = 24 * 60
	perMinute := make([][]float64, minutes)
	for m := range perMinute {
		for range rng.IntN(12) {
			// the service slows down in the afternoon: hours differ
			v := math.Exp(rng.NormFloat64()+1) * (1 + float64(m/60)/6)
			perMinute[m] = append(perMinute[m], v)
		}
	}
	var day latency.Histogram
	var dayValues []float64
	for hour := range 24 {
		var h latency.Histogram
		var hourValues []float64
		for m := hour * 60; m < (hour+1)*60; m++ {
			var minute latency.Histogram
			for _, v := range perMinute[m] {
				minute.Add(v)
			}
			h.Merge(roundTrip(t, &minute))
			hourValues = append(hourValues, perMinute[m]...)
		}
		if len(hourValues) > 0 {
			checkQuantiles(t, &h, hourValues)
		}
		day.Merge(roundTrip(t, &h))
		dayValues = append(dayValues, hourValues...)
	}
	checkQuantiles(t, roundTrip(t, &day), dayValues)
}

// TestSumsDoNotDependOnTheOrderOfMerges: a rebuilt read model merges the same minutes in other
// batches than the live one did, and must store the same bytes.
func TestSumsDoNotDependOnTheOrderOfMerges(t *testing.T) {
	values := sets()["lognormal"]
	var forward, backward latency.Histogram
	for i := range values {
		var one, other latency.Histogram
		one.Add(values[i])
		other.Add(values[len(values)-1-i])
		forward.Merge(&one)
		backward.Merge(&other)
	}
	a, _ := forward.MarshalBinary()
	b, _ := backward.MarshalBinary()
	if !slices.Equal(a, b) {
		t.Errorf("the same values merged in another order encode differently (sums %v and %v)", forward.Sum(), backward.Sum())
	}
}

func TestEdges(t *testing.T) {
	var empty latency.Histogram
	if empty.Quantile(0.5) != 0 || empty.Count() != 0 || empty.Mean() != 0 {
		t.Errorf("empty histogram answers %g, count %d", empty.Quantile(0.5), empty.Count())
	}
	if data, _ := empty.MarshalBinary(); data != nil {
		t.Errorf("empty histogram encodes as %x, want nil", data)
	}
	var h latency.Histogram
	h.Add(0)
	h.Add(-5)
	h.Add(math.NaN())
	h.Add(2 * latency.MaxValue)
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("median of 0, -5, NaN, huge = %g, want 0 (they count as 0)", got)
	}
	if got := h.Quantile(1); got != latency.MaxValue {
		t.Errorf("max = %g, want the cap %g", got, latency.MaxValue)
	}
	h.AddN(10, 0)
	if h.Count() != 4 {
		t.Errorf("AddN(_, 0) counted: %d", h.Count())
	}
	var m latency.Histogram
	m.Merge(nil)
	m.Merge(&empty)
	if m.Count() != 0 {
		t.Error("merging nothing counted something")
	}
}

func TestCorruptEncodingsAreRefused(t *testing.T) {
	var h latency.Histogram
	h.Add(1)
	h.Add(100)
	good, _ := h.MarshalBinary()
	for name, data := range map[string][]byte{
		"version":   append([]byte{9}, good[1:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(slices.Clone(good), 0),
		"header":    good[:5],
	} {
		if _, err := latency.Decode(data); !errors.Is(err, latency.ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}
