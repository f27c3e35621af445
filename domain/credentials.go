package domain

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// NormalizeEmail validates an email address and returns the form under which it is unique, so
// that addresses a reader cannot tell apart are one account: trimmed, NFKC-normalised (fullwidth
// "ＡLICE" is "alice"), the local part lower-cased, the domain in the Unicode form of its IDNA
// lookup (upper case, fullwidth and "xn--" spellings of one domain are the same). A part that mixes
// Latin, Cyrillic or Greek letters (a Cyrillic "е" in "exаmple.com"), or that passes for an ASCII
// part it is not (a dotless "ı" in "victım", an all-Cyrillic "асе"), is refused as a look-alike.
// Returns a *ValidationError for the field "email" if the address is malformed, a look-alike or
// too long.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	invalid := NewValidationError("email", "must be an email address like name@example.com")
	if s == "" || len(s) > 254 || !utf8.ValidString(s) {
		return "", invalid
	}
	s = norm.NFKC.String(s)
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" {
		return "", invalid
	}
	at := strings.LastIndexByte(s, '@')
	local, domainPart := s[:at], s[at+1:]
	if len(local) > 64 || !strings.Contains(domainPart, ".") || strings.HasPrefix(domainPart, ".") || strings.HasSuffix(domainPart, ".") {
		return "", invalid
	}
	for _, r := range s {
		// net/mail lets non-ASCII controls and spaces through: "a\u00a0b@x.io" would be an
		// account that looks like "a b@x.io".
		if unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return "", invalid
		}
	}
	local = norm.NFKC.String(strings.ToLower(local))
	ascii, err := idna.Lookup.ToASCII(domainPart)
	if err != nil {
		return "", invalid
	}
	if domainPart, err = idna.Lookup.ToUnicode(ascii); err != nil {
		return "", invalid
	}
	for _, part := range append([]string{local}, strings.Split(domainPart, ".")...) {
		if mixesScripts(part) {
			return "", NewValidationError("email", "must not mix Latin, Cyrillic or Greek letters in one part: it would look like another address")
		}
		if reading, passes := asciiReading(part); passes {
			return "", NewValidationError("email", fmt.Sprintf("must not use letters that pass for Latin ones (a dotless ı, small capitals, a Cyrillic or Greek word that reads as Latin): %q would look like %q", part, reading))
		}
	}
	normalized := local + "@" + domainPart
	if len(normalized) > 254 {
		return "", invalid
	}
	return normalized, nil
}

