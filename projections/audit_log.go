package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

// AuditLog is the read model of GET /audit and its exports: one entry per event an auditor asks
// about — sign-ins and their failures, lockouts, sessions, two factors, API keys, invitations,
// members' roles, quotas and lifecycle, databases' lifecycle and credentials, settings and plans,
// executed queries and exported results — with who did it (and through a session or an API key),
// in which tenant, from where, to what. An entry is its event's: same id, same position, same
// place in the tenant's hash chain, so an export can carry the events that prove its entries.
//
// It reads every event type but the plumbing of the others (AuditIgnored): an event type added
// later shows as an action named after it (its type without the version) until it gets a name of
// its own in auditNames. The entries are a function of the log: a rebuild gives the same rows.
type AuditLog struct{}

func (AuditLog) Name() string { return "audit_log" }

func (AuditLog) Handles() []string { return []string{AllEvents} }

// AuditIgnored are the event types the audit log leaves out: what machinery records for itself
// (deliveries, samples, intents whose outcome is recorded, counters), not what someone did.
var AuditIgnored = []string{
	domain.QueryStarted{}.EventType(), domain.DatabaseStorageMeasured{}.EventType(), domain.SessionRefreshed{}.EventType(),
	domain.UserVerificationIssued{}.EventType(), domain.MailRequested{}.EventType(), domain.MailSent{}.EventType(),
	domain.MailFailed{}.EventType(), domain.QuotaDatabaseReserved{}.EventType(), domain.QuotaDatabaseReleased{}.EventType(),
	domain.QuotaDatabaseOwnerChanged{}.EventType(), "metrics.pruned.v1", "tenant.load_sampled.v1", "alert.fired.v1", "alert.resolved.v1",
	"alert.notified.v1", "webhook.delivery_requested.v1", "webhook.delivery_attempted.v1",
}

// Ignores is AuditIgnored.
func (AuditLog) Ignores() []string { return AuditIgnored }

// Lazy lets executed queries and their exports wait a moment, as in the history: at thousands a
// second, a commit each would be the projector's bottleneck. GET /audit waits for them.
func (AuditLog) Lazy() ([]string, time.Duration) {
	return []string{domain.QueryExecuted{}.EventType()}, 20 * time.Millisecond
}

