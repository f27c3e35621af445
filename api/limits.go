package api

import (
	"context"
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
	perIP      map[limitKind]limiter
	perAccount map[limitKind]limiter
}

// limiter applies one limit to each key separately (internal/ratelimit).
type limiter interface {
	Allow(ctx context.Context, key string, now time.Time) (bool, time.Duration, error)
}

// NewSharedLimits returns the default limits, kept in buckets every process shares, so that they
// hold for the whole deployment. Per IP: 10 logins at once then one every 6 s, 10 registrations or
// resets then one a minute, 5 mails then one a minute. Per account: 10 logins then one every 30 s
// (the lockout after 5 failures is the real wall), 3 mails then one every 5 minutes.
func NewSharedLimits(b *ratelimit.Buckets) *Limits {
	return newLimits(func(name string, r rate.Limit, burst int) limiter { return b.Limit(name, r, burst) })
}

// NewLimits returns the default limits of NewSharedLimits, each process keeping its own.
func NewLimits() *Limits {
	return newLimits(func(_ string, r rate.Limit, burst int) limiter { return local{ratelimit.New(r, burst, time.Hour)} })
}

func newLimits(limit func(name string, r rate.Limit, burst int) limiter) *Limits {
	return &Limits{
		perIP: map[limitKind]limiter{
			limitLogin:    limit("ip:login", rate.Every(6*time.Second), 10),
			limitRegister: limit("ip:register", rate.Every(time.Minute), 10),
			limitMail:     limit("ip:mail", rate.Every(time.Minute), 5),
		},
		perAccount: map[limitKind]limiter{
			limitLogin: limit("account:login", rate.Every(30*time.Second), 10),
			limitMail:  limit("account:mail", rate.Every(5*time.Minute), 3),
		},
	}
}

// local is a limiter of this process alone.
type local struct{ *ratelimit.Limiter }

func (l local) Allow(_ context.Context, key string, now time.Time) (bool, time.Duration, error) {
	ok, retry := l.Limiter.Allow(key, now)
	return ok, retry, nil
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
		ok, retry, err := s.identity.Limits.perIP[kind].Allow(r.Context(), remoteIP(r), s.identity.Now())
		if err == nil && !ok {
			err = rateLimited(retry)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r)
	}
}

// accountLimitTimeout bounds the check of an account's limit.
const accountLimitTimeout = 10 * time.Second

// accountLimit returns an error when requests naming this account exceed their limit, or the
// limit cannot be checked.
func (s *Server) accountLimit(kind limitKind, email string) error {
	l, ok := s.identity.Limits.perAccount[kind]
	if !ok {
		return nil
	}
	key := domain.LegacyEmailKey(email)
	if normalized, err := domain.NormalizeEmail(email); err == nil {
		key = normalized // look-alike spellings of one address share its budget
	}
	ctx, cancel := context.WithTimeout(context.Background(), accountLimitTimeout) // the callers have no request context at hand
	defer cancel()
	ok, retry, err := l.Allow(ctx, key, s.identity.Now())
	if err == nil && !ok {
		err = rateLimited(retry)
	}
	return err
}
