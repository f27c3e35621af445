// Package mail delivers one email at a time, either to an SMTP server (NewSMTP) or as an .eml
// file in a directory (NewDir) when no SMTP server is configured (DESIGN.md, CLOUDDB_SMTP_* and
// CLOUDDB_MAIL_DIR).
//
// Both senders put on the wire or on disk the bytes that Build makes, so what a developer reads in
// the mail directory is exactly what an SMTP server would have received, but for the Date.
//
// Bodies carry one-time tokens and the SMTP password is a secret: neither ever appears in an error
// of this package, and the package logs nothing.
package mail

import (
	"context"
	"errors"
	"fmt"
)

// Message is one email. ID is stable per logical message (the caller passes the id of the event
// that requested it), used as the Message-ID and to make file delivery idempotent.
type Message struct {
	ID      string // uuid
	To      string // one address
	Subject string
	Text    string // plain text body (UTF-8)
	HTML    string // optional; when set, send multipart/alternative
}

// Sender delivers one message.
//
// Send returns an error that wraps ErrPermanent when trying again with the same message cannot
// succeed (an invalid message, or a 5xx reply of the SMTP server); any other error is temporary
// (network, timeout, 4xx reply, file system) and the caller may retry later with the same
// Message, whose ID keeps the delivery idempotent where the transport allows it.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

var (
	// ErrPermanent marks a failure that retrying the same message will not fix: the SMTP server
	// answered with a 5xx reply, or the message itself is invalid (see ErrInvalidMessage).
	ErrPermanent = errors.New("permanent mail failure")

	// ErrInvalidMessage marks a message that cannot be built: a missing or malformed ID, To or
	// Subject, a header injection attempt (CR or LF in To or Subject), or a body that is not
	// UTF-8. An error that wraps it also wraps ErrPermanent.
	ErrInvalidMessage = errors.New("invalid mail message")
)

// invalidf returns an error wrapping ErrInvalidMessage and ErrPermanent. It must never be given a
// body or a secret to format.
func invalidf(format string, args ...any) error {
	return &invalidError{msg: "mail: " + fmt.Sprintf(format, args...)}
}

type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func (e *invalidError) Is(target error) bool {
	return target == ErrInvalidMessage || target == ErrPermanent
}
