package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/mail"
)

// The mail reactor reacts to mail.requested.v1 and to failed deliveries coming due (the
// mail_deliveries read model, a WorkQueue): it sends each mail and records the outcome.

// MailDelivery is the reactor that sends requested mails: it takes due mails from the
// mail_deliveries read model, sends each through Sender and records the outcome as an event.
// Temporary failures are retried with backoff (the read model's next_attempt_at); a mail that
// is sent or given up is never sent again.
type MailDelivery struct {
	events    EventStore
	secrets   Secrets
	queue     WorkQueue // mail_deliveries
	sender    mail.Sender
	publicURL *url.URL
	now       func() time.Time
	log       *slog.Logger
}

// NewMailDelivery returns the mail reactor; queue holds the mail_deliveries read model.
func NewMailDelivery(events EventStore, secrets Secrets, queue WorkQueue, sender mail.Sender, publicURL *url.URL, now func() time.Time, log *slog.Logger) *MailDelivery {
	return &MailDelivery{events: events, secrets: secrets, queue: queue, sender: sender, publicURL: publicURL, now: now, log: log}
}

// Run delivers due mails until ctx ends, looking again when wake fires or every poll.
func (d *MailDelivery) Run(ctx context.Context, wake func() <-chan struct{}, poll time.Duration) {
	runRounds(ctx, d.log, "mail delivery", d.DeliverDue, wake, poll)
}

// DeliverDue sends the mails that are due, up to a batch, and returns how many it handled. Rows
// are locked with SKIP LOCKED while their mail is sent, so several processes never send the same
// mail at once.
func (d *MailDelivery) DeliverDue(ctx context.Context) (int, error) {
	tx, due, err := claimDue(ctx, d.queue, `SELECT mail_id FROM mail_deliveries
		WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT 20 FOR UPDATE SKIP LOCKED`, d.now().UTC())
	if err != nil {
		return 0, fmt.Errorf("due mails: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for _, id := range due {
		if err := d.deliver(ctx, domain.MailID(id)); err != nil {
			return 0, fmt.Errorf("mail %s: %w", id, err)
		}
	}
	return len(due), tx.Commit()
}

func (d *MailDelivery) deliver(ctx context.Context, id domain.MailID) error {
	m, err := load(ctx, d.events, id.Stream(), domain.RebuildMail)
	if err != nil {
		return err
	}
	if !m.Due(d.now()) {
		return nil // the read model lags behind the mail's own stream: sent, given up, or backing off
	}
	req := m.Requested()
	msg, err := d.compose(ctx, req)
	if err == nil {
		err = d.sender.Send(ctx, msg)
	}
	if err == nil {
		m.Sent(d.now())
		d.log.Info("mail sent", "mail_id", req.MailID, "kind", req.Kind)
	} else {
		permanent := errors.Is(err, mail.ErrPermanent) || errors.Is(err, domain.ErrNotFound)
		m.Failed(err, permanent, d.now())
		d.log.Warn("mail not delivered", "mail_id", req.MailID, "kind", req.Kind, "attempt", m.Attempts(), "permanent", m.Done(), "err", err)
	}
	if _, err := d.events.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{mailStream(m)}}); err != nil {
		return err
	}
	if m.Done() {
		return d.secrets.Erase(ctx, mailSecret(req.MailID))
	}
	return nil
}
