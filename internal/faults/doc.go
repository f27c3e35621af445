// Package faults holds the fault-injection suite of docs/RELIABILITY.md ("Proof"): it builds
// clouddb once, runs `clouddb serve` as a child process behind TCP proxies to the management
// database (RDS-A) and the sandbox server (RDS-B), sends a load of uniquely valued INSERTs with
// Idempotency-Keys while it kills the process (SIGKILL), cuts and hangs both connections, stops
// and starts databases, provisions new ones and sends SIGTERM during long statements, and then
// checks every answer against the rows in MySQL and the events in the log.
//
// The package has no code outside its tests: `go test ./internal/faults` is the suite (a short
// run in CI); CLOUDDB_FAULTS_LONG=1 runs the long variant by hand.
package faults
