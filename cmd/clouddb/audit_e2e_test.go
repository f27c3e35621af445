package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"testing"

	"github.com/clouddbmanager/clouddb/eventstore"
)

// TestAuditPublicKey: members read the key that signs the chain heads (the one configured), and
// the heads the server signs verify with it.
func TestAuditPublicKey(t *testing.T) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	env := startE2E(t, e2eOptions{Env: map[string]string{"CLOUDDB_AUDIT_SIGNING_KEY": base64.StdEncoding.EncodeToString(key.Seed())}})
	admin := newTenantAdmin(env, "127.0.61.1", "Audited")
	env.client("127.0.61.2").do("GET", "/audit/public-key", nil).expect(t, 401, "unauthenticated")

	r := admin.c.do("GET", "/audit/public-key", nil).expect(t, 200, "")
	pub := key.Public().(ed25519.PublicKey)
	if r.str("key_id") != eventstore.KeyID(pub) || r.str("algorithm") != "Ed25519" ||
		r.str("public_key") != base64.StdEncoding.EncodeToString(pub) || r.str("public_key_pem") == "" {
		t.Fatalf("public key answer %s, want the configured key %x", r.body, pub)
	}
	if _, err := env.app.HeadSigner.Sign(context.Background()); err != nil {
		t.Fatal(err)
	}
	sigs, err := eventstore.ReadSignatures(context.Background(), env.app.DB, admin.tenantID, 1)
	if err != nil || len(sigs) == 0 {
		t.Fatalf("the tenant's chain head is not signed: %v, %v", sigs, err)
	}
	for _, sig := range sigs {
		if !sig.Verify(pub) {
			t.Errorf("signature of %s at %d does not verify with the served key", sig.ChainID, sig.ChainSeq)
		}
	}
}
