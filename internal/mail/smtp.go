package mail

// Why net/smtp and not a library such as github.com/wneessen/go-mail: we send one message to one
// recipient per connection and build the bytes ourselves (Build, shared with NewDir), so all we
// need from a client is the SMTP conversation. net/smtp does that conversation correctly
// (EHLO/HELO fallback, STARTTLS, AUTH, dot-stuffing, SMTPUTF8/8BITMIME parameters), is covered by
// the Go security policy, adds no dependency, and hands back every server reply as a
// *textproto.Error carrying the reply code, which is exactly what the permanent/temporary split
// needs. It is frozen, not abandoned; what it lacks (context, a timeout, a PLAIN auth that trusts
// any loopback address) is a few lines here. A library would bring its own message builder and
// its own error taxonomy, both of which we would have to bypass.

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"time"
)

// DefaultSMTPTimeout bounds a whole SMTP conversation (connect to QUIT) when SMTPConfig.Timeout
// is zero.
const DefaultSMTPTimeout = 10 * time.Second

// SMTPConfig configures NewSMTP; each field mirrors one CLOUDDB_SMTP_* variable.
type SMTPConfig struct {
	Addr     string        // host:port of the submission server
	From     string        // sender, "Name <addr>" or "addr": header From and envelope MAIL FROM
	User     string        // AUTH PLAIN user; empty means no AUTH
	Password string        // AUTH PLAIN password; never printed, logged or put in an error
	Timeout  time.Duration // limit of one Send, connect to QUIT; 0 means DefaultSMTPTimeout
}

// String describes c without its password, so that printing a config cannot leak it.
func (c SMTPConfig) String() string {
	pw := ""
	if c.Password != "" {
		pw = "[redacted]"
	}
	return fmt.Sprintf("{Addr:%s From:%s User:%s Password:%s Timeout:%s}", c.Addr, c.From, c.User, pw, c.Timeout)
}

// GoString is String, for %#v.
func (c SMTPConfig) GoString() string { return "mail.SMTPConfig" + c.String() }

// NewSMTP returns a Sender that submits each message over its own SMTP connection to cfg.Addr.
//
// It upgrades the connection with STARTTLS whenever the server offers it (verifying the server's
// certificate against the system roots and the host of Addr), and authenticates with AUTH PLAIN
// when cfg.User is set — only over TLS or to a loopback host (localhost, 127.0.0.0/8, ::1);
// elsewhere it refuses rather than send the password in clear. Each Send is bounded by
// cfg.Timeout (default 10 s) and by ctx, whichever ends first; cancelling ctx aborts the
// conversation at once.
//
// Send returns the errors of Build; an error wrapping ErrPermanent when the server answers a
// command with a 5xx reply (unknown recipient, rejected credentials, refused message); and a
// temporary error otherwise: network failures, timeouts (wrapping context.DeadlineExceeded, or
// context.Canceled when ctx was), 4xx replies, TLS failures and the refusal to authenticate in
// clear. The server reply is available through errors.As into a *textproto.Error, the password
// scrubbed from their text. A failure after the server accepted the message (the reply to the end
// of DATA) is ignored: retrying would deliver twice.
func NewSMTP(cfg SMTPConfig) Sender {
	return newSMTP(cfg, nil)
}

// newSMTP is NewSMTP with the TLS settings used for STARTTLS (nil: system roots); tests pass a
// pool holding their own certificate.
func newSMTP(cfg SMTPConfig, tlsConfig *tls.Config) *smtpSender {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultSMTPTimeout
	}
	var d net.Dialer
	return &smtpSender{cfg: cfg, tls: tlsConfig, helo: heloName(), now: time.Now, dial: d.DialContext}
}

