package sandbox

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// Physical names on RDS-B derive from the database id only, never from the name a user chose, so
// no user input ever reaches an identifier, and renaming or reusing a name touches nothing there.
const (
	// MaxPrefixLength keeps account names within MySQL's 32-character user name limit:
	// prefix + 20 hex + "_rw".
	MaxPrefixLength = 9
	accountHexChars = 20
)

var prefixPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,8}$`)

// ValidPrefix reports whether prefix may name physical schemas and accounts: a lower-case letter,
// then up to 8 lower-case letters, digits or underscores.
func ValidPrefix(prefix string) bool { return prefixPattern.MatchString(prefix) }

// idHex returns the 32 lower-case hex digits of a canonical UUID string, or an error when id is not
// one.
func idHex(id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return "", fmt.Errorf("queryexec: database id %q: %w", id, domain.NewValidationError("database_id", "must be a UUID"))
	}
	return strings.ReplaceAll(u.String(), "-", ""), nil
}

// SchemaName is the physical schema of database id: prefix followed by the 32 hex digits of the
// UUID (at most 41 characters with a valid prefix, far below MySQL's 64). It returns "" when id is
// not a UUID.
func SchemaName(prefix string, id string) string {
	h, err := idHex(id)
	if err != nil {
		return ""
	}
	return prefix + h
}

// AccountNames are the read-write and read-only MySQL accounts of database id: prefix, the first 20
// hex digits of the UUID (74 random bits of a version-4 id), and "_rw" or "_ro" — at most 32
// characters with a valid prefix, MySQL's limit for user names. They return "" when id is not a
// UUID.
func AccountNames(prefix string, id string) (rw, ro string) {
	h, err := idHex(id)
	if err != nil {
		return "", ""
	}
	base := prefix + h[:accountHexChars]
	return base + "_rw", base + "_ro"
}

// physical holds every name of one database on one sandbox.
type physical struct {
	schema, rw, ro string
}

func (s *Sandbox) names(id string) (physical, error) {
	h, err := idHex(id)
	if err != nil {
		return physical{}, err
	}
	base := s.prefix + h[:accountHexChars]
	return physical{schema: s.prefix + h, rw: base + "_rw", ro: base + "_ro"}, nil
}

// quoteAccount is `user`@`%`.
func quoteAccount(user string) string { return sqlcheck.QuoteIdent(user) + "@`%`" }

// grantPattern quotes a schema name for GRANT … ON <db>.*, where '_' and '%' in a database name
// are wildcards: unescaped, a grant on `cdb_x` would also cover `cdbAx`, and the CREATE privilege
// would let the account create that schema.
func grantPattern(schema string) string { return sqlcheck.QuoteIdent(escapePattern(schema)) }

// escapePattern escapes the wildcards of a schema name as a grant stores it (and
// information_schema.SCHEMA_PRIVILEGES shows it).
func escapePattern(schema string) string {
	return strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`).Replace(schema)
}

// quoteString returns s as a MySQL string literal for a session whose sql_mode does (or does not)
// contain NO_BACKSLASH_ESCAPES. Placeholders cannot be used where it is needed: MariaDB does not
// prepare `IDENTIFIED BY ?` (error 1064), and client-side interpolation depends on a DSN option.
//
// With NO_BACKSLASH_ESCAPES only the quote is special and is doubled; without it, the backslash,
// the quote, the double quote and the bytes NUL, LF, CR and Ctrl-Z are backslash-escaped, as
// mysql_real_escape_string does. A literal built for one mode is not safe in the other: the
// Sandbox pins NO_BACKSLASH_ESCAPES on every admin session.
func quoteString(s string, noBackslashEscapes bool) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if noBackslashEscapes {
			if c == '\'' {
				b.WriteByte('\'')
			}
			b.WriteByte(c)
			continue
		}
		switch c {
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0x1a:
			b.WriteString(`\Z`)
		case '\'', '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// Password alphabet: letters, digits and symbols that need no escaping in a go-sql-driver DSN, a
// URL's user info, a shell word or a SQL literal (no '@', '/', ':', '?', '#', '%', quotes,
// backslash, '$', '~' or spaces).
const (
	passwordLength  = 28 // ≈ 169 bits
	passwordLower   = "abcdefghijklmnopqrstuvwxyz"
	passwordUpper   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	passwordDigits  = "0123456789"
	passwordSymbols = "-_.+"
	passwordChars   = passwordLower + passwordUpper + passwordDigits + passwordSymbols
)

// NewPassword returns a random password of passwordLength characters from crypto/rand with at
// least one lower-case letter, upper-case letter, digit and symbol (so that a server's password
// validation plugin accepts it).
func NewPassword() (string, error) {
	const n = len(passwordChars)
	const limit = 256 - 256%n // reject bytes ≥ limit so every character is equally likely
	buf := make([]byte, 2*passwordLength)
	for {
		out := make([]byte, 0, passwordLength)
		for len(out) < passwordLength {
			if _, err := rand.Read(buf); err != nil {
				return "", fmt.Errorf("queryexec: random password: %w", err)
			}
			for _, b := range buf {
				if int(b) < limit && len(out) < passwordLength {
					out = append(out, passwordChars[int(b)%n])
				}
			}
		}
		p := string(out)
		if strings.ContainsAny(p, passwordLower) && strings.ContainsAny(p, passwordUpper) &&
			strings.ContainsAny(p, passwordDigits) && strings.ContainsAny(p, passwordSymbols) {
			return p, nil
		}
	}
}
