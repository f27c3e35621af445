package commands_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/egress"
	"github.com/clouddbmanager/clouddb/projections"
)

// receiver is a webhook endpoint that verifies each request with the Standard Webhooks library
// (as a tenant's receiver would) and answers status.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	verifier *standardwebhooks.Webhook
	ids      []string // webhook-id of each request, in order
	bad      int      // requests whose signature did not verify
	status   int
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ids = append(r.ids, req.Header.Get("webhook-id"))
		// The fixture's clock is not the wall clock the library's tolerance reads.
		if r.verifier == nil || r.verifier.VerifyIgnoringTimestamp(body, req.Header) != nil {
			r.bad++
		}
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) trust(t *testing.T, secret string) {
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.verifier = v
}

func (r *receiver) received() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids), r.bad
}

// alertFixture adds the monitoring read models, the alert commands, the evaluator (whose
// connections metric the test sets) and the webhook reactor to a fixture.
type alertFixture struct {
	*fixture
	runtime     *projections.Runtime
	views       *projections.Views
	alerts      *commands.Alerts
	evaluator   *commands.AlertEvaluator
	webhooks    *commands.WebhookDelivery
	connections atomic.Int64
}

func newAlertFixture(t *testing.T, client *http.Client) *alertFixture {
	f := &alertFixture{fixture: newFixture(t)}
	registry := f.store.Registry()
	var err error
	f.runtime, err = projections.New(f.db, f.store, projections.Options{Logger: quiet(), Poll: 20 * time.Millisecond},
		projections.NewMetrics(registry), projections.NewMetricsLoad(registry), projections.NewAlerts(registry), projections.NewNotifications(registry))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.runtime.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.runtime.Close() })
	f.views = projections.NewViews(f.db)
	f.alerts = commands.NewAlerts(f.store, f.vault, f.runtime, f.views, f.clock.Now)
	f.evaluator = commands.NewAlertEvaluator(f.store, f.views, func(domain.TenantID) int64 { return f.connections.Load() }, f.clock.Now, quiet())
	f.webhooks = commands.NewWebhookDelivery(f.store, f.vault, f.db, client, f.clock.Now, quiet())
	return f
}

// settleAll waits until the monitoring read models have applied the whole log.
func (f *alertFixture) settleAll(t *testing.T) {
	t.Helper()
	head, err := f.store.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.runtime.WaitFor(ctx, head, "metrics", "metrics_load", "alerts", "notifications"); err != nil {
		t.Fatal(err)
	}
}

