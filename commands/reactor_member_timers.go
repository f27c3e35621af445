package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// The member timers react to deactivations whose time has come (the memberships read model, a
// WorkQueue): a temporary one's reactivate_at reactivates the member, a permanent one's grace_until
// closes the membership for good. Each member is taken with a work lease, so that processes
// sharing the queue do not decide the same member at once; the tenant's stream decides whether
// anything is still due (a member reactivated by hand meanwhile is not).

// memberTimersRoundLimit bounds a round of member timers.
const memberTimersRoundLimit = time.Minute

// RunTimers reactivates and closes the memberships that are due, every interval until ctx ends.
func (h *Members) RunTimers(ctx context.Context, queue WorkQueue, instance string, interval time.Duration) {
	runRounds(ctx, h.log, "member timers", within(memberTimersRoundLimit, func(ctx context.Context) (int, error) {
		return h.TimersDue(ctx, queue, instance)
	}), nil, interval)
}

// TimersDue reactivates or closes up to a batch of memberships whose time has come, and returns
// how many it changed.
func (h *Members) TimersDue(ctx context.Context, queue WorkQueue, instance string) (int, error) {
	now := h.now().UTC()
	// reactivate_at and grace_until are set only while a member is deactivated; each has its index.
	rows, err := queue.QueryContext(ctx, `(SELECT tenant_id, user_id FROM memberships WHERE reactivate_at <= ? LIMIT 50)
		UNION (SELECT tenant_id, user_id FROM memberships WHERE grace_until <= ? LIMIT 50)`, now, now)
	if err != nil {
		return 0, fmt.Errorf("memberships due: %w", err)
	}
	type due struct {
		tenant domain.TenantID
		user   domain.UserID
	}
	var dues []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.tenant, &d.user); err != nil {
			rows.Close()
			return 0, err
		}
		dues = append(dues, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	changed := 0
	for _, d := range dues {
		lease, err := takeLease(ctx, queue, h.now, "membership:"+string(d.tenant)+":"+string(d.user), string(d.user), instance)
		if err != nil || lease == nil {
			if err != nil {
				h.log.Warn("member timers: lease not taken", "tenant_id", d.tenant, "user_id", d.user, "err", err)
			}
			continue // another worker has it
		}
		did, err := h.timerDue(ctx, d.tenant, d.user)
		if releaseErr := lease.release(ctx); releaseErr != nil {
			h.log.Warn("member timers: lease not released; it expires", "err", releaseErr)
		}
		if err != nil {
			return changed, err
		}
		if did != "" {
			changed++
			h.log.Info("member timer", "tenant_id", d.tenant, "user_id", d.user, "did", did)
		}
	}
	return changed, nil
}

// timerDue reactivates or closes one membership if its time has come, and says which it did.
// Closing also removes the member's sub-quotas, which would otherwise keep the tenant's share.
func (h *Members) timerDue(ctx context.Context, tenant domain.TenantID, user domain.UserID) (string, error) {
	did := ""
	err := retry(ctx, func() error {
		did = ""
		t, err := load(ctx, h.identity.events, tenant.Stream(), domain.RebuildTenant)
		if err != nil {
			return err
		}
		now := h.now()
		meta := eventstore.Metadata{TenantID: string(tenant), UserAgent: "clouddb member timers"}
		if t.ReactivationDue(user, now) {
			if err := t.Reactivate(user, domain.ReactivatedOnSchedule, "", domain.RoleSuperAdmin, now); err != nil {
				return err
			}
			did = "reactivated"
			return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(tenant.Stream(), "tenant", t)}, Metadata: meta})
		}
		if t.CloseMembership(user, now); len(t.PendingEvents()) == 0 {
			return nil // reactivated or closed meanwhile
		}
		quota, err := load(ctx, h.identity.events, tenant.QuotaStream(), domain.RebuildQuota)
		if err != nil {
			return err
		}
		quota.RemoveSubQuotas(user)
		did = "closed"
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(tenant.Stream(), "tenant", t),
			stream(tenant.QuotaStream(), "quota", quota)}, Metadata: meta})
	})
	return did, err
}
