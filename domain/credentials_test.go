package domain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

func TestNormalizeEmail(t *testing.T) {
	local64 := strings.Repeat("a", 64)
	// A 254-byte address: 64 + 1 + 189 (three 61-byte labels, two dots, ".com" = 61*3+2+4 = 189).
	domain189 := strings.Repeat("b", 61) + "." + strings.Repeat("c", 61) + "." + strings.Repeat("d", 61) + ".com"
	addr254 := local64 + "@" + domain189
	if len(addr254) != 254 {
		t.Fatalf("test setup: len(addr254) = %d", len(addr254))
	}
	addr255 := local64 + "@" + "x" + domain189

	tests := []struct {
		name string
		in   string
		want string // "" = invalid
	}{
		{"plain", "ada@example.com", "ada@example.com"},
		{"upper case lowered", "Ada.Lovelace@Example.COM", "ada.lovelace@example.com"},
		{"surrounding whitespace trimmed", " \t ada@example.com \n", "ada@example.com"},
		{"plus tag", "ada+db@example.co.uk", "ada+db@example.co.uk"},
		{"dots and dashes", "a.b-c@mail.example-host.org", "a.b-c@mail.example-host.org"},
		{"unicode local and domain", "josé@exämple.com", "josé@exämple.com"},
		{"unicode upper case lowered", "JOSÉ@ÉXAMPLE.COM", "josé@éxample.com"},
		{"64-byte local part", local64 + "@example.com", local64 + "@example.com"},
		{"254-byte address", addr254, addr254},
		{"254-byte address with whitespace around", "  " + addr254 + "  ", addr254},
		{"254-byte address in upper case", strings.ToUpper(addr254), addr254},
		{"fullwidth letters folded", "ＡLICE@ｅxample.com", "alice@example.com"},
		{"ligature folded", "\ufb01le@example.com", "file@example.com"},
		{"punycode domain is its Unicode form", "josé@xn--exmple-cua.com", "josé@exämple.com"},
		{"decomposed accent composed", "jose\u0301@exa\u0308mple.com", "josé@exämple.com"},
		{"all-Cyrillic local part and domain", "Иван@Пример.рф", "иван@пример.рф"},
		{"Cyrillic domain label beside a Latin one", "ivan@пример.com", "ivan@пример.com"},
		{"Greek address", "Σοφία@παράδειγμα.gr", "σοφία@παράδειγμα.gr"},
		{"Cyrillic word with look-alike letters among its own", "Сергей@почта.рф", "сергей@почта.рф"},
		{"IDN domain", "ada@München.de", "ada@münchen.de"},
		{"IDN domain in punycode", "ada@xn--mnchen-3ya.de", "ada@münchen.de"},
		{"dotted capital İ lower-cases to i", "V\u0130CTIM@good.example", "victim@good.example"},

		{"Cyrillic е in a Latin domain", "alice@\u0435xample.com", ""},
		{"Cyrillic а in a Latin local part", "\u0430lice@example.com", ""},
		{"Greek ο in a Latin domain", "alice@g\u03bfogle.com", ""},
		{"Cyrillic and Greek in one label", "alice@\u0430\u03b2.com", ""},
		{"invalid punycode", "ada@xn--zz-.com", ""},
		{"dotless ı in a Latin local part", "vict\u0131m@good.example", ""},
		{"dotless ı beside an accent", "vict\u0131m\u00e9@good.example", ""},
		{"dotless ı in a Latin domain", "victim@g\u0131thub.com", ""},
		{"small capital in a local part", "\u1d00lice@example.com", ""},
		{"all-Cyrillic local part that reads as Latin", "\u0430\u0441\u0435@example.com", ""},
		{"all-Cyrillic domain label that reads as Latin", "ada@\u0430\u0440\u0440\u04cf\u0435.com", ""},
		{"all-Greek local part that reads as Latin", "\u03bf\u03c1@example.com", ""},
		{"fullwidth Cyrillic look-alike after NFKC", "\u0430\u0441\u0435@ｅxample.com", ""},

		{"empty", "", ""},
		{"only spaces", "   ", ""},
		{"no at", "ada.example.com", ""},
		{"only at", "@", ""},
		{"no local part", "@example.com", ""},
		{"no domain", "ada@", ""},
		{"two ats", "ada@home@example.com", ""},
		{"double at", "ada@@example.com", ""},
		{"display name", "A <a@b.c>", ""},
		{"quoted display name", `"Ada Lovelace" <ada@example.com>`, ""},
		{"angle brackets only", "<ada@example.com>", ""},
		{"comment", "ada@example.com (Ada)", ""},
		{"two addresses", "ada@example.com, bob@example.com", ""},
		{"quoted local part", `"ada"@example.com`, ""},
		{"quoted local part with space", `"ada l"@example.com`, ""},
		{"space inside", "ada lovelace@example.com", ""},
		{"no dot in domain", "ada@localhost", ""},
		{"leading dot in domain", "ada@.example.com", ""},
		{"trailing dot in domain", "ada@example.com.", ""},
		{"double dot in domain", "ada@example..com", ""},
		{"leading dot in local part", ".ada@example.com", ""},
		{"trailing dot in local part", "ada.@example.com", ""},
		{"double dot in local part", "ada..l@example.com", ""},
		{"65-byte local part", strings.Repeat("a", 65) + "@example.com", ""},
		{"255-byte address", addr255, ""},
		{"NUL", "ada\x00@example.com", ""},
		{"tab inside", "ada\t@example.com", ""},
		{"newline inside", "ada\n@example.com", ""},
		{"DEL", "ada\x7f@example.com", ""},
		{"escape", "ada\x1b@example.com", ""},
		{"invalid UTF-8", "ada\xff@example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domain.NormalizeEmail(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("NormalizeEmail(%q) = %q, want a validation error", tt.in, got)
				}
				wantValidation(t, err, "email")
				if got != "" {
					t.Errorf("NormalizeEmail(%q) returned %q with its error, want \"\"", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeEmail(%q) error = %v, want %q", tt.in, err, tt.want)
			}
			if got != tt.want {
				t.Errorf("NormalizeEmail(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// Normalizing is idempotent: the stored form normalizes to itself.
			if again, err := domain.NormalizeEmail(got); err != nil || again != got {
				t.Errorf("NormalizeEmail(%q) = %q, %v, want it unchanged", got, again, err)
			}
		})
	}
}

// BUG (domain/credentials.go, NormalizeEmail): the character check `r < 0x21 || r == 0x7f` only
// rejects ASCII controls and the ASCII space. C1 control characters (U+0080–U+009F) and
// non-ASCII spaces pass, so "ada\u00a0@example.com" is accepted as a distinct, unique email
// that looks identical to "ada@example.com". This test fails until NormalizeEmail also rejects
// unicode.IsControl / unicode.IsSpace runes (and, arguably, format characters such as U+200B).
func TestNormalizeEmailRejectsUnicodeControlAndSpace(t *testing.T) {
	for _, tt := range []struct{ name, in string }{
		{"C1 control NEL U+0085 in local part", "ada\u0085x@example.com"},
		{"C1 control CSI U+009B in local part", "ada\u009bx@example.com"},
		{"C1 control in domain", "ada@exa\u0085mple.com"},
		{"no-break space U+00A0", "ada\u00a0x@example.com"},
		{"line separator U+2028", "ada\u2028x@example.com"},
		{"ideographic space U+3000", "ada\u3000x@example.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := domain.NormalizeEmail(tt.in); err == nil {
				t.Errorf("NormalizeEmail(%q) = %q, nil; want a validation error (control or space character)", tt.in, got)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string // substring of the field's message; "" = valid
	}{
		{"plain", "Ada Lovelace", "Ada Lovelace", ""},
		{"trimmed", "  Ada \t\n", "Ada", ""},
		{"one rune", "A", "A", ""},
		{"unicode", "Zoë Ñúñez 李雷", "Zoë Ñúñez 李雷", ""},
		{"emoji", "Team 🚀", "Team 🚀", ""},
		{"punctuation", "O'Brien-Smith & Co.", "O'Brien-Smith & Co.", ""},
		{"100 ASCII runes", strings.Repeat("a", 100), strings.Repeat("a", 100), ""},
		{"100 two-byte runes", strings.Repeat("é", 100), strings.Repeat("é", 100), ""},
		{"100 three-byte runes", strings.Repeat("界", 100), strings.Repeat("界", 100), ""},
		{"100 runes after trimming", "  " + strings.Repeat("a", 100) + "  ", strings.Repeat("a", 100), ""},

		{"empty", "", "", "1 to 100"},
		{"whitespace only", " \t\n\r ", "", "1 to 100"},
		{"101 ASCII runes", strings.Repeat("a", 101), "", "1 to 100"},
		{"101 two-byte runes", strings.Repeat("é", 101), "", "1 to 100"},
		{"101 four-byte runes", strings.Repeat("🚀", 101), "", "1 to 100"},
		{"NUL", "Ada\x00", "", "control"},
		{"tab inside", "Ada\tLovelace", "", "control"},
		{"newline inside", "Ada\nLovelace", "", "control"},
		{"escape", "Ada\x1b[31m", "", "control"},
		{"DEL", "Ada\x7f", "", "control"},
		{"C1 control", "Ada\u0085Lovelace", "", "control"},
		{"invalid UTF-8", "Ada\xff", "", "UTF-8"},
		{"truncated UTF-8", "Ad\xc3", "", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domain.ValidateName("display_name", tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateName(%q) error = %v, want %q", tt.in, err, tt.want)
				}
				if got != tt.want {
					t.Errorf("ValidateName(%q) = %q, want %q", tt.in, got, tt.want)
				}
				return
			}
			verr := wantValidation(t, err, "display_name")
			if msg := verr.Fields["display_name"]; !strings.Contains(msg, tt.wantErr) {
				t.Errorf("ValidateName(%q) message = %q, want it to mention %q", tt.in, msg, tt.wantErr)
			}
			if got != "" {
				t.Errorf("ValidateName(%q) returned %q with its error, want \"\"", tt.in, got)
			}
		})
	}
}