type smtpSender struct {
	cfg  SMTPConfig
	tls  *tls.Config
	helo string
	now  func() time.Time
	// dial connects to cfg.Addr; tests redirect it to reach a local server under another name.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// errInsecureAuth is returned rather than sending credentials over a clear, non-loopback
// connection.
var errInsecureAuth = errors.New("server offers no STARTTLS and is not on a loopback address: refusing to send credentials in clear")

func (s *smtpSender) Send(ctx context.Context, m Message) error {
	b, err := build(s.cfg.From, m, s.now())
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("mail: smtp address %q: %w", s.cfg.Addr, err)
	}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	conn, err := s.dial(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return s.fail(ctx, b, "connect", err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	// net/smtp knows no context: a deadline in the past unblocks any read or write at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if stage, err := s.converse(conn, host, b); err != nil {
		return s.fail(ctx, b, stage, err)
	}
	return nil
}

// converse runs the SMTP conversation on conn and returns the stage that failed with its error.
func (s *smtpSender) converse(conn net.Conn, host string, b built) (string, error) {
	c, err := smtp.NewClient(conn, host) // reads the greeting
	if err != nil {
		return "greeting", err
	}
	if err := c.Hello(s.helo); err != nil {
		return "hello", err
	}
	// Hello only records the name; the first command sends EHLO, Extension included.
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if s.tls != nil {
			cfg = s.tls.Clone()
			cfg.ServerName = host
		}
		if err := c.StartTLS(cfg); err != nil {
			return "starttls", err
		}
	}
	if s.cfg.User != "" {
		if _, isTLS := c.TLSConnectionState(); !isTLS && !isLoopback(host) {
			return "auth", errInsecureAuth
		}
		ok, mechs := c.Extension("AUTH")
		if !ok {
			return "auth", errors.New("server offers no AUTH on this connection")
		}
		if !slices.Contains(strings.Fields(strings.ToUpper(mechs)), "PLAIN") {
			return "auth", fmt.Errorf("server offers no AUTH PLAIN (offers %q)", mechs)
		}
		if err := c.Auth(plainAuth{user: s.cfg.User, password: s.cfg.Password}); err != nil {
			return "auth", err
		}
	}
	if err := c.Mail(b.from); err != nil {
		return "mail from", err
	}
	if err := c.Rcpt(b.to); err != nil {
		return "rcpt to", err
	}
	w, err := c.Data()
	if err != nil {
		return "data", err
	}
	if _, err := w.Write(b.data); err != nil {
		return "data", err
	}
	if err := w.Close(); err != nil { // the server's verdict on the message
		return "end of data", err
	}
	_ = c.Quit() // accepted: a failing QUIT must not make the caller send it again
	return "", nil
}

// fail turns an error of the stage into the error Send returns: ErrPermanent for 5xx replies,
// ctx's error for a timeout or a cancellation, the error itself otherwise. Server text is
// scrubbed of the credentials and of the recipient's address (personal data: the error is logged
// and recorded in mail.failed.v1).
func (s *smtpSender) fail(ctx context.Context, b built, stage string, err error) error {
	prefix := fmt.Sprintf("mail: smtp %s: message %s: %s", s.cfg.Addr, b.id, stage)
	var reply *textproto.Error
	if errors.As(err, &reply) {
		msg := strings.ReplaceAll(s.scrub(reply.Msg), b.to, "[recipient]")
		scrubbed := &textproto.Error{Code: reply.Code, Msg: msg}
		if reply.Code >= 500 && reply.Code <= 599 {
			return fmt.Errorf("%s: %w: %w", prefix, scrubbed, ErrPermanent)
		}
		return fmt.Errorf("%s: %w", prefix, scrubbed)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", prefix, ctxErr)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection's deadline is ctx's, and may fire a moment before ctx's own timer.
		return fmt.Errorf("%s: %w", prefix, context.DeadlineExceeded)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// scrub removes the password, and the AUTH PLAIN blob that carries it, from server text.
func (s *smtpSender) scrub(text string) string {
	if s.cfg.Password == "" {
		return text
	}
	blob := base64.StdEncoding.EncodeToString(plainAuth{user: s.cfg.User, password: s.cfg.Password}.response())
	text = strings.ReplaceAll(text, blob, "[redacted]")
	return strings.ReplaceAll(text, s.cfg.Password, "[redacted]")
}

// plainAuth is AUTH PLAIN (RFC 4616) with an initial response. Unlike smtp.PlainAuth, which trusts
// only the names "localhost", "127.0.0.1" and "::1", it leaves the TLS-or-loopback decision to
// converse, made once on the host of Addr.
type plainAuth struct{ user, password string }

func (a plainAuth) response() []byte { return []byte("\x00" + a.user + "\x00" + a.password) }

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", a.response(), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected AUTH PLAIN challenge")
	}
	return nil, nil
}

// isLoopback reports whether host names this machine: "localhost" or a loopback IP.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// heloName is the name given in EHLO: this machine's host name when it is a plausible one, else
// "localhost".
func heloName() string {
	name, err := os.Hostname()
	if err != nil || name == "" || strings.ContainsAny(name, " \t\r\n") {
		return "localhost"
	}
	return name
}
