package commands_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/mail"
	"github.com/clouddbmanager/clouddb/internal/secrets"
	"github.com/clouddbmanager/clouddb/internal/testdb"
	"github.com/clouddbmanager/clouddb/projections"
)

// t0 is where every fixture's clock starts.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// password is a password every policy rule accepts.
const password = "Correct-Horse-42"

// bcryptCost is the cheapest cost bcrypt allows: the tests check decisions, not hashing speed.
const bcryptCost = 4

// clock is the settable clock of a fixture: handlers, the event store (recorded_at) and the mail
// reactor all read it, as they all read App.Now in production.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// fakeSender is a mail.Sender that keeps what it delivered. fail, when set, decides each call's
// outcome from the message and how many times Send was called for its ID (1 for the first).
// block, when set, is called before anything else, outside the lock.
type fakeSender struct {
	mu        sync.Mutex
	calls     map[string]int
	delivered []mail.Message
	fail      func(m mail.Message, call int) error
	block     func(m mail.Message)
}

func (s *fakeSender) Send(ctx context.Context, m mail.Message) error {
	s.mu.Lock()
	block := s.block
	s.mu.Unlock()
	if block != nil {
		block(m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[m.ID]++
	if s.fail != nil {
		if err := s.fail(m, s.calls[m.ID]); err != nil {
			return err
		}
	}
	s.delivered = append(s.delivered, m)
	return nil
}

func (s *fakeSender) setBlock(block func(m mail.Message)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block = block
}

func (s *fakeSender) setFail(fail func(m mail.Message, call int) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

// Calls is how many times Send was called for a message ID.
func (s *fakeSender) Calls(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// Delivered returns the delivered messages to one address (all with to == ""), oldest first.
func (s *fakeSender) Delivered(to string) []mail.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []mail.Message
	for _, m := range s.delivered {
		if to == "" || m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// fixture is a fresh management database with the identity side wired as cmd/clouddb wires it:
// a real event store, the projection runtime with every identity projector, the vault, the read
// side, the handlers and the mail reactor, all on one settable clock.
type fixture struct {
	db        *sql.DB
	store     *eventstore.Store
	runtime   *projections.Runtime
	vault     *secrets.Vault
	views     *projections.Views
	clock     *clock
	identity  *commands.Identity
	tenants   *commands.Tenants
	sender    *fakeSender
	mail      *commands.MailDelivery
	publicURL *url.URL
	stopped   bool // projections closed
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := testdb.New(t)
	clk := &clock{now: t0}
	registry := eventstore.NewDomainRegistry()
	store := eventstore.New(db, registry, eventstore.Options{Logger: quiet(), Clock: clk.Now})
	t.Cleanup(func() { store.Close() })
	runtime, err := projections.New(db, store, projections.Options{Logger: quiet(), Poll: 20 * time.Millisecond},
		projections.Streams{},
		projections.NewUsers(registry),
		projections.NewTenants(registry),
		projections.NewSessions(registry),
		projections.NewMailDeliveries(registry),
		projections.NewAPIKeys(registry),
		projections.NewInvitations(registry),
		projections.NewDatabases(registry),
		projections.NewQueryHistory(registry),
		projections.NewMemberQuotas(registry),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := runtime.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{}
	t.Cleanup(func() { f.stopProjections(t) })
	key := make([]byte, secrets.KeySize)
	rand.Read(key)
	vault, err := secrets.NewVault(db, key)
	if err != nil {
		t.Fatal(err)
	}
	publicURL, err := url.Parse("https://clouddb.example.test/app")
	if err != nil {
		t.Fatal(err)
	}
	views := projections.NewViews(db)
	sender := &fakeSender{}
	*f = fixture{
		db: db, store: store, runtime: runtime, vault: vault, views: views, clock: clk,
		identity:  commands.NewIdentity(store, vault, views, runtime, clk.Now, bcryptCost),
		tenants:   commands.NewTenants(store, runtime, clk.Now),
		sender:    sender,
		mail:      commands.NewMailDelivery(store, vault, db, sender, publicURL, clk.Now, quiet()),
		publicURL: publicURL,
	}
	// Fixtures create many tenants per person; TestFreeTenantsPerUser tests the limit itself.
	f.tenants.FreeTenantsPerUser = 1000
	return f
}

// stopProjections lets the projectors apply the whole log, then stops them. Waiting first is
// not cosmetic: Runtime.Close while a projector is in the middle of an event lets the watermill
// subscriber commit the batch transaction under the running handler (a data race on
// batchTx.applied that -race reports, and a commit of a half-applied event); see the report.
func (f *fixture) stopProjections(t *testing.T) {
	if f.stopped {
		return
	}
	f.stopped = true
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if head, err := f.store.Head(c); err != nil {
		t.Errorf("stop projections: %v", err)
	} else if err := f.runtime.WaitFor(c, head); err != nil {
		t.Errorf("stop projections: %v", err)
	}
	if err := f.runtime.Close(); err != nil {
		t.Errorf("close projections: %v", err)
	}
}

// ctx is a context for one test step, bounded so that a hang fails the test instead of the run.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// meta is the request metadata a test's commands carry.
var meta = eventstore.Metadata{RequestID: "req-test", IP: "192.0.2.7", UserAgent: "commands-test"}

// settle waits until every projector has applied the whole log.
func (f *fixture) settle(t *testing.T) {
	t.Helper()
	c := ctx(t)
	head, err := f.store.Head(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.runtime.WaitFor(c, head); err != nil {
		statuses, _ := f.runtime.Status(context.Background())
		t.Fatalf("projections do not catch up: %v; status %+v", err, statuses)
	}
}

// deliver lets the mail reactor send every mail that is due, once the read model shows them.
func (f *fixture) deliver(t *testing.T) {
	t.Helper()
	f.settle(t)
	for {
		n, err := f.mail.DeliverDue(ctx(t))
		if err != nil {
			t.Fatalf("DeliverDue: %v", err)
		}
		if n < 20 {
			return
		}
	}
}

var linkPattern = regexp.MustCompile(`(?m)^\s*(https?://\S+)\s*$`)

// link returns the one link of a delivered mail.
func link(t *testing.T, m mail.Message) *url.URL {
	t.Helper()
	found := linkPattern.FindAllStringSubmatch(m.Text, -1)
	if len(found) != 1 {
		t.Fatalf("mail %s to %s has %d links, want 1:\n%s", m.ID, m.To, len(found), m.Text)
	}
	u, err := url.Parse(found[0][1])
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// token delivers due mails and returns the token of the latest mail to email whose link opens
// path ("/verify", "/reset-password", "/invitations/accept").
func (f *fixture) token(t *testing.T, email, path string) string {
	t.Helper()
	f.deliver(t)
	mails := f.sender.Delivered(email)
	for i := len(mails) - 1; i >= 0; i-- {
		u := link(t, mails[i])
		if strings.HasSuffix(u.Path, path) {
			return u.Query().Get("token")
		}
	}
	t.Fatalf("no mail to %s with a link to %s among %d delivered", email, path, len(mails))
	return ""
}

// register signs up an account and returns its id.
func (f *fixture) register(t *testing.T, email string) domain.UserID {
	t.Helper()
	id, _, err := f.identity.Register(ctx(t), commands.Register{Email: email, Password: password, Name: "Test " + email, Meta: meta})
	if err != nil {
		t.Fatalf("register %s: %v", email, err)
	}
	return id
}

// user signs up an account and verifies it through the link of its verification mail.
func (f *fixture) user(t *testing.T, email string) domain.UserID {
	t.Helper()
	id := f.register(t, email)
	if err := f.identity.Verify(ctx(t), f.token(t, email, "/verify"), meta); err != nil {
		t.Fatalf("verify %s: %v", email, err)
	}
	return id
}

func (f *fixture) login(t *testing.T, email, pw, code string) commands.LoginResult {
	t.Helper()
	res, err := f.identity.Login(ctx(t), commands.Login{Email: email, Password: pw, TOTPCode: code, IP: "192.0.2.7", UserAgent: "commands-test", Meta: meta})
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return res
}

// caller logs in as email (with password) and returns the session that may change the account's
// credentials for domain.ReauthWindow.
func (f *fixture) caller(t *testing.T, id domain.UserID, email string) commands.Caller {
	t.Helper()
	return commands.Caller{User: id, Session: f.login(t, email, password, "").Session.SessionID}
}

// tenant creates a free tenant with creator as its tenant admin.
func (f *fixture) tenant(t *testing.T, creator domain.UserID) domain.TenantID {
	t.Helper()
	tenant, err := f.tenants.CreateTenant(ctx(t), commands.CreateTenant{Name: "Tenant of " + string(creator)[:8], Plan: domain.PlanFree, Creator: creator, Meta: meta})
	if err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	return tenant.ID()
}

// invite invites one address and fails the test unless it was invited.
func (f *fixture) invite(t *testing.T, tenant domain.TenantID, actor domain.UserID, email string, role domain.Role) domain.TenantInvitationCreated {
	t.Helper()
	invited, failures, err := f.identity.Invite(ctx(t), commands.Invite{Tenant: tenant, Actor: actor, ActorRole: domain.RoleTenantAdmin, Emails: []string{email}, Role: string(role), Meta: meta})
	if err != nil || len(failures) > 0 || len(invited) != 1 {
		t.Fatalf("invite %s: invited %v, failures %+v, err %v", email, invited, failures, err)
	}
	return invited[0].TenantInvitationCreated
}

// stream returns the event types of a stream, in order.
func (f *fixture) stream(t *testing.T, id string) ([]string, []eventstore.Envelope) {
	t.Helper()
	envs, err := f.store.ReadStream(ctx(t), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	types := make([]string, len(envs))
	for i, e := range envs {
		types[i] = e.EventType
	}
	return types, envs
}

func count(types []string, eventType string) int {
	n := 0
	for _, typ := range types {
		if typ == eventType {
			n++
		}
	}
	return n
}

// scalar runs a query that returns one integer.
func (f *fixture) scalar(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := f.db.QueryRowContext(ctx(t), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// totpCode is the code an authenticator app shows for secret at the fixture's time.
func (f *fixture) totpCode(t *testing.T, secret string) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, f.clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// race runs fn n times at once and returns the errors, by index.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// winners counts the racers of race that succeeded and fails t for any that lost with another
// error than loser; round names the race in the failure.
func winners(t *testing.T, round string, errs []error, loser error) int {
	t.Helper()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, loser):
			t.Errorf("%s, racer %d: %v, want %v", round, i, err, loser)
		}
	}
	return won
}

// isLocked reports whether err is an *AccountLockedError.
func isLocked(err error) bool {
	var locked *domain.AccountLockedError
	return errors.As(err, &locked)
}

func describe(errs []error) string {
	var b strings.Builder
	for i, err := range errs {
		fmt.Fprintf(&b, "\n  #%d: %v", i, err)
	}
	return b.String()
}
