package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/clouddbmanager/clouddb/internal/latency"
)

// A subject's minutes of an hour are one column of its hour's row (metrics_usage.minutes), not a
// row each: a member's or a tenant's minutes were most of the read model's rows, and a row costs
// MariaDB more than its bytes. The column holds the minutes that have a bucket, in order, each
// encoded by appendMinute; the hour's counters and latency are their sum as before. Live batches
// and a rebuild fold minutes as rows of their own (usageKey of grain minute) and pack them into
// their hour's row when they write it (packMinutes); the readers unpack them (MinuteBuckets).

// minuteSlot is one minute of an hour's row: its start (unix seconds) and its counts.
type minuteSlot struct {
	at  int64
	row *usageRow
}

// Flags of an encoded minute: the gauges it sets.
const (
	minuteDatabases = 1 << iota
	minuteStorage
)

// errCorruptMinutes is returned for a minutes column appendMinutes did not write.
var errCorruptMinutes = errors.New("metrics: corrupt minutes encoding")

// appendMinutes appends the encoding of minutes (in order, all of the hour starting at hour): per
// minute its offset in the hour, which gauges it sets, a mask of its counters that are not zero
// and those counters, the gauges, and its histogram (latency's encoding) after its length.
func appendMinutes(out []byte, hour int64, minutes []minuteSlot) []byte {
	for _, m := range minutes {
		r := m.row
		r.settle()
		var flags byte
		if r.databases != nil {
			flags |= minuteDatabases
		}
		if r.storage != nil {
			flags |= minuteStorage
		}
		out = append(out, byte((m.at-hour)/60), flags)
		var mask uint64
		for i, c := range r.counts {
			if c != 0 {
				mask |= 1 << i
			}
		}
		out = binary.AppendUvarint(out, mask)
		for _, c := range r.counts {
			if c != 0 {
				out = binary.AppendUvarint(out, c)
			}
		}
		if r.databases != nil {
			out = binary.AppendVarint(out, *r.databases)
		}
		if r.storage != nil {
			out = binary.AppendVarint(out, *r.storage)
		}
		at := len(out)
		out = append(out, 0) // the histogram's length: one byte when short, else moved up
		if r.latency != nil {
			out, _ = r.latency.AppendBinary(out)
		}
		if n := len(out) - at - 1; n > 0x7f {
			var buf [binary.MaxVarintLen64]byte
			length := binary.AppendUvarint(buf[:0], uint64(n))
			out = append(out, length[1:]...)
			copy(out[at+len(length):], out[at+1:len(out)-len(length)+1])
			copy(out[at:], length)
		} else {
			out[at] = byte(n)
		}
	}
	return out
}

// decodeMinutes returns the minutes data encodes (appendMinutes' of the hour starting at hour).
func decodeMinutes(hour int64, data []byte) ([]minuteSlot, error) {
	var out []minuteSlot
	failed := false
	uvarint := func() uint64 { // binary.AppendUvarint's, or failed
		v, n := binary.Uvarint(data)
		failed = failed || n <= 0
		data = data[max(n, 0):]
		return v
	}
	varint := func() int64 { // binary.AppendVarint's: zig-zagged
		u := uvarint()
		return int64(u>>1) ^ -int64(u&1)
	}
	for len(data) > 0 {
		if len(data) < 2 || data[0] >= 60 {
			return nil, errCorruptMinutes
		}
		m := minuteSlot{at: hour + 60*int64(data[0]), row: &usageRow{}}
		flags := data[1]
		data = data[2:]
		mask := uvarint()
		for i := range m.row.counts {
			if mask&(1<<i) != 0 {
				m.row.counts[i] = uvarint()
			}
		}
		if flags&minuteDatabases != 0 {
			v := varint()
			m.row.databases = &v
		}
		if flags&minuteStorage != 0 {
			v := varint()
			m.row.storage = &v
		}
		n := uvarint()
		if failed || mask>>nCounters != 0 || n > uint64(len(data)) || len(out) > 0 && out[len(out)-1].at >= m.at {
			return nil, errCorruptMinutes
		}
		if n > 0 {
			h, err := latency.Decode(data[:n])
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errCorruptMinutes, err)
			}
			m.row.latency = h
		}
		data = data[n:]
		out = append(out, m)
	}
	return out, nil
}

// mergeMinutes returns the minutes of stored and added (each in order) merged: counters add,
// histograms merge, the gauges added sets replace the stored ones. It changes neither's rows but
// added's.
func mergeMinutes(stored, added []minuteSlot) []minuteSlot {
	out := make([]minuteSlot, 0, len(stored)+len(added))
	i, j := 0, 0
	for i < len(stored) || j < len(added) {
		switch {
		case j == len(added) || i < len(stored) && stored[i].at < added[j].at:
			out = append(out, stored[i])
			i++
		case i == len(stored) || added[j].at < stored[i].at:
			out = append(out, added[j])
			j++
		default:
			s, a := stored[i].row, added[j].row
			for c := range a.counts {
				a.counts[c] += s.counts[c]
			}
			a.settle()
			if s.latency != nil {
				if a.latency == nil {
					a.latency = &latency.Histogram{}
				}
				a.latency.Merge(s.latency)
			}
			if a.databases == nil {
				a.databases = s.databases
			}
			if a.storage == nil {
				a.storage = s.storage
			}
			out = append(out, added[j])
			i++
			j++
		}
	}
	return out
}

// cutMinutes returns the minutes at or after before.
func cutMinutes(minutes []minuteSlot, before int64) []minuteSlot {
	for i, m := range minutes {
		if m.at >= before {
			return minutes[i:]
		}
	}
	return nil
}

// hourOf is the start of the hour of a minute (unix seconds).
func hourOf(minute int64) int64 { return minute - minute%3600 }

// ceilHour is t rounded up to a whole hour (unix seconds).
func ceilHour(t int64) int64 {
	if t%3600 == 0 {
		return t
	}
	return hourOf(t) + 3600
}

// minuteBuckets are the minutes of data (the hour starting at hour) in [from, to), as buckets.
func minuteBuckets(hour time.Time, data []byte, from, to time.Time) ([]MetricsBucket, error) {
	minutes, err := decodeMinutes(hour.Unix(), data)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", hour, err)
	}
	out := make([]MetricsBucket, 0, len(minutes))
	for _, m := range minutes {
		at := time.Unix(m.at, 0).UTC()
		if at.Before(from) || !at.Before(to) {
			continue
		}
		b := MetricsBucket{At: at, Databases: m.row.databases, StorageBytes: m.row.storage}
		for i, f := range b.fields() {
			*f = m.row.counts[i]
		}
		if m.row.latency != nil {
			b.Latency = *m.row.latency
		}
		out = append(out, b)
	}
	return out, nil
}

// endOfTime ends a range of minutes open at its end.
var endOfTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
