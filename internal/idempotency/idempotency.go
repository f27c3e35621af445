// Package idempotency keeps the first response to each Idempotency-Key of the API in the
// idempotency_keys table of the management database (migrations/0005_idempotency_keys.sql), so
// that a client's retry with the same key and request gets that response again and the work is
// done once, by whichever process serves it.
//
// A key belongs to a principal (a user, or an API key) and lives TTL (24 h) from its first use.
// Begin puts a placeholder for it before the request runs; exactly one of concurrent Begins of a
// key succeeds, the others see it running. Complete stores the response; Abandon removes the
// placeholder (the request failed in a way a retry should repeat). Purge deletes expired rows.
//
// Response bodies carry database passwords and API keys: they are sealed with AES-256-GCM
// (internal/secrets) under the process's secret key, with the principal and key as additional
// data, and bodies over MaxBodySize are not kept at all.
//
// What one client can make the table hold is bounded (issue 10: the management database's disk):
// a body is at most MaxBodySize, and Begin refuses a new key (*FullError) while its principal
// holds Limits.PerPrincipalKeys keys or Limits.PerPrincipalBytes bytes of sealed bodies from the
// last TTL, or the table Limits.TotalKeys keys. The counts are read before the insert, so
// concurrent Begins of one principal may overshoot by their number, not more.
//
// This is data, not a read model: nothing here enters or comes from the event log.
package idempotency

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/mysqlerr"
	"github.com/clouddbmanager/clouddb/internal/secrets"
)

const (
	// TTL is how long a key answers with its first response; an older row is reclaimed by the next
	// request with that key and deleted by Purge.
	TTL = 24 * time.Hour
	// MaxBodySize is the largest response body kept (64 KiB: every answer of a mutating request
	// fits, a database's or API key's creation included). A larger response completes its key with
	// its status only, and a replay answers TooLargeError instead of doing the work twice.
	MaxBodySize = 64 << 10
	// MaxKeySize is the longest key, in bytes.
	MaxKeySize = 255
	// MaxPrincipalSize is the longest principal, in bytes.
	MaxPrincipalSize = 80
	// MaxPathSize is the longest path (with its query string), in bytes.
	MaxPathSize = 500
)

var (
	// ErrKeyReused: the key was first used with another method, path or body. Wraps
	// domain.ErrConflict.
	ErrKeyReused = fmt.Errorf("idempotency key used with another request: %w", domain.ErrConflict)
	// ErrInProgress: the first request with the key has not finished yet. Wraps domain.ErrConflict.
	ErrInProgress = fmt.Errorf("a request with this idempotency key is still running: %w", domain.ErrConflict)
	// ErrOrphaned: the key is the caller's to run and then Complete or Abandon, as after (nil,
	// nil), but its first request was running when its process died: it may have done its work.
	// The caller decides whether running it again is safe.
	ErrOrphaned = errors.New("idempotency: the first request with this key was running when its process ended")
)

// TooLargeError is Begin's answer for a key whose first response was over MaxBodySize: it was
// answered, but cannot be replayed. Wraps domain.ErrConflict.
type TooLargeError struct {
	Status int // the status of the first response
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the first response to this idempotency key (status %d) was too large to keep", e.Status)
}

func (e *TooLargeError) Unwrap() error { return domain.ErrConflict }

// Limits bound what the table holds; see the package comment.
type Limits struct {
	PerPrincipalKeys  int
	PerPrincipalBytes int64
	TotalKeys         int
}

// DefaultLimits: a thousand keys and 4 MiB of answers per principal a day, 100,000 keys in all.
var DefaultLimits = Limits{PerPrincipalKeys: 1000, PerPrincipalBytes: 4 << 20, TotalKeys: 100_000}

// totalFullRetry is the Retry-After of a full table: the purge runs every minute.
const totalFullRetry = time.Minute

// FullError is Begin's answer to a new key when its principal (Scope "principal") or the whole
// table (Scope "total") holds as much as Limits allow; RetryAfter says when room is made.
type FullError struct {
	Scope      string
	Limit      int64
	RetryAfter time.Duration
}

