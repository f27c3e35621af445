package totp_test

import (
	"encoding/base32"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"

	"github.com/clouddbmanager/clouddb/internal/totp"
)

var rfcOpts = pqtotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

func newSecret(t *testing.T) string {
	t.Helper()
	secret, _, err := totp.NewSecret("CloudDB", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := pqtotp.GenerateCodeCustom(secret, at, rfcOpts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewSecret(t *testing.T) {
	secret, rawURL, err := totp.NewSecret("CloudDB Manager", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatalf("secret %q is not base32: %v", secret, err)
	}
	if len(raw) != 20 {
		t.Errorf("secret has %d bytes, want 20 (160 bits)", len(raw))
	}

	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" {
		t.Errorf("URL %s: want otpauth://totp/...", rawURL)
	}
	if u.Path != "/CloudDB Manager:alice@example.com" {
		t.Errorf("URL label %q, want issuer:account", u.Path)
	}
	q := u.Query()
	for k, want := range map[string]string{
		"secret": secret, "issuer": "CloudDB Manager", "algorithm": "SHA1", "digits": "6", "period": "30",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("URL %s=%q, want %q", k, got, want)
		}
	}
	key, err := otp.NewKeyFromURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if key.Issuer() != "CloudDB Manager" || key.AccountName() != "alice@example.com" || key.Secret() != secret {
		t.Errorf("key from URL: issuer %q, account %q, secret %q", key.Issuer(), key.AccountName(), key.Secret())
	}

	other, _, err := totp.NewSecret("CloudDB Manager", "alice@example.com")
	if err != nil || other == secret {
		t.Errorf("two secrets: %q and %q, %v", secret, other, err)
	}

	for _, bad := range [][2]string{{"", "alice"}, {"CloudDB", ""}, {"Cloud:DB", "alice"}, {"CloudDB", "al:ice"}} {
		if _, _, err := totp.NewSecret(bad[0], bad[1]); err == nil {
			t.Errorf("NewSecret(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}

func TestValidate(t *testing.T) {
	secret := newSecret(t)
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	current := code(t, secret, now)

	t.Run("current code", func(t *testing.T) {
		if !totp.Validate(secret, current, now) {
			t.Fatalf("code %s for now does not validate", current)
		}
	})

	t.Run("skew", func(t *testing.T) {
		for _, d := range []time.Duration{-30 * time.Second, 30 * time.Second} {
			c := code(t, secret, now.Add(d))
			if !totp.Validate(secret, c, now) {
				t.Errorf("code from now%+v does not validate", d)
			}
		}
		for _, d := range []time.Duration{-90 * time.Second, 90 * time.Second, -60 * time.Second, 60 * time.Second, -time.Hour} {
			c := code(t, secret, now.Add(d))
			if c == current || c == code(t, secret, now.Add(-30*time.Second)) || c == code(t, secret, now.Add(30*time.Second)) {
				continue // one chance in a million that codes of different steps coincide
			}
			if totp.Validate(secret, c, now) {
				t.Errorf("code from now%+v validates", d)
			}
		}
	})

	t.Run("step", func(t *testing.T) {
		step := now.Unix() / 30
		for d, want := range map[time.Duration]int64{-30 * time.Second: step - 1, 0: step, 30 * time.Second: step + 1} {
			got, ok := totp.ValidateStep(secret, code(t, secret, now.Add(d)), now)
			if !ok || got != want {
				t.Errorf("ValidateStep of the code from now%+v = %d, %v; want %d, true", d, got, ok, want)
			}
		}
	})

	t.Run("RFC 6238 vector", func(t *testing.T) {
		// Appendix B, SHA1, T = 59 s: 94287082, of which a 6-digit code is the last six digits.
		rfcSecret := base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))
		if !totp.Validate(rfcSecret, "287082", time.Unix(59, 0)) {
			t.Error("RFC 6238 test vector does not validate")
		}
		if !totp.Validate(rfcSecret, "081804", time.Unix(1111111109, 0)) {
			t.Error("RFC 6238 test vector (T = 1111111109) does not validate")
		}
	})

	t.Run("malformed or wrong codes", func(t *testing.T) {
		wrong := []byte(current)
		wrong[5] = '0' + (wrong[5]-'0'+1)%10
		for _, c := range []string{
			string(wrong),
			current[:5],       // 5 digits
			current + "0",     // 7 digits
			"0" + current,     // 7 digits, leading zero
			current[:5] + "a", // non-digit
			current[:3] + " " + current[3:],
			" " + current,
			current + "\n",
			"١٢٣٤٥٦", // Arabic-Indic digits
			"",
			"-12345",
			"+12345",
		} {
			if totp.Validate(secret, c, now) {
				t.Errorf("code %q validates", c)
			}
		}
	})

	t.Run("another secret", func(t *testing.T) {
		other := newSecret(t)
		for code(t, other, now) == current { // one chance in a million
			other = newSecret(t)
		}
		if totp.Validate(other, current, now) {
			t.Error("a code validates with another secret")
		}
	})

	t.Run("invalid secret", func(t *testing.T) {
		if totp.Validate("not base32 !!", "123456", now) {
			t.Error("an invalid secret validates a code")
		}
	})

	t.Run("lower-case secret", func(t *testing.T) {
		if !totp.Validate(strings.ToLower(secret), current, now) {
			t.Error("the lower-cased secret does not validate the code")
		}
	})
}

var recoveryCodeForm = regexp.MustCompile(`^[` + totp.RecoveryAlphabet + `]{4}-[` + totp.RecoveryAlphabet + `]{4}-[` + totp.RecoveryAlphabet + `]{4}$`)

func TestNewRecoveryCodes(t *testing.T) {
	codes, err := totp.NewRecoveryCodes(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 {
		t.Fatalf("%d codes, want 10", len(codes))
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if !recoveryCodeForm.MatchString(c) {
			t.Errorf("code %q is not xxxx-xxxx-xxxx over the alphabet", c)
		}
		if strings.ContainsAny(c, "0o1il") {
			t.Errorf("code %q has an ambiguous character", c)
		}
		if seen[c] {
			t.Errorf("code %q repeats", c)
		}
		seen[c] = true
	}

	// Over many codes every symbol turns up: the alphabet is used whole.
	many, err := totp.NewRecoveryCodes(1000)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(many, "")
	for _, r := range totp.RecoveryAlphabet {
		if !strings.ContainsRune(all, r) {
			t.Errorf("symbol %q never appears in 1000 codes", r)
		}
	}
	unique := map[string]bool{}
	for _, c := range many {
		unique[c] = true
	}
	if len(unique) != len(many) {
		t.Errorf("%d distinct codes among %d", len(unique), len(many))
	}

	for _, n := range []int{0, -1} {
		if _, err := totp.NewRecoveryCodes(n); err == nil {
			t.Errorf("NewRecoveryCodes(%d) succeeded", n)
		}
	}
}

func TestHashRecoveryCode(t *testing.T) {
	h := totp.HashRecoveryCode("k7mq-2xhd-p9sa")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(h) {
		t.Fatalf("hash %q is not 64 hex digits", h)
	}
	if want := "147be83f3eb17926a54c8f0a7b3d83063c9f52de31eac81cd03e0f9744aa2845"; h != want { // sha256("k7mq2xhdp9sa")
		t.Errorf("hash = %s, want %s", h, want)
	}
	for _, variant := range []string{"k7mq2xhdp9sa", "K7MQ-2XHD-P9SA", "k7mq 2xhd p9sa", " k7mq-2xhd-p9sa\n", "K7mQ-2xHd p9Sa", "k7-mq-2x-hd-p9-sa"} {
		if got := totp.HashRecoveryCode(variant); got != h {
			t.Errorf("HashRecoveryCode(%q) differs from that of k7mq-2xhd-p9sa", variant)
		}
	}
	for _, other := range []string{"k7mq-2xhd-p9sb", "k7mq-2xhd-p9s", ""} {
		if totp.HashRecoveryCode(other) == h {
			t.Errorf("HashRecoveryCode(%q) equals that of k7mq-2xhd-p9sa", other)
		}
	}
}
