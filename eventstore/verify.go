package eventstore

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// ChainRecord is one event as an export carries it for verification (and as Verifier reads the
// log): the fields of its Link, its recorded hash and the hash of its predecessor, and its payload
// and metadata when they are not withheld.
type ChainRecord struct {
	Position       int64     `json:"position"`
	ChainID        string    `json:"chain_id"`
	ChainSeq       int64     `json:"chain_seq"`
	EventID        string    `json:"event_id"`
	StreamID       string    `json:"stream_id"`
	StreamType     string    `json:"stream_type"`
	StreamVersion  int64     `json:"stream_version"`
	EventType      string    `json:"event_type"`
	RecordedAt     time.Time `json:"recorded_at"`
	Data           []byte    `json:"-"` // the payload's stored bytes; nil when withheld
	DataSHA256     Hash      `json:"data_sha256"`
	Metadata       []byte    `json:"-"`
	MetadataSHA256 Hash      `json:"metadata_sha256"`
	PrevHash       Hash      `json:"prev_hash"`
	Hash           Hash      `json:"hash"`
}

// Link is the record's link in its chain.
func (r ChainRecord) Link() Link {
	return Link{ChainID: r.ChainID, ChainSeq: r.ChainSeq, EventID: r.EventID, StreamID: r.StreamID, StreamType: r.StreamType,
		StreamVersion: r.StreamVersion, EventType: r.EventType, PayloadSHA256: r.DataSHA256, MetadataSHA256: r.MetadataSHA256,
		RecordedAt: r.RecordedAt, PrevHash: r.PrevHash}
}

// BrokenLink is the first place a verification found the chains broken: which event and what is
// wrong with it.
type BrokenLink struct {
	ChainID  string
	ChainSeq int64  // the sequence the event claims (or, for a signed head, the head's)
	Position int64  // in the log; 0 when unknown
	EventID  string // "" for a signed head
	Where    string // where the verifier read it: "line 12" of a file, "" for the live log
	Problem  string
}

func (b *BrokenLink) Error() string {
	var at []string
	if b.EventID != "" {
		at = append(at, "event "+b.EventID)
	}
	if b.Position > 0 {
		at = append(at, fmt.Sprintf("position %d", b.Position))
	}
	if b.Where != "" {
		at = append(at, b.Where)
	}
	return fmt.Sprintf("chain %s, entry %d (%s): %s", b.ChainID, b.ChainSeq, strings.Join(at, ", "), b.Problem)
}

// chainProgress is what a Verifier knows of one chain.
type chainProgress struct {
	first, last int64 // sequences verified; 0 before the first
	hash        Hash  // of last
	signed      []HeadSignature
}

// Verifier checks chain records and signed heads as they come: each chain's records in sequence,
// each link's hash, each payload against its digest, and each signed head against the key and the
// records. A chain may start past its first event (an export of a period): its first record's
// PrevHash is taken as given, and the signatures bind what follows it.
type Verifier struct {
	keys     map[string]ed25519.PublicKey
	chains   map[string]*chainProgress
	records  int64
	verified int // signatures matched against records
}

// NewVerifier returns a verifier that trusts signatures by these keys only.
func NewVerifier(keys ...ed25519.PublicKey) *Verifier {
	v := &Verifier{keys: map[string]ed25519.PublicKey{}, chains: map[string]*chainProgress{}}
	for _, k := range keys {
		v.keys[KeyID(k)] = k
	}
	return v
}

func (v *Verifier) chain(id string) *chainProgress {
	c := v.chains[id]
	if c == nil {
		c = &chainProgress{}
		v.chains[id] = c
	}
	return c
}

// checkedRecord is a record with what its content alone tells: whether its payload and metadata
// match their digests, and its link's hash. It is computed apart from the chain's order (a file's
// records are hashed on every processor); Verifier.checked holds it against the chain.
type checkedRecord struct {
	ChainRecord
	dataOK, metadataOK bool
	hash               Hash
}

func check(r ChainRecord) checkedRecord {
	return checkedRecord{ChainRecord: r, dataOK: r.Data == nil || sha256.Sum256(r.Data) == r.DataSHA256,
		metadataOK: r.Metadata == nil || sha256.Sum256(r.Metadata) == r.MetadataSHA256, hash: r.Link().Hash()}
}

