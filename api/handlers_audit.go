package api

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"

	"github.com/clouddbmanager/clouddb/eventstore"
)

// AuditRoutes is what the routes of the audit trail need.
type AuditRoutes struct {
	// Signer signs the heads of the event log's hash chains; its public key is served.
	Signer *eventstore.HeadSigner
}

// audit serves the audit trail's routes.
type audit struct {
	s *Server
	AuditRoutes
}

// MountAudit adds the routes of the audit trail.
func (s *Server) MountAudit(routes AuditRoutes) {
	a := audit{s: s, AuditRoutes: routes}
	s.mount([]route{
		{"GET", "/audit/public-key", member, a.handlePublicKey},
	})
}

// handlePublicKey answers the key that verifies the signed chain heads, raw (base64) and as a PEM
// block (PKIX), which OpenSSL reads.
func (a audit) handlePublicKey(w http.ResponseWriter, r *http.Request) {
	id, pub := a.Signer.PublicKey()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		a.s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"key_id": id, "algorithm": "Ed25519",
		"public_key": base64.StdEncoding.EncodeToString(pub), "public_key_pem": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
}
