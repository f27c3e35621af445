package secrets_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/secrets"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, secrets.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func newVault(t *testing.T, db *sql.DB, key []byte) *secrets.Vault {
	t.Helper()
	v, err := secrets.NewVault(db, key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSealOpen(t *testing.T) {
	key := newKey(t)
	plaintext := []byte("s3cret password")
	aad := []byte("database-1")

	t.Run("round trip", func(t *testing.T) {
		sealed, err := secrets.Seal(key, plaintext, aad)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != len(plaintext)+secrets.Overhead {
			t.Errorf("sealed is %d bytes, want %d", len(sealed), len(plaintext)+secrets.Overhead)
		}
		if bytes.Contains(sealed, plaintext) {
			t.Error("sealed value contains the plaintext")
		}
		got, err := secrets.Open(key, sealed, aad)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plaintext) {
			t.Errorf("Open = %q, want %q", got, plaintext)
		}
	})

	t.Run("empty plaintext", func(t *testing.T) {
		sealed, err := secrets.Seal(key, nil, aad)
		if err != nil {
			t.Fatal(err)
		}
		got, err := secrets.Open(key, sealed, aad)
		if err != nil || len(got) != 0 {
			t.Fatalf("Open = %q, %v; want empty, nil", got, err)
		}
	})

	t.Run("fresh nonce per seal", func(t *testing.T) {
		a, _ := secrets.Seal(key, plaintext, aad)
		b, _ := secrets.Seal(key, plaintext, aad)
		if bytes.Equal(a[:secrets.NonceSize], b[:secrets.NonceSize]) || bytes.Equal(a, b) {
			t.Error("two seals of the same plaintext share a nonce")
		}
	})

	sealed, err := secrets.Seal(key, plaintext, aad)
	if err != nil {
		t.Fatal(err)
	}
	failures := map[string]struct {
		key, sealed, aad []byte
	}{
		"wrong key":                    {newKey(t), sealed, aad},
		"wrong aad":                    {key, sealed, []byte("database-2")},
		"missing aad":                  {key, sealed, nil},
		"flipped nonce":                {key, flip(sealed, 0), aad},
		"flipped body":                 {key, flip(sealed, secrets.NonceSize), aad},
		"flipped tag":                  {key, flip(sealed, len(sealed)-1), aad},
		"truncated":                    {key, sealed[:len(sealed)-1], aad},
		"shorter than a nonce and tag": {key, sealed[:secrets.Overhead-1], aad},
		"empty":                        {key, nil, aad},
	}
	for name, tc := range failures {
		t.Run(name, func(t *testing.T) {
			got, err := secrets.Open(tc.key, tc.sealed, tc.aad)
			if !errors.Is(err, secrets.ErrDecrypt) {
				t.Fatalf("Open = %q, %v; want ErrDecrypt", got, err)
			}
		})
	}

	t.Run("key size", func(t *testing.T) {
		for _, n := range []int{0, 16, 24, 31, 33} {
			if _, err := secrets.Seal(make([]byte, n), plaintext, aad); !errors.Is(err, secrets.ErrInvalidKey) {
				t.Errorf("Seal with a %d-byte key: %v, want ErrInvalidKey", n, err)
			}
			if _, err := secrets.Open(make([]byte, n), sealed, aad); !errors.Is(err, secrets.ErrInvalidKey) {
				t.Errorf("Open with a %d-byte key: %v, want ErrInvalidKey", n, err)
			}
		}
	})
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestNewVaultKeySize(t *testing.T) {
	db, err := sql.Open("mysql", "root@tcp(127.0.0.1:1)/") // never used: the key is checked first
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := secrets.NewVault(db, make([]byte, n)); !errors.Is(err, secrets.ErrInvalidKey) {
			t.Errorf("NewVault with a %d-byte key: %v, want ErrInvalidKey", n, err)
		}
	}
}

