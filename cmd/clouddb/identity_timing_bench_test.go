package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkUnknownVersusKnownEmail measures what the time of an answer tells about an address
// (issue 10 item 16): 200 logins with a wrong password for existing accounts against 200 for
// addresses without one, and 200 password-reset requests of each, interleaved, through the handler
// chain of a served App at bcrypt cost 4 (the cheapest: what differs then is the store's work, not
// bcrypt), in a new random order each round. Each request has an account and a client address of its own, so no rate limit or lock
// is involved. It runs the 4×200 requests once whatever b.N; docs/SECURITY.md ("Identity") has the
// command and the numbers.
func BenchmarkUnknownVersusKnownEmail(b *testing.B) {
	const n = 200
	a := startAuthBenchApp(b, 4)
	known := a.createAccounts(b, n)
	var addr int64
	request := func(path string, body map[string]string) (int, time.Duration) {
		addr++
		data, _ := json.Marshal(body)
		req := httptest.NewRequest(http.MethodPost, "/api/v1"+path, bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = authClientAddr(addr)
		rec := httptest.NewRecorder()
		start := time.Now()
		a.handler.ServeHTTP(rec, req)
		return rec.Code, time.Since(start)
	}
	type series struct {
		name, path string
		want       int
		body       func(email string) map[string]string
		known      bool
		took       []time.Duration
	}
	wrongPassword := func(email string) map[string]string {
		return map[string]string{"email": email, "password": "Wrong-Guess-1!"}
	}
	justEmail := func(email string) map[string]string { return map[string]string{"email": email} }
	all := []*series{
		{name: "login_known_wrong_password", path: "/auth/login", want: 401, body: wrongPassword, known: true},
		{name: "login_unknown_email", path: "/auth/login", want: 401, body: wrongPassword},
		{name: "forgot_known", path: "/auth/password/forgot", want: 202, body: justEmail, known: true},
		{name: "forgot_unknown", path: "/auth/password/forgot", want: 202, body: justEmail},
	}
	b.ResetTimer()
	for i := 0; i < n; i++ {
		// A new order each round: background work (the mail reactor, work a reset request left
		// running) slows whichever request it meets, not always the same series.
		order := slices.Clone(all)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, s := range order {
			email := "nobody-" + uuid.NewString() + "@example.com"
			if s.known {
				email = known[i]
			}
			status, took := request(s.path, s.body(email))
			if status != s.want {
				b.Fatalf("%s %d: status %d, want %d", s.name, i, status, s.want)
			}
			s.took = append(s.took, took)
		}
	}
	b.StopTimer()
	for _, s := range all {
		slices.Sort(s.took)
		median, p95 := s.took[len(s.took)/2], s.took[len(s.took)*95/100]
		b.ReportMetric(float64(median)/float64(time.Millisecond), s.name+"_p50_ms")
		b.ReportMetric(float64(p95)/float64(time.Millisecond), s.name+"_p95_ms")
		fmt.Printf("%-28s median %6.2f ms  p95 %6.2f ms\n", s.name, float64(median)/1e6, float64(p95)/1e6)
	}
}
