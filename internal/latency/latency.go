// Package latency is a mergeable latency sketch: a histogram over fixed log-scale buckets, so that
// the percentiles of a minute, an hour or a month come from adding counts, never from averaging
// percentiles. Any quantile it answers lies within RelativeAccuracy of the exact value of the same
// rank, however the values were split into histograms and merged back (the DDSketch argument:
// bucket i holds (γ^(i-1), γ^i] and answers its middle, 2γ^i/(γ+1)).
//
// Histograms travel and are stored in a compact binary form (MarshalBinary): the metrics read
// models keep one per minute, hour and day.
package latency

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// RelativeAccuracy bounds the relative error of every quantile: 1 %, half the 2 % the dashboards
// promise, so that float rounding at bucket edges never matters.
const RelativeAccuracy = 0.01

// Bounds of what is told apart, in milliseconds: values at or below MinValue (a microsecond)
// count as 0, values above MaxValue (about 11.6 days) as MaxValue.
const (
	MinValue = 1e-3
	MaxValue = 1e9
)

var (
	gamma    = (1 + RelativeAccuracy) / (1 - RelativeAccuracy)
	logGamma = math.Log(gamma)
	minIndex = bucketIndex(MinValue) + 1
	maxIndex = bucketIndex(MaxValue)
)

// bucketIndex is the bucket of v > 0: the i with γ^(i-1) < v ≤ γ^i.
func bucketIndex(v float64) int { return int(math.Ceil(math.Log(v) / logGamma)) }

// bucketValue is what bucket i answers for the values it holds: within RelativeAccuracy of each.
func bucketValue(i int) float64 { return 2 * math.Pow(gamma, float64(i)) / (gamma + 1) }

// Histogram counts latencies in milliseconds. The zero value is an empty histogram, ready to use.
// It is not safe for concurrent use.
type Histogram struct {
	zero   uint64   // values ≤ MinValue
	offset int      // bucket index of counts[0]
	counts []uint64 // dense from offset; ends trimmed of zeros only when encoded
	total  uint64   // all values, zero included
	// micros is the sum of the values in whole microseconds: integers add exactly in any order (up
	// to 2⁵³ µs, 285 years), so merges in another order give the same bits, and a rebuilt read
	// model the same bytes.
	micros float64
	min    float64 // exact extremes; meaningless when total is 0
	max    float64
}

// Add counts one latency of ms milliseconds; a negative or NaN value counts as 0.
func (h *Histogram) Add(ms float64) { h.AddN(ms, 1) }

// AddN counts n latencies of ms milliseconds each.
func (h *Histogram) AddN(ms float64, n uint64) { h.AddSample(NewSample(ms), n) }

// Sample is one latency ready to be counted in several histograms (a statement in its minute,
// hour and day, for its tenant, database and member): its bucket is found once.
type Sample struct {
	ms     float64 // clamped to [0, MaxValue]
	micros float64 // whole microseconds
	index  int     // the bucket; unused when ms <= MinValue
}

// NewSample is a latency of ms milliseconds; a negative or NaN value counts as 0.
func NewSample(ms float64) Sample {
	if !(ms > 0) { // NaN and negatives too
		ms = 0
	}
	ms = min(ms, MaxValue)
	s := Sample{ms: ms, micros: math.Round(ms * 1000)}
	if ms > MinValue {
		s.index = bucketIndex(ms)
	}
	return s
}

// AddSample counts n latencies of s each: as AddN with s's milliseconds.
func (h *Histogram) AddSample(s Sample, n uint64) {
	if n == 0 {
		return
	}
	h.note(s.ms, s.ms, n)
	h.micros += s.micros * float64(n)
	if s.ms <= MinValue {
		h.zero += n
		return
	}
	h.grow(s.index, s.index)
	h.counts[s.index-h.offset] += n
}

// AddSamples counts each of samples once, as AddSample(s, 1) on each would, growing the counts
// once for all of them.
func (h *Histogram) AddSamples(samples []Sample) {
	lo, hi, found := 0, 0, false
	for _, s := range samples {
		switch {
		case s.ms <= MinValue:
		case !found:
			lo, hi, found = s.index, s.index, true
		default:
			lo, hi = min(lo, s.index), max(hi, s.index)
		}
	}
	if found {
		h.grow(lo, hi)
	}
	for _, s := range samples {
		h.AddSample(s, 1)
	}
}

// note folds extremes and a count into the totals.
func (h *Histogram) note(lo, hi float64, n uint64) {
	if h.total == 0 {
		h.min, h.max = lo, hi
	} else {
		h.min, h.max = min(h.min, lo), max(h.max, hi)
	}
	h.total += n
}

// grow makes counts cover the bucket indexes lo..hi.
func (h *Histogram) grow(lo, hi int) {
	if len(h.counts) == 0 {
		h.offset = lo
		h.counts = make([]uint64, hi-lo+1)
		return
	}
	if lo < h.offset {
		// Room below for as many buckets again as are in use (zeros, which no encoding keeps), so
		// that values spreading downward one bucket at a time copy the counts a logarithmic
		// number of times, as append does upward.
		lo = min(lo, max(h.offset-len(h.counts), minIndex))
		grown := make([]uint64, h.offset-lo+len(h.counts))
		copy(grown[h.offset-lo:], h.counts)
		h.counts, h.offset = grown, lo
	}
	if end := h.offset + len(h.counts) - 1; hi > end {
		h.counts = append(h.counts, make([]uint64, hi-end)...)
	}
}

