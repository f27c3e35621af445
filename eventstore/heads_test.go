package eventstore_test

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/eventstore"
)

// TestHeadSigning: the signer signs each chain's head once it moved, the signatures verify with
// the public key and nothing else, and are read back as stored.
func TestHeadSigning(t *testing.T) {
	s, db := newStore(t, eventstore.Options{})
	ctx := context.Background()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	signer := eventstore.NewHeadSigner(db, key, func() time.Time { return at }, slog.New(slog.DiscardHandler))
	keyID, pub := signer.PublicKey()

	if sigs, err := signer.Sign(ctx); err != nil || len(sigs) != 0 {
		t.Fatalf("signing an empty log: %v, %v", sigs, err)
	}
	mustAppend(t, s, eventstore.Append{Streams: []eventstore.Stream{{ID: "cart-1", Type: "cart", Events: items(3)}}, Metadata: eventstore.Metadata{TenantID: "tenant-a"}})
	mustAppend(t, s, one("cart-2", 0, items(2)...))
	sigs, err := signer.Sign(ctx)
	if err != nil || len(sigs) != 2 {
		t.Fatalf("signed %v, %v; want the heads of two chains", sigs, err)
	}
	for _, sig := range sigs {
		if !sig.Verify(pub) || sig.KeyID != keyID || !sig.SignedAt.Equal(at) {
			t.Errorf("signature %+v does not verify with key %s", sig, keyID)
		}
		if want := map[string]int64{"tenant-a": 3, eventstore.PlatformChain: 2}[sig.ChainID]; sig.ChainSeq != want {
			t.Errorf("signed %s at %d, its head is %d", sig.ChainID, sig.ChainSeq, want)
		}
		forged := sig
		forged.ChainSeq--
		if forged.Verify(pub) {
			t.Error("a signature verifies for another head")
		}
		otherPub, _, _ := ed25519.GenerateKey(nil)
		if sig.Verify(otherPub) {
			t.Error("a signature verifies with another key")
		}
	}
	if again, err := signer.Sign(ctx); err != nil || len(again) != 0 {
		t.Fatalf("signed %v, %v again though no chain moved", again, err)
	}
	mustAppend(t, s, one("cart-2", 2, items(1)...))
	if moved, err := signer.Sign(ctx, "tenant-a", eventstore.PlatformChain); err != nil || len(moved) != 1 || moved[0].ChainSeq != 3 {
		t.Fatalf("signed %v, %v; want the platform chain at 3", moved, err)
	}
	stored, err := eventstore.ReadSignatures(ctx, db, eventstore.PlatformChain, 3)
	if err != nil || len(stored) != 1 || !stored[0].Verify(pub) {
		t.Fatalf("read back %+v, %v", stored, err)
	}
	if all, err := eventstore.ReadAllSignatures(ctx, db); err != nil || len(all) != 3 {
		t.Fatalf("%d signatures stored (%v), want 3", len(all), err)
	}
}
