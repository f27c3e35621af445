package mail

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

const (
	testUser     = "mailer"
	testPassword = "s3cret-Pa55"
)

// received is one message as the test server recorded it.
type received struct {
	from     string
	to       []string
	data     []byte
	tls      bool
	authUser string
}

// backend is a go-smtp server backend that records what it accepts. With user set it requires
// AUTH PLAIN; with failAt set it answers that command ("mail", "rcpt" or "data") with failWith.
type backend struct {
	user, password string
	failAt         string
	failWith       *gosmtp.SMTPError

	mu       sync.Mutex
	messages []received
	authTry  int
}

func (b *backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{be: b, cur: received{tls: isTLS}}, nil
}

func (b *backend) received() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.messages...)
}

func (b *backend) authAttempts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.authTry
}

type session struct {
	be  *backend
	cur received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		s.be.mu.Lock()
		s.be.authTry++
		s.be.mu.Unlock()
		if s.be.user == "" || username != s.be.user || password != s.be.password {
			return gosmtp.ErrAuthFailed // 535 5.7.8
		}
		s.cur.authUser = username
		return nil
	}), nil
}

func (s *session) check(stage string) error {
	if s.be.user != "" && s.cur.authUser == "" {
		return gosmtp.ErrAuthRequired
	}
	if s.be.failAt == stage {
		return s.be.failWith
	}
	return nil
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if err := s.check("mail"); err != nil {
		return err
	}
	s.cur.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if err := s.check("rcpt"); err != nil {
		return err
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := s.check("data"); err != nil {
		return err
	}
	s.cur.data = data
	s.be.mu.Lock()
	s.be.messages = append(s.be.messages, s.cur)
	s.be.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{tls: s.cur.tls, authUser: s.cur.authUser} }
func (s *session) Logout() error { return nil }

// startServer runs a real SMTP server on 127.0.0.1:0 until the test ends and returns its address.
// With cert set it offers STARTTLS.
func startServer(t *testing.T, be *backend, cert *tls.Certificate) string {
	t.Helper()
	srv := gosmtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // PLAIN over a clear connection, acceptable on loopback only
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = l.Close() // Close misses a listener that Serve has not registered yet
		<-done
	})
	return l.Addr().String()
}

