package commands

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

// AlertViews is what the alert commands and reactors read (*projections.Views).
type AlertViews interface {
	RuleStates(ctx context.Context) ([]projections.RuleState, error)
	AlertInputs(ctx context.Context, tenants []domain.TenantID, since time.Time) (map[domain.TenantID]*projections.AlertInputs, error)
	RunningNow(ctx context.Context, tenants []domain.TenantID, now time.Time) (map[domain.TenantID]int64, error)
	Members(ctx context.Context, tenant domain.TenantID, f projections.MemberFilter, cursor string, limit int) ([]projections.MemberView, string, error)
	Webhooks(ctx context.Context, tenant domain.TenantID) ([]projections.WebhookView, error)
	HasNotification(ctx context.Context, tenant domain.TenantID, user domain.UserID, id string) (bool, error)
}

// alertReadModels are the read models the alert commands wait for before answering.
var alertReadModels = []string{"alerts", "notifications"}

// Alerts handles the commands of alert rules, notifications and webhooks.
type Alerts struct {
	events     EventStore
	secrets    Secrets
	readModels ReadModels
	views      AlertViews
	now        func() time.Time
}

// NewAlerts returns the alert commands. It panics on a nil dependency.
func NewAlerts(events EventStore, secrets Secrets, readModels ReadModels, views AlertViews, now func() time.Time) *Alerts {
	if events == nil || secrets == nil || readModels == nil || views == nil || now == nil {
		panic("commands: NewAlerts needs an event store, secrets, read models, views and a clock")
	}
	return &Alerts{events: events, secrets: secrets, readModels: readModels, views: views, now: now}
}

// append appends a and waits until the alert read models show it.
func (h *Alerts) append(ctx context.Context, a eventstore.Append) error {
	res, err := h.events.Append(ctx, a)
	if err != nil {
		return err
	}
	return h.readModels.WaitFor(ctx, res.LastPosition, alertReadModels...)
}

func (h *Alerts) rules(ctx context.Context, tenant domain.TenantID) (*domain.AlertRules, error) {
	return load(ctx, h.events, domain.AlertRulesStream(tenant), func(history []domain.Event, version int64) (*domain.AlertRules, error) {
		return domain.RebuildAlertRules(tenant, history, version), nil
	})
}

// CreateRule adds a rule to the tenant's and returns it with its new id. Returns a
// *domain.ValidationError for a bad rule or one too many.
func (h *Alerts) CreateRule(ctx context.Context, tenant domain.TenantID, rule domain.AlertRule, meta eventstore.Metadata) (domain.AlertRule, error) {
	rule.ID = domain.AlertRuleID(uuid.NewString())
	err := retry(ctx, func() error {
		rules, err := h.rules(ctx, tenant)
		if err != nil {
			return err
		}
		if err := rules.Create(rule, h.now()); err != nil {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(domain.AlertRulesStream(tenant), "alerts", rules)}, Metadata: meta})
	})
	return rule, err
}

// ChangeRule replaces one of the tenant's rules. Returns domain.ErrNotFound or a
// *domain.ValidationError.
func (h *Alerts) ChangeRule(ctx context.Context, tenant domain.TenantID, rule domain.AlertRule, meta eventstore.Metadata) error {
	return retry(ctx, func() error {
		rules, err := h.rules(ctx, tenant)
		if err != nil {
			return err
		}
		if err := rules.Change(rule, h.now()); err != nil {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(domain.AlertRulesStream(tenant), "alerts", rules)}, Metadata: meta})
	})
}

// DeleteRule removes one of the tenant's rules, ending its alert (silently) if it fires. Returns
// domain.ErrNotFound.
func (h *Alerts) DeleteRule(ctx context.Context, tenant domain.TenantID, id domain.AlertRuleID, meta eventstore.Metadata) error {
	return retry(ctx, func() error {
		rules, err := h.rules(ctx, tenant)
		if err != nil {
			return err
		}
		rule, err := rules.Rule(id)
		if err != nil {
			return err
		}
		if err := rules.Delete(id, h.now()); err != nil {
			return err
		}
		alert, err := load(ctx, h.events, id.Stream(), func(history []domain.Event, version int64) (*domain.Alert, error) {
			return domain.RebuildAlert(history, version), nil
		})
		if err != nil {
			return err
		}
		alert.End(tenant, rule, h.now())
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{
			stream(domain.AlertRulesStream(tenant), "alerts", rules), stream(id.Stream(), "alert", alert),
		}, Metadata: meta})
	})
}

// ReadNotification marks one of the user's notifications in the tenant read. Returns
// domain.ErrNotFound when the user has no such notification there.
func (h *Alerts) ReadNotification(ctx context.Context, tenant domain.TenantID, user domain.UserID, id string, meta eventstore.Metadata) error {
	ok, err := h.views.HasNotification(ctx, tenant, user, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("notification %s: %w", id, domain.ErrNotFound)
	}
	return h.inbox(ctx, user, domain.NotificationRead{NotificationID: id, TenantID: tenant, At: h.now().UTC()}, meta)
}

// ReadAllNotifications marks every notification the user has in the tenant now read.
func (h *Alerts) ReadAllNotifications(ctx context.Context, tenant domain.TenantID, user domain.UserID, meta eventstore.Metadata) error {
	return h.inbox(ctx, user, domain.NotificationAllRead{TenantID: tenant, At: h.now().UTC()}, meta)
}

