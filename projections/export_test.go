package projections

// SetRebuildSessionBatch makes a rebuild session read n events at a time until restore is called:
// a test's small log then spans many batches, buckets closing between them.
func SetRebuildSessionBatch(n int) (restore func()) {
	old := sessionBatch
	sessionBatch = n
	return func() { sessionBatch = old }
}

// SetRebuildLoadData makes rebuilds write their closed buckets by LOAD DATA (on) or by INSERT
// statements until restore is called.
func SetRebuildLoadData(on bool) (restore func()) {
	old := rebuildLoadData
	rebuildLoadData = on
	return func() { rebuildLoadData = old }
}

// RebuildLoadsRefused counts the LOAD DATA statements of rebuilds that failed (and were INSERTs).
func RebuildLoadsRefused() int64 { return loadsRefused.Load() }

// SetRebuildMaxOpenRows bounds the rows a rebuild keeps open to n until restore is called.
func SetRebuildMaxOpenRows(n int) (restore func()) {
	old := rebuildMaxOpenRows
	rebuildMaxOpenRows = n
	return func() { rebuildMaxOpenRows = old }
}

// SetRebuildMaxRefs bounds what a rebuild numbers (rowRefs) to n per kind until restore is
// called: the rest of the open rows are kept in maps.
func SetRebuildMaxRefs(n int) (restore func()) {
	old := maxRefs
	maxRefs = n
	return func() { maxRefs = old }
}