// selfSigned returns a certificate for 127.0.0.1 and localhost and a pool that trusts it.
func selfSigned(t *testing.T) (*tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "clouddb test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// checkDelivered asserts that be holds exactly m, sent from testFrom, and returns it.
func checkDelivered(t *testing.T, be *backend, m Message) received {
	t.Helper()
	got := be.received()
	if len(got) != 1 {
		t.Fatalf("server recorded %d messages, want 1", len(got))
	}
	r := got[0]
	if r.from != "no-reply@clouddb.example" {
		t.Errorf("MAIL FROM %q", r.from)
	}
	if len(r.to) != 1 || r.to[0] != "zoe@example.com" {
		t.Errorf("RCPT TO %v", r.to)
	}
	msg := mustParse(t, r.data)
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "zoe@example.com" {
		t.Errorf("To = %v (%v)", to, err)
	}
	var dec mime.WordDecoder
	if subject, err := dec.DecodeHeader(msg.Header.Get("Subject")); err != nil || subject != m.Subject {
		t.Errorf("Subject = %q (%v), want %q", subject, err, m.Subject)
	}
	if got := msg.Header.Get("Message-Id"); got != "<"+m.ID+"@clouddb.example>" {
		t.Errorf("Message-ID = %q", got)
	}
	mediaType, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	body, enc := io.Reader(msg.Body), msg.Header.Get("Content-Transfer-Encoding")
	if mediaType == "multipart/alternative" {
		p, err := multipart.NewReader(msg.Body, params["boundary"]).NextRawPart()
		if err != nil {
			t.Fatal(err)
		}
		body, enc = p, p.Header.Get("Content-Transfer-Encoding")
	}
	if got := decodeBody(t, enc, body); got != crlf(m.Text) {
		t.Errorf("text body = %q, want %q", got, crlf(m.Text))
	}
	return r
}

func smtpConfig(addr string) SMTPConfig {
	return SMTPConfig{Addr: addr, From: testFrom, Timeout: 5 * time.Second}
}

func TestSMTPDelivers(t *testing.T) {
	be := &backend{}
	addr := startServer(t, be, nil)
	m := testMessage() // its text has a lone "." line: dot-stuffing must carry it through
	m.HTML = "<p>Bonjour Zoë</p>\n.\n"
	if err := NewSMTP(smtpConfig(addr)).Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := checkDelivered(t, be, m)
	if r.tls || r.authUser != "" {
		t.Errorf("tls=%v auth=%q on a plain server without credentials", r.tls, r.authUser)
	}
	want, err := Build(testFrom, m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, wantBody, _ := bytes.Cut(want, []byte("\r\n\r\n"))
	if _, gotBody, _ := bytes.Cut(r.data, []byte("\r\n\r\n")); !bytes.Equal(gotBody, wantBody) {
		t.Errorf("the server received a body that differs from Build's:\n%q\n%q", gotBody, wantBody)
	}
}

func TestSMTPAuthPlain(t *testing.T) {
	be := &backend{user: testUser, password: testPassword}
	addr := startServer(t, be, nil)

	cfg := smtpConfig(addr)
	cfg.User, cfg.Password = testUser, testPassword
	if err := NewSMTP(cfg).Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("Send with the right credentials: %v", err)
	}
	if r := checkDelivered(t, be, testMessage()); r.authUser != testUser {
		t.Errorf("server saw user %q", r.authUser)
	}

	cfg.Password = "wrong-" + testPassword
	err := NewSMTP(cfg).Send(context.Background(), testMessage())
	if !errors.Is(err, ErrPermanent) {
		t.Fatalf("Send with wrong credentials = %v, want ErrPermanent", err)
	}
	var reply *textproto.Error
	if !errors.As(err, &reply) || reply.Code != 535 {
		t.Errorf("error %v does not carry the 535 reply", err)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Errorf("error %q contains the password", err)
	}
	if n := len(be.received()); n != 1 {
		t.Errorf("server holds %d messages, want only the authenticated one", n)
	}

	cfg.User, cfg.Password = "", ""
	if err := NewSMTP(cfg).Send(context.Background(), testMessage()); !errors.Is(err, ErrPermanent) {
		t.Errorf("Send without credentials to a server that requires them = %v, want ErrPermanent (530/502)", err)
	}
}

func TestSMTPStartTLS(t *testing.T) {
	cert, roots := selfSigned(t)
	be := &backend{user: testUser, password: testPassword}
	addr := startServer(t, be, cert)

	cfg := smtpConfig(addr)
	cfg.User, cfg.Password = testUser, testPassword
	if err := newSMTP(cfg, &tls.Config{RootCAs: roots}).Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("Send over STARTTLS: %v", err)
	}
	if r := checkDelivered(t, be, testMessage()); !r.tls || r.authUser != testUser {
		t.Errorf("tls=%v auth=%q, want the message over TLS and authenticated", r.tls, r.authUser)
	}

	// A certificate the client does not trust: no delivery, no credentials sent, and a temporary
	// error (fixing the trust store makes the retry succeed).
	attempts := be.authAttempts()
	err := NewSMTP(cfg).Send(context.Background(), testMessage())
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("Send to an untrusted certificate = %v, want a temporary error", err)
	}
	if be.authAttempts() != attempts || len(be.received()) != 1 {
		t.Error("the client went on after a failed certificate check")
	}
}

