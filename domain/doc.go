// Package domain holds CloudDB Manager's aggregates, their events and the business rules.
//
// It is pure Go: no SQL, no HTTP, no clock or randomness it is not handed. Aggregates decide
// commands by recording events or returning one of the typed errors below; the event store,
// the projections and the API only move those events and errors around.
package domain
