package projections

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/jsontext"
)

// AuditEntry is an entry of the audit log as GET /audit shows it.
type AuditEntry struct {
	ID        string          `json:"id"`
	At        time.Time       `json:"at"`
	Actor     AuditActor      `json:"actor"`
	TenantID  *string         `json:"tenant_id"` // null: the platform's (no tenant)
	Action    string          `json:"action"`
	Target    AuditTarget     `json:"target"`
	IP        *string         `json:"ip"`
	UserAgent *string         `json:"user_agent"`
	Details   json.RawMessage `json:"details"`

	Position int64  `json:"-"`
	ChainID  string `json:"-"`
	ChainSeq int64  `json:"-"`
}

// AppendJSON appends the entry as JSON, as json.Marshal would write it (an export writes a
// million of them: reflection would be most of its time).
func (e AuditEntry) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = jsontext.AppendString(b, e.ID)
	b = append(b, `,"at":"`...)
	b = e.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","actor":{"id":`...)
	b = jsontext.AppendNullable(b, e.Actor.ID)
	b = append(b, `,"email":`...)
	b = jsontext.AppendNullable(b, e.Actor.Email)
	b = append(b, `,"via":`...)
	b = jsontext.AppendNullable(b, e.Actor.Via)
	if e.Actor.SessionID != "" {
		b = append(b, `,"session_id":`...)
		b = jsontext.AppendString(b, e.Actor.SessionID)
	}
	if e.Actor.APIKeyID != "" {
		b = append(b, `,"api_key_id":`...)
		b = jsontext.AppendString(b, e.Actor.APIKeyID)
	}
	b = append(b, `},"tenant_id":`...)
	b = jsontext.AppendNullable(b, e.TenantID)
	b = append(b, `,"action":`...)
	b = jsontext.AppendString(b, e.Action)
	b = append(b, `,"target":{"type":`...)
	b = jsontext.AppendString(b, e.Target.Type)
	b = append(b, `,"id":`...)
	b = jsontext.AppendString(b, e.Target.ID)
	b = append(b, `},"ip":`...)
	b = jsontext.AppendNullable(b, e.IP)
	b = append(b, `,"user_agent":`...)
	b = jsontext.AppendNullable(b, e.UserAgent)
	b = append(b, `,"details":`...)
	if len(e.Details) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, e.Details...) // compact JSON, as the projector wrote it
	}
	return append(b, '}')
}

// MarshalJSON is AppendJSON.
func (e AuditEntry) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

// AuditActor is who did it: an account (with its email), through a session or an API key, or
// the server itself (via "system"). ID and Email are null when nobody is known (a failed sign-in).
type AuditActor struct {
	ID        *string `json:"id"`
	Email     *string `json:"email"`
	Via       *string `json:"via"` // session, api_key, system
	SessionID string  `json:"session_id,omitempty"`
	APIKeyID  string  `json:"api_key_id,omitempty"`
}

// AuditTarget is what it was done to.
type AuditTarget struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// AuditFilter selects entries of the audit log.
type AuditFilter struct {
	Chain    string    // a tenant's id or eventstore.PlatformChain; "" for every chain
	From, To time.Time // at ≥ From and at < To; zero for no bound
	ActorID  string
	TargetID string
	// Action is an action ("database.created") or, ending with a dot, a prefix ("database.").
	Action string
	Cursor string // from the previous page
	Limit  int
}

// ErrBadAuditCursor is returned for a cursor Audit did not give.
var ErrBadAuditCursor = domain.NewValidationError("cursor", "is not a cursor of this list")

const auditEntryColumns = `a.position, a.event_id, a.chain_id, a.chain_seq, a.at, a.action, a.actor_id, e.email, a.actor_via,
	a.actor_via_id, a.target_type, a.target_id, a.ip, a.user_agent, a.details`

// Audit returns a page of entries matching f, newest first (by time, then log position), and the
// cursor of the next page ("" after the last).
func (q *Views) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, string, error) {
	where, args := []string{"TRUE"}, []any{}
	add := func(cond string, a ...any) { where, args = append(where, cond), append(args, a...) }
	if f.Chain != "" {
		add("a.chain_id = ?", f.Chain)
	}
	if !f.From.IsZero() {
		add("a.at >= ?", dbTime(f.From))
	}
	if !f.To.IsZero() {
		add("a.at < ?", dbTime(f.To))
	}
	if f.ActorID != "" {
		add("a.actor_id = ?", f.ActorID)
	}
	if f.TargetID != "" {
		add("a.target_id = ?", f.TargetID)
	}
	switch prefix, isPrefix := strings.CutSuffix(f.Action, "."); {
	case isPrefix && !strings.Contains(prefix, "."):
		add("a.action_group = ?", prefix)
	case isPrefix:
		add("a.action LIKE ?", strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(f.Action)+"%")
	case f.Action != "":
		add("a.action = ?", f.Action)
	}
	if f.Cursor != "" {
		at, position, err := parseAuditCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		add("a.at <= ? AND (a.at < ? OR a.position < ?)", at, at, position)
	}
	rows, err := q.db.QueryContext(ctx, `SELECT `+auditEntryColumns+` FROM audit_log a
		LEFT JOIN audit_log_emails e ON e.user_id = a.actor_id
		WHERE `+strings.Join(where, " AND ")+` ORDER BY a.at DESC, a.position DESC LIMIT ?`, append(args, f.Limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("read the audit log: %w", err)
	}
	entries, err := scanAuditEntries(rows)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(entries) > f.Limit {
		entries = entries[:f.Limit]
		last := entries[len(entries)-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(last.At.UnixMicro(), 10) + "." + strconv.FormatInt(last.Position, 10)))
	}
	return entries, next, nil
}

