package domain_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

func validRule() domain.AlertRule {
	return domain.AlertRule{ID: "r", Metric: "error_rate", Comparison: domain.CompareAbove, Threshold: 5, Kind: domain.ThresholdPercent,
		WindowMinutes: 5, Channels: []string{domain.ChannelInApp, domain.ChannelWebhook}, CooldownMinutes: 30}
}

func TestAlertRuleValidation(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*domain.AlertRule)
		field string
	}{
		{"valid", func(*domain.AlertRule) {}, ""},
		{"unknown metric", func(r *domain.AlertRule) { r.Metric = "happiness" }, "metric"},
		{"unknown comparison", func(r *domain.AlertRule) { r.Comparison = "eq" }, "comparison"},
		{"unknown kind", func(r *domain.AlertRule) { r.Kind = "ratio" }, "kind"},
		{"percent of a latency", func(r *domain.AlertRule) { r.Metric = "p95_latency_ms" }, "kind"},
		{"negative threshold", func(r *domain.AlertRule) { r.Threshold = -1 }, "threshold"},
		{"NaN threshold", func(r *domain.AlertRule) { r.Threshold = math.NaN() }, "threshold"},
		{"percent over 100", func(r *domain.AlertRule) { r.Threshold = 100.5 }, "threshold"},
		{"absolute too large", func(r *domain.AlertRule) { r.Kind, r.Threshold = domain.ThresholdAbsolute, 2e15 }, "threshold"},
		{"no window", func(r *domain.AlertRule) { r.WindowMinutes = 0 }, "window_minutes"},
		{"window over a day", func(r *domain.AlertRule) { r.WindowMinutes = 1441 }, "window_minutes"},
		{"no cooldown", func(r *domain.AlertRule) { r.CooldownMinutes = 0 }, "cooldown_minutes"},
		{"no channel", func(r *domain.AlertRule) { r.Channels = nil }, "channels"},
		{"unknown channel", func(r *domain.AlertRule) { r.Channels = []string{"sms"} }, "channels"},
		{"channel twice", func(r *domain.AlertRule) { r.Channels = []string{"email", "email"} }, "channels"},
	}
	for _, tt := range tests {
		r := validRule()
		tt.edit(&r)
		err := r.Validate()
		var verr *domain.ValidationError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.field != "" && (!errors.As(err, &verr) || verr.Fields[tt.field] == ""):
			t.Errorf("%s: err = %v, want a complaint about %s", tt.name, err, tt.field)
		}
	}
}

func TestEveryTenantStartsWithQuotaRules(t *testing.T) {
	rules := domain.RebuildAlertRules("t1", nil, 0).Rules()
	if len(rules) != 12 {
		t.Fatalf("%d default rules, want 4 quotas × 80, 90, 100 %%", len(rules))
	}
	again := domain.DefaultAlertRules("t1")
	other := domain.DefaultAlertRules("t2")
	seen := map[domain.AlertRuleID]bool{}
	for i, r := range rules {
		if err := r.Validate(); err != nil || r.Kind != domain.ThresholdPercent || domain.AlertMetrics[r.Metric].Windowed {
			t.Errorf("default rule %+v: %v", r, err)
		}
		if r.ID != again[i].ID || r.ID == other[i].ID || seen[r.ID] {
			t.Errorf("default rule ids must be the tenant's own and stable: %s", r.ID)
		}
		seen[r.ID] = true
	}
}

// notifications counts the channels notified by an alert's recorded events.
func notifications(events []domain.Event) (n int) {
	for _, e := range events {
		switch e := e.(type) {
		case domain.AlertFired:
			n += len(e.Notice.Channels)
		case domain.AlertResolved:
			n += len(e.Notice.Channels)
		case domain.AlertNotified:
			n += len(e.Notice.Channels)
		}
	}
	return n
}