func TestVault(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	key := newKey(t)
	v := newVault(t, db, key)

	t.Run("round trip", func(t *testing.T) {
		if err := v.Put(ctx, "db-1", []byte("hunter2")); err != nil {
			t.Fatal(err)
		}
		got, err := v.Get(ctx, "db-1")
		if err != nil || string(got) != "hunter2" {
			t.Fatalf("Get = %q, %v; want hunter2", got, err)
		}
		var stored []byte
		if err := db.QueryRowContext(ctx, `SELECT ciphertext FROM secrets WHERE id = 'db-1'`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(stored, []byte("hunter2")) {
			t.Error("the table holds the plaintext")
		}
	})

	t.Run("binary and large secrets", func(t *testing.T) {
		big := make([]byte, secrets.MaxPlaintextSize)
		if _, err := rand.Read(big); err != nil {
			t.Fatal(err)
		}
		if err := v.Put(ctx, "big", big); err != nil {
			t.Fatal(err)
		}
		if got, err := v.Get(ctx, "big"); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("Get of a %d-byte secret: %d bytes, %v", len(big), len(got), err)
		}
		if err := v.Put(ctx, "too-big", make([]byte, secrets.MaxPlaintextSize+1)); err == nil {
			t.Error("Put of a secret over MaxPlaintextSize succeeded")
		}
	})

	t.Run("ids are compared byte for byte", func(t *testing.T) {
		if err := v.Put(ctx, "Case", []byte("upper")); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"case", "Case ", "CASE"} {
			if _, err := v.Get(ctx, id); !errors.Is(err, secrets.ErrNotFound) {
				t.Errorf("Get(%q) after Put(\"Case\"): %v, want ErrNotFound", id, err)
			}
		}
	})

	t.Run("bad ids", func(t *testing.T) {
		for _, id := range []string{"", strings.Repeat("x", secrets.MaxIDSize+1)} {
			if err := v.Put(ctx, id, []byte("x")); err == nil {
				t.Errorf("Put with a %d-byte id succeeded", len(id))
			}
		}
		if err := v.Put(ctx, strings.Repeat("x", secrets.MaxIDSize), []byte("x")); err != nil {
			t.Errorf("Put with a %d-byte id: %v", secrets.MaxIDSize, err)
		}
	})

	t.Run("absent", func(t *testing.T) {
		_, err := v.Get(ctx, "never-stored")
		if !errors.Is(err, secrets.ErrNotFound) || !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("Get of an absent id: %v, want ErrNotFound wrapping domain.ErrNotFound", err)
		}
	})

	t.Run("put overwrites", func(t *testing.T) {
		if err := v.Put(ctx, "db-2", []byte("first")); err != nil {
			t.Fatal(err)
		}
		var created1, updated1 string
		if err := db.QueryRowContext(ctx, `SELECT created_at, updated_at FROM secrets WHERE id = 'db-2'`).Scan(&created1, &updated1); err != nil {
			t.Fatal(err)
		}
		if err := v.Put(ctx, "db-2", []byte("second")); err != nil {
			t.Fatal(err)
		}
		if got, err := v.Get(ctx, "db-2"); err != nil || string(got) != "second" {
			t.Fatalf("Get after overwrite = %q, %v; want second", got, err)
		}
		var n int
		var created2 string
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_at) FROM secrets WHERE id = 'db-2'`).Scan(&n, &created2); err != nil {
			t.Fatal(err)
		}
		if n != 1 || created2 != created1 {
			t.Errorf("after overwrite: %d rows, created_at %s (was %s); want 1 row, created_at kept", n, created2, created1)
		}
	})

	t.Run("wrong key fails", func(t *testing.T) {
		if err := v.Put(ctx, "db-3", []byte("pw")); err != nil {
			t.Fatal(err)
		}
		other := newVault(t, db, newKey(t))
		got, err := other.Get(ctx, "db-3")
		if !errors.Is(err, secrets.ErrDecrypt) || errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("Get with another key = %q, %v; want ErrDecrypt", got, err)
		}
		same := newVault(t, db, bytes.Clone(key)) // a second Vault on the same key reads it
		if got, err := same.Get(ctx, "db-3"); err != nil || string(got) != "pw" {
			t.Fatalf("Get with the same key = %q, %v", got, err)
		}
	})

	t.Run("tampered ciphertext fails", func(t *testing.T) {
		if err := v.Put(ctx, "db-4", []byte("pw")); err != nil {
			t.Fatal(err)
		}
		for name, expr := range map[string]string{
			"flipped last byte":  `CONCAT(LEFT(ciphertext, LENGTH(ciphertext) - 1), CHAR(ASCII(RIGHT(ciphertext, 1)) ^ 1))`,
			"flipped first byte": `CONCAT(CHAR(ASCII(LEFT(ciphertext, 1)) ^ 1), SUBSTRING(ciphertext, 2))`,
			"truncated":          `LEFT(ciphertext, 10)`,
		} {
			if err := v.Put(ctx, "db-4", []byte("pw")); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE secrets SET ciphertext = `+expr+` WHERE id = 'db-4'`); err != nil {
				t.Fatal(err)
			}
			if got, err := v.Get(ctx, "db-4"); !errors.Is(err, secrets.ErrDecrypt) {
				t.Errorf("%s: Get = %q, %v; want ErrDecrypt", name, got, err)
			}
		}
	})

	t.Run("ciphertext copied to another id fails", func(t *testing.T) {
		if err := v.Put(ctx, "db-5", []byte("pw5")); err != nil {
			t.Fatal(err)
		}
		if err := v.Put(ctx, "db-6", []byte("pw6")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO secrets (id, ciphertext, created_at, updated_at)
			SELECT 'db-7', ciphertext, created_at, updated_at FROM secrets WHERE id = 'db-5'`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE secrets s, (SELECT ciphertext FROM secrets WHERE id = 'db-5') src
			SET s.ciphertext = src.ciphertext WHERE s.id = 'db-6'`); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"db-6", "db-7"} {
			if got, err := v.Get(ctx, id); !errors.Is(err, secrets.ErrDecrypt) {
				t.Errorf("Get(%s) holding db-5's ciphertext = %q, %v; want ErrDecrypt", id, got, err)
			}
		}
		if got, err := v.Get(ctx, "db-5"); err != nil || string(got) != "pw5" {
			t.Errorf("Get(db-5) = %q, %v", got, err)
		}
	})

	t.Run("erase", func(t *testing.T) {
		if err := v.Put(ctx, "db-8", []byte("pw")); err != nil {
			t.Fatal(err)
		}
		if err := v.Put(ctx, "db-9", []byte("kept")); err != nil {
			t.Fatal(err)
		}
		if err := v.Erase(ctx, "db-8"); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Get(ctx, "db-8"); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("Get after Erase: %v, want ErrNotFound", err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM secrets WHERE id = 'db-8'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("rows left for db-8: %d, %v", n, err)
		}
		if err := v.Erase(ctx, "db-8"); err != nil {
			t.Errorf("second Erase: %v", err)
		}
		if err := v.Erase(ctx, "never-stored"); err != nil {
			t.Errorf("Erase of an absent id: %v", err)
		}
		if got, err := v.Get(ctx, "db-9"); err != nil || string(got) != "kept" {
			t.Errorf("Get of another id after Erase = %q, %v", got, err)
		}
		if err := v.Put(ctx, "db-8", []byte("again")); err != nil {
			t.Fatal(err)
		}
		if got, err := v.Get(ctx, "db-8"); err != nil || string(got) != "again" {
			t.Errorf("Get after Put on an erased id = %q, %v", got, err)
		}
	})

	t.Run("context is honoured", func(t *testing.T) {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := v.Put(cancelled, "db-10", []byte("x")); err == nil {
			t.Error("Put with a cancelled context succeeded")
		}
		if _, err := v.Get(cancelled, "db-1"); err == nil || errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("Get with a cancelled context: %v, want a context error", err)
		}
	})
}

