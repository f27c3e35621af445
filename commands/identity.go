package commands

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Directory answers the lookups login needs from the read models.
type Directory interface {
	MembershipsOf(ctx context.Context, user domain.UserID) ([]domain.Membership, error)
	// InvitationsTo returns when each invitation of an address by any tenant was created since.
	InvitationsTo(ctx context.Context, email string, since time.Time) ([]time.Time, error)
}

// Read models that identity commands wait for before answering, so the caller's next request
// sees the change.
var identityReadModels = []string{"users", "sessions", "tenants", "api_keys", "invitations"}

// Identity handles sign-up, verification, login, sessions and passwords.
type Identity struct {
	events     EventStore
	secrets    Secrets
	directory  Directory
	readModels ReadModels
	now        func() time.Time
	// Passwords hashes and checks passwords; tests may wrap it to see which checks run.
	Passwords Passwords
	dummyHash string // compared against for unknown emails, so they take as long as wrong passwords
}

// Passwords hashes passwords and checks them against stored hashes.
type Passwords interface {
	Hash(password string) (string, error)
	Matches(hash, password string) bool
}

// BcryptPasswords are bcrypt hashes of cost Cost (CLOUDDB_BCRYPT_COST).
type BcryptPasswords struct{ Cost int }

func (b BcryptPasswords) Hash(password string) (string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), b.Cost)
	return string(hash), err
}

