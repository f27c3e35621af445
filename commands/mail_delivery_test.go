package commands_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/mail"
	"github.com/clouddbmanager/clouddb/internal/secrets"
)

// mailSecretID is where the vault keeps a mail's link token (commands.mailSecret).
func mailSecretID(id string) string { return "mail:" + id }

// mailRow is a mail's row in the mail_deliveries read model.
type mailRow struct {
	status   string
	attempts int
	next     *time.Time
}

func (f *fixture) mailRow(t *testing.T, id string) mailRow {
	t.Helper()
	f.settle(t)
	var r mailRow
	var next *time.Time
	if err := f.db.QueryRowContext(ctx(t), `SELECT status, attempts, next_attempt_at FROM mail_deliveries WHERE mail_id = ?`, id).Scan(&r.status, &r.attempts, &next); err != nil {
		t.Fatalf("mail_deliveries row of %s: %v", id, err)
	}
	r.next = next
	return r
}

// onlyMail returns the id of the one mail requested so far.
func (f *fixture) onlyMail(t *testing.T) string {
	t.Helper()
	var id string
	if err := f.db.QueryRowContext(ctx(t), `SELECT JSON_VALUE(payload, '$.mail_id') FROM events WHERE event_type = 'mail.requested.v1'`).Scan(&id); err != nil {
		t.Fatalf("the one requested mail: %v", err)
	}
	return id
}

// deliverOnce calls DeliverDue once the read model is current and returns how many mails it took.
func (f *fixture) deliverOnce(t *testing.T) int {
	t.Helper()
	f.settle(t)
	n, err := f.mail.DeliverDue(ctx(t))
	if err != nil {
		t.Fatalf("DeliverDue: %v", err)
	}
	return n
}

func TestVerificationMailDeliveredOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.register(t, "Verify.Me@Example.com")
	mailID := f.onlyMail(t)
	if n := f.deliverOnce(t); n != 1 {
		t.Fatalf("DeliverDue took %d mails, want 1", n)
	}
	delivered := f.sender.Delivered("verify.me@example.com")
	if len(delivered) != 1 {
		t.Fatalf("%d mails delivered to verify.me@example.com, want 1", len(delivered))
	}
	m := delivered[0]
	if m.ID != mailID || m.Subject == "" {
		t.Errorf("mail %+v, want id %s and a subject", m, mailID)
	}
	u := link(t, m)
	if u.Scheme != f.publicURL.Scheme || u.Host != f.publicURL.Host || u.Path != f.publicURL.Path+"/verify" {
		t.Errorf("link %s, want %s/verify?token=…", u, f.publicURL)
	}
	token := u.Query().Get("token")
	if want := f.publicURL.String() + "/verify?token=" + token; u.String() != want {
		t.Errorf("link %s, want %s", u, want)
	}
	if err := f.identity.Verify(ctx(t), token, meta); err != nil {
		t.Fatalf("the mailed token does not verify: %v", err)
	}
	f.settle(t)
	if v, err := f.views.User(ctx(t), id); err != nil || v.Status != domain.UserActive {
		t.Errorf("after verification: %+v, %v", v, err)
	}
	if err := f.identity.Verify(ctx(t), token, meta); !errors.Is(err, domain.ErrExpired) {
		t.Errorf("second verification with the same link: %v, want ErrExpired", err)
	}
	// Delivered: never again, whatever the clock says.
	for range 3 {
		f.clock.Advance(2 * time.Hour)
		f.deliverOnce(t)
	}
	if calls := f.sender.Calls(mailID); calls != 1 {
		t.Errorf("the mail was sent %d times", calls)
	}
	types, _ := f.stream(t, domain.MailID(mailID).Stream())
	if count(types, "mail.sent.v1") != 1 || len(types) != 2 {
		t.Errorf("mail stream %v, want requested then sent", types)
	}
	if row := f.mailRow(t, mailID); row.status != "sent" || row.next != nil {
		t.Errorf("read model %+v, want sent with nothing due", row)
	}
	if _, err := f.vault.Get(ctx(t), mailSecretID(mailID)); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("token of a sent mail in the vault: %v, want ErrNotFound", err)
	}
}

func TestMailRetriedAfterTemporaryFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.sender.setFail(func(m mail.Message, call int) error {
		if call <= 2 {
			return fmt.Errorf("421 try again later (call %d)", call)
		}
		return nil
	})
	f.register(t, "flaky@example.com")
	mailID := f.onlyMail(t)

	for attempt := 1; attempt <= 2; attempt++ {
		if n := f.deliverOnce(t); n != 1 {
			t.Fatalf("attempt %d: DeliverDue took %d mails, want 1", attempt, n)
		}
		row := f.mailRow(t, mailID)
		if row.status != "pending" || row.attempts != attempt || row.next == nil || !row.next.After(f.clock.Now()) {
			t.Fatalf("after failure %d at %s: %+v, want pending, %d attempts, next attempt later", attempt, f.clock.Now(), row, attempt)
		}
		// Not due yet: nothing is sent, however often the reactor looks.
		f.clock.Set(row.next.Add(-time.Millisecond))
		for range 2 {
			if n := f.deliverOnce(t); n != 0 {
				t.Fatalf("after failure %d: DeliverDue took %d mails before next_attempt_at", attempt, n)
			}
		}
		if calls := f.sender.Calls(mailID); calls != attempt {
			t.Fatalf("after failure %d: %d sends", attempt, calls)
		}
		f.clock.Set(*row.next)
	}
	if n := f.deliverOnce(t); n != 1 {
		t.Fatalf("third attempt: DeliverDue took %d mails, want 1", n)
	}
	if got := f.sender.Delivered("flaky@example.com"); len(got) != 1 || f.sender.Calls(mailID) != 3 {
		t.Fatalf("delivered %d after %d calls, want 1 after 3", len(got), f.sender.Calls(mailID))
	}
	types, envs := f.stream(t, domain.MailID(mailID).Stream())
	want := []string{"mail.requested.v1", "mail.failed.v1", "mail.failed.v1", "mail.sent.v1"}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("mail stream %v, want %v", types, want)
	}
	for i, env := range envs[1:3] {
		var failed domain.MailFailed
		if err := json.Unmarshal(env.Payload, &failed); err != nil {
			t.Fatal(err)
		}
		if failed.Attempt != i+1 || failed.Permanent {
			t.Errorf("failure %d: %+v, want attempt %d, temporary", i+1, failed, i+1)
		}
	}
	if row := f.mailRow(t, mailID); row.status != "sent" || row.attempts != 2 {
		t.Errorf("read model %+v, want sent after 2 failed attempts", row)
	}
	f.clock.Advance(24 * time.Hour)
	f.deliverOnce(t)
	if calls := f.sender.Calls(mailID); calls != 3 {
		t.Errorf("%d sends after delivery, want 3", calls)
	}
	if _, err := f.vault.Get(ctx(t), mailSecretID(mailID)); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("token of a sent mail in the vault: %v, want ErrNotFound", err)
	}
}

