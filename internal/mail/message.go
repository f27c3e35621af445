package mail

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

const (
	// maxSubjectBytes bounds Subject so that no header line, even unfoldable, passes the 998
	// characters RFC 5322 allows.
	maxSubjectBytes = 900
	// foldAt is the line length RFC 5322 recommends; longer header values are folded at spaces.
	foldAt = 78
)

// built is a message ready for delivery: its bytes and its envelope.
type built struct {
	id   string // canonical lowercase uuid: Message-ID left part and file name
	from string // envelope sender (addr-spec only)
	to   string // envelope recipient (addr-spec only)
	data []byte // RFC 5322 message, CRLF line endings
}

// Build returns m as an RFC 5322 message from the sender from ("Name <addr>" or "addr"), dated
// date: Date, From, To, Subject (an RFC 2047 encoded-word when not plain ASCII), Message-ID
// <ID@domain-of-from>, MIME-Version, Auto-Submitted, then a text/plain; charset=utf-8 body, or a
// multipart/alternative of the text and the HTML when m.HTML is set. Each body goes as it is
// (7bit, or 8bit when not ASCII) unless a line of it is too long for that (bodyEncoding): then
// quoted-printable. Every line ends with CRLF, line breaks of the bodies included.
//
// Returns an error wrapping ErrInvalidMessage (and ErrPermanent) if m.ID is not a uuid, if m.To or
// m.Subject contains CR or LF (header injection) or is empty, if m.To is not one address that
// net/mail.ParseAddress accepts, if Subject is longer than 900 bytes, or if a body is empty (Text)
// or not UTF-8. Returns a temporary error (not ErrPermanent: it is configuration, every message
// fails alike until it is fixed) if from is not one valid address.
func Build(from string, m Message, date time.Time) ([]byte, error) {
	b, err := build(from, m, date)
	if err != nil {
		return nil, err
	}
	return b.data, nil
}

// build is the one function that turns a Message into bytes; both senders use it.
func build(from string, m Message, date time.Time) (built, error) {
	id, err := uuid.Parse(m.ID)
	if err != nil || len(m.ID) != 36 {
		return built{}, invalidf("message id %q is not a uuid", m.ID)
	}
	b := built{id: id.String()}

	// Identifiers only: the recipient, the subject and the bodies stay out of errors.
	switch {
	case strings.ContainsAny(m.To, "\r\n"):
		return built{}, invalidf("message %s: recipient contains CR or LF (header injection)", b.id)
	case strings.ContainsAny(m.Subject, "\r\n"):
		return built{}, invalidf("message %s: subject contains CR or LF (header injection)", b.id)
	case strings.TrimSpace(m.Subject) == "":
		return built{}, invalidf("message %s: empty subject", b.id)
	case len(m.Subject) > maxSubjectBytes:
		return built{}, invalidf("message %s: subject is longer than %d bytes", b.id, maxSubjectBytes)
	case !utf8.ValidString(m.Subject):
		return built{}, invalidf("message %s: subject is not UTF-8", b.id)
	case m.Text == "":
		return built{}, invalidf("message %s: empty text body", b.id)
	case !utf8.ValidString(m.Text):
		return built{}, invalidf("message %s: text body is not UTF-8", b.id)
	case !utf8.ValidString(m.HTML):
		return built{}, invalidf("message %s: HTML body is not UTF-8", b.id)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return built{}, invalidf("message %s: recipient is not one valid address: %v", b.id, err)
	}
	b.to = to.Address

	if strings.ContainsAny(from, "\r\n") {
		return built{}, fmt.Errorf("mail: sender address contains CR or LF")
	}
	sender, err := mail.ParseAddress(from)
	if err != nil {
		return built{}, fmt.Errorf("mail: sender address %q: %w", from, err)
	}
	b.from = sender.Address

	var buf bytes.Buffer
	writeHeader(&buf, "Date", date.Format(time.RFC1123Z))
	writeHeader(&buf, "From", sender.String())
	writeHeader(&buf, "To", to.String())
	writeHeader(&buf, "Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	writeHeader(&buf, "Message-ID", "<"+b.id+"@"+messageIDHost(sender.Address)+">")
	writeHeader(&buf, "MIME-Version", "1.0")
	writeHeader(&buf, "Auto-Submitted", "auto-generated") // RFC 3834: no vacation replies to us
	// "=_" can never occur in quoted-printable output (a literal "=" is encoded as "=3D"), so a
	// boundary that starts with it cannot collide with a body sent so, and the output stays
	// deterministic; a body that holds the boundary is sent quoted-printable.
	boundary := "=_" + b.id
	if m.HTML == "" {
		enc := bodyEncoding(m.Text, boundary)
		writeHeader(&buf, "Content-Type", "text/plain; charset=utf-8")
		writeHeader(&buf, "Content-Transfer-Encoding", enc)
		buf.WriteString("\r\n")
		if err := writeBody(&buf, enc, m.Text); err != nil {
			return built{}, fmt.Errorf("mail: message %s: encode text body: %w", b.id, err)
		}
		b.data = buf.Bytes()
		return b, nil
	}

	mw := multipart.NewWriter(&buf)
	if err := mw.SetBoundary(boundary); err != nil {
		return built{}, fmt.Errorf("mail: message %s: boundary: %w", b.id, err)
	}
	writeHeader(&buf, "Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
	buf.WriteString("\r\n")
	// Least preferred first (RFC 2046 §5.1.4): clients that render HTML show the last part.
	for _, p := range []struct{ ctype, body string }{
		{"text/plain; charset=utf-8", m.Text},
		{"text/html; charset=utf-8", m.HTML},
	} {
		enc := bodyEncoding(p.body, boundary)
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.ctype},
			"Content-Transfer-Encoding": {enc},
		})
		if err == nil {
			err = writeBody(w, enc, p.body)
		}
		if err != nil {
			return built{}, fmt.Errorf("mail: message %s: encode %s part: %w", b.id, p.ctype, err)
		}
	}
	if err := mw.Close(); err != nil {
		return built{}, fmt.Errorf("mail: message %s: close multipart: %w", b.id, err)
	}
	b.data = buf.Bytes()
	return b, nil
}

