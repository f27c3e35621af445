package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

func TestSchemaAndAccountNames(t *testing.T) {
	const id = "3F2504E0-4F89-41D3-9A0C-0305E82C3301"
	if got, want := SchemaName("cdb_", id), "cdb_3f2504e04f8941d39a0c0305e82c3301"; got != want {
		t.Errorf("SchemaName = %q, want %q", got, want)
	}
	rw, ro := AccountNames("cdb_", id)
	if rw != "cdb_3f2504e04f8941d39a0c_rw" || ro != "cdb_3f2504e04f8941d39a0c_ro" {
		t.Errorf("AccountNames = %q, %q", rw, ro)
	}
	long := strings.Repeat("x", MaxPrefixLength)
	if !ValidPrefix(long) {
		t.Fatalf("ValidPrefix(%q) = false", long)
	}
	if n := len(SchemaName(long, id)); n > 64 {
		t.Errorf("schema name of %d characters", n)
	}
	if rw, _ := AccountNames(long, id); len(rw) > 32 {
		t.Errorf("account name %q longer than 32 characters", rw)
	}
	for _, bad := range []string{"", "not-a-uuid", "{3f2504e0-4f89-41d3-9a0c-0305e82c3301}", "3f2504e04f8941d39a0c0305e82c3301", "x'; DROP USER root; --"} {
		if got := SchemaName("cdb_", bad); got != "" {
			t.Errorf("SchemaName(%q) = %q, want empty", bad, got)
		}
		if rw, ro := AccountNames("cdb_", bad); rw != "" || ro != "" {
			t.Errorf("AccountNames(%q) = %q, %q, want empty", bad, rw, ro)
		}
		_, err := idHex(bad)
		var verr *domain.ValidationError
		if !errors.As(err, &verr) || verr.Fields["database_id"] == "" {
			t.Errorf("idHex(%q) = %v, want a validation error on database_id", bad, err)
		}
	}
}

func TestValidPrefix(t *testing.T) {
	for prefix, want := range map[string]bool{
		"cdb_": true, "a": true, "t1234567_": true, "abcdefghi": true,
		"": false, "abcdefghij": false, "Cdb_": false, "1cdb": false, "cdb-": false, "cd`b": false, "c%": false,
	} {
		if got := ValidPrefix(prefix); got != want {
			t.Errorf("ValidPrefix(%q) = %v, want %v", prefix, got, want)
		}
	}
}

func TestQuoteString(t *testing.T) {
	tests := []struct {
		in, backslash, noBackslash string
	}{
		{"", `''`, `''`},
		{"plain", `'plain'`, `'plain'`},
		{"it's", `'it\'s'`, `'it''s'`},
		{"''", `'\'\''`, `''''''`},
		{`back\slash`, `'back\\slash'`, `'back\slash'`},
		{`trailing\`, `'trailing\\'`, `'trailing\'`},
		{`\'`, `'\\\''`, `'\'''`},
		{`"double"`, `'\"double\"'`, `'"double"'`},
		{"nul\x00lf\ncr\rsub\x1a", `'nul\0lf\ncr\rsub\Z'`, "'nul\x00lf\ncr\rsub\x1a'"},
		{"`tick`", "'`tick`'", "'`tick`'"},
		{"ünï–code", "'ünï–code'", "'ünï–code'"},
	}
	for _, tt := range tests {
		if got := quoteString(tt.in, false); got != tt.backslash {
			t.Errorf("quoteString(%q, false) = %s, want %s", tt.in, got, tt.backslash)
		}
		if got := quoteString(tt.in, true); got != tt.noBackslash {
			t.Errorf("quoteString(%q, true) = %s, want %s", tt.in, got, tt.noBackslash)
		}
	}
}

func TestQuoteAccountAndGrantPattern(t *testing.T) {
	if got := quoteAccount("cdb_x_rw"); got != "`cdb_x_rw`@`%`" {
		t.Errorf("quoteAccount = %s", got)
	}
	if got := grantPattern(`cdb_a%b\c`); got != "`cdb\\_a\\%b\\\\c`" {
		t.Errorf("grantPattern = %s", got)
	}
}

func TestNewPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		p, err := NewPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) < 24 || len(p) != passwordLength {
			t.Fatalf("password %q has %d characters", p, len(p))
		}
		if strings.ContainsAny(p, "@/:?#%'\"`\\$~ ;&") {
			t.Fatalf("password %q holds a character unsafe in a DSN", p)
		}
		for _, class := range []string{passwordLower, passwordUpper, passwordDigits, passwordSymbols} {
			if !strings.ContainsAny(p, class) {
				t.Fatalf("password %q lacks one of %q", p, class)
			}
		}
		if strings.Trim(p, passwordChars) != "" {
			t.Fatalf("password %q outside the alphabet", p)
		}
		if seen[p] {
			t.Fatalf("password %q repeated", p)
		}
		seen[p] = true
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		version, comment, flavor, numeric string
		unsupported                       bool
	}{
		{"10.11.19-MariaDB-0+deb12u1", "Debian 12", FlavorMariaDB, "10.11.19", false},
		{"11.4.2-MariaDB", "mariadb.org binary distribution", FlavorMariaDB, "11.4.2", false},
		{"10.4.0-MariaDB", "", FlavorMariaDB, "10.4.0", false},
		{"10.3.39-MariaDB", "MariaDB Server", FlavorMariaDB, "10.3.39", true},
		{"8.0.36", "MySQL Community Server - GPL", FlavorMySQL, "8.0.36", false},
		{"8.4.0-1.el9", "Percona Server (GPL)", FlavorMySQL, "8.4.0", false},
		{"5.7.8-log", "MySQL Community Server (GPL)", FlavorMySQL, "5.7.8", false},
		{"5.7.6", "MySQL Community Server (GPL)", FlavorMySQL, "5.7.6", true},
		{"5.6.51", "MySQL Community Server (GPL)", FlavorMySQL, "5.6.51", true},
	}
	for _, tt := range tests {
		s := &Sandbox{name: "t"}
		err := s.detect(tt.version, tt.comment)
		if s.flavor != tt.flavor || s.version != tt.numeric {
			t.Errorf("detect(%q, %q) = %s %s, want %s %s", tt.version, tt.comment, s.flavor, s.version, tt.flavor, tt.numeric)
		}
		if got := errors.Is(err, ErrUnsupportedServer); got != tt.unsupported {
			t.Errorf("detect(%q): err = %v, want unsupported %v", tt.version, err, tt.unsupported)
		}
	}
	if err := (&Sandbox{}).detect("garbage", ""); err == nil {
		t.Error("detect(garbage) succeeded")
	}
}

func TestUnquoteMariaDB(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain", "it''s": "it's", `back\\slash`: `back\slash`, `a\nb`: "a\nb", "": "", `\0\Z\t`: "\x00\x1a\t",
	} {
		if got := unquoteMariaDB(in); got != want {
			t.Errorf("unquoteMariaDB(%q) = %q, want %q", in, got, want)
		}
	}
}