func (AuditLog) Tables() []Table {
	return []Table{
		{Name: "audit_log", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			position     BIGINT        NOT NULL PRIMARY KEY,
			event_id     CHAR(36)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			chain_id     VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			chain_seq    BIGINT        NOT NULL,
			at           DATETIME(6)   NOT NULL,
			action       VARCHAR(96)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			action_group VARCHAR(32)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			actor_id     VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			actor_via    VARCHAR(16)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			actor_via_id VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			target_type  VARCHAR(32)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			target_id    VARBINARY(255) NOT NULL,
			ip           VARCHAR(64)   NOT NULL,
			user_agent   VARCHAR(512)  NOT NULL,
			details      JSON          NOT NULL,
			KEY audit_log_at (chain_id, at, position, chain_seq),
			KEY audit_log_actor (chain_id, actor_id, at, position),
			KEY audit_log_target (chain_id, target_id, at, position),
			KEY audit_log_group (chain_id, action_group, at, position),
			KEY audit_log_seq (chain_id, chain_seq),
			KEY audit_log_all (at, position),
			KEY audit_log_actor_any (actor_id),
			KEY audit_log_target_any (target_id)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
		// The email of each account, for the entries' actors (joined when read).
		{Name: "audit_log_emails", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			user_id CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
			email   VARCHAR(320) NOT NULL
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
	}
}

// auditNames renames the actions whose event type does not say it the way an auditor reads it;
// every other action is its event type without the version.
var auditNames = map[string]string{
	"user.login_succeeded":         "auth.signed_in",
	"user.login_failed":            "auth.sign_in_failed",
	"address.login_failed":         "auth.sign_in_failed",
	"user.locked":                  "auth.locked",
	"address.locked":               "auth.locked",
	"user.unlock_issued":           "auth.unlock_link_sent",
	"user.unlocked":                "auth.unlocked",
	"user.reauthenticated":         "auth.reauthenticated",
	"user.password_reset_issued":   "user.password_reset_requested",
	"user.totp_setup_started":      "user.two_factor_setup_started",
	"user.totp_enabled":            "user.two_factor_enabled",
	"user.totp_disabled":           "user.two_factor_disabled",
	"user.recovery_code_used":      "user.two_factor_recovery_code_used",
	"database.requested":           "database.created",
	"quota.sub_quota_set":          "member.quota_changed",
	"tenant.invitation_created":    "invitation.created",
	"tenant.invitation_accepted":   "invitation.accepted",
	"tenant.invitation_revoked":    "invitation.revoked",
	"user.api_key_created":         "api_key.created",
	"user.api_key_revoked":         "api_key.revoked",
	"tenant.membership_closed":     "member.membership_closed",
	"tenant.member_role_changed":   "member.role_changed",
	"tenant.member_added":          "member.added",
	"tenant.member_deactivated":    "member.deactivated",
	"tenant.member_reactivated":    "member.reactivated",
	"user.password_reset_forced":   "user.password_reset_forced",
	"database.credentials_rotated": "database.credentials_rotated",
}

// AuditAction is the action an event of eventType is listed as ("database.deleted.v1" →
// "database.deleted").
func AuditAction(eventType string) string {
	name := eventType
	if i := strings.LastIndex(name, ".v"); i > 0 {
		name = name[:i]
	}
	if renamed, ok := auditNames[name]; ok {
		return renamed
	}
	return name
}

// AuditActions lists the actions of the event types in types that the audit log keeps, sorted.
func AuditActions(types []string) []string {
	var actions []string
	for _, t := range types {
		if a := AuditAction(t); !slices.Contains(AuditIgnored, t) && !slices.Contains(actions, a) {
			actions = append(actions, a)
		}
	}
	sort.Strings(actions)
	return actions
}

// auditTarget names an entry's target when its stream does not: a member or an invitation in the
// tenant's stream, a member's quota in the tenant's quota stream, an API key in its owner's stream.
func auditTarget(streamType, action string) (targetType, field string) {
	switch {
	case streamType == "tenant" && strings.HasPrefix(action, "invitation."):
		return "invitation", "invitation_id"
	case streamType == "tenant" || streamType == "quota":
		return "user", "user_id"
	case streamType == "user" && strings.HasPrefix(action, "api_key."):
		return "api_key", "key_id"
	}
	return "", ""
}

// auditNotSelf are the actions on an account's stream that its owner did not necessarily do:
// anyone can fail to sign in as someone, or ask for their password reset.
var auditNotSelf = []string{"auth.sign_in_failed", "auth.locked", "auth.unlock_link_sent", "user.password_reset_requested"}

// auditDetailsDropped are payload fields an entry leaves out of its details: hashes (never
// shown), and the statements of a query or a schema template (the fingerprint and tables say
// what ran; the text stays in the history and the log).
var auditDetailsDropped = []string{"sql", "sql_truncated", "schema_sql", "statements"}

// auditRow is one entry as stored.
type auditRow struct {
	position, chainSeq                int64
	eventID, chainID                  string
	at                                time.Time
	action, actorID, actorVia, viaID  string
	targetType, targetID, ip, agent   string
	details                           []byte
	registeredEmail, registeredUserID string
}

// entry makes the row of one event.
func auditEntry(env eventstore.Envelope) (auditRow, error) {
	payload, flat := flatPayload(env.Payload)
	if !flat {
		if err := json.Unmarshal(env.Payload, &payload); err != nil {
			return auditRow{}, fmt.Errorf("projections: audit_log at position %d: %w", env.Position, err)
		}
	}
	md := env.Metadata
	r := auditRow{position: env.Position, eventID: env.EventID, chainID: env.ChainID, chainSeq: env.ChainSeq, at: env.RecordedAt,
		action: AuditAction(env.EventType), actorID: md.ActorID, ip: md.IP, agent: md.UserAgent,
		targetType: env.StreamType, targetID: strings.TrimPrefix(env.StreamID, env.StreamType+"-")}
	if r.chainID == "" {
		r.chainID = eventstore.ChainOf(md)
	}
	switch {
	case md.APIKeyID != "":
		r.actorVia, r.viaID = "api_key", md.APIKeyID
	case md.SessionID != "":
		r.actorVia, r.viaID = "session", md.SessionID
	case md.ActorID == "" && md.UserAgent != "" && md.IP == "":
		r.actorVia = "system" // a reactor of the server's (auto-stop, purge, ...)
	}
	if targetType, field := auditTarget(env.StreamType, r.action); field != "" {
		if id := payloadString(payload, field); id != "" {
			r.targetType, r.targetID = targetType, id
		}
	}
	switch {
	case r.actorID != "":
	case env.StreamType == "user" && !slices.Contains(auditNotSelf, r.action):
		r.actorID = strings.TrimPrefix(env.StreamID, "user-") // the account acting on itself: signing up, in, verifying
	case env.StreamType == "session":
		r.actorID = payloadString(payload, "user_id")
	}
	if env.EventType == (domain.UserRegistered{}).EventType() {
		r.registeredUserID, r.registeredEmail = payloadString(payload, "user_id"), payloadString(payload, "email")
	}
	var err error
	if flat {
		r.details = flatDetails(env.EventType, payload)
	} else if r.details, err = auditDetails(env.EventType, payload); err != nil {
		return auditRow{}, fmt.Errorf("projections: audit_log at position %d: %w", env.Position, err)
	}
	return r, nil
}

// payloadString is the payload's field key when it is a string, else "".
func payloadString(payload map[string]json.RawMessage, key string) string {
	var s string
	if v := payload[key]; len(v) > 0 && v[0] == '"' {
		_ = json.Unmarshal(v, &s) // a string the payload's parse accepted
	}
	return s
}

// auditDetails are an entry's details: the payload's fields but those an entry leaves out, keys
// sorted, each value as the payload holds it. A value whose JSON a decoding into Go values and
// encoding again could change (an object, whose keys would be sorted; a number with an exponent
// or more digits than a float64 keeps) sends the whole payload that way, as the entries were
// always made: the details of an event are the same bytes whichever way they are made.
func auditDetails(eventType string, payload map[string]json.RawMessage) ([]byte, error) {
	details := make(map[string]json.RawMessage, len(payload)+1)
	for k, v := range payload {
		dropped := domain.SecretHashField(k) || slices.Contains(auditDetailsDropped, k)
		if dropped && len(v) > 0 && v[0] == '"' {
			continue // a string decodes whatever it holds
		}
		if !keptAsIs(v) {
			return auditDetailsOfValues(eventType, payload) // which refuses a value the old way refused, dropped or not
		}
		if !dropped {
			details[k] = v
		}
	}
	if eventType == (domain.QueryExecuted{}).EventType() { // as an auditor reads it: rows, not row_count
		rows, ok := details["row_count"]
		if !ok {
			rows = json.RawMessage("null")
		}
		details["rows"] = rows
		delete(details, "row_count")
	}
	return json.Marshal(details)
}

// keptAsIs reports whether a JSON value, as Go encodes it, encodes to the same bytes after a
// decoding into an any: strings with plain escapes, booleans, null, numbers of at most 15 digits
// without an exponent, and arrays of those but numbers.
func keptAsIs(v json.RawMessage) bool {
	switch {
	case len(v) == 0:
		return false
	case v[0] == '"':
		return plainEscapes(v) && utf8.Valid(v)
	case v[0] == 't' || v[0] == 'f' || v[0] == 'n':
		return true
	case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
		return plainNumber(v)
	case v[0] == '[':
		var items []any
		if err := json.Unmarshal(v, &items); err != nil {
			return false
		}
		for _, item := range items {
			switch item.(type) {
			case string:
				if !plainEscapes(v) || !utf8.Valid(v) {
					return false
				}
			case bool, nil:
			default:
				return false
			}
		}
		return true
	}
	return false
}

// flatPayload reads a payload as json.Marshal writes a struct of plain fields: an object without
// spaces, of keys without escapes, whose values are all such that keptAsIs accepts (so each is
// kept as it is). ok is false for anything else, which json.Unmarshal reads instead. Most events
// the audit log reads, an executed query's among them, are read this way, without reflection.
func flatPayload(data []byte) (map[string]json.RawMessage, bool) {
	if len(data) < 2 || data[0] != '{' || data[len(data)-1] != '}' {
		return nil, false
	}
	fields := make(map[string]json.RawMessage, 16)
	rest := data[1 : len(data)-1]
	for len(rest) > 0 {
		end := flatValue(rest, 0)
		if end < 0 || rest[0] != '"' || end == len(rest) || rest[end] != ':' || !plainKey(rest[1:end-1]) {
			return nil, false
		}
		key := string(rest[1 : end-1])
		if _, twice := fields[key]; twice {
			return nil, false // json.Unmarshal keeps the last: left to it
		}
		valueEnd := flatValue(rest, end+1)
		if valueEnd < 0 {
			return nil, false
		}
		fields[key] = json.RawMessage(rest[end+1 : valueEnd])
		switch {
		case valueEnd == len(rest):
			rest = nil
		case rest[valueEnd] == ',' && valueEnd+1 < len(rest):
			rest = rest[valueEnd+1:]
		default:
			return nil, false
		}
	}
	return fields, true
}

// plainKey: printable ASCII without quotes, backslashes or the characters json.Marshal escapes.
func plainKey(key []byte) bool {
	for _, c := range key {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// flatValue returns where the value at b[i] ends, or -1 when it is not one keptAsIs accepts
// written without spaces: a string with plain escapes, true, false, null, a number of at most 15
// digits without an exponent, or an array of such strings.
func flatValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '"':
				return j + 1
			case '\\':
				if j+1 == len(b) || !slices.Contains([]byte{'"', '\\', 'n', 'r', 't'}, b[j+1]) {
					return -1
				}
				j++
			default:
				if b[j] < 0x20 {
					return -1
				}
				if b[j] >= 0x80 { // invalid UTF-8 would be decoded as U+FFFD: left to the old way
					r, size := utf8.DecodeRune(b[j:])
					if r == utf8.RuneError && size == 1 {
						return -1
					}
					j += size - 1
				}
			}
		}
		return -1
	case c == 't' || c == 'f' || c == 'n':
		for _, literal := range []string{"true", "false", "null"} {
			if len(b)-i >= len(literal) && string(b[i:i+len(literal)]) == literal {
				return i + len(literal)
			}
		}
		return -1
	case c == '-' || (c >= '0' && c <= '9'):
		j := i
		for ; j < len(b) && (b[j] == '-' || b[j] == '.' || (b[j] >= '0' && b[j] <= '9')); j++ {
		}
		if !plainNumber(b[i:j]) {
			return -1
		}
		return j
	case c == '[':
		j := i + 1
		if j < len(b) && b[j] == ']' {
			return j + 1
		}
		for {
			if j >= len(b) || b[j] != '"' {
				return -1
			}
			if j = flatValue(b, j); j < 0 || j >= len(b) {
				return -1
			}
			switch b[j] {
			case ']':
				return j + 1
			case ',':
				j++
			default:
				return -1
			}
		}
	}
	return -1
}