// TestAFlappingMetricNotifiesAtMostTwicePerCooldown: 100 crossings of the threshold, one a
// second, notify each channel once for the firing and once for the resolution; a firing still
// untold when the cooldown ends is told then, once.
func TestAFlappingMetricNotifiesAtMostTwicePerCooldown(t *testing.T) {
	rule := validRule() // 2 channels, 30 minutes of cooldown
	a := domain.RebuildAlert(nil, 0)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	eval := func(value float64) {
		a.Evaluate(domain.AlertEvaluation{Tenant: "t", Rule: rule, Holds: rule.Holds(value), Value: value, Now: now, NotificationID: "n"})
		now = now.Add(time.Second)
	}
	for i := range 200 {
		eval(float64(6 - 2*(i%2))) // 6 %, 4 %, 6 %, ...: fires and resolves 100 times each
	}
	events := a.PendingEvents()
	if len(events) != 200 {
		t.Fatalf("%d transitions recorded, want 200 (each firing and resolution is recorded)", len(events))
	}
	if n := notifications(events); n != 2*len(rule.Channels) {
		t.Fatalf("100 flaps notified %d times, want %d: one firing and one resolution per channel", n, 2*len(rule.Channels))
	}
	eval(6) // firing again, inside the cooldown: untold
	if n := notifications(a.PendingEvents()[200:]); n != 0 || !a.Firing() {
		t.Fatalf("a firing inside the cooldown notified %d times", n)
	}
	now = now.Add(30 * time.Minute)
	eval(7)
	eval(8)
	if n := notifications(a.PendingEvents()[201:]); n != len(rule.Channels) {
		t.Fatalf("after the cooldown, the untold firing notified %d times, want once per channel", n)
	}
	if _, ok := a.PendingEvents()[201].(domain.AlertNotified); !ok {
		t.Fatalf("event %T, want alert.notified", a.PendingEvents()[201])
	}
	eval(1)
	if n := notifications(a.PendingEvents()[202:]); n != len(rule.Channels) || a.Firing() {
		t.Fatalf("the resolution of a told firing notified %d times", n)
	}
	// The state survives a reload from the log.
	reloaded := domain.RebuildAlert(a.PendingEvents(), int64(len(a.PendingEvents())))
	reloaded.Evaluate(domain.AlertEvaluation{Rule: rule, Holds: true, Value: 9, Now: now})
	if n := notifications(reloaded.PendingEvents()); n != 0 {
		t.Errorf("a reloaded alert inside the cooldown notified %d times", n)
	}
	reloaded.End("t", rule, now)
	if reloaded.Firing() || notifications(reloaded.PendingEvents()) != 0 {
		t.Errorf("ending the alert of a deleted rule: firing %v", reloaded.Firing())
	}
}

func TestAlertRulesCreateChangeDelete(t *testing.T) {
	now := time.Now()
	rules := domain.RebuildAlertRules("t", nil, 0)
	r := validRule()
	if err := rules.Create(r, now); err != nil {
		t.Fatal(err)
	}
	r.Threshold = 10
	if err := rules.Change(r, now); err != nil {
		t.Fatal(err)
	}
	if got, _ := rules.Rule("r"); got.Threshold != 10 {
		t.Errorf("changed rule = %+v", got)
	}
	if err := rules.Delete("r", now); err != nil {
		t.Fatal(err)
	}
	if err := rules.Delete("r", now); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("deleting twice: %v", err)
	}
	for i := len(rules.Rules()); i < domain.MaxAlertRules; i++ {
		r.ID = domain.AlertRuleID(string(rune('a'+i%26)) + time.Duration(i).String())
		if err := rules.Create(r, now); err != nil {
			t.Fatal(err)
		}
	}
	var verr *domain.ValidationError
	if err := rules.Create(r, now); !errors.As(err, &verr) {
		t.Errorf("rule %d: %v, want a validation error", domain.MaxAlertRules+1, err)
	}
}

func TestWebhookURLs(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://hooks.example.com/x?a=1": true, "http://127.0.0.1:8080/hook": true,
		"ftp://example.com/": false, "https:///nohost": false, "example.com/hook": false,
		"https://user:pw@example.com/": false, "https://example.com/#frag": false, "javascript:alert(1)": false,
	} {
		if _, err := domain.ValidateWebhookURL(raw); (err == nil) != ok {
			t.Errorf("%q: err = %v", raw, err)
		}
	}
}

func TestWebhookDeliveryRetriesBoundedly(t *testing.T) {
	now := time.Now()
	d := domain.RequestWebhookDelivery(domain.WebhookDeliveryRequested{DeliveryID: "d", Body: "{}"})
	for i := 1; i <= domain.MaxWebhookAttempts; i++ {
		if !d.Due(now) {
			t.Fatalf("attempt %d not due", i)
		}
		d.Attempted(500, "", false, time.Minute, now)
		if d.Due(now) && i < domain.MaxWebhookAttempts {
			t.Fatalf("due again at once after attempt %d", i)
		}
		now = now.Add(time.Minute)
	}
	if d.Due(now.Add(time.Hour)) {
		t.Errorf("still due after %d failed attempts", domain.MaxWebhookAttempts)
	}
	ok := domain.RequestWebhookDelivery(domain.WebhookDeliveryRequested{DeliveryID: "e"})
	ok.Attempted(204, "", false, time.Minute, now)
	if ok.Due(now.Add(time.Hour)) {
		t.Error("a delivered message is due again")
	}
}
