package commands

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/mail"
)

// mailText is what a kind of mail says: its subject, the page its link opens, and its text, in
// which {name} and {link} are filled in.
type mailText struct {
	subject, path, text string
}

var mailTexts = map[string]mailText{
	domain.MailVerification: {
		subject: "Verify your email address for CloudDB Manager",
		path:    "/verify",
		text: `Hello {name},

welcome to CloudDB Manager. Please confirm your email address by opening this link
within 24 hours:

{link}

If you did not sign up, ignore this message: nothing happens without the link.
`,
	},
	domain.MailPasswordReset: {
		subject: "Reset your CloudDB Manager password",
		path:    "/reset-password",
		text: `Hello {name},

someone (hopefully you) asked to reset the password of your CloudDB Manager account.
Open this link within one hour to choose a new password:

{link}

If it was not you, ignore this message: your password stays as it is.
`,
	},
}

// compose renders a requested mail with its link, reading the link's token from the vault.
func (d *MailDelivery) compose(ctx context.Context, req domain.MailRequested) (mail.Message, error) {
	text, ok := mailTexts[req.Kind]
	if !ok {
		return mail.Message{}, fmt.Errorf("unknown mail kind %q: %w", req.Kind, mail.ErrPermanent)
	}
	token, err := d.secrets.Get(ctx, mailSecret(req.MailID))
	if err != nil {
		return mail.Message{}, fmt.Errorf("token of mail %s: %w", req.MailID, err)
	}
	link := d.publicURL.JoinPath(text.path)
	link.RawQuery = url.Values{"token": {string(token)}}.Encode()
	name := req.Data["name"]
	if name == "" {
		name = "there"
	}
	body := strings.NewReplacer("{name}", name, "{link}", link.String()).Replace(text.text)
	return mail.Message{ID: string(req.MailID), To: req.To, Subject: text.subject, Text: body}, nil
}
