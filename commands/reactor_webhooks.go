package commands

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/backoffs"
	"github.com/clouddbmanager/clouddb/internal/egress"
)

// The webhook reactor reacts to webhook.delivery_requested.v1 and to failed attempts coming due
// (the webhook_deliveries read model, a WorkQueue): it posts each message to its webhook, signed
// as Standard Webhooks 1.0 says, and records the attempt. Like the mail reactor it takes each
// delivery with a work lease (webhook:<delivery id>) and holds no transaction while the receiver
// answers. Delivery is at least once: a process that dies after the receiver's answer and before
// recording it leaves the lease to expire, and the message is posted again under the same
// webhook-id, by which the receiver knows it has it already. Nothing is lost: the request is
// recorded before any attempt, and every attempt's outcome after it.

// Bounds of one attempt: the receiver has WebhookTimeout to answer, and its answer's body is read
// (and dropped) up to webhookBodyLimit so the connection can be reused.
const (
	WebhookTimeout   = 10 * time.Second
	webhookBodyLimit = 64 << 10
)

// webhookRetries are the waits after failed attempts: 10 s, doubling up to 10 minutes, with 20 %
// jitter; MaxWebhookAttempts bounds how many.
func webhookRetry(attempt int) time.Duration {
	b := backoffs.Exponential(10*time.Second, 10*time.Minute, 0.2)
	d := b.NextBackOff()
	for range attempt - 1 {
		d = b.NextBackOff()
	}
	return d
}

// WebhookDelivery is the reactor that posts webhook deliveries.
type WebhookDelivery struct {
	events  EventStore
	secrets Secrets
	queue   WorkQueue // webhook_deliveries
	client  *http.Client
	now     func() time.Time
	log     *slog.Logger
	// Instance names this process in the work leases it takes.
	Instance string
	// Observe, when set, is told of each attempt's outcome (Prometheus counters).
	Observe func(delivered bool)
}

// NewWebhookDelivery returns the webhook reactor; client nil means egress.Client: WebhookTimeout,
// no redirect followed (a 3xx is an answer, not a 2xx), public addresses only.
func NewWebhookDelivery(events EventStore, secrets Secrets, queue WorkQueue, client *http.Client, now func() time.Time, log *slog.Logger) *WebhookDelivery {
	if client == nil {
		client = egress.Client(WebhookTimeout, false)
	}
	return &WebhookDelivery{events: events, secrets: secrets, queue: queue, client: client, now: now, log: log, Instance: uuid.NewString()}
}

// Run delivers due messages until ctx ends, looking again when wake fires or every poll.
func (w *WebhookDelivery) Run(ctx context.Context, wake func() <-chan struct{}, poll time.Duration) {
	runRounds(ctx, w.log, "webhook delivery", w.DeliverDue, wake, poll)
}

// DeliverDue posts the deliveries that are due, up to a batch, and returns how many it took.
func (w *WebhookDelivery) DeliverDue(ctx context.Context) (int, error) {
	outbox := leasedOutbox{queue: w.queue, now: w.now, log: w.log, table: "webhook_deliveries", idField: "delivery_id", kind: "webhook"}
	return outbox.drain(ctx, w.Instance, func(ctx context.Context, id string) error {
		return w.deliver(ctx, domain.WebhookDeliveryID(id))
	})
}

func (w *WebhookDelivery) deliver(ctx context.Context, id domain.WebhookDeliveryID) error {
	read, cancel := context.WithTimeout(ctx, reactorCallTimeout)
	defer cancel()
	d, err := load(read, w.events, id.Stream(), domain.RebuildWebhookDelivery)
	if err != nil {
		return err
	}
	if !d.Due(w.now()) {
		return nil // the read model lags behind the delivery's stream
	}
	req := d.Requested()
	hook, err := load(read, w.events, req.WebhookID.Stream(), domain.RebuildWebhook)
	if err != nil {
		return err
	}
	status, why, gone := 0, "", hook.Deleted()
	if gone {
		why = "the webhook was deleted"
	} else {
		var secret []byte
		if secret, err = w.secrets.Get(read, webhookSecret(req.WebhookID)); err != nil {
			return fmt.Errorf("secret of webhook %s: %w", req.WebhookID, err)
		}
		status, why = w.post(ctx, hook.Created().URL, string(secret), req)
	}
	if cause := context.Cause(ctx); cause != nil {
		return fmt.Errorf("stopped before its outcome was recorded (%w); the delivery is tried again", cause)
	}
	d.Attempted(status, why, gone, webhookRetry(d.Attempts()+1), w.now().UTC())
	if w.Observe != nil {
		w.Observe(status >= 200 && status < 300)
	}
	log := w.log.With("delivery_id", id, "webhook_id", req.WebhookID, "type", req.Type, "attempt", d.Attempts(), "status", status)
	if status >= 200 && status < 300 {
		log.Info("webhook delivered")
	} else {
		log.Warn("webhook not delivered", "err", why, "given_up", d.Done())
	}
	record, cancel := context.WithTimeout(ctx, reactorCallTimeout)
	defer cancel()
	_, err = w.events.Append(record, eventstore.Append{Streams: []eventstore.Stream{deliveryStream(d)},
		Metadata: eventstore.Metadata{TenantID: string(req.TenantID)}})
	return err
}

// post sends one attempt and returns the receiver's status (0 when none came) and why it is not
// a 2xx.
func (w *WebhookDelivery) post(ctx context.Context, url, secret string, req domain.WebhookDeliveryRequested) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, WebhookTimeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(req.Body))
	if err != nil {
		return 0, err.Error()
	}
	timestamp := w.now().Unix()
	signature, err := SignWebhook(secret, string(req.DeliveryID), timestamp, []byte(req.Body))
	if err != nil {
		return 0, err.Error()
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "CloudDB-Manager-Webhooks/1")
	r.Header.Set("webhook-id", string(req.DeliveryID))
	r.Header.Set("webhook-timestamp", strconv.FormatInt(timestamp, 10))
	r.Header.Set("webhook-signature", signature)
	resp, err := w.client.Do(r)
	if err != nil {
		if errors.Is(err, egress.ErrNotPublic) {
			return 0, "the receiver's address is not on the public internet: webhooks reach public addresses only"
		}
		var urlErr interface{ Timeout() bool }
		if errors.As(err, &urlErr) && urlErr.Timeout() {
			return 0, "no answer in time"
		}
		return 0, "the receiver could not be reached"
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, webhookBodyLimit)) //nolint:errcheck // only drained for reuse
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Sprintf("answered %d", resp.StatusCode)
	}
	return resp.StatusCode, ""
}

// SignWebhook is the webhook-signature header of a message as Standard Webhooks 1.0 has it:
// "v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">", keyed by the base64-decoded part of a
// "whsec_" secret.
func SignWebhook(secret, id string, timestamp int64, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, domain.WebhookSecretPrefix))
	if err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, timestamp)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}