// plainNumber reports whether b is -?(0|[1-9][0-9]*)(.[0-9]*[1-9])?, a number without an
// exponent, of at most 15 digits, that a float64 encodes as the same bytes: its fraction ends
// in a digit other than 0 (1.0 and 1.50 are encoded 1 and 1.5) and it is not below 1e-6
// (0.0000001 is encoded 1e-07).
func plainNumber(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	whole, fraction, dotted := strings.Cut(string(b), ".")
	digits := func(s string) bool {
		for _, c := range []byte(s) {
			if c < '0' || c > '9' {
				return false
			}
		}
		return s != ""
	}
	if !digits(whole) || (whole != "0" && whole[0] == '0') || len(whole)+len(fraction) > 15 {
		return false
	}
	if !dotted {
		return true
	}
	return digits(fraction) && fraction[len(fraction)-1] != '0' &&
		!(whole == "0" && strings.HasPrefix(fraction, "000000"))
}

// flatDetails are auditDetails of a payload flatPayload read, written as json.Marshal writes a
// map of its values (keys sorted, <, > and & escaped), without building one.
func flatDetails(eventType string, payload map[string]json.RawMessage) []byte {
	keys := make([]string, 0, len(payload))
	size := 2
	for k, v := range payload {
		if domain.SecretHashField(k) || slices.Contains(auditDetailsDropped, k) {
			continue
		}
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	renamed := ""
	if eventType == (domain.QueryExecuted{}).EventType() { // as an auditor reads it: rows, not row_count
		keys = slices.DeleteFunc(keys, func(k string) bool { return k == "row_count" || k == "rows" })
		keys, renamed = append(keys, "rows"), "row_count"
		size += 10
	}
	slices.Sort(keys)
	out := make([]byte, 0, size)
	out = append(out, '{')
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, k...)
		out = append(out, '"', ':')
		v, ok := payload[k]
		if k == "rows" && renamed != "" {
			v, ok = payload[renamed]
		}
		if !ok {
			v = json.RawMessage("null")
		}
		out = appendHTMLEscaped(out, v)
	}
	return append(out, '}')
}

