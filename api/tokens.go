package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/clouddbmanager/clouddb/domain"
)

const tokenIssuer = "clouddb"

// Tokens signs and verifies access tokens: HS256 JWTs naming the user, the session, the tenant
// and the role. The session is checked on every request too, so ending it voids its tokens at once.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	// verified are the claims of tokens whose signature was checked, by the token's exact text:
	// a client sends the same token with every request until it expires, and checking its
	// signature and decoding it again cost as much as the rest of authentication in Go. The
	// token's times and issuer are checked again at every use (valid), so the cache makes no
	// token live longer.
	verified struct {
		sync.Mutex
		m map[string]accessClaims
	}
	valid *jwt.Validator
}

// maxVerifiedTokens bounds the verified tokens kept; past it, the cache starts over.
const maxVerifiedTokens = 10_000

// NewTokens returns access tokens signed with secret (at least 32 bytes) that live ttl.
func NewTokens(secret []byte, ttl time.Duration, now func() time.Time) *Tokens {
	if len(secret) < 32 {
		panic("api: the JWT secret needs at least 32 bytes")
	}
	t := &Tokens{secret: secret, ttl: ttl, now: now}
	t.verified.m = map[string]accessClaims{}
	t.valid = jwt.NewValidator(t.validation()...)
	return t
}

// validation is what a token's claims must meet besides its signature.
func (t *Tokens) validation() []jwt.ParserOption {
	return []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithIssuer(tokenIssuer), jwt.WithTimeFunc(t.now)}
}

type accessClaims struct {
	jwt.RegisteredClaims
	SessionID  string `json:"sid"`
	TenantID   string `json:"tid,omitempty"`
	Role       string `json:"role,omitempty"`
	SuperAdmin bool   `json:"sa,omitempty"`
}

// Issue signs an access token for a session; it expires after the token lifetime or with the
// session, whichever comes first.
func (t *Tokens) Issue(s domain.SessionStarted) (token string, expiresIn time.Duration, err error) {
	now := t.now()
	expires := now.Add(t.ttl)
	if s.ExpiresAt.Before(expires) {
		expires = s.ExpiresAt
	}
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Subject:   string(s.UserID),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
		},
		SessionID: string(s.SessionID), TenantID: string(s.TenantID), Role: string(s.Role), SuperAdmin: s.SuperAdmin,
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.secret)
	return token, expires.Sub(now), err
}

// parse verifies an access token: HS256 only (no "none", no other key type), signed with our
// secret, issued by us, not expired. Every failure is domain.ErrUnauthenticated.
func (t *Tokens) parse(token string) (accessClaims, error) {
	t.verified.Lock()
	claims, ok := t.verified.m[token]
	t.verified.Unlock()
	if ok {
		if err := t.valid.Validate(&claims); err != nil {
			return accessClaims{}, fmt.Errorf("access token: %v: %w", err, domain.ErrUnauthenticated)
		}
		return claims, nil
	}
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.secret, nil },
		append(t.validation(), jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}))...)
	if err != nil {
		return accessClaims{}, fmt.Errorf("access token: %v: %w", err, domain.ErrUnauthenticated)
	}
	if _, err := domain.ParseSessionID(claims.SessionID); err != nil {
		return accessClaims{}, fmt.Errorf("access token without a session: %w", domain.ErrUnauthenticated)
	}
	t.verified.Lock()
	if len(t.verified.m) >= maxVerifiedTokens {
		clear(t.verified.m)
	}
	t.verified.m[strings.Clone(token)] = claims // not the request's header it was cut from, which may be a megabyte
	t.verified.Unlock()
	return claims, nil
}

// CSRF is the anti-forgery token of a session, for browsers that authenticate with the cookie: a
// MAC of the session id, so it needs no storage.
func (t *Tokens) CSRF(session domain.SessionID) string {
	mac := hmac.New(sha256.New, t.secret)
	mac.Write([]byte("csrf:" + string(session)))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (t *Tokens) validCSRF(session domain.SessionID, presented string) bool {
	return hmac.Equal([]byte(presented), []byte(t.CSRF(session)))
}
