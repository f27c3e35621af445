package projections

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// MemberView is a member of a tenant with the user's account.
type MemberView struct {
	ID          domain.UserID
	Email, Name string
	Role        domain.Role // also while deactivated: the role a reactivation gives back
	// Status is the membership's: "deactivated", else the account's ("active",
	// "pending_verification").
	Status       string
	LastLoginAt  *time.Time
	JoinedAt     time.Time
	Deactivation *MemberDeactivation // nil while active
}

// MemberDeactivation is what the members read model keeps of a deactivation.
type MemberDeactivation struct {
	Type, Reason string
	At           time.Time
	ReactivateAt *time.Time // temporary: when the timer reactivates
	GraceUntil   *time.Time // permanent: reversible until, then closed
}

// MemberFilter narrows GET /users; zero fields do not filter. Status is a MemberView.Status.
type MemberFilter struct {
	Role        domain.Role
	Status      string
	ActiveSince *time.Time
}

const memberColumns = `u.user_id, u.email, u.name, m.role, IF(m.status = 'deactivated', m.status, u.status), u.last_login_at, m.joined_at,
	m.deactivated_at, COALESCE(m.deactivation_type, ''), COALESCE(m.deactivation_reason, ''), m.reactivate_at, m.grace_until`

func scanMember(row interface{ Scan(...any) error }) (MemberView, error) {
	var m MemberView
	var last, deactivated, reactivate, grace sql.NullTime
	var d MemberDeactivation
	err := row.Scan(&m.ID, &m.Email, &m.Name, &m.Role, &m.Status, &last, &m.JoinedAt, &deactivated, &d.Type, &d.Reason, &reactivate, &grace)
	m.LastLoginAt = nullTime(last)
	if deactivated.Valid {
		d.At, d.ReactivateAt, d.GraceUntil = deactivated.Time.UTC(), nullTime(reactivate), nullTime(grace)
		m.Deactivation = &d
	}
	return m, err
}

// Members lists a tenant's members by email (and id), limit at a time after cursor ("" for the
// first page). next is the cursor of the following page, "" at the end. A cursor Members did not
// make is a *domain.ValidationError on "cursor".
func (q *Views) Members(ctx context.Context, tenant domain.TenantID, f MemberFilter, cursor string, limit int) (items []MemberView, next string, err error) {
	query := `SELECT ` + memberColumns + ` FROM memberships m JOIN users u ON u.user_id = m.user_id WHERE m.tenant_id = ?`
	args := []any{tenant}
	if cursor != "" {
		email, id, err := decodeMemberCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		query += ` AND (u.email > ? OR (u.email = ? AND u.user_id > ?))`
		args = append(args, email, email, id)
	}
	if f.Role != "" {
		query += ` AND m.role = ?`
		args = append(args, f.Role)
	}
	switch f.Status {
	case "":
	case string(domain.MemberDeactivated):
		query += ` AND m.status = 'deactivated'`
	default:
		query += ` AND m.status = 'active' AND u.status = ?`
		args = append(args, f.Status)
	}
	if f.ActiveSince != nil {
		query += ` AND u.last_login_at >= ?`
		args = append(args, f.ActiveSince.UTC())
	}
	rows, err := q.db.QueryContext(ctx, query+` ORDER BY u.email, u.user_id LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("read members of %s: %w", tenant, err)
	}
	if items, err = scanAll(rows, scanMember); err != nil {
		return nil, "", err
	}
	if len(items) > limit {
		items = items[:limit]
		last := items[limit-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(last.Email + "\n" + string(last.ID)))
	}
	return items, next, nil
}

// A member cursor is the email and user id of the last member of a page (an address has no line
// break), in base64url.
func decodeMemberCursor(cursor string) (email, id string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	email, id, ok := strings.Cut(string(raw), "\n")
	if err != nil || !ok || email == "" {
		return "", "", domain.NewValidationError("cursor", "must be the next_cursor of a previous page")
	}
	return email, id, nil
}

// Member returns one member of a tenant. Returns domain.ErrNotFound for a user who is not one.
func (q *Views) Member(ctx context.Context, tenant domain.TenantID, user domain.UserID) (MemberView, error) {
	m, err := scanMember(q.db.QueryRowContext(ctx, `SELECT `+memberColumns+`
		FROM memberships m JOIN users u ON u.user_id = m.user_id WHERE m.tenant_id = ? AND m.user_id = ?`, tenant, user))
	if errors.Is(err, sql.ErrNoRows) {
		return MemberView{}, fmt.Errorf("member %s: %w", user, domain.ErrNotFound)
	} else if err != nil {
		return MemberView{}, fmt.Errorf("read member %s of %s: %w", user, tenant, err)
	}
	return m, nil
}

// DatabasesOwnedBy lists the databases of a tenant that user owns, by name: those that count
// against the quota, and deleted ones still within their recovery window.
func (q *Views) DatabasesOwnedBy(ctx context.Context, tenant domain.TenantID, user domain.UserID) ([]DatabaseView, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT `+databaseColumns+` FROM database_list
		WHERE tenant_id = ? AND owner_id = ? AND state IN ('provisioning', 'running', 'stopped', 'deleted')
		ORDER BY name, database_id LIMIT 1000`, tenant, user)
	if err != nil {
		return nil, fmt.Errorf("read databases of %s in %s: %w", user, tenant, err)
	}
	return scanAll(rows, scanDatabase)
}

// scanAll reads every row with scan and closes rows.
func scanAll[T any](rows *sql.Rows, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
