package main

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// BenchmarkErasure measures DELETE /admin/users/{id}/personal-data's work
// (commands.Erasure.ErasePersonalData) on a log of CLOUDDB_AUDIT_BENCH_ENTRIES events (default
// 20,000; generated as in BenchmarkAuditTrail, kept in CLOUDDB_AUDIT_BENCH_DSN): each iteration
// records a person (a sign-up and 100 executed queries of theirs, sealed for them) and times the
// erasure of that person, the read models caught up first (erase_ms: the mean).
//
//	CLOUDDB_AUDIT_BENCH_DSN='root@tcp(127.0.0.1:3306)/clouddb_erasebench' CLOUDDB_AUDIT_BENCH_ENTRIES=200000 \
//	  go test -run '^$' -bench BenchmarkErasure -benchtime 3x -timeout 30m ./cmd/clouddb/
func BenchmarkErasure(b *testing.B) {
	entries := auditBenchEntries(b)
	ab := startAuditBench(b)
	ctx := context.Background()
	if have := ab.entries(); have < entries {
		ab.generate(entries - have)
	}
	head, err := ab.app.Store.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("the log holds %d events", head)
	var took time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		person := ab.person()
		head, _ := ab.app.Store.LocalHead()
		if err := ab.app.Projections.WaitFor(ctx, head); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		began := time.Now()
		if _, err := ab.app.Erasure.ErasePersonalData(ctx, domain.UserID(ab.actor), person, eventstore.Metadata{ActorID: ab.actor}); err != nil {
			b.Fatal(err)
		}
		took += time.Since(began)
	}
	b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "erase_ms")
}

// person records a verified account in the benchmark's tenant's log and 100 executed queries of
// theirs, and returns its id.
func (ab *auditBench) person() domain.UserID {
	ctx := context.Background()
	user := domain.UserID(uuid.NewString())
	email := "erasable-" + string(user) + "@example.com"
	md := eventstore.Metadata{ActorID: string(user), TenantID: ab.tenant, IP: "198.51.100.9", UserAgent: "Erasable/1.0"}
	if _, err := ab.app.Store.Append(ctx, eventstore.Append{Metadata: md,
		Streams: []eventstore.Stream{{ID: user.Stream(), Type: "user", Events: []domain.Event{
			domain.UserRegistered{UserID: user, Email: email, Name: "Erin " + string(user), PasswordHash: "x", Verified: true}}}},
		Claims: []eventstore.Claim{{Key: domain.EmailClaim(email), StreamID: user.Stream()}}}); err != nil {
		ab.b.Fatal(err)
	}
	var streams []eventstore.Stream
	for range 100 {
		id := uuid.NewString()
		streams = append(streams, eventstore.Stream{ID: "query-" + id, Type: "query", ExpectedVersion: eventstore.AnyVersion,
			Events: []domain.Event{domain.QueryExecuted{QueryID: id, TenantID: domain.TenantID(ab.tenant), UserID: user,
				DatabaseID: domain.DatabaseID(uuid.NewString()), SQL: "SELECT 1", Fingerprint: "select ?", StatementType: "read",
				Status: domain.QuerySucceeded, RowCount: 1, At: time.Now().UTC()}}})
	}
	if _, err := ab.app.Store.Append(ctx, eventstore.Append{Metadata: md, Streams: streams}); err != nil {
		ab.b.Fatal(err)
	}
	return user
}
