// Package sqlcheck reads tenant SQL without a server: it splits a text into statements (Split),
// classifies each one with a deny-by-default filter (Classify), fingerprints and redacts it for
// the history (Fingerprint, RedactSecrets), and decides whether a principal may run it on a
// database (Decide): the classifier, the role, the tenant's settings, confirmations, the storage
// quota, the server's row estimates, and the account it runs on. Decide is the one place that
// decision is made; the engine only gathers what it needs.
package sqlcheck
