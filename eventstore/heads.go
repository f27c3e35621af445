package eventstore

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

// MarshalText writes a hash as 64 hexadecimal digits.
func (h Hash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

// UnmarshalText reads 64 hexadecimal digits.
func (h *Hash) UnmarshalText(text []byte) error {
	if hex.DecodedLen(len(text)) != len(h) {
		return fmt.Errorf("eventstore: a hash has %d hexadecimal digits, not %d", 2*len(h), len(text))
	}
	_, err := hex.Decode(h[:], text)
	return err
}

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// HeadSignature says, under the server's Ed25519 key, that a chain's event number ChainSeq had
// Hash: everything up to it is bound to the signature, since each hash covers its predecessor.
type HeadSignature struct {
	ChainID   string    `json:"chain_id"`
	ChainSeq  int64     `json:"chain_seq"`
	Hash      Hash      `json:"hash"`
	SignedAt  time.Time `json:"signed_at"`
	KeyID     string    `json:"key_id"`
	PublicKey []byte    `json:"public_key"` // base64 in JSON, as is the signature
	Signature []byte    `json:"signature"`
}

// headDomain opens the signed bytes of a head.
const headDomain = "clouddb.chain-head.v1"

// Message returns the bytes the signature covers, encoded as Link.Canonical encodes: each field a
// 4-byte big-endian length and its bytes, in this order: "clouddb.chain-head.v1", chain id, chain
// sequence (8 bytes), hash (32 bytes), signed_at (microseconds since the epoch, 8 bytes), key id.
func (h HeadSignature) Message() []byte {
	b := make([]byte, 0, 6*4+len(headDomain)+len(h.ChainID)+len(h.KeyID)+2*8+sha256.Size)
	for _, field := range [][]byte{[]byte(headDomain), []byte(h.ChainID), binary.BigEndian.AppendUint64(nil, uint64(h.ChainSeq)),
		h.Hash[:], binary.BigEndian.AppendUint64(nil, uint64(h.SignedAt.UnixMicro())), []byte(h.KeyID)} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(field)))
		b = append(b, field...)
	}
	return b
}

// Verify reports whether the signature is pub's over the head, and names pub.
func (h HeadSignature) Verify(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && h.KeyID == KeyID(pub) && ed25519.Verify(pub, h.Message(), h.Signature)
}

// KeyID names a public key: the first 16 hexadecimal digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// HeadSigner signs the heads of the chains with the server's key and keeps the signatures in
// chain_signatures (migrations/0017).
type HeadSigner struct {
	db    *sql.DB
	key   ed25519.PrivateKey
	keyID string
	now   func() time.Time
	log   *slog.Logger
}

// NewHeadSigner returns a signer with key. It panics on a nil database or a key of the wrong size.
func NewHeadSigner(db *sql.DB, key ed25519.PrivateKey, now func() time.Time, log *slog.Logger) *HeadSigner {
	if db == nil || len(key) != ed25519.PrivateKeySize || now == nil || log == nil {
		panic("eventstore: NewHeadSigner needs a database, an Ed25519 private key, a clock and a logger")
	}
	pub, _ := key.Public().(ed25519.PublicKey)
	return &HeadSigner{db: db, key: key, keyID: KeyID(pub), now: now, log: log}
}

// PublicKey is the key that verifies this signer's signatures, and its id.
func (s *HeadSigner) PublicKey() (string, ed25519.PublicKey) {
	pub, _ := s.key.Public().(ed25519.PublicKey)
	return s.keyID, pub
}

