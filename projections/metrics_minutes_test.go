package projections

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/internal/latency"
)

// randomMinutes are some minutes of the hour starting at hour: counters of every size, gauges
// set or not, histograms empty, small and wide (an encoded length of two bytes).
func randomMinutes(rng *rand.Rand, hour int64) []minuteSlot {
	var out []minuteSlot
	for m := range 60 {
		if rng.IntN(3) > 0 {
			continue
		}
		r := &usageRow{}
		for c := range r.counts {
			if rng.IntN(2) == 0 {
				r.counts[c] = rng.Uint64N(1 << (rng.IntN(40) + 1))
			}
		}
		if rng.IntN(4) == 0 {
			v := rng.Int64N(1<<40) - 1<<39
			r.databases, r.storage = &v, &v
		}
		if n := rng.IntN(4) * rng.IntN(80); n > 0 {
			r.latency = &latency.Histogram{}
			for range n {
				r.latency.Add(rng.ExpFloat64() * float64(rng.IntN(100000)+1))
			}
		}
		out = append(out, minuteSlot{hour + int64(m)*60, r})
	}
	return out
}

// The minutes of an hour read back as they were written, and anything appendMinutes did not
// write is refused rather than misread.
func TestMinutesEncodingRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 7))
	hour := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).Unix()
	for range 40 {
		minutes := randomMinutes(rng, hour)
		data := appendMinutes(nil, hour, minutes)
		got, err := decodeMinutes(hour, data)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(minutes) {
			t.Fatalf("%d minutes read back, %d written", len(got), len(minutes))
		}
		for i, m := range minutes {
			g := got[i]
			var want, have []byte
			if m.row.latency != nil {
				want, _ = m.row.latency.MarshalBinary()
			}
			if g.row.latency != nil {
				have, _ = g.row.latency.MarshalBinary()
			}
			if g.at != m.at || g.row.counts != m.row.counts || !reflect.DeepEqual(g.row.databases, m.row.databases) ||
				!reflect.DeepEqual(g.row.storage, m.row.storage) || string(have) != string(want) {
				t.Fatalf("minute %d read back as %+v, written %+v", i, g.row, m.row)
			}
		}
		for range 100 { // a prefix reads as minutes only when it ends where one does
			cut := rng.IntN(len(data) + 1)
			if prefix, err := decodeMinutes(hour, data[:cut]); err == nil && string(appendMinutes(nil, hour, prefix)) != string(data[:cut]) {
				t.Fatalf("the first %d of %d bytes read as other minutes", cut, len(data))
			}
		}
	}
	for _, bad := range [][]byte{{60, 0, 0, 0}, {1, 0, 0, 0, 1, 0, 0, 0}, {0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, {0, 0, 0, 5, 1}} {
		if _, err := decodeMinutes(hour, bad); !errors.Is(err, errCorruptMinutes) {
			t.Errorf("decodeMinutes(%v) = %v, want errCorruptMinutes", bad, err)
		}
	}
}

// Merged minutes add their counters and histograms, and the later gauges win.
func TestMergeMinutesAddsAndKeepsOrder(t *testing.T) {
	one, two := int64(1), int64(2)
	h := func(ms ...float64) *latency.Histogram {
		var out latency.Histogram
		for _, v := range ms {
			out.Add(v)
		}
		return &out
	}
	stored := []minuteSlot{{0, &usageRow{counts: [nCounters]uint64{1}, latency: h(1), storage: &one}}, {120, &usageRow{counts: [nCounters]uint64{5}}}}
	added := []minuteSlot{{0, &usageRow{counts: [nCounters]uint64{2}, latency: h(3)}}, {60, &usageRow{storage: &two}}}
	got := mergeMinutes(stored, added)
	if len(got) != 3 || got[0].at != 0 || got[1].at != 60 || got[2].at != 120 {
		t.Fatalf("merged minutes at %v", got)
	}
	if got[0].row.counts[0] != 3 || got[0].row.latency.Count() != 2 || *got[0].row.storage != 1 || *got[1].row.storage != 2 || got[2].row.counts[0] != 5 {
		t.Fatalf("merged: %+v %+v %+v", got[0].row, got[1].row, got[2].row)
	}
	if stored[0].row.counts[0] != 1 || stored[0].row.latency.Count() != 1 {
		t.Fatalf("the stored minutes changed: %+v", stored[0].row)
	}
}

// FuzzDecodeMinutes: whatever a minutes column holds, decodeMinutes refuses it or reads minutes
// that encode and read back the same.
func FuzzDecodeMinutes(f *testing.F) {
	one, h := int64(-1), &latency.Histogram{}
	h.Add(1.5)
	h.Add(300)
	f.Add(appendMinutes(nil, 0, []minuteSlot{{0, &usageRow{counts: [nCounters]uint64{3, 1}, latency: h}}, {120, &usageRow{databases: &one, storage: &one}}}))
	f.Add([]byte{0, 3, 0, 2, 2, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		minutes, err := decodeMinutes(0, data)
		if err != nil {
			return
		}
		encoded := appendMinutes(nil, 0, minutes)
		again, err := decodeMinutes(0, encoded)
		if err != nil || len(again) != len(minutes) {
			t.Fatalf("%x: %d minutes read, encoded and read again as %d, %v", data, len(minutes), len(again), err)
		}
		// Every part of a minute (counters, gauges, histogram) encodes again as it was.
		if twice := appendMinutes(nil, 0, again); !bytes.Equal(twice, encoded) {
			t.Fatalf("%x: read as minutes encoded as %x, read and encoded again as %x", data, encoded, twice)
		}
	})
}
