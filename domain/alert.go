package domain

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// AlertRuleID identifies an alert rule; an alert (its state) has the rule's id.
type AlertRuleID string

// ParseAlertRuleID validates s as an alert rule id.
func ParseAlertRuleID(s string) (AlertRuleID, error) {
	id, err := parseUUID("rule_id", s)
	return AlertRuleID(id), err
}

// AlertRulesStream is the stream of a tenant's rules; AlertStream the stream of one rule's alert
// (its firings and resolutions).
func AlertRulesStream(t TenantID) string    { return "alerts-" + string(t) }
func (id AlertRuleID) Stream() string       { return "alert-" + string(id) }
func InboxStream(user UserID) string        { return "inbox-" + string(user) }
func (id WebhookID) Stream() string         { return "webhook-" + string(id) }
func (id WebhookDeliveryID) Stream() string { return "webhookdelivery-" + string(id) }

// Comparisons of a rule's value with its threshold.
const (
	CompareAbove   = "gt"
	CompareAtLeast = "gte"
	CompareBelow   = "lt"
	CompareAtMost  = "lte"
)

// Kinds of threshold: a share of the plan's limit (or of the statements, for rates) in percent,
// or the value itself.
const (
	ThresholdPercent  = "percent"
	ThresholdAbsolute = "absolute"
)

// Channels an alert notifies on.
const (
	ChannelInApp   = "in_app"
	ChannelEmail   = "email"
	ChannelWebhook = "webhook"
)

// AlertMetricSpec says what a metric of alert rules is and which kinds of threshold it takes.
type AlertMetricSpec struct {
	Kinds []string
	// Windowed metrics count over the rule's last window_minutes; the others are now's values.
	Windowed bool
}

// AlertMetrics are the metrics a rule may watch. The quota metrics are the plan's limits: as a
// percent of the limit, or absolute (storage in bytes). error_rate counts failed and timed-out
// statements, denied_statements refused ones, as a percent of all statements or their number.
var AlertMetrics = map[string]AlertMetricSpec{
	"databases":         {Kinds: []string{ThresholdPercent, ThresholdAbsolute}},
	"storage_bytes":     {Kinds: []string{ThresholdPercent, ThresholdAbsolute}},
	"connections":       {Kinds: []string{ThresholdPercent, ThresholdAbsolute}},
	"users":             {Kinds: []string{ThresholdPercent, ThresholdAbsolute}},
	"error_rate":        {Kinds: []string{ThresholdPercent, ThresholdAbsolute}, Windowed: true},
	"denied_statements": {Kinds: []string{ThresholdPercent, ThresholdAbsolute}, Windowed: true},
	"p95_latency_ms":    {Kinds: []string{ThresholdAbsolute}, Windowed: true},
	"failed_logins":     {Kinds: []string{ThresholdAbsolute}, Windowed: true},
	"lockouts":          {Kinds: []string{ThresholdAbsolute}, Windowed: true},
}

// Bounds of a rule's settings.
const (
	MaxAlertRules           = 100
	MaxAlertThreshold       = 1e15
	MaxAlertWindowMinutes   = 24 * 60
	MinAlertCooldownMinutes = 1 // a flapping metric notifies at most twice per cooldown
	MaxAlertCooldownMinutes = 7 * 24 * 60
	DefaultAlertWindow      = 5
	DefaultAlertCooldown    = 60
)

// AlertRule is one rule of a tenant: notify on Channels when Metric compares to Threshold.
type AlertRule struct {
	ID              AlertRuleID `json:"id"`
	Metric          string      `json:"metric"`
	Comparison      string      `json:"comparison"`
	Threshold       float64     `json:"threshold"`
	Kind            string      `json:"kind"`
	WindowMinutes   int         `json:"window_minutes"`
	Channels        []string    `json:"channels"`
	CooldownMinutes int         `json:"cooldown_minutes"`
}

