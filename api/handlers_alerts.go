package api

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
)

// AlertRoutes is what the handlers of alert rules, alerts, notifications and webhooks need.
type AlertRoutes struct {
	Commands *commands.Alerts
	Views    *projections.Views
	// Store and Projections let the lists of alerts and notifications show what this process
	// recorded before the request (read-your-writes); without them they answer at once.
	Store       *eventstore.Store
	Projections *projections.Runtime
}

type alertHandlers struct {
	*Server
	routes AlertRoutes
}

// deliveryLogLength is how many deliveries the log of a webhook shows.
const deliveryLogLength = 100

// MountAlerts adds the routes of alert rules, alerts, notifications and webhooks.
func (s *Server) MountAlerts(a AlertRoutes) {
	h := &alertHandlers{Server: s, routes: a}
	s.mount([]route{
		{"GET", "/alerts/rules", tenantAdmin, h.handleRules},
		{"POST", "/alerts/rules", tenantAdmin, h.handleCreateRule},
		{"PUT", "/alerts/rules/{id}", tenantAdmin, h.handleChangeRule},
		{"DELETE", "/alerts/rules/{id}", tenantAdmin, h.handleDeleteRule},
		{"GET", "/alerts", tenantAdmin, h.handleAlerts},
		{"GET", "/alerts/webhooks", tenantAdmin, h.handleWebhooks},
		{"POST", "/alerts/webhooks", tenantAdmin, h.handleCreateWebhook},
		{"DELETE", "/alerts/webhooks/{id}", tenantAdmin, h.handleDeleteWebhook},
		{"GET", "/alerts/webhooks/{id}/deliveries", tenantAdmin, h.handleDeliveries},
		{"POST", "/alerts/webhooks/{id}/test", tenantAdmin, h.handleTestWebhook},
		{"GET", "/notifications", member, h.handleNotifications},
		{"POST", "/notifications/read-all", member, h.handleReadAll},
		{"POST", "/notifications/{id}/read", member, h.handleRead},
	})
}

// ruleRequest is the body of POST /alerts/rules and PUT /alerts/rules/{id}.
type ruleRequest struct {
	Metric          string   `json:"metric"`
	Threshold       *float64 `json:"threshold"`
	Comparison      string   `json:"comparison"`
	Kind            string   `json:"kind"`
	Channels        []string `json:"channels"`
	CooldownMinutes *int     `json:"cooldown_minutes"`
	WindowMinutes   *int     `json:"window_minutes"`
}

// readRule decodes a rule: channels default to in_app, the window to 5 minutes, the cooldown to
// an hour; a missing threshold is refused with the rule's other faults.
func readRule(w http.ResponseWriter, r *http.Request) (domain.AlertRule, error) {
	var req ruleRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return domain.AlertRule{}, err
	}
	rule := domain.AlertRule{Metric: req.Metric, Comparison: req.Comparison, Kind: req.Kind, Channels: req.Channels,
		WindowMinutes: domain.DefaultAlertWindow, CooldownMinutes: domain.DefaultAlertCooldown}
	if rule.Channels == nil {
		rule.Channels = []string{domain.ChannelInApp}
	}
	if req.WindowMinutes != nil {
		rule.WindowMinutes = *req.WindowMinutes
	}
	if req.CooldownMinutes != nil {
		rule.CooldownMinutes = *req.CooldownMinutes
	}
	if req.Threshold != nil {
		rule.Threshold = *req.Threshold
	}
	err := rule.Validate()
	if req.Threshold == nil {
		var verr *domain.ValidationError
		if !errors.As(err, &verr) {
			verr = &domain.ValidationError{Fields: map[string]string{}}
		}
		verr.Fields["threshold"] = "required"
		err = verr
	}
	return rule, err
}