// Sign signs the head of each chain named (every chain when none is) that moved since its last
// signature, and returns the new signatures. Processes that sign the same head at once keep one
// signature.
func (s *HeadSigner) Sign(ctx context.Context, chains ...string) ([]HeadSignature, error) {
	heads, err := s.unsigned(ctx, chains)
	if err != nil || len(heads) == 0 {
		return nil, err
	}
	at := s.now().UTC().Truncate(time.Microsecond)
	_, pub := s.PublicKey()
	args := make([]any, 0, 7*len(heads))
	for i := range heads {
		h := &heads[i]
		h.SignedAt, h.KeyID, h.PublicKey = at, s.keyID, pub
		h.Signature = ed25519.Sign(s.key, h.Message())
		args = append(args, h.ChainID, h.ChainSeq, h.Hash[:], h.SignedAt, h.KeyID, []byte(h.PublicKey), h.Signature)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT IGNORE INTO chain_signatures (chain_id, chain_seq, hash, signed_at, key_id, public_key, signature)
		VALUES `+sqlparams.Rows(len(heads), 7), args...); err != nil {
		return nil, fmt.Errorf("eventstore: store signed chain heads: %w", err)
	}
	return heads, nil
}

// unsigned reads the heads of chains (all when none) that are past their last signature.
func (s *HeadSigner) unsigned(ctx context.Context, chains []string) ([]HeadSignature, error) {
	filter, args := "chain_id IS NOT NULL", []any{}
	if len(chains) > 0 {
		filter = "chain_id IN (" + sqlparams.List(len(chains)) + ")"
		for _, c := range chains {
			args = append(args, c)
		}
	}
	rows, err := s.db.QueryContext(ctx, `SELECT e.chain_id, e.chain_seq, e.hash
		FROM (SELECT chain_id, MAX(chain_seq) AS seq FROM events WHERE `+filter+` GROUP BY chain_id) head
		JOIN events e ON e.chain_id = head.chain_id AND e.chain_seq = head.seq
		LEFT JOIN (SELECT chain_id, MAX(chain_seq) AS seq FROM chain_signatures WHERE `+filter+` GROUP BY chain_id) signed
			ON signed.chain_id = head.chain_id
		WHERE signed.seq IS NULL OR signed.seq < head.seq`, append(args, args...)...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read chain heads: %w", err)
	}
	defer rows.Close()
	var heads []HeadSignature
	for rows.Next() {
		var h HeadSignature
		var hash []byte
		if err := rows.Scan(&h.ChainID, &h.ChainSeq, &hash); err != nil {
			return nil, fmt.Errorf("eventstore: read chain heads: %w", err)
		}
		copy(h.Hash[:], hash)
		heads = append(heads, h)
	}
	return heads, rows.Err()
}

// Run signs the heads that moved every interval until ctx ends.
func (s *HeadSigner) Run(ctx context.Context, every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		if signed, err := s.Sign(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("could not sign the chain heads", "err", err)
		} else if len(signed) > 0 {
			s.log.Debug("chain heads signed", "chains", len(signed))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// ReadSignatures returns the signatures of chain's heads from seq on, in chain order.
func ReadSignatures(ctx context.Context, db *sql.DB, chain string, seq int64) ([]HeadSignature, error) {
	return readSignatures(ctx, db, `WHERE chain_id = ? AND chain_seq >= ? ORDER BY chain_seq`, chain, seq)
}

// ReadAllSignatures returns every signature, by chain and in chain order.
func ReadAllSignatures(ctx context.Context, db *sql.DB) ([]HeadSignature, error) {
	return readSignatures(ctx, db, `ORDER BY chain_id, chain_seq`)
}

func readSignatures(ctx context.Context, db *sql.DB, where string, args ...any) ([]HeadSignature, error) {
	rows, err := db.QueryContext(ctx, `SELECT chain_id, chain_seq, hash, signed_at, key_id, public_key, signature
		FROM chain_signatures `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read signed chain heads: %w", err)
	}
	defer rows.Close()
	var sigs []HeadSignature
	for rows.Next() {
		var h HeadSignature
		var hash []byte
		if err := rows.Scan(&h.ChainID, &h.ChainSeq, &hash, &h.SignedAt, &h.KeyID, &h.PublicKey, &h.Signature); err != nil {
			return nil, fmt.Errorf("eventstore: read signed chain heads: %w", err)
		}
		copy(h.Hash[:], hash)
		h.SignedAt = h.SignedAt.UTC()
		sigs = append(sigs, h)
	}
	return sigs, rows.Err()
}
