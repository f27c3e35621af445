package commands

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Bootstrap makes the account of email a verified super admin, creating it with password if it
// does not exist, and taking it over with password if it exists unverified (see
// domain.User.ClaimForBootstrap). Restarts and processes starting at once all end with one such account: the
// email claim lets one create it, and the others then find it.
func (h *Identity) Bootstrap(ctx context.Context, email, password string) (domain.UserID, error) {
	email, err := domain.NormalizeEmail(email)
	if err != nil {
		return "", err
	}
	if err := domain.CheckPasswordStrength(password); err != nil {
		return "", err
	}
	meta := eventstore.Metadata{UserAgent: "clouddb bootstrap"}
	for attempt := 0; attempt < 5; attempt++ {
		id, exists, err := h.userByEmail(ctx, email)
		if err != nil {
			return "", err
		}
		if exists {
			hash, err := h.hash(password)
			if err != nil {
				return "", err
			}
			return id, retry(ctx, func() error {
				user, err := h.loadUser(ctx, id)
				if err != nil {
					return err
				}
				user.ClaimForBootstrap(hash, h.now())
				if user.GrantSuperAdmin(); len(user.PendingEvents()) == 0 {
					return nil
				}
				meta.ActorID = string(id)
				return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "user", user)}, Metadata: meta})
			})
		}
		hash, err := h.hash(password)
		if err != nil {
			return "", err
		}
		id = domain.UserID(uuid.NewString())
		user := domain.RegisterUser(id, email, "Administrator", hash, true)
		user.GrantSuperAdmin()
		meta.ActorID = string(id)
		err = h.append(ctx, eventstore.Append{
			Streams:  []eventstore.Stream{stream(id.Stream(), "user", user)},
			Claims:   []eventstore.Claim{{Key: domain.EmailClaim(email), StreamID: id.Stream()}},
			Metadata: meta,
		})
		var taken *eventstore.ClaimTakenError
		if !errors.As(err, &taken) {
			return id, err
		}
		// Another process created it a moment ago: grant on that account.
	}
	return "", errors.New("bootstrap: the admin account keeps changing; try again")
}