func (e *FullError) Error() string {
	return fmt.Sprintf("idempotency: too many keys kept (%s limit %d); retry in %v", e.Scope, e.Limit, e.RetryAfter)
}

// Response is a stored response.
type Response struct {
	Status      int
	ContentType string
	Location    string
	Body        []byte
}

// Store keeps idempotency keys in the idempotency_keys table. It is safe for concurrent use.
type Store struct {
	db       *sql.DB
	key      []byte
	previous []byte // the key being rotated out: answers it sealed still open (SetPreviousKey)
	limits   Limits
	owner    string // this process's lease (process_leases); "" when it holds none
}

// New returns a Store on db that seals response bodies with key (secrets.KeySize bytes: the
// process's CLOUDDB_SECRET_KEY). Returns secrets.ErrInvalidKey for a key of the wrong size;
// panics if db is nil.
func New(db *sql.DB, key []byte) (*Store, error) {
	if db == nil {
		panic("idempotency: New with a nil db")
	}
	if len(key) != secrets.KeySize {
		return nil, fmt.Errorf("idempotency: %d-byte key: %w", len(key), secrets.ErrInvalidKey)
	}
	return &Store{db: db, key: bytes.Clone(key), limits: DefaultLimits}, nil
}

// SetPreviousKey gives the key being rotated out (CLOUDDB_SECRET_KEY_PREVIOUS): the answers it
// sealed, kept for their 24 hours, still replay. Call it before the Store is used.
func (s *Store) SetPreviousKey(key []byte) error {
	if len(key) != secrets.KeySize {
		return fmt.Errorf("idempotency: %d-byte previous key: %w", len(key), secrets.ErrInvalidKey)
	}
	s.previous = bytes.Clone(key)
	return nil
}

// SetLimits replaces DefaultLimits; call it before the Store is used.
func (s *Store) SetLimits(l Limits) { s.limits = l }

// SetOwner names the process lease (internal/leases) that the keys this Store begins belong to
// while their request runs; call it before the Store is used. A running key whose owner holds no
// live lease (the process died with the request) is taken over by the next request with it.
func (s *Store) SetOwner(instance string) { s.owner = instance }

// room returns a *FullError when principal may not start another key at now.
func (s *Store) room(ctx context.Context, principal string, now time.Time) error {
	since := now.Add(-TTL)
	var (
		keys   int64
		stored int64
		oldest sql.NullTime
	)
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0), MIN(created_at)
		FROM idempotency_keys WHERE principal = ? AND created_at >= ?`, principal, since).Scan(&keys, &stored, &oldest); err != nil {
		return fmt.Errorf("idempotency: count keys: %w", err)
	}
	if keys >= int64(s.limits.PerPrincipalKeys) || stored >= s.limits.PerPrincipalBytes {
		retry := time.Minute
		if oldest.Valid {
			retry = max(oldest.Time.Add(TTL).Sub(now), time.Second)
		}
		limit := int64(s.limits.PerPrincipalKeys)
		if keys < limit {
			limit = s.limits.PerPrincipalBytes
		}
		return &FullError{Scope: "principal", Limit: limit, RetryAfter: retry}
	}
	var total int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM idempotency_keys WHERE created_at >= ? LIMIT ?) kept`,
		since, s.limits.TotalKeys).Scan(&total); err != nil {
		return fmt.Errorf("idempotency: count keys: %w", err)
	}
	if total >= int64(s.limits.TotalKeys) {
		return &FullError{Scope: "total", Limit: int64(s.limits.TotalKeys), RetryAfter: totalFullRetry}
	}
	return nil
}

