package eventstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/jsontext"
)

// An export of the audit trail is self-contained evidence: it carries, per chain, the signed heads
// and then every event of the chain from the first one exported to a signed head, each with its
// link, its hash and its payload (withheld when it holds password or token hashes: its SHA-256
// still binds it), and the audit entry it makes when it makes one. VerifyFile checks it with
// nothing but a trusted public key. docs/ARCHITECTURE.md, "Tamper evidence", describes the format.

// ExportFormat names the format in an export's header.
const ExportFormat = "clouddb-audit-export/1"

// ExportHeader is the first record of an export.
type ExportHeader struct {
	Kind       string      `json:"kind"` // "header"
	Format     string      `json:"format"`
	ExportedAt time.Time   `json:"exported_at"`
	TenantID   string      `json:"tenant_id,omitempty"` // absent: every tenant's (a super admin's export)
	From       *time.Time  `json:"from,omitempty"`
	To         *time.Time  `json:"to,omitempty"`
	PublicKeys []ExportKey `json:"public_keys"`
}

// ExportKey is a public key that signed heads in the export, as the export states it. An auditor
// trusts it only once it matches GET /audit/public-key (or the key the auditor was given).
type ExportKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"` // "Ed25519"
	PublicKey []byte `json:"public_key"`
}

// timeLayout keeps the stored microseconds: the hash covers them.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// ExportWriter writes an export as NDJSON (one record a line) or JSON
// ({"header": ..., "records": [...]}), buffered; Close ends it.
type ExportWriter struct {
	w       *bufio.Writer
	json    bool
	records int
	line    []byte
}

// NewExportWriter writes h and returns a writer for the records that follow; asJSON chooses JSON
// over NDJSON.
func NewExportWriter(w io.Writer, asJSON bool, h ExportHeader) (*ExportWriter, error) {
	h.Kind, h.Format = "header", ExportFormat
	header, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("eventstore: encode export header: %w", err)
	}
	e := &ExportWriter{w: bufio.NewWriterSize(w, 64<<10), json: asJSON}
	if asJSON {
		e.w.WriteString(`{"header":`)
		e.w.Write(header)
		e.w.WriteString(`,"records":[`)
	} else {
		e.w.Write(header)
		e.w.WriteByte('\n')
	}
	return e, nil
}

func (e *ExportWriter) record(b []byte) error {
	if e.json {
		if e.records > 0 {
			e.w.WriteByte(',')
		}
		e.w.WriteByte('\n')
		_, err := e.w.Write(b)
		e.records++
		return err
	}
	e.w.Write(b)
	e.records++
	return e.w.WriteByte('\n')
}

// SignedHead writes a signed head; a chain's come before its events.
func (e *ExportWriter) SignedHead(sig HeadSignature) error {
	b, err := json.Marshal(struct { // signed_at with its microseconds: the signature covers them
		Kind      string `json:"kind"`
		ChainID   string `json:"chain_id"`
		ChainSeq  int64  `json:"chain_seq"`
		Hash      Hash   `json:"hash"`
		SignedAt  string `json:"signed_at"`
		KeyID     string `json:"key_id"`
		Signature []byte `json:"signature"`
	}{"signed_head", sig.ChainID, sig.ChainSeq, sig.Hash, sig.SignedAt.UTC().Format(timeLayout), sig.KeyID, sig.Signature})
	if err != nil {
		return fmt.Errorf("eventstore: encode signed head: %w", err)
	}
	return e.record(b)
}

// eventFields are an event record's fields but its payload, metadata and audit entry, as a
// verification reads them.
type eventFields struct {
	Kind           string `json:"kind"`
	ChainID        string `json:"chain_id"`
	ChainSeq       int64  `json:"chain_seq"`
	Position       int64  `json:"position"`
	EventID        string `json:"event_id"`
	StreamID       string `json:"stream_id"`
	StreamType     string `json:"stream_type"`
	StreamVersion  int64  `json:"stream_version"`
	EventType      string `json:"event_type"`
	RecordedAt     string `json:"recorded_at"`
	DataSHA256     Hash   `json:"data_sha256"`
	MetadataSHA256 Hash   `json:"metadata_sha256"`
	PrevHash       Hash   `json:"prev_hash"`
	Hash           Hash   `json:"hash"`
	DataWithheld   string `json:"data_withheld,omitempty"`
}

