package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/mysqlerr"
)

// Views is the read side: it reads the read models (users, sessions, tenants, API keys,
// invitations, members, databases, query history) for the API and for commands that need a lookup.
// Only the projectors write them.
type Views struct {
	db *sql.DB
	// sessionAndUser is SessionAndUser's statement, prepared on the server once per connection:
	// every authenticated request runs it, and parsing its text cost the server more than running it.
	sessionAndUser preparedQuery
}

// NewViews returns the read side on db.
func NewViews(db *sql.DB) *Views {
	return &Views{db: db, sessionAndUser: preparedQuery{query: `SELECT ` + sessionColumns + `, ` + userColumns + `
		FROM sessions s JOIN users u ON u.user_id = s.user_id WHERE s.session_id = ?`}}
}

// preparedQuery is a query of the read side prepared on the server (a binary-protocol statement,
// parsed once per connection rather than at every run). One request prepares it while the others
// run the text; a preparation that fails (a table not created yet, say) is tried again
// preparedRetry later; a connection on which the server refuses to prepare it (its
// max_prepared_stmt_count reached) runs the text. So no request waits behind another's
// preparation, and a server that will not prepare costs no request more than a round trip.
type preparedQuery struct {
	query   string
	mu      sync.Mutex
	stmt    *sql.Stmt
	retryAt time.Time // no preparation before
}

// preparedRetry is how long a failed preparation leaves the query to its text.
const preparedRetry = 10 * time.Second

// scan runs the query with args on db and scans its row into dest.
func (p *preparedQuery) scan(ctx context.Context, db *sql.DB, args []any, dest ...any) error {
	if stmt := p.prepared(ctx, db); stmt != nil {
		err := stmt.QueryRowContext(ctx, args...).Scan(dest...)
		if !mysqlerr.IsPrepareRefused(err) {
			return err
		}
	}
	return db.QueryRowContext(ctx, p.query, args...).Scan(dest...)
}

// prepared returns the prepared statement, preparing it when nobody is and nothing failed lately;
// nil runs the text.
func (p *preparedQuery) prepared(ctx context.Context, db *sql.DB) *sql.Stmt {
	p.mu.Lock()
	if p.stmt != nil || time.Now().Before(p.retryAt) {
		defer p.mu.Unlock()
		return p.stmt
	}
	p.retryAt = time.Now().Add(preparedRetry) // the others run the text meanwhile
	p.mu.Unlock()
	stmt, err := db.PrepareContext(ctx, p.query)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stmt = stmt
	return stmt
}

// UserView is a row of the users read model.
type UserView struct {
	ID                domain.UserID
	Email, Name       string
	Status            domain.UserStatus
	SuperAdmin        bool
	TOTPEnabled       bool
	CreatedAt         time.Time
	LastLoginAt       *time.Time
	PasswordChangedAt *time.Time
}

const userColumns = `u.user_id, u.email, u.name, u.status, u.super_admin, u.totp_enabled, u.created_at, u.last_login_at, u.password_changed_at`

