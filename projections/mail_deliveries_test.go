package projections_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

func TestMailDeliveriesFollowAttemptsWithBackoff(t *testing.T) {
	f := newIdentityFixture(t)
	mails := projections.NewMailDeliveries(production)
	r := f.start(t, mails)
	user := domain.UserID(newID())
	request := func(at time.Time, kind string) domain.MailID {
		t.Helper()
		id := domain.MailID(newID())
		f.appendAt(t, at, id.Stream(), domain.MailRequested{MailID: id, To: "ann@example.com", Kind: kind, Data: map[string]string{"name": "Ann"}, UserID: user})
		return id
	}
	mailRow := func(id domain.MailID, status string, attempts int, next, lastError string, requested time.Time, sent string) row {
		return row{"mail_id": string(id), "recipient": "ann@example.com", "kind": domain.MailVerification, "status": status,
			"attempts": strconv.Itoa(attempts), "next_attempt_at": next, "last_error": lastError, "requested_at": ts(requested), "sent_at": sent,
			"subject": user.Stream()}
	}

	t.Run("pending, retried after temporary failures, then sent", func(t *testing.T) {
		id := request(t0, domain.MailVerification)
		wait(t, r, mustHead(t, f), "mail_deliveries")
		assertRow(t, f.db, "mail_deliveries", "mail_id", string(id), mailRow(id, "pending", 0, ts(t0), "NULL", t0, "NULL"))

		first := t0.Add(2 * time.Second)
		f.appendAt(t, first, id.Stream(), domain.MailFailed{At: first, Attempt: 1, Error: "421 try again later"})
		wait(t, r, mustHead(t, f), "mail_deliveries")
		assertRow(t, f.db, "mail_deliveries", "mail_id", string(id), mailRow(id, "pending", 1, ts(first.Add(30*time.Second)), "421 try again later", t0, "NULL"))

		second := first.Add(31 * time.Second)
		f.appendAt(t, second, id.Stream(), domain.MailFailed{At: second, Attempt: 2, Error: "connection refused"})
		wait(t, r, mustHead(t, f), "mail_deliveries")
		assertRow(t, f.db, "mail_deliveries", "mail_id", string(id), mailRow(id, "pending", 2, ts(second.Add(time.Minute)), "connection refused", t0, "NULL"))

		sent := second.Add(61 * time.Second)
		f.appendAt(t, sent, id.Stream(), domain.MailSent{At: sent})
		wait(t, r, mustHead(t, f), "mail_deliveries")
		assertRow(t, f.db, "mail_deliveries", "mail_id", string(id), mailRow(id, "sent", 2, "NULL", "connection refused", t0, ts(sent)))
	})

	t.Run("backoff doubles from 30 s up to an hour, then the mail is given up", func(t *testing.T) {
		requested := t0.Add(time.Hour)
		id := request(requested, domain.MailVerification)
		at := requested
		want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute}
		for i, delay := range want {
			attempt := i + 1
			at = at.Add(delay + 123456789*time.Nanosecond) // with a fraction the column drops
			f.appendAt(t, at, id.Stream(), domain.MailFailed{At: at, Attempt: attempt, Error: "timeout " + strconv.Itoa(attempt)})
			wait(t, r, mustHead(t, f), "mail_deliveries")
			assertRow(t, f.db, "mail_deliveries", "mail_id", string(id),
				mailRow(id, "pending", attempt, ts(at.Add(delay)), "timeout "+strconv.Itoa(attempt), requested, "NULL"))
		}
		// The 8th attempt is the last (domain.MaxMailAttempts): the failure is permanent.
		at = at.Add(time.Hour)
		f.appendAt(t, at, id.Stream(), domain.MailFailed{At: at, Attempt: domain.MaxMailAttempts, Error: "timeout", Permanent: true})
		wait(t, r, mustHead(t, f), "mail_deliveries")
		assertRow(t, f.db, "mail_deliveries", "mail_id", string(id), mailRow(id, "failed", domain.MaxMailAttempts, "NULL", "timeout", requested, "NULL"))
	})

	t.Run("the delay is capped at an hour and the error at 1,000 characters", func(t *testing.T) {
		requested := t0.Add(2 * time.Hour)
		id := request(requested, domain.MailVerification)
		long := strings.Repeat("ü", 1500)
		for _, attempt := range []int{8, 12, 100} {
			at := requested.Add(time.Duration(attempt) * time.Minute)
			f.appendAt(t, at, id.Stream(), domain.MailFailed{At: at, Attempt: attempt, Error: long})
			wait(t, r, mustHead(t, f), "mail_deliveries")
			assertRow(t, f.db, "mail_deliveries", "mail_id", string(id),
				mailRow(id, "pending", attempt, ts(at.Add(time.Hour)), strings.Repeat("ü", 1000), requested, "NULL"))
		}
	})

	t.Run("a permanent first failure gives the mail up at once", func(t *testing.T) {
		requested := t0.Add(3 * time.Hour)
		id := request(requested, domain.MailVerification)
		f.appendAt(t, requested.Add(time.Second), id.Stream(), domain.MailFailed{At: requested.Add(time.Second), Attempt: 1, Error: "550 no such user", Permanent: true})
		wait(t, r, mustHead(t, f), "mail_deliveries")
		assertRow(t, f.db, "mail_deliveries", "mail_id", string(id), mailRow(id, "failed", 1, "NULL", "550 no such user", requested, "NULL"))
		var due int
		if err := f.db.QueryRow(`SELECT COUNT(*) FROM mail_deliveries WHERE status = 'pending' AND next_attempt_at <= ?`, requested.Add(24*time.Hour)).Scan(&due); err != nil {
			t.Fatal(err)
		}
		if due != 1 { // only the capped one of the previous subtest
			t.Fatalf("%d mails are due, want 1", due)
		}
	})

	t.Run("rebuild and redelivery change nothing", func(t *testing.T) {
		checkReplay(t, f, r, mails, map[string]string{"mail_deliveries": "mail_id"})
	})
}

func mustHead(t *testing.T, f *identityFixture) int64 {
	t.Helper()
	head, err := f.store.Head(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return head
}