// Record verifies the next record of its chain; where says where it was read. It returns a
// *BrokenLink for the first thing wrong.
func (v *Verifier) Record(r ChainRecord, where string) error { return v.checked(check(r), where) }

// checked is Record with the record's content already checked.
func (v *Verifier) checked(cr checkedRecord, where string) error {
	r := cr.ChainRecord
	broken := func(format string, args ...any) error {
		return &BrokenLink{ChainID: r.ChainID, ChainSeq: r.ChainSeq, Position: r.Position, EventID: r.EventID, Where: where,
			Problem: fmt.Sprintf(format, args...)}
	}
	c := v.chain(r.ChainID)
	switch {
	case r.ChainID == "" || r.ChainSeq < 1:
		return broken("the event has no place in a chain")
	case c.last == 0 && r.ChainSeq == 1 && r.PrevHash != (Hash{}):
		return broken("the first event of a chain must follow the zero hash, not %s", r.PrevHash)
	case c.last > 0 && r.ChainSeq == c.last:
		return broken("the chain has entry %d twice", r.ChainSeq)
	case c.last > 0 && r.ChainSeq < c.last:
		return broken("entry %d comes after entry %d: entries are out of order", r.ChainSeq, c.last)
	case c.last > 0 && r.ChainSeq == c.last+2:
		return broken("entry %d follows entry %d: entry %d is missing (removed, or moved elsewhere)", r.ChainSeq, c.last, c.last+1)
	case c.last > 0 && r.ChainSeq > c.last+1:
		return broken("entry %d follows entry %d: entries %d to %d are missing", r.ChainSeq, c.last, c.last+1, r.ChainSeq-1)
	case c.last > 0 && r.PrevHash != c.hash:
		return broken("its previous hash %s is not the hash of entry %d, %s", r.PrevHash, c.last, c.hash)
	case !cr.dataOK:
		return broken("its data does not match the data's recorded SHA-256 (the data was changed)")
	case !cr.metadataOK:
		return broken("its metadata does not match the metadata's recorded SHA-256 (the metadata was changed)")
	case cr.hash != r.Hash:
		return broken("its recorded hash %s is not the hash of its content, %s (a field of the entry was changed)", r.Hash, cr.hash)
	}
	if c.first == 0 {
		c.first = r.ChainSeq
	}
	c.last, c.hash = r.ChainSeq, r.Hash
	v.records++
	for len(c.signed) > 0 && c.signed[0].ChainSeq <= c.last {
		sig := c.signed[0]
		c.signed = c.signed[1:]
		if err := v.match(c, sig, r); err != nil {
			return err
		}
	}
	return nil
}

// Signature verifies a signed head: by a trusted key, and over the hash its chain has at its
// sequence, which the chain's records show when they come. A chain's signatures are given before
// its records (an export lists them first).
func (v *Verifier) Signature(sig HeadSignature, where string) error {
	broken := func(format string, args ...any) error {
		return &BrokenLink{ChainID: sig.ChainID, ChainSeq: sig.ChainSeq, Where: where, Problem: fmt.Sprintf(format, args...)}
	}
	key, ok := v.keys[sig.KeyID]
	switch {
	case !ok:
		return broken("the signed head names key %s, which is not trusted", sig.KeyID)
	case !sig.Verify(key):
		return broken("the signature of the head (key %s) does not verify: the signed head was changed or forged", sig.KeyID)
	}
	c := v.chain(sig.ChainID)
	if c.last > 0 {
		return broken("the signed head comes after records of its chain: signatures must come first")
	}
	i := sort.Search(len(c.signed), func(i int) bool { return c.signed[i].ChainSeq >= sig.ChainSeq })
	c.signed = slices.Insert(c.signed, i, sig)
	return nil
}

// match checks a signature whose sequence the chain has reached; r is the record at that
// sequence when it is the last one read.
func (v *Verifier) match(c *chainProgress, sig HeadSignature, r ChainRecord) error {
	broken := func(format string, args ...any) error {
		return &BrokenLink{ChainID: sig.ChainID, ChainSeq: sig.ChainSeq, Position: r.Position, EventID: r.EventID, Problem: fmt.Sprintf(format, args...)}
	}
	switch {
	case sig.ChainSeq < c.first:
		return nil // before the records given: nothing here to hold it against
	case sig.ChainSeq == c.last && sig.Hash != c.hash:
		return broken("the head signed at %s says entry %d has hash %s, the entries give %s", sig.SignedAt.Format(time.RFC3339), sig.ChainSeq, sig.Hash, c.hash)
	case sig.ChainSeq != c.last:
		return broken("the head signed at %s cannot be checked: the entries skipped from before it to %d", sig.SignedAt.Format(time.RFC3339), c.last)
	}
	v.verified++
	return nil
}

