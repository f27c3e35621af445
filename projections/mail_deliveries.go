package projections

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// MailDeliveries is the read model of outgoing mail: its status, attempts and when the next
// delivery is due (KEY mail_due serves "pending and due"). Mails are pending until sent or given
// up; attempts counts failed deliveries, as domain.Mail does. A mail changes only from pending and
// only for a later attempt, so a redelivered or replayed event changes nothing.
type MailDeliveries struct {
	reg *eventstore.Registry
}

// NewMailDeliveries returns the mail_deliveries projector, decoding events with reg. It panics on
// a nil registry.
func NewMailDeliveries(reg *eventstore.Registry) MailDeliveries {
	if reg == nil {
		panic("projections: NewMailDeliveries needs a registry")
	}
	return MailDeliveries{reg: reg}
}

func (MailDeliveries) Name() string { return "mail_deliveries" }

func (MailDeliveries) Handles() []string {
	return []string{
		domain.MailRequested{}.EventType(),
		domain.MailSent{}.EventType(),
		domain.MailFailed{}.EventType(),
	}
}

func (MailDeliveries) Tables() []Table {
	return []Table{{Name: "mail_deliveries", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
		mail_id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
		recipient       VARCHAR(254)  NOT NULL,
		kind            VARCHAR(32)   NOT NULL,
		status          VARCHAR(16)   NOT NULL,
		attempts        INT           NOT NULL,
		next_attempt_at DATETIME(6)   NULL,
		last_error      VARCHAR(1000) NULL,
		requested_at    DATETIME(6)   NOT NULL,
		sent_at         DATETIME(6)   NULL,
		subject         VARCHAR(80)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		KEY mail_due (status, next_attempt_at),
		KEY mail_subject (subject)
	) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`}}
}

// Erase implements Eraser: the recipient of every mail whose recipient is sealed for one of the
// erasure's subjects (the mail's user or invitation: the subject column) reads as its placeholder.
func (MailDeliveries) Erase(ctx context.Context, tx *sql.Tx, t Tables, e PersonErasure, _ func(context.Context, []int64) ([]eventstore.Envelope, error)) error {
	for _, subject := range e.subjects() {
		if _, err := tx.ExecContext(ctx, `UPDATE `+t.Name("mail_deliveries")+` SET recipient = ? WHERE subject = ?`,
			clip(domain.ErasedValue(subject, "to"), 254), subject); err != nil {
			return err
		}
	}
	return nil
}

// Apply applies the events in order.
func (p MailDeliveries) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	table := t.Name("mail_deliveries")
	for _, env := range events {
		if err := p.apply(ctx, tx, table, env); err != nil {
			return fmt.Errorf("projections: mail_deliveries: %s at position %d: %w", env.EventType, env.Position, err)
		}
	}
	return nil
}

func (p MailDeliveries) apply(ctx context.Context, tx *sql.Tx, table string, env eventstore.Envelope) error {
	ev, err := p.reg.Decode(env)
	if err != nil {
		return err
	}
	if e, ok := ev.(domain.MailRequested); ok {
		// The subject whose key seals the recipient, if any (what an erasure looks for).
		_, subject, _ := domain.SealPersonalData(e, env.StreamID, func(_, _, value string) (string, error) { return value, nil })
		_, err = tx.ExecContext(ctx, `INSERT INTO `+table+`
			(mail_id, recipient, kind, status, attempts, next_attempt_at, requested_at, subject)
			VALUES (?, ?, ?, 'pending', 0, ?, ?, ?)
			ON DUPLICATE KEY UPDATE mail_id = mail_id`,
			string(e.MailID), clip(e.To, 254), clip(e.Kind, 32), dbTime(env.RecordedAt), dbTime(env.RecordedAt), subject)
		return err
	}
	mail, err := streamEntity(env.StreamID, "mail-")
	if err != nil {
		return err
	}
	switch e := ev.(type) {
	case domain.MailSent:
		_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET status = 'sent', sent_at = ?, next_attempt_at = NULL
			WHERE mail_id = ? AND status = 'pending'`, dbTime(e.At), mail)
	case domain.MailFailed:
		status, next := "pending", dbTime(e.At.Add(domain.MailRetryDelay(e.Attempt)))
		if e.Permanent {
			status, next = "failed", nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE `+table+` SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?
			WHERE mail_id = ? AND status = 'pending' AND attempts < ?`,
			status, e.Attempt, next, clip(e.Error, 1000), mail, e.Attempt)
	default:
		return fmt.Errorf("unexpected event %T", ev)
	}
	return err
}