// appendHTMLEscaped appends v with <, >, &, U+2028 and U+2029 escaped, as json.Marshal writes a
// json.RawMessage.
func appendHTMLEscaped(out, v []byte) []byte {
	from := 0
	for i := 0; i < len(v); i++ {
		var esc string
		switch {
		case v[i] == '<':
			esc = `\u003c`
		case v[i] == '>':
			esc = `\u003e`
		case v[i] == '&':
			esc = `\u0026`
		case v[i] == 0xE2 && i+2 < len(v) && v[i+1] == 0x80 && (v[i+2] == 0xA8 || v[i+2] == 0xA9):
			esc = `\u2028`
			if v[i+2] == 0xA9 {
				esc = `\u2029`
			}
		default:
			continue
		}
		out = append(append(out, v[from:i]...), esc...)
		if esc[2] == '2' {
			i += 2
		}
		from = i + 1
	}
	return append(out, v[from:]...)
}

// plainEscapes reports whether the escapes of a JSON text are only those Go writes for a string
// it encodes again the same way: \", \\, \n, \r and \t (a \u escape, say of "é", would come back
// as the character itself).
func plainEscapes(v json.RawMessage) bool {
	for i := 0; i < len(v)-1; i++ {
		if v[i] != '\\' {
			continue
		}
		i++
		switch v[i] {
		case '"', '\\', 'n', 'r', 't':
		default:
			return false
		}
	}
	return true
}