// writeHeader writes "Name: value" and CRLF, folding the value at spaces so that lines stay within
// 78 characters where the value allows it; unfolding (removing each CRLF) gives the value back.
// A first word too long for the name's line goes on the next line ("Subject:" CRLF SP word), so
// that a line of encoded-words (75 characters at most each) stays within RFC 2047's 76.
func writeHeader(buf *bytes.Buffer, name, value string) {
	buf.WriteString(name)
	buf.WriteString(":")
	n := len(name) + 1
	for _, word := range strings.Split(value, " ") {
		if word != "" && n+1+len(word) > foldAt { // never a whitespace-only line
			buf.WriteString("\r\n")
			n = 0
		}
		buf.WriteString(" ")
		buf.WriteString(word)
		n += 1 + len(word)
	}
	buf.WriteString("\r\n")
}

// maxBodyLine is the longest line a body sent as it is may have: RFC 5322's 998 characters,
// counted in bytes as SMTP counts them.
const maxBodyLine = 998

// bodyEncoding is the Content-Transfer-Encoding of body: "7bit" for ASCII and "8bit" for other
// UTF-8 (sent as it is, so that a person reading the file sees the text, and a link in it can be
// copied whole: quoted-printable writes "=" as "=3D" and breaks lines at 76 characters, which
// mangles every ?token= link), or "quoted-printable" when a line is longer than maxBodyLine or
// the body holds the multipart boundary. 8bit goes to SMTP servers with BODY=8BITMIME when they
// offer it (net/smtp's Mail), as all current ones do.
func bodyEncoding(body, boundary string) string {
	enc := "7bit"
	for _, line := range strings.FieldsFunc(body, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if len(line) > maxBodyLine {
			return "quoted-printable"
		}
	}
	if strings.Contains(body, boundary) {
		return "quoted-printable"
	}
	for i := 0; i < len(body); i++ {
		if body[i] >= 0x80 {
			enc = "8bit"
			break
		}
	}
	return enc
}

// writeBody writes s in encoding enc (bodyEncoding's); its line breaks (LF, CRLF or CR) come
// out as CRLF.
func writeBody(w io.Writer, enc, s string) error {
	if enc != "quoted-printable" {
		_, err := io.WriteString(w, crlfLines(s))
		return err
	}
	qw := quotedprintable.NewWriter(w)
	if _, err := qw.Write([]byte(s)); err != nil {
		return err
	}
	return qw.Close()
}

// crlfLines is s with every line break (LF, CRLF or CR) as CRLF.
func crlfLines(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// messageIDHost returns the domain of the sender address for the right part of Message-ID, or
// "localhost" when that domain is not plain ASCII (an internationalized domain is not allowed
// there as such).
func messageIDHost(addr string) string {
	host := addr[strings.LastIndexByte(addr, '@')+1:]
	if host == "" {
		return "localhost"
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-.[]:", c) >= 0
		if !ok {
			return "localhost"
		}
	}
	return host
}
