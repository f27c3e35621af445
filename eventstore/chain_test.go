package eventstore_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/eventstore"
)

// TestLinkHashIsPinned pins the canonical bytes of a link: a hash recorded once must verify in
// every later build, so any change to the encoding is a new chain version, not an edit. The
// expected hash was computed by a separate implementation of the documented encoding (Python's
// struct and hashlib), not by this code.
func TestLinkHashIsPinned(t *testing.T) {
	l := eventstore.Link{
		ChainID: "3f0c7a52-3d0b-4a4e-9a53-1b2f5c7d9e01", ChainSeq: 7, EventID: "0b7a3c1e-4f2d-4e6a-8b9c-5d1e2f3a4b5c",
		StreamID: "database-1", StreamType: "database", StreamVersion: 2, EventType: "database.stopped.v1",
		PayloadSHA256: sha256.Sum256([]byte(`{"reason":"manual"}`)), MetadataSHA256: sha256.Sum256([]byte(`{}`)),
		RecordedAt: time.Date(2026, 12, 7, 10, 0, 0, 123456000, time.UTC), PrevHash: sha256.Sum256([]byte("prev")),
	}
	canonical := l.Canonical()
	if got := hex.EncodeToString(canonical[:30]); got != "00000016636c6f756464622e6576656e742d636861696e2e763100000024" {
		t.Errorf("canonical bytes open with %s", got)
	}
	hash := l.Hash()
	if got, want := hex.EncodeToString(hash[:]), "1e548d62db9fddef9f7f22457ea101562f24292727f3b523b77d9af80c9ee4c1"; got != want {
		t.Errorf("hash = %s, want %s", got, want)
	}
	// Every field counts.
	changed := l
	changed.StreamVersion++
	if changed.Hash() == hash {
		t.Error("the stream version is not hashed")
	}
	changed = l
	changed.RecordedAt = changed.RecordedAt.Add(time.Microsecond)
	if changed.Hash() == hash {
		t.Error("recorded_at is not hashed to the microsecond")
	}
}

// TestChainsUnderConcurrentAppends appends from two stores (two processes) and many goroutines to
// three chains at once: every chain is gapless, in log order, and each link holds.
func TestChainsUnderConcurrentAppends(t *testing.T) {
	s1, db := newStore(t, eventstore.Options{})
	s2 := openStore(t, db, eventstore.Options{})
	ctx := context.Background()
	tenants := []string{"", "tenant-a", "tenant-b"} // "" records in the platform chain
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store := []*eventstore.Store{s1, s2}[g%2]
			for i := range 10 {
				_, err := store.Append(ctx, eventstore.Append{
					Streams:  []eventstore.Stream{{ID: fmt.Sprintf("cart-%d-%d", g, i), Type: "cart", Events: items(1 + i%3)}},
					Metadata: eventstore.Metadata{TenantID: tenants[(g+i)%3], ActorID: "user-1"},
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	counts := assertChains(t, db)
	if len(counts) != 3 || counts[eventstore.PlatformChain] == 0 || counts["tenant-a"] == 0 || counts["tenant-b"] == 0 {
		t.Errorf("chains %v, want the platform's and two tenants'", counts)
	}
	envs, err := s1.ReadAll(ctx, 0, 1)
	if err != nil || envs[0].ChainID == "" || envs[0].ChainSeq != 1 {
		t.Errorf("the first event reads back as %+v, %v; want its chain and sequence 1", envs, err)
	}
}

// TestChainBackfill: events recorded before the chains (their link columns NULL) are chained by
// ChainBackfill exactly as an append would have chained them, and a writer that meets events
// appended unchained by an older process chains them before its own.
func TestChainBackfill(t *testing.T) {
	s, db := newStore(t, eventstore.Options{})
	for i := range 25 {
		mustAppend(t, s, eventstore.Append{Streams: []eventstore.Stream{{ID: fmt.Sprintf("cart-%d", i), Type: "cart", Events: items(2)}},
			Metadata: eventstore.Metadata{TenantID: []string{"", "tenant-a"}[i%2]}})
	}
	recorded := chainHashes(t, db)
	unchain := func(from int) {
		t.Helper()
		if _, err := db.Exec(`UPDATE events SET chain_id = NULL, chain_seq = NULL, hash = NULL WHERE position >= ?`, from); err != nil {
			t.Fatal(err)
		}
	}

	unchain(1)
	if err := eventstore.ChainBackfill(context.Background(), db, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if got := chainHashes(t, db); fmt.Sprint(got) != fmt.Sprint(recorded) {
		t.Errorf("the backfill chained\n%v\nwhere the appends had chained\n%v", got, recorded)
	}

	// An older process appended the last ten events without links; a store that did not append them
	// (a fresh one) chains them, then its own append.
	unchain(41)
	fresh := openStore(t, db, eventstore.Options{})
	mustAppend(t, fresh, one("cart-late", 0, items(1)...))
	got := chainHashes(t, db)
	if fmt.Sprint(got[:50]) != fmt.Sprint(recorded) {
		t.Errorf("the catch-up chained\n%v\nwhere the appends had chained\n%v", got[:50], recorded)
	}
	assertChains(t, db)
}

// chainHashes lists every event's hash, in log order.
func chainHashes(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT HEX(hash) FROM events ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var hashes []string
	for rows.Next() {
		var h sql.NullString
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h.String)
	}
	return hashes
}

// assertChains recomputes every link of every chain from the stored events and returns how many
// events each chain holds.
func assertChains(t *testing.T, db *sql.DB) map[string]int64 {
	t.Helper()
	rows, err := db.Query(`SELECT position, event_id, stream_id, stream_type, stream_version, event_type, payload, metadata,
		recorded_at, chain_id, chain_seq, hash FROM events ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	heads := map[string]eventstore.Hash{}
	counts := map[string]int64{}
	for rows.Next() {
		var l eventstore.Link
		var position int64
		var payload, metadata, hash []byte
		if err := rows.Scan(&position, &l.EventID, &l.StreamID, &l.StreamType, &l.StreamVersion, &l.EventType, &payload, &metadata,
			&l.RecordedAt, &l.ChainID, &l.ChainSeq, &hash); err != nil {
			t.Fatal(err)
		}
		var md eventstore.Metadata
		if err := json.Unmarshal(metadata, &md); err != nil {
			t.Fatal(err)
		}
		if l.ChainID != eventstore.ChainOf(md) {
			t.Errorf("position %d is in chain %s, its tenant is %q", position, l.ChainID, md.TenantID)
		}
		counts[l.ChainID]++
		if l.ChainSeq != counts[l.ChainID] {
			t.Fatalf("position %d is number %d of chain %s, want %d", position, l.ChainSeq, l.ChainID, counts[l.ChainID])
		}
		l.PrevHash = heads[l.ChainID]
		l.PayloadSHA256, l.MetadataSHA256 = sha256.Sum256(payload), sha256.Sum256(metadata)
		if got := l.Hash(); hex.EncodeToString(got[:]) != hex.EncodeToString(hash) {
			t.Fatalf("position %d: stored hash %x, recomputed %x", position, hash, got)
		}
		heads[l.ChainID] = l.Hash()
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}
