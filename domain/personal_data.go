package domain

import (
	"fmt"
	"strings"
	"time"
)

// Personal data (email addresses, names, IP addresses, user agents) is sealed in the log with a
// key of the person it belongs to, its subject, so that deleting that key erases it without
// rewriting the log (crypto-shredding; docs/ARCHITECTURE.md, "Personal data and erasure").
//
// Subjects: "user-<id>" for an account (its registration, logins, sessions, mails and the
// IP and user agent of everything it does); "invitation-<id>" for the invitee of an invitation,
// who may have no account yet; the stream of an address without an account (AddressStream) for
// failed logins to it. Erasing a user erases the keys of the invitations it accepted too.

// UserPersonalDataErased: a super admin erased the user's personal data; the keys of the user and
// of Invitations (those the user accepted) are deleted. It holds no personal data itself.
type UserPersonalDataErased struct {
	By          UserID         `json:"by"`
	At          time.Time      `json:"at"`
	Invitations []InvitationID `json:"invitations,omitempty"`
}

func (UserPersonalDataErased) EventType() string { return "user.personal_data_erased.v1" }

// EndErased is the end of the sessions of a user whose personal data was erased.
const EndErased = "personal_data_erased"

// ErasureEnding is an erasure: every session of the user ends.
func ErasureEnding(user UserID, at time.Time) SessionEnding {
	return SessionEnding{User: user, Reason: EndErased, At: at}
}

// ErasePersonalData records the erasure of the user's personal data by a super admin, with the
// invitations whose invitee the user is, and revokes every API key of theirs (the caller ends the
// sessions: ErasureEnding). Returns ErrConflict when it is erased already (the caller treats that
// as done: an erasure is idempotent).
func (u *User) ErasePersonalData(by UserID, invitations []InvitationID, now time.Time) error {
	if u.erased {
		return fmt.Errorf("user %s: personal data erased already: %w", u.id, ErrConflict)
	}
	u.record(u, UserPersonalDataErased{By: by, At: now, Invitations: invitations})
	u.revokeAPIKeys(func(TenantID) bool { return true })
	return nil
}

// Erased reports whether the user's personal data has been erased.
func (u *User) Erased() bool { return u.erased }

// EmailClaimPrefix starts the claim key of an email address (EmailClaim): personal data, which the
// event store keeps as a keyed hash (eventstore.PersonalData.ClaimKey).
const EmailClaimPrefix = "email:"

// InvitationSubject is the subject of an invitee's personal data: the invitation.
func InvitationSubject(id InvitationID) string { return "invitation-" + string(id) }

// MailInvitationData is the key of a mail's Data that names the invitation an invitation mail is
// for: the subject of its address.
const MailInvitationData = "invitation_id"

// ErasedValue is what a personal field of subject at path (a payload's JSON path such as
// "email" or "data.name", or a metadata field) reads as once the subject's key is erased: empty
// for an IP address or a user agent, "erased-<subject>" ("erased-user-<id>") for the rest.
func ErasedValue(subject, path string) string {
	field := path[strings.LastIndexByte(path, '.')+1:]
	if field == "ip" || field == "user_agent" {
		return ""
	}
	return "erased-" + subject
}

// personalPaths are the JSON paths of the personal fields of each event type's payload: those
// SealPersonalData seals (TestPersonalPathsAreTheSealedOnes keeps the two in step).
var personalPaths = map[string][]string{
	UserRegistered{}.EventType():          {"email", "name"},
	UserLoginFailed{}.EventType():         {"ip", "user_agent"},
	AddressLoginFailed{}.EventType():      {"ip", "user_agent"},
	SessionStarted{}.EventType():          {"ip", "user_agent"},
	TenantInvitationCreated{}.EventType(): {"email"},
	MailRequested{}.EventType():           {"to", "data.name"},
}

// PersonalPaths returns the JSON paths of the personal fields of an event type's payload ("email",
// "data.name"); none for a type without personal data.
func PersonalPaths(eventType string) []string { return personalPaths[eventType] }

// SealPersonalData returns e with seal applied to each of its non-empty personal fields, and the
// subject they belong to ("" for an event without personal data, returned as it is). stream is
// the stream e is in. path is the field's JSON path in the payload. The event given is not
// changed (a mail's Data is copied).
func SealPersonalData(e Event, stream string, seal func(subject, path, value string) (string, error)) (Event, string, error) {
	var (
		subject string
		err     error
	)
	field := func(path string, v *string) {
		if err == nil && *v != "" {
			*v, err = seal(subject, path, *v)
		}
	}
	switch e := e.(type) {
	case UserRegistered:
		subject = e.UserID.Stream()
		field("email", &e.Email)
		field("name", &e.Name)
		return e, subject, err
	case UserLoginFailed:
		subject = stream
		field("ip", &e.IP)
		field("user_agent", &e.UserAgent)
		return e, subject, err
	case AddressLoginFailed:
		subject = stream
		field("ip", &e.IP)
		field("user_agent", &e.UserAgent)
		return e, subject, err
	case SessionStarted:
		subject = e.UserID.Stream()
		field("ip", &e.IP)
		field("user_agent", &e.UserAgent)
		return e, subject, err
	case TenantInvitationCreated:
		subject = InvitationSubject(e.InvitationID)
		field("email", &e.Email)
		return e, subject, err
	case MailRequested:
		switch {
		case e.UserID != "":
			subject = e.UserID.Stream()
		case e.Data[MailInvitationData] != "":
			subject = InvitationSubject(InvitationID(e.Data[MailInvitationData]))
		default:
			return e, "", nil
		}
		field("to", &e.To)
		if name := e.Data["name"]; name != "" {
			data := make(map[string]string, len(e.Data))
			for k, v := range e.Data {
				data[k] = v
			}
			field("data.name", &name)
			data["name"] = name
			e.Data = data
		}
		return e, subject, err
	}
	return e, "", nil
}

// PlatformPersonalDataSealed: migration 30 sealed the personal data that events recorded before the
// sealing held in clear, and re-chained each chain from its first rewritten event (docs/
// ARCHITECTURE.md, "Personal data and erasure"). The heads signed before that no longer match
// the new hashes: they are kept here, with the heads' hashes before and after, so that what an
// auditor holds from before can still be told apart from a tampering.
type PlatformPersonalDataSealed struct {
	At         time.Time        `json:"at"`
	Events     int              `json:"events"`
	Chains     []RechainedChain `json:"chains"`
	Superseded []SupersededHead `json:"superseded_heads,omitempty"`
}

// RechainedChain is a chain re-chained from FromSeq to HeadSeq; hashes in hex.
type RechainedChain struct {
	ChainID string `json:"chain_id"`
	FromSeq int64  `json:"from_seq"`
	HeadSeq int64  `json:"head_seq"`
	OldHead string `json:"old_head"`
	NewHead string `json:"new_head"`
}

// SupersededHead is a signed head that a re-chaining invalidated: hash in hex, signature in base64.
type SupersededHead struct {
	ChainID   string    `json:"chain_id"`
	ChainSeq  int64     `json:"chain_seq"`
	Hash      string    `json:"hash"`
	SignedAt  time.Time `json:"signed_at"`
	KeyID     string    `json:"key_id"`
	Signature string    `json:"signature"`
}

func (PlatformPersonalDataSealed) EventType() string { return "platform.personal_data_sealed.v1" }

// PersonalDataSealedStream is the stream of PlatformPersonalDataSealed.
const PersonalDataSealedStream = "platform-personal-data"