// Validate returns a *ValidationError naming every field that is wrong.
func (r AlertRule) Validate() error {
	fields := map[string]string{}
	spec, known := AlertMetrics[r.Metric]
	if !known {
		fields["metric"] = "one of databases, storage_bytes, connections, users, error_rate, denied_statements, p95_latency_ms, failed_logins, lockouts"
	}
	if !slices.Contains([]string{CompareAbove, CompareAtLeast, CompareBelow, CompareAtMost}, r.Comparison) {
		fields["comparison"] = "one of gt, gte, lt, lte"
	}
	switch {
	case r.Kind != ThresholdPercent && r.Kind != ThresholdAbsolute:
		fields["kind"] = "percent or absolute"
	case known && !slices.Contains(spec.Kinds, r.Kind):
		fields["kind"] = r.Metric + " takes an absolute threshold only"
	}
	switch {
	case math.IsNaN(r.Threshold) || r.Threshold < 0:
		fields["threshold"] = "must be a number of at least 0"
	case r.Kind == ThresholdPercent && r.Threshold > 100:
		fields["threshold"] = "a percent threshold is at most 100"
	case r.Threshold > MaxAlertThreshold:
		fields["threshold"] = "at most 1e15"
	}
	if r.WindowMinutes < 1 || r.WindowMinutes > MaxAlertWindowMinutes {
		fields["window_minutes"] = "from 1 to 1440"
	}
	if r.CooldownMinutes < MinAlertCooldownMinutes || r.CooldownMinutes > MaxAlertCooldownMinutes {
		fields["cooldown_minutes"] = "from 1 to 10080"
	}
	seen := map[string]bool{}
	for _, c := range r.Channels {
		if (c != ChannelInApp && c != ChannelEmail && c != ChannelWebhook) || seen[c] {
			fields["channels"] = "in_app, email and webhook, each at most once"
		}
		seen[c] = true
	}
	if len(r.Channels) == 0 {
		fields["channels"] = "at least one of in_app, email, webhook"
	}
	if len(fields) > 0 {
		return &ValidationError{Fields: fields}
	}
	return nil
}

// Holds reports whether value meets the rule's condition.
func (r AlertRule) Holds(value float64) bool {
	switch r.Comparison {
	case CompareAbove:
		return value > r.Threshold
	case CompareAtLeast:
		return value >= r.Threshold
	case CompareBelow:
		return value < r.Threshold
	case CompareAtMost:
		return value <= r.Threshold
	}
	return false
}

// alertRuleNamespace names the default rules' ids (UUID v5 of tenant, metric and threshold).
var alertRuleNamespace = uuid.MustParse("3f2a6c1e-5b0d-4e58-9a34-0c8f7d1b2e61")

// DefaultAlertRules are the rules every tenant starts with: each quota at 80, 90 and 100 %, in
// the app and by email, at most once an hour. Their ids derive from the tenant, so the rules read
// model and the rules' aggregate agree on them without an event.
func DefaultAlertRules(t TenantID) []AlertRule {
	var rules []AlertRule
	for _, metric := range []string{"databases", "storage_bytes", "connections", "users"} {
		for _, threshold := range []float64{80, 90, 100} {
			id := uuid.NewSHA1(alertRuleNamespace, []byte(string(t)+"/"+metric+"/"+strconv.FormatFloat(threshold, 'f', -1, 64)))
			rules = append(rules, AlertRule{ID: AlertRuleID(id.String()), Metric: metric, Comparison: CompareAtLeast,
				Threshold: threshold, Kind: ThresholdPercent, WindowMinutes: DefaultAlertWindow,
				Channels: []string{ChannelInApp, ChannelEmail}, CooldownMinutes: DefaultAlertCooldown})
		}
	}
	return rules
}

// Alert rule events, in the tenant's rules stream.
type (
	AlertRuleCreated struct {
		Rule AlertRule `json:"rule"`
		At   time.Time `json:"at"`
	}
	AlertRuleChanged struct {
		Rule AlertRule `json:"rule"`
		At   time.Time `json:"at"`
	}
	AlertRuleDeleted struct {
		RuleID AlertRuleID `json:"rule_id"`
		At     time.Time   `json:"at"`
	}
)

func (AlertRuleCreated) EventType() string { return "alert.rule_created.v1" }
func (AlertRuleChanged) EventType() string { return "alert.rule_changed.v1" }
func (AlertRuleDeleted) EventType() string { return "alert.rule_deleted.v1" }

// AlertRules are a tenant's rules: the defaults, then what its stream changed.
type AlertRules struct {
	aggregate
	rules []AlertRule
}

// RebuildAlertRules replays the rules stream of tenant t over its default rules.
func RebuildAlertRules(t TenantID, history []Event, version int64) *AlertRules {
	r := &AlertRules{rules: DefaultAlertRules(t)}
	r.replay(r, history, version)
	return r
}