func (BcryptPasswords) Matches(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// NewIdentity returns the identity handlers. bcryptCost is CLOUDDB_BCRYPT_COST.
func NewIdentity(events EventStore, secrets Secrets, directory Directory, readModels ReadModels, now func() time.Time, bcryptCost int) *Identity {
	if events == nil || secrets == nil || directory == nil || readModels == nil || now == nil {
		panic("commands: NewIdentity needs all its dependencies")
	}
	passwords := BcryptPasswords{Cost: bcryptCost}
	// The dummy has the configured cost, as every account's hash made since: comparing against
	// it takes as long as against theirs.
	dummy, err := passwords.Hash(uuid.NewString())
	if err != nil {
		panic(fmt.Sprintf("commands: bcrypt cost %d: %v", bcryptCost, err))
	}
	return &Identity{events: events, secrets: secrets, directory: directory, readModels: readModels, now: now, Passwords: passwords, dummyHash: dummy}
}

func (h *Identity) hash(password string) (string, error) { return h.Passwords.Hash(password) }

// passwordMatches asks whether password matches a stored hash.
func (h *Identity) passwordMatches(password string) func(hash string) bool {
	return func(hash string) bool { return h.Passwords.Matches(hash, password) }
}

func (h *Identity) loadUser(ctx context.Context, id domain.UserID) (*domain.User, error) {
	return load(ctx, h.events, id.Stream(), domain.RebuildUser)
}

func (h *Identity) loadSession(ctx context.Context, id domain.SessionID) (*domain.Session, error) {
	return load(ctx, h.events, id.Stream(), domain.RebuildSession)
}

// append writes streams (and claims) and waits until the identity read models show them.
func (h *Identity) append(ctx context.Context, a eventstore.Append) error {
	res, err := h.events.Append(ctx, a)
	if err != nil {
		return err
	}
	return h.readModels.WaitFor(ctx, res.LastPosition, identityReadModels...)
}

// linkedUser loads the user a one-time link names; a link naming nobody is as dead as an expired
// one (domain.ErrExpired).
func (h *Identity) linkedUser(ctx context.Context, id domain.UserID) (*domain.User, error) {
	user, err := h.loadUser(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, domain.ErrExpired
	}
	return user, err
}

// userByEmail finds the account of an email through its claim; ok is false when there is none.
func (h *Identity) userByEmail(ctx context.Context, email string) (id domain.UserID, ok bool, err error) {
	holder, err := h.events.ClaimHolder(ctx, domain.EmailClaim(email))
	if err != nil || holder == "" {
		return "", false, err
	}
	id, err = domain.StreamUser(holder)
	return id, err == nil, err
}

// accountOf finds the account of a normalised address, or of raw (the address as the client
// typed it) under the claim key accounts had before addresses were normalised
// (domain.LegacyEmailKey): such accounts keep logging in with the address they registered. Both
// keys are read whenever they differ, found or not, so the reads do not tell which one held it.
func (h *Identity) accountOf(ctx context.Context, email, raw string) (id domain.UserID, ok bool, err error) {
	id, ok, err = h.userByEmail(ctx, email)
	if legacy := domain.LegacyEmailKey(raw); err == nil && legacy != email {
		legacyID, legacyOK, err := h.userByEmail(ctx, legacy)
		if !ok {
			return legacyID, legacyOK, err
		}
		return id, ok, err
	}
	return id, ok, err
}

// Register is POST /auth/register.
type Register struct {
	Email, Password, Name string
	Meta                  eventstore.Metadata
}

// Register creates an account pending verification and sends the verification mail. Returns a
// *domain.ValidationError for a bad email or name, a *domain.WeakPasswordError, or
// domain.ErrEmailTaken.
func (h *Identity) Register(ctx context.Context, cmd Register) (domain.UserID, string, error) {
	email, emailErr := domain.NormalizeEmail(cmd.Email)
	name, nameErr := domain.ValidateName("name", cmd.Name)
	if err := joinValidation(emailErr, nameErr); err != nil {
		return "", "", err
	}
	if err := domain.CheckPasswordStrength(cmd.Password); err != nil {
		return "", "", err
	}
	if legacy := domain.LegacyEmailKey(cmd.Email); legacy != email {
		// The claim below guards the normalised form; an account registered before addresses
		// were normalised holds the typed one.
		if _, taken, err := h.userByEmail(ctx, legacy); err != nil || taken {
			return "", "", cmp.Or(err, domain.ErrEmailTaken)
		}
	}
	hash, err := h.hash(cmd.Password)
	if err != nil {
		return "", "", err
	}
	id := domain.UserID(uuid.NewString())
	user := domain.RegisterUser(id, email, name, hash, false)
	token, tokenHash := newToken(string(id))
	if err := user.IssueVerification(tokenHash, h.now()); err != nil {
		return "", "", err
	}
	mail, err := h.requestMail(ctx, email, domain.MailVerification, token, id, map[string]string{"name": name})
	if err != nil {
		return "", "", err
	}
	cmd.Meta.ActorID = string(id)
	err = h.append(ctx, eventstore.Append{
		Streams:  []eventstore.Stream{stream(id.Stream(), "user", user), mailStream(mail)},
		Claims:   []eventstore.Claim{{Key: domain.EmailClaim(email), StreamID: id.Stream()}},
		Metadata: cmd.Meta,
	})
	if err != nil {
		h.forgetMail(mail)
		var taken *eventstore.ClaimTakenError
		if errors.As(err, &taken) {
			return "", "", domain.ErrEmailTaken
		}
		return "", "", err
	}
	return id, email, nil
}

// Verify redeems a verification link. Returns domain.ErrExpired for a wrong, used or expired one.
func (h *Identity) Verify(ctx context.Context, token string, meta eventstore.Metadata) error {
	return h.redeemLink(ctx, token, meta, func(user *domain.User, hash string) error { return user.Verify(hash, h.now()) })
}

// redeemLink redeems a mailed link (verification, unlock): redeem changes the user the link's
// token names, acting as that user. Returns domain.ErrExpired for a malformed token.
func (h *Identity) redeemLink(ctx context.Context, token string, meta eventstore.Metadata, redeem func(user *domain.User, hash string) error) error {
	rawID, hash, err := parseToken(token)
	if err != nil {
		return err
	}
	id := domain.UserID(rawID)
	return retry(ctx, func() error {
		user, err := h.linkedUser(ctx, id)
		if err != nil {
			return err
		}
		if err := redeem(user, hash); err != nil {
			return err
		}
		meta.ActorID = string(id)
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "user", user)}, Metadata: meta})
	})
}

// ResendVerification sends a new verification link if the email belongs to an unverified account;
// otherwise it does nothing, and says nothing (no account enumeration).
func (h *Identity) ResendVerification(ctx context.Context, email string, meta eventstore.Metadata) error {
	return h.mailLink(ctx, email, domain.MailVerification, meta, func(user *domain.User, tokenHash string) error {
		err := user.IssueVerification(tokenHash, h.now())
		if errors.Is(err, domain.ErrConflict) {
			return errNothingToSend // verified already
		}
		return err
	})
}

// ForgotPassword sends a password reset link if the email has an account; otherwise it does
// nothing, and says nothing.
func (h *Identity) ForgotPassword(ctx context.Context, email string, meta eventstore.Metadata) error {
	return h.mailLink(ctx, email, domain.MailPasswordReset, meta, func(user *domain.User, tokenHash string) error {
		user.IssuePasswordReset(tokenHash, h.now())
		return nil
	})
}

