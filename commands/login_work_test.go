package commands_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// work counts what a command asked of the event store and of bcrypt.
type work struct {
	mu                     sync.Mutex
	claims, reads, appends int
	comparisons            int
	comparedCosts          []int
	appendedStreamTypes    []string
	commands.EventStore    // the real store, which does the work
	passwords              commands.Passwords
}

func (w *work) ClaimHolder(ctx context.Context, key string) (string, error) {
	w.count(&w.claims)
	return w.EventStore.ClaimHolder(ctx, key)
}

func (w *work) ReadStream(ctx context.Context, id string, after int64) ([]eventstore.Envelope, error) {
	w.count(&w.reads)
	return w.EventStore.ReadStream(ctx, id, after)
}

func (w *work) Append(ctx context.Context, a eventstore.Append) (eventstore.Appended, error) {
	w.mu.Lock()
	w.appends++
	for _, s := range a.Streams {
		w.appendedStreamTypes = append(w.appendedStreamTypes, fmt.Sprintf("%d events", len(s.Events)))
	}
	w.mu.Unlock()
	return w.EventStore.Append(ctx, a)
}

func (w *work) Hash(password string) (string, error) { return w.passwords.Hash(password) }

func (w *work) Matches(hash, password string) bool {
	cost, _ := bcrypt.Cost([]byte(hash))
	w.mu.Lock()
	w.comparisons++
	w.comparedCosts = append(w.comparedCosts, cost)
	w.mu.Unlock()
	return w.passwords.Matches(hash, password)
}

func (w *work) count(n *int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	*n++
}

func (w *work) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("%d claim reads, %d stream reads, %d appends %v, %d bcrypt comparisons at costs %v",
		w.claims, w.reads, w.appends, w.appendedStreamTypes, w.comparisons, w.comparedCosts)
}

// countedIdentity is the fixture's identity handlers over a store and password checks that count
// their work.
func countedIdentity(f *fixture) (*commands.Identity, *work) {
	w := &work{EventStore: f.store}
	id := commands.NewIdentity(w, f.vault, f.views, f.runtime, f.clock.Now, bcryptCost)
	w.passwords = id.Passwords
	id.Passwords = w
	return id, w
}

// Issue 10 item 16: a login for an address without an account does the work of a wrong password
// for an account — the same reads, bcrypt comparisons against hashes of the configured cost, and
// appends — and locks alike, so neither its time nor its answer tells whether the account exists.
func TestLoginOfAnUnknownAddressDoesTheWorkOfAWrongPassword(t *testing.T) {
	f := newFixture(t)
	known := "known@example.com"
	f.user(t, known)
	unknown := "nobody@example.com"

	attempt := func(email string) (string, error) {
		id, w := countedIdentity(f)
		_, err := id.Login(ctx(t), commands.Login{Email: email, Password: "Wrong-Guess-1!", IP: "192.0.2.9", UserAgent: "attacker", Meta: meta})
		return w.String(), err
	}
	for i := 1; i <= domain.MaxLoginFailures+1; i++ {
		knownWork, knownErr := attempt(known)
		unknownWork, unknownErr := attempt(unknown)
		if knownWork != unknownWork {
			t.Errorf("attempt %d: a wrong password cost %s; an unknown address %s", i, knownWork, unknownWork)
		}
		var knownLock, unknownLock *domain.AccountLockedError
		errors.As(knownErr, &knownLock)
		errors.As(unknownErr, &unknownLock)
		switch {
		case i < domain.MaxLoginFailures:
			if !errors.Is(knownErr, domain.ErrInvalidCredentials) || !errors.Is(unknownErr, domain.ErrInvalidCredentials) {
				t.Errorf("attempt %d: %v and %v, want invalid credentials for both", i, knownErr, unknownErr)
			}
		case knownLock == nil || unknownLock == nil || !knownLock.Until.Equal(unknownLock.Until) || knownLock.Started != unknownLock.Started:
			t.Errorf("attempt %d: %#v and %#v, want the same lock for both", i, knownErr, unknownErr)
		}
	}
	// The comparison is against a hash of the configured cost, whatever the address.
	for _, email := range []string{known, unknown} {
		if spent, _ := attempt(email); !strings.Contains(spent, fmt.Sprintf("1 bcrypt comparisons at costs [%d]", bcryptCost)) {
			t.Errorf("a login of %s: %s, want one comparison at cost %d", email, spent, bcryptCost)
		}
	}
}
