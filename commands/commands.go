// Package commands holds one handler per command: load the aggregate from the event log, let the
// domain decide, append what it recorded. Handlers carry the actor's request metadata onto every
// event and retry a decision that lost an optimistic-concurrency race.
package commands

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/backoffs"
)

// EventStore is what handlers need of the event log (*eventstore.Store).
type EventStore interface {
	Append(ctx context.Context, a eventstore.Append) (eventstore.Appended, error)
	ReadStream(ctx context.Context, streamID string, afterVersion int64) ([]eventstore.Envelope, error)
	ClaimHolder(ctx context.Context, key string) (string, error)
	Registry() *eventstore.Registry
}

// Secrets keeps what must never enter the log (*secrets.Vault).
type Secrets interface {
	Put(ctx context.Context, id string, plaintext []byte) error
	Get(ctx context.Context, id string) ([]byte, error)
	Erase(ctx context.Context, id string) error
}

// ReadModels lets a handler wait until the read models show its append (*projections.Runtime).
type ReadModels interface {
	WaitFor(ctx context.Context, position int64, names ...string) error
}

// load reads a stream and decodes its events for an aggregate's Rebuild function.
func load[A any](ctx context.Context, store EventStore, stream string, rebuild func([]domain.Event, int64) (A, error)) (A, error) {
	var zero A
	envs, err := store.ReadStream(ctx, stream, 0)
	if err != nil {
		return zero, err
	}
	history := make([]domain.Event, len(envs))
	for i, env := range envs {
		if history[i], err = store.Registry().Decode(env); err != nil {
			return zero, err
		}
	}
	var version int64
	if len(envs) > 0 {
		version = envs[len(envs)-1].StreamVersion
	}
	return rebuild(history, version)
}

// retry runs decide again when its append lost a race: the decision is made again on the state
// that won, up to 12 times. Concurrent deciders on one stream would keep colliding in the same
// group commit, so each retry first waits a random moment under a growing bound (1 ms, 2 ms, …
// 64 ms).
func retry(ctx context.Context, decide func() error) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := decide()
		if err != nil && !errors.Is(err, domain.ErrVersionConflict) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(backoffs.Exponential(time.Millisecond/2, 32*time.Millisecond, 1)),
		backoff.WithMaxTries(12), backoff.WithMaxElapsedTime(0))
	return err
}

// pendingStream is the append of an aggregate's recorded events to its stream.
type recorder interface {
	Version() int64
	PendingEvents() []domain.Event
}

func stream(id, typ string, agg recorder) eventstore.Stream {
	return eventstore.Stream{ID: id, Type: typ, ExpectedVersion: agg.Version(), Events: agg.PendingEvents()}
}

// newToken returns a one-time link token "<id>.<secret>" for the aggregate id, and the hash the
// aggregate keeps. The id lets the handler find the aggregate without a lookup table.
func newToken(id string) (token, hash string) {
	secret := make([]byte, 32)
	rand.Read(secret)
	encoded := base64.RawURLEncoding.EncodeToString(secret)
	return strings.ReplaceAll(id, "-", "") + "." + encoded, hashSecret(encoded)
}

// parseToken splits a token made by newToken. Returns ErrExpired for anything malformed: a
// link that was tampered with is as dead as an expired one.
func parseToken(token string) (id, hash string, err error) {
	rawID, secret, ok := strings.Cut(token, ".")
	parsed, perr := uuid.Parse(rawID)
	if !ok || perr != nil || len(rawID) != 32 || len(secret) != 43 {
		return "", "", fmt.Errorf("malformed token: %w", domain.ErrExpired)
	}
	return parsed.String(), hashSecret(secret), nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
