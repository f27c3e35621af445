package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

func mailSecret(id domain.MailID) string { return "mail:" + string(id) }

// requestMail records a mail whose link carries token. The token goes to the secrets vault, never
// into the log; the delivery reads it from there and erases it once the mail is done.
func (h *Identity) requestMail(ctx context.Context, to, kind, token string, user domain.UserID, data map[string]string) (*domain.Mail, error) {
	id := domain.MailID(uuid.NewString())
	if err := h.secrets.Put(ctx, mailSecret(id), []byte(token)); err != nil {
		return nil, fmt.Errorf("keep mail token: %w", err)
	}
	return domain.RequestMail(domain.MailRequested{MailID: id, To: to, Kind: kind, Data: data, UserID: user}), nil
}

// forgetMail erases the token of a mail whose request was not stored after all.
func (h *Identity) forgetMail(m *domain.Mail) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.secrets.Erase(ctx, mailSecret(m.Requested().MailID)) //nolint:errcheck // an orphaned token opens nothing: its hash was never stored
}

func mailStream(m *domain.Mail) eventstore.Stream {
	return stream(m.Requested().MailID.Stream(), "mail", m)
}
