// Package personaldata seals personal data in the event log with a key per person (its subject,
// domain.SealPersonalData) and opens it again, so that deleting a person's key erases their
// data from the log without rewriting it (crypto-shredding). It implements
// eventstore.PersonalData.
//
// A sealed value is the string "pd1:<subject>:<base64url(nonce || AES-256-GCM ciphertext || tag)>".
// The additional data binds it to its place: the event id and the field's JSON path for a payload
// field ("email", "data.name"), "metadata" and the field for the metadata's IP address and user
// agent (one metadata serves every event of an append), and the subject; a value copied to another
// event or field does not open.
//
// The keys are 32 random bytes each, kept in the secrets vault under "personal:<subject>" (sealed
// with the vault's key like every secret). Erasing a subject replaces its key with an empty
// tombstone, so that the key is gone and no later append creates a new one for that subject: what
// is appended for an erased subject is stored as its placeholder (domain.ErasedValue).
package personaldata

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/secrets"
)

// Prefix starts every sealed value.
const Prefix = "pd1:"

// KeyTTL is how long a process keeps a subject's key in memory before it reads the vault again: the
// longest another process may still open a subject's data after an erasure (the erasing process
// forgets the key at once).
const KeyTTL = 30 * time.Second

// maxCached bounds the keys kept in memory; past it the cache starts over.
const maxCached = 100_000

// ErrMalformed is returned for a value that starts with Prefix but is not a sealed value, or that
// does not open with its subject's key (tampered, or moved to another place).
var ErrMalformed = errors.New("personaldata: malformed or tampered sealed value")

// Vault is what the codec needs of the secrets vault.
type Vault interface {
	Create(ctx context.Context, id string, plaintext []byte) ([]byte, error)
	Get(ctx context.Context, id string) ([]byte, error)
	Put(ctx context.Context, id string, plaintext []byte) error
}

// Codec seals and opens personal data with the subjects' keys. It is safe for concurrent use.
type Codec struct {
	vault Vault
	now   func() time.Time

	mu        sync.Mutex
	keys      map[string]cachedKey
	claimsKey []byte                   // the HMAC key of claim keys, once read
	sealedMD  map[metadataKey]sealedMD // recent metadata sealings: a session's many appends seal once
	openedMD  map[string]openedValue   // recent metadata openings, by sealed value: read once per session
}

type openedValue struct {
	clear string
	at    time.Time
}

// metadataKey is a metadata's personal fields and their subject; sealedMD their sealed values.
type metadataKey struct{ subject, ip, userAgent string }

type sealedMD struct {
	ip, userAgent string
	at            time.Time
}

type cachedKey struct {
	aead   cipher.AEAD // nil when erased
	readAt time.Time
}

var _ eventstore.PersonalData = (*Codec)(nil)

// New returns a Codec keeping its keys in vault; now is the clock of the key cache (time.Now when nil).
func New(vault Vault, now func() time.Time) *Codec {
	if vault == nil {
		panic("personaldata: New with a nil vault")
	}
	if now == nil {
		now = time.Now
	}
	return &Codec{vault: vault, now: now, keys: map[string]cachedKey{}, sealedMD: map[metadataKey]sealedMD{},
		openedMD: map[string]openedValue{}}
}

func vaultID(subject string) string { return "personal:" + subject }

// key returns the subject's key (nil when erased), creating it when create is set and there is none.
// A subject without a key that is not to be created reads as erased: its key was deleted.
func (c *Codec) key(ctx context.Context, subject string, create bool) (cipher.AEAD, error) {
	now := c.now()
	c.mu.Lock()
	k, ok := c.keys[subject]
	c.mu.Unlock()
	if ok && (k.aead == nil || now.Sub(k.readAt) < KeyTTL) {
		return k.aead, nil // an erasure is for good: a tombstone stays cached
	}
	var raw []byte
	var err error
	if create {
		fresh := make([]byte, secrets.KeySize)
		if _, err := rand.Read(fresh); err != nil {
			return nil, fmt.Errorf("personaldata: new key: %w", err)
		}
		raw, err = c.vault.Create(ctx, vaultID(subject), fresh)
	} else {
		raw, err = c.vault.Get(ctx, vaultID(subject))
		if errors.Is(err, secrets.ErrNotFound) {
			raw, err = nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("personaldata: key of %s: %w", subject, err)
	}
	var aead cipher.AEAD
	if len(raw) > 0 {
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("personaldata: key of %s: %w", subject, err)
		}
		if aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("personaldata: key of %s: %w", subject, err)
		}
	}
	c.remember(subject, cachedKey{aead: aead, readAt: now})
	return aead, nil
}

func (c *Codec) remember(subject string, k cachedKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.keys) >= maxCached {
		c.keys = map[string]cachedKey{}
	}
	c.keys[subject] = k
}

