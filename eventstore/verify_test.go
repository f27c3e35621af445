package eventstore_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/eventstore"
)

// chainedLog appends 12 events to tenant-a's chain and 3 to the platform's, signs both heads after
// the first 10 of tenant-a and again at the end, and returns the database and the key.
func chainedLog(t *testing.T) (*sql.DB, *eventstore.HeadSigner) {
	t.Helper()
	s, db := newStore(t, eventstore.Options{})
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer := eventstore.NewHeadSigner(db, key, time.Now, slog.New(slog.DiscardHandler))
	tenantA := eventstore.Metadata{TenantID: "tenant-a", ActorID: "user-1", IP: "203.0.113.9"}
	for i := range 5 {
		mustAppend(t, s, eventstore.Append{Streams: []eventstore.Stream{{ID: fmt.Sprintf("cart-%d", i), Type: "cart", Events: items(2)}}, Metadata: tenantA})
	}
	mustAppend(t, s, one("cart-platform", 0, items(3)...))
	if _, err := signer.Sign(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, eventstore.Append{Streams: []eventstore.Stream{{ID: "cart-9", Type: "cart",
		Events: append(items(1), blob{Data: map[string]string{"password_hash": "$2a$04$abc"}})}}, Metadata: tenantA})
	if _, err := signer.Sign(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, signer
}

// export writes tenant-a's chain from first to its head, as the audit export does.
func export(t *testing.T, db *sql.DB, signer *eventstore.HeadSigner, asJSON bool, first int64) []byte {
	t.Helper()
	ctx := context.Background()
	keyID, pub := signer.PublicKey()
	var buf bytes.Buffer
	w, err := eventstore.NewExportWriter(&buf, asJSON, eventstore.ExportHeader{ExportedAt: time.Now(), TenantID: "tenant-a",
		PublicKeys: []eventstore.ExportKey{{KeyID: keyID, Algorithm: "Ed25519", PublicKey: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := eventstore.ReadSignatures(ctx, db, "tenant-a", first)
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range sigs {
		if err := w.SignedHead(sig); err != nil {
			t.Fatal(err)
		}
	}
	err = eventstore.ReadChain(ctx, db, "tenant-a", first, 12, func(r eventstore.ChainRecord) error {
		audit := []byte(fmt.Sprintf(`{"id":%q,"action":"cart.item_added"}`, r.EventID))
		return w.Event(r, eventstore.Withheld(r.Data), audit)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestVerifyFile(t *testing.T) {
	db, signer := chainedLog(t)
	_, pub := signer.PublicKey()
	for _, asJSON := range []bool{false, true} {
		file := export(t, db, signer, asJSON, 1)
		s, err := eventstore.VerifyFile(bytes.NewReader(file), []ed25519.PublicKey{pub})
		if err != nil {
			t.Fatalf("json=%v: an intact export fails: %v", asJSON, err)
		}
		if s.Records != 12 || s.AuditEntries != 12 || s.Signatures != 2 || s.SignaturesMatched != 2 || len(s.Chains) != 1 || s.Chains[0].Last != 12 {
			t.Errorf("json=%v: verified %+v", asJSON, s)
		}
	}
	// A period that starts mid-chain verifies from its first entry on.
	if s, err := eventstore.VerifyFile(bytes.NewReader(export(t, db, signer, false, 7)), []ed25519.PublicKey{pub}); err != nil || s.Records != 6 {
		t.Errorf("an export from entry 7: %+v, %v", s, err)
	}
	file := export(t, db, signer, false, 1)
	if !bytes.Contains(file, []byte(`"data_withheld":"holds password or token hashes"`)) || bytes.Contains(file, []byte("$2a$04$abc")) {
		t.Error("the password hash is in the export")
	}
	// The keys the header states are used when none is given; another key is not trusted.
	if _, err := eventstore.VerifyFile(bytes.NewReader(file), nil); err != nil {
		t.Errorf("with the header's keys: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := eventstore.VerifyFile(bytes.NewReader(file), []ed25519.PublicKey{other}); !strings.Contains(fmt.Sprint(err), "not trusted") {
		t.Errorf("with another key: %v", err)
	}
}

// TestVerifyFileNamesTheFirstBrokenLink: one byte changed, one entry removed, two entries swapped,
// the last entry removed, a signature changed: each is reported at the entry (chain sequence,
// event id, line) where the chain breaks.
func TestVerifyFileNamesTheFirstBrokenLink(t *testing.T) {
	db, signer := chainedLog(t)
	_, pub := signer.PublicKey()
	lines := strings.Split(strings.TrimSuffix(string(export(t, db, signer, false, 1)), "\n"), "\n")
	// Line 1 is the header, 2 and 3 the signed heads, then entries 1 to 12 on lines 4 to 15.
	entryLine := func(seq int) int { return seq + 2 }
	eventID := func(seq int) string {
		i := strings.Index(lines[entryLine(seq)], `"event_id":"`) + len(`"event_id":"`)
		return lines[entryLine(seq)][i : i+36]
	}
	edit := func(change func(l []string) []string) []byte {
		return []byte(strings.Join(change(append([]string{}, lines...)), "\n") + "\n")
	}
	for name, tc := range map[string]struct {
		file    []byte
		seq     int64
		line    int
		problem string
	}{
		"one byte of data changed": {edit(func(l []string) []string {
			l[entryLine(5)] = strings.Replace(l[entryLine(5)], `"qty":0`, `"qty":9`, 1)
			return l
		}), 5, entryLine(5) + 1, "data does not match"},
		"one byte of a stream id changed": {edit(func(l []string) []string {
			l[entryLine(3)] = strings.Replace(l[entryLine(3)], `"stream_id":"cart-1"`, `"stream_id":"cart-7"`, 1)
			return l
		}), 3, entryLine(3) + 1, "recorded hash"},
		"one entry removed": {edit(func(l []string) []string {
			return append(l[:entryLine(5)], l[entryLine(5)+1:]...)
		}), 6, entryLine(5) + 1, "entry 5 is missing"},
		"two entries swapped": {edit(func(l []string) []string {
			l[entryLine(5)], l[entryLine(6)] = l[entryLine(6)], l[entryLine(5)]
			return l
		}), 6, entryLine(5) + 1, "entry 5 is missing"},
		"the last entry removed": {edit(func(l []string) []string { return l[:len(l)-1] }), 12, 0, "removed from the end"},
		"a signed head changed": {edit(func(l []string) []string {
			l[1] = strings.Replace(l[1], `"chain_seq":10`, `"chain_seq":9`, 1)
			return l
		}), 9, 2, "does not verify"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := eventstore.VerifyFile(bytes.NewReader(tc.file), []ed25519.PublicKey{pub})
			var broken *eventstore.BrokenLink
			if !errors.As(err, &broken) {
				t.Fatalf("verified: %v", err)
			}
			where := ""
			if tc.line > 0 {
				where = fmt.Sprintf("line %d", tc.line)
			}
			if broken.ChainID != "tenant-a" || broken.ChainSeq != tc.seq || broken.Where != where || !strings.Contains(broken.Problem, tc.problem) {
				t.Errorf("reported %q; want entry %d at %q: %s", err, tc.seq, where, tc.problem)
			}
			if tc.line > entryLine(0) && broken.EventID != eventID(int(tc.seq)) {
				t.Errorf("reported event %s, want entry %d's, %s", broken.EventID, tc.seq, eventID(int(tc.seq)))
			}
		})
	}
}

// TestVerifyLive reads the whole log: intact it verifies; a payload rewritten in place or an event
// deleted is reported at its position.
func TestVerifyLive(t *testing.T) {
	db, signer := chainedLog(t)
	_, pub := signer.PublicKey()
	ctx := context.Background()
	s, err := eventstore.VerifyLive(ctx, db, []ed25519.PublicKey{pub}, nil)
	if err != nil || s.Records != 15 || s.SignaturesMatched != 3 || len(s.Chains) != 2 {
		t.Fatalf("intact log: %+v, %v", s, err)
	}
	var payload []byte
	if err := db.QueryRow(`SELECT payload FROM events WHERE position = 4`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE events SET payload = JSON_SET(payload, '$.qty', 7) WHERE position = 4`); err != nil {
		t.Fatal(err)
	}
	var broken *eventstore.BrokenLink
	if _, err := eventstore.VerifyLive(ctx, db, []ed25519.PublicKey{pub}, nil); !errors.As(err, &broken) || broken.Position != 4 || !strings.Contains(broken.Problem, "recorded hash") {
		t.Fatalf("a rewritten payload: %v", err)
	}
	if _, err := db.Exec(`UPDATE events SET payload = ? WHERE position = 4`, payload); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM events WHERE position = 8`); err != nil {
		t.Fatal(err)
	}
	if _, err := eventstore.VerifyLive(ctx, db, []ed25519.PublicKey{pub}, nil); !errors.As(err, &broken) || broken.Position != 9 || !strings.Contains(broken.Problem, "skips from position 7 to 9") {
		t.Fatalf("a deleted event: %v", err)
	}
}
