package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/mail"
)

// The mail reactor reacts to mail.requested.v1 and to failed deliveries coming due (the
// mail_deliveries read model, a WorkQueue): it sends each mail and records the outcome.

// sendTimeout bounds one mail's Send, whatever the sender (the SMTP sender has its own 10 s); the
// mail's work lease, renewed while the mail is sent and recorded, outlasts it.
const sendTimeout = 20 * time.Second

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
	// Instance names this process in the work leases it takes (the process lease's id when
	// serving; a fresh id otherwise).
	Instance string
	// LogLinks logs each sent mail's link at INFO (MailLinkLogged): the development mail path,
	// for a server without SMTP whose mails are files (docs/SECURITY.md, "Mail without SMTP").
	LogLinks bool
}

// MailLinkLogged is the message of the log line that carries a mail's link when LogLinks is set:
// the one log line allowed to hold a token.
const MailLinkLogged = "mail written (no SMTP configured): its link"

// NewMailDelivery returns the mail reactor; queue holds the mail_deliveries read model.
func NewMailDelivery(events EventStore, secrets Secrets, queue WorkQueue, sender mail.Sender, publicURL *url.URL, now func() time.Time, log *slog.Logger) *MailDelivery {
	return &MailDelivery{events: events, secrets: secrets, queue: queue, sender: sender, publicURL: publicURL, now: now, log: log,
		Instance: uuid.NewString()}
}

// Run delivers due mails until ctx ends, looking again when wake fires or every poll.
func (d *MailDelivery) Run(ctx context.Context, wake func() <-chan struct{}, poll time.Duration) {
	runRounds(ctx, d.log, "mail delivery", d.DeliverDue, wake, poll)
}

// DeliverDue sends the mails that are due, up to a batch, and returns how many it took. Each mail
// is taken with a work lease (`mail:<id>`) just before it is sent, and no transaction or row lock
// is held while the SMTP server is talked to: several processes never send the same mail at once,
// and one slow SMTP conversation keeps no other mail from being taken. A process that dies between
// the server's acceptance and the recording of mail.sent.v1 leaves the lease to expire, and the
// mail is sent again once (at-least-once: the Message-ID is the mail's id, so a receiver can tell
// the two apart).
func (d *MailDelivery) DeliverDue(ctx context.Context) (int, error) {
	outbox := leasedOutbox{queue: d.queue, now: d.now, log: d.log, table: "mail_deliveries", idField: "mail_id", kind: "mail"}
	return outbox.drain(ctx, d.Instance, func(ctx context.Context, id string) error { return d.deliver(ctx, domain.MailID(id)) })
}

func (d *MailDelivery) deliver(ctx context.Context, id domain.MailID) error {
	read, cancel := context.WithTimeout(ctx, reactorCallTimeout)
	defer cancel()
	m, err := load(read, d.events, id.Stream(), domain.RebuildMail)
	if err != nil {
		return err
	}
	if !m.Due(d.now()) {
		return nil // the read model lags behind the mail's own stream: sent, given up, or backing off
	}
	req := m.Requested()
	msg, link, err := d.compose(read, req)
	if err == nil {
		send, cancel := context.WithTimeout(ctx, sendTimeout)
		err = d.sender.Send(send, msg)
		cancel()
	}
	if cause := context.Cause(ctx); cause != nil {
		return fmt.Errorf("stopped before its outcome was recorded (%w); the mail is tried again", cause)
	}
	if err == nil {
		m.Sent(d.now())
		if d.LogLinks {
			d.log.Info(MailLinkLogged, "mail_id", req.MailID, "kind", req.Kind, "link", link) // no address: personal data
		} else {
			d.log.Info("mail sent", "mail_id", req.MailID, "kind", req.Kind)
		}
	} else {
		permanent := errors.Is(err, mail.ErrPermanent) || errors.Is(err, domain.ErrNotFound)
		m.Failed(err, permanent, d.now())
		d.log.Warn("mail not delivered", "mail_id", req.MailID, "kind", req.Kind, "attempt", m.Attempts(), "permanent", m.Done(), "err", err)
	}
	record, cancel := context.WithTimeout(ctx, reactorCallTimeout)
	defer cancel()
	if _, err := d.events.Append(record, eventstore.Append{Streams: []eventstore.Stream{mailStream(m)}}); err != nil {
		return err
	}
	if m.Done() {
		return d.secrets.Erase(record, mailSecret(req.MailID))
	}
	return nil
}