func (r *AlertRules) apply(e Event) {
	switch e := e.(type) {
	case AlertRuleCreated:
		r.rules = append(r.rules, e.Rule)
	case AlertRuleChanged:
		if i := r.index(e.Rule.ID); i >= 0 {
			r.rules[i] = e.Rule
		}
	case AlertRuleDeleted:
		if i := r.index(e.RuleID); i >= 0 {
			r.rules = slices.Delete(r.rules, i, i+1)
		}
	}
}

func (r *AlertRules) index(id AlertRuleID) int {
	return slices.IndexFunc(r.rules, func(rule AlertRule) bool { return rule.ID == id })
}

// Rules lists the rules, oldest first.
func (r *AlertRules) Rules() []AlertRule { return slices.Clone(r.rules) }

// Rule returns one rule. Returns ErrNotFound when there is none.
func (r *AlertRules) Rule(id AlertRuleID) (AlertRule, error) {
	if i := r.index(id); i >= 0 {
		return r.rules[i], nil
	}
	return AlertRule{}, fmt.Errorf("alert rule %s: %w", id, ErrNotFound)
}

// Create adds a rule (its id chosen by the caller). Returns a *ValidationError for a bad rule or
// one rule too many.
func (r *AlertRules) Create(rule AlertRule, now time.Time) error {
	if err := rule.Validate(); err != nil {
		return err
	}
	if len(r.rules) >= MaxAlertRules {
		return NewValidationError("rules", fmt.Sprintf("a tenant has at most %d rules", MaxAlertRules))
	}
	r.record(r, AlertRuleCreated{Rule: rule, At: now})
	return nil
}

// Change replaces a rule. Returns ErrNotFound or a *ValidationError.
func (r *AlertRules) Change(rule AlertRule, now time.Time) error {
	if _, err := r.Rule(rule.ID); err != nil {
		return err
	}
	if err := rule.Validate(); err != nil {
		return err
	}
	r.record(r, AlertRuleChanged{Rule: rule, At: now})
	return nil
}

// Delete removes a rule. Returns ErrNotFound.
func (r *AlertRules) Delete(id AlertRuleID, now time.Time) error {
	if _, err := r.Rule(id); err != nil {
		return err
	}
	r.record(r, AlertRuleDeleted{RuleID: id, At: now})
	return nil
}

// States of an alert, as told.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// AlertNotice is who an alert's change notifies, and how: the channels (none when the change
// is not worth a notification: inside the cooldown, or a firing nobody was told of ended), the
// notification's id, and the tenant admins it goes to in the app.
type AlertNotice struct {
	NotificationID string   `json:"notification_id,omitempty"`
	Channels       []string `json:"channels,omitempty"`
	Recipients     []UserID `json:"recipients,omitempty"`
}

// Alert events, in the rule's alert stream. Each carries the rule as it was evaluated.
type (
	AlertFired struct {
		TenantID TenantID    `json:"tenant_id"`
		Rule     AlertRule   `json:"rule"`
		Value    float64     `json:"value"`
		At       time.Time   `json:"at"`
		Notice   AlertNotice `json:"notice"`
	}
	AlertResolved struct {
		TenantID TenantID    `json:"tenant_id"`
		Rule     AlertRule   `json:"rule"`
		Value    float64     `json:"value"`
		Reason   string      `json:"reason"` // "recovered", "rule_deleted"
		At       time.Time   `json:"at"`
		Notice   AlertNotice `json:"notice"`
	}
	// AlertNotified: a firing that fell inside the cooldown is still firing once it is over, and
	// is told now.
	AlertNotified struct {
		TenantID TenantID    `json:"tenant_id"`
		Rule     AlertRule   `json:"rule"`
		Value    float64     `json:"value"`
		At       time.Time   `json:"at"`
		Notice   AlertNotice `json:"notice"`
	}
)

func (AlertFired) EventType() string    { return "alert.fired.v1" }
func (AlertResolved) EventType() string { return "alert.resolved.v1" }
func (AlertNotified) EventType() string { return "alert.notified.v1" }

// Alert is the state of one rule's alert: ok or firing, and what its recipients were last told.
//
// Notifications follow one rule: they tell a change from what was last told, and a firing at
// most once per cooldown. So a firing notifies unless the last firing told is within the
// cooldown; a resolution notifies when the firing was told (a firing nobody heard of ends
// silently); a firing still untold when the cooldown ends is told then. A metric flapping around
// its threshold thus notifies at most twice per cooldown, per channel.
type Alert struct {
	aggregate
	firing  bool
	told    string    // the last state told: "", StateFiring or StateResolved
	toldAt  time.Time // when a firing was last told
	firedAt time.Time
}

