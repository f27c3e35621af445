package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkBigValueQueries is the memory attack of issue 10 (item 4): 18 queries at once, each
// returning one 16,000,000-byte value (refused: over MaxRowBytes), then one 6,000,000-byte value
// (8 MB of base64, just under it), against the served App in this process. Reported: the
// peak Go heap (sampled every 5 ms) and the peak RSS (VmHWM, reset before the burst) above what
// the process held before it, and the answers by status. See docs/PERFORMANCE.md ("Memory of big
// results").
//
//	go test -run '^$' -bench 'BenchmarkBigValueQueries' -benchtime 1x ./cmd/clouddb/
func BenchmarkBigValueQueries(b *testing.B) {
	q := startQueryBench(b)
	body, _ := json.Marshal(map[string]any{"sql": "CREATE TABLE big (size INT, v LONGTEXT)"})
	if err := q.run(body); err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{16_000_000, 6_000_000} {
		body, _ = json.Marshal(map[string]any{"sql": fmt.Sprintf("INSERT INTO big VALUES (%d, REPEAT('x', %d))", size, size)})
		if err := q.run(body); err != nil {
			b.Fatal(err)
		}
		read, _ := json.Marshal(map[string]any{"sql": fmt.Sprintf("SELECT v FROM big WHERE size = %d", size)})
		b.Run(fmt.Sprintf("value=%dMB", size/1_000_000), func(b *testing.B) {
			for range b.N {
				q.burst(b, read, 18)
			}
		})
	}
}

// burst sends concurrent copies of a query at once and reports the memory they took.
func (q *queryBench) burst(b *testing.B, read []byte, concurrent int) {
	runtime.GC()
	baseHeap, baseRSS := heapInUse(), procStatus(b, "VmRSS")
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil { // resets VmHWM
		b.Fatal(err)
	}
	stop, peakHeap := sampleHeap()
	statuses := make(chan int, concurrent)
	var wg sync.WaitGroup
	for range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- q.status(read)
		}()
	}
	wg.Wait()
	close(statuses)
	heap := stop()
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	b.ReportMetric(float64(heap-baseHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(procStatus(b, "VmHWM")-baseRSS)/(1<<20), "peak-rss-MiB")
	b.Logf("before: heap %d MiB, RSS %d MiB; peak heap %d MiB; answers %v", baseHeap>>20, baseRSS>>20, *peakHeap>>20, counts)
}

// status posts one query and returns its status, reading (and dropping) the whole answer.
func (q *queryBench) status(body []byte) int {
	req, err := http.NewRequest("POST", q.base+"/databases/"+q.id+"/query", bytes.NewReader(body))
	if err != nil {
		q.b.Error(err)
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+q.token)
	resp, err := q.hc.Do(req)
	if err != nil {
		q.b.Error(err)
		return 0
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// heapInUse is the bytes of the Go heap in use now.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// sampleHeap samples the heap in use every 5 ms until the returned stop, which returns the peak.
func sampleHeap() (stop func() uint64, peak *uint64) {
	peak = new(uint64)
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			*peak = max(*peak, heapInUse())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(done); <-ended; return *peak }, peak
}

// procStatus reads a "kB" field of /proc/self/status, in bytes.
func procStatus(b *testing.B, field string) uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal(fmt.Errorf("no %s in /proc/self/status", field))
	return 0
}