// inbox records what the user did with their notifications: their inbox only grows, so no
// decision needs its version.
func (h *Alerts) inbox(ctx context.Context, user domain.UserID, e domain.Event, meta eventstore.Metadata) error {
	return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{{ID: domain.InboxStream(user), Type: "inbox",
		ExpectedVersion: eventstore.AnyVersion, Events: []domain.Event{e}}}, Metadata: meta})
}

// webhookSecret names a webhook's signing secret in the vault.
func webhookSecret(id domain.WebhookID) string { return "webhook:" + string(id) }

// CreatedWebhook is a new webhook with its signing secret, shown this once.
type CreatedWebhook struct {
	projections.WebhookView
	Secret string `json:"secret"`
}

// CreateWebhook adds a webhook to the tenant with a new signing secret ("whsec_" and 32 random
// bytes in base64, as Standard Webhooks has it). Returns a *domain.ValidationError for a bad URL or
// description, or when the tenant has domain.MaxWebhooks already.
func (h *Alerts) CreateWebhook(ctx context.Context, tenant domain.TenantID, rawURL, description string, meta eventstore.Metadata) (CreatedWebhook, error) {
	existing, err := h.views.Webhooks(ctx, tenant)
	if err != nil {
		return CreatedWebhook{}, err
	}
	if len(existing) >= domain.MaxWebhooks {
		return CreatedWebhook{}, domain.NewValidationError("url", fmt.Sprintf("a tenant has at most %d webhooks", domain.MaxWebhooks))
	}
	id := domain.WebhookID(uuid.NewString())
	w, err := domain.CreateWebhook(id, tenant, rawURL, description, h.now().UTC())
	if err != nil {
		return CreatedWebhook{}, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	secret := domain.WebhookSecretPrefix + base64.StdEncoding.EncodeToString(key)
	if err := h.secrets.Put(ctx, webhookSecret(id), []byte(secret)); err != nil {
		return CreatedWebhook{}, err
	}
	if err := h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "webhook", w)}, Metadata: meta}); err != nil {
		return CreatedWebhook{}, err
	}
	c := w.Created()
	return CreatedWebhook{WebhookView: projections.WebhookView{ID: id, URL: c.URL, Description: c.Description, CreatedAt: c.At}, Secret: secret}, nil
}

// webhook loads one of the tenant's webhooks that is not deleted. Returns domain.ErrNotFound.
func (h *Alerts) webhook(ctx context.Context, tenant domain.TenantID, id domain.WebhookID) (*domain.Webhook, error) {
	w, err := load(ctx, h.events, id.Stream(), domain.RebuildWebhook)
	if err != nil {
		return nil, err
	}
	if w.Created().TenantID != tenant || w.Deleted() {
		return nil, fmt.Errorf("webhook %s: %w", id, domain.ErrNotFound)
	}
	return w, nil
}

// Webhook checks that the tenant has the webhook. Returns domain.ErrNotFound.
func (h *Alerts) Webhook(ctx context.Context, tenant domain.TenantID, id domain.WebhookID) error {
	_, err := h.webhook(ctx, tenant, id)
	return err
}

// DeleteWebhook deletes one of the tenant's webhooks and its secret: its pending deliveries are
// given up. Returns domain.ErrNotFound.
func (h *Alerts) DeleteWebhook(ctx context.Context, tenant domain.TenantID, id domain.WebhookID, meta eventstore.Metadata) error {
	err := retry(ctx, func() error {
		w, err := h.webhook(ctx, tenant, id)
		if err != nil {
			return err
		}
		if err := w.Delete(h.now().UTC()); err != nil {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "webhook", w)}, Metadata: meta})
	})
	if err != nil {
		return err
	}
	return h.secrets.Erase(ctx, webhookSecret(id))
}

// TestWebhook asks for a test delivery to one of the tenant's webhooks and returns its id; the
// delivery log shows how it went. Returns domain.ErrNotFound.
func (h *Alerts) TestWebhook(ctx context.Context, tenant domain.TenantID, id domain.WebhookID, meta eventstore.Metadata) (domain.WebhookDeliveryID, error) {
	if _, err := h.webhook(ctx, tenant, id); err != nil {
		return "", err
	}
	now := h.now().UTC()
	d, err := webhookDelivery(id, tenant, domain.WebhookTypeTest, map[string]any{"message": "A test delivery from CloudDB Manager."}, now)
	if err != nil {
		return "", err
	}
	return d.Requested().DeliveryID, h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{deliveryStream(d)}, Metadata: meta})
}

// webhookDelivery builds a delivery of a message of type with data, its body fixed now as
// Standard Webhooks' payload: {type, timestamp, tenant_id, data}.
func webhookDelivery(webhook domain.WebhookID, tenant domain.TenantID, typ string, data any, now time.Time) (*domain.WebhookDelivery, error) {
	body, err := jsonBody(map[string]any{"type": typ, "timestamp": now.Format(time.RFC3339), "tenant_id": tenant, "data": data})
	if err != nil {
		return nil, err
	}
	return domain.RequestWebhookDelivery(domain.WebhookDeliveryRequested{DeliveryID: domain.WebhookDeliveryID(uuid.NewString()),
		WebhookID: webhook, TenantID: tenant, Type: typ, Body: body, At: now}), nil
}

// jsonBody is v as JSON text.
func jsonBody(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func deliveryStream(d *domain.WebhookDelivery) eventstore.Stream {
	return stream(d.Requested().DeliveryID.Stream(), "webhookdelivery", d)
}
