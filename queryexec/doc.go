// Package queryexec owns every conversation with RDS-B, the sandbox MySQL servers that hold the
// tenants' databases.
//
// A Sandbox is one such server reached with an admin DSN. It provisions each database as one
// schema and two accounts (read-write and read-only, granted on that schema only, with
// MAX_USER_CONNECTIONS), locks and unlocks them, rotates the read-write password, drops them,
// measures storage and describes a schema for the schema browser. Physical names derive from the
// database id and a configured prefix (SchemaName, AccountNames), never from a user's input.
//
// Nothing here records events or speaks HTTP: reactors and commands call it and record what
// happened.
package queryexec