func (h *alertHandlers) handleRules(w http.ResponseWriter, r *http.Request) {
	rules, err := h.routes.Views.AlertRules(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": rules, "next_cursor": nil})
}

func (h *alertHandlers) handleCreateRule(w http.ResponseWriter, r *http.Request) {
	rule, err := readRule(w, r)
	if err == nil {
		rule, err = h.routes.Commands.CreateRule(r.Context(), principalFrom(r.Context()).TenantID, rule, metadata(r.Context(), r))
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/alerts/rules/"+string(rule.ID))
	writeJSON(w, http.StatusCreated, rule)
}

func (h *alertHandlers) handleChangeRule(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, domain.ParseAlertRuleID)
	var rule domain.AlertRule
	if err == nil {
		rule, err = readRule(w, r)
	}
	if err == nil {
		rule.ID = id
		err = h.routes.Commands.ChangeRule(r.Context(), principalFrom(r.Context()).TenantID, rule, metadata(r.Context(), r))
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

func (h *alertHandlers) handleDeleteRule(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, domain.ParseAlertRuleID)
	if err == nil {
		err = h.routes.Commands.DeleteRule(r.Context(), principalFrom(r.Context()).TenantID, id, metadata(r.Context(), r))
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// timeCursor reads ?cursor=, the base64 of "<RFC 3339 time>|<id>" that a page's next_cursor gave.
func timeCursor(r *http.Request) (*projections.AlertCursor, error) {
	raw := r.URL.Query().Get("cursor")
	if raw == "" {
		return nil, nil
	}
	bad := domain.NewValidationError("cursor", "not a cursor this list gave")
	text, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, bad
	}
	at, id, ok := strings.Cut(string(text), "|")
	t, err := time.Parse(time.RFC3339Nano, at)
	if !ok || err != nil {
		return nil, bad
	}
	return &projections.AlertCursor{FiredAt: t, ID: id}, nil
}

// nextCursor is the cursor after the last item of a full page, nil after a short one.
func nextCursor(full bool, at time.Time, id string) any {
	if !full {
		return nil
	}
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id))
}

func (h *alertHandlers) handleAlerts(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	state := r.URL.Query().Get("state")
	if state != "" && state != domain.StateFiring && state != domain.StateResolved {
		h.writeError(w, r, domain.NewValidationError("state", "firing or resolved"))
		return
	}
	cursor, err := timeCursor(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.caughtUp(r.Context(), h.routes.Store, h.routes.Projections, "alerts")
	items, err := h.routes.Views.AlertHistory(r.Context(), principalFrom(r.Context()).TenantID, state, limit, cursor)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var next any
	if len(items) > 0 {
		last := items[len(items)-1]
		next = nextCursor(len(items) == limit, last.FiredAt, last.ID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
}

func (h *alertHandlers) handleNotifications(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	cursor, err := timeCursor(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.caughtUp(r.Context(), h.routes.Store, h.routes.Projections, "notifications")
	p := principalFrom(r.Context())
	items, unread, err := h.routes.Views.NotificationsOf(r.Context(), p.TenantID, p.UserID, limit, cursor)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var next any
	if len(items) > 0 {
		last := items[len(items)-1]
		next = nextCursor(len(items) == limit, last.CreatedAt, last.ID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "unread_count": unread, "next_cursor": next})
}

func (h *alertHandlers) handleRead(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	err := h.routes.Commands.ReadNotification(r.Context(), p.TenantID, p.UserID, mux.Vars(r)["id"], metadata(r.Context(), r))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *alertHandlers) handleReadAll(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	if err := h.routes.Commands.ReadAllNotifications(r.Context(), p.TenantID, p.UserID, metadata(r.Context(), r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *alertHandlers) handleWebhooks(w http.ResponseWriter, r *http.Request) {
	hooks, err := h.routes.Views.Webhooks(r.Context(), principalFrom(r.Context()).TenantID)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": hooks, "next_cursor": nil})
}

func (h *alertHandlers) handleCreateWebhook(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL         string `json:"url"`
		Description string `json:"description"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	created, err := h.routes.Commands.CreateWebhook(r.Context(), principalFrom(r.Context()).TenantID, req.URL, req.Description, metadata(r.Context(), r))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/alerts/webhooks/"+string(created.ID))
	w.Header().Set("Cache-Control", "no-store") // the secret is shown this once
	writeJSON(w, http.StatusCreated, created)
}

func (h *alertHandlers) handleDeleteWebhook(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, domain.ParseWebhookID)
	if err == nil {
		err = h.routes.Commands.DeleteWebhook(r.Context(), principalFrom(r.Context()).TenantID, id, metadata(r.Context(), r))
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *alertHandlers) handleDeliveries(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, domain.ParseWebhookID)
	if err == nil {
		err = h.routes.Commands.Webhook(r.Context(), principalFrom(r.Context()).TenantID, id)
	}
	var items []projections.DeliveryView
	if err == nil {
		items, err = h.routes.Views.Deliveries(r.Context(), id, deliveryLogLength)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nil})
}

func (h *alertHandlers) handleTestWebhook(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, domain.ParseWebhookID)
	var delivery domain.WebhookDeliveryID
	if err == nil {
		delivery, err = h.routes.Commands.TestWebhook(r.Context(), principalFrom(r.Context()).TenantID, id, metadata(r.Context(), r))
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"delivery_id": delivery})
}
