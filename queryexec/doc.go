// Package queryexec is the engine that runs a tenant's statement on RDS-B, the sandbox MySQL
// servers that hold the tenants' databases: it checks every statement with sqlcheck.Decide before
// any runs, takes a pooled session on the database's own account (pools.go), runs each statement
// with the server-side timeout and row limit (KILL QUERY past its deadline), streams the rows into
// the result store (results), translates MySQL's errors (mysqlerror.go) and describes each
// statement as a domain.QueryExecuted for the caller to record. Validate (validate.go) answers
// POST /validate without running anything.
//
// Its rooms:
//
//	sqlcheck  reading SQL: split, classify, fingerprint, redact; and Decide, the one decision
//	          whether a principal may run a statement on a database, and on which account
//	results   the kept results: shaping rows as JSON, the result store, exports
//	sandbox   administering the sandbox servers: the fleet, physical names, provisioning,
//	          locks, grants, storage, schema browsing, templates
//
// Dependencies point inward: queryexec imports the three; results and sandbox import sqlcheck
// (identifier quoting); sqlcheck imports only domain. Nothing here records events or speaks HTTP.
package queryexec