// Finish checks what only the end tells: a signed head past the last record of its chain means
// records were removed from the end. It returns the summary of what was verified.
func (v *Verifier) Finish() (Summary, error) {
	s := Summary{Records: v.records, SignaturesMatched: v.verified}
	ids := make([]string, 0, len(v.chains))
	for id := range v.chains {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c := v.chains[id]
		if len(c.signed) > 0 {
			sig := c.signed[0]
			return s, &BrokenLink{ChainID: id, ChainSeq: sig.ChainSeq, Problem: fmt.Sprintf(
				"a head signed at %s says the chain has %d entries; the entries end at %d: entries were removed from the end",
				sig.SignedAt.Format(time.RFC3339), sig.ChainSeq, c.last)}
		}
		if c.last > 0 {
			s.Chains = append(s.Chains, ChainSummary{ChainID: id, First: c.first, Last: c.last, Head: c.hash})
		}
	}
	return s, nil
}

// Summary is what a verification covered.
type Summary struct {
	Records           int64
	SignaturesMatched int
	Chains            []ChainSummary
}

// ChainSummary is the part of one chain that was verified.
type ChainSummary struct {
	ChainID     string
	First, Last int64
	Head        Hash
}

// VerifyLive verifies the whole log: every event in log order, then every signed head with the
// keys given. It returns the summary and, for the first broken link, a *BrokenLink; progress is
// called every 100,000 events.
func VerifyLive(ctx context.Context, db *sql.DB, keys []ed25519.PublicKey, progress func(events int64)) (Summary, error) {
	v := NewVerifier(keys...)
	sigs, err := ReadAllSignatures(ctx, db)
	if err != nil {
		return Summary{}, err
	}
	for _, sig := range sigs {
		if err := v.Signature(sig, "chain_signatures"); err != nil {
			return Summary{}, err
		}
	}
	const batch = 5000
	var after int64
	for {
		records, err := ReadChainRecords(ctx, db, "position > ? ORDER BY position LIMIT ?", after, batch)
		if err != nil {
			return Summary{}, err
		}
		for _, r := range records {
			if r.Position != after+1 {
				return Summary{}, &BrokenLink{ChainID: r.ChainID, ChainSeq: r.ChainSeq, Position: r.Position, EventID: r.EventID,
					Problem: fmt.Sprintf("the log skips from position %d to %d", after, r.Position)}
			}
			r.PrevHash = v.chain(r.ChainID).hash // the log keeps the predecessor's hash once, in the predecessor
			if err := v.Record(r, ""); err != nil {
				return Summary{}, err
			}
			after = r.Position
			if progress != nil && after%100_000 == 0 {
				progress(after)
			}
		}
		if len(records) < batch {
			return v.Finish()
		}
	}
}

// ReadChainRecords reads events with their links, payloads and metadata: where is the query's
// condition and order after WHERE.
func ReadChainRecords(ctx context.Context, db *sql.DB, where string, args ...any) ([]ChainRecord, error) {
	rows, err := db.QueryContext(ctx, `SELECT position, event_id, stream_id, stream_type, stream_version, event_type, payload,
		metadata, recorded_at, COALESCE(chain_id, ''), COALESCE(chain_seq, 0), hash FROM events WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read chain records: %w", err)
	}
	defer rows.Close()
	var records []ChainRecord
	for rows.Next() {
		var r ChainRecord
		var hash []byte
		if err := rows.Scan(&r.Position, &r.EventID, &r.StreamID, &r.StreamType, &r.StreamVersion, &r.EventType, &r.Data,
			&r.Metadata, &r.RecordedAt, &r.ChainID, &r.ChainSeq, &hash); err != nil {
			return nil, fmt.Errorf("eventstore: read chain records: %w", err)
		}
		r.RecordedAt = r.RecordedAt.UTC()
		r.DataSHA256, r.MetadataSHA256 = sha256.Sum256(r.Data), sha256.Sum256(r.Metadata)
		copy(r.Hash[:], hash)
		records = append(records, r)
	}
	return records, rows.Err()
}
