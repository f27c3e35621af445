package domain_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

func mailRequested() domain.MailRequested {
	return domain.MailRequested{MailID: domain.MailID(uuidB), To: "ada@example.com", Kind: domain.MailVerification,
		Data: map[string]string{"name": "Ada"}, UserID: domain.UserID(uuidA)}
}

func TestRequestMail(t *testing.T) {
	m := domain.RequestMail(mailRequested())
	if !reflect.DeepEqual(m.Requested(), mailRequested()) || m.Done() || m.Attempts() != 0 || m.Version() != 0 {
		t.Errorf("mail = %+v done=%v attempts=%d version=%d, want the request, not done, 0, 0", m.Requested(), m.Done(), m.Attempts(), m.Version())
	}
	wantPending(t, m.PendingEvents(), "mail.requested.v1")
}

func TestMailDelivery(t *testing.T) {
	errTemp := errors.New("421 try again later")
	tests := []struct {
		name         string
		steps        func(m *domain.Mail)
		wantDone     bool
		wantAttempts int
		wantLast     domain.Event
	}{
		{"sent", func(m *domain.Mail) { m.Sent(t0) }, true, 0, domain.MailSent{At: t0}},
		{"temporary failure", func(m *domain.Mail) { m.Failed(errTemp, false, t0) }, false, 1,
			domain.MailFailed{At: t0, Attempt: 1, Error: "421 try again later", Permanent: false}},
		{"permanent failure", func(m *domain.Mail) { m.Failed(errors.New("550 no such user"), true, t0) }, true, 1,
			domain.MailFailed{At: t0, Attempt: 1, Error: "550 no such user", Permanent: true}},
		{"sent after a temporary failure", func(m *domain.Mail) {
			m.Failed(errTemp, false, t0)
			m.Sent(t0.Add(time.Minute))
		}, true, 1, domain.MailSent{At: t0.Add(time.Minute)}},
		{"seven temporary failures", func(m *domain.Mail) {
			for i := 0; i < domain.MaxMailAttempts-1; i++ {
				m.Failed(errTemp, false, t0.Add(time.Duration(i)*time.Minute))
			}
		}, false, 7, domain.MailFailed{At: t0.Add(6 * time.Minute), Attempt: 7, Error: "421 try again later"}},
		{"the last attempt's failure is permanent", func(m *domain.Mail) {
			for i := 0; i < domain.MaxMailAttempts; i++ {
				m.Failed(errTemp, false, t0.Add(time.Duration(i)*time.Minute))
			}
		}, true, 8, domain.MailFailed{At: t0.Add(7 * time.Minute), Attempt: 8, Error: "421 try again later", Permanent: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			decided := domain.RequestMail(mailRequested())
			tt.steps(decided)
			history := decided.PendingEvents()
			rebuilt, err := domain.RebuildMail(viaJSON(t, history), int64(len(history)))
			if err != nil {
				t.Fatal(err)
			}
			for name, m := range map[string]*domain.Mail{"decided": decided, "rebuilt": rebuilt} {
				if m.Done() != tt.wantDone || m.Attempts() != tt.wantAttempts {
					t.Errorf("%s: Done() = %v, Attempts() = %d; want %v, %d", name, m.Done(), m.Attempts(), tt.wantDone, tt.wantAttempts)
				}
				if !reflect.DeepEqual(m.Requested(), mailRequested()) {
					t.Errorf("%s: Requested() = %+v", name, m.Requested())
				}
			}
			if got := history[len(history)-1]; got != tt.wantLast {
				t.Errorf("last event = %+v, want %+v", got, tt.wantLast)
			}
			if rebuilt.Version() != int64(len(history)) || len(rebuilt.PendingEvents()) != 0 {
				t.Errorf("rebuilt: Version() = %d, %d pending", rebuilt.Version(), len(rebuilt.PendingEvents()))
			}
		})
	}
}

func TestMailAttemptsPermanence(t *testing.T) {
	// Attempt k of MaxMailAttempts: only the last one gives up by itself.
	m := domain.RequestMail(mailRequested())
	for k := 1; k <= domain.MaxMailAttempts; k++ {
		m.Failed(errors.New("timeout"), false, t0)
		last := m.PendingEvents()[len(m.PendingEvents())-1].(domain.MailFailed)
		if last.Attempt != k || last.Permanent != (k == domain.MaxMailAttempts) {
			t.Errorf("failure %d: attempt %d, permanent %v; want %d, %v", k, last.Attempt, last.Permanent, k, k == domain.MaxMailAttempts)
		}
	}
}

func TestRebuildMailEmpty(t *testing.T) {
	for _, history := range [][]domain.Event{nil, {}} {
		m, err := domain.RebuildMail(history, 0)
		if !errors.Is(err, domain.ErrNotFound) || m != nil {
			t.Errorf("RebuildMail(%v) = %v, %v; want nil, ErrNotFound", history, m, err)
		}
	}
}