// LegacyEmailKey is the form under which addresses were unique before NormalizeEmail normalised
// them (trimmed and lower-cased only): the claim key of accounts registered then, which a lookup
// still tries when it differs from the normalised form.
func LegacyEmailKey(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// lookAlikeScripts are the scripts whose letters pass for one another ("а" and "a", "ο" and "o").
var lookAlikeScripts = []*unicode.RangeTable{unicode.Latin, unicode.Cyrillic, unicode.Greek}

// mixesScripts reports whether s has letters of more than one of lookAlikeScripts.
func mixesScripts(s string) bool {
	seen := -1
	for _, r := range s {
		for i, script := range lookAlikeScripts {
			if unicode.Is(script, r) {
				if seen >= 0 && seen != i {
					return true
				}
				seen = i
			}
		}
	}
	return false
}

// asciiLookAlikes maps the letters a reader takes for an ASCII letter to that letter: Latin
// letters without a visible mark (NFKC leaves them as they are), and the Cyrillic and Greek
// letters shaped like Latin ones. Letters with a visible accent (é, ü, ł) are not in it.
var asciiLookAlikes = map[rune]rune{
	// Latin: dotless i and j, script a and g, iota, small capitals, dental click.
	'ı': 'i', 'ȷ': 'j', 'ɑ': 'a', 'ɡ': 'g', 'ɩ': 'i', 'ǀ': 'l',
	'ʙ': 'b', 'ɢ': 'g', 'ʜ': 'h', 'ɪ': 'i', 'ʟ': 'l', 'ɴ': 'n', 'ʀ': 'r', 'ʏ': 'y', 'ꜰ': 'f', 'ꜱ': 's',
	'ᴀ': 'a', 'ᴄ': 'c', 'ᴅ': 'd', 'ᴇ': 'e', 'ᴊ': 'j', 'ᴋ': 'k', 'ᴍ': 'm', 'ᴏ': 'o', 'ᴘ': 'p',
	'ᴛ': 't', 'ᴜ': 'u', 'ᴠ': 'v', 'ᴡ': 'w', 'ᴢ': 'z',
	// Cyrillic.
	'а': 'a', 'е': 'e', 'і': 'i', 'ј': 'j', 'к': 'k', 'о': 'o', 'р': 'p', 'с': 'c', 'у': 'y',
	'х': 'x', 'ѕ': 's', 'һ': 'h', 'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'ӏ': 'l', 'ү': 'y',
	// Greek.
	'α': 'a', 'ο': 'o', 'ρ': 'p', 'ν': 'v', 'ι': 'i', 'κ': 'k', 'υ': 'u', 'χ': 'x', 'γ': 'y',
	'ϲ': 'c', 'ϳ': 'j', 'ω': 'w', 'η': 'n', 'μ': 'u',
}

// asciiReading is the part a reader takes part for when that is not part itself, and whether
// it is so: part has a Latin letter of asciiLookAlikes ("victım" reads "victim"), or every
// letter of it is a Cyrillic or Greek one of asciiLookAlikes (an all-Cyrillic "асе" reads "ace").
// A Cyrillic or Greek part with a letter of its own ("сергей", "σοφία") is a word of its script.
func asciiReading(part string) (string, bool) {
	var reading strings.Builder
	latinLookAlike, ownLetter := false, false
	for _, r := range part {
		if ascii, ok := asciiLookAlikes[r]; ok {
			latinLookAlike = latinLookAlike || unicode.Is(unicode.Latin, r)
			r = ascii
		} else if r > unicode.MaxASCII {
			ownLetter = true
		}
		reading.WriteRune(r)
	}
	return reading.String(), reading.String() != part && (latinLookAlike || !ownLetter)
}

// ValidateName checks a person's or tenant's display name: 1 to 100 characters of printable
// Unicode after trimming. Returns the trimmed name.
func ValidateName(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", NewValidationError(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n < 1 || n > 100 {
		return "", NewValidationError(field, "must have 1 to 100 characters")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", NewValidationError(field, "must not contain control characters")
		}
	}
	return s, nil
}

var passwordRules = map[string]string{
	"length": "a password needs at least 8 characters (and at most 72 bytes)",
	"lower":  "a password needs a lower-case letter",
	"upper":  "a password needs an upper-case letter",
	"digit":  "a password needs a digit",
	"symbol": "a password needs a symbol (neither letter nor digit)",
}

// CheckPasswordStrength applies the password policy: at least 8 characters with lower case,
// upper case, a digit and a symbol; at most 72 bytes, bcrypt's limit. Returns a
// *WeakPasswordError naming the first rule broken.
func CheckPasswordStrength(password string) error {
	if utf8.RuneCountInString(password) < 8 || len(password) > 72 || !utf8.ValidString(password) {
		return &WeakPasswordError{Rule: "length"}
	}
	var lower, upper, digit, symbol bool
	for _, r := range password {
		switch {
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r):
			symbol = true
		}
	}
	for _, rule := range []struct {
		ok   bool
		name string
	}{{lower, "lower"}, {upper, "upper"}, {digit, "digit"}, {symbol, "symbol"}} {
		if !rule.ok {
			return &WeakPasswordError{Rule: rule.name}
		}
	}
	return nil
}

// RuleMessage is the sentence that explains a password rule.
func (e *WeakPasswordError) RuleMessage() string { return passwordRules[e.Rule] }
