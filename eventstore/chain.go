package eventstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// The hash chains of the log (docs/ARCHITECTURE.md, "Tamper evidence"). Every event belongs to
// one chain, its tenant's (Metadata.TenantID) or, without a tenant, the platform's; at append time
// it gets the next sequence number of its chain and the hash of its chain's previous event, and
// its own hash covers both. Rewriting, removing or reordering any recorded event therefore breaks
// the links that follow it.

// PlatformChain is the chain of the events recorded outside any tenant.
const PlatformChain = "platform"

// ChainOf is the chain of an event with metadata md.
func ChainOf(md Metadata) string {
	if md.TenantID != "" {
		return md.TenantID
	}
	return PlatformChain
}

// Hash is a SHA-256 digest.
type Hash [sha256.Size]byte

// chainDomain opens the canonical bytes of a link, so they can never be mistaken for anything else
// hashed with SHA-256 (a head's signature, another version of this encoding).
const chainDomain = "clouddb.event-chain.v1"

// Link is an event as its chain hashes it: every stored field but the global position (an
// auditor verifies a tenant's chain without the other tenants' events), with its payload and
// metadata as the SHA-256 of their stored bytes (an export may withhold a payload, say one holding
// a password hash, and still be verified).
type Link struct {
	ChainID        string
	ChainSeq       int64 // 1-based, gapless in its chain, in log order
	EventID        string
	StreamID       string
	StreamType     string
	StreamVersion  int64
	EventType      string
	PayloadSHA256  Hash
	MetadataSHA256 Hash
	RecordedAt     time.Time // microseconds
	PrevHash       Hash      // zero for the first event of a chain
}

// Canonical returns the bytes a link's hash covers: each field as a 4-byte big-endian length
// followed by its bytes, in this order: "clouddb.event-chain.v1", chain id, chain sequence, event
// id, stream id, stream type, stream version, event type, payload SHA-256, metadata SHA-256,
// recorded_at, previous hash. Strings are their UTF-8 bytes; integers are 8 bytes, big-endian
// (recorded_at as microseconds since the Unix epoch, UTC).
func (l Link) Canonical() []byte { return l.appendCanonical(nil) }

func (l Link) appendCanonical(b []byte) []byte {
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	num := func(n int64) {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	digest := func(h Hash) {
		b = binary.BigEndian.AppendUint32(b, sha256.Size)
		b = append(b, h[:]...)
	}
	str(chainDomain)
	str(l.ChainID)
	num(l.ChainSeq)
	str(l.EventID)
	str(l.StreamID)
	str(l.StreamType)
	num(l.StreamVersion)
	str(l.EventType)
	digest(l.PayloadSHA256)
	digest(l.MetadataSHA256)
	num(l.RecordedAt.UnixMicro())
	digest(l.PrevHash)
	return b
}

// Hash is the SHA-256 of the link's canonical bytes: the event's hash in its chain.
func (l Link) Hash() Hash {
	var buf [512]byte // most links fit: no allocation per event
	return sha256.Sum256(l.appendCanonical(buf[:0]))
}

// chainHead is the last event of a chain.
type chainHead struct {
	seq  int64
	hash Hash
}

// chainState is the writer's knowledge of the chains' heads. It is current while the log's head
// is where this process's last commit left it; once another process appended, it is read again.
// Only the writer goroutine uses it.
type chainState struct {
	at    int64 // the log position the heads are current at; -1 when unknown
	heads map[string]chainHead
}

// chainTx is the chains as one transaction moves them; committed into the state only if the
// transaction commits.
type chainTx struct {
	state *chainState
	moved map[string]chainHead
}

// begin returns the chains for a transaction that holds the sequence lock with the log at
// position, with the heads of chains loaded. When another process appended since this one last
// did, it forgets what it knew, and first chains what is not chained yet (events appended by a
// process of a version before the chains).
func (c *chainState) begin(ctx context.Context, tx *sql.Tx, position int64, chains []string) (*chainTx, error) {
	ct := &chainTx{state: c, moved: map[string]chainHead{}}
	if c.at != position {
		c.at, c.heads = -1, map[string]chainHead{}
		for {
			n, err := chainUnchained(ctx, tx, ct, 1000)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				break
			}
		}
	}
	if err := ct.load(ctx, tx, chains); err != nil {
		return nil, err
	}
	return ct, nil
}

