package domain

import (
	"fmt"
	"time"
)

// Mail kinds: what a mail is, which decides its subject and text.
const (
	MailVerification  = "verification"
	MailPasswordReset = "password_reset"
	MailInvitation    = "invitation"
	MailUnlock        = "unlock"
)

// MaxMailAttempts is how often a temporary delivery failure is retried before the mail is given up.
const MaxMailAttempts = 8

// Mail delivery retries back off exponentially from 30 seconds up to an hour.
const (
	mailFirstRetry = 30 * time.Second
	mailMaxRetry   = time.Hour
)

// MailRetryDelay is how long after the attempt-th failed delivery the next one is due:
// min(30 s·2^(attempt-1), 1 h).
func MailRetryDelay(attempt int) time.Duration {
	d := mailFirstRetry
	for i := 1; i < attempt && d < mailMaxRetry; i++ {
		d *= 2
	}
	return min(d, mailMaxRetry)
}

// Mail events, in the mail's stream. A mail is requested first and delivered by a reactor; the
// one-time token its link carries is kept encrypted outside the log (secrets id "mail:<id>").
type (
	MailRequested struct {
		MailID MailID            `json:"mail_id"`
		To     string            `json:"to"`
		Kind   string            `json:"kind"`
		Data   map[string]string `json:"data,omitempty"` // non-secret values the text needs (a name)
		UserID UserID            `json:"user_id,omitempty"`
	}
	MailSent struct {
		At time.Time `json:"at"`
	}
	MailFailed struct {
		At        time.Time `json:"at"`
		Attempt   int       `json:"attempt"`
		Error     string    `json:"error"`
		Permanent bool      `json:"permanent"` // no further attempt
	}
)

func (MailRequested) EventType() string { return "mail.requested.v1" }
func (MailSent) EventType() string      { return "mail.sent.v1" }
func (MailFailed) EventType() string    { return "mail.failed.v1" }

// Mail is one email's delivery.
type Mail struct {
	aggregate
	requested MailRequested
	attempts  int
	done      bool
	nextDue   time.Time // after a failure: when the next attempt may be made
}

// RequestMail records a mail to deliver.
func RequestMail(m MailRequested) *Mail {
	mail := &Mail{}
	mail.record(mail, m)
	return mail
}

// RebuildMail replays a mail's history. Returns ErrNotFound for an empty history.
func RebuildMail(history []Event, version int64) (*Mail, error) {
	if len(history) == 0 {
		return nil, fmt.Errorf("mail: %w", ErrNotFound)
	}
	m := &Mail{}
	m.replay(m, history, version)
	return m, nil
}

func (m *Mail) apply(e Event) {
	switch e := e.(type) {
	case MailRequested:
		m.requested = e
	case MailSent:
		m.done = true
	case MailFailed:
		m.attempts = e.Attempt
		m.done = e.Permanent
		m.nextDue = e.At.Add(MailRetryDelay(e.Attempt))
	}
}

func (m *Mail) Requested() MailRequested { return m.requested }

// Done reports whether the mail was sent or given up: a done mail is never sent again.
func (m *Mail) Done() bool { return m.done }

// Due reports whether a delivery may be attempted now: not done, and past the backoff of its
// last failure.
func (m *Mail) Due(now time.Time) bool { return !m.done && !now.Before(m.nextDue) }

// Attempts is how many deliveries failed so far.
func (m *Mail) Attempts() int { return m.attempts }

// Sent records a delivery.
func (m *Mail) Sent(now time.Time) { m.record(m, MailSent{At: now}) }

// Failed records a failed delivery; it is permanent when the server refused for good or the
// attempts are used up.
func (m *Mail) Failed(err error, permanent bool, now time.Time) {
	attempt := m.attempts + 1
	m.record(m, MailFailed{At: now, Attempt: attempt, Error: err.Error(), Permanent: permanent || attempt >= MaxMailAttempts})
}