// Erase deletes the keys of subjects for good (each replaced by a tombstone): what they sealed reads
// as its placeholder from now on, in this process at once and in others within KeyTTL.
func (c *Codec) Erase(ctx context.Context, subjects ...string) error {
	for _, subject := range subjects {
		if err := c.vault.Put(ctx, vaultID(subject), nil); err != nil {
			return fmt.Errorf("personaldata: erase the key of %s: %w", subject, err)
		}
		c.remember(subject, cachedKey{readAt: c.now()})
	}
	c.mu.Lock()
	c.sealedMD, c.openedMD = map[metadataKey]sealedMD{}, map[string]openedValue{}
	c.mu.Unlock()
	return nil
}

// additional is the additional data that binds a sealed value to its subject and place.
func additional(subject, scope, path string) []byte {
	return []byte("clouddb.pd1\x00" + subject + "\x00" + scope + "\x00" + path)
}

// seal seals value for subject at scope/path, or returns the placeholder when the subject is erased.
// Without a subject the value stays clear, but never looks sealed: a reader would try to open it.
func (c *Codec) seal(ctx context.Context, subject, scope, path, value string) (string, error) {
	if subject == "" && strings.HasPrefix(value, Prefix) {
		return "", nil
	}
	if subject == "" || value == "" {
		return value, nil
	}
	aead, err := c.key(ctx, subject, true)
	if err != nil {
		return "", err
	}
	if aead == nil {
		return domain.ErasedValue(subject, path), nil
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(value)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return "", fmt.Errorf("personaldata: nonce: %w", err)
	}
	out = aead.Seal(out, out, []byte(value), additional(subject, scope, path))
	return Prefix + subject + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// open opens a value sealed at scope/path; a value that is not sealed is returned as it is.
func (c *Codec) open(ctx context.Context, scope, path, value string) (string, error) {
	rest, ok := strings.CutPrefix(value, Prefix)
	if !ok {
		return value, nil
	}
	subject, encoded, ok := strings.Cut(rest, ":")
	if !ok || subject == "" {
		return "", fmt.Errorf("%w (%s)", ErrMalformed, path)
	}
	aead, err := c.key(ctx, subject, false)
	if err != nil {
		return "", err
	}
	if aead == nil {
		return domain.ErasedValue(subject, path), nil
	}
	sealed, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil || len(sealed) < aead.NonceSize()+aead.Overhead() {
		return "", fmt.Errorf("%w (%s of %s)", ErrMalformed, path, subject)
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], additional(subject, scope, path))
	if err != nil {
		return "", fmt.Errorf("%w (%s of %s)", ErrMalformed, path, subject)
	}
	return string(plain), nil
}

const metadataScope = "metadata"

// Seal implements eventstore.PersonalData.
func (c *Codec) Seal(ctx context.Context, eventID, stream string, e domain.Event) (domain.Event, string, error) {
	return domain.SealPersonalData(e, stream, func(subject, path, value string) (string, error) {
		return c.seal(ctx, subject, eventID, path, value)
	})
}

// SealMetadata implements eventstore.PersonalData. The same IP address and user agent of a subject
// seal to the same values for KeyTTL (the metadata's additional data names no event): the appends
// of one session pay for one sealing, and show only what their actor id shows already, that they
// are one person's.
func (c *Codec) SealMetadata(ctx context.Context, md eventstore.Metadata, subject string) (eventstore.Metadata, error) {
	k, now := metadataKey{subject, md.IP, md.UserAgent}, c.now()
	c.mu.Lock()
	cached, ok := c.sealedMD[k]
	c.mu.Unlock()
	if ok && now.Sub(cached.at) < KeyTTL {
		md.IP, md.UserAgent = cached.ip, cached.userAgent
		return md, nil
	}
	var err error
	if md.IP, err = c.seal(ctx, subject, metadataScope, "ip", md.IP); err != nil {
		return md, err
	}
	if md.UserAgent, err = c.seal(ctx, subject, metadataScope, "user_agent", md.UserAgent); err != nil {
		return md, err
	}
	c.mu.Lock()
	if len(c.sealedMD) >= maxCached {
		c.sealedMD = map[metadataKey]sealedMD{}
	}
	c.sealedMD[k] = sealedMD{md.IP, md.UserAgent, now}
	c.mu.Unlock()
	return md, nil
}

var sealedInJSON = []byte(`"` + Prefix)

// Open implements eventstore.PersonalData.
func (c *Codec) Open(ctx context.Context, env *eventstore.Envelope) error {
	var err error
	if env.Metadata.IP, err = c.openMetadata(ctx, "ip", env.Metadata.IP); err != nil {
		return err
	}
	if env.Metadata.UserAgent, err = c.openMetadata(ctx, "user_agent", env.Metadata.UserAgent); err != nil {
		return err
	}
	payload, err := c.OpenPayload(ctx, env.EventID, env.EventType, env.Payload)
	if err != nil {
		return err
	}
	env.Payload = payload
	return nil
}