func TestMailPermanentFailureIsFinal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.sender.setFail(func(mail.Message, int) error {
		return fmt.Errorf("550 mailbox unavailable: %w", mail.ErrPermanent)
	})
	f.register(t, "nobody@example.com")
	mailID := f.onlyMail(t)
	if _, err := f.vault.Get(ctx(t), mailSecretID(mailID)); err != nil {
		t.Fatalf("token of a pending mail: %v", err)
	}
	if n := f.deliverOnce(t); n != 1 {
		t.Fatalf("DeliverDue took %d mails, want 1", n)
	}
	for range 3 {
		f.clock.Advance(3 * time.Hour)
		f.deliverOnce(t)
	}
	if calls := f.sender.Calls(mailID); calls != 1 {
		t.Errorf("a permanently failed mail was tried %d times", calls)
	}
	types, envs := f.stream(t, domain.MailID(mailID).Stream())
	if len(types) != 2 || types[1] != "mail.failed.v1" {
		t.Fatalf("mail stream %v, want requested then failed", types)
	}
	var failed domain.MailFailed
	if err := json.Unmarshal(envs[1].Payload, &failed); err != nil {
		t.Fatal(err)
	}
	if !failed.Permanent || failed.Attempt != 1 {
		t.Errorf("failure %+v, want attempt 1, permanent", failed)
	}
	if row := f.mailRow(t, mailID); row.status != "failed" || row.next != nil {
		t.Errorf("read model %+v, want failed with nothing due", row)
	}
	if _, err := f.vault.Get(ctx(t), mailSecretID(mailID)); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("token of a given-up mail in the vault: %v, want ErrNotFound", err)
	}
}

// TestMailGivenUpAfterMaxAttempts: temporary failures are retried MaxMailAttempts times in all.
func TestMailGivenUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.sender.setFail(func(mail.Message, int) error { return errors.New("connection refused") })
	f.register(t, "unreachable@example.com")
	mailID := f.onlyMail(t)
	for attempt := 1; attempt <= domain.MaxMailAttempts; attempt++ {
		if n := f.deliverOnce(t); n != 1 {
			t.Fatalf("attempt %d: DeliverDue took %d mails", attempt, n)
		}
		row := f.mailRow(t, mailID)
		if row.attempts != attempt {
			t.Fatalf("after attempt %d: %+v", attempt, row)
		}
		if row.next != nil {
			f.clock.Set(*row.next)
		}
	}
	if row := f.mailRow(t, mailID); row.status != "failed" {
		t.Errorf("after %d attempts: %+v, want failed", domain.MaxMailAttempts, row)
	}
	f.clock.Advance(48 * time.Hour)
	f.deliverOnce(t)
	if calls := f.sender.Calls(mailID); calls != domain.MaxMailAttempts {
		t.Errorf("%d attempts, want %d", calls, domain.MaxMailAttempts)
	}
	if _, err := f.vault.Get(ctx(t), mailSecretID(mailID)); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("token of a given-up mail in the vault: %v, want ErrNotFound", err)
	}
}

func TestMailNeverSentTwice(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const users = 6
	for i := range users {
		f.register(t, fmt.Sprintf("twice%d@example.com", i))
	}
	f.settle(t)

	// While the first Send is in flight, the other reactor runs through: the rows being sent are
	// locked, so it must skip them.
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	f.sender.setBlock(func(mail.Message) {
		first := false
		once.Do(func() { first = true; close(entered) })
		if first {
			<-release
		}
	})
	results := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := f.mail.DeliverDue(ctx(t))
			results <- err
		}()
	}
	// One reactor blocks in the first Send; the other must finish meanwhile (in either order
	// relative to that Send starting).
	deadline := time.After(10 * time.Second)
	for sending, finished := false, false; !sending || !finished; {
		select {
		case <-entered:
			sending, entered = true, nil
		case err := <-results:
			if finished {
				t.Fatal("both reactors finished while a Send was blocked")
			}
			finished = true
			if err != nil {
				t.Errorf("DeliverDue: %v", err)
			}
		case <-deadline:
			t.Fatalf("after 10 s: a Send started: %v, a reactor finished: %v (did one wait for locked rows?)", sending, finished)
		}
	}
	close(release)
	if err := <-results; err != nil {
		t.Errorf("DeliverDue: %v", err)
	}

	// Again and again, from two reactors at once, with and without waiting for the read model.
	for round := range 5 {
		if round%2 == 0 {
			f.settle(t)
		}
		errs := race(2, func(int) error { _, err := f.mail.DeliverDue(ctx(t)); return err })
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	f.settle(t)
	all := f.sender.Delivered("")
	if len(all) != users {
		t.Errorf("%d mails delivered, want %d", len(all), users)
	}
	for _, m := range all {
		if calls := f.sender.Calls(m.ID); calls != 1 {
			t.Errorf("mail %s to %s sent %d times", m.ID, m.To, calls)
		}
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM events WHERE event_type = 'mail.sent.v1'`); n != users {
		t.Errorf("%d mail.sent events, want %d", n, users)
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM mail_deliveries WHERE status = 'sent'`); n != users {
		t.Errorf("%d mails sent in the read model, want %d", n, users)
	}
	if n := f.scalar(t, `SELECT COUNT(*) FROM secrets WHERE id LIKE 'mail:%'`); n != 0 {
		t.Errorf("%d mail tokens left in the vault after delivery", n)
	}
}

