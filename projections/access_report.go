package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// AccessReport is the read model behind GET /access-report: validity intervals of access. Each
// row of access_intervals says that a person reached a database through one path (owner, tenant
// role, one API key) with one role from valid_from until valid_to (NULL: still), which event
// opened it and which closed it (none when an API key expired). The projector keeps what decides
// access — members and their roles, super admins, API keys, databases with their owner and state
// — in tables of its own, and after every event that may change access it asks the domain
// (domain.DatabaseAccess) who reaches the databases concerned now and compares the answer with
// the open intervals: what is gone is closed, what is new is opened, a role that changed closes
// one interval and opens the next (previous_role, continued). Who could reach a database at any
// moment, and every change in a period, are then range reads of one database's intervals.
//
// Users' names and emails are not copied: reads join the users read model.
type AccessReport struct {
	reg *eventstore.Registry
}

// NewAccessReport returns the access report's projector, decoding with reg. It panics on a nil
// registry.
func NewAccessReport(reg *eventstore.Registry) AccessReport {
	if reg == nil {
		panic("projections: NewAccessReport needs a registry")
	}
	return AccessReport{reg: reg}
}

func (AccessReport) Name() string { return "access_report" }

// Handles names every event that changes who reaches a database, under every version the log
// holds it.
func (p AccessReport) Handles() []string {
	return p.reg.StoredAs(
		domain.TenantMemberAdded{}.EventType(),
		domain.TenantMemberRoleChanged{}.EventType(),
		domain.TenantMemberDeactivated{}.EventType(),
		domain.TenantMemberReactivated{}.EventType(),
		domain.TenantMembershipClosed{}.EventType(),
		domain.TenantInvitationAccepted{}.EventType(),
		domain.UserSuperAdminGranted{}.EventType(),
		domain.UserAPIKeyCreated{}.EventType(),
		domain.UserAPIKeyRevoked{}.EventType(),
		domain.DatabaseRequested{}.EventType(),
		domain.DatabaseProvisioned{}.EventType(),
		domain.DatabaseProvisioningFailed{}.EventType(),
		domain.DatabaseStopped{}.EventType(),
		domain.DatabaseStarted{}.EventType(),
		domain.DatabaseDeleted{}.EventType(),
		domain.DatabaseRestored{}.EventType(),
		domain.DatabasePurged{}.EventType(),
		domain.DatabaseOwnerChanged{}.EventType(),
	)
}

const accessID = `CHAR(36) CHARACTER SET ascii COLLATE ascii_bin`

