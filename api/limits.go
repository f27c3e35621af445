package api

import (
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/ratelimit"
)

type limitKind int

const (
	limitLogin    limitKind = iota // POST /auth/login
	limitRegister                  // registration and password resets
	limitMail                      // requests that send a mail: resend verification, forgot password
)

// Limits are the request rate limits of the endpoints an attacker would hammer: per client IP,
// and per account (email) where the request names one.
type Limits struct {
	perIP      map[limitKind]*ratelimit.Limiter
	perAccount map[limitKind]*ratelimit.Limiter
}

// NewLimits returns the default limits. Per IP: 10 logins at once then one every 6 s, 10
// registrations or resets then one a minute, 5 mails then one a minute. Per account: 10 logins
// then one every 30 s (the lockout after 5 failures is the real wall), 3 mails then one every 5
// minutes.
func NewLimits() *Limits {
	return &Limits{
		perIP: map[limitKind]*ratelimit.Limiter{
			limitLogin:    ratelimit.New(rate.Every(6*time.Second), 10, time.Hour),
			limitRegister: ratelimit.New(rate.Every(time.Minute), 10, time.Hour),
			limitMail:     ratelimit.New(rate.Every(time.Minute), 5, time.Hour),
		},
		perAccount: map[limitKind]*ratelimit.Limiter{
			limitLogin: ratelimit.New(rate.Every(30*time.Second), 10, time.Hour),
			limitMail:  ratelimit.New(rate.Every(5*time.Minute), 3, time.Hour),
		},
	}
}

func rateLimited(retryAfter time.Duration) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
		Message:    "Too many requests; try again later.",
		Details:    map[string]any{"retry_after_s": int(retryAfter.Seconds())},
		RetryAfter: retryAfter}
}

// limited refuses a request over its client IP's limit before h sees it.
func (s *Server) limited(kind limitKind, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ok, retry := s.identity.Limits.perIP[kind].Allow(remoteIP(r), s.identity.Now()); !ok {
			s.writeError(w, r, rateLimited(retry))
			return
		}
		h(w, r)
	}
}

// accountLimit returns an error when requests naming this account exceed their limit.
func (s *Server) accountLimit(kind limitKind, email string) error {
	l, ok := s.identity.Limits.perAccount[kind]
	if !ok {
		return nil
	}
	key := domain.LegacyEmailKey(email)
	if normalized, err := domain.NormalizeEmail(email); err == nil {
		key = normalized // look-alike spellings of one address share its budget
	}
	if ok, retry := l.Allow(key, s.identity.Now()); !ok {
		return rateLimited(retry)
	}
	return nil
}
