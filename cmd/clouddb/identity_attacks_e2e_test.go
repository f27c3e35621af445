package main

// The identity attacks of issue 10 (items 7, 9, 10, 16, 17), each performed against a started
// server and MariaDB; docs/SECURITY.md "Identity" says what each defence is.

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Item 17: an address a reader cannot tell from another is the same account, or refused.
func TestE2ELookAlikeAddressesAreOneAccountOrRefused(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	local, password := "alice-"+randomHex(4), strongPassword()
	c.signUp(local+"@example.com", "Alice", password)

	// Fullwidth letters fold into the same address: the same account, not a second one.
	fullwidth := "Ａ" + strings.ToUpper(local[1:]) + "@ｅxample.com"
	c.do("POST", "/auth/register", map[string]any{"email": fullwidth, "password": strongPassword(), "name": "Mallory"}).expect(t, 409, "email_taken")
	c.login(fullwidth, password, "")

	// A Cyrillic "е" in the domain or an "а" in the local part is refused, not a new account.
	for _, lookAlike := range []string{local + "@\u0435xample.com", "\u0430" + local[1:] + "@example.com"} {
		r := c.do("POST", "/auth/register", map[string]any{"email": lookAlike, "password": strongPassword(), "name": "Mallory"}).expect(t, 400, "validation_failed")
		if r.str("error.details.fields.email") == "" {
			t.Errorf("register %q: no message on the email field: %s", lookAlike, r.body)
		}
	}
	// A punycode spelling of a Unicode domain is that domain.
	unicodeLocal := "jose-" + randomHex(4)
	c.register(unicodeLocal+"@exämple.com", "José", strongPassword())
	c.do("POST", "/auth/register", map[string]any{"email": unicodeLocal + "@xn--exmple-cua.com", "password": strongPassword(), "name": "Mallory"}).expect(t, 409, "email_taken")
}

// Item 17: an account registered before addresses were normalised holds its claim under the
// lower-cased form it was typed in; it still logs in, and its look-alike cannot register beside it.
func TestE2ELegacyClaimKeepsLoggingIn(t *testing.T) {
	env := startE2E(t, e2eOptions{})
	c := env.client("127.0.0.1")
	legacy, password := "ｌegacy-"+randomHex(4)+"@example.com", strongPassword()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), 4)
	if err != nil {
		t.Fatal(err)
	}
	id := domain.UserID(uuid.NewString())
	user := domain.RegisterUser(id, legacy, "Legacy", string(hash), true)
	if _, err := env.app.Store.Append(context.Background(), eventstore.Append{
		Streams: []eventstore.Stream{{ID: id.Stream(), Type: "user", Events: user.PendingEvents()}},
		Claims:  []eventstore.Claim{{Key: domain.EmailClaim(legacy), StreamID: id.Stream()}},
	}); err != nil {
		t.Fatal(err)
	}
	c.login(legacy, password, "")
	normalized, err := domain.NormalizeEmail(legacy)
	if err != nil || normalized == legacy {
		t.Fatalf("test setup: %q normalises to %q, %v", legacy, normalized, err)
	}
	c.do("POST", "/auth/register", map[string]any{"email": legacy, "password": strongPassword(), "name": "Mallory"}).expect(t, 409, "email_taken")
}
