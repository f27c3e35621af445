package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestAlertRulesNotificationsAndWebhooks: a tenant admin's rules (the 12 defaults and their own),
// bad rules refused, a firing that reaches the admin's notifications and a local receiver that
// verifies every delivery with the Standard Webhooks library, and what other members may not do.
func TestAlertRulesNotificationsAndWebhooks(t *testing.T) {
	// The receiver listens on localhost, which webhooks reach only when allowed.
	env := startE2E(t, e2eOptions{Env: map[string]string{"CLOUDDB_WEBHOOK_PRIVATE_ADDRESSES": "allow"}})
	admin := newTenantAdmin(env, "127.0.14.1", "Alerting")
	other := newTenantAdmin(env, "127.0.14.2", "Elsewhere")
	viewer := invite(env, admin, "127.0.14.3", "viewer")

	rules := admin.c.do("GET", "/alerts/rules", nil).expect(t, 200, "")
	if n := len(rules.items("items")); n != 12 {
		t.Fatalf("a new tenant has %d rules, want the 12 quota rules", n)
	}
	for body, field := range map[string]string{
		`{"metric":"happiness","threshold":1,"comparison":"gt","kind":"absolute"}`:                  "metric",
		`{"metric":"users","threshold":1,"comparison":"eq","kind":"absolute"}`:                      "comparison",
		`{"metric":"users","threshold":150,"comparison":"gt","kind":"percent"}`:                     "threshold",
		`{"metric":"users","comparison":"gt","kind":"percent"}`:                                     "threshold",
		`{"metric":"p95_latency_ms","threshold":9,"comparison":"gt","kind":"percent"}`:              "kind",
		`{"metric":"users","threshold":1,"comparison":"gt","kind":"absolute","channels":["sms"]}`:   "channels",
		`{"metric":"users","threshold":1,"comparison":"gt","kind":"absolute","cooldown_minutes":0}`: "cooldown_minutes",
	} {
		r := admin.c.do("POST", "/alerts/rules", body).expect(t, 400, "validation_failed")
		if r.get("error.details.fields."+field) == nil {
			t.Errorf("%s: %s, want a complaint about %s", body, r.body, field)
		}
	}
	// A receiver that verifies as a tenant's would, with the project's published library.
	var mu sync.Mutex
	var verified, refused int
	var verifier *standardwebhooks.Webhook
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if verifier != nil && verifier.Verify(body, r.Header) == nil && strings.Contains(string(body), `"tenant_id"`) {
			verified++
		} else {
			refused++
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	admin.c.do("POST", "/alerts/webhooks", map[string]any{"url": "ftp://example.com/hook"}).expect(t, 400, "validation_failed")
	hook := admin.c.do("POST", "/alerts/webhooks", map[string]any{"url": receiver.URL + "/clouddb", "description": "ops"}).expect(t, 201, "")
	secret := hook.str("secret")
	env.secret(secret, "webhook secret")
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q: %v", secret, err)
	}
	mu.Lock()
	verifier = v
	mu.Unlock()
	if listed := admin.c.do("GET", "/alerts/webhooks", nil).expect(t, 200, ""); strings.Contains(string(listed.body), secret) {
		t.Error("the webhook list shows the secret")
	}

	rule := admin.c.do("POST", "/alerts/rules", map[string]any{"metric": "users", "threshold": 30, "comparison": "gte", "kind": "percent",
		"channels": []string{"in_app", "webhook"}, "cooldown_minutes": 10}).expect(t, 201, "")
	ruleID := rule.str("id")
	otherRule := other.c.do("POST", "/alerts/rules", map[string]any{"metric": "lockouts", "threshold": 0, "comparison": "gt", "kind": "absolute"}).expect(t, 201, "")
	admin.c.do("PUT", "/alerts/rules/"+otherRule.str("id"), map[string]any{"metric": "lockouts", "threshold": 1, "comparison": "gt", "kind": "absolute"}).expect(t, 404, "not_found")
	admin.c.do("DELETE", "/alerts/rules/"+otherRule.str("id"), nil).expect(t, 404, "not_found")
	admin.c.do("DELETE", "/alerts/rules/"+describe(jsonPath(rules.items("items")[0], "id")), nil).expect(t, 204, "")
	viewer.c.do("GET", "/alerts/rules", nil).expect(t, 403, "forbidden")

	// Two members of five make 40 % of the users quota: the rule fires at once (the evaluator
	// looks whenever the metrics move, and at least every 15 s; the test does not wait for that).
	if _, err := env.app.AlertEvaluator.Evaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	var alerts *e2eResponse
	waitUntil(t, 30*time.Second, "the alert is listed", func() bool {
		alerts = admin.c.do("GET", "/alerts?state=firing", nil).expect(t, 200, "")
		return len(alerts.items("items")) == 1
	})
	if describe(jsonPath(alerts.items("items")[0], "rule_id")) != ruleID {
		t.Errorf("firing alert %v", alerts.items("items")[0])
	}
	// The notifications are another projector than the alerts: the inbox waits for it up to its
	// read-your-writes bound (2 s), which a loaded machine can pass, so it is polled too.
	var inbox *e2eResponse
	waitUntil(t, 30*time.Second, "the admin's inbox lists the alert", func() bool {
		inbox = admin.c.do("GET", "/notifications", nil).expect(t, 200, "")
		return len(inbox.items("items")) >= 1
	})
	if inbox.num("unread_count") != 1 || len(inbox.items("items")) != 1 {
		t.Fatalf("admin's notifications: %s", inbox.body)
	}
	id := describe(jsonPath(inbox.items("items")[0], "id"))
	viewer.c.do("POST", "/notifications/"+id+"/read", nil).expect(t, 404, "not_found")
	if n := len(viewer.c.do("GET", "/notifications", nil).expect(t, 200, "").items("items")); n != 0 {
		t.Errorf("the viewer sees %d notifications", n)
	}
	admin.c.do("POST", "/notifications/"+id+"/read", nil).expect(t, 204, "")
	admin.c.do("POST", "/notifications/read-all", nil).expect(t, 204, "")
	if n := admin.c.do("GET", "/notifications", nil).expect(t, 200, "").num("unread_count"); n != 0 {
		t.Errorf("after reading: %v unread", n)
	}

	hookPath := "/alerts/webhooks/" + hook.str("id")
	admin.c.do("POST", hookPath+"/test", nil).expect(t, 202, "")
	other.c.do("POST", hookPath+"/test", nil).expect(t, 404, "not_found")
	waitUntil(t, 15*time.Second, "the firing and the test reach the receiver", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return verified+refused >= 2
	})
	mu.Lock()
	if verified != 2 || refused != 0 {
		t.Errorf("receiver: %d verified, %d refused", verified, refused)
	}
	mu.Unlock()
	waitUntil(t, 30*time.Second, "the delivery log shows both delivered", func() bool {
		log := admin.c.do("GET", hookPath+"/deliveries", nil).expect(t, 200, "")
		items := log.items("items")
		return len(items) == 2 && describe(jsonPath(items[0], "status")) == "delivered" && describe(jsonPath(items[1], "status")) == "delivered"
	})
	admin.c.do("DELETE", hookPath, nil).expect(t, 204, "")
	admin.c.do("GET", hookPath+"/deliveries", nil).expect(t, 404, "not_found")
}

