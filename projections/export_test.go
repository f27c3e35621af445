package projections

// SetRebuildSessionBatch makes a rebuild session read n events at a time until restore is called:
// a test's small log then spans many batches, buckets closing between them.
func SetRebuildSessionBatch(n int) (restore func()) {
	old := sessionBatch
	sessionBatch = n
	return func() { sessionBatch = old }
}