// openMetadata opens a metadata field, remembering it for KeyTTL: the events of one session share
// their sealed metadata (SealMetadata).
func (c *Codec) openMetadata(ctx context.Context, field, value string) (string, error) {
	if !strings.HasPrefix(value, Prefix) {
		return value, nil
	}
	now := c.now()
	c.mu.Lock()
	cached, ok := c.openedMD[value]
	c.mu.Unlock()
	if ok && now.Sub(cached.at) < KeyTTL {
		return cached.clear, nil
	}
	clear, err := c.open(ctx, metadataScope, field, value)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.openedMD) >= maxCached {
		c.openedMD = map[string]openedValue{}
	}
	c.openedMD[value] = openedValue{clear, now}
	c.mu.Unlock()
	return clear, nil
}

// OpenPayload returns the JSON payload of event eventID of eventType with the sealed values of its
// personal fields (domain.PersonalPaths) opened, or their placeholders; a payload without any is
// returned as it is, without being parsed. Other fields are never opened, whatever they hold.
func (c *Codec) OpenPayload(ctx context.Context, eventID, eventType string, payload []byte) ([]byte, error) {
	paths := domain.PersonalPaths(eventType)
	if len(paths) == 0 || !bytes.Contains(payload, sealedInJSON) {
		return payload, nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(payload, &doc); err != nil {
		return nil, fmt.Errorf("personaldata: payload of %s: %w", eventID, err)
	}
	changed := false
	for _, path := range paths {
		ok, err := c.openAt(ctx, eventID, path, doc, strings.Split(path, "."))
		if err != nil {
			return nil, err
		}
		changed = changed || ok
	}
	if !changed {
		return payload, nil
	}
	return marshal(doc)
}

// openAt opens the string at the rest of path in doc, and reports whether it changed doc.
func (c *Codec) openAt(ctx context.Context, eventID, path string, doc map[string]json.RawMessage, rest []string) (bool, error) {
	raw, ok := doc[rest[0]]
	if !ok {
		return false, nil
	}
	if len(rest) > 1 {
		var inner map[string]json.RawMessage
		if json.Unmarshal(raw, &inner) != nil { // null, or not an object: nothing sealed there
			return false, nil
		}
		changed, err := c.openAt(ctx, eventID, path, inner, rest[1:])
		if err != nil || !changed {
			return false, err
		}
		b, err := marshal(inner)
		doc[rest[0]] = b
		return true, err
	}
	var value string
	if json.Unmarshal(raw, &value) != nil || !strings.HasPrefix(value, Prefix) {
		return false, nil
	}
	opened, err := c.open(ctx, eventID, path, value)
	if err != nil {
		return false, err
	}
	b, err := marshal(opened)
	doc[rest[0]] = b
	return true, err
}

// marshal encodes v as JSON without escaping <, > and &.
func marshal(v any) ([]byte, error) {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("personaldata: encode: %w", err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// claimsKeyID is the vault id of the platform's key for claim keys.
const claimsKeyID = "personal-claims:hmac-sha256"

// ClaimKeyPrefix starts the stored key of an email address's claim.
const ClaimKeyPrefix = "email-hmac:"

// ClaimKey implements eventstore.PersonalData: an email address's claim is stored as
// "email-hmac:" and the hex HMAC-SHA256 of the address under a platform key kept in the vault
// (created by the first process that needs it), so the claims table holds no address and an
// erasure has nothing there to erase (it releases the claim). Other keys stay as they are.
func (c *Codec) ClaimKey(ctx context.Context, key string) (string, error) {
	address, ok := strings.CutPrefix(key, domain.EmailClaimPrefix)
	if !ok {
		return key, nil
	}
	k, err := c.claimKey(ctx)
	if err != nil {
		return "", err
	}
	return ClaimKeyOf(k, address), nil
}

// ClaimKeyOf is the stored claim key of address under the platform key k.
func ClaimKeyOf(k []byte, address string) string {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(address))
	return ClaimKeyPrefix + hex.EncodeToString(m.Sum(nil))
}

func (c *Codec) claimKey(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	k := c.claimsKey
	c.mu.Unlock()
	if k != nil {
		return k, nil
	}
	fresh := make([]byte, secrets.KeySize)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("personaldata: new claims key: %w", err)
	}
	k, err := c.vault.Create(ctx, claimsKeyID, fresh)
	if err != nil {
		return nil, fmt.Errorf("personaldata: claims key: %w", err)
	}
	c.mu.Lock()
	c.claimsKey = k
	c.mu.Unlock()
	return k, nil
}