func TestSMTPRefusesCredentialsInClear(t *testing.T) {
	be := &backend{user: testUser, password: testPassword}
	addr := startServer(t, be, nil)

	// The server is reached as mail.example.com, which is not a loopback name, and offers no
	// STARTTLS: the password must not go out.
	cfg := smtpConfig("mail.example.com:587")
	cfg.User, cfg.Password = testUser, testPassword
	s := newSMTP(cfg, nil)
	s.dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	err := s.Send(context.Background(), testMessage())
	if !errors.Is(err, errInsecureAuth) || errors.Is(err, ErrPermanent) {
		t.Fatalf("Send = %v, want the temporary errInsecureAuth", err)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Errorf("error %q contains the password", err)
	}
	if be.authAttempts() != 0 || len(be.received()) != 0 {
		t.Error("credentials or the message went out in clear")
	}

	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.0.0.2": true, "::1": true,
		"mail.example.com": false, "10.0.0.1": false, "::ffff:10.0.0.1": false, "": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestSMTPReplyCodes(t *testing.T) {
	for _, stage := range []string{"mail", "rcpt", "data"} {
		for _, tc := range []struct {
			code      int
			permanent bool
		}{
			{451, false}, // local error in processing: try again later
			{452, false}, // insufficient storage
			{550, true},  // mailbox unavailable
			{552, true},  // exceeded storage allocation
			{554, true},  // transaction failed
		} {
			t.Run(fmt.Sprintf("%s %d", stage, tc.code), func(t *testing.T) {
				be := &backend{failAt: stage, failWith: &gosmtp.SMTPError{
					Code:         tc.code,
					EnhancedCode: gosmtp.EnhancedCode{tc.code / 100, 0, 0},
					Message:      "test says no to <" + testMessage().To + ">",
				}}
				addr := startServer(t, be, nil)
				err := NewSMTP(smtpConfig(addr)).Send(context.Background(), testMessage())
				if err == nil {
					t.Fatal("Send succeeded")
				}
				if got := errors.Is(err, ErrPermanent); got != tc.permanent {
					t.Errorf("errors.Is(%v, ErrPermanent) = %v, want %v", err, got, tc.permanent)
				}
				var reply *textproto.Error
				if !errors.As(err, &reply) || reply.Code != tc.code {
					t.Errorf("error %v does not carry the %d reply", err, tc.code)
				}
				if strings.Contains(err.Error(), "token=") || strings.Contains(err.Error(), "Bonjour") {
					t.Errorf("error %q carries the body", err)
				}
				if strings.Contains(err.Error(), testMessage().To) || !strings.Contains(err.Error(), "[recipient]") {
					t.Errorf("error %q carries the recipient's address (personal data)", err)
				}
				if n := len(be.received()); n != 0 {
					t.Errorf("server recorded %d messages", n)
				}
			})
		}
	}
}

// silentServer accepts connections and never says a word: a hung mail server.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

func TestSMTPUnreachable(t *testing.T) {
	// A port nobody listens on: refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()

	// The refusal, not the minute's timeout, ends it.
	cfg := smtpConfig(closed)
	cfg.Timeout = time.Minute
	err = NewSMTP(cfg).Send(context.Background(), testMessage())
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("Send to a closed port = %v, want a temporary error", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send to a closed port = %v, want the refusal, not the timeout", err)
	}

	// A server that accepts and then hangs: the timeout ends the conversation, after 300 ms and
	// well within 30 s however busy the machine.
	cfg = smtpConfig(silentServer(t))
	cfg.Timeout = 300 * time.Millisecond
	start := time.Now()
	err = NewSMTP(cfg).Send(context.Background(), testMessage())
	elapsed := time.Since(start)
	if err == nil || errors.Is(err, ErrPermanent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send to a silent server = %v, want a temporary context.DeadlineExceeded", err)
	}
	if elapsed < cfg.Timeout || elapsed > 30*time.Second {
		t.Errorf("gave up after %v, want about %v", elapsed, cfg.Timeout)
	}
}

func TestSMTPHonoursContext(t *testing.T) {
	cfg := smtpConfig(silentServer(t))
	cfg.Timeout = time.Minute

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := NewSMTP(cfg).Send(ctx, testMessage())
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrPermanent) {
		t.Fatalf("Send = %v, want a temporary context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 30*time.Second { // the timeout is a minute
		t.Errorf("cancellation took %v", elapsed)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := NewSMTP(cfg).Send(ctx, testMessage()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send past ctx's deadline = %v, want context.DeadlineExceeded", err)
	}
}

func TestSMTPRejectsInvalidMessageWithoutConnecting(t *testing.T) {
	be := &backend{}
	addr := startServer(t, be, nil)
	m := testMessage()
	m.To = "zoe@example.com\r\nRCPT TO:<everyone@example.com>"
	if err := NewSMTP(smtpConfig(addr)).Send(context.Background(), m); !errors.Is(err, ErrInvalidMessage) || !errors.Is(err, ErrPermanent) {
		t.Fatalf("Send = %v, want ErrInvalidMessage and ErrPermanent", err)
	}
	if len(be.received()) != 0 {
		t.Error("an invalid message reached the server")
	}
}

func TestSMTPConfigHidesPassword(t *testing.T) {
	cfg := SMTPConfig{Addr: "mail:587", From: testFrom, User: testUser, Password: testPassword}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(format, cfg); strings.Contains(s, testPassword) {
			t.Errorf("%s prints the password: %s", format, s)
		}
	}
	if got := newSMTP(SMTPConfig{}, nil).cfg.Timeout; got != DefaultSMTPTimeout {
		t.Errorf("default timeout %v, want %v", got, DefaultSMTPTimeout)
	}
}
