// Package sandbox administers the RDS-B servers that hold the tenants' databases. A Sandbox is
// one such server reached with an admin DSN; a Fleet is all of them, placing new databases on the
// least loaded. It provisions each database as one schema and two accounts (read-write and
// read-only, granted on that schema only, with MAX_USER_CONNECTIONS), locks and unlocks them,
// restricts writes over the storage quota, rotates the read-write password, drops them, measures
// storage, describes a schema for the schema browser and loads the templates. Physical names
// derive from the database id and the one configured prefix (ValidPrefix, SchemaName,
// AccountNames), never from a user's input.
//
// Nothing here records events or runs tenant statements: reactors and commands call it and record
// what happened; the engine (queryexec) runs the statements.
package sandbox