// SendUnlockLink mails the owner of a locked account a link that lifts the lock, unless one sent
// before is still unused and valid; for an address without an account, or one not locked, it does
// nothing and says nothing (domain.User.IssueUnlock).
func (h *Identity) SendUnlockLink(ctx context.Context, email string, meta eventstore.Metadata) error {
	return h.mailLink(ctx, email, domain.MailUnlock, meta, func(user *domain.User, tokenHash string) error {
		err := user.IssueUnlock(tokenHash, h.now())
		if errors.Is(err, domain.ErrConflict) {
			return errNothingToSend
		}
		return err
	})
}

// Unlock is POST /auth/unlock: an unlock link lifts the account's lock (user.unlocked.v1, how
// "link"); the owner then logs in with the password. Returns domain.ErrExpired for a wrong, used
// or expired link.
func (h *Identity) Unlock(ctx context.Context, token string, meta eventstore.Metadata) error {
	return h.redeemLink(ctx, token, meta, func(user *domain.User, hash string) error { return user.Unlock(hash, h.now()) })
}

// errNothingToSend tells mailLink that the account needs no link after all.
var errNothingToSend = errors.New("nothing to send")

// mailLink mails a one-time link of kind to the account of email, if there is one: issue records
// the link's hash on the user (or answers errNothingToSend), and the mail is requested in the same
// append.
func (h *Identity) mailLink(ctx context.Context, raw, kind string, meta eventstore.Metadata, issue func(*domain.User, string) error) error {
	email, err := domain.NormalizeEmail(raw)
	if err != nil {
		return err
	}
	id, ok, err := h.accountOf(ctx, email, raw)
	if err != nil || !ok {
		return err
	}
	return retry(ctx, func() error {
		user, err := h.loadUser(ctx, id)
		if err != nil {
			return err
		}
		token, tokenHash := newToken(string(id))
		if err := issue(user, tokenHash); errors.Is(err, errNothingToSend) {
			return nil
		} else if err != nil {
			return err
		}
		mail, err := h.requestMail(ctx, user.Email(), kind, token, id, map[string]string{"name": user.Name()})
		if err != nil {
			return err
		}
		err = h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "user", user), mailStream(mail)}, Metadata: meta})
		if err != nil {
			h.forgetMail(mail)
		}
		return err
	})
}

// ResetPassword redeems a reset link with a new password; every session of the user ends.
// Returns domain.ErrExpired, a *domain.WeakPasswordError or domain.ErrPasswordReused.
func (h *Identity) ResetPassword(ctx context.Context, token, newPassword string, meta eventstore.Metadata) error {
	rawID, tokenHash, err := parseToken(token)
	if err != nil {
		return err
	}
	if err := domain.CheckPasswordStrength(newPassword); err != nil {
		return err
	}
	newHash, err := h.hash(newPassword)
	if err != nil {
		return err
	}
	id := domain.UserID(rawID)
	return retry(ctx, func() error {
		user, err := h.linkedUser(ctx, id)
		if err != nil {
			return err
		}
		sessions, err := h.sessionsOf(ctx, user.Logins())
		if err != nil {
			return err
		}
		now := h.now()
		if err := user.ResetPassword(tokenHash, newHash, h.passwordMatches(newPassword), now); err != nil {
			return err
		}
		ended := endedStreams(domain.PasswordChangeEnding(id, now), sessions)
		meta.ActorID = string(id)
		return h.append(ctx, eventstore.Append{Streams: append([]eventstore.Stream{stream(id.Stream(), "user", user)}, ended...), Metadata: meta})
	})
}

// ChangePassword is PUT /me/password: the current password proves it is the user (a wrong one
// counts as a failed login), in a session
// that authenticated within domain.ReauthWindow (a stolen token alone cannot change it, nor can an
// API key); every session of the user ends, this one included, and every API key is revoked.
// Returns domain.ErrInvalidCredentials for a wrong current password,
// domain.ErrReauthenticationRequired or domain.ErrAPIKeyNotAllowed.
func (h *Identity) ChangePassword(ctx context.Context, who Caller, current, next string, meta eventstore.Metadata) error {
	if err := domain.CheckPasswordStrength(next); err != nil {
		return err
	}
	user, err := h.loadUser(ctx, who.User)
	if err != nil {
		return err
	}
	if err := user.ConfirmRecentAuthentication(who.Session, h.now()); err != nil {
		return err
	}
	checkedHash := user.PasswordHash()
	if !h.passwordMatches(current)(checkedHash) {
		return h.failLogin(ctx, h.account(who.User), "password", attemptOf(meta))
	}
	newHash, err := h.hash(next)
	if err != nil {
		return err
	}
	return retry(ctx, func() error {
		user, err := h.loadUser(ctx, who.User)
		if err != nil {
			return err
		}
		if user.PasswordHash() != checkedHash {
			return domain.ErrInvalidCredentials // changed meanwhile: current_password is no longer current
		}
		sessions, err := h.sessionsOf(ctx, user.Logins())
		if err != nil {
			return err
		}
		now := h.now()
		if err := user.ChangePassword(newHash, h.passwordMatches(next), "change", now); err != nil {
			return err
		}
		ended := endedStreams(domain.PasswordChangeEnding(who.User, now), sessions)
		return h.append(ctx, eventstore.Append{Streams: append([]eventstore.Stream{stream(who.User.Stream(), "user", user)}, ended...), Metadata: meta})
	})
}

