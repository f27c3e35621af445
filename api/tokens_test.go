package api

import (
	"errors"
	"strings"
	"testing"
	"time"

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
