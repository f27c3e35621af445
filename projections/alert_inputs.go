package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/latency"
	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

// AlertInputs are what a tenant's rules are evaluated on: the use and limit of each quota now
// (connections are the caller's to fill in: no read model knows them) and the tenant's minute
// buckets of the longest window its rules look at.
type AlertInputs struct {
	Used, Limit map[string]int64
	Minutes     []MetricsBucket
}

// AlertInputs reads the inputs of tenants' rules in a few statements for all of them: plans and
// members, databases and storage, and the minute buckets since since.
func (q *Views) AlertInputs(ctx context.Context, tenants []domain.TenantID, since time.Time) (map[domain.TenantID]*AlertInputs, error) {
	out := map[domain.TenantID]*AlertInputs{}
	ids := make([]string, len(tenants))
	for i, t := range tenants {
		ids[i] = string(t)
		out[t] = &AlertInputs{Used: map[string]int64{}, Limit: map[string]int64{}}
	}
	err := eachChunk(ids, func(chunk []string) error {
		in := `(` + sqlparams.List(len(chunk)) + `)`
		rows, err := q.db.QueryContext(ctx, `SELECT t.tenant_id, t.plan, `+seatsOf+`
			FROM tenants t WHERE t.tenant_id IN `+in, anys(chunk)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id domain.TenantID
			var planID domain.PlanID
			var seats int64
			if err := rows.Scan(&id, &planID, &seats); err != nil {
				return err
			}
			plan, err := domain.PlanByID(planID)
			if err != nil {
				return err
			}
			l := plan.Limits
			out[id].Limit = map[string]int64{"databases": l.MaxDatabases, "storage_bytes": l.MaxStorageBytes,
				"connections": l.MaxConnections, "users": l.MaxUsers}
			out[id].Used["users"] = seats
		}
		if err := rows.Err(); err != nil {
			return err
		}
		usage, err := q.db.QueryContext(ctx, `SELECT tenant_id, COALESCE(SUM(state IN ('provisioning', 'running', 'stopped')), 0),
			COALESCE(SUM(IF(state IN ('running', 'stopped', 'deleted'), storage_bytes, 0)), 0)
			FROM database_list WHERE tenant_id IN `+in+` GROUP BY tenant_id`, anys(chunk)...)
		if err != nil {
			return err
		}
		defer usage.Close()
		for usage.Next() {
			var id domain.TenantID
			var databases, storage int64
			if err := usage.Scan(&id, &databases, &storage); err != nil {
				return err
			}
			out[id].Used["databases"], out[id].Used["storage_bytes"] = databases, storage
		}
		if err := usage.Err(); err != nil {
			return err
		}
		columns, stored, first := usageRead(domain.GrainMinute, since)
		buckets, err := q.db.QueryContext(ctx, `SELECT tenant_id, `+columns+` FROM metrics_usage
			WHERE tenant_id IN `+in+` AND scope = ? AND subject_id = '' AND grain = ? AND bucket >= ?
			ORDER BY tenant_id, bucket`,
			append(anys(chunk), ScopeTenant, grainCode(stored), first.UTC())...)
		if err != nil {
			return err
		}
		defer buckets.Close()
		for buckets.Next() {
			var id domain.TenantID
			minutes, err := scanBuckets(buckets, domain.GrainMinute, since.UTC(), endOfTime, &id)
			if err != nil {
				return err
			}
			out[id].Minutes = append(out[id].Minutes, minutes...)
		}
		return buckets.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read the inputs of alerts: %w", err)
	}
	return out, nil
}

// Value is what rule watches, now: a quota's use (in percent of the limit for a percent rule),
// or what the tenant's statements and sign-ins did over the rule's window (error and denial
// rates in percent of the statements; 0 without statements).
func (in *AlertInputs) Value(rule domain.AlertRule, now time.Time) float64 {
	if !domain.AlertMetrics[rule.Metric].Windowed {
		used := float64(in.Used[rule.Metric])
		if rule.Kind == domain.ThresholdPercent {
			limit := in.Limit[rule.Metric]
			if limit <= 0 {
				return 0
			}
			return used * 100 / float64(limit)
		}
		return used
	}
	from := now.UTC().Add(-time.Duration(rule.WindowMinutes) * time.Minute)
	var c MetricsCounts
	var h latency.Histogram
	for _, b := range in.Minutes {
		if !b.At.Before(domain.GrainMinute.Start(from)) {
			c.Add(b.MetricsCounts)
			h.Merge(&b.Latency)
		}
	}
	share := func(n uint64) float64 {
		if rule.Kind == domain.ThresholdAbsolute {
			return float64(n)
		}
		if c.Queries == 0 {
			return 0
		}
		return float64(n) * 100 / float64(c.Queries)
	}
	switch rule.Metric {
	case "error_rate":
		return share(c.Errors + c.Timeouts)
	case "denied_statements":
		return share(c.Denials)
	case "p95_latency_ms":
		return h.Quantile(0.95)
	case "failed_logins":
		return float64(c.LoginFailures)
	case "lockouts":
		return float64(c.Lockouts)
	}
	return 0
}
