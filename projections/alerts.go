package projections

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Alerts is the read model of alert rules (alert_rules: every tenant's defaults from its
// creation, then its changes; deleted rules stay as tombstones so a late redelivery cannot bring
// them back), of each rule's alert state (alert_states, which the evaluator reads to see at a
// glance whether a look changes anything) and of the firings (alert_history, one row per firing,
// resolved in place). Rows keep the log position they reflect; an event at or below it changes
// nothing.
type Alerts struct {
	reg *eventstore.Registry
}

// NewAlerts returns the projector decoding with reg. It panics on a nil registry.
func NewAlerts(reg *eventstore.Registry) Alerts {
	if reg == nil {
		panic("projections: NewAlerts needs a registry")
	}
	return Alerts{reg: reg}
}

func (Alerts) Name() string { return "alerts" }

func (p Alerts) Handles() []string {
	return p.reg.StoredAs(domain.TenantCreated{}.EventType(),
		domain.AlertRuleCreated{}.EventType(), domain.AlertRuleChanged{}.EventType(), domain.AlertRuleDeleted{}.EventType(),
		domain.AlertFired{}.EventType(), domain.AlertResolved{}.EventType(), domain.AlertNotified{}.EventType())
}

func (Alerts) Tables() []Table {
	return []Table{
		{Name: "alert_rules", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			rule_id          CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
			tenant_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			rule             JSON NOT NULL,
			deleted          BOOL NOT NULL DEFAULT 0,
			created_at       DATETIME(6) NOT NULL,
			updated_at       DATETIME(6) NOT NULL,
			position         BIGINT NOT NULL,
			KEY alert_rules_tenant (tenant_id, created_at)
		) ENGINE = InnoDB`},
		{Name: "alert_states", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			rule_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
			tenant_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			firing    BOOL NOT NULL,
			told      VARCHAR(16) NOT NULL,
			told_at   DATETIME(6) NULL,
			alert_id  CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			position  BIGINT NOT NULL
		) ENGINE = InnoDB`},
		{Name: "alert_history", DDL: `CREATE TABLE IF NOT EXISTS {{table}} (
			alert_id       CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
			tenant_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			rule_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
			rule           JSON NOT NULL,
			state          VARCHAR(16) NOT NULL,
			value          DOUBLE NOT NULL,
			fired_at       DATETIME(6) NOT NULL,
			resolved_at    DATETIME(6) NULL,
			resolved_value DOUBLE NULL,
			reason         VARCHAR(32) NULL,
			KEY alert_history_tenant (tenant_id, fired_at)
		) ENGINE = InnoDB`},
	}
}

func (p Alerts) Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error {
	for _, env := range events {
		e, err := p.reg.Decode(env)
		if err != nil {
			return err
		}
		if err := p.apply(ctx, tx, t, env, e); err != nil {
			return fmt.Errorf("alerts at position %d: %w", env.Position, err)
		}
	}
	return nil
}

func (p Alerts) apply(ctx context.Context, tx *sql.Tx, t Tables, env eventstore.Envelope, e domain.Event) error {
	rules, states, history := t.Name("alert_rules"), t.Name("alert_states"), t.Name("alert_history")
	at := env.RecordedAt
	insertRule := func(tenant domain.TenantID, rule domain.AlertRule) error {
		doc, err := json.Marshal(rule)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT IGNORE INTO `+rules+` (rule_id, tenant_id, rule, created_at, updated_at, position)
			VALUES (?, ?, ?, ?, ?, ?)`, rule.ID, tenant, doc, at, at, env.Position)
		return err
	}
	switch e := e.(type) {
	case domain.TenantCreated:
		for _, rule := range domain.DefaultAlertRules(e.TenantID) {
			if err := insertRule(e.TenantID, rule); err != nil {
				return err
			}
		}
	case domain.AlertRuleCreated:
		return insertRule(domain.TenantID(strings.TrimPrefix(env.StreamID, "alerts-")), e.Rule)
	case domain.AlertRuleChanged:
		doc, err := json.Marshal(e.Rule)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE `+rules+` SET rule = ?, updated_at = ?, position = ? WHERE rule_id = ? AND position < ?`,
			doc, at, env.Position, e.Rule.ID, env.Position)
		return err
	case domain.AlertRuleDeleted:
		_, err := tx.ExecContext(ctx, `UPDATE `+rules+` SET deleted = 1, updated_at = ?, position = ? WHERE rule_id = ? AND position < ?`,
			at, env.Position, e.RuleID, env.Position)
		return err
	case domain.AlertFired:
		doc, err := json.Marshal(e.Rule)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT IGNORE INTO `+history+` (alert_id, tenant_id, rule_id, rule, state, value, fired_at)
			VALUES (?, ?, ?, ?, 'firing', ?, ?)`, env.EventID, e.TenantID, e.Rule.ID, doc, e.Value, e.At.UTC()); err != nil {
			return err
		}
		return p.state(ctx, tx, states, env, e.TenantID, e.Rule.ID, true, e.Notice, e.At, env.EventID)
	case domain.AlertNotified:
		return p.state(ctx, tx, states, env, e.TenantID, e.Rule.ID, true, e.Notice, e.At, "")
	case domain.AlertResolved:
		if _, err := tx.ExecContext(ctx, `UPDATE `+history+` h JOIN `+states+` s ON s.alert_id = h.alert_id
			SET h.state = 'resolved', h.resolved_at = ?, h.resolved_value = ?, h.reason = ?
			WHERE s.rule_id = ? AND h.state = 'firing' AND s.position < ?`, e.At.UTC(), e.Value, e.Reason, e.Rule.ID, env.Position); err != nil {
			return err
		}
		return p.state(ctx, tx, states, env, e.TenantID, e.Rule.ID, false, e.Notice, e.At, "")
	}
	return nil
}

// state records a rule's alert state after an alert event: firing or not, what was told last
// and when a firing was (notice's channels: told now), the firing's id when a firing starts.
func (Alerts) state(ctx context.Context, tx *sql.Tx, states string, env eventstore.Envelope, tenant domain.TenantID,
	rule domain.AlertRuleID, firing bool, notice domain.AlertNotice, at time.Time, alertID string) error {
	told, toldAt := "", any(nil)
	if len(notice.Channels) > 0 {
		told = domain.StateResolved
		if firing {
			told, toldAt = domain.StateFiring, at.UTC()
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO `+states+` (rule_id, tenant_id, firing, told, told_at, alert_id, position)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE
			told_at = IF(position < VALUES(position) AND VALUES(told) = 'firing', VALUES(told_at), told_at),
			told = IF(position < VALUES(position) AND VALUES(told) <> '', VALUES(told), told),
			alert_id = IF(position < VALUES(position) AND VALUES(alert_id) <> '', VALUES(alert_id), alert_id),
			firing = IF(position < VALUES(position), VALUES(firing), firing),
			position = GREATEST(position, VALUES(position))`,
		rule, tenant, firing, told, toldAt, alertID, env.Position)
	return err
}