// User returns a user. Returns domain.ErrNotFound when there is none.
func (q *Views) User(ctx context.Context, id domain.UserID) (UserView, error) {
	var u UserView
	var lastLogin, changed sql.NullTime
	err := q.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users u WHERE u.user_id = ?`, id).
		Scan(&u.ID, &u.Email, &u.Name, &u.Status, &u.SuperAdmin, &u.TOTPEnabled, &u.CreatedAt, &lastLogin, &changed)
	if errors.Is(err, sql.ErrNoRows) {
		return UserView{}, fmt.Errorf("user %s: %w", id, domain.ErrNotFound)
	} else if err != nil {
		return UserView{}, fmt.Errorf("read user %s: %w", id, err)
	}
	u.LastLoginAt, u.PasswordChangedAt = nullTime(lastLogin), nullTime(changed)
	return u, nil
}

// MembershipsOf lists the tenants a user is an active member of (not deactivated), by name.
func (q *Views) MembershipsOf(ctx context.Context, user domain.UserID) ([]domain.Membership, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT t.tenant_id, t.slug, t.name, m.role
		FROM memberships m JOIN tenants t ON t.tenant_id = m.tenant_id
		WHERE m.user_id = ? AND m.status = 'active' ORDER BY t.name, t.tenant_id`, user)
	if err != nil {
		return nil, fmt.Errorf("read memberships of %s: %w", user, err)
	}
	defer rows.Close()
	out := []domain.Membership{}
	for rows.Next() {
		var m domain.Membership
		if err := rows.Scan(&m.TenantID, &m.Slug, &m.Name, &m.Role); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// SessionView is a row of the sessions read model.
type SessionView struct {
	ID          domain.SessionID
	UserID      domain.UserID
	TenantID    domain.TenantID
	Role        domain.Role
	SuperAdmin  bool
	StartedAt   time.Time
	ExpiresAt   time.Time
	IdleTimeout time.Duration
	IP          string
	UserAgent   string
	RefreshedAt *time.Time
	EndedAt     *time.Time
	EndReason   string
}

// LastActive is the later of its start and last refresh.
func (s SessionView) LastActive() time.Time {
	if s.RefreshedAt != nil && s.RefreshedAt.After(s.StartedAt) {
		return *s.RefreshedAt
	}
	return s.StartedAt
}

const sessionColumns = `s.session_id, s.user_id, COALESCE(s.tenant_id, ''), COALESCE(s.role, ''), s.super_admin, s.started_at,
	s.expires_at, s.idle_timeout_s, s.ip, s.user_agent, s.refreshed_at, s.ended_at, COALESCE(s.end_reason, '')`

func scanSession(row interface{ Scan(...any) error }) (SessionView, error) {
	var s SessionView
	var idle int64
	var refreshed, ended sql.NullTime
	err := row.Scan(&s.ID, &s.UserID, &s.TenantID, &s.Role, &s.SuperAdmin, &s.StartedAt, &s.ExpiresAt, &idle,
		&s.IP, &s.UserAgent, &refreshed, &ended, &s.EndReason)
	s.IdleTimeout = time.Duration(idle) * time.Second
	s.RefreshedAt, s.EndedAt = nullTime(refreshed), nullTime(ended)
	return s, err
}

// Session returns a session. Returns domain.ErrNotFound when there is none.
func (q *Views) Session(ctx context.Context, id domain.SessionID) (SessionView, error) {
	s, err := scanSession(q.db.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions s WHERE s.session_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return SessionView{}, fmt.Errorf("session %s: %w", id, domain.ErrNotFound)
	} else if err != nil {
		return SessionView{}, fmt.Errorf("read session %s: %w", id, err)
	}
	return s, nil
}

// SessionAndUser returns a session with its user's account, in one round trip: what every
// authenticated request reads. Returns domain.ErrNotFound when there is no such session.
func (q *Views) SessionAndUser(ctx context.Context, id domain.SessionID) (SessionView, UserView, error) {
	var u UserView
	var lastLogin, changed sql.NullTime
	s, err := scanSession(rowScanner(func(dest ...any) error {
		return q.sessionAndUser.scan(ctx, q.db, []any{id}, append(dest, &u.ID, &u.Email, &u.Name, &u.Status, &u.SuperAdmin, &u.TOTPEnabled, &u.CreatedAt, &lastLogin, &changed)...)
	}))
	if errors.Is(err, sql.ErrNoRows) {
		return SessionView{}, UserView{}, fmt.Errorf("session %s: %w", id, domain.ErrNotFound)
	} else if err != nil {
		return SessionView{}, UserView{}, fmt.Errorf("read session %s: %w", id, err)
	}
	u.LastLoginAt, u.PasswordChangedAt = nullTime(lastLogin), nullTime(changed)
	return s, u, nil
}

// rowScanner adapts a function to the Scan of a row.
type rowScanner func(dest ...any) error

func (f rowScanner) Scan(dest ...any) error { return f(dest...) }

// LiveSessionsOf lists a user's sessions that have not ended, expired or idled out by now (its
// last activity is the latest of start, refresh and recorded use), newest first.
func (q *Views) LiveSessionsOf(ctx context.Context, user domain.UserID, now time.Time) ([]SessionView, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions s
		LEFT JOIN session_activity a ON a.session_id = s.session_id
		WHERE s.user_id = ? AND s.ended_at IS NULL AND s.expires_at > ?
		AND GREATEST(s.started_at, COALESCE(s.refreshed_at, s.started_at), COALESCE(a.last_seen_at, s.started_at))
			+ INTERVAL s.idle_timeout_s SECOND >= ?
		ORDER BY s.started_at DESC LIMIT 500`, user, now.UTC(), now.UTC())
	if err != nil {
		return nil, fmt.Errorf("read sessions of %s: %w", user, err)
	}
	defer rows.Close()
	out := []SessionView{}
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// TenantView is a row of the tenants read model with its member count.
type TenantView struct {
	ID        domain.TenantID
	Slug      string
	Name      string
	Plan      domain.PlanID
	Settings  domain.TenantSettings
	CreatedAt time.Time
	Members   int64
	// Seats is what the plan's max_users counts: the members (deactivated ones keep their seat
	// until their membership closes) and the invitations pending and not expired
	// (domain.Tenant.Invite).
	Seats int64
}

// seatsOf counts the seats of tenant t (TenantView.Seats).
const seatsOf = `(SELECT COUNT(*) FROM memberships m WHERE m.tenant_id = t.tenant_id)
	+ (SELECT COUNT(*) FROM invitations i WHERE i.tenant_id = t.tenant_id AND i.status = 'pending' AND i.expires_at > UTC_TIMESTAMP(6))`

const tenantColumns = `t.tenant_id, t.slug, t.name, t.plan, t.settings, t.created_at,
	(SELECT COUNT(*) FROM memberships m WHERE m.tenant_id = t.tenant_id), ` + seatsOf

func scanTenant(row interface{ Scan(...any) error }) (TenantView, error) {
	var t TenantView
	var settings []byte
	if err := row.Scan(&t.ID, &t.Slug, &t.Name, &t.Plan, &settings, &t.CreatedAt, &t.Members, &t.Seats); err != nil {
		return TenantView{}, err
	}
	return t, json.Unmarshal(settings, &t.Settings)
}

// Tenant returns a tenant. Returns domain.ErrNotFound when there is none.
func (q *Views) Tenant(ctx context.Context, id domain.TenantID) (TenantView, error) {
	t, err := scanTenant(q.db.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants t WHERE t.tenant_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return TenantView{}, fmt.Errorf("tenant %s: %w", id, domain.ErrNotFound)
	} else if err != nil {
		return TenantView{}, fmt.Errorf("read tenant %s: %w", id, err)
	}
	return t, nil
}

// Tenants lists tenants ordered by id, limit at a time after the id in cursor ("" for the first
// page). next is the cursor of the following page, "" at the end.
func (q *Views) Tenants(ctx context.Context, cursor string, limit int) (items []TenantView, next string, err error) {
	rows, err := q.db.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants t WHERE t.tenant_id > ? ORDER BY t.tenant_id LIMIT ?`, cursor, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	items = []TenantView{}
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, "", err
		}
		items = append(items, t)
	}
	if len(items) > limit {
		items = items[:limit]
		next = string(items[limit-1].ID)
	}
	return items, next, rows.Err()
}

func nullTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time.UTC()
	return &v
}

// APIKeyView is a row of the api_keys read model.
type APIKeyView struct {
	ID        domain.APIKeyID
	UserID    domain.UserID
	TenantID  domain.TenantID
	Name      string
	Hash      string
	CreatedAt time.Time
	ExpiresAt *time.Time
	RevokedAt *time.Time
}

const apiKeyColumns = `key_id, user_id, COALESCE(tenant_id, ''), name, key_hash, created_at, expires_at, revoked_at`

func scanAPIKey(row interface{ Scan(...any) error }) (APIKeyView, error) {
	var k APIKeyView
	var expires, revoked sql.NullTime
	err := row.Scan(&k.ID, &k.UserID, &k.TenantID, &k.Name, &k.Hash, &k.CreatedAt, &expires, &revoked)
	k.ExpiresAt, k.RevokedAt = nullTime(expires), nullTime(revoked)
	return k, err
}

// APIKey returns a key. Returns domain.ErrNotFound when there is none.
func (q *Views) APIKey(ctx context.Context, id domain.APIKeyID) (APIKeyView, error) {
	k, err := scanAPIKey(q.db.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE key_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return APIKeyView{}, fmt.Errorf("api key %s: %w", id, domain.ErrNotFound)
	} else if err != nil {
		return APIKeyView{}, fmt.Errorf("read api key %s: %w", id, err)
	}
	return k, nil
}