func (f *alertFixture) evaluate(t *testing.T) int {
	t.Helper()
	f.settleAll(t)
	n, err := f.evaluator.Evaluate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *alertFixture) deliver(t *testing.T) int {
	t.Helper()
	f.settleAll(t)
	n, err := f.webhooks.DeliverDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// alertMails counts the alert mails requested in the log.
func (f *alertFixture) alertMails(t *testing.T) int {
	t.Helper()
	events, err := f.store.ReadAll(context.Background(), 0, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, env := range events {
		if env.EventType != (domain.MailRequested{}).EventType() {
			continue
		}
		e, err := f.store.Registry().Decode(env)
		if err != nil {
			t.Fatal(err)
		}
		if e.(domain.MailRequested).Kind == domain.MailAlert {
			n++
		}
	}
	return n
}

// TestAFlappingAlertNotifiesBoundedlyOnEveryChannel: a metric crossing its threshold 100 times
// within the cooldown records 200 transitions and sends one firing and one resolution per
// channel — in the app, by mail, to the webhook, which verifies every signature.
func TestAFlappingAlertNotifiesBoundedlyOnEveryChannel(t *testing.T) {
	f := newAlertFixture(t, egress.Client(commands.WebhookTimeout, true)) // the receiver is on localhost
	ctx := context.Background()
	admin := f.user(t, "alert-admin@example.com")
	tenant := f.tenant(t, admin)
	hook := newReceiver(t, http.StatusNoContent)
	created, err := f.alerts.CreateWebhook(ctx, tenant, hook.URL+"/hooks", "ops", eventstore.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	hook.trust(t, created.Secret)
	rule, err := f.alerts.CreateRule(ctx, tenant, domain.AlertRule{Metric: "connections", Comparison: domain.CompareAtLeast, Threshold: 1,
		Kind: domain.ThresholdAbsolute, WindowMinutes: 5, CooldownMinutes: 30,
		Channels: []string{domain.ChannelInApp, domain.ChannelEmail, domain.ChannelWebhook}}, eventstore.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.evaluate(t); n != 0 {
		t.Fatalf("a quiet tenant changed %d alerts (its default quota rules must stay ok)", n)
	}
	for range 100 {
		f.connections.Store(1)
		f.clock.Advance(time.Second)
		if n := f.evaluate(t); n != 1 {
			t.Fatalf("firing: %d changes", n)
		}
		f.connections.Store(0)
		f.clock.Advance(time.Second)
		if n := f.evaluate(t); n != 1 {
			t.Fatalf("resolving: %d changes", n)
		}
	}
	f.settleAll(t)
	_, transitions := f.stream(t, rule.ID.Stream())
	if len(transitions) != 200 {
		t.Errorf("%d transitions recorded, want 200", len(transitions))
	}
	inbox, unread, err := f.views.NotificationsOf(ctx, tenant, admin, 50, nil)
	if err != nil || len(inbox) != 2 || unread != 2 || inbox[0].Kind != "alert.resolved" || inbox[1].Kind != "alert.fired" {
		t.Fatalf("in-app notifications %+v (%d unread), %v; want the firing and the resolution", inbox, unread, err)
	}
	if n := f.alertMails(t); n != 2 {
		t.Errorf("%d alert mails, want 2", n)
	}
	for f.deliver(t) > 0 {
	}
	ids, bad := hook.received()
	if len(ids) != 2 || bad != 0 || ids[0] == ids[1] {
		t.Errorf("the webhook received %v (%d not verified), want 2 verified deliveries", ids, bad)
	}
	history, err := f.views.AlertHistory(ctx, tenant, "", 500, nil)
	if err != nil || len(history) != 100 || history[0].State != domain.StateResolved {
		t.Errorf("%d firings listed (%v), the newest %+v", len(history), err, history[0])
	}

	// Reading: one, then all.
	if err := f.alerts.ReadNotification(ctx, tenant, admin, inbox[0].ID, eventstore.Metadata{}); err != nil {
		t.Fatal(err)
	}
	if err := f.alerts.ReadNotification(ctx, tenant, domain.UserID(uuid.NewString()), inbox[1].ID, eventstore.Metadata{}); !isNotFound(err) {
		t.Errorf("another user reading the admin's notification: %v", err)
	}
	if _, unread, _ := f.views.NotificationsOf(ctx, tenant, admin, 50, nil); unread != 1 {
		t.Errorf("after reading one: %d unread", unread)
	}
	if err := f.alerts.ReadAllNotifications(ctx, tenant, admin, eventstore.Metadata{}); err != nil {
		t.Fatal(err)
	}
	if _, unread, _ := f.views.NotificationsOf(ctx, tenant, admin, 50, nil); unread != 0 {
		t.Errorf("after reading all: %d unread", unread)
	}

	// Past the cooldown a firing is told again; deleting the rule ends it silently.
	f.clock.Advance(31 * time.Minute)
	f.connections.Store(5)
	if n := f.evaluate(t); n != 1 {
		t.Fatalf("firing after the cooldown: %d changes", n)
	}
	if err := f.alerts.DeleteRule(ctx, tenant, rule.ID, eventstore.Metadata{}); err != nil {
		t.Fatal(err)
	}
	if n := f.evaluate(t); n != 0 {
		t.Errorf("a deleted rule changed %d alerts", n)
	}
	if firing, _ := f.views.AlertHistory(ctx, tenant, domain.StateFiring, 10, nil); len(firing) != 0 {
		t.Errorf("alerts still firing after their rule was deleted: %+v", firing)
	}
	if _, unread, _ := f.views.NotificationsOf(ctx, tenant, admin, 50, nil); unread != 1 {
		t.Errorf("after the cooldown: %d unread, want the one new firing", unread)
	}
}

// The connections alert counts what the whole deployment runs, as the dashboard's quota does: the
// load samples of the processes alive, or the evaluating process's own count when greater.
func TestConnectionsAlertCountsTheDeploymentsLoad(t *testing.T) {
	f := newAlertFixture(t, http.DefaultClient)
	ctx := context.Background()
	tenant := f.tenant(t, f.user(t, "load-admin@example.com"))
	if _, err := f.alerts.CreateRule(ctx, tenant, domain.AlertRule{Metric: "connections", Comparison: domain.CompareAtLeast, Threshold: 3,
		Kind: domain.ThresholdAbsolute, WindowMinutes: 5, CooldownMinutes: 30, Channels: []string{domain.ChannelInApp}}, eventstore.Metadata{}); err != nil {
		t.Fatal(err)
	}
	other := uuid.NewString() // another process, alive for an hour
	if _, err := f.db.ExecContext(ctx, `INSERT INTO process_leases (instance_id, host, started_at, expires_at) VALUES (?, 'other', ?, ?)`,
		other, f.clock.Now(), f.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	sample := func(running int64) {
		t.Helper()
		minute := f.clock.Now().Truncate(time.Minute)
		if err := commands.RecordLoad(f.store)(ctx, []domain.TenantLoadSampled{{TenantID: tenant, ProcessID: other, Minute: minute,
			PeakRunning: running, At: f.clock.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	sample(3)
	if n := f.evaluate(t); n != 1 {
		t.Fatalf("3 statements running in another process: %d alerts changed, want the rule firing", n)
	}
	f.clock.Advance(time.Minute)
	sample(0)
	f.connections.Store(4) // this process's own, not sampled yet
	if n := f.evaluate(t); n != 0 {
		t.Fatalf("4 statements running here: %d alerts changed, want the rule still firing", n)
	}
}

func isNotFound(err error) bool { return errors.Is(err, domain.ErrNotFound) }

// TestWebhookDeliveriesAreBoundedSignedAndRetriedUnderOneID: a receiver answering 500 forever
// gets the message MaxWebhookAttempts times under one webhook-id, then no more; one that does not
// answer is cut at the client's timeout and recorded; a deleted webhook's deliveries are given up.
func TestWebhookDeliveriesAreBoundedSignedAndRetriedUnderOneID(t *testing.T) {
	f := newAlertFixture(t, &http.Client{Timeout: 200 * time.Millisecond})
	ctx := context.Background()
	tenant := f.tenant(t, f.user(t, "hooks-admin@example.com"))
	failing := newReceiver(t, http.StatusInternalServerError)
	created, err := f.alerts.CreateWebhook(ctx, tenant, failing.URL, "", eventstore.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	failing.trust(t, created.Secret)
	if _, err := f.alerts.TestWebhook(ctx, tenant, created.ID, eventstore.Metadata{}); err != nil {
		t.Fatal(err)
	}
	for range 2 * domain.MaxWebhookAttempts {
		f.deliver(t)
		f.clock.Advance(15 * time.Minute) // past any retry's wait
	}
	ids, bad := failing.received()
	if len(ids) != domain.MaxWebhookAttempts || bad != 0 {
		t.Fatalf("a receiver answering 500 got %d requests (%d unverified), want %d", len(ids), bad, domain.MaxWebhookAttempts)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("retries changed the webhook-id: %v", ids)
		}
	}
	log, err := f.views.Deliveries(ctx, created.ID, 10)
	if err != nil || len(log) != 1 || log[0].Status != "failed" || log[0].Attempts != domain.MaxWebhookAttempts || *log[0].StatusCode != 500 {
		t.Fatalf("delivery log %+v, %v", log, err)
	}

	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(func() { close(release); silent.Close() })
	hung, err := f.alerts.CreateWebhook(ctx, tenant, silent.URL, "", eventstore.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.alerts.TestWebhook(ctx, tenant, hung.ID, eventstore.Metadata{}); err != nil {
		t.Fatal(err)
	}
	f.deliver(t)
	f.settleAll(t)
	log, _ = f.views.Deliveries(ctx, hung.ID, 10)
	if len(log) != 1 || log[0].Status != "pending" || log[0].Attempts != 1 || log[0].StatusCode != nil || log[0].Error == nil {
		t.Fatalf("a receiver that does not answer: %+v", log)
	}
	if err := f.alerts.DeleteWebhook(ctx, tenant, hung.ID, eventstore.Metadata{}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(15 * time.Minute)
	f.deliver(t)
	f.settleAll(t)
	log, _ = f.views.Deliveries(ctx, hung.ID, 10)
	if len(log) != 1 || log[0].Status != "failed" || log[0].Attempts != 2 {
		t.Errorf("the delivery of a deleted webhook: %+v, want given up", log)
	}
	if _, err := f.alerts.CreateWebhook(ctx, tenant, "ftp://example.com/", "", eventstore.Metadata{}); err == nil {
		t.Error("an ftp webhook was accepted")
	}
}