// TestMailBackoffHoldsWhileReadModelLags: the mail's own stream knows when its next attempt is
// due; a read model that has not applied the last failure yet must not make the reactor try again
// at once. (Run calls DeliverDue again right after a batch that handled mails, so in production
// the second attempt usually comes before the projector applied the first failure.)
func TestMailBackoffHoldsWhileReadModelLags(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.sender.setFail(func(mail.Message, int) error { return errors.New("421 try again later") })
	f.register(t, "lagging@example.com")
	mailID := f.onlyMail(t)
	f.stopProjections(t) // the read model stays where it is: a lagging projector
	for range 3 {
		if _, err := f.mail.DeliverDue(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	types, _ := f.stream(t, domain.MailID(mailID).Stream())
	if calls := f.sender.Calls(mailID); calls != 1 {
		t.Errorf("on an unmoved clock the mail was tried %d times (stream %v), want 1: the backoff only holds once the read model shows the failure", calls, types)
	}
}

// TestSlowSMTPServerHoldsOnlyItsOwnMail: while one reactor is stuck talking to a slow SMTP server
// about one mail, it holds no row lock on the read model, and another reactor takes and delivers
// every other due mail.
func TestSlowSMTPServerHoldsOnlyItsOwnMail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const users = 4
	for i := range users {
		f.register(t, fmt.Sprintf("slow-smtp%d@example.com", i))
	}
	f.settle(t)

	stuck := make(chan mail.Message, 1)
	release := make(chan struct{})
	var once sync.Once
	f.sender.setBlock(func(m mail.Message) {
		first := false
		once.Do(func() { first = true })
		if first {
			stuck <- m
			<-release
		}
	})
	first := make(chan error, 1)
	go func() { _, err := f.mail.DeliverDue(ctx(t)); first <- err }()
	var slow mail.Message
	select {
	case slow = <-stuck:
	case <-ctx(t).Done():
		t.Fatal("no Send started")
	}

	tx, err := f.db.BeginTx(ctx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx(t), `SELECT mail_id FROM mail_deliveries WHERE mail_id = ? FOR UPDATE NOWAIT`, slow.ID); err != nil {
		t.Errorf("the row of the mail being sent is locked during the SMTP conversation: %v", err)
	}
	tx.Rollback() //nolint:errcheck // read only

	n, err := f.mail.DeliverDue(ctx(t))
	if err != nil || n != users-1 {
		t.Fatalf("the other reactor took %d mails (%v) while one was being sent, want %d", n, err, users-1)
	}
	if got := len(f.sender.Delivered("")); got != users-1 {
		t.Errorf("%d mails delivered while one was stuck, want %d", got, users-1)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("DeliverDue: %v", err)
	}
	f.settle(t)
	for _, m := range f.sender.Delivered("") {
		if calls := f.sender.Calls(m.ID); calls != 1 {
			t.Errorf("mail %s sent %d times", m.ID, calls)
		}
	}
	if got := len(f.sender.Delivered("")); got != users {
		t.Errorf("%d mails delivered in all, want %d", got, users)
	}
}
