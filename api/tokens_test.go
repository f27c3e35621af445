package api

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
)

// A token is verified once and its claims kept, but each use checks its expiry again, and a token
// that differs from a verified one in a single character is verified on its own.
func TestVerifiedTokensExpireAndForgeriesAreRefused(t *testing.T) {
	now := time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)
	tokens := NewTokens([]byte(strings.Repeat("s", 32)), 15*time.Minute, func() time.Time { return now })
	session := domain.SessionID(uuid.NewString())
	token, _, err := tokens.Issue(domain.SessionStarted{SessionID: session, UserID: domain.UserID(uuid.NewString()),
		ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		claims, err := tokens.parse(token)
		if err != nil || claims.SessionID != string(session) {
			t.Fatalf("use %d: %+v %v", i+1, claims, err)
		}
	}

	head, signature, _ := strings.Cut(token[strings.Index(token, ".")+1:], ".")
	flipped := []byte(signature)
	flipped[0] ^= 1
	forged := token[:strings.Index(token, ".")+1] + head + "." + string(flipped)
	if _, err := tokens.parse(forged); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("a token with a changed signature: %v, want unauthenticated", err)
	}
	other := NewTokens([]byte(strings.Repeat("o", 32)), 15*time.Minute, func() time.Time { return now })
	foreign, _, _ := other.Issue(domain.SessionStarted{SessionID: session, ExpiresAt: now.Add(time.Hour)})
	if _, err := tokens.parse(foreign); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("a token signed with another secret: %v, want unauthenticated", err)
	}

	now = now.Add(15 * time.Minute)
	if _, err := tokens.parse(token); !errors.Is(err, domain.ErrUnauthenticated) {
		t.Fatalf("a verified token past its expiry: %v, want unauthenticated", err)
	}
}

// A verified token is kept as a copy of its text, not as the part of the request it was cut from:
// a bearer token with a megabyte of trailing spaces (TrimSpace keeps the header's memory), or a
// cookie among large ones, would otherwise keep the whole header alive in the cache, and the
// cache's bound of 10,000 tokens would be one of 10 GB.
func TestVerifiedTokensDoNotKeepTheRequestsMemory(t *testing.T) {
	now := time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)
	tokens := NewTokens([]byte(strings.Repeat("s", 32)), 15*time.Minute, func() time.Time { return now })
	token, _, err := tokens.Issue(domain.SessionStarted{SessionID: domain.SessionID(uuid.NewString()),
		UserID: domain.UserID(uuid.NewString()), ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	header := token + strings.Repeat(" ", 1<<20)
	if _, err := tokens.parse(strings.TrimSpace(header)); err != nil {
		t.Fatal(err)
	}
	for key := range tokens.verified.m {
		if unsafe.StringData(key) == unsafe.StringData(header) {
			t.Fatalf("the cache keeps a token of %d bytes in a string of %d", len(key), len(header))
		}
	}
}
