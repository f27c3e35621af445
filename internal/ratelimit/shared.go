package ratelimit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Buckets keeps token buckets in the management database (rate_limits,
// migrations/0028_rate_limits.sql), shared by every process: a limit on them holds for the whole
// deployment, however requests are spread over the processes. A check costs one statement on a
// bucket in use (two on a new one), so they suit requests that are rare and cost more than that
// anyway — logins, registrations, mails — not the per-user query rate (see WithShare).
//
// A bucket is kept as the generic cell rate algorithm keeps it: one time, when the bucket is full
// again. Taking a token is a conditional UPDATE that moves it by one interval, so concurrent
// processes never take the same token, without a transaction. Processes must agree on the time
// (NTP): a process whose clock runs ahead by d grants d's worth of tokens early.
type Buckets struct {
	db     *sql.DB
	pruned atomic.Int64 // unix µs of the last prune
}

// NewBuckets returns the buckets kept in db, which holds the migrated rate_limits table.
func NewBuckets(db *sql.DB) *Buckets {
	if db == nil {
		panic("ratelimit: NewBuckets needs a database")
	}
	return &Buckets{db: db}
}

// pruneEvery is how often a process deletes the full buckets (their rows are not needed: a
// missing row is a full bucket).
const pruneEvery = time.Minute

// Shared is one limit on Buckets, applied to each key separately.
type Shared struct {
	b         *Buckets
	name      string
	interval  int64 // µs per token
	tolerance int64 // µs: how far ahead of now the bucket's time may be and still grant, (burst-1)·interval + reorderSlack
}

// Limit returns the limit name (unique among the deployment's limits: it separates their keys)
// that lets each key act r times a second on average, with bursts of up to burst. Panics if r
// <= 0 or is infinite, or burst < 1.
func (b *Buckets) Limit(name string, r rate.Limit, burst int) *Shared {
	if r <= 0 || r == rate.Inf || burst < 1 {
		panic(fmt.Sprintf("ratelimit: Limit(%q, %v, %d): need a finite positive rate and burst", name, r, burst))
	}
	interval := int64(math.Ceil(1e6 / float64(r)))
	return &Shared{b: b, name: name, interval: interval, tolerance: int64(burst-1)*interval + reorderSlack.Microseconds()}
}

// reorderSlack is how much earlier than its time a token may be granted. Each request takes its
// time before its UPDATE runs, and concurrent ones reach the row in any order: without slack, a
// request that read the clock a few microseconds before the others of a full burst, and came
// last, found the bucket that much past its tolerance and was refused its burst's token.
const reorderSlack = time.Second

// Allow takes one token from key's bucket at now. When the bucket is empty it returns false and
// how long to wait before a token is available, in whole seconds, at least one (a Retry-After).
// Errors are the management database's.
func (l *Shared) Allow(ctx context.Context, key string, now time.Time) (bool, time.Duration, error) {
	sum := sha256.Sum256([]byte(l.name + "\x00" + key))
	bucket, at := sum[:], now.UnixMicro()
	l.b.prune(ctx, at)
	for range 3 { // a bucket created or pruned by another process meanwhile: look again
		res, err := l.b.db.ExecContext(ctx, `UPDATE rate_limits SET tat_us = GREATEST(tat_us, ?) + ?
			WHERE bucket = ? AND GREATEST(tat_us, ?) - ? <= ?`, at, l.interval, bucket, at, at, l.tolerance)
		if n, err := affected(res, err); err != nil || n == 1 {
			return err == nil, 0, err
		}
		var tat int64
		err = l.b.db.QueryRowContext(ctx, `SELECT tat_us FROM rate_limits WHERE bucket = ?`, bucket).Scan(&tat)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			res, err := l.b.db.ExecContext(ctx, `INSERT IGNORE INTO rate_limits (bucket, tat_us) VALUES (?, ?)`, bucket, at+l.interval)
			if n, err := affected(res, err); err != nil || n == 1 {
				return err == nil, 0, err
			}
		case err != nil:
			return false, 0, fmt.Errorf("ratelimit: read bucket: %w", err)
		case max(tat, at)-at > l.tolerance:
			secs := math.Ceil(float64(max(tat, at)-at-l.tolerance) / 1e6)
			return false, time.Duration(max(1, secs)) * time.Second, nil
		}
	}
	return false, time.Second, nil // contended by other processes for the same key: it is busy anyway
}

func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, fmt.Errorf("ratelimit: take a token: %w", err)
	}
	return res.RowsAffected()
}

// prune deletes the full buckets, once per pruneEvery per process. It is housekeeping: a failure
// (a deadlock with a token taken through the same index by another process, say) is logged and
// does not fail the request that ran it; the next request tries again.
func (b *Buckets) prune(ctx context.Context, at int64) {
	last := b.pruned.Load()
	if at-last < pruneEvery.Microseconds() || !b.pruned.CompareAndSwap(last, at) {
		return
	}
	if _, err := b.db.ExecContext(ctx, `DELETE FROM rate_limits WHERE tat_us < ? LIMIT 1000`, at); err != nil {
		slog.WarnContext(ctx, "ratelimit: prune full buckets", "err", err)
		b.pruned.CompareAndSwap(at, last)
	}
}
