package secrets

// The vault's key: which key sealed the stored secrets (a fingerprint in vault_key, a key id on
// every row), the check at start, and the rotation to a new key.

import (
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// vaultKey is one key of a Vault: its id and its cipher.
type vaultKey struct {
	id, fingerprint string
	aead            cipher.AEAD
}

func newVaultKey(key []byte) (vaultKey, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return vaultKey{}, err
	}
	fp := Fingerprint(key)
	return vaultKey{id: fp[:16], fingerprint: fp, aead: aead}, nil
}

// Fingerprint names key without revealing it: the hex HMAC-SHA256 of a fixed text under the key.
// Its first 16 digits are the key id that every sealed row carries.
func Fingerprint(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("clouddb secrets vault key v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// SetPrevious gives the vault the key being rotated out (CLOUDDB_SECRET_KEY_PREVIOUS): it opens
// what that key sealed until Reseal has sealed it anew. Call it before the vault is used.
func (v *Vault) SetPrevious(key []byte) error {
	k, err := newVaultKey(key)
	if err != nil {
		return fmt.Errorf("previous key: %w", err)
	}
	v.previous = &k
	return nil
}

// open opens a row sealed under id by the key keyID names: the current or the previous key; a row
// from before key ids ("") by whichever of them opens it. It returns the plaintext and whether
// the current key opened it.
func (v *Vault) open(id, keyID string, sealed []byte) ([]byte, bool, error) {
	keys := []*vaultKey{&v.current, v.previous}
	for i, k := range keys {
		if k == nil || (keyID != "" && keyID != k.id) {
			continue
		}
		plaintext, err := open(k.aead, sealed, []byte(id))
		if err == nil || keyID != "" {
			return plaintext, i == 0, err
		}
	}
	if keyID == "" {
		return nil, false, fmt.Errorf("secrets: %w", ErrDecrypt)
	}
	return nil, false, fmt.Errorf("secrets: sealed with key %s, which this process does not have: %w", keyID, ErrDecrypt)
}

// KeyMismatchError: the stored secrets were sealed with another key than the one given, and the
// process must not start (every secret it read would fail, database passwords first).
type KeyMismatchError struct {
	Recorded string // the id of the key that sealed them; "" when not recorded (a vault from before 0025)
	Given    string // the id of the key given
}

func (e *KeyMismatchError) Error() string {
	sealedWith := "another key"
	if e.Recorded != "" {
		sealedWith = "key " + e.Recorded
	}
	return fmt.Sprintf("the secrets in the management database were sealed with %s, not with this one (key %s): "+
		"start with the key they were sealed with (CLOUDDB_SECRET_KEY, or the secret.key it was generated into in "+
		"the data dir, from a backup); to change keys, give the new one as CLOUDDB_SECRET_KEY and the old one as "+
		"CLOUDDB_SECRET_KEY_PREVIOUS (docs/SECURITY.md, \"The vault key\")", sealedWith, e.Given)
}

// CheckKey compares the vault's key with the one recorded in vault_key, before the vault is used:
//
//   - the current key recorded: the vault is ready;
//   - the previous key (SetPrevious) recorded: a rotation begins, and the record moves to the
//     current key (a process started later with only the old key is then refused);
//   - nothing recorded (a new management database, or one from before 0025): the current key is
//     recorded if no secret is stored yet, or if it (or the previous key) opens the newest one;
//   - else a *KeyMismatchError, which says how to recover.
//
// reseal reports whether stored secrets were sealed by another key than the current one: Reseal
// seals them anew. Several processes may check at once.
func (v *Vault) CheckKey(ctx context.Context) (reseal bool, err error) {
	recorded, err := v.recordedKey(ctx)
	if err != nil {
		return false, err
	}
	if recorded == "" {
		if err := v.firstRecord(ctx); err != nil {
			return false, err
		}
		if recorded, err = v.recordedKey(ctx); err != nil {
			return false, err
		}
	}
	if v.previous != nil && recorded == v.previous.fingerprint {
		if _, err := v.db.ExecContext(ctx, `UPDATE vault_key SET fingerprint = ?, updated_at = ? WHERE singleton = 1 AND fingerprint = ?`,
			v.current.fingerprint, v.now().UTC(), v.previous.fingerprint); err != nil {
			return false, fmt.Errorf("secrets: record the new key: %w", err)
		}
		if recorded, err = v.recordedKey(ctx); err != nil { // this process's update, or another's
			return false, err
		}
	}
	if recorded != v.current.fingerprint {
		return false, &KeyMismatchError{Recorded: recorded[:16], Given: v.current.id}
	}
	var others int
	if err := v.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM secrets WHERE key_id <> ?`, v.current.id).Scan(&others); err != nil {
		return false, fmt.Errorf("secrets: count secrets of other keys: %w", err)
	}
	return others > 0, nil
}

func (v *Vault) recordedKey(ctx context.Context) (string, error) {
	var fp string
	err := v.db.QueryRowContext(ctx, `SELECT fingerprint FROM vault_key WHERE singleton = 1`).Scan(&fp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("secrets: read the vault's key: %w", err)
	}
	return fp, nil
}

// firstRecord records the key of a vault that has no record: the current key, if the newest
// stored secret opens with it or there is none; the previous key if that opens it (CheckKey then
// moves the record on). The first process to record wins (INSERT IGNORE); CheckKey compares with
// what is recorded then.
func (v *Vault) firstRecord(ctx context.Context) error {
	var (
		id     string
		sealed []byte
		keyID  string
	)
	err := v.db.QueryRowContext(ctx, `SELECT id, ciphertext, key_id FROM secrets ORDER BY updated_at DESC LIMIT 1`).Scan(&id, &sealed, &keyID)
	record := v.current.fingerprint
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("secrets: read a stored secret: %w", err)
	default:
		_, byCurrent, err := v.open(id, keyID, sealed)
		switch {
		case err != nil:
			return &KeyMismatchError{Given: v.current.id}
		case !byCurrent:
			record = v.previous.fingerprint
		}
	}
	if _, err := v.db.ExecContext(ctx, `INSERT IGNORE INTO vault_key (singleton, fingerprint, updated_at) VALUES (1, ?, ?)`,
		record, v.now().UTC()); err != nil {
		return fmt.Errorf("secrets: record the vault's key: %w", err)
	}
	return nil
}

// resealBatch is how many secrets one round of Reseal reads.
const resealBatch = 100

// Reseal seals anew with the current key, a batch at a time, every secret another key sealed,
// until none is left or ctx ends, logging its progress. A secret that no key of the vault opens
// is left as it is and counted in unreadable (it stays unreadable: the key that sealed it is not
// given). A secret written meanwhile is not overwritten: each row is replaced only if it is
// still the one read.
func (v *Vault) Reseal(ctx context.Context, log *slog.Logger) (resealed, unreadable int, err error) {
	var total int
	if err := v.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM secrets WHERE key_id <> ?`, v.current.id).Scan(&total); err != nil {
		return 0, 0, fmt.Errorf("secrets: count secrets to re-seal: %w", err)
	}
	log.Info("re-sealing the secrets of the previous key with CLOUDDB_SECRET_KEY", "secrets", total, "key_id", v.current.id)
	after := []byte{}
	for {
		n, last, bad, err := v.resealBatch(ctx, after)
		resealed, unreadable = resealed+n, unreadable+bad
		if err != nil {
			return resealed, unreadable, err
		}
		if last == nil {
			break
		}
		after = last
		log.Info("re-sealing the secrets", "resealed", resealed, "of", total)
	}
	if unreadable > 0 {
		log.Warn("secrets that no key given opens were left as they are: they cannot be read", "unreadable", unreadable)
	}
	log.Info("every secret is sealed with CLOUDDB_SECRET_KEY: CLOUDDB_SECRET_KEY_PREVIOUS is no longer needed", "resealed", resealed)
	return resealed, unreadable, nil
}

// resealBatch re-seals the next batch of rows of other keys whose id is after after; last is the
// last id read, nil when there was none.
func (v *Vault) resealBatch(ctx context.Context, after []byte) (resealed int, last []byte, unreadable int, err error) {
	rows, err := v.db.QueryContext(ctx, `SELECT id, ciphertext, key_id FROM secrets WHERE key_id <> ? AND id > ? ORDER BY id LIMIT ?`,
		v.current.id, after, resealBatch)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("secrets: read secrets to re-seal: %w", err)
	}
	type row struct {
		id, sealed []byte
		keyID      string
	}
	var batch []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.sealed, &r.keyID); err != nil {
			rows.Close()
			return 0, nil, 0, err
		}
		batch = append(batch, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, nil, 0, err
	}
	for _, r := range batch {
		last = r.id
		plaintext, _, err := v.open(string(r.id), r.keyID, r.sealed)
		if err != nil {
			unreadable++
			continue
		}
		sealed, err := seal(v.current.aead, plaintext, r.id)
		if err != nil {
			return resealed, last, unreadable, err
		}
		res, err := v.db.ExecContext(ctx, `UPDATE secrets SET ciphertext = ?, key_id = ? WHERE id = ? AND key_id = ? AND ciphertext = ?`,
			sealed, v.current.id, r.id, r.keyID, r.sealed)
		if err != nil {
			return resealed, last, unreadable, fmt.Errorf("secrets: re-seal %q: %w", r.id, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			resealed++
		}
	}
	return resealed, last, unreadable, nil
}