// auditDetailsOfValues makes the details by decoding the payload's values into Go values and
// encoding them again (objects' keys sorted, numbers as float64s).
func auditDetailsOfValues(eventType string, payload map[string]json.RawMessage) ([]byte, error) {
	details := map[string]any{}
	for k, raw := range payload {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil { // as the old way decoded the whole payload first
			return nil, err
		}
		if domain.SecretHashField(k) || slices.Contains(auditDetailsDropped, k) {
			continue
		}
		details[k] = v
	}
	if eventType == (domain.QueryExecuted{}).EventType() {
		details["rows"] = details["row_count"]
		delete(details, "row_count")
	}
	return json.Marshal(details)
}

// Erase implements Eraser: the entries whose actor or target is the person (or one of the
// erasure's invitations, or the failed logins to the person's address) are made again from their
// events, read now that the keys are gone, so they hold what a rebuild writes (the IP address, the
// user agent and the details: the other columns name no personal data); and the email kept for the
// person's account reads as the placeholder.
func (AuditLog) Erase(ctx context.Context, tx *sql.Tx, t Tables, e PersonErasure, read func(context.Context, []int64) ([]eventstore.Envelope, error)) error {
	table := t.Name("audit_log")
	var targets []any
	query := `SELECT position FROM ` + table + ` WHERE target_id IN (%s)`
	if e.User != "" {
		if _, err := tx.ExecContext(ctx, `UPDATE `+t.Name("audit_log_emails")+` SET email = ? WHERE user_id = ?`,
			domain.ErasedValue(e.User.Stream(), "email"), string(e.User)); err != nil {
			return err
		}
		query = `SELECT position FROM ` + table + ` WHERE actor_id = ? UNION ` + query
		targets = append(targets, string(e.User), string(e.User))
	}
	for _, id := range e.Invitations {
		targets = append(targets, string(id))
	}
	if e.Address != "" {
		targets = append(targets, strings.TrimPrefix(e.Address, "address-"))
	}
	if len(targets) == 0 {
		return nil
	}
	inList := len(targets)
	if e.User != "" {
		inList-- // the actor's
	}
	rows, err := tx.QueryContext(ctx, fmt.Sprintf(query, sqlparams.List(inList))+` ORDER BY position`, targets...)
	if err != nil {
		return err
	}
	var positions []int64
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return err
		}
		positions = append(positions, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	const perRead = 500
	for len(positions) > 0 {
		n := min(perRead, len(positions))
		envs, err := read(ctx, positions[:n])
		positions = positions[n:]
		if err != nil {
			return err
		}
		for _, env := range envs {
			r, err := auditEntry(env)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET ip = ?, user_agent = ?, details = ? WHERE position = ?`,
				clip(r.ip, 64), clip(r.agent, 512), r.details, r.position); err != nil {
				return err
			}
		}
	}
	return nil
}

const auditColumns = `position, event_id, chain_id, chain_seq, at, action, action_group, actor_id, actor_via, actor_via_id,
	target_type, target_id, ip, user_agent, details`

// Apply inserts an entry per event (a redelivered one is already there: INSERT IGNORE on its
// position) and remembers the email of each account registered.
func (AuditLog) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	const perStatement = 500
	var args, emails []any
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT IGNORE INTO `+t.Name("audit_log")+` (`+auditColumns+`) VALUES `+sqlparams.Rows(rows, 15), args...)
		args, rows = args[:0], 0
		return err
	}
	for _, env := range events {
		r, err := auditEntry(env)
		if err != nil {
			return err
		}
		group, _, _ := strings.Cut(r.action, ".")
		args = append(args, r.position, r.eventID, r.chainID, r.chainSeq, dbTime(r.at), clip(r.action, 96), clip(group, 32), r.actorID,
			r.actorVia, r.viaID, clip(r.targetType, 32), clip(r.targetID, 255), clip(r.ip, 64), clip(r.agent, 512), r.details)
		if rows++; rows == perStatement {
			if err := flush(); err != nil {
				return err
			}
		}
		if r.registeredUserID != "" {
			emails = append(emails, r.registeredUserID, r.registeredEmail)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if len(emails) > 0 {
		_, err := tx.ExecContext(ctx, `INSERT INTO `+t.Name("audit_log_emails")+` (user_id, email) VALUES `+
			sqlparams.Rows(len(emails)/2, 2)+` ON DUPLICATE KEY UPDATE email = VALUES(email)`, emails...)
		return err
	}
	return nil
}
