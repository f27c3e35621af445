package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/totp"
)

// RecoveryCodes is how many one-time recovery codes enabling two-factor authentication hands out.
const RecoveryCodes = 10

const totpIssuer = "CloudDB Manager"

func totpPendingSecret(id domain.UserID) string { return "totp-pending:" + string(id) }
func totpSecret(id domain.UserID) string        { return "totp:" + string(id) }

// StartTOTP is POST /me/totp/setup: a new secret, kept in the vault until a first code confirms
// it. Setup, enable and disable need a recent authentication of the session
// (domain.User.ConfirmRecentAuthentication): a stolen token cannot put its own second factor in
// front of the owner. Returns domain.ErrConflict when two-factor authentication is on already.
func (h *Identity) StartTOTP(ctx context.Context, who Caller, meta eventstore.Metadata) (secret, url string, err error) {
	id := who.User
	err = retry(ctx, func() error {
		user, err := h.recentlyAuthenticated(ctx, who)
		if err != nil {
			return err
		}
		if err := user.StartTOTPSetup(); err != nil {
			return err
		}
		if secret, url, err = totp.NewSecret(totpIssuer, user.Email()); err != nil {
			return err
		}
		if err := h.secrets.Put(ctx, totpPendingSecret(id), []byte(secret)); err != nil {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "user", user)}, Metadata: meta})
	})
	return secret, url, err
}

// EnableTOTP is POST /me/totp/enable: a valid code of the pending secret turns two-factor
// authentication on and returns the recovery codes, shown this once. Returns
// domain.ErrInvalidTOTP for a wrong code, domain.ErrConflict without a pending setup.
func (h *Identity) EnableTOTP(ctx context.Context, who Caller, code string, meta eventstore.Metadata) ([]string, error) {
	id := who.User
	if _, err := h.recentlyAuthenticated(ctx, who); err != nil {
		return nil, err
	}
	secret, err := h.secrets.Get(ctx, totpPendingSecret(id))
	if errors.Is(err, domain.ErrNotFound) {
		return nil, fmt.Errorf("no two-factor setup to confirm: %w", domain.ErrConflict)
	} else if err != nil {
		return nil, err
	}
	step, ok := totp.ValidateStep(string(secret), code, h.now())
	if !ok {
		return nil, domain.ErrInvalidTOTP
	}
	codes, err := totp.NewRecoveryCodes(RecoveryCodes)
	if err != nil {
		return nil, err
	}
	hashes := make([]string, len(codes))
	for i, c := range codes {
		hashes[i] = totp.HashRecoveryCode(c)
	}
	err = retry(ctx, func() error {
		user, err := h.recentlyAuthenticated(ctx, who)
		if err != nil {
			return err
		}
		if err := user.EnableTOTP(hashes, step); err != nil {
			return err
		}
		if err := h.secrets.Put(ctx, totpSecret(id), secret); err != nil {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "user", user)}, Metadata: meta})
	})
	if err != nil {
		return nil, err
	}
	return codes, h.secrets.Erase(ctx, totpPendingSecret(id))
}

// DisableTOTP is POST /me/totp/disable: a valid code (or recovery code) turns two-factor
// authentication off and shreds its secret.
func (h *Identity) DisableTOTP(ctx context.Context, who Caller, code string, meta eventstore.Metadata) error {
	id := who.User
	err := retry(ctx, func() error {
		user, err := h.recentlyAuthenticated(ctx, who)
		if err != nil {
			return err
		}
		if !user.TOTPEnabled() {
			return user.DisableTOTP()
		}
		if _, err := h.secondFactor(ctx, user, code); err != nil {
			return err
		}
		if err := user.DisableTOTP(); err != nil {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "user", user)}, Metadata: meta})
	})
	if err != nil {
		return err
	}
	return h.secrets.Erase(ctx, totpSecret(id))
}

// secondFactor checks a login's second factor: a 6-digit code of a time step not used before, or
// an unspent recovery code (which it spends). Returns the code's time step (0 for a recovery
// code), or domain.ErrInvalidTOTP.
func (h *Identity) secondFactor(ctx context.Context, user *domain.User, code string) (int64, error) {
	if len(code) == totp.Digits {
		secret, err := h.secrets.Get(ctx, totpSecret(user.ID()))
		if err != nil {
			return 0, err
		}
		step, ok := totp.ValidateStep(string(secret), code, h.now())
		if !ok {
			return 0, domain.ErrInvalidTOTP
		}
		return step, user.CheckTOTPStep(step)
	}
	return 0, user.UseRecoveryCode(totp.HashRecoveryCode(code))
}
