package eventstore

// Queued is how many appends wait in s's queue for the writer.
func Queued(s *Store) int { return len(s.queue) }

// Closing reports whether Close has begun: appends are refused from then on.
func Closing(s *Store) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}
