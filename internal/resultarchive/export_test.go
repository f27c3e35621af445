package resultarchive

// SetChunkBytes makes s close chunks at n bytes, so tests see many chunks with few rows.
func SetChunkBytes(s *Store, n int) { s.chunkBytes = n }