// AlertRuleView is a rule of a tenant as GET /alerts/rules lists it.
type AlertRuleView struct {
	domain.AlertRule
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// AlertRules lists a tenant's rules, oldest first.
func (q *Views) AlertRules(ctx context.Context, tenant domain.TenantID) ([]AlertRuleView, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT rule, created_at, updated_at FROM alert_rules
		WHERE tenant_id = ? AND NOT deleted ORDER BY created_at, rule_id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("read alert rules of %s: %w", tenant, err)
	}
	defer rows.Close()
	out := []AlertRuleView{}
	for rows.Next() {
		var v AlertRuleView
		var doc []byte
		if err := rows.Scan(&doc, &v.CreatedAt, &v.UpdatedAt); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(doc, &v.AlertRule); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// RuleState is a rule with its alert's state: what the evaluator looks at.
type RuleState struct {
	Tenant domain.TenantID
	Rule   domain.AlertRule
	Firing bool
	Told   string
	ToldAt time.Time
}

// RuleStates lists the rules of every tenant with their alerts' states.
func (q *Views) RuleStates(ctx context.Context) ([]RuleState, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT r.tenant_id, r.rule, COALESCE(s.firing, 0), COALESCE(s.told, ''), s.told_at
		FROM alert_rules r LEFT JOIN alert_states s ON s.rule_id = r.rule_id WHERE NOT r.deleted ORDER BY r.tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("read alert rules: %w", err)
	}
	defer rows.Close()
	var out []RuleState
	for rows.Next() {
		var s RuleState
		var doc []byte
		var toldAt sql.NullTime
		if err := rows.Scan(&s.Tenant, &doc, &s.Firing, &s.Told, &toldAt); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(doc, &s.Rule); err != nil {
			return nil, err
		}
		if toldAt.Valid {
			s.ToldAt = toldAt.Time.UTC()
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// AlertView is one firing of a rule, as GET /alerts lists it.
type AlertView struct {
	ID            string           `json:"id"`
	RuleID        string           `json:"rule_id"`
	Rule          domain.AlertRule `json:"rule"`
	State         string           `json:"state"`
	Value         float64          `json:"value"`
	FiredAt       time.Time        `json:"fired_at"`
	ResolvedAt    *time.Time       `json:"resolved_at"`
	ResolvedValue *float64         `json:"resolved_value"`
	Reason        *string          `json:"reason"`
	Message       string           `json:"message"`
}

// AlertHistory lists a tenant's firings, newest first, in state when given ("firing" or
// "resolved"), limit at a time before the fired_at/id cursor (nil for the first page).
func (q *Views) AlertHistory(ctx context.Context, tenant domain.TenantID, state string, limit int, before *AlertCursor) ([]AlertView, error) {
	query := `SELECT alert_id, rule_id, rule, state, value, fired_at, resolved_at, resolved_value, reason FROM alert_history WHERE tenant_id = ?`
	args := []any{tenant}
	if state != "" {
		query += ` AND state = ?`
		args = append(args, state)
	}
	if before != nil {
		query += ` AND (fired_at, alert_id) < (?, ?)`
		args = append(args, before.FiredAt.UTC(), before.ID)
	}
	rows, err := q.db.QueryContext(ctx, query+` ORDER BY fired_at DESC, alert_id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read alerts of %s: %w", tenant, err)
	}
	defer rows.Close()
	out := []AlertView{}
	for rows.Next() {
		var v AlertView
		var doc []byte
		var resolvedAt sql.NullTime
		var resolvedValue sql.NullFloat64
		var reason sql.NullString
		if err := rows.Scan(&v.ID, &v.RuleID, &doc, &v.State, &v.Value, &v.FiredAt, &resolvedAt, &resolvedValue, &reason); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(doc, &v.Rule); err != nil {
			return nil, err
		}
		v.FiredAt = v.FiredAt.UTC()
		v.ResolvedAt = nullTime(resolvedAt)
		if resolvedValue.Valid {
			v.ResolvedValue = &resolvedValue.Float64
		}
		if reason.Valid {
			v.Reason = &reason.String
		}
		v.Message = v.Rule.Describe(v.Value)
		out = append(out, v)
	}
	return out, rows.Err()
}

// AlertCursor is where a page of AlertHistory ends.
type AlertCursor struct {
	FiredAt time.Time
	ID      string
}