// The vault records its key's fingerprint, refuses another key with an error that says how to
// recover, and rotates to a new key: the previous one opens what it sealed until Reseal has sealed
// it anew.
func TestVaultKey(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	db := testdb.New(t)
	oldKey, nextKey := newKey(t), newKey(t)

	old := newVault(t, db, oldKey)
	if reseal, err := old.CheckKey(ctx); err != nil || reseal {
		t.Fatalf("first CheckKey = %v, %v; want the key recorded, nothing to re-seal", reseal, err)
	}
	for i := range 250 { // more than a batch of Reseal
		if err := old.Put(ctx, fmt.Sprintf("s-%03d", i), []byte(fmt.Sprint("secret ", i))); err != nil {
			t.Fatal(err)
		}
	}

	// Another key, without the old one: refused, in one line that names both keys and the way out.
	_, err := newVault(t, db, nextKey).CheckKey(ctx)
	var mismatch *secrets.KeyMismatchError
	if !errors.As(err, &mismatch) || mismatch.Recorded != secrets.Fingerprint(oldKey)[:16] || mismatch.Given != secrets.Fingerprint(nextKey)[:16] ||
		strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "CLOUDDB_SECRET_KEY_PREVIOUS") {
		t.Fatalf("CheckKey with another key: %v, want a one-line *KeyMismatchError naming both keys", err)
	}

	// The rotation: the new key with the old as previous reads everything at once, and re-seals.
	rotated := newVault(t, db, nextKey)
	if err := rotated.SetPrevious(oldKey); err != nil {
		t.Fatal(err)
	}
	if reseal, err := rotated.CheckKey(ctx); err != nil || !reseal {
		t.Fatalf("CheckKey of the rotation = %v, %v; want secrets to re-seal", reseal, err)
	}
	if got, err := rotated.Get(ctx, "s-007"); err != nil || string(got) != "secret 7" {
		t.Fatalf("Get before the re-seal = %q, %v", got, err)
	}
	if err := rotated.Put(ctx, "s-008", []byte("written during the rotation")); err != nil {
		t.Fatal(err)
	}
	if n, bad, err := rotated.Reseal(ctx, log); err != nil || n != 249 || bad != 0 {
		t.Fatalf("Reseal = %d, %d, %v; want 249 re-sealed (one was written with the new key)", n, bad, err)
	}
	if _, err := old.CheckKey(ctx); !errors.As(err, &mismatch) {
		t.Errorf("the old key after the rotation: %v, want refused", err)
	}
	alone := newVault(t, db, nextKey) // CLOUDDB_SECRET_KEY_PREVIOUS removed
	if reseal, err := alone.CheckKey(ctx); err != nil || reseal {
		t.Fatalf("CheckKey after the re-seal = %v, %v; want nothing left", reseal, err)
	}
	for id, want := range map[string]string{"s-000": "secret 0", "s-008": "written during the rotation", "s-249": "secret 249"} {
		if got, err := alone.Get(ctx, id); err != nil || string(got) != want {
			t.Errorf("Get(%s) with the new key alone = %q, %v; want %q", id, got, err, want)
		}
	}
}

