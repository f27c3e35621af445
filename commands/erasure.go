package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// PersonalDataKeys deletes the keys that seal subjects' personal data in the log
// (internal/personaldata.Codec).
type PersonalDataKeys interface {
	Erase(ctx context.Context, subjects ...string) error
}

// ErasureDirectory finds, in the read models, what else of a person's is kept.
type ErasureDirectory interface {
	// InvitationsOfPerson returns the invitations the user accepted or that were sent to email.
	InvitationsOfPerson(ctx context.Context, user domain.UserID, email string) ([]domain.InvitationID, error)
	// MailsTo returns the mails sent or to be sent to email.
	MailsTo(ctx context.Context, email string) ([]domain.MailID, error)
}

// ErasedReadModels rewrites in place, in the read models that show personal data, the rows of an
// erased person once the keys of user and of invitations are gone (returning the names of those
// read models), or those of the failed logins to an address (its stream) once its key is gone, to
// the values a rebuild writes then (the placeholders) (projections.Runtime).
type ErasedReadModels interface {
	ErasePerson(ctx context.Context, user domain.UserID, invitations []domain.InvitationID) ([]string, error)
	EraseAddress(ctx context.Context, address string) error
}

// Erasure is DELETE /admin/users/{id}/personal-data (docs/ARCHITECTURE.md, "Personal data and
// erasure").
type Erasure struct {
	identity   *Identity
	keys       PersonalDataKeys
	directory  ErasureDirectory
	readModels ErasedReadModels
	// ForgetMails removes the kept copies of mails (the .eml files of the development mail path);
	// nil when mails are not kept.
	ForgetMails func(ids []domain.MailID) (removed int, err error)
	log         *slog.Logger
}

// NewErasure returns the erasure handler.
func NewErasure(identity *Identity, keys PersonalDataKeys, directory ErasureDirectory, readModels ErasedReadModels, log *slog.Logger) *Erasure {
	if identity == nil || keys == nil || directory == nil || readModels == nil || log == nil {
		panic("commands: NewErasure needs its dependencies")
	}
	return &Erasure{identity: identity, keys: keys, directory: directory, readModels: readModels, log: log}
}

// ErasureResult is what an erasure did.
type ErasureResult struct {
	AlreadyErased bool
	SessionsEnded int
	KeysErased    int
	MailsRemoved  int
	ReadModels    []string
}

// ErasePersonalData erases the personal data of user: it deletes the key of the failed logins to
// the user's address and rewrites their rows (first: once recorded, the address is no longer
// known), records user.personal_data_erased.v1 (ending the user's sessions, revoking the API keys
// and releasing the email's claim in the same append), deletes the keys of the user and of the
// invitations whose invitee the user is, removes the kept copies of the user's mails and rewrites
// the person's rows in the read models that show personal data (no rebuild: the cost is the
// person's data, not the log's). It is idempotent: a second call records nothing and does the
// rest again (finishing an erasure a failure cut short). Returns domain.ErrNotFound for an unknown
// user, and domain.ErrConflict when one of the read models is being rebuilt (retry).
func (h *Erasure) ErasePersonalData(ctx context.Context, by, user domain.UserID, meta eventstore.Metadata) (ErasureResult, error) {
	var res ErasureResult
	u, err := h.identity.loadUser(ctx, user)
	if err != nil {
		return res, err
	}
	res.AlreadyErased = u.Erased()
	email := u.Email() // clear until the erasure: what finds the person's invitations and mails
	var invitations []domain.InvitationID
	var mails []domain.MailID
	if !res.AlreadyErased {
		if invitations, err = h.directory.InvitationsOfPerson(ctx, user, email); err != nil {
			return res, err
		}
		if mails, err = h.directory.MailsTo(ctx, email); err != nil {
			return res, err
		}
		address := domain.AddressStream(email)
		if err := h.keys.Erase(ctx, address); err != nil {
			return res, err
		}
		if err := h.readModels.EraseAddress(ctx, address); err != nil {
			return res, fmt.Errorf("erasure of %s: read models: %w", user, err)
		}
		res.KeysErased++
		if res.SessionsEnded, err = h.record(ctx, by, user, invitations, meta); err != nil {
			return res, err
		}
	}
	subjects := []string{user.Stream()}
	recorded, err := h.erasedInvitations(ctx, user) // this erasure's, or the first one's
	if err != nil {
		return res, err
	}
	for _, id := range recorded {
		subjects = append(subjects, domain.InvitationSubject(id))
	}
	if err := h.keys.Erase(ctx, subjects...); err != nil {
		return res, err
	}
	res.KeysErased += len(subjects)
	if h.ForgetMails != nil && len(mails) > 0 {
		if res.MailsRemoved, err = h.ForgetMails(mails); err != nil {
			return res, fmt.Errorf("erasure of %s: mails: %w", user, err)
		}
	}
	if res.ReadModels, err = h.readModels.ErasePerson(ctx, user, recorded); err != nil {
		return res, fmt.Errorf("erasure of %s: read models: %w", user, err)
	}
	h.log.InfoContext(ctx, "personal data erased", "user_id", user, "by", by, "keys", res.KeysErased,
		"sessions_ended", res.SessionsEnded, "mails_removed", res.MailsRemoved)
	return res, nil
}

// record appends the erasure with the ends of the user's sessions and the release of the email's
// claim; a user erased meanwhile (a concurrent erasure) records nothing.
func (h *Erasure) record(ctx context.Context, by, user domain.UserID, invitations []domain.InvitationID, meta eventstore.Metadata) (sessionsEnded int, err error) {
	err = retry(ctx, func() error {
		u, sessions, err := h.identity.userWithSessions(ctx, user)
		if err != nil {
			return err
		}
		now := h.identity.now()
		email := u.Email()
		if err := u.ErasePersonalData(by, invitations, now); errors.Is(err, domain.ErrConflict) {
			return nil
		} else if err != nil {
			return err
		}
		ended := endedStreams(domain.ErasureEnding(user, now), sessions)
		releases := []eventstore.Claim{{Key: domain.EmailClaim(email), StreamID: user.Stream()}}
		if legacy := domain.LegacyEmailKey(email); legacy != email {
			releases = append(releases, eventstore.Claim{Key: domain.EmailClaim(legacy), StreamID: user.Stream()})
		}
		streams := append([]eventstore.Stream{stream(user.Stream(), "user", u)}, ended...)
		if err := h.identity.append(ctx, eventstore.Append{Streams: streams, Releases: releases, Metadata: meta}); err != nil {
			return err
		}
		sessionsEnded = len(ended)
		return nil
	})
	return sessionsEnded, err
}

// erasedInvitations returns the invitations an erasure of user recorded already.
func (h *Erasure) erasedInvitations(ctx context.Context, user domain.UserID) ([]domain.InvitationID, error) {
	envs, err := h.identity.events.ReadStream(ctx, user.Stream(), 0)
	if err != nil {
		return nil, err
	}
	var ids []domain.InvitationID
	for _, env := range envs {
		if env.EventType != (domain.UserPersonalDataErased{}).EventType() {
			continue
		}
		e, err := h.identity.events.Registry().Decode(env)
		if err != nil {
			return nil, err
		}
		ids = append(ids, e.(domain.UserPersonalDataErased).Invitations...)
	}
	return ids, nil
}