func TestCheckPasswordStrength(t *testing.T) {
	tests := []struct {
		name     string
		password string
		rule     string // "" = strong enough
	}{
		{"good", "Corr3ct-horse", ""},
		{"exactly 8 characters", "Aa1!aaaa", ""},
		{"space counts as symbol", "Aa1 aaaa", ""},
		{"72 bytes", "Aa1!" + strings.Repeat("a", 68), ""},
		{"unicode letters count as cases", "Ünïcödé1!", ""},
		{"8 runes of more than 8 bytes", "Äb1!äöüß", ""},
		{"72 bytes of two-byte runes", "Aa1!" + strings.Repeat("ä", 34), ""},
		{"greek", "Σσ1!σσσσ", ""},
		{"unicode digit", "Aa٣!aaaa", ""},
		{"unicode symbol", "Aa1€aaaa", ""},

		{"empty", "", "length"},
		{"7 characters", "Aa1!aaa", "length"},
		{"7 runes but more than 8 bytes", "Äb1!äöü", "length"},
		{"73 bytes", "Aa1!" + strings.Repeat("a", 69), "length"},
		{"74 bytes of two-byte runes", "Aa1!" + strings.Repeat("ä", 35), "length"},
		{"invalid UTF-8", "Aa1!aaa\xff", "length"},
		{"length reported before the other rules", "aaa", "length"},
		{"no lower case", "AA1!AAAA", "lower"},
		{"no upper case", "aa1!aaaa", "upper"},
		{"no digit", "Aa!!aaaa", "digit"},
		{"no symbol", "Aa1aaaaa", "symbol"},
		{"uncased letters are neither lower nor upper", "中文中文中文1!", "lower"},
		{"only upper case unicode missing lower", "ÄÖÜ1!ÄÖÜ", "lower"},
		{"lower reported before upper, digit and symbol", "AAAAAAAA", "lower"},
		{"upper reported before digit and symbol", "aaaaaaaa", "upper"},
		{"digit reported before symbol", "Aaaaaaaa", "digit"},
		{"a letter is no symbol", "Aa1aaaa中", "symbol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := domain.CheckPasswordStrength(tt.password)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("CheckPasswordStrength(%q) = %v, want nil", tt.password, err)
				}
				return
			}
			var weak *domain.WeakPasswordError
			if !errors.As(err, &weak) {
				t.Fatalf("CheckPasswordStrength(%q) = %v (%T), want a *WeakPasswordError", tt.password, err, err)
			}
			if weak.Rule != tt.rule {
				t.Errorf("CheckPasswordStrength(%q) rule = %q, want %q", tt.password, weak.Rule, tt.rule)
			}
			if msg := weak.RuleMessage(); msg == "" || weak.Error() != "weak password: "+msg {
				t.Errorf("rule %q: RuleMessage() = %q, Error() = %q, want a sentence and the error to carry it", weak.Rule, msg, weak.Error())
			}
		})
	}
}

func TestWeakPasswordRuleMessagesDiffer(t *testing.T) {
	seen := map[string]string{}
	for _, rule := range []string{"length", "lower", "upper", "digit", "symbol"} {
		msg := (&domain.WeakPasswordError{Rule: rule}).RuleMessage()
		if msg == "" {
			t.Errorf("rule %q has no message", rule)
		}
		if other, ok := seen[msg]; ok {
			t.Errorf("rules %q and %q share the message %q", rule, other, msg)
		}
		seen[msg] = rule
	}
}