// APIKeysOf lists a user's unrevoked keys, newest first.
func (q *Views) APIKeysOf(ctx context.Context, user domain.UserID) ([]APIKeyView, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys
		WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at DESC`, user)
	if err != nil {
		return nil, fmt.Errorf("read api keys of %s: %w", user, err)
	}
	defer rows.Close()
	out := []APIKeyView{}
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RoleIn returns a user's role in a tenant, or "" when the user is not an active member.
func (q *Views) RoleIn(ctx context.Context, tenant domain.TenantID, user domain.UserID) (domain.Role, error) {
	var role domain.Role
	err := q.db.QueryRowContext(ctx, `SELECT role FROM memberships WHERE tenant_id = ? AND user_id = ? AND status = 'active'`, tenant, user).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return role, err
}

// InvitationView is a row of the invitations read model; a pending invitation past its expiry
// reads as "expired".
type InvitationView struct {
	ID        domain.InvitationID
	Email     string
	Role      domain.Role
	Status    string
	InvitedBy domain.UserID
	CreatedAt time.Time
	ExpiresAt time.Time
}

// InvitationsOf lists a tenant's invitations, newest first.
func (q *Views) InvitationsOf(ctx context.Context, tenant domain.TenantID, now time.Time) ([]InvitationView, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT invitation_id, email, role,
			IF(status = 'pending' AND expires_at <= ?, 'expired', status), invited_by, created_at, expires_at
		FROM invitations WHERE tenant_id = ? ORDER BY created_at DESC LIMIT 1000`, now.UTC(), tenant)
	if err != nil {
		return nil, fmt.Errorf("read invitations of %s: %w", tenant, err)
	}
	defer rows.Close()
	out := []InvitationView{}
	for rows.Next() {
		var v InvitationView
		if err := rows.Scan(&v.ID, &v.Email, &v.Role, &v.Status, &v.InvitedBy, &v.CreatedAt, &v.ExpiresAt); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// InvitationsTo returns when each invitation of email (by any tenant, whatever became of it) was
// created since since: what the per-address bound of invitations counts.
func (q *Views) InvitationsTo(ctx context.Context, email string, since time.Time) ([]time.Time, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT created_at FROM invitations WHERE email = ? AND created_at >= ?`, email, since.UTC())
	if err != nil {
		return nil, fmt.Errorf("read invitations to an address: %w", err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			return nil, err
		}
		out = append(out, at)
	}
	return out, rows.Err()
}

// DatabaseView is a row of the databases read model.
type DatabaseView struct {
	ID               domain.DatabaseID
	TenantID         domain.TenantID
	Name             string
	State            domain.DatabaseState
	Charset          string
	Collation        string
	Template         string
	OwnerID          domain.UserID
	Server           string
	CreatedAt        time.Time
	UpdatedAt        time.Time
	LastUsedAt       *time.Time
	StorageBytes     int64
	RecoverableUntil *time.Time
	FailureReason    string
	// WriteWall is the storage quota (the tenant's, or the owner's sub-quota) the database was
	// over when its read-write account was narrowed to reading and freeing space; nil: it is not.
	WriteWall *domain.QuotaExceededError
}

// WritesRestricted reports whether the database's read-write account may only read and free space.
func (d DatabaseView) WritesRestricted() bool { return d.WriteWall != nil }

const databaseColumns = `database_id, tenant_id, name, state, charset, collation, template, owner_id, server,
	created_at, updated_at, last_used_at, storage_bytes, recoverable_until, COALESCE(failure_reason, ''), writes_restricted,
	COALESCE(wall_resource, ''), wall_used, wall_limit`

func scanDatabase(row interface{ Scan(...any) error }) (DatabaseView, error) {
	var d DatabaseView
	var lastUsed, recoverable sql.NullTime
	var restricted bool
	var wall domain.QuotaExceededError
	err := row.Scan(&d.ID, &d.TenantID, &d.Name, &d.State, &d.Charset, &d.Collation, &d.Template, &d.OwnerID, &d.Server,
		&d.CreatedAt, &d.UpdatedAt, &lastUsed, &d.StorageBytes, &recoverable, &d.FailureReason, &restricted,
		&wall.Resource, &wall.Used, &wall.Limit)
	d.LastUsedAt, d.RecoverableUntil = nullTime(lastUsed), nullTime(recoverable)
	if restricted {
		d.WriteWall = &wall
	}
	return d, err
}

// Database returns one of a tenant's databases. Returns domain.ErrNotFound for a database that
// does not exist, was purged, or belongs to another tenant.
func (q *Views) Database(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID) (DatabaseView, error) {
	d, err := scanDatabase(q.db.QueryRowContext(ctx, `SELECT `+databaseColumns+` FROM database_list
		WHERE database_id = ? AND tenant_id = ? AND state <> 'purged'`, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return DatabaseView{}, fmt.Errorf("database %s: %w", id, domain.ErrNotFound)
	} else if err != nil {
		return DatabaseView{}, fmt.Errorf("read database %s: %w", id, err)
	}
	return d, nil
}

// DatabasesOf lists a tenant's databases by name: those in state when given, deleted ones only
// with includeDeleted (or when state is "deleted").
func (q *Views) DatabasesOf(ctx context.Context, tenant domain.TenantID, state domain.DatabaseState, includeDeleted bool) ([]DatabaseView, error) {
	query := `SELECT ` + databaseColumns + ` FROM database_list WHERE tenant_id = ? AND state <> 'purged'`
	args := []any{tenant}
	if state != "" {
		query += ` AND state = ?`
		args = append(args, state)
	} else if !includeDeleted {
		query += ` AND state <> 'deleted'`
	}
	rows, err := q.db.QueryContext(ctx, query+` ORDER BY name, database_id LIMIT 1000`, args...)
	if err != nil {
		return nil, fmt.Errorf("read databases of %s: %w", tenant, err)
	}
	defer rows.Close()
	out := []DatabaseView{}
	for rows.Next() {
		d, err := scanDatabase(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DatabaseUsage is what a tenant's databases use: how many count against the plan (not deleted,
// not failed) and the storage of all that still have a schema.
func (q *Views) DatabaseUsage(ctx context.Context, tenant domain.TenantID) (databases, storageBytes int64, err error) {
	err = q.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(state IN ('provisioning', 'running', 'stopped')), 0),
		COALESCE(SUM(IF(state IN ('running', 'stopped', 'deleted'), storage_bytes, 0)), 0)
		FROM database_list WHERE tenant_id = ?`, tenant).Scan(&databases, &storageBytes)
	if err != nil {
		return 0, 0, fmt.Errorf("database usage of %s: %w", tenant, err)
	}
	return databases, storageBytes, nil
}

