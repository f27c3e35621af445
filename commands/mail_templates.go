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
	// plain: the link opens the console without a token (the mail says something; it grants
	// nothing).
	plain bool
}

var mailTexts = map[string]mailText{
	domain.MailAlert: {
		subject: "CloudDB Manager alert {state}: {message}",
		path:    "/",
		plain:   true,
		text: `Hello {name},

an alert of your tenant is {state}:

    {message}

See the alerts and the dashboard in the console:

{link}

You get this mail as a tenant admin; the tenant's alert rules say which alerts mail you.
`,
	},
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
	domain.MailInvitation: {
		subject: "You are invited to join {tenant} on CloudDB Manager",
		path:    "/invitations/accept",
		text: `Hello,

you are invited to join {tenant} on CloudDB Manager as {role}.
{message}
Open this link within 7 days to accept (you can create your account there if you do not
have one yet):

{link}

If you do not know this tenant, ignore this message.
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
	domain.MailUnlock: {
		subject: "Your CloudDB Manager account is locked",
		path:    "/unlock",
		text: `Hello {name},

your CloudDB Manager account was locked for 15 minutes after five failed logins: someone
tried passwords that are not yours, or you mistyped yours.

If it was you, open this link within one hour to lift the lock, then log in with your
password:

{link}

If you use two-factor authentication, your password with a code also logs you in during a
lock. If it was not you, your password is still safe (the lock stops the guessing); consider
changing it if it is used elsewhere.
`,
	},
}

// compose renders a requested mail with its link, reading the link's token from the vault.
func (d *MailDelivery) compose(ctx context.Context, req domain.MailRequested) (msg mail.Message, link string, err error) {
	text, ok := mailTexts[req.Kind]
	if !ok {
		return mail.Message{}, "", fmt.Errorf("unknown mail kind %q: %w", req.Kind, mail.ErrPermanent)
	}
	u := d.publicURL.JoinPath(text.path)
	if !text.plain {
		token, err := d.secrets.Get(ctx, mailSecret(req.MailID))
		if err != nil {
			return mail.Message{}, "", fmt.Errorf("token of mail %s: %w", req.MailID, err)
		}
		u.RawQuery = url.Values{"token": {string(token)}}.Encode()
	}
	// NewReplacer takes the first pair for a repeated key: the mail's data, then the defaults.
	var values []string
	for key, value := range req.Data {
		if key == "message" && value != "" {
			value = "\nTheir message:\n\n    " + strings.ReplaceAll(value, "\n", "\n    ") + "\n"
		}
		if value != "" {
			values = append(values, "{"+key+"}", value)
		}
	}
	values = append(values, "{link}", u.String(), "{name}", "there", "{message}", "")
	fill := strings.NewReplacer(values...)
	return mail.Message{ID: string(req.MailID), To: req.To, Subject: fill.Replace(text.subject), Text: fill.Replace(text.text)}, u.String(), nil
}