// RebuildAlert replays a rule's alert stream (empty: the alert is ok and nothing was told).
func RebuildAlert(history []Event, version int64) *Alert {
	a := &Alert{}
	a.replay(a, history, version)
	return a
}

func (a *Alert) apply(e Event) {
	switch e := e.(type) {
	case AlertFired:
		a.firing, a.firedAt = true, e.At
		if len(e.Notice.Channels) > 0 {
			a.told, a.toldAt = StateFiring, e.At
		}
	case AlertNotified:
		a.told, a.toldAt = StateFiring, e.At
	case AlertResolved:
		a.firing = false
		if len(e.Notice.Channels) > 0 {
			a.told = StateResolved
		}
	}
}

// Firing reports whether the alert fires.
func (a *Alert) Firing() bool { return a.firing }

// AlertAt is an alert in the state a read model shows (firing, the last state told and when a
// firing was last told), for a quick look at whether an evaluation would change anything before
// its stream is loaded to decide.
func AlertAt(firing bool, told string, toldAt time.Time) *Alert {
	return &Alert{firing: firing, told: told, toldAt: toldAt}
}

// Describe says in a sentence what value means for the rule, as notifications tell it.
func (r AlertRule) Describe(value float64) string {
	unit, limit := "", ""
	if r.Kind == ThresholdPercent {
		unit = " %"
		if !AlertMetrics[r.Metric].Windowed {
			limit = " of the plan's limit"
		}
	}
	window := ""
	if AlertMetrics[r.Metric].Windowed {
		window = fmt.Sprintf(" over the last %d minutes", r.WindowMinutes)
	}
	signs := map[string]string{CompareAbove: ">", CompareAtLeast: "≥", CompareBelow: "<", CompareAtMost: "≤"}
	return fmt.Sprintf("%s is %s%s%s%s (rule: %s %s%s)", r.Metric, strconv.FormatFloat(math.Round(value*100)/100, 'f', -1, 64), unit, limit,
		window, signs[r.Comparison], strconv.FormatFloat(r.Threshold, 'f', -1, 64), unit)
}

// AlertEvaluation is one look at a rule: whether its condition holds, on which value, and whom a
// notification would reach.
type AlertEvaluation struct {
	Tenant         TenantID
	Rule           AlertRule
	Holds          bool
	Value          float64
	Now            time.Time
	NotificationID string   // for the notification this evaluation may send
	Recipients     []UserID // the tenant admins, for the in-app channel
}

// Evaluate records what the evaluation changes: a firing, a resolution, a firing told after its
// cooldown, or nothing.
func (a *Alert) Evaluate(ev AlertEvaluation) {
	cooled := a.toldAt.IsZero() || !ev.Now.Before(a.toldAt.Add(time.Duration(ev.Rule.CooldownMinutes)*time.Minute))
	notice := func(tell bool) AlertNotice {
		if !tell {
			return AlertNotice{}
		}
		return AlertNotice{NotificationID: ev.NotificationID, Channels: ev.Rule.Channels, Recipients: ev.Recipients}
	}
	switch {
	case ev.Holds && !a.firing:
		a.record(a, AlertFired{TenantID: ev.Tenant, Rule: ev.Rule, Value: ev.Value, At: ev.Now, Notice: notice(a.told != StateFiring && cooled)})
	case ev.Holds && a.told != StateFiring && cooled:
		a.record(a, AlertNotified{TenantID: ev.Tenant, Rule: ev.Rule, Value: ev.Value, At: ev.Now, Notice: notice(true)})
	case !ev.Holds && a.firing:
		a.record(a, AlertResolved{TenantID: ev.Tenant, Rule: ev.Rule, Value: ev.Value, Reason: "recovered", At: ev.Now,
			Notice: notice(a.told == StateFiring)})
	}
}

// End resolves a firing alert whose rule was deleted, telling nobody.
func (a *Alert) End(t TenantID, rule AlertRule, now time.Time) {
	if a.firing {
		a.record(a, AlertResolved{TenantID: t, Rule: rule, Reason: "rule_deleted", At: now})
	}
}

// MailAlert is the kind of the mails of alerts (domain.MailRequested.Kind).
const MailAlert = "alert"
