package sandbox

// What the external tests check of the unexported rules.
var (
	GrantPattern         = grantPattern
	QuoteAccount         = quoteAccount
	QuoteString          = quoteString
	RestrictedPrivileges = restrictedPrivileges
	ROPrivileges         = roPrivileges
	RWPrivileges         = rwPrivileges
	NativePasswordHash   = nativePasswordHash
)
