package main

import (
	"testing"
	"time"
)

// BenchmarkIdleStatements counts the statements an idle served App sends to its management
// database: the server's Questions and Com_select counters over 5 seconds, per second, less the
// benchmark's own status reads. The counters are the server's, so run it alone against a
// dedicated server (CLOUDDB_TEST_DSN); see docs/PERFORMANCE.md ("An idle process").
//
//	CLOUDDB_TEST_DSN='root@tcp(127.0.0.1:3407)/' go test -run '^$' -bench BenchmarkIdleStatements -benchtime 1x -count 3 ./cmd/clouddb/
func BenchmarkIdleStatements(b *testing.B) {
	app := startAuthBenchApp(b, 4)
	status := func() (questions, selects float64) {
		rows, err := app.DB.Query(`SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_select')`)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var value float64
			if err := rows.Scan(&name, &value); err != nil {
				b.Fatal(err)
			}
			if name == "Questions" {
				questions = value
			} else {
				selects = value
			}
		}
		return questions, selects
	}
	time.Sleep(2 * time.Second) // past the start's own statements
	const window = 5 * time.Second
	for range b.N {
		q0, s0 := status()
		time.Sleep(window)
		q1, s1 := status()
		// One SHOW per status read: it counts as a question and, in MariaDB, as a Com_select.
		b.ReportMetric((q1-q0-1)/window.Seconds(), "statements/s")
		b.ReportMetric((s1-s0-1)/window.Seconds(), "selects/s")
	}
}
