package domain

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// WebhookID identifies a tenant's webhook; WebhookDeliveryID one delivery (its Standard Webhooks
// webhook-id, the same on every attempt).
type (
	WebhookID         string
	WebhookDeliveryID string
)

// ParseWebhookID validates s as a webhook id.
func ParseWebhookID(s string) (WebhookID, error) {
	id, err := parseUUID("webhook_id", s)
	return WebhookID(id), err
}

// Bounds of webhooks and their deliveries.
const (
	MaxWebhooks              = 10
	MaxWebhookURL            = 2000
	MaxWebhookDescription    = 500
	MaxWebhookAttempts       = 6 // the first and 5 retries
	WebhookSecretPrefix      = "whsec_"
	WebhookTypeAlertFired    = "alert.fired"
	WebhookTypeAlertResolved = "alert.resolved"
	WebhookTypeAlertNotified = "alert.notified"
	WebhookTypeTest          = "webhook.test"
)

// ValidateWebhookURL checks that raw is an absolute http or https URL with a host and without
// credentials or fragment, and returns it. Returns a *ValidationError on url otherwise.
func ValidateWebhookURL(raw string) (string, error) {
	bad := func(why string) (string, error) { return "", NewValidationError("url", why) }
	if len(raw) > MaxWebhookURL {
		return bad("at most 2000 characters")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Hostname() == "":
		return bad("an absolute http or https URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("the scheme must be http or https")
	case u.User != nil:
		return bad("no user name or password in the URL: the signature authenticates the sender")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("no fragment")
	}
	return u.String(), nil
}

// Webhook events, in the webhook's stream. The signing secret never enters the log: it is kept
// in the vault (webhook:<id>).
type (
	WebhookCreated struct {
		WebhookID   WebhookID `json:"webhook_id"`
		TenantID    TenantID  `json:"tenant_id"`
		URL         string    `json:"url"`
		Description string    `json:"description,omitempty"`
		At          time.Time `json:"at"`
	}
	WebhookDeleted struct {
		At time.Time `json:"at"`
	}
)

func (WebhookCreated) EventType() string { return "webhook.created.v1" }
func (WebhookDeleted) EventType() string { return "webhook.deleted.v1" }

// Webhook is one endpoint of a tenant.
type Webhook struct {
	aggregate
	created WebhookCreated
	deleted bool
}

// RebuildWebhook replays a webhook's stream. Returns ErrNotFound for an empty one.
func RebuildWebhook(history []Event, version int64) (*Webhook, error) {
	if len(history) == 0 {
		return nil, fmt.Errorf("webhook: %w", ErrNotFound)
	}
	w := &Webhook{}
	w.replay(w, history, version)
	return w, nil
}

// CreateWebhook records a new webhook. Returns a *ValidationError for a bad URL or description.
func CreateWebhook(id WebhookID, tenant TenantID, rawURL, description string, now time.Time) (*Webhook, error) {
	u, err := ValidateWebhookURL(rawURL)
	if err != nil {
		return nil, err
	}
	if len(description) > MaxWebhookDescription {
		return nil, NewValidationError("description", "at most 500 bytes")
	}
	w := &Webhook{}
	w.record(w, WebhookCreated{WebhookID: id, TenantID: tenant, URL: u, Description: description, At: now})
	return w, nil
}

func (w *Webhook) apply(e Event) {
	switch e := e.(type) {
	case WebhookCreated:
		w.created = e
	case WebhookDeleted:
		w.deleted = true
	}
}

func (w *Webhook) Created() WebhookCreated { return w.created }
func (w *Webhook) Deleted() bool           { return w.deleted }

// Delete records the end of the webhook. Returns ErrNotFound when it is deleted already.
func (w *Webhook) Delete(now time.Time) error {
	if w.deleted {
		return fmt.Errorf("webhook %s: %w", w.created.WebhookID, ErrNotFound)
	}
	w.record(w, WebhookDeleted{At: now})
	return nil
}

// Delivery events, in the delivery's stream. The body is fixed when the delivery is requested,
// so every attempt sends the same bytes under the same webhook-id; the timestamp and signature
// are the attempt's.
type (
	WebhookDeliveryRequested struct {
		DeliveryID WebhookDeliveryID `json:"delivery_id"`
		WebhookID  WebhookID         `json:"webhook_id"`
		TenantID   TenantID          `json:"tenant_id"`
		Type       string            `json:"type"` // alert.fired, alert.resolved, alert.notified, webhook.test
		Body       string            `json:"body"`
		At         time.Time         `json:"at"`
	}
	WebhookDeliveryAttempted struct {
		Attempt    int       `json:"attempt"`
		StatusCode int       `json:"status_code,omitempty"` // 0: no answer (refused, timed out)
		Error      string    `json:"error,omitempty"`
		Delivered  bool      `json:"delivered"` // a 2xx answer
		Final      bool      `json:"final"`     // delivered, or given up
		NextAt     time.Time `json:"next_at,omitzero"`
		At         time.Time `json:"at"`
	}
)

func (WebhookDeliveryRequested) EventType() string { return "webhook.delivery_requested.v1" }
func (WebhookDeliveryAttempted) EventType() string { return "webhook.delivery_attempted.v1" }

// WebhookDelivery is one message to a webhook and its attempts.
type WebhookDelivery struct {
	aggregate
	requested WebhookDeliveryRequested
	attempts  int
	done      bool
	nextAt    time.Time
}

// RequestWebhookDelivery records a message to deliver.
func RequestWebhookDelivery(r WebhookDeliveryRequested) *WebhookDelivery {
	d := &WebhookDelivery{}
	d.record(d, r)
	return d
}

// RebuildWebhookDelivery replays a delivery's stream. Returns ErrNotFound for an empty one.
func RebuildWebhookDelivery(history []Event, version int64) (*WebhookDelivery, error) {
	if len(history) == 0 {
		return nil, fmt.Errorf("webhook delivery: %w", ErrNotFound)
	}
	d := &WebhookDelivery{}
	d.replay(d, history, version)
	return d, nil
}

func (d *WebhookDelivery) apply(e Event) {
	switch e := e.(type) {
	case WebhookDeliveryRequested:
		d.requested = e
	case WebhookDeliveryAttempted:
		d.attempts, d.done, d.nextAt = e.Attempt, e.Final, e.NextAt
	}
}

func (d *WebhookDelivery) Requested() WebhookDeliveryRequested { return d.requested }
func (d *WebhookDelivery) Attempts() int                       { return d.attempts }

// Done reports whether the delivery is over: delivered, or given up.
func (d *WebhookDelivery) Done() bool { return d.done }

// Due reports whether an attempt may be made now: not delivered nor given up, and past the wait
// its last failure chose.
func (d *WebhookDelivery) Due(now time.Time) bool { return !d.done && !now.Before(d.nextAt) }

// Attempted records an attempt's answer (status 0: none came, err says why). A 2xx delivers; any
// other answer is retried after retryIn, up to MaxWebhookAttempts, and given up for good when
// gone is true (the webhook was deleted).
func (d *WebhookDelivery) Attempted(status int, err string, gone bool, retryIn time.Duration, now time.Time) {
	attempt := d.attempts + 1
	delivered := status >= 200 && status < 300
	final := delivered || gone || attempt >= MaxWebhookAttempts
	e := WebhookDeliveryAttempted{Attempt: attempt, StatusCode: status, Error: cutUTF8(err, MaxRecordedErrorBytes),
		Delivered: delivered, Final: final, At: now}
	if !final {
		e.NextAt = now.Add(retryIn)
	}
	d.record(d, e)
}

// Notification events, in the stream of the user who reads them (their inbox).
type (
	NotificationRead struct {
		NotificationID string    `json:"notification_id"`
		TenantID       TenantID  `json:"tenant_id"`
		At             time.Time `json:"at"`
	}
	// NotificationAllRead: every notification of the tenant the user had by At is read.
	NotificationAllRead struct {
		TenantID TenantID  `json:"tenant_id"`
		At       time.Time `json:"at"`
	}
)

func (NotificationRead) EventType() string    { return "notification.read.v1" }
func (NotificationAllRead) EventType() string { return "notification.all_read.v1" }