// StorageByOwner sums the storage of a tenant's databases (those with a schema) per owner.
func (q *Views) StorageByOwner(ctx context.Context, tenant domain.TenantID) (map[domain.UserID]int64, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT owner_id, SUM(storage_bytes) FROM database_list
		WHERE tenant_id = ? AND state IN ('running', 'stopped', 'deleted') GROUP BY owner_id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("storage by owner in %s: %w", tenant, err)
	}
	defer rows.Close()
	out := map[domain.UserID]int64{}
	for rows.Next() {
		var owner domain.UserID
		var bytes int64
		if err := rows.Scan(&owner, &bytes); err != nil {
			return nil, err
		}
		out[owner] = bytes
	}
	return out, rows.Err()
}

// QueryHistoryItem is an entry of GET /queries/history.
type QueryHistoryItem struct {
	QueryID       string    `json:"query_id"`
	DatabaseID    string    `json:"database_id"`
	SQL           string    `json:"sql"`
	SQLTruncated  bool      `json:"sql_truncated,omitempty"`
	StatementType string    `json:"statement_type"` // "" when the statement could not be classified
	Status        string    `json:"status"`         // succeeded, failed, timeout, denied
	ErrorCode     string    `json:"error_code,omitempty"`
	Error         string    `json:"error,omitempty"`
	ExecutionMS   float64   `json:"execution_ms"`
	RowCount      int64     `json:"row_count"`
	AffectedRows  int64     `json:"affected_rows"`
	ExecutedAt    time.Time `json:"executed_at"`
}

// QueryHistory lists a user's last queries in a tenant, newest first: at most limit, and at most
// QueryHistoryLength (also when limit is 0 or less).
func (q *Views) QueryHistory(ctx context.Context, tenant domain.TenantID, user domain.UserID, limit int) ([]QueryHistoryItem, error) {
	if limit <= 0 || limit > QueryHistoryLength {
		limit = QueryHistoryLength
	}
	rows, err := q.db.QueryContext(ctx, `SELECT query_id, database_id, sql_text, sql_truncated, statement_type, status,
			error_code, error, execution_ms, row_count, affected_rows, executed_at
		FROM query_history WHERE tenant_id = ? AND user_id = ? ORDER BY seq DESC LIMIT ?`, tenant, user, limit)
	if err != nil {
		return nil, fmt.Errorf("read query history of %s in %s: %w", user, tenant, err)
	}
	defer rows.Close()
	out := []QueryHistoryItem{}
	for rows.Next() {
		var h QueryHistoryItem
		if err := rows.Scan(&h.QueryID, &h.DatabaseID, &h.SQL, &h.SQLTruncated, &h.StatementType, &h.Status,
			&h.ErrorCode, &h.Error, &h.ExecutionMS, &h.RowCount, &h.AffectedRows, &h.ExecutedAt); err != nil {
			return nil, err
		}
		h.ExecutedAt = h.ExecutedAt.UTC()
		out = append(out, h)
	}
	return out, rows.Err()
}
