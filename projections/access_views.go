package projections

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// AccessDatabase is the database an access report is about.
type AccessDatabase struct {
	ID       string  `json:"id"`
	TenantID string  `json:"tenant_id"`
	Name     string  `json:"name"`
	State    *string `json:"state"` // at the moment asked (null: it did not exist yet); now for a review
}

// AccessPerson is who reaches a database: the id, and the name the users read model shows.
type AccessPerson struct {
	ID   string  `json:"id"`
	Name *string `json:"name"`
}

// AccessAPIKey names the API key of an api_key path.
type AccessAPIKey struct {
	ID        string     `json:"id"`
	Name      *string    `json:"name"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// AccessEvent is the event that granted, changed or revoked access.
type AccessEvent struct {
	ID       string  `json:"id"`
	Type     string  `json:"type"`
	Position int64   `json:"position"`
	ActorID  *string `json:"actor_id"`
	Override bool    `json:"override"` // a super admin decided where the tenant's admins do
}

// AccessHolder is one way one person could reach a database at a moment.
type AccessHolder struct {
	User    AccessPerson  `json:"user"`
	Path    string        `json:"path"`
	APIKey  *AccessAPIKey `json:"api_key"`
	Role    string        `json:"role"`
	Account string        `json:"account"` // the MySQL account its statements run on
	// ReadWritePassword: the path lets its holder see the read-write password.
	ReadWritePassword bool         `json:"read_write_password"`
	Since             time.Time    `json:"since"`
	Until             *time.Time   `json:"until"` // when it ended (or an API key expires), as known now
	GrantedBy         AccessEvent  `json:"granted_by"`
	InvitationID      *string      `json:"invitation_id"`
	EndedBy           *AccessEvent `json:"ended_by"`
}

// AccessChange is one change of access to a database.
type AccessChange struct {
	At         time.Time     `json:"at"`
	Change     string        `json:"change"` // granted, changed, revoked
	User       AccessPerson  `json:"user"`
	Path       string        `json:"path"`
	APIKey     *AccessAPIKey `json:"api_key"`
	RoleBefore *string       `json:"role_before"`
	RoleAfter  *string       `json:"role_after"`
	// Cause is "event", or "api_key_expired" for a key that ran out (Event is then null).
	Cause        string       `json:"cause"`
	Event        *AccessEvent `json:"event"`
	InvitationID *string      `json:"invitation_id"`
}

// AccessDatabaseOf returns a database the access report knows, now deleted or purged included, in
// tenant ("" for any: a super admin). Returns domain.ErrNotFound for an unknown database or one
// of another tenant.
func (q *Views) AccessDatabaseOf(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID) (AccessDatabase, error) {
	var d AccessDatabase
	var state string
	err := q.db.QueryRowContext(ctx, `SELECT database_id, tenant_id, name, state FROM access_databases WHERE database_id = ?`, id).
		Scan(&d.ID, &d.TenantID, &d.Name, &state)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && tenant != "" && d.TenantID != string(tenant)) {
		return AccessDatabase{}, fmt.Errorf("database %s: %w", id, domain.ErrNotFound)
	} else if err != nil {
		return AccessDatabase{}, fmt.Errorf("read database %s: %w", id, err)
	}
	d.State = &state
	return d, nil
}

// AccessAt lists who could reach database d at moment at, by person, path and key, and sets
// d.State to its state then (nil before it was requested).
func (q *Views) AccessAt(ctx context.Context, d *AccessDatabase, at time.Time) ([]AccessHolder, error) {
	at = at.UTC()
	var state sql.NullString
	err := q.db.QueryRowContext(ctx, `SELECT state FROM access_database_states WHERE database_id = ? AND at <= ?
		ORDER BY at DESC, position DESC LIMIT 1`, d.ID, at).Scan(&state)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read the state of database %s: %w", d.ID, err)
	}
	d.State = nil
	if state.Valid {
		d.State = &state.String
	}
	rows, err := q.db.QueryContext(ctx, `SELECT i.user_id, u.name, i.path, i.key_id, k.name, k.expires_at, i.role, i.valid_from, i.valid_to,
			i.from_event_id, i.from_event_type, i.from_position, i.from_actor, i.from_override, i.invitation_id,
			i.to_event_id, i.to_event_type, i.to_position, i.to_actor, i.to_override
		FROM access_intervals i
		LEFT JOIN users u ON u.user_id = i.user_id
		LEFT JOIN access_keys k ON k.key_id = i.key_id
		WHERE i.database_id = ? AND i.valid_from <= ? AND (i.valid_to IS NULL OR i.valid_to > ?)
		ORDER BY i.user_id, i.path, i.key_id`, d.ID, at, at)
	if err != nil {
		return nil, fmt.Errorf("read access to database %s: %w", d.ID, err)
	}
	defer rows.Close()
	out := []AccessHolder{}
	for rows.Next() {
		var h AccessHolder
		var name, keyName, actor, invitation, toID, toType, toActor sql.NullString
		var keyID string
		var expires, until sql.NullTime
		var toPosition sql.NullInt64
		var toOverride bool
		if err := rows.Scan(&h.User.ID, &name, &h.Path, &keyID, &keyName, &expires, &h.Role, &h.Since, &until,
			&h.GrantedBy.ID, &h.GrantedBy.Type, &h.GrantedBy.Position, &actor, &h.GrantedBy.Override, &invitation,
			&toID, &toType, &toPosition, &toActor, &toOverride); err != nil {
			return nil, err
		}
		h.User.Name, h.GrantedBy.ActorID, h.InvitationID = nullStr(name), nullStr(actor), nullStr(invitation)
		h.APIKey = accessKey(keyID, keyName, expires)
		h.Until = nullTime(until)
		grant := domain.AccessGrant{Path: domain.AccessPath(h.Path), Role: domain.Role(h.Role)}
		h.Account, h.ReadWritePassword = grant.Account(), grant.ReadWritePassword()
		if toID.Valid {
			h.EndedBy = &AccessEvent{ID: toID.String, Type: toType.String, Position: toPosition.Int64, ActorID: nullStr(toActor), Override: toOverride}
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// AccessChanges lists the changes of access to database id in [from, to), oldest first, at most
// limit, after cursor (a next cursor from an earlier page); next is "" on the last page. Returns a
// *domain.ValidationError for a cursor it did not make.
func (q *Views) AccessChanges(ctx context.Context, id string, from, to time.Time, cursor string, limit int) (changes []AccessChange, next string, err error) {
	after := accessCursor{at: time.Unix(0, 0).UTC(), kind: -1}
	if cursor != "" {
		if after, err = parseAccessCursor(cursor); err != nil {
			return nil, "", err
		}
	}
	from, to = from.UTC(), to.UTC()
	lower := from
	if after.at.After(lower) {
		lower = after.at
	}
	// Each half reads its index in order from the cursor on and stops after a page.
	rows, err := q.db.QueryContext(ctx, `SELECT c.at, c.kind, c.from_position, c.from_seq, c.user_id, u.name, c.path, c.key_id, k.name, k.expires_at,
			c.role_before, c.role_after, c.event_id, c.event_type, c.event_position, c.actor, c.override, c.invitation_id
		FROM (
			(SELECT valid_from AS at, 1 AS kind, from_position, from_seq, user_id, path, key_id, previous_role AS role_before, role AS role_after,
				from_event_id AS event_id, from_event_type AS event_type, from_position AS event_position, from_actor AS actor,
				from_override AS override, invitation_id
			FROM access_intervals WHERE database_id = ? AND valid_from >= ? AND valid_from < ? AND (valid_from, 1, from_position, from_seq) > (?, ?, ?, ?)
			ORDER BY valid_from, from_position, from_seq LIMIT ?)
			UNION ALL
			(SELECT valid_to, 0, from_position, from_seq, user_id, path, key_id, role, NULL,
				to_event_id, to_event_type, to_position, to_actor, to_override, NULL
			FROM access_intervals WHERE database_id = ? AND valid_to >= ? AND valid_to < ? AND (valid_to, 0, from_position, from_seq) > (?, ?, ?, ?)
				AND continued = 0
			ORDER BY valid_to, from_position, from_seq LIMIT ?)
		) c
		LEFT JOIN users u ON u.user_id = c.user_id
		LEFT JOIN access_keys k ON k.key_id = c.key_id
		ORDER BY c.at, c.kind, c.from_position, c.from_seq
		LIMIT ?`,
		id, lower, to, after.at, after.kind, after.position, after.seq, limit+1,
		id, lower, to, after.at, after.kind, after.position, after.seq, limit+1, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("read changes of access to database %s: %w", id, err)
	}
	defer rows.Close()
	changes = []AccessChange{}
	var last accessCursor
	for rows.Next() {
		var c AccessChange
		var cur accessCursor
		var name, keyName, before, afterRole, eventID, eventType, actor, invitation sql.NullString
		var keyID string
		var expires sql.NullTime
		var eventPosition sql.NullInt64
		var override sql.NullBool
		if err := rows.Scan(&c.At, &cur.kind, &cur.position, &cur.seq, &c.User.ID, &name, &c.Path, &keyID, &keyName, &expires,
			&before, &afterRole, &eventID, &eventType, &eventPosition, &actor, &override, &invitation); err != nil {
			return nil, "", err
		}
		if len(changes) == limit {
			return changes, last.String(), rows.Err()
		}
		cur.at = c.At
		c.User.Name, c.RoleBefore, c.RoleAfter, c.InvitationID = nullStr(name), nullStr(before), nullStr(afterRole), nullStr(invitation)
		c.APIKey = accessKey(keyID, keyName, expires)
		switch {
		case cur.kind == 0:
			c.Change = "revoked"
		case before.Valid:
			c.Change = "changed"
		default:
			c.Change = "granted"
		}
		c.Cause = "event"
		if eventID.Valid {
			c.Event = &AccessEvent{ID: eventID.String, Type: eventType.String, Position: eventPosition.Int64, ActorID: nullStr(actor), Override: override.Bool}
		} else {
			c.Cause = "api_key_expired"
		}
		changes = append(changes, c)
		last = cur
	}
	return changes, "", rows.Err()
}

// accessCursor is the place of a change in the order of AccessChanges.
type accessCursor struct {
	at            time.Time
	kind          int // 0: an interval's end, 1: its start
	position, seq int64
}

func (c accessCursor) String() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%d.%d.%d", c.at.UnixMicro(), c.kind, c.position, c.seq))
}

func parseAccessCursor(s string) (accessCursor, error) {
	bad := domain.NewValidationError("cursor", "is not a cursor of this report: use next_cursor as given")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return accessCursor{}, bad
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 4 {
		return accessCursor{}, bad
	}
	var n [4]int64
	for i, p := range parts {
		if n[i], err = strconv.ParseInt(p, 10, 64); err != nil {
			return accessCursor{}, bad
		}
	}
	return accessCursor{at: time.UnixMicro(n[0]).UTC(), kind: int(n[1]), position: n[2], seq: n[3]}, nil
}

// accessKey is the API key of a path, nil for the other paths.
func accessKey(id string, name sql.NullString, expires sql.NullTime) *AccessAPIKey {
	if id == "" {
		return nil
	}
	return &AccessAPIKey{ID: id, Name: nullStr(name), ExpiresAt: nullTime(expires)}
}

// nullStr is a NULL-able column as a JSON null or string.
func nullStr(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}