// Merge adds the counts of o to h, as if every value of o had been added to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	h.note(o.min, o.max, o.total)
	h.micros += o.micros
	h.zero += o.zero
	if len(o.counts) == 0 {
		return
	}
	h.grow(o.offset, o.offset+len(o.counts)-1)
	for k, c := range o.counts {
		h.counts[o.offset+k-h.offset] += c
	}
}

// Count is how many values were added.
func (h *Histogram) Count() uint64 { return h.total }

// Sum is the sum of the values added, in milliseconds, each rounded to the microsecond.
func (h *Histogram) Sum() float64 { return h.micros / 1000 }

// Mean is the mean of the values (Sum / Count), 0 for an empty histogram.
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.Sum() / float64(h.total)
}

// Min and Max are the exact extremes, 0 for an empty histogram.
func (h *Histogram) Min() float64 {
	if h.total == 0 {
		return 0
	}
	return h.min
}

func (h *Histogram) Max() float64 {
	if h.total == 0 {
		return 0
	}
	return h.max
}

// Quantile returns the value of rank ⌈q·n⌉ (the nearest-rank percentile, at least rank 1) within
// RelativeAccuracy (within MinValue for a value counted as 0), clamped to the exact extremes; 0 for
// an empty histogram. q is clamped to [0, 1].
func (h *Histogram) Quantile(q float64) float64 {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := max(uint64(math.Ceil(q*float64(h.total))), 1)
	seen := h.zero
	if seen >= rank {
		return h.min // within MinValue of every value counted as 0
	}
	for k, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(bucketValue(h.offset+k), h.min), h.max)
		}
	}
	return h.max
}

// encodingVersion is the first byte of an encoded histogram.
const encodingVersion = 1

// MarshalBinary encodes h compactly: its totals, then each non-empty bucket as the distance from
// the previous one and its count, in varints. An empty histogram encodes as nil.
func (h *Histogram) MarshalBinary() ([]byte, error) {
	if h.total == 0 {
		return nil, nil
	}
	return h.AppendBinary(make([]byte, 0, 32+4*len(h.counts)))
}

// AppendBinary appends MarshalBinary's encoding of h to out (nothing for an empty histogram): a
// writer of many rows encodes them into one buffer.
func (h *Histogram) AppendBinary(out []byte) ([]byte, error) {
	if h.total == 0 {
		return out, nil
	}
	out = append(out, encodingVersion)
	out = binary.AppendUvarint(out, h.zero)
	out = binary.AppendUvarint(out, uint64(h.micros))
	out = binary.LittleEndian.AppendUint64(out, math.Float64bits(h.min))
	out = binary.LittleEndian.AppendUint64(out, math.Float64bits(h.max))
	buckets := 0
	for _, c := range h.counts {
		if c > 0 {
			buckets++
		}
	}
	out = binary.AppendUvarint(out, uint64(buckets))
	previous := minIndex - 1
	for k, c := range h.counts {
		if c == 0 {
			continue
		}
		i := h.offset + k
		out = binary.AppendUvarint(out, uint64(i-previous))
		out = binary.AppendUvarint(out, c)
		previous = i
	}
	return out, nil
}

// ErrCorrupt is returned when an encoded histogram cannot be read.
var ErrCorrupt = errors.New("latency: corrupt histogram encoding")

// UnmarshalBinary replaces h with the histogram data encodes (nil or empty: an empty histogram).
// Returns an error wrapping ErrCorrupt for anything MarshalBinary did not write.
func (h *Histogram) UnmarshalBinary(data []byte) error {
	*h = Histogram{}
	if len(data) == 0 {
		return nil
	}
	if data[0] != encodingVersion {
		return fmt.Errorf("%w: version %d", ErrCorrupt, data[0])
	}
	r := reader{data: data[1:]}
	h.zero = r.uvarint()
	h.micros = float64(r.uvarint())
	h.min, h.max = r.float(), r.float()
	n := r.uvarint()
	if r.err != nil || n > uint64(maxIndex-minIndex+1) {
		return fmt.Errorf("%w: header", ErrCorrupt)
	}
	h.total = h.zero
	i := minIndex - 1
	for range n {
		step, c := r.uvarint(), r.uvarint()
		if r.err != nil || step == 0 || step > uint64(maxIndex-i) || c == 0 {
			*h = Histogram{}
			return fmt.Errorf("%w: bucket", ErrCorrupt)
		}
		i += int(step)
		h.grow(i, i)
		h.counts[i-h.offset] = c
		h.total += c
	}
	if len(r.data) > 0 || h.total == 0 {
		*h = Histogram{}
		return fmt.Errorf("%w: length", ErrCorrupt)
	}
	return nil
}

// reader reads varints and floats, remembering the first failure.
type reader struct {
	data []byte
	err  error
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.data)
	if n <= 0 {
		r.err = ErrCorrupt
		return 0
	}
	r.data = r.data[n:]
	return v
}

func (r *reader) float() float64 {
	if len(r.data) < 8 {
		r.err = ErrCorrupt
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.data))
	r.data = r.data[8:]
	return v
}

// Decode returns the histogram data encodes; see UnmarshalBinary.
func Decode(data []byte) (*Histogram, error) {
	h := &Histogram{}
	return h, h.UnmarshalBinary(data)
}
