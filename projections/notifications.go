package projections

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Notifications is the read model of what alerts tell: the in-app notifications of each
// recipient (one row per notification and user, from the alert events that notify in_app; read
// by the user's inbox events), the tenants' webhooks, and the webhook deliveries with their
// attempts (which the delivery reactor takes its work from). Rows keep the log position they
// reflect, so a redelivered event changes nothing.
type Notifications struct {
	reg *eventstore.Registry
}

// NewNotifications returns the projector decoding with reg. It panics on a nil registry.
func NewNotifications(reg *eventstore.Registry) Notifications {
	if reg == nil {
		panic("projections: NewNotifications needs a registry")
	}
	return Notifications{reg: reg}
}

func (Notifications) Name() string { return "notifications" }

func (p Notifications) Handles() []string {
	return p.reg.StoredAs(domain.AlertFired{}.EventType(), domain.AlertResolved{}.EventType(), domain.AlertNotified{}.EventType(),
		domain.NotificationRead{}.EventType(), domain.NotificationAllRead{}.EventType(),
		domain.WebhookCreated{}.EventType(), domain.WebhookDeleted{}.EventType(),
		domain.WebhookDeliveryRequested{}.EventType(), domain.WebhookDeliveryAttempted{}.EventType())
}

func (Notifications) Tables() []Table {
	return []Table{
		{Name: "notifications", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			notification_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			user_id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			tenant_id       CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			kind            VARCHAR(32) NOT NULL,
			rule_id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			message         VARCHAR(500) NOT NULL,
			created_at      DATETIME(6) NOT NULL,
			read_at         DATETIME(6) NULL,
			PRIMARY KEY (notification_id, user_id),
			KEY notifications_inbox (user_id, tenant_id, created_at)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
		{Name: "webhooks", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			webhook_id  CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
			tenant_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			url         VARCHAR(2000) NOT NULL,
			description VARCHAR(500) NOT NULL,
			created_at  DATETIME(6) NOT NULL,
			deleted     BOOL NOT NULL DEFAULT 0,
			KEY webhooks_tenant (tenant_id, created_at)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
		{Name: "webhook_deliveries", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			delivery_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
			webhook_id       CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			tenant_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			type             VARCHAR(32) NOT NULL,
			status           VARCHAR(16) NOT NULL,
			attempts         INT NOT NULL,
			last_status_code INT NULL,
			last_error       VARCHAR(1024) NULL,
			created_at       DATETIME(6) NOT NULL,
			updated_at       DATETIME(6) NOT NULL,
			next_attempt_at  DATETIME(6) NULL,
			position         BIGINT NOT NULL,
			KEY webhook_deliveries_log (webhook_id, created_at),
			KEY webhook_deliveries_due (status, next_attempt_at)
		) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`},
	}
}

func (p Notifications) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	for _, env := range events {
		e, err := p.reg.Decode(env)
		if err != nil {
			return err
		}
		if err := p.apply(ctx, tx, t, env, e); err != nil {
			return fmt.Errorf("notifications at position %d: %w", env.Position, err)
		}
	}
	return nil
}

func (p Notifications) apply(ctx context.Context, tx *sql.Tx, t Tables, env eventstore.Envelope, e domain.Event) error {
	switch e := e.(type) {
	case domain.AlertFired:
		return p.notify(ctx, tx, t, e.TenantID, e.Rule, e.Value, e.Notice, "alert.fired", e.At)
	case domain.AlertNotified:
		return p.notify(ctx, tx, t, e.TenantID, e.Rule, e.Value, e.Notice, "alert.fired", e.At)
	case domain.AlertResolved:
		return p.notify(ctx, tx, t, e.TenantID, e.Rule, e.Value, e.Notice, "alert.resolved", e.At)
	case domain.NotificationRead:
		user := strings.TrimPrefix(env.StreamID, "inbox-")
		_, err := tx.ExecContext(ctx, `UPDATE `+t.Name("notifications")+` SET read_at = ?
			WHERE notification_id = ? AND user_id = ? AND read_at IS NULL`, e.At.UTC(), e.NotificationID, user)
		return err
	case domain.NotificationAllRead:
		user := strings.TrimPrefix(env.StreamID, "inbox-")
		_, err := tx.ExecContext(ctx, `UPDATE `+t.Name("notifications")+` SET read_at = ?
			WHERE user_id = ? AND tenant_id = ? AND read_at IS NULL AND created_at <= ?`, e.At.UTC(), user, e.TenantID, e.At.UTC())
		return err
	case domain.WebhookCreated:
		_, err := tx.ExecContext(ctx, `INSERT IGNORE INTO `+t.Name("webhooks")+` (webhook_id, tenant_id, url, description, created_at)
			VALUES (?, ?, ?, ?, ?)`, e.WebhookID, e.TenantID, e.URL, e.Description, e.At.UTC())
		return err
	case domain.WebhookDeleted:
		_, err := tx.ExecContext(ctx, `UPDATE `+t.Name("webhooks")+` SET deleted = 1 WHERE webhook_id = ?`,
			strings.TrimPrefix(env.StreamID, "webhook-"))
		return err
	case domain.WebhookDeliveryRequested:
		_, err := tx.ExecContext(ctx, `INSERT IGNORE INTO `+t.Name("webhook_deliveries")+` (delivery_id, webhook_id, tenant_id, type,
			status, attempts, created_at, updated_at, next_attempt_at, position) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)`,
			e.DeliveryID, e.WebhookID, e.TenantID, e.Type, e.At.UTC(), e.At.UTC(), e.At.UTC(), env.Position)
		return err
	case domain.WebhookDeliveryAttempted:
		status := "pending"
		switch {
		case e.Delivered:
			status = "delivered"
		case e.Final:
			status = "failed"
		}
		_, err := tx.ExecContext(ctx, `UPDATE `+t.Name("webhook_deliveries")+` SET status = ?, attempts = ?, last_status_code = ?,
			last_error = ?, updated_at = ?, next_attempt_at = ?, position = ? WHERE delivery_id = ? AND position < ?`,
			status, e.Attempt, nullInt(e.StatusCode), nullString(clip(e.Error, 1024)), e.At.UTC(), dbTime(e.NextAt), env.Position,
			strings.TrimPrefix(env.StreamID, "webhookdelivery-"), env.Position)
		return err
	}
	return nil
}

// notify adds the in-app notification of an alert event for each of its recipients.
func (Notifications) notify(ctx context.Context, tx *sql.Tx, t Tables, tenant domain.TenantID, rule domain.AlertRule, value float64,
	notice domain.AlertNotice, kind string, at time.Time) error {
	if !slices.Contains(notice.Channels, domain.ChannelInApp) || len(notice.Recipients) == 0 {
		return nil
	}
	message := rule.Describe(value)
	if kind == "alert.resolved" {
		message = "Resolved: " + message
	}
	rows := make([]any, 0, len(notice.Recipients))
	for _, user := range notice.Recipients {
		rows = append(rows, []any{notice.NotificationID, user, tenant, kind, rule.ID, clip(message, 500), at.UTC()})
	}
	return upsertRows(ctx, tx, `INSERT IGNORE INTO `+t.Name("notifications")+` (notification_id, user_id, tenant_id, kind, rule_id,
		message, created_at) VALUES `, 7, rows, ``)
}

func nullInt(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

// NotificationView is one in-app notification of the caller.
type NotificationView struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"` // alert.fired, alert.resolved
	RuleID    string     `json:"rule_id"`
	Message   string     `json:"message"`
	CreatedAt time.Time  `json:"created_at"`
	Read      bool       `json:"read"`
	ReadAt    *time.Time `json:"read_at"`
}

// NotificationsOf lists a user's notifications in a tenant, newest first, limit at a time before
// the cursor (nil for the first page), and how many are unread in all.
func (q *Views) NotificationsOf(ctx context.Context, tenant domain.TenantID, user domain.UserID, limit int, before *AlertCursor) ([]NotificationView, int64, error) {
	query := `SELECT notification_id, kind, rule_id, message, created_at, read_at FROM notifications WHERE user_id = ? AND tenant_id = ?`
	args := []any{user, tenant}
	if before != nil {
		query += ` AND (created_at, notification_id) < (?, ?)`
		args = append(args, before.FiredAt.UTC(), before.ID)
	}
	rows, err := q.db.QueryContext(ctx, query+` ORDER BY created_at DESC, notification_id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, 0, fmt.Errorf("read notifications: %w", err)
	}
	defer rows.Close()
	out := []NotificationView{}
	for rows.Next() {
		var v NotificationView
		var readAt sql.NullTime
		if err := rows.Scan(&v.ID, &v.Kind, &v.RuleID, &v.Message, &v.CreatedAt, &readAt); err != nil {
			return nil, 0, err
		}
		v.CreatedAt, v.ReadAt, v.Read = v.CreatedAt.UTC(), nullTime(readAt), readAt.Valid
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	var unread int64
	err = q.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM notifications WHERE user_id = ? AND tenant_id = ? AND read_at IS NULL`,
		user, tenant).Scan(&unread)
	return out, unread, err
}

// HasNotification reports whether the user has the notification in the tenant.
func (q *Views) HasNotification(ctx context.Context, tenant domain.TenantID, user domain.UserID, id string) (bool, error) {
	var n int
	err := q.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM notifications WHERE notification_id = ? AND user_id = ? AND tenant_id = ?`,
		id, user, tenant).Scan(&n)
	return n > 0, err
}

// WebhookView is a webhook of a tenant (its secret is never shown again).
type WebhookView struct {
	ID          domain.WebhookID `json:"id"`
	URL         string           `json:"url"`
	Description string           `json:"description"`
	CreatedAt   time.Time        `json:"created_at"`
}

// Webhooks lists a tenant's webhooks, oldest first.
func (q *Views) Webhooks(ctx context.Context, tenant domain.TenantID) ([]WebhookView, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT webhook_id, url, description, created_at FROM webhooks
		WHERE tenant_id = ? AND NOT deleted ORDER BY created_at, webhook_id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("read webhooks of %s: %w", tenant, err)
	}
	defer rows.Close()
	out := []WebhookView{}
	for rows.Next() {
		var v WebhookView
		if err := rows.Scan(&v.ID, &v.URL, &v.Description, &v.CreatedAt); err != nil {
			return nil, err
		}
		v.CreatedAt = v.CreatedAt.UTC()
		out = append(out, v)
	}
	return out, rows.Err()
}

// DeliveryView is one entry of a webhook's delivery log.
type DeliveryView struct {
	ID            string     `json:"id"`
	Type          string     `json:"type"`
	Status        string     `json:"status"` // pending, delivered, failed
	Attempts      int        `json:"attempts"`
	StatusCode    *int       `json:"status_code"`
	Error         *string    `json:"error"`
	CreatedAt     time.Time  `json:"created_at"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

// Deliveries lists the last deliveries of a webhook, newest first (at most limit).
func (q *Views) Deliveries(ctx context.Context, webhook domain.WebhookID, limit int) ([]DeliveryView, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT delivery_id, type, status, attempts, last_status_code, last_error, created_at,
		IF(attempts > 0, updated_at, NULL), IF(status = 'pending', next_attempt_at, NULL)
		FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_at DESC, delivery_id DESC LIMIT ?`, webhook, limit)
	if err != nil {
		return nil, fmt.Errorf("read deliveries of %s: %w", webhook, err)
	}
	defer rows.Close()
	out := []DeliveryView{}
	for rows.Next() {
		var v DeliveryView
		var code sql.NullInt64
		var errText sql.NullString
		var last, next sql.NullTime
		if err := rows.Scan(&v.ID, &v.Type, &v.Status, &v.Attempts, &code, &errText, &v.CreatedAt, &last, &next); err != nil {
			return nil, err
		}
		if code.Valid {
			c := int(code.Int64)
			v.StatusCode = &c
		}
		if errText.Valid {
			v.Error = &errText.String
		}
		v.CreatedAt, v.LastAttemptAt, v.NextAttemptAt = v.CreatedAt.UTC(), nullTime(last), nullTime(next)
		out = append(out, v)
	}
	return out, rows.Err()
}