// Event writes an event with its payload (unless withheld says why not) and metadata exactly as
// stored, and audit, the JSON of the audit entry it makes (empty when none).
func (e *ExportWriter) Event(r ChainRecord, withheld string, audit []byte) error {
	e.line = AppendEvent(e.line[:0], r, withheld, audit)
	return e.record(e.line)
}

// Encoded writes a record AppendEvent encoded (an export encodes its windows side by side).
func (e *ExportWriter) Encoded(record []byte) error { return e.record(record) }

// AppendEvent appends the record Event writes. It is written by hand, as json.Marshal would write
// it: an export writes a million of them.
func AppendEvent(b []byte, r ChainRecord, withheld string, audit []byte) []byte {
	b = append(b, `{"kind":"event","chain_id":`...)
	b = jsontext.AppendString(b, r.ChainID)
	b = append(b, `,"chain_seq":`...)
	b = strconv.AppendInt(b, r.ChainSeq, 10)
	b = append(b, `,"position":`...)
	b = strconv.AppendInt(b, r.Position, 10)
	b = append(b, `,"event_id":`...)
	b = jsontext.AppendString(b, r.EventID)
	b = append(b, `,"stream_id":`...)
	b = jsontext.AppendString(b, r.StreamID)
	b = append(b, `,"stream_type":`...)
	b = jsontext.AppendString(b, r.StreamType)
	b = append(b, `,"stream_version":`...)
	b = strconv.AppendInt(b, r.StreamVersion, 10)
	b = append(b, `,"event_type":`...)
	b = jsontext.AppendString(b, r.EventType)
	b = append(b, `,"recorded_at":"`...)
	b = r.RecordedAt.UTC().AppendFormat(b, timeLayout)
	for _, h := range []struct {
		name string
		hash *Hash
	}{{`","data_sha256":"`, &r.DataSHA256}, {`","metadata_sha256":"`, &r.MetadataSHA256}, {`","prev_hash":"`, &r.PrevHash}, {`","hash":"`, &r.Hash}} {
		b = append(b, h.name...)
		b = hex.AppendEncode(b, h.hash[:])
	}
	b = append(b, '"')
	if withheld != "" {
		b = append(b, `,"data_withheld":`...)
		b = jsontext.AppendString(b, withheld)
	}
	b = append(b, `,"data":`...)
	if withheld != "" || r.Data == nil {
		b = append(b, "null"...)
	} else {
		b = appendStored(b, r.Data)
	}
	b = append(b, `,"metadata":`...)
	b = appendStored(b, r.Metadata)
	if len(audit) > 0 {
		b = append(b, `,"audit":`...)
		b = append(b, audit...)
	}
	return append(b, '}')
}

// appendStored appends a stored payload or metadata: as it is when it is one JSON value, as the
// store writes it; else (bytes written to the database behind the store's back, which the text
// columns of migration 31 no longer refuse) as a JSON string of them. As they are, they could
// end the value and add keys to the record (a second data_sha256, which the verifier would take)
// and make an altered log verify; as a string they stay one value, shown, and unlike their
// digest, so the link breaks there.
func appendStored(b, stored []byte) []byte {
	if s := (jsonScan{b: stored}); s.oneValue() || json.Valid(stored) { // the scan is the export's cheap path
		return append(b, stored...)
	}
	return jsontext.AppendString(b, string(stored))
}

// Close ends the export and flushes it.
func (e *ExportWriter) Close() error {
	if e.json {
		e.w.WriteString("\n]}\n")
	}
	return e.w.Flush()
}

