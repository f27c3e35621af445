package mail

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"
)

const (
	testID   = "0b6f5d0e-3c1a-4f7e-9d2a-5b8c1e4f7a90"
	testFrom = "CloudDB Manager <no-reply@clouddb.example>"
)

var testDate = time.Date(2026, 3, 14, 15, 9, 26, 0, time.FixedZone("CET", 3600))

// testText exercises the body encoding: non-ASCII, a line longer than 76 characters, trailing
// spaces, "=" signs, a lone "." line (SMTP end of data) and a "From " line.
const testText = "Bonjour Zoë,\n\nVérifiez votre adresse : http://localhost:8080/verify?token=abc=def&x=1\n" +
	"Une ligne très longue qui dépasse largement les soixante-seize caractères autorisés par ligne en quoted-printable.\n" +
	"trailing spaces   \n.\nFrom the team\n"

func testMessage() Message {
	return Message{ID: testID, To: "Zoë Martin <zoe@example.com>", Subject: "Vérification de votre adresse", Text: testText}
}

// crlf is s with its line breaks as the builder sends them.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func mustBuild(t *testing.T, m Message) []byte {
	t.Helper()
	raw, err := Build(testFrom, m, testDate)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return raw
}

func mustParse(t *testing.T, raw []byte) *mail.Message {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("ReadMessage: %v\n%s", err, raw)
	}
	return msg
}

// decodeBody reads a body sent with Content-Transfer-Encoding enc.
func decodeBody(t *testing.T, enc string, r io.Reader) string {
	t.Helper()
	if enc == "quoted-printable" {
		r = quotedprintable.NewReader(r)
	} else if enc != "7bit" && enc != "8bit" {
		t.Fatalf("Content-Transfer-Encoding %q", enc)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", enc, err)
	}
	return string(b)
}

func assertCRLF(t *testing.T, raw []byte) {
	t.Helper()
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			t.Fatalf("bare LF at byte %d:\n%q", i, raw)
		}
		if c == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
			t.Fatalf("bare CR at byte %d:\n%q", i, raw)
		}
	}
	for i, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Fatalf("line %d has %d characters, RFC 5322 allows 998", i, len(line))
		}
	}
}