func parseAuditCursor(cursor string) (time.Time, int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	micros, position, ok := strings.Cut(string(raw), ".")
	if err != nil || !ok {
		return time.Time{}, 0, ErrBadAuditCursor
	}
	us, err1 := strconv.ParseInt(micros, 10, 64)
	pos, err2 := strconv.ParseInt(position, 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, 0, ErrBadAuditCursor
	}
	return time.UnixMicro(us).UTC(), pos, nil
}

func scanAuditEntries(rows *sql.Rows) ([]AuditEntry, error) {
	defer rows.Close()
	var entries []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var actor, via, viaID, ip, agent string
		var email sql.NullString
		var details []byte
		if err := rows.Scan(&e.Position, &e.ID, &e.ChainID, &e.ChainSeq, &e.At, &e.Action, &actor, &email, &via, &viaID,
			&e.Target.Type, &e.Target.ID, &ip, &agent, &details); err != nil {
			return nil, fmt.Errorf("read the audit log: %w", err)
		}
		e.Details = details
		var mail *string
		if email.Valid {
			mail = &email.String
		}
		e.settle(actor, via, viaID, ip, agent, mail)
		entries = append(entries, e)
	}
	return entries, rows.Err()
}

// settle fills what an entry's columns say but do not hold as such: its time in UTC, its tenant,
// who acted and how, from where.
func (e *AuditEntry) settle(actor, via, viaID, ip, agent string, email *string) {
	e.At = e.At.UTC()
	if e.ChainID != eventstore.PlatformChain {
		e.TenantID = &e.ChainID
	}
	e.Actor = AuditActor{ID: optional(actor), Email: email, Via: optional(via)}
	switch via {
	case "session":
		e.Actor.SessionID = viaID
	case "api_key":
		e.Actor.APIKeyID = viaID
	}
	e.IP, e.UserAgent = optional(ip), optional(agent)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// AuditChainRange is the part of a chain whose entries fall in a period.
type AuditChainRange struct {
	Chain       string
	First, Last int64 // chain sequences
}

// AuditRanges returns, for chain (every chain when ""), the first and last chain sequence of the
// entries at ≥ from and at < to (zero for no bound).
func (q *Views) AuditRanges(ctx context.Context, chain string, from, to time.Time) ([]AuditChainRange, error) {
	where, args := []string{"TRUE"}, []any{}
	if chain != "" {
		where, args = append(where, "chain_id = ?"), append(args, chain)
	}
	if !from.IsZero() {
		where, args = append(where, "at >= ?"), append(args, dbTime(from))
	}
	if !to.IsZero() {
		where, args = append(where, "at < ?"), append(args, dbTime(to))
	}
	rows, err := q.db.QueryContext(ctx, `SELECT chain_id, MIN(chain_seq), MAX(chain_seq) FROM audit_log
		WHERE `+strings.Join(where, " AND ")+` GROUP BY chain_id ORDER BY chain_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read the audit log's chains: %w", err)
	}
	defer rows.Close()
	var ranges []AuditChainRange
	for rows.Next() {
		var r AuditChainRange
		if err := rows.Scan(&r.Chain, &r.First, &r.Last); err != nil {
			return nil, fmt.Errorf("read the audit log's chains: %w", err)
		}
		ranges = append(ranges, r)
	}
	return ranges, rows.Err()
}

// AuditBySeq returns the entries of chain from sequence first to last whose time is in [from,
// to), in chain order.
func (q *Views) AuditBySeq(ctx context.Context, chain string, first, last int64, from, to time.Time) ([]AuditEntry, error) {
	where, args := []string{"a.chain_id = ?", "a.chain_seq BETWEEN ? AND ?"}, []any{chain, first, last}
	if !from.IsZero() {
		where, args = append(where, "a.at >= ?"), append(args, dbTime(from))
	}
	if !to.IsZero() {
		where, args = append(where, "a.at < ?"), append(args, dbTime(to))
	}
	rows, err := q.db.QueryContext(ctx, `SELECT `+auditEntryColumns+` FROM audit_log a
		LEFT JOIN audit_log_emails e ON e.user_id = a.actor_id
		WHERE `+strings.Join(where, " AND ")+` ORDER BY a.chain_seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	return scanAuditEntries(rows)
}

// AuditChain calls fn, in chain order, with each event of chain from sequence first to last (its
// PrevHash filled) and the audit entry it made when that entry's time is in [from, to), nil
// otherwise. One query reads the events, the link before the first and their entries (an export
// reads a million of them, the driver's rows are not copied): rec's and entry's strings and bytes
// are the row's, valid until fn returns.
func (q *Views) AuditChain(ctx context.Context, chain string, first, last int64, from, to time.Time,
	fn func(rec *eventstore.ChainRecord, entry *AuditEntry) error) error {
	on, args := "", []any{}
	if !from.IsZero() {
		on, args = on+" AND a.at >= ?", append(args, dbTime(from))
	}
	if !to.IsZero() {
		on, args = on+" AND a.at < ?", append(args, dbTime(to))
	}
	rows, err := q.db.QueryContext(ctx, `SELECT ev.position, ev.event_id, ev.stream_id, ev.stream_type, ev.stream_version,
		ev.event_type, ev.payload, ev.metadata, ev.recorded_at, ev.chain_seq, ev.hash, a.position IS NOT NULL, a.at, a.action,
		a.actor_id, m.user_id IS NOT NULL, m.email, a.actor_via, a.actor_via_id, a.target_type, a.target_id, a.ip,
		a.user_agent, a.details
		FROM events ev
		LEFT JOIN audit_log a ON a.chain_id = ev.chain_id AND a.chain_seq = ev.chain_seq`+on+`
		LEFT JOIN audit_log_emails m ON m.user_id = a.actor_id
		WHERE ev.chain_id = ? AND ev.chain_seq BETWEEN ? AND ? ORDER BY ev.chain_seq`,
		append(args, chain, max(first-1, 1), last)...)
	if err != nil {
		return fmt.Errorf("read chain %s with its audit entries: %w", chain, err)
	}
	defer rows.Close()
	var (
		rec                                   = eventstore.ChainRecord{ChainID: chain}
		e                                     = AuditEntry{ChainID: chain}
		eventID, streamID, streamType, evType sql.RawBytes
		hash, action, actor, email, via       sql.RawBytes
		viaID, targetType, targetID, ip       sql.RawBytes
		agent                                 sql.RawBytes
		entered, emailed                      bool
		at                                    sql.NullTime
	)
	prev := first == 1 // the hash before the first is read, but for a chain's first event
	for rows.Next() {
		if err := rows.Scan(&rec.Position, &eventID, &streamID, &streamType, &rec.StreamVersion, &evType, (*sql.RawBytes)(&rec.Data),
			(*sql.RawBytes)(&rec.Metadata), &rec.RecordedAt, &rec.ChainSeq, &hash, &entered, &at, &action, &actor, &emailed, &email,
			&via, &viaID, &targetType, &targetID, &ip, &agent, (*sql.RawBytes)(&e.Details)); err != nil {
			return fmt.Errorf("read chain %s with its audit entries: %w", chain, err)
		}
		if !prev {
			if rec.ChainSeq != first-1 {
				return fmt.Errorf("read entry %d of chain %s: %w", first-1, chain, sql.ErrNoRows)
			}
			copy(rec.PrevHash[:], hash)
			prev = true
			continue
		}
		rec.EventID, rec.StreamID, rec.StreamType, rec.EventType = view(eventID), view(streamID), view(streamType), view(evType)
		rec.RecordedAt = rec.RecordedAt.UTC()
		rec.DataSHA256, rec.MetadataSHA256 = sha256.Sum256(rec.Data), sha256.Sum256(rec.Metadata)
		copy(rec.Hash[:], hash)
		var entry *AuditEntry
		if entered {
			e.ID, e.ChainSeq, e.Position, e.At = rec.EventID, rec.ChainSeq, rec.Position, at.Time
			e.Action, e.Target = view(action), AuditTarget{Type: view(targetType), ID: view(targetID)}
			var mail *string
			if emailed {
				m := view(email)
				mail = &m
			}
			e.settle(view(actor), view(via), view(viaID), view(ip), view(agent), mail)
			entry = &e
		}
		if err := fn(&rec, entry); err != nil {
			return err
		}
		rec.PrevHash = rec.Hash
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read chain %s with its audit entries: %w", chain, err)
	}
	if !prev {
		return fmt.Errorf("read entry %d of chain %s: %w", first-1, chain, sql.ErrNoRows)
	}
	return nil
}

// view is b as a string without copying it: valid while b is (the row being read).
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
