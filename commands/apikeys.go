package commands

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// APIKeyPrefix starts every API key, so a bearer token shows what it is.
const APIKeyPrefix = "cdb_"

// CreateAPIKey is POST /me/api-keys: a key for the user in the session's tenant (none when the
// session has no tenant), shown this once; the log keeps only its hash. expiresAt is optional
// and must be in the future. Like every change of credentials it needs a recent authentication
// of the session (domain.User.ConfirmRecentAuthentication): a key cannot mint keys.
func (h *Identity) CreateAPIKey(ctx context.Context, who Caller, tenant domain.TenantID, name string, expiresAt *time.Time, meta eventstore.Metadata) (domain.APIKeyID, string, error) {
	name, err := domain.ValidateName("name", name)
	if err != nil {
		return "", "", err
	}
	if expiresAt != nil && !expiresAt.After(h.now()) {
		return "", "", domain.NewValidationError("expires_at", "must be in the future")
	}
	id := domain.APIKeyID(uuid.NewString())
	secret := make([]byte, 32)
	rand.Read(secret)
	encoded := base64.RawURLEncoding.EncodeToString(secret)
	key := APIKeyPrefix + strings.ReplaceAll(string(id), "-", "") + "_" + encoded
	user := who.User
	err = retry(ctx, func() error {
		u, err := h.recentlyAuthenticated(ctx, who)
		if err != nil {
			return err
		}
		created := domain.UserAPIKeyCreated{KeyID: id, Name: name, TenantID: tenant, Hash: hashSecret(encoded), CreatedAt: h.now().UTC(), ExpiresAt: expiresAt}
		if err := u.CreateAPIKey(created); err != nil {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(user.Stream(), "user", u)}, Metadata: meta})
	})
	return id, key, err
}

// RevokeAPIKey is DELETE /me/api-keys/{id}. Returns domain.ErrNotFound for a key that is not the
// user's or revoked already.
func (h *Identity) RevokeAPIKey(ctx context.Context, user domain.UserID, id domain.APIKeyID, meta eventstore.Metadata) error {
	return retry(ctx, func() error {
		u, err := h.loadUser(ctx, user)
		if err != nil {
			return err
		}
		if err := u.RevokeAPIKey(id); err != nil {
			return err
		}
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(user.Stream(), "user", u)}, Metadata: meta})
	})
}

// ParseAPIKey splits a key made by CreateAPIKey into its id and the hash the read model keeps.
// Returns domain.ErrUnauthenticated for anything malformed.
func ParseAPIKey(key string) (domain.APIKeyID, string, error) {
	rest, ok := strings.CutPrefix(key, APIKeyPrefix)
	rawID, secret, ok2 := strings.Cut(rest, "_")
	parsed, err := uuid.Parse(rawID)
	if !ok || !ok2 || err != nil || len(rawID) != 32 || len(secret) != 43 {
		return "", "", fmt.Errorf("malformed API key: %w", domain.ErrUnauthenticated)
	}
	return domain.APIKeyID(parsed.String()), hashSecret(secret), nil
}
