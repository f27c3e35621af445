package latency_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/clouddbmanager/clouddb/internal/latency"
)

// TestSamplesCountAsAdd: a latency counted through a Sample (one at a time, or many at once by
// AddSamples, after values spreading downward and upward) encodes to the bytes Add gives.
func TestSamplesCountAsAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	for round := range 200 {
		n := 1 + rng.IntN(80)
		values := make([]float64, n)
		for i := range values {
			switch rng.IntN(10) {
			case 0:
				values[i] = 0
			case 1:
				values[i] = -1
			case 2:
				values[i] = math.NaN()
			case 3:
				values[i] = 2e9
			default:
				values[i] = math.Exp(rng.NormFloat64()*2 + 2)
			}
		}
		var added, sampled, batched latency.Histogram
		samples := make([]latency.Sample, n)
		for i, v := range values {
			added.Add(v)
			samples[i] = latency.NewSample(v)
			sampled.AddSample(samples[i], 1)
		}
		cut := rng.IntN(n + 1)
		for _, s := range samples[:cut] {
			batched.AddSample(s, 1)
		}
		batched.AddSamples(samples[cut:])
		want, _ := added.MarshalBinary()
		for name, h := range map[string]*latency.Histogram{"AddSample": &sampled, "AddSamples": &batched} {
			if got, _ := h.MarshalBinary(); !bytes.Equal(got, want) {
				t.Fatalf("round %d: %s encodes %x, Add %x", round, name, got, want)
			}
			if h.Quantile(0.95) != added.Quantile(0.95) || h.Count() != added.Count() {
				t.Fatalf("round %d: %s answers p95 %v of %d, Add %v of %d", round, name, h.Quantile(0.95), h.Count(), added.Quantile(0.95), added.Count())
			}
		}
	}
}