// TestWebhookToAPrivateAddressIsRefused: by default a tenant's webhook cannot reach the
// platform's own network (here a listener on localhost standing in for RDS-A, the metrics
// address or a metadata service): the delivery fails with a reason that says why, and the
// listener gets nothing.
func TestWebhookToAPrivateAddressIsRefused(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	admin := newTenantAdmin(env, "127.0.14.9", "Probing")
	var hits atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer internal.Close()
	hook := admin.c.do("POST", "/alerts/webhooks", map[string]any{"url": internal.URL + "/admin"}).expect(t, 201, "")
	env.secret(hook.str("secret"), "webhook secret")
	hookPath := "/alerts/webhooks/" + hook.str("id")
	admin.c.do("POST", hookPath+"/test", nil).expect(t, 202, "")
	waitUntil(t, 30*time.Second, "the test delivery's attempt is logged", func() bool {
		items := admin.c.do("GET", hookPath+"/deliveries", nil).expect(t, 200, "").items("items")
		return len(items) == 1 && describe(jsonPath(items[0], "attempts")) != "0"
	})
	item := admin.c.do("GET", hookPath+"/deliveries", nil).expect(t, 200, "").items("items")[0]
	if reason := describe(jsonPath(item, "error")); !strings.Contains(reason, "public internet") || describe(jsonPath(item, "status")) == "delivered" {
		t.Errorf("delivery %v, want refused: not on the public internet", item)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the private listener got %d requests", n)
	}
}
