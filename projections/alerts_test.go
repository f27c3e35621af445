package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

// TestAlertAndNotificationModelsReplay: rules (the defaults and changes), firings, in-app
// notifications and their reading, webhooks and deliveries are functions of the log.
func TestAlertAndNotificationModelsReplay(t *testing.T) {
	f := newIdentityFixture(t)
	alerts, notifications := projections.NewAlerts(production), projections.NewNotifications(production)
	r := f.start(t, alerts, notifications)
	views := projections.NewViews(f.db)
	ctx := context.Background()
	tenant, admin := domain.TenantID(newID()), domain.UserID(newID())
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

	f.appendAt(t, at(0), "tenant-"+string(tenant), domain.TenantCreated{TenantID: tenant, Name: "A", Slug: "a", Plan: domain.PlanFree})
	rule := domain.AlertRule{ID: domain.AlertRuleID(newID()), Metric: "failed_logins", Comparison: domain.CompareAbove, Threshold: 3,
		Kind: domain.ThresholdAbsolute, WindowMinutes: 10, CooldownMinutes: 60, Channels: []string{domain.ChannelInApp}}
	f.appendAt(t, at(1), domain.AlertRulesStream(tenant), domain.AlertRuleCreated{Rule: rule, At: at(1)})
	rule.Threshold = 5
	f.appendAt(t, at(2), domain.AlertRulesStream(tenant), domain.AlertRuleChanged{Rule: rule, At: at(2)})
	defaults := domain.DefaultAlertRules(tenant)
	f.appendAt(t, at(2), domain.AlertRulesStream(tenant), domain.AlertRuleDeleted{RuleID: defaults[0].ID, At: at(2)})
	notice := domain.AlertNotice{NotificationID: newID(), Channels: []string{domain.ChannelInApp}, Recipients: []domain.UserID{admin}}
	f.appendAt(t, at(3), rule.ID.Stream(), domain.AlertFired{TenantID: tenant, Rule: rule, Value: 9, At: at(3), Notice: notice})
	resolved := domain.AlertNotice{NotificationID: newID(), Channels: []string{domain.ChannelInApp}, Recipients: []domain.UserID{admin}}
	f.appendAt(t, at(4), rule.ID.Stream(), domain.AlertResolved{TenantID: tenant, Rule: rule, Value: 1, Reason: "recovered", At: at(4), Notice: resolved})
	f.appendAt(t, at(5), rule.ID.Stream(), domain.AlertFired{TenantID: tenant, Rule: rule, Value: 7, At: at(5)}) // inside the cooldown: untold
	f.appendAt(t, at(6), domain.InboxStream(admin), domain.NotificationRead{NotificationID: notice.NotificationID, TenantID: tenant, At: at(6)})
	hook := domain.WebhookID(newID())
	f.appendAt(t, at(7), hook.Stream(), domain.WebhookCreated{WebhookID: hook, TenantID: tenant, URL: "https://example.com/h", At: at(7)})
	delivery := domain.WebhookDeliveryID(newID())
	f.appendAt(t, at(7), delivery.Stream(), domain.WebhookDeliveryRequested{DeliveryID: delivery, WebhookID: hook, TenantID: tenant,
		Type: domain.WebhookTypeTest, Body: "{}", At: at(7)})
	f.appendAt(t, at(8), delivery.Stream(), domain.WebhookDeliveryAttempted{Attempt: 1, StatusCode: 503, Error: "answered 503", NextAt: at(9), At: at(8)})
	last := f.appendAt(t, at(9), delivery.Stream(), domain.WebhookDeliveryAttempted{Attempt: 2, StatusCode: 200, Delivered: true, Final: true, At: at(9)})
	wait(t, r, last.LastPosition, "alerts")
	wait(t, r, last.LastPosition, "notifications")

	rules, err := views.AlertRules(ctx, tenant)
	if err != nil || len(rules) != 12 || rules[11].ID != rule.ID || rules[11].Threshold != 5 {
		t.Fatalf("rules %d (%v): 11 defaults left and the changed one last", len(rules), err)
	}
	history, err := views.AlertHistory(ctx, tenant, "", 10, nil)
	if err != nil || len(history) != 2 || history[0].State != domain.StateFiring || history[1].State != domain.StateResolved ||
		*history[1].ResolvedValue != 1 {
		t.Fatalf("history %+v, %v", history, err)
	}
	inbox, unread, err := views.NotificationsOf(ctx, tenant, admin, 10, nil)
	if err != nil || len(inbox) != 2 || unread != 1 || inbox[1].ID != notice.NotificationID || !inbox[1].Read {
		t.Fatalf("inbox %+v (%d unread), %v", inbox, unread, err)
	}
	log, err := views.Deliveries(ctx, hook, 10)
	if err != nil || len(log) != 1 || log[0].Status != "delivered" || log[0].Attempts != 2 || *log[0].StatusCode != 200 {
		t.Fatalf("deliveries %+v, %v", log, err)
	}
	states, err := views.RuleStates(ctx)
	if err != nil || len(states) != 12 {
		t.Fatalf("rule states: %d, %v", len(states), err)
	}
	for _, s := range states {
		if s.Rule.ID == rule.ID && (!s.Firing || s.Told != domain.StateResolved || !s.ToldAt.Equal(at(3))) {
			t.Errorf("state of the fired rule: %+v (fired untold after a told resolution)", s)
		}
	}
	checkReplay(t, f, r, alerts, map[string]string{"alert_rules": "rule_id", "alert_states": "rule_id", "alert_history": "alert_id"})
	checkReplay(t, f, r, notifications, map[string]string{"notifications": "notification_id, user_id", "webhooks": "webhook_id",
		"webhook_deliveries": "delivery_id"})
}
