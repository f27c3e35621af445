package eventstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
)

// RewriteFunc returns the new payload and metadata of a recorded event (env holds them as stored,
// not opened), or changed false to keep it as it is.
type RewriteFunc func(ctx context.Context, env Envelope, metadata []byte) (payload, newMetadata []byte, changed bool, err error)

// Rechained is one chain a rewrite re-chained: from its first rewritten event to its head, with
// the head's hash before and after.
type Rechained struct {
	ChainID string `json:"chain_id"`
	FromSeq int64  `json:"from_seq"`
	HeadSeq int64  `json:"head_seq"`
	OldHead Hash   `json:"old_head"`
	NewHead Hash   `json:"new_head"`
}

// RewriteSummary is what Rewrite did: the events it rewrote, the chains it re-chained and the
// signed heads that no longer matched and were deleted (the head signer signs the new heads).
type RewriteSummary struct {
	Events     int
	Chains     []Rechained
	Superseded []HeadSignature
}

// rewriteBatch is how many events Rewrite reads at a time.
const rewriteBatch = 1000

// Rewrite rewrites recorded events with fn, in log order, in one transaction under the sequence
// lock (appends of every process wait until it commits; a crash rolls it all back). Every chain
// with a rewritten event is then re-chained from that event on: each event gets the hash of its
// new bytes and its new predecessor, so the chain verifies again — but against the new hashes
// only: a signed head at or past the first rewritten event no longer matches, and is deleted and
// returned for the caller to record. Rewriting the log is for migrations only (a change of what
// the log may hold, such as sealing personal data recorded in clear); the caller records that it
// happened. A process that kept chain heads in memory must not append meanwhile: run it before
// serving, with the migration lock.
func Rewrite(ctx context.Context, db *sql.DB, fn RewriteFunc) (RewriteSummary, error) {
	var sum RewriteSummary
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return sum, fmt.Errorf("eventstore: rewrite: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var head int64
	if err := tx.QueryRowContext(ctx, `SELECT last_position FROM event_sequence WHERE id = 1 FOR UPDATE`).Scan(&head); err != nil {
		return sum, fmt.Errorf("eventstore: rewrite: lock sequence: %w", err)
	}
	first := map[string]int64{} // chain → its first rewritten sequence
	for after := int64(0); after < head; {
		n, last, err := rewriteBatchAfter(ctx, tx, after, fn, first)
		if err != nil {
			return sum, err
		}
		sum.Events += n
		if last == after {
			break
		}
		after = last
	}
	chains := make([]string, 0, len(first))
	for c := range first {
		chains = append(chains, c)
	}
	sort.Strings(chains)
	for _, c := range chains {
		r, err := rechain(ctx, tx, c, first[c])
		if err != nil {
			return sum, err
		}
		sum.Chains = append(sum.Chains, r)
		sigs, err := ReadSignatures(ctx, db, c, first[c])
		if err != nil {
			return sum, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM chain_signatures WHERE chain_id = ? AND chain_seq >= ?`, c, first[c]); err != nil {
			return sum, fmt.Errorf("eventstore: rewrite: delete superseded signatures of %s: %w", c, err)
		}
		sum.Superseded = append(sum.Superseded, sigs...)
	}
	if err := tx.Commit(); err != nil {
		return sum, fmt.Errorf("eventstore: rewrite: commit: %w", err)
	}
	return sum, nil
}

func rewriteBatchAfter(ctx context.Context, tx *sql.Tx, after int64, fn RewriteFunc, first map[string]int64) (rewritten int, last int64, err error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+envelopeColumns+`, metadata FROM events WHERE position > ? ORDER BY position LIMIT ?`, after, rewriteBatch)
	if err != nil {
		return 0, after, fmt.Errorf("eventstore: rewrite: read: %w", err)
	}
	type change struct {
		position          int64
		payload, metadata []byte
	}
	var changes []change
	last = after
	for rows.Next() {
		var env Envelope
		var payload, metadata, raw []byte
		var chainID sql.NullString
		var chainSeq sql.NullInt64
		if err := rows.Scan(&env.Position, &env.EventID, &env.StreamID, &env.StreamType, &env.StreamVersion,
			&env.EventType, &payload, &metadata, &env.RecordedAt, &chainID, &chainSeq, &raw); err != nil {
			rows.Close()
			return 0, after, fmt.Errorf("eventstore: rewrite: scan: %w", err)
		}
		env.Payload, env.ChainID, env.ChainSeq = payload, chainID.String, chainSeq.Int64
		if err := json.Unmarshal(metadata, &env.Metadata); err != nil {
			rows.Close()
			return 0, after, fmt.Errorf("eventstore: rewrite: metadata of position %d: %w", env.Position, err)
		}
		last = env.Position
		newPayload, newMetadata, changed, err := fn(ctx, env, raw)
		if err != nil {
			rows.Close()
			return 0, after, fmt.Errorf("eventstore: rewrite position %d: %w", env.Position, err)
		}
		if !changed {
			continue
		}
		if env.ChainSeq == 0 {
			rows.Close()
			return 0, after, fmt.Errorf("eventstore: rewrite position %d: the event is not chained yet", env.Position)
		}
		if f, ok := first[env.ChainID]; !ok || env.ChainSeq < f {
			first[env.ChainID] = env.ChainSeq
		}
		changes = append(changes, change{env.Position, newPayload, newMetadata})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, after, fmt.Errorf("eventstore: rewrite: read: %w", err)
	}
	for _, c := range changes {
		if _, err := tx.ExecContext(ctx, `UPDATE events SET payload = ?, metadata = ? WHERE position = ?`, c.payload, c.metadata, c.position); err != nil {
			return 0, after, fmt.Errorf("eventstore: rewrite position %d: %w", c.position, err)
		}
	}
	return len(changes), last, nil
}

// rechain recomputes the hashes of chain from sequence from on, over the events as stored now.
func rechain(ctx context.Context, tx *sql.Tx, chain string, from int64) (Rechained, error) {
	r := Rechained{ChainID: chain, FromSeq: from}
	var prev Hash
	if from > 1 {
		var h []byte
		if err := tx.QueryRowContext(ctx, `SELECT hash FROM events WHERE chain_id = ? AND chain_seq = ?`, chain, from-1).Scan(&h); err != nil {
			return r, fmt.Errorf("eventstore: rechain %s: hash at %d: %w", chain, from-1, err)
		}
		copy(prev[:], h)
	}
	for seq := from; ; {
		rows, err := tx.QueryContext(ctx, `SELECT position, event_id, stream_id, stream_type, stream_version, event_type, payload,
			metadata, recorded_at, chain_seq, hash FROM events WHERE chain_id = ? AND chain_seq >= ? ORDER BY chain_seq LIMIT ?`, chain, seq, rewriteBatch)
		if err != nil {
			return r, fmt.Errorf("eventstore: rechain %s: %w", chain, err)
		}
		type rehashed struct {
			position int64
			hash     Hash
		}
		var batch []rehashed
		for rows.Next() {
			var l Link
			var position int64
			var payload, metadata, old []byte
			if err := rows.Scan(&position, &l.EventID, &l.StreamID, &l.StreamType, &l.StreamVersion, &l.EventType, &payload,
				&metadata, &l.RecordedAt, &l.ChainSeq, &old); err != nil {
				rows.Close()
				return r, fmt.Errorf("eventstore: rechain %s: %w", chain, err)
			}
			l.ChainID, l.PrevHash = chain, prev
			l.PayloadSHA256, l.MetadataSHA256 = sha256.Sum256(payload), sha256.Sum256(metadata)
			prev = l.Hash()
			copy(r.OldHead[:], old)
			r.HeadSeq, r.NewHead = l.ChainSeq, prev
			batch = append(batch, rehashed{position, prev})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return r, fmt.Errorf("eventstore: rechain %s: %w", chain, err)
		}
		for _, b := range batch {
			if _, err := tx.ExecContext(ctx, `UPDATE events SET hash = ? WHERE position = ?`, b.hash[:], b.position); err != nil {
				return r, fmt.Errorf("eventstore: rechain %s: %w", chain, err)
			}
		}
		if len(batch) < rewriteBatch {
			return r, nil
		}
		seq = r.HeadSeq + 1
	}
}
