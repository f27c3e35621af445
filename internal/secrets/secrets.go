// Package secrets keeps secrets (database account passwords, ...) out of the event log: they are
// sealed with AES-256-GCM and stored in the secrets table of the management database, keyed by an
// id that events may carry. Erasing an id deletes its ciphertext, so whatever the log says about it
// can no longer be turned back into the secret, without rewriting the log (crypto-shredding).
//
// Sealed form: a random 12-byte nonce, then the GCM ciphertext and its 16-byte tag. The secret's id
// is the additional authenticated data, so a ciphertext moved to another id fails to open.
//
// What erasure does not reach: copies of the row in backups and binary logs stay readable for as
// long as the key that sealed them exists. Rotating the key (re-sealing every row) and expiring
// old backups close that gap.
package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

const (
	// KeySize is the size of a key in bytes (AES-256).
	KeySize = 32
	// NonceSize is the size of the random nonce that prefixes every sealed value.
	NonceSize = 12
	// Overhead is what sealing adds to a plaintext: the nonce and the GCM tag.
	Overhead = NonceSize + 16
	// MaxIDSize is the longest id the secrets table holds, in bytes.
	MaxIDSize = 255
	// MaxPlaintextSize is the largest secret a Vault stores: a sealed value must fit the BLOB column.
	MaxPlaintextSize = 65535 - Overhead
)

var (
	// ErrNotFound is returned by Vault.Get for an id that was never stored or has been erased.
	// It wraps domain.ErrNotFound.
	ErrNotFound = fmt.Errorf("secret %w", domain.ErrNotFound)
	// ErrInvalidKey is returned for a key that is not KeySize bytes long.
	ErrInvalidKey = errors.New("key must be 32 bytes")
	// ErrDecrypt is returned when a sealed value does not open: wrong key, tampered or truncated
	// data, or a ciphertext stored under another id.
	ErrDecrypt = errors.New("message authentication failed")
)

// Seal encrypts plaintext with key (KeySize bytes) under a fresh random nonce and returns
// nonce || ciphertext || tag. aad is authenticated but not encrypted: Open must be given the same.
// Returns ErrInvalidKey for a key of the wrong size.
func Seal(key, plaintext, aad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return seal(aead, plaintext, aad)
}

// Open decrypts what Seal returned for the same key and aad. Returns ErrInvalidKey for a key of
// the wrong size and ErrDecrypt when sealed is not authentic (wrong key, aad or tampered data).
func Open(key, sealed, aad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return open(aead, sealed, aad)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets: %d-byte key: %w", len(key), ErrInvalidKey)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return aead, nil
}

func seal(aead cipher.AEAD, plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, NonceSize, NonceSize+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	return aead.Seal(out, out[:NonceSize], plaintext, aad), nil
}

func open(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < NonceSize+aead.Overhead() {
		return nil, fmt.Errorf("secrets: %d-byte sealed value is too short: %w", len(sealed), ErrDecrypt)
	}
	plaintext, err := aead.Open(nil, sealed[:NonceSize], sealed[NonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", ErrDecrypt)
	}
	return plaintext, nil
}

// Vault stores secrets sealed with one key in the secrets table (migrations/0002_secrets.sql),
// each row naming the key that sealed it (0026); during a rotation it also opens what the previous
// key sealed (SetPrevious, keys.go). It is safe for concurrent use.
type Vault struct {
	db       *sql.DB
	current  vaultKey
	previous *vaultKey
	now      func() time.Time
}

// NewVault returns a Vault on db that seals with key (KeySize bytes, e.g. CLOUDDB_SECRET_KEY
// decoded). Returns ErrInvalidKey for a key of the wrong size; panics if db is nil. CheckKey
// tells, before use, whether the stored secrets were sealed with it.
func NewVault(db *sql.DB, key []byte) (*Vault, error) {
	if db == nil {
		panic("secrets: NewVault with a nil db")
	}
	k, err := newVaultKey(key) // aes.NewCipher copies the key: the caller may wipe its slice
	if err != nil {
		return nil, err
	}
	return &Vault{db: db, current: k, now: time.Now}, nil
}

// Put seals plaintext under id and stores it, replacing any secret already stored under id. Every
// write draws a new nonce. Returns an error for an empty id, an id longer than MaxIDSize bytes or a
// plaintext longer than MaxPlaintextSize bytes.
func (v *Vault) Put(ctx context.Context, id string, plaintext []byte) error {
	if err := checkID(id); err != nil {
		return err
	}
	if len(plaintext) > MaxPlaintextSize {
		return fmt.Errorf("secrets: secret %q is %d bytes, more than %d", id, len(plaintext), MaxPlaintextSize)
	}
	sealed, err := seal(v.current.aead, plaintext, []byte(id))
	if err != nil {
		return err
	}
	now := v.now().UTC()
	if _, err := v.db.ExecContext(ctx, `INSERT INTO secrets (id, ciphertext, key_id, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE ciphertext = VALUES(ciphertext), key_id = VALUES(key_id), updated_at = VALUES(updated_at)`,
		[]byte(id), sealed, v.current.id, now, now); err != nil {
		return fmt.Errorf("secrets: put %q: %w", id, err)
	}
	return nil
}

// Create stores plaintext under id unless a secret is stored there already, and returns the secret
// stored under id afterwards: plaintext, or what another writer stored first (several processes may
// create the same secret at once; one wins). Errors are those of Put and Get.
func (v *Vault) Create(ctx context.Context, id string, plaintext []byte) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	sealed, err := seal(v.current.aead, plaintext, []byte(id))
	if err != nil {
		return nil, err
	}
	now := v.now().UTC()
	if _, err := v.db.ExecContext(ctx, `INSERT IGNORE INTO secrets (id, ciphertext, key_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		[]byte(id), sealed, v.current.id, now, now); err != nil {
		return nil, fmt.Errorf("secrets: create %q: %w", id, err)
	}
	return v.Get(ctx, id)
}

// Get returns the secret stored under id. Returns ErrNotFound if there is none (never stored, or
// erased) and ErrDecrypt if the stored value does not open with this Vault's key under this id.
func (v *Vault) Get(ctx context.Context, id string) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var (
		sealed []byte
		keyID  string
	)
	err := v.db.QueryRowContext(ctx, `SELECT ciphertext, key_id FROM secrets WHERE id = ?`, []byte(id)).Scan(&sealed, &keyID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("secrets: %q: %w", id, ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("secrets: get %q: %w", id, err)
	}
	plaintext, _, err := v.open(id, keyID, sealed)
	if err != nil {
		return nil, fmt.Errorf("%w (id %q)", err, id)
	}
	return plaintext, nil
}

// Erase deletes the secret stored under id, so that it can never be read again (crypto-shredding:
// events that name id keep only a dangling reference). Erasing an absent id is not an error.
func (v *Vault) Erase(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if _, err := v.db.ExecContext(ctx, `DELETE FROM secrets WHERE id = ?`, []byte(id)); err != nil {
		return fmt.Errorf("secrets: erase %q: %w", id, err)
	}
	return nil
}

func checkID(id string) error {
	if id == "" || len(id) > MaxIDSize {
		return fmt.Errorf("secrets: id must be 1 to %d bytes, got %d", MaxIDSize, len(id))
	}
	return nil
}
