// Package eventstore is the append-only event log of CloudDB Manager on MySQL (RDS-A).
//
// The log is one table, events, which is at the same time the watermill-sql topic that
// projections and reactors subscribe to: an append publishes through a watermill-sql publisher
// bound to the append's own transaction, so the bus can never disagree with the log.
//
// Global positions are assigned by the store itself, gapless, under a sequence row lock that every
// appender takes: positions therefore become visible strictly in order, and a reader that has seen
// position n has seen every position below it. Within one process, concurrent appends are grouped
// by a single writer goroutine into one transaction (group commit), which is what makes the lock
// cheap.
package eventstore