// Begin claims key for principal's request (method, path with its query string, SHA-256 of the
// body) at now. It returns (nil, nil) when the caller should run the request and then Complete or
// Abandon the key: the key was new, or its row was older than TTL and has been reclaimed; and
// (nil, ErrOrphaned) when the key is the caller's too, taken over from a request whose process
// died while it ran (the key keeps its created_at). When the
// key's first request with the same method, path and body completed, it returns that response for
// replay. Otherwise: ErrKeyReused (another request), ErrInProgress (still running),
// *TooLargeError (completed, but its body was not kept), or *FullError (a new key, but its
// principal or the table holds as much as Limits allow).
func (s *Store) Begin(ctx context.Context, principal, key, method, path string, bodyHash [32]byte, now time.Time) (*Response, error) {
	if err := check(principal, key); err != nil {
		return nil, err
	}
	if method == "" || len(method) > 16 || len(path) > MaxPathSize {
		return nil, fmt.Errorf("idempotency: method %q or %d-byte path out of bounds", method, len(path))
	}
	now = now.UTC()
	full := s.room(ctx, principal, now)
	var fullErr *FullError
	if full != nil && !errors.As(full, &fullErr) {
		return nil, full
	}
	// A row can vanish between a failed insert and the read (its request was abandoned), so the
	// insert is tried again; a few rounds are plenty, more mean something else is wrong.
	for range 5 {
		if fullErr != nil {
			// No room for a new key, but a key used before still answers (or is reclaimed).
			if exists, err := s.exists(ctx, principal, key, now); err != nil {
				return nil, err
			} else if !exists {
				return nil, fullErr
			}
		}
		_, err := s.db.ExecContext(ctx, `INSERT INTO idempotency_keys
			(principal, idem_key, method, path, body_sha256, created_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			principal, []byte(key), method, path, bodyHash[:], now, nullable(s.owner))
		if err == nil {
			return nil, nil
		}
		if deadlock(err) {
			continue
		}
		if !mysqlerr.IsDuplicateKey(err) {
			return nil, fmt.Errorf("idempotency: begin: %w", err)
		}
		// An expired row is taken over: the key starts a new life.
		res, err := s.db.ExecContext(ctx, `UPDATE idempotency_keys k
			SET k.method = ?, k.path = ?, k.body_sha256 = ?, k.status = NULL, k.content_type = NULL, k.location = NULL,
				k.body = NULL, k.created_at = ?, k.owner = ?
			WHERE k.principal = ? AND k.idem_key = ? AND k.created_at < ?`,
			method, path, bodyHash[:], now, nullable(s.owner), principal, []byte(key), now.Add(-TTL))
		if n, err := affected(res, err); err != nil {
			return nil, fmt.Errorf("idempotency: reclaim: %w", err)
		} else if n == 1 {
			return nil, nil
		}
		// So is a running one of the same request whose process is gone (no live lease): its
		// request died with it, maybe after doing its work (ErrOrphaned). Its owner becomes this
		// process, so of concurrent takeovers (InnoDB re-reads the row after the lock wait) exactly
		// one matches.
		res, err = s.db.ExecContext(ctx, `UPDATE idempotency_keys k SET k.owner = ?
			WHERE k.principal = ? AND k.idem_key = ? AND k.status IS NULL
				AND k.method = ? AND k.path = ? AND k.body_sha256 = ? AND k.owner <> ?
				AND NOT EXISTS (SELECT 1 FROM process_leases p WHERE p.instance_id = k.owner AND p.expires_at > ?)`,
			nullable(s.owner), principal, []byte(key), method, path, bodyHash[:], s.owner, now)
		if n, err := affected(res, err); err != nil {
			return nil, fmt.Errorf("idempotency: take over: %w", err)
		} else if n == 1 {
			return nil, ErrOrphaned
		}
		var (
			gotMethod, gotPath  string
			gotHash             []byte
			status              sql.NullInt64
			contentType, locate []byte
			body                []byte
		)
		err = s.db.QueryRowContext(ctx, `SELECT method, path, body_sha256, status, content_type, location, body
			FROM idempotency_keys WHERE principal = ? AND idem_key = ?`, principal, []byte(key)).
			Scan(&gotMethod, &gotPath, &gotHash, &status, &contentType, &locate, &body)
		if errors.Is(err, sql.ErrNoRows) {
			continue // abandoned meanwhile: try to claim it again
		} else if err != nil {
			return nil, fmt.Errorf("idempotency: read: %w", err)
		}
		switch {
		case gotMethod != method || gotPath != path || !bytes.Equal(gotHash, bodyHash[:]):
			return nil, ErrKeyReused
		case !status.Valid:
			return nil, ErrInProgress
		case body == nil:
			return nil, &TooLargeError{Status: int(status.Int64)}
		}
		plain, err := secrets.Open(s.key, body, aad(principal, key))
		if err != nil && s.previous != nil {
			plain, err = secrets.Open(s.previous, body, aad(principal, key))
		}
		if err != nil {
			return nil, fmt.Errorf("idempotency: stored response: %w", err)
		}
		return &Response{Status: int(status.Int64), ContentType: string(contentType), Location: string(locate), Body: plain}, nil
	}
	return nil, fmt.Errorf("idempotency: key kept vanishing while it was claimed")
}

// exists reports whether principal's key has a row younger than TTL.
func (s *Store) exists(ctx context.Context, principal, key string, now time.Time) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM idempotency_keys WHERE principal = ? AND idem_key = ? AND created_at >= ?`,
		principal, []byte(key), now.Add(-TTL)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("idempotency: read: %w", err)
	}
	return n > 0, nil
}

// Complete stores resp as the answer to principal's key, which Begin claimed. A body over
// MaxBodySize is not stored: the key then answers TooLargeError. A key that is no longer running
// (completed, abandoned, or purged) is left alone.
func (s *Store) Complete(ctx context.Context, principal, key string, resp Response) error {
	if err := check(principal, key); err != nil {
		return err
	}
	var body []byte
	if len(resp.Body) <= MaxBodySize {
		sealed, err := secrets.Seal(s.key, resp.Body, aad(principal, key))
		if err != nil {
			return fmt.Errorf("idempotency: complete: %w", err)
		}
		body = sealed
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE idempotency_keys SET status = ?, content_type = ?, location = ?, body = ?
		WHERE principal = ? AND idem_key = ? AND status IS NULL`,
		resp.Status, nullable(resp.ContentType), nullable(resp.Location), body, principal, []byte(key)); err != nil {
		return fmt.Errorf("idempotency: complete: %w", err)
	}
	return nil
}

// Abandon deletes the placeholder of principal's key while its request is still running, so that
// a retry runs the request again (after a server error or a panic). A completed key is left alone.
func (s *Store) Abandon(ctx context.Context, principal, key string) error {
	if err := check(principal, key); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE principal = ? AND idem_key = ? AND status IS NULL`,
		principal, []byte(key)); err != nil {
		return fmt.Errorf("idempotency: abandon: %w", err)
	}
	return nil
}

// Purge deletes the rows created before before (completed or not), batch rows per statement so
// that no statement holds many locks, until none is left. It returns how many it deleted.
func (s *Store) Purge(ctx context.Context, before time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = 1000
	}
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?`,
			before.UTC(), batch)
		if err != nil {
			return total, fmt.Errorf("idempotency: purge: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("idempotency: purge: %w", err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

func check(principal, key string) error {
	if principal == "" || len(principal) > MaxPrincipalSize {
		return fmt.Errorf("idempotency: principal must be 1 to %d bytes, got %d", MaxPrincipalSize, len(principal))
	}
	if key == "" || len(key) > MaxKeySize {
		return fmt.Errorf("idempotency: key must be 1 to %d bytes, got %d", MaxKeySize, len(key))
	}
	return nil
}

// aad binds a sealed body to its row: a body copied to another principal or key does not open.
func aad(principal, key string) []byte {
	return []byte(principal + "\x00" + key)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// affected is the number of rows an Exec changed.
func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// deadlock reports a deadlock (1213): concurrent inserts of one key with an abandon in between
// can make InnoDB choose a victim; the insert is simply tried again.
func deadlock(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1213
}
