package projections

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
)

// InvitationsOfPerson returns the invitations user accepted or that were sent to email, for an erasure
// (commands.ErasureDirectory).
func (q *Views) InvitationsOfPerson(ctx context.Context, user domain.UserID, email string) ([]domain.InvitationID, error) {
	return ids[domain.InvitationID](ctx, q.db, `SELECT invitation_id FROM invitations WHERE accepted_by = ? OR email = ? ORDER BY invitation_id`, user, email)
}

// MailsTo returns the mails to email, for an erasure (commands.ErasureDirectory).
func (q *Views) MailsTo(ctx context.Context, email string) ([]domain.MailID, error) {
	return ids[domain.MailID](ctx, q.db, `SELECT mail_id FROM mail_deliveries WHERE recipient = ? ORDER BY mail_id`, email)
}

func ids[T ~string](ctx context.Context, db *sql.DB, query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("projections: %w", err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("projections: %w", err)
		}
		out = append(out, T(id))
	}
	return out, rows.Err()
}
