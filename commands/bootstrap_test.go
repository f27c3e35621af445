package commands_test

import (
	"errors"
	"testing"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
)

// TestBootstrapExistingAccounts: Bootstrap "makes the account of email a verified super admin";
// a verified account keeps its password, an unverified one is taken over with the bootstrap
// password.
func TestBootstrapExistingAccounts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	t.Run("verified", func(t *testing.T) {
		id := f.user(t, "ops@example.com")
		got, err := f.identity.Bootstrap(ctx(t), "OPS@example.com", "Other-Password-1!")
		if err != nil || got != id {
			t.Fatalf("bootstrap: %s, %v; want %s", got, err, id)
		}
		f.settle(t)
		if u, _ := f.views.User(ctx(t), id); !u.SuperAdmin || u.Status != domain.UserActive {
			t.Errorf("after bootstrap: %+v, want an active super admin", u)
		}
		if res := f.login(t, "ops@example.com", password, ""); !res.Session.SuperAdmin {
			t.Error("the session of the bootstrapped admin is not a super admin's")
		}
	})

	t.Run("pending verification", func(t *testing.T) {
		// Someone signed up with the address before the first start, and never verified it.
		id := f.register(t, "admin@example.com")
		got, err := f.identity.Bootstrap(ctx(t), "admin@example.com", "Bootstrap-Password-1!")
		if err != nil || got != id {
			t.Fatalf("bootstrap: %s, %v; want %s", got, err, id)
		}
		f.settle(t)
		u, err := f.views.User(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if !u.SuperAdmin {
			t.Error("not a super admin after bootstrap")
		}
		if u.Status != domain.UserActive {
			t.Errorf("bootstrap left the account %s, not the documented verified super admin", u.Status)
		}
		// The address was never proved the registrant's: the operator's password is the one.
		if res, err := f.identity.Login(ctx(t), commands.Login{Email: "admin@example.com", Password: "Bootstrap-Password-1!"}); err != nil {
			t.Errorf("login with the bootstrap password: %v", err)
		} else if !res.Session.SuperAdmin {
			t.Error("the bootstrap admin's session is not a super admin's")
		}
		if _, err := f.identity.Login(ctx(t), commands.Login{Email: "admin@example.com", Password: password}); !errors.Is(err, domain.ErrInvalidCredentials) {
			t.Errorf("login with the registrant's password: %v, want ErrInvalidCredentials", err)
		}
		// The registrant's verification link is dead.
		if err := f.identity.Verify(ctx(t), f.token(t, "admin@example.com", "/verify"), meta); !errors.Is(err, domain.ErrExpired) {
			t.Errorf("the registrant's verification link after bootstrap: %v, want ErrExpired", err)
		}
	})
}