// Caller is who asks for a change of their own account: the user, and the session the request
// came in (empty for an API key).
type Caller struct {
	User    domain.UserID
	Session domain.SessionID
}

// Reauthenticate is POST /me/reauth: the password, and the two-factor code when it is on, checked
// again in the caller's session, which may then change the account's credentials for
// domain.ReauthWindow. A wrong password counts as a failed login (five lock the account), so this
// is no way around the lockout. Returns domain.ErrAPIKeyNotAllowed, domain.ErrInvalidCredentials,
// domain.ErrTOTPRequired, domain.ErrInvalidTOTP or a *domain.AccountLockedError.
func (h *Identity) Reauthenticate(ctx context.Context, who Caller, password, totpCode string, meta eventstore.Metadata) error {
	if who.Session == "" {
		return domain.ErrAPIKeyNotAllowed
	}
	attempt := attemptOf(meta)
	user, err := h.loadUser(ctx, who.User)
	if err != nil {
		return err
	}
	if err := user.Locked(h.now()); err != nil {
		return err
	}
	checkedHash := user.PasswordHash()
	if !h.passwordMatches(password)(checkedHash) {
		return h.failLogin(ctx, h.account(who.User), "password", attempt)
	}
	if user.TOTPEnabled() && totpCode == "" {
		return domain.ErrTOTPRequired
	}
	err = retry(ctx, func() error {
		user, err := h.loadUser(ctx, who.User)
		if err != nil {
			return err
		}
		if user.PasswordHash() != checkedHash {
			return domain.ErrInvalidCredentials
		}
		var step int64
		if user.TOTPEnabled() {
			if step, err = h.secondFactor(ctx, user, totpCode); err != nil {
				return err
			}
		}
		if err := user.Reauthenticate(who.Session, step, h.now()); err != nil {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(who.User.Stream(), "user", user)}, Metadata: meta})
	})
	if errors.Is(err, domain.ErrInvalidTOTP) {
		return h.failLogin(ctx, h.account(who.User), "totp", attempt)
	}
	return err
}

// attemptOf is a password check outside login (reauthentication, a password change) as the
// failed login it counts as, from the request's address and user agent.
func attemptOf(meta eventstore.Metadata) Login {
	return Login{IP: meta.IP, UserAgent: meta.UserAgent, Meta: meta}
}

// ConfirmRecentAuthentication applies domain.User.ConfirmRecentAuthentication to a change that is
// not of the caller's own account: one of who belongs to or controls a tenant (the api route
// table marks them). Returns domain.ErrAPIKeyNotAllowed or domain.ErrReauthenticationRequired.
func (h *Identity) ConfirmRecentAuthentication(ctx context.Context, who Caller) error {
	_, err := h.recentlyAuthenticated(ctx, who)
	return err
}

// recentlyAuthenticated loads the caller's account for a change of its credentials, refused
// unless domain.User.ConfirmRecentAuthentication allows it.
func (h *Identity) recentlyAuthenticated(ctx context.Context, who Caller) (*domain.User, error) {
	user, err := h.loadUser(ctx, who.User)
	if err != nil {
		return nil, err
	}
	return user, user.ConfirmRecentAuthentication(who.Session, h.now())
}

func joinValidation(errs ...error) error {
	fields := map[string]string{}
	for _, err := range errs {
		var v *domain.ValidationError
		if errors.As(err, &v) {
			for k, msg := range v.Fields {
				fields[k] = msg
			}
		} else if err != nil {
			return err
		}
	}
	if len(fields) > 0 {
		return &domain.ValidationError{Fields: fields}
	}
	return nil
}