func (AccessReport) Tables() []Table {
	return []Table{
		{Name: "access_intervals", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			tenant_id       ` + accessID + ` NOT NULL,
			database_id     ` + accessID + ` NOT NULL,
			user_id         ` + accessID + ` NOT NULL,
			path            VARCHAR(16) CHARACTER SET ascii NOT NULL,
			key_id          VARCHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
			role            VARCHAR(32) CHARACTER SET ascii NOT NULL,
			previous_role   VARCHAR(32) CHARACTER SET ascii NULL,
			valid_from      DATETIME(6) NOT NULL,
			from_position   BIGINT NOT NULL,
			from_seq        INT NOT NULL,
			from_event_id   ` + accessID + ` NOT NULL,
			from_event_type VARCHAR(64) CHARACTER SET ascii NOT NULL,
			from_actor      ` + accessID + ` NULL,
			from_override   BOOL NOT NULL,
			invitation_id   ` + accessID + ` NULL,
			valid_to        DATETIME(6) NULL,
			to_position     BIGINT NULL,
			to_event_id     ` + accessID + ` NULL,
			to_event_type   VARCHAR(64) CHARACTER SET ascii NULL,
			to_actor        ` + accessID + ` NULL,
			to_override     BOOL NOT NULL DEFAULT 0,
			continued       BOOL NOT NULL DEFAULT 0,
			open            BOOL NOT NULL DEFAULT 1,
			PRIMARY KEY (from_position, from_seq),
			KEY access_intervals_from (database_id, valid_from),
			KEY access_intervals_to (database_id, valid_to),
			KEY access_intervals_open_db (database_id, open),
			KEY access_intervals_open_user (tenant_id, user_id, open)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
		{Name: "access_databases", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			database_id         ` + accessID + ` NOT NULL PRIMARY KEY,
			tenant_id           ` + accessID + ` NOT NULL,
			name                VARCHAR(64) NOT NULL,
			owner_id            ` + accessID + ` NOT NULL,
			state               VARCHAR(16) CHARACTER SET ascii NOT NULL,
			state_before_delete VARCHAR(16) CHARACTER SET ascii NULL,
			KEY access_databases_tenant (tenant_id, state)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
		{Name: "access_database_states", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			database_id ` + accessID + ` NOT NULL,
			position    BIGINT NOT NULL,
			at          DATETIME(6) NOT NULL,
			state       VARCHAR(16) CHARACTER SET ascii NOT NULL,
			PRIMARY KEY (database_id, position),
			KEY access_database_states_at (database_id, at)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
		{Name: "access_members", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			tenant_id      ` + accessID + ` NOT NULL,
			user_id        ` + accessID + ` NOT NULL,
			role           VARCHAR(32) CHARACTER SET ascii NOT NULL,
			suspended_role VARCHAR(32) CHARACTER SET ascii NULL,
			invitation_id  ` + accessID + ` NULL,
			PRIMARY KEY (tenant_id, user_id),
			KEY access_members_user (user_id)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
		{Name: "access_keys", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			key_id     ` + accessID + ` NOT NULL PRIMARY KEY,
			user_id    ` + accessID + ` NOT NULL,
			tenant_id  ` + accessID + ` NOT NULL,
			name       VARCHAR(400) NOT NULL,
			expires_at DATETIME(6) NULL,
			revoked    BOOL NOT NULL DEFAULT 0,
			KEY access_keys_member (tenant_id, user_id)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
		{Name: "access_super_admins", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			user_id ` + accessID + ` NOT NULL PRIMARY KEY
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
		// access_applied holds the last position applied: a redelivered or replayed event changes
		// nothing (intervals are opened and closed, not set, so applying one twice would).
		{Name: "access_applied", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			id       TINYINT NOT NULL PRIMARY KEY,
			position BIGINT NOT NULL
		) ENGINE = InnoDB`},
	}
}

// accessCause is the event that opens or closes intervals.
type accessCause struct {
	at         time.Time
	position   int64
	eventID    string
	eventType  string
	actor      string
	override   bool
	invitation string // a membership that an accepted invitation started
	seq        int    // intervals opened by this event so far
}

// accessScope is what an event may change: one tenant's databases (or one of them), for every
// member (or one).
type accessScope struct {
	tenant   string
	database string
	user     string
}

// Apply applies the events after the last position applied, in order.
func (p AccessReport) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	applied := t.Name("access_applied")
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT position FROM `+applied+` WHERE id = 1 FOR UPDATE`).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	for _, env := range events {
		if env.Position <= last {
			continue
		}
		if err := p.apply(ctx, tx, t, env); err != nil {
			return fmt.Errorf("projections: access_report: %s at position %d: %w", env.EventType, env.Position, err)
		}
		last = env.Position
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO `+applied+` (id, position) VALUES (1, ?) ON DUPLICATE KEY UPDATE position = VALUES(position)`, last)
	return err
}

func (p AccessReport) apply(ctx context.Context, tx *sql.Tx, t Tables, env eventstore.Envelope) error {
	ev, err := p.reg.Decode(env)
	if err != nil {
		return err
	}
	c := &accessCause{at: env.RecordedAt.UTC().Truncate(time.Microsecond), position: env.Position, eventID: env.EventID,
		eventType: env.EventType, actor: env.Metadata.ActorID}
	members, keys, dbs := t.Name("access_members"), t.Name("access_keys"), t.Name("access_databases")
	switch e := ev.(type) {
	case domain.TenantInvitationAccepted, domain.TenantMemberAdded, domain.TenantMemberRoleChanged, domain.TenantMemberDeactivated,
		domain.TenantMemberReactivated, domain.TenantMembershipClosed:
		tenant, err := streamEntity(env.StreamID, "tenant-")
		if err != nil {
			return err
		}
		return p.applyMember(ctx, tx, t, c, tenant, ev)
	case domain.UserSuperAdminGranted:
		user, err := domain.StreamUser(env.StreamID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT IGNORE INTO `+t.Name("access_super_admins")+` (user_id) VALUES (?)`, user); err != nil {
			return err
		}
		tenants, err := strs(ctx, tx, `SELECT tenant_id FROM `+members+` WHERE user_id = ? ORDER BY tenant_id`, user)
		if err != nil {
			return err
		}
		for _, tenant := range tenants {
			if err := p.recompute(ctx, tx, t, c, accessScope{tenant: tenant, user: string(user)}); err != nil {
				return err
			}
		}
		return nil
	case domain.UserAPIKeyCreated:
		if e.TenantID == "" {
			return nil // a key without a tenant reaches no tenant's database
		}
		user, err := domain.StreamUser(env.StreamID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT IGNORE INTO `+keys+` (key_id, user_id, tenant_id, name, expires_at) VALUES (?, ?, ?, ?, ?)`,
			e.KeyID, user, e.TenantID, clip(e.Name, 400), dbTimeOrNull(e.ExpiresAt)); err != nil {
			return err
		}
		return p.recompute(ctx, tx, t, c, accessScope{tenant: string(e.TenantID), user: string(user)})
	case domain.UserAPIKeyRevoked:
		var tenant, user string
		err := tx.QueryRowContext(ctx, `SELECT tenant_id, user_id FROM `+keys+` WHERE key_id = ?`, e.KeyID).Scan(&tenant, &user)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // a key of no tenant
		} else if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE `+keys+` SET revoked = 1 WHERE key_id = ?`, e.KeyID); err != nil {
			return err
		}
		return p.recompute(ctx, tx, t, c, accessScope{tenant: tenant, user: user})
	case domain.DatabaseRequested:
		if _, err := tx.ExecContext(ctx, `INSERT IGNORE INTO `+dbs+` (database_id, tenant_id, name, owner_id, state) VALUES (?, ?, ?, ?, ?)`,
			e.DatabaseID, e.TenantID, clip(e.Name, 64), e.OwnerID, domain.StateProvisioning); err != nil {
			return err
		}
		return p.databaseChanged(ctx, tx, t, c, string(e.DatabaseID), domain.StateProvisioning)
	}
	id, err := streamEntity(env.StreamID, "database-")
	if err != nil {
		return err
	}
	var state, before string
	var beforeNull sql.NullString
	switch err := tx.QueryRowContext(ctx, `SELECT state, state_before_delete FROM `+dbs+` WHERE database_id = ?`, id).Scan(&state, &beforeNull); {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	before = beforeNull.String
	next := domain.DatabaseState(state)
	switch e := ev.(type) {
	case domain.DatabaseProvisioned, domain.DatabaseStarted:
		next = domain.StateRunning
	case domain.DatabaseStopped:
		next = domain.StateStopped
	case domain.DatabaseProvisioningFailed:
		next = domain.StateFailed
	case domain.DatabaseDeleted:
		next, before = domain.StateDeleted, state
	case domain.DatabaseRestored:
		next = domain.DatabaseState(before)
	case domain.DatabasePurged:
		next = domain.StatePurged
	case domain.DatabaseOwnerChanged:
		if _, err := tx.ExecContext(ctx, `UPDATE `+dbs+` SET owner_id = ? WHERE database_id = ?`, e.To, id); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unexpected event %T", ev)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+dbs+` SET state = ?, state_before_delete = ? WHERE database_id = ?`,
		next, nullString(before), id); err != nil {
		return err
	}
	return p.databaseChanged(ctx, tx, t, c, id, next)
}

// databaseChanged records a database's state (when it changed) and recomputes who reaches it.
func (p AccessReport) databaseChanged(ctx context.Context, tx *sql.Tx, t Tables, c *accessCause, id string, state domain.DatabaseState) error {
	states := t.Name("access_database_states")
	var last string
	err := tx.QueryRowContext(ctx, `SELECT state FROM `+states+` WHERE database_id = ? ORDER BY position DESC LIMIT 1`, id).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if last != string(state) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+states+` (database_id, position, at, state) VALUES (?, ?, ?, ?)`,
			id, c.position, c.at, state); err != nil {
			return err
		}
	}
	var tenant string
	if err := tx.QueryRowContext(ctx, `SELECT tenant_id FROM `+t.Name("access_databases")+` WHERE database_id = ?`, id).Scan(&tenant); err != nil {
		return err
	}
	return p.recompute(ctx, tx, t, c, accessScope{tenant: tenant, database: id})
}

// applyMember applies a change of a tenant's membership: the member's row, then their access to
// every database of the tenant.
func (p AccessReport) applyMember(ctx context.Context, tx *sql.Tx, t Tables, c *accessCause, tenant string, ev domain.Event) error {
	members := t.Name("access_members")
	var (
		user string
		stmt string
		args []any
	)
	switch e := ev.(type) {
	case domain.TenantInvitationAccepted:
		// The member_added that follows in the same append starts the membership; it is attributed
		// to the invitation.
		_, err := tx.ExecContext(ctx, `INSERT INTO `+members+` (tenant_id, user_id, role, invitation_id) VALUES (?, ?, '', ?)
			ON DUPLICATE KEY UPDATE invitation_id = VALUES(invitation_id)`, tenant, e.UserID, e.InvitationID)
		return err
	case domain.TenantMemberAdded:
		var invitation sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT invitation_id FROM `+members+` WHERE tenant_id = ? AND user_id = ?`, tenant, e.UserID).Scan(&invitation)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		c.invitation, user = invitation.String, string(e.UserID)
		stmt, args = `INSERT INTO `+members+` (tenant_id, user_id, role) VALUES (?, ?, ?)
			ON DUPLICATE KEY UPDATE role = VALUES(role), suspended_role = NULL, invitation_id = NULL`, []any{tenant, e.UserID, e.Role}
	case domain.TenantMemberRoleChanged:
		c.override, user = e.Override, string(e.UserID)
		// A deactivated member's new role waits for the reactivation (the domain refuses the change).
		stmt, args = `UPDATE `+members+` SET suspended_role = IF(role = '', ?, suspended_role), role = IF(role = '', '', ?)
			WHERE tenant_id = ? AND user_id = ?`, []any{e.To, e.To, tenant, e.UserID}
	case domain.TenantMemberDeactivated:
		c.override, user = e.Override, string(e.UserID)
		stmt, args = `UPDATE `+members+` SET suspended_role = IF(role = '', suspended_role, role), role = '' WHERE tenant_id = ? AND user_id = ?`,
			[]any{tenant, e.UserID}
	case domain.TenantMemberReactivated:
		c.override, user = e.Override, string(e.UserID)
		stmt, args = `UPDATE `+members+` SET role = COALESCE(suspended_role, role), suspended_role = NULL WHERE tenant_id = ? AND user_id = ?`,
			[]any{tenant, e.UserID}
	case domain.TenantMembershipClosed:
		user = string(e.UserID)
		stmt, args = `DELETE FROM `+members+` WHERE tenant_id = ? AND user_id = ?`, []any{tenant, e.UserID}
	}
	if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
		return err
	}
	return p.recompute(ctx, tx, t, c, accessScope{tenant: tenant, user: user})
}

// grantKey identifies an interval's grant: a database, a person, a path, a key.
type grantKey struct {
	database, user, path, key string
}

type openInterval struct {
	role          string
	validTo       *time.Time
	position, seq int64
}

// recompute asks the domain who reaches the databases of s now and makes the open intervals of s
// say the same: closing what is gone or changed, opening what is new or changed.
func (p AccessReport) recompute(ctx context.Context, tx *sql.Tx, t Tables, c *accessCause, s accessScope) error {
	desired, err := p.desired(ctx, tx, t, c.at, s)
	if err != nil {
		return err
	}
	intervals := t.Name("access_intervals")
	where, args := `tenant_id = ? AND open = 1`, []any{s.tenant}
	if s.database != "" {
		where, args = where+` AND database_id = ?`, append(args, s.database)
	}
	if s.user != "" {
		where, args = where+` AND user_id = ?`, append(args, s.user)
	}
	rows, err := tx.QueryContext(ctx, `SELECT database_id, user_id, path, key_id, role, valid_to, from_position, from_seq
		FROM `+intervals+` WHERE `+where+` ORDER BY from_position, from_seq`, args...)
	if err != nil {
		return err
	}
	open := map[grantKey]openInterval{}
	var order []grantKey
	for rows.Next() {
		var k grantKey
		var o openInterval
		var validTo sql.NullTime
		if err := rows.Scan(&k.database, &k.user, &k.path, &k.key, &o.role, &validTo, &o.position, &o.seq); err != nil {
			rows.Close()
			return err
		}
		if validTo.Valid {
			o.validTo = &validTo.Time
		}
		open[k] = o
		order = append(order, k)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	kept := map[grantKey]bool{}
	for _, g := range desired {
		if o, ok := open[g.key]; ok && o.role == string(g.Role) && (o.validTo == nil || o.validTo.After(c.at)) {
			kept[g.key] = true
		}
	}
	previous := map[grantKey]string{}
	var expired []openInterval
	for _, k := range order {
		if kept[k] {
			continue
		}
		o := open[k]
		if o.validTo != nil && !o.validTo.After(c.at) { // an API key that expired: ended then, by itself
			expired = append(expired, o)
			continue
		}
		previous[k] = o.role
	}
	if err := updateIntervals(ctx, tx, `UPDATE `+intervals+` SET open = 0 WHERE `, nil, expired); err != nil {
		return err
	}
	continuing := map[grantKey]bool{}
	for _, g := range desired {
		if _, ok := previous[g.key]; ok {
			continuing[g.key] = true
		}
	}
	closing := map[bool][]openInterval{}
	for _, k := range order {
		if _, ok := previous[k]; ok {
			closing[continuing[k]] = append(closing[continuing[k]], open[k])
		}
	}
	for _, continued := range []bool{false, true} {
		if err := updateIntervals(ctx, tx, `UPDATE `+intervals+` SET valid_to = GREATEST(valid_from, ?), to_position = ?, to_event_id = ?,
			to_event_type = ?, to_actor = ?, to_override = ?, continued = ?, open = 0 WHERE `,
			[]any{c.at, c.position, c.eventID, c.eventType, nullString(c.actor), c.override, continued}, closing[continued]); err != nil {
			return err
		}
	}
	var values []string
	var rowArgs []any
	for _, g := range desired {
		if kept[g.key] {
			continue
		}
		var prev any
		if role, ok := previous[g.key]; ok {
			prev = role
		}
		c.seq++
		values = append(values, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		rowArgs = append(rowArgs, s.tenant, g.key.database, g.key.user, g.key.path, g.key.key, g.Role, prev, c.at, c.position, c.seq, c.eventID,
			c.eventType, nullString(c.actor), c.override, nullString(c.invitation), dbTimeOrNull(g.Until))
		if len(values) == 500 {
			if err := insertIntervals(ctx, tx, intervals, values, rowArgs); err != nil {
				return err
			}
			values, rowArgs = values[:0], rowArgs[:0]
		}
	}
	return insertIntervals(ctx, tx, intervals, values, rowArgs)
}

// insertIntervals inserts rows of intervals in one statement, none when there are none.
func insertIntervals(ctx context.Context, tx *sql.Tx, intervals string, values []string, args []any) error {
	if len(values) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO `+intervals+` (tenant_id, database_id, user_id, path, key_id, role, previous_role,
		valid_from, from_position, from_seq, from_event_id, from_event_type, from_actor, from_override, invitation_id, valid_to)
		VALUES `+strings.Join(values, ", "), args...)
	return err
}

// updateIntervals runs update (which ends in WHERE) with args for the given intervals, selected by
// primary key, 500 at a time.
func updateIntervals(ctx context.Context, tx *sql.Tx, update string, args []any, which []openInterval) error {
	for len(which) > 0 {
		chunk := which[:min(len(which), 500)]
		which = which[len(chunk):]
		terms := make([]string, len(chunk))
		all := slices.Clone(args)
		for i, o := range chunk {
			terms[i] = "(from_position = ? AND from_seq = ?)"
			all = append(all, o.position, o.seq)
		}
		if _, err := tx.ExecContext(ctx, update+strings.Join(terms, " OR "), all...); err != nil {
			return err
		}
	}
	return nil
}

// scopedGrant is a grant of one database.
type scopedGrant struct {
	domain.AccessGrant
	key grantKey
}

// desired is who reaches the databases of s at at, by domain.DatabaseAccess.
func (p AccessReport) desired(ctx context.Context, tx *sql.Tx, t Tables, at time.Time, s accessScope) ([]scopedGrant, error) {
	type database struct {
		id, owner string
		state     domain.DatabaseState
	}
	where, args := `tenant_id = ? AND state IN (?, ?, ?)`, []any{s.tenant, domain.StateProvisioning, domain.StateRunning, domain.StateStopped}
	if s.database != "" {
		where, args = `database_id = ?`, []any{s.database}
	}
	rows, err := tx.QueryContext(ctx, `SELECT database_id, owner_id, state FROM `+t.Name("access_databases")+` WHERE `+where+` ORDER BY database_id`, args...)
	if err != nil {
		return nil, err
	}
	var dbs []database
	for rows.Next() {
		var d database
		if err := rows.Scan(&d.id, &d.owner, &d.state); err != nil {
			rows.Close()
			return nil, err
		}
		dbs = append(dbs, d)
	}
	if err := rows.Close(); err != nil || len(dbs) == 0 {
		return nil, err
	}
	userFilter, userArgs := "", []any{s.tenant}
	if s.user != "" {
		userFilter, userArgs = ` AND m.user_id = ?`, append(userArgs, s.user)
	}
	rows, err = tx.QueryContext(ctx, `SELECT m.user_id, m.role, a.user_id IS NOT NULL FROM `+t.Name("access_members")+` m
		LEFT JOIN `+t.Name("access_super_admins")+` a ON a.user_id = m.user_id WHERE m.tenant_id = ?`+userFilter, userArgs...)
	if err != nil {
		return nil, err
	}
	var members []domain.AccessMember
	for rows.Next() {
		var m domain.AccessMember
		if err := rows.Scan(&m.UserID, &m.Role, &m.SuperAdmin); err != nil {
			rows.Close()
			return nil, err
		}
		members = append(members, m)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT m.key_id, m.user_id, m.expires_at FROM `+t.Name("access_keys")+` m
		WHERE m.tenant_id = ? AND m.revoked = 0`+userFilter, userArgs...)
	if err != nil {
		return nil, err
	}
	var keys []domain.AccessKey
	for rows.Next() {
		var k domain.AccessKey
		var expires sql.NullTime
		if err := rows.Scan(&k.KeyID, &k.UserID, &expires); err != nil {
			rows.Close()
			return nil, err
		}
		if expires.Valid {
			k.ExpiresAt = &expires.Time
		}
		keys = append(keys, k)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	var out []scopedGrant
	for _, d := range dbs {
		for _, g := range domain.DatabaseAccess(d.state, domain.UserID(d.owner), members, keys, at) {
			out = append(out, scopedGrant{AccessGrant: g, key: grantKey{database: d.id, user: string(g.UserID), path: string(g.Path), key: string(g.KeyID)}})
		}
	}
	return out, nil
}

// strs runs a query of one string column.
func strs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