func TestBuildHeaders(t *testing.T) {
	raw := mustBuild(t, testMessage())
	assertCRLF(t, raw)
	msg := mustParse(t, raw)

	date, err := msg.Header.Date()
	if err != nil || !date.Equal(testDate) {
		t.Errorf("Date = %v (%v), want %v", date, err, testDate)
	}
	from, err := msg.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "no-reply@clouddb.example" || from[0].Name != "CloudDB Manager" {
		t.Errorf("From = %v (%v)", from, err)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "zoe@example.com" || to[0].Name != "Zoë Martin" {
		t.Errorf("To = %v (%v)", to, err)
	}
	for name, want := range map[string]string{
		"Message-Id":                "<" + testID + "@clouddb.example>",
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "8bit", // not ASCII, no line over 998 bytes
		"Auto-Submitted":            "auto-generated",
	} {
		if got := msg.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	var dec mime.WordDecoder
	if subject, err := dec.DecodeHeader(msg.Header.Get("Subject")); err != nil || subject != "Vérification de votre adresse" {
		t.Errorf("Subject decodes to %q (%v)", subject, err)
	}
	if got := decodeBody(t, "8bit", msg.Body); got != crlf(testText) {
		t.Errorf("body decodes to %q, want %q", got, crlf(testText))
	}
	if again := mustBuild(t, testMessage()); !bytes.Equal(raw, again) {
		t.Error("Build is not deterministic for the same message and date")
	}
}

func TestBuildEncodedWordSubject(t *testing.T) {
	m := testMessage()
	m.Subject = "Vérification"
	raw := mustBuild(t, m)
	if !bytes.Contains(raw, []byte("\r\nSubject: =?utf-8?q?V=C3=A9rification?=\r\n")) {
		t.Fatalf("no RFC 2047 encoded-word subject in:\n%s", raw)
	}
	if bytes.Contains(raw, []byte("Vérification")) {
		t.Error("raw UTF-8 subject in the header")
	}

	m.Subject = "Verify your email address"
	if raw := mustBuild(t, m); !bytes.Contains(raw, []byte("\r\nSubject: Verify your email address\r\n")) {
		t.Errorf("an ASCII subject should stay as it is:\n%s", raw)
	}
}

func TestBuildFoldsLongSubjects(t *testing.T) {
	var dec mime.WordDecoder
	for _, subject := range []string{
		strings.Repeat("Réinitialisation du mot de passe ", 6),
		strings.Repeat("Password reset for your account ", 6),
	} {
		m := testMessage()
		subject = strings.TrimSpace(subject)
		m.Subject = subject
		raw := mustBuild(t, m)
		assertCRLF(t, raw)
		head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		for _, line := range strings.Split(string(head), "\r\n") {
			if len(line) > foldAt || strings.Contains(line, "=?") && len(line) > 76 {
				t.Errorf("header line of %d characters: %q", len(line), line)
			}
		}
		got, err := dec.DecodeHeader(mustParse(t, raw).Header.Get("Subject"))
		if err != nil || got != subject {
			t.Errorf("folded subject decodes to %q (%v), want %q", got, err, subject)
		}
	}
}

func TestBuildRejects(t *testing.T) {
	for name, mutate := range map[string]func(*Message){
		"LF in To":           func(m *Message) { m.To = "zoe@example.com\nBcc: everyone@example.com" },
		"CRLF in To":         func(m *Message) { m.To = "zoe@example.com\r\nBcc: everyone@example.com" },
		"CR in To":           func(m *Message) { m.To = "zoe@example.com\rBcc: everyone@example.com" },
		"CRLF in Subject":    func(m *Message) { m.Subject = "Hello\r\nBcc: everyone@example.com" },
		"LF in Subject":      func(m *Message) { m.Subject = "Hello\nBcc: everyone@example.com" },
		"CRLF CRLF Subject":  func(m *Message) { m.Subject = "Hello\r\n\r\nfake body" },
		"two recipients":     func(m *Message) { m.To = "a@example.com, b@example.com" },
		"not an address":     func(m *Message) { m.To = "zoe at example.com" },
		"empty To":           func(m *Message) { m.To = "" },
		"empty Subject":      func(m *Message) { m.Subject = " " },
		"long Subject":       func(m *Message) { m.Subject = strings.Repeat("x", maxSubjectBytes+1) },
		"empty Text":         func(m *Message) { m.Text = "" },
		"Text not UTF-8":     func(m *Message) { m.Text = "caf\xe9" },
		"HTML not UTF-8":     func(m *Message) { m.HTML = "<p>caf\xe9</p>" },
		"Subject not UTF-8":  func(m *Message) { m.Subject = "caf\xe9" },
		"ID not a uuid":      func(m *Message) { m.ID = "../../etc/passwd" },
		"ID empty":           func(m *Message) { m.ID = "" },
		"ID in braces (urn)": func(m *Message) { m.ID = "{" + testID + "}" },
	} {
		t.Run(name, func(t *testing.T) {
			m := testMessage()
			mutate(&m)
			raw, err := Build(testFrom, m, testDate)
			if err == nil {
				t.Fatalf("accepted:\n%s", raw)
			}
			if !errors.Is(err, ErrInvalidMessage) || !errors.Is(err, ErrPermanent) {
				t.Errorf("error %v is not ErrInvalidMessage and ErrPermanent", err)
			}
			for _, secret := range []string{"Bcc", "token=abc", "fake body"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q repeats the message content %q", err, secret)
				}
			}
		})
	}
}

func TestBuildSender(t *testing.T) {
	for _, from := range []string{"", "no-reply", "a@b\r\nBcc: x@y", "a@example.com, b@example.com"} {
		_, err := Build(from, testMessage(), testDate)
		if err == nil || errors.Is(err, ErrPermanent) {
			t.Errorf("Build(from=%q) = %v, want a temporary (configuration) error", from, err)
		}
	}

	raw, err := Build("Équipe CloudDB <no-reply@clouddb.example>", testMessage(), testDate)
	if err != nil {
		t.Fatal(err)
	}
	from, err := mustParse(t, raw).Header.AddressList("From")
	if err != nil || from[0].Name != "Équipe CloudDB" {
		t.Errorf("non-ASCII display name: From = %v (%v)", from, err)
	}
	if !bytes.Contains(raw, []byte("From: =?utf-8?q?")) {
		t.Errorf("non-ASCII display name not encoded:\n%s", raw)
	}

	raw, err = Build("no-reply@clouddb.example", Message{ID: strings.ToUpper(testID), To: "zoe@example.com", Subject: "s", Text: "t"}, testDate)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustParse(t, raw).Header.Get("Message-Id"); got != "<"+testID+"@clouddb.example>" {
		t.Errorf("Message-ID = %q, want the lowercase uuid", got)
	}
}

func TestBuildMultipartWhenHTML(t *testing.T) {
	m := testMessage()
	m.HTML = "<p>Bonjour Zoë,</p>\n<p><a href=\"http://localhost:8080/verify?token=abc=def\">Vérifier</a></p>\n"
	raw := mustBuild(t, m)
	assertCRLF(t, raw)
	msg := mustParse(t, raw)

	if msg.Header.Get("Mime-Version") != "1.0" {
		t.Error("no MIME-Version")
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("Content-Type = %q (%v)", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for i, want := range []struct{ ctype, body string }{
		{"text/plain; charset=utf-8", m.Text},
		{"text/html; charset=utf-8", m.HTML},
	} {
		p, err := r.NextRawPart() // raw: check the encoding header ourselves
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if got := p.Header.Get("Content-Type"); got != want.ctype {
			t.Errorf("part %d Content-Type = %q, want %q", i, got, want.ctype)
		}
		if got := p.Header.Get("Content-Transfer-Encoding"); got != "8bit" {
			t.Errorf("part %d Content-Transfer-Encoding = %q", i, got)
		}
		if got := decodeBody(t, "8bit", p); got != crlf(want.body) {
			t.Errorf("part %d decodes to %q, want %q", i, got, crlf(want.body))
		}
	}
	if _, err := r.NextPart(); err != io.EOF {
		t.Errorf("after two parts: %v, want io.EOF", err)
	}
}

// A body goes as it is when it can, so that the link of a mail written to a file can be copied
// from it whole: 7bit for ASCII, 8bit otherwise; quoted-printable only for a line over 998 bytes
// or a body that holds the multipart boundary.
func TestBuildBodyEncoding(t *testing.T) {
	link := "https://console.example/app/verify?token=0b6f5d0e-3c1a-4f7e-9d2a-5b8c1e4f7a90.q7Vd3mKxRp9Lw2bNf8sTz4HcYq7Vd3mKxRp9Lw2bNf8sTz4HcY"
	for _, tc := range []struct {
		name, text, enc string
	}{
		{"ascii", "Hello,\n\n" + link + "\n", "7bit"},
		{"utf-8", "Hello Zoë,\n\n" + link + "\n", "8bit"},
		{"long line", strings.Repeat("x", 999) + "\n" + link + "\n", "quoted-printable"},
		{"boundary", "--=_" + testID + "\n" + link + "\n", "quoted-printable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testMessage()
			m.Text = tc.text
			if tc.name == "boundary" {
				m.HTML = "<p>x</p>"
			}
			raw := mustBuild(t, m)
			assertCRLF(t, raw)
			if got := strings.Count(string(raw), "Content-Transfer-Encoding: "+tc.enc); got != 1 {
				t.Fatalf("Content-Transfer-Encoding %s %d times in:\n%s", tc.enc, got, raw)
			}
			if tc.enc != "quoted-printable" && !bytes.Contains(raw, []byte("\r\n"+link+"\r\n")) {
				t.Errorf("the link is not on a line of its own, whole:\n%s", raw)
			}
		})
	}
}