// load reads the heads of the chains this transaction does not know yet.
func (ct *chainTx) load(ctx context.Context, tx *sql.Tx, chains []string) error {
	var parts []string
	var args []any
	seen := map[string]bool{}
	for _, id := range chains {
		if _, ok := ct.head(id); ok || seen[id] {
			continue
		}
		seen[id] = true
		parts = append(parts, `(SELECT chain_id, chain_seq, hash FROM events WHERE chain_id = ? ORDER BY chain_seq DESC LIMIT 1)`)
		args = append(args, id)
	}
	if len(parts) == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, strings.Join(parts, " UNION ALL "), args...)
	if err != nil {
		return fmt.Errorf("eventstore: read chain heads: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var h chainHead
		var hash []byte
		if err := rows.Scan(&id, &h.seq, &hash); err != nil {
			return fmt.Errorf("eventstore: read chain heads: %w", err)
		}
		copy(h.hash[:], hash)
		ct.moved[id] = h
		delete(seen, id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("eventstore: read chain heads: %w", err)
	}
	for id := range seen { // a chain without events yet
		ct.moved[id] = chainHead{}
	}
	return nil
}

func (ct *chainTx) head(id string) (chainHead, bool) {
	if h, ok := ct.moved[id]; ok {
		return h, true
	}
	h, ok := ct.state.heads[id]
	return h, ok
}

// link places l after the head of its chain (which must be loaded) and returns its hash.
func (ct *chainTx) link(l *Link) Hash {
	head, _ := ct.head(l.ChainID)
	l.ChainSeq, l.PrevHash = head.seq+1, head.hash
	hash := l.Hash()
	ct.moved[l.ChainID] = chainHead{seq: l.ChainSeq, hash: hash}
	return hash
}

// commit makes the transaction's heads the state's, current at position.
func (ct *chainTx) commit(position int64) {
	for id, h := range ct.moved {
		ct.state.heads[id] = h
	}
	ct.state.at = position
}

// chainUnchained chains up to limit events recorded without a link, in log order, continuing their
// chains, and returns how many it chained. The caller holds the sequence lock, so the events below
// the head are all there is and nobody else chains meanwhile: every event chained is older than
// every event not chained.
func chainUnchained(ctx context.Context, tx *sql.Tx, ct *chainTx, limit int) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT position, event_id, stream_id, stream_type, stream_version, event_type,
		payload, metadata, recorded_at FROM events WHERE chain_id IS NULL ORDER BY position LIMIT ?`, limit)
	if err != nil {
		return 0, fmt.Errorf("eventstore: read unchained events: %w", err)
	}
	type unchained struct {
		position int64
		link     Link
	}
	var events []unchained
	var chains []string
	for rows.Next() {
		var u unchained
		var payload, metadata []byte
		if err := rows.Scan(&u.position, &u.link.EventID, &u.link.StreamID, &u.link.StreamType, &u.link.StreamVersion,
			&u.link.EventType, &payload, &metadata, &u.link.RecordedAt); err != nil {
			rows.Close()
			return 0, fmt.Errorf("eventstore: read unchained events: %w", err)
		}
		var md Metadata
		if err := json.Unmarshal(metadata, &md); err != nil {
			rows.Close()
			return 0, fmt.Errorf("eventstore: metadata of position %d: %w", u.position, err)
		}
		u.link.ChainID = ChainOf(md)
		u.link.PayloadSHA256, u.link.MetadataSHA256 = sha256.Sum256(payload), sha256.Sum256(metadata)
		events = append(events, u)
		chains = append(chains, u.link.ChainID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("eventstore: read unchained events: %w", err)
	}
	if len(events) == 0 {
		return 0, nil
	}
	if err := ct.load(ctx, tx, chains); err != nil {
		return 0, err
	}
	stmt, err := tx.PrepareContext(ctx, `UPDATE events SET chain_id = ?, chain_seq = ?, hash = ? WHERE position = ?`)
	if err != nil {
		return 0, fmt.Errorf("eventstore: chain events: %w", err)
	}
	defer stmt.Close()
	for _, u := range events {
		hash := ct.link(&u.link)
		if _, err := stmt.ExecContext(ctx, u.link.ChainID, u.link.ChainSeq, hash[:], u.position); err != nil {
			return 0, fmt.Errorf("eventstore: chain the event at position %d: %w", u.position, err)
		}
	}
	return len(events), nil
}

// ChainBackfill chains the events recorded before the log had chains (migrations/0015), in
// batches of 1,000 under the sequence lock, logging its progress; it returns at once when every
// event is chained. Appends wait for at most one batch; a store's writer that meets unchained
// events chains them itself first, so starting to serve before the backfill ends is safe too.
func ChainBackfill(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	var left int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE chain_id IS NULL`).Scan(&left); err != nil {
		return fmt.Errorf("eventstore: count unchained events: %w", err)
	}
	if left == 0 {
		return nil
	}
	log.Info("chaining the events recorded before the hash chains", "events", left)
	start, done, lastLog := time.Now(), int64(0), time.Now()
	for {
		n, err := chainBatch(ctx, db)
		if err != nil {
			return err
		}
		done += int64(n)
		if n == 0 {
			break
		}
		if time.Since(lastLog) >= 5*time.Second {
			log.Info("chaining the events recorded before the hash chains", "chained", done, "of", left)
			lastLog = time.Now()
		}
	}
	log.Info("every event is chained", "chained", done, "took_ms", time.Since(start).Milliseconds())
	return nil
}

// chainBatch chains one batch in a transaction of its own.
func chainBatch(ctx context.Context, db *sql.DB) (int, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, fmt.Errorf("eventstore: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var position int64
	if err := tx.QueryRowContext(ctx, `SELECT last_position FROM event_sequence WHERE id = 1 FOR UPDATE`).Scan(&position); err != nil {
		return 0, fmt.Errorf("eventstore: lock sequence: %w", err)
	}
	state := &chainState{at: -1, heads: map[string]chainHead{}}
	n, err := chainUnchained(ctx, tx, &chainTx{state: state, moved: map[string]chainHead{}}, 1000)
	if err != nil || n == 0 {
		return n, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("eventstore: commit: %w", err)
	}
	return n, nil
}