// Withheld says why an export leaves out a payload: it holds password or token hashes (a field,
// at any depth, whose name has "hash" in it), which no auditor needs and the digest still binds.
// "" when the payload may be shown.
func Withheld(payload []byte) string {
	if !bytes.Contains(payload, []byte("hash")) {
		return ""
	}
	var v any
	if err := json.Unmarshal(payload, &v); err != nil {
		return "unreadable"
	}
	if holdsHash(v) {
		return "holds password or token hashes"
	}
	return ""
}

func holdsHash(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for name, value := range v {
			if domain.SecretHashField(name) || holdsHash(value) {
				return true
			}
		}
	case []any:
		for _, value := range v {
			if holdsHash(value) {
				return true
			}
		}
	}
	return false
}

// ReadChain calls fn with the events of chain from sequence first to last in order, with each
// record's PrevHash filled, reading a page at a time.
func ReadChain(ctx context.Context, db *sql.DB, chain string, first, last int64, fn func(ChainRecord) error) error {
	var prev Hash
	if first > 1 {
		var hash []byte
		if err := db.QueryRowContext(ctx, `SELECT hash FROM events WHERE chain_id = ? AND chain_seq = ?`, chain, first-1).Scan(&hash); err != nil {
			return fmt.Errorf("eventstore: read entry %d of chain %s: %w", first-1, chain, err)
		}
		copy(prev[:], hash)
	}
	const page = 2000
	for from := first; from <= last; from += page {
		records, err := ReadChainRecords(ctx, db, `chain_id = ? AND chain_seq BETWEEN ? AND ? ORDER BY chain_seq`, chain, from, min(last, from+page-1))
		if err != nil {
			return err
		}
		for _, r := range records {
			r.PrevHash, prev = prev, r.Hash
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// FileSummary is what VerifyFile verified.
type FileSummary struct {
	Summary
	Header       ExportHeader
	AuditEntries int64
	Signatures   int
}

// fileRecord is any record of an export after its header.
type fileRecord struct {
	Kind string `json:"kind"`
	eventFields
	Data      json.RawMessage      `json:"data"`
	Metadata  json.RawMessage      `json:"metadata"`
	Audit     *struct{ ID string } `json:"audit"`
	SignedAt  string               `json:"signed_at"`
	KeyID     string               `json:"key_id"`
	Signature []byte               `json:"signature"`
}

// VerifyFile verifies an export read from r (NDJSON or JSON) with keys as the trusted public
// keys, or, when keys is empty, the keys the export's header states (the caller then says so, and
// an auditor compares their ids with GET /audit/public-key). The first broken link is returned as
// a *BrokenLink that names the record's line.
func VerifyFile(r io.Reader, keys []ed25519.PublicKey) (FileSummary, error) {
	in := bufio.NewReaderSize(r, 1<<20)
	first, err := in.Peek(64)
	if err != nil && len(first) == 0 {
		return FileSummary{}, fmt.Errorf("eventstore: the file is empty: %w", err)
	}
	var next func() (json.RawMessage, int, error)
	var header ExportHeader
	if bytes.HasPrefix(bytes.TrimSpace(first), []byte(`{"header"`)) {
		next, err = jsonRecords(in, &header)
	} else {
		next, err = ndjsonRecords(in, &header)
	}
	if err != nil {
		return FileSummary{}, err
	}
	if header.Kind != "header" || header.Format != ExportFormat {
		return FileSummary{}, fmt.Errorf("eventstore: not an audit export (%s): its header says format %q", ExportFormat, header.Format)
	}
	if len(keys) == 0 {
		for _, k := range header.PublicKeys {
			keys = append(keys, ed25519.PublicKey(k.PublicKey))
		}
	}
	v := NewVerifier(keys...)
	s := FileSummary{Header: header}
	stop := make(chan struct{})
	defer close(stop)
	for batch := range decodeRecords(next, stop) {
		<-batch.done
		for i := range batch.out {
			d := &batch.out[i]
			if d.err != nil {
				return s, d.err
			}
			if err := s.add(v, d); err != nil {
				return s, err
			}
		}
	}
	s.Summary, err = v.Finish()
	return s, err
}

// add verifies the next record of the file, as a decoding worker left it.
func (s *FileSummary) add(v *Verifier, d *decodedRecord) error {
	rec, where := &d.rec, d.where
	switch rec.Kind {
	case "signed_head":
		at, err := time.Parse(time.RFC3339Nano, rec.SignedAt)
		if err != nil {
			return fmt.Errorf("eventstore: %s: signed_at: %w", where, err)
		}
		sig := HeadSignature{ChainID: rec.ChainID, ChainSeq: rec.ChainSeq, Hash: rec.Hash, SignedAt: at, KeyID: rec.KeyID, Signature: rec.Signature}
		if err := v.Signature(sig, where); err != nil {
			return err
		}
		s.Signatures++
	case "event":
		if d.eventErr != nil {
			return d.eventErr
		}
		if err := v.checked(d.event, where); err != nil {
			return err
		}
		if rec.Audit != nil {
			if rec.Audit.ID != rec.EventID {
				return &BrokenLink{ChainID: rec.ChainID, ChainSeq: rec.ChainSeq, Position: rec.Position, EventID: rec.EventID, Where: where,
					Problem: fmt.Sprintf("its audit entry has id %s, not the event's", rec.Audit.ID)}
			}
			s.AuditEntries++
		}
	default:
		return fmt.Errorf("eventstore: %s: unknown record kind %q", where, rec.Kind)
	}
	return nil
}

// decodedRecord is a record of a file as a decoding worker left it: decoded, and for an event,
// its content checked (checkedRecord) or what makes it no chain record (eventErr).
type decodedRecord struct {
	rec      fileRecord
	line     int
	where    string // "line N"
	err      error  // a record that is not JSON, or the file's read error; nothing follows it
	event    checkedRecord
	eventErr error
}

// decodeBatch is records read in order, decoded by one worker.
type decodeBatch struct {
	raws  [][]byte
	lines []int
	out   []decodedRecord
	done  chan struct{} // closed once out is filled
}

// decodeRecords reads the records next gives, decodes them (scanRecord, else encoding/json) and
// checks each event's content (its digests and link hash) on as many goroutines as there are
// processors, and returns the batches in file order; each is ready when its done is closed.
// Reading stops when stop is closed. At most a few batches per processor are in memory.
func decodeRecords(next func() (json.RawMessage, int, error), stop <-chan struct{}) <-chan *decodeBatch {
	const perBatch = 256
	workers := runtime.GOMAXPROCS(0)
	work, ordered := make(chan *decodeBatch, 2*workers), make(chan *decodeBatch, 2*workers)
	for range workers {
		go func() {
			for b := range work {
				b.out = make([]decodedRecord, len(b.raws))
				for i, raw := range b.raws {
					d := &b.out[i]
					d.line, d.where = b.lines[i], "line "+strconv.Itoa(b.lines[i])
					if !scanRecord(raw, &d.rec) {
						d.rec = fileRecord{}
						if err := json.Unmarshal(raw, &d.rec); err != nil {
							d.err = fmt.Errorf("eventstore: line %d is not a record: %w", b.lines[i], err)
							b.out = b.out[:i+1]
							break
						}
					}
					if d.rec.Kind == "event" {
						var cr ChainRecord
						if cr, d.eventErr = d.rec.chainRecord(d.where); d.eventErr == nil {
							d.event = check(cr)
						}
					}
				}
				close(b.done)
			}
		}()
	}
	go func() {
		defer close(ordered)
		defer close(work)
		emit := func(b *decodeBatch, decode bool) bool {
			if decode {
				select {
				case work <- b:
				case <-stop:
					return false
				}
			}
			select {
			case ordered <- b:
				return true
			case <-stop:
				return false
			}
		}
		size := 64 << 10 // of the largest batch's text so far
		for {
			b := &decodeBatch{done: make(chan struct{})}
			var readErr error
			text, ends := make([]byte, 0, size), make([]int, 0, perBatch) // the batch's records, copied into one block
			for len(ends) < perBatch {
				raw, line, err := next()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						readErr = err
					}
					break
				}
				text, ends, b.lines = append(text, raw...), append(ends, len(text)+len(raw)), append(b.lines, line)
			}
			size = max(size, len(text))
			start := 0
			for _, end := range ends {
				b.raws, start = append(b.raws, text[start:end:end]), end
			}
			if len(b.raws) > 0 && !emit(b, true) {
				return
			}
			if readErr != nil { // reported after the records read before it
				failed := &decodeBatch{done: make(chan struct{}), out: []decodedRecord{{err: readErr}}}
				close(failed.done)
				emit(failed, false)
				return
			}
			if len(b.raws) < perBatch {
				return
			}
		}
	}()
	return ordered
}

func (rec fileRecord) chainRecord(where string) (ChainRecord, error) {
	at, err := time.Parse(time.RFC3339Nano, rec.RecordedAt)
	if err != nil {
		return ChainRecord{}, fmt.Errorf("eventstore: %s: recorded_at: %w", where, err)
	}
	r := ChainRecord{Position: rec.Position, ChainID: rec.ChainID, ChainSeq: rec.ChainSeq, EventID: rec.EventID, StreamID: rec.StreamID,
		StreamType: rec.StreamType, StreamVersion: rec.StreamVersion, EventType: rec.EventType, RecordedAt: at,
		DataSHA256: rec.DataSHA256, MetadataSHA256: rec.MetadataSHA256, PrevHash: rec.PrevHash, Hash: rec.Hash, Metadata: rec.Metadata}
	if !bytes.Equal(rec.Data, []byte("null")) {
		r.Data = rec.Data
	}
	if r.Metadata == nil {
		r.Metadata = []byte{} // absent metadata is not the metadata digested
	}
	return r, nil
}

// ndjsonRecords reads the header line into h and returns the reader of the following lines.
func ndjsonRecords(in *bufio.Reader, h *ExportHeader) (func() (json.RawMessage, int, error), error) {
	line := 0
	next := func() (json.RawMessage, int, error) {
		for {
			b, err := in.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				full := append([]byte{}, b...)
				for errors.Is(err, bufio.ErrBufferFull) {
					b, err = in.ReadSlice('\n')
					full = append(full, b...)
				}
				b = full
			}
			if len(bytes.TrimSpace(b)) == 0 {
				if err != nil {
					return nil, line, err
				}
				line++
				continue
			}
			line++
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, line, err
			}
			return b, line, nil
		}
	}
	raw, _, err := next()
	if err != nil {
		return nil, fmt.Errorf("eventstore: read the export's header: %w", err)
	}
	if err := json.Unmarshal(raw, h); err != nil {
		return nil, fmt.Errorf("eventstore: line 1 is not an export header: %w", err)
	}
	return next, nil
}

// jsonRecords reads {"header": ..., "records": [ and returns the reader of the array's elements.
func jsonRecords(in *bufio.Reader, h *ExportHeader) (func() (json.RawMessage, int, error), error) {
	dec := json.NewDecoder(in)
	expect := func(want string) error {
		tok, err := dec.Token()
		if err != nil || fmt.Sprint(tok) != want {
			return fmt.Errorf("eventstore: the export is not {\"header\": ..., \"records\": [...]} (at %s: %v %v)", want, tok, err)
		}
		return nil
	}
	for _, want := range []string{"{", "header"} {
		if err := expect(want); err != nil {
			return nil, err
		}
	}
	if err := dec.Decode(h); err != nil {
		return nil, fmt.Errorf("eventstore: the export's header: %w", err)
	}
	for _, want := range []string{"records", "["} {
		if err := expect(want); err != nil {
			return nil, err
		}
	}
	n := 0
	return func() (json.RawMessage, int, error) {
		if !dec.More() {
			return nil, n, io.EOF
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, n, fmt.Errorf("eventstore: record %d: %w", n+1, err)
		}
		n++
		return raw, n + 1, nil // the header is line 1 of the records
	}, nil
}