// A vault from before key fingerprints (rows without key id, nothing recorded) takes the key that
// opens its secrets, and refuses one that does not.
func TestVaultKeyOfAnOlderVault(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	key := newKey(t)
	sealed, err := secrets.Seal(key, []byte("hunter2"), []byte("db-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO secrets (id, ciphertext, created_at, updated_at) VALUES ('db-1', ?, NOW(), NOW())`, sealed); err != nil {
		t.Fatal(err)
	}
	var mismatch *secrets.KeyMismatchError
	if _, err := newVault(t, db, newKey(t)).CheckKey(ctx); !errors.As(err, &mismatch) || mismatch.Recorded != "" {
		t.Fatalf("CheckKey with a key that opens nothing: %v, want *KeyMismatchError", err)
	}
	v := newVault(t, db, key)
	if reseal, err := v.CheckKey(ctx); err != nil || !reseal {
		t.Fatalf("CheckKey with the key that sealed it = %v, %v; want it recorded and the row to tag", reseal, err)
	}
	if got, err := v.Get(ctx, "db-1"); err != nil || string(got) != "hunter2" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if n, _, err := v.Reseal(ctx, slog.New(slog.DiscardHandler)); err != nil || n != 1 {
		t.Fatalf("Reseal = %d, %v; want the row sealed with its key id", n, err)
	}
}
