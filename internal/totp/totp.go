// Package totp implements two-factor authentication with time-based one-time passwords (RFC 6238,
// as Google Authenticator and its peers use them: HMAC-SHA1, 6 digits, 30-second steps) and
// single-use recovery codes.
//
// Replay protection is the caller's job: a code stays valid for up to three steps (the current one
// and one either side), so remember, per user, the last time step accepted (ValidateStep returns
// it) and refuse any code whose step is not greater. Rate-limit attempts too: a 6-digit code falls
// to about a million guesses.
//
// The secret is what a stolen database would give away: store it sealed (internal/secrets), never
// in an event.
package totp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

const (
	// Period is the length of a time step.
	Period = 30 * time.Second
	// Digits is the number of digits of a code.
	Digits = 6
	// SecretSize is the size of a secret in bytes (160 bits, as RFC 4226 recommends).
	SecretSize = 20
	// Skew is the number of steps accepted either side of the current one.
	Skew = 1
)

var opts = totp.ValidateOpts{
	Period:    uint(Period / time.Second),
	Digits:    otp.DigitsSix,
	Algorithm: otp.AlgorithmSHA1,
}

// NewSecret returns a new random secret (base32, no padding) and its otpauth:// URL, which
// authenticator apps read from a QR code. issuer (the product, e.g. "CloudDB") and account (the
// user's email) are shown in the app; neither may be empty or contain a colon, which the URL uses
// as their separator.
func NewSecret(issuer, account string) (secret, otpauthURL string, err error) {
	if issuer == "" || account == "" || strings.Contains(issuer, ":") || strings.Contains(account, ":") {
		return "", "", fmt.Errorf("totp: issuer %q and account %q must be non-empty and contain no colon", issuer, account)
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      opts.Period,
		SecretSize:  SecretSize,
		Digits:      opts.Digits,
		Algorithm:   opts.Algorithm,
		Rand:        rand.Reader,
	})
	if err != nil {
		return "", "", fmt.Errorf("totp: generate: %w", err)
	}
	return key.Secret(), key.URL(), nil
}

// Validate reports whether code is the code of secret at now, or one step before or after it.
// code must be exactly Digits ASCII digits (no spaces). An invalid secret validates nothing.
// Validate does not protect against replay: see the package comment and ValidateStep.
func Validate(secret, code string, now time.Time) bool {
	_, ok := ValidateStep(secret, code, now)
	return ok
}

// ValidateStep is Validate that also returns the time step (Unix time / Period) whose code matched,
// for replay protection: accept a code only if its step is greater than the last one accepted for
// the same user, then remember it.
func ValidateStep(secret, code string, now time.Time) (step int64, ok bool) {
	if !wellFormed(code) {
		return 0, false
	}
	if now.Unix() < 0 {
		return 0, false
	}
	current := now.Unix() / int64(opts.Period)
	for _, s := range []int64{current, current - 1, current + 1} { // Skew = 1
		if s < 0 {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*int64(opts.Period), 0), opts)
		if err != nil {
			return 0, false // not base32
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return s, true
		}
	}
	return 0, false
}

func wellFormed(code string) bool {
	if len(code) != Digits {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// RecoveryAlphabet is the alphabet of recovery codes: lower-case letters and digits without those
// that are easily confused (0 o, 1 i l).
const RecoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// recoveryGroups × recoveryGroupSize characters drawn uniformly from 31 symbols: log2(31) × 12 ≈ 59
// bits per code.
const (
	recoveryGroups    = 3
	recoveryGroupSize = 4
)

// NewRecoveryCodes returns n distinct recovery codes like "k7mq-2xhd-p9sa", drawn from crypto/rand.
// Store only their hashes (HashRecoveryCode), show the codes once, and delete a hash when its code
// is used. Returns an error if n < 1.
func NewRecoveryCodes(n int) (codes []string, err error) {
	if n < 1 {
		return nil, errors.New("totp: the number of recovery codes must be at least 1")
	}
	seen := make(map[string]bool, n)
	codes = make([]string, 0, n)
	for len(codes) < n {
		code, err := newRecoveryCode()
		if err != nil {
			return nil, err
		}
		if !seen[code] { // a repeat is astronomically unlikely, but cheap to rule out
			seen[code] = true
			codes = append(codes, code)
		}
	}
	return codes, nil
}

func newRecoveryCode() (string, error) {
	var b strings.Builder
	size := big.NewInt(int64(len(RecoveryAlphabet)))
	for g := 0; g < recoveryGroups; g++ {
		if g > 0 {
			b.WriteByte('-')
		}
		for i := 0; i < recoveryGroupSize; i++ {
			n, err := rand.Int(rand.Reader, size) // uniform: no modulo bias
			if err != nil {
				return "", fmt.Errorf("totp: recovery code: %w", err)
			}
			b.WriteByte(RecoveryAlphabet[n.Int64()])
		}
	}
	return b.String(), nil
}

// NormalizeRecoveryCode returns code as it is hashed: lower-cased, without dashes or white space,
// so that "K7MQ 2XHD-P9SA" and "k7mq-2xhd-p9sa" are the same code.
func NormalizeRecoveryCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, code)
}

// HashRecoveryCode returns the hex SHA-256 of the normalized code, the form in which recovery codes
// are stored and looked up (an equality lookup on an index: no per-code salt).
//
// A fast, unsalted hash is enough here, unlike for passwords: recovery codes are not chosen by
// people but drawn uniformly at random with about 59 bits of entropy, so there is no dictionary
// and no shared guess that a salt or a slow hash would defend against; finding a code from its hash
// costs about 2^58 SHA-256 evaluations per code, and the codes are single-use and revocable.
func HashRecoveryCode(code string) string {
	sum := sha256.Sum256([]byte(NormalizeRecoveryCode(code)))
	return hex.EncodeToString(sum[:])
}
