package commands

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

// The alert evaluator reacts to the metrics read model's advance (queries, sign-ins, databases
// and storage) and to time passing: it looks at every rule of every tenant, and when a rule's
// alert changes — fires, resolves, or is told after its cooldown — records the change with what it
// sends in one append: the alert's event (the in-app notification follows from it), a mail per
// tenant admin, a webhook delivery per webhook. Several processes may look at once: the alert's
// stream version lets one record, and the others find it recorded.

// maxAlertRecipients bounds the tenant admins an alert notifies.
const maxAlertRecipients = 100

// AlertEvaluator evaluates the alert rules.
type AlertEvaluator struct {
	events      EventStore
	views       AlertViews
	connections func(domain.TenantID) int64
	now         func() time.Time
	log         *slog.Logger
	// Observe, when set, is told of each round's evaluations and of each notification sent, by
	// channel (Prometheus counters).
	Observe func(evaluations int, notified []string)
}

// NewAlertEvaluator returns the evaluator; connections is how many statements a tenant runs now
// in this process (the load samples give the deployment's).
// It panics on a nil dependency.
func NewAlertEvaluator(events EventStore, views AlertViews, connections func(domain.TenantID) int64, now func() time.Time, log *slog.Logger) *AlertEvaluator {
	if events == nil || views == nil || connections == nil || now == nil || log == nil {
		panic("commands: NewAlertEvaluator needs an event store, views, connections, a clock and a logger")
	}
	return &AlertEvaluator{events: events, views: views, connections: connections, now: now, log: log}
}

// Run evaluates the rules when wake fires and every poll until ctx ends.
func (e *AlertEvaluator) Run(ctx context.Context, wake func() <-chan struct{}, poll time.Duration) {
	runRounds(ctx, e.log, "alert evaluation", within(reactorCallTimeout, e.Evaluate), wake, poll)
}

// Evaluate looks at every rule once and records what changed; it returns how many alerts changed.
func (e *AlertEvaluator) Evaluate(ctx context.Context) (int, error) {
	states, err := e.views.RuleStates(ctx)
	if err != nil {
		return 0, err
	}
	now := e.now().UTC()
	var tenants []domain.TenantID
	window := time.Minute
	for _, s := range states {
		if len(tenants) == 0 || tenants[len(tenants)-1] != s.Tenant {
			tenants = append(tenants, s.Tenant)
		}
		if domain.AlertMetrics[s.Rule.Metric].Windowed {
			window = max(window, time.Duration(s.Rule.WindowMinutes)*time.Minute)
		}
	}
	inputs, err := e.views.AlertInputs(ctx, tenants, now.Add(-window))
	if err != nil {
		return 0, err
	}
	running, err := e.views.RunningNow(ctx, tenants, now)
	if err != nil {
		return 0, err
	}
	for _, t := range tenants {
		// As the dashboard's quota: the deployment's sampled figure, or this process's own count
		// when the samples have not caught up with it yet.
		inputs[t].Used["connections"] = max(running[t], e.connections(t))
	}
	changed := 0
	var notified []string
	for _, s := range states {
		value := inputs[s.Tenant].Value(s.Rule, now)
		ev := domain.AlertEvaluation{Tenant: s.Tenant, Rule: s.Rule, Holds: s.Rule.Holds(value), Value: value, Now: now}
		// A look at the read model's state first: most looks change nothing and cost no read of
		// the alert's stream.
		glance := domain.AlertAt(s.Firing, s.Told, s.ToldAt)
		glance.Evaluate(ev)
		if len(glance.PendingEvents()) == 0 {
			continue
		}
		channels, err := e.record(ctx, ev)
		if err != nil {
			return changed, fmt.Errorf("alert of rule %s: %w", s.Rule.ID, err)
		}
		changed++
		notified = append(notified, channels...)
	}
	if e.Observe != nil {
		e.Observe(len(states), notified)
	}
	return changed, nil
}

