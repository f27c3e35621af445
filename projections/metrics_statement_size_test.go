package projections

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/latency"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

// Hours whose minutes each hold a wide histogram (a member's statements of 400 durations every
// minute: about 50 KB an hour's row) are written by a live batch and by a rebuild's INSERTs
// however many there are: a statement stays within the server's max_allowed_packet (MariaDB's
// default, 16 MiB) whatever the rows hold.
func TestMetricsWritesOfWideHoursFitAStatement(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	var maxPacket int
	if err := db.QueryRowContext(ctx, `SELECT @@max_allowed_packet`).Scan(&maxPacket); err != nil {
		t.Fatal(err)
	}
	wide := &latency.Histogram{}
	for i := range 400 { // 400 buckets of latency, one each
		wide.Add(0.1 * math.Pow(1.0205, float64(i)))
	}
	hour := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).Unix()
	data := appendMinutes(nil, hour, wideMinutes(hour, wide))
	rows := maxPacket/len(data) + 10 // together over max_allowed_packet
	if rows > rowsPerStatement {
		t.Skipf("max_allowed_packet is %d: %d rows of %d bytes fit it, more than a statement's %d", maxPacket, rows, len(data), rowsPerStatement)
	}
	for _, table := range (Metrics{}).Tables() {
		for _, suffix := range []string{"_live", "_rebuilt"} {
			if table.Name == "metrics_usage" {
				if _, err := db.ExecContext(ctx, strings.ReplaceAll(table.DDL, "{{table}}", "`"+table.Name+suffix+"`")); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	keyOf := func(i int, grain domain.MetricsGrain, bucket int64) usageKey {
		return usageKey{"tenant", ScopeUser, fmt.Sprint("member-", i), grainCode(grain), bucket}
	}

	live := &metricsBatch{t: Tables{"metrics_usage": "metrics_usage_live"}, usage: map[usageKey]*usageRow{},
		cache: &cachedHistograms{usage: map[usageKey]*usageRow{}, patterns: map[patternKey]*latency.Histogram{}, complete: map[string]int64{}}}
	var keys []usageKey
	var hours []*usageRow
	for i := range rows {
		live.usage[keyOf(i, domain.GrainHour, hour)] = &usageRow{}
		for _, m := range wideMinutes(hour, wide) {
			live.usage[keyOf(i, domain.GrainMinute, m.at)] = m.row
		}
		keys = append(keys, keyOf(i, domain.GrainHour, hour))
		hours = append(hours, &usageRow{minutes: wideMinutes(hour, wide)})
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := live.writeUsage(ctx, tx); err != nil {
		t.Fatalf("a live batch of %d hours of %d bytes of minutes: %v", rows, len(data), err)
	}
	if err := insertRows(ctx, tx, "metrics_usage_rebuilt", usageColumns, keys, hours, appendUsageRow); err != nil {
		t.Fatalf("a rebuild's INSERT of %d hours of %d bytes of minutes: %v", rows, len(data), err)
	}
	for _, table := range []string{"metrics_usage_live", "metrics_usage_rebuilt"} {
		var n, bytes int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(LENGTH(minutes)), 0) FROM `+table).Scan(&n, &bytes); err != nil {
			t.Fatal(err)
		}
		if n != rows || bytes != rows*len(data) {
			t.Fatalf("%s holds %d rows, %d bytes of minutes; want %d, %d", table, n, bytes, rows, rows*len(data))
		}
	}
}

// wideMinutes are the 60 minutes of hour, each with one statement and the latencies of wide.
func wideMinutes(hour int64, wide *latency.Histogram) []minuteSlot {
	out := make([]minuteSlot, 60)
	for m := range out {
		r := &usageRow{latency: wide}
		r.counts[cQueries] = 1
		out[m] = minuteSlot{hour + int64(m)*60, r}
	}
	return out
}