// record decides ev on the alert's stream and appends the change with its mails and deliveries;
// it returns the channels notified once per recipient.
func (e *AlertEvaluator) record(ctx context.Context, ev domain.AlertEvaluation) ([]string, error) {
	admins, _, err := e.views.Members(ctx, ev.Tenant, projections.MemberFilter{Role: domain.RoleTenantAdmin, Status: "active"}, "", maxAlertRecipients)
	if err != nil {
		return nil, err
	}
	for _, a := range admins {
		ev.Recipients = append(ev.Recipients, a.ID)
	}
	var notified []string
	err = retry(ctx, func() error {
		alert, err := load(ctx, e.events, ev.Rule.ID.Stream(), func(history []domain.Event, version int64) (*domain.Alert, error) {
			return domain.RebuildAlert(history, version), nil
		})
		if err != nil {
			return err
		}
		ev.NotificationID = uuid.NewString()
		alert.Evaluate(ev)
		if len(alert.PendingEvents()) == 0 {
			return nil // another process recorded it
		}
		streams := []eventstore.Stream{stream(ev.Rule.ID.Stream(), "alert", alert)}
		change := alert.PendingEvents()[0]
		notice, state, typ := alertNotice(change)
		notified = nil
		if slices.Contains(notice.Channels, domain.ChannelInApp) && len(notice.Recipients) > 0 {
			notified = append(notified, domain.ChannelInApp)
		}
		if slices.Contains(notice.Channels, domain.ChannelEmail) {
			for _, a := range admins {
				m := domain.RequestMail(domain.MailRequested{MailID: domain.MailID(uuid.NewString()), To: a.Email, Kind: domain.MailAlert,
					UserID: a.ID, Data: map[string]string{"name": a.Name, "state": state, "message": ev.Rule.Describe(ev.Value)}})
				streams = append(streams, stream(m.Requested().MailID.Stream(), "mail", m))
				notified = append(notified, domain.ChannelEmail)
			}
		}
		if slices.Contains(notice.Channels, domain.ChannelWebhook) {
			hooks, err := e.views.Webhooks(ctx, ev.Tenant)
			if err != nil {
				return err
			}
			data := map[string]any{"alert": map[string]any{"rule_id": ev.Rule.ID, "metric": ev.Rule.Metric, "comparison": ev.Rule.Comparison,
				"threshold": ev.Rule.Threshold, "kind": ev.Rule.Kind, "value": ev.Value, "state": state,
				"message": ev.Rule.Describe(ev.Value), "at": ev.Now.Format(time.RFC3339)}}
			for _, h := range hooks {
				d, err := webhookDelivery(h.ID, ev.Tenant, typ, data, ev.Now)
				if err != nil {
					return err
				}
				streams = append(streams, deliveryStream(d))
				notified = append(notified, domain.ChannelWebhook)
			}
		}
		_, err = e.events.Append(ctx, eventstore.Append{Streams: streams, Metadata: eventstore.Metadata{TenantID: string(ev.Tenant)}})
		return err
	})
	if err == nil && len(notified) > 0 {
		e.log.Info("alert changed", "tenant_id", ev.Tenant, "rule_id", ev.Rule.ID, "metric", ev.Rule.Metric, "value", ev.Value, "notified", notified)
	}
	return notified, err
}

// alertNotice is what an alert's change tells, the state it tells and its webhook type.
func alertNotice(e domain.Event) (domain.AlertNotice, string, string) {
	switch e := e.(type) {
	case domain.AlertFired:
		return e.Notice, domain.StateFiring, domain.WebhookTypeAlertFired
	case domain.AlertNotified:
		return e.Notice, domain.StateFiring, domain.WebhookTypeAlertNotified
	case domain.AlertResolved:
		return e.Notice, domain.StateResolved, domain.WebhookTypeAlertResolved
	}
	return domain.AlertNotice{}, "", ""
}
