package eventstore

import "github.com/ThreeDotsLabs/watermill/message"

// Queued is how many appends wait in s's queue for the writer.
func Queued(s *Store) int { return len(s.queue) }

// Closing reports whether Close has begun: appends are refused from then on.
func Closing(s *Store) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// Place puts a message where the writer would: at position, with link and hash, and metadata.
func Place(msg *message.Message, position int64, l Link, hash Hash, metadata []byte) {
	setPlace(msg, position, l, hash, metadata)
}

// PreparedInserts waits for the inserts being prepared in the background and returns how many
// are prepared.
func PreparedInserts(s *Store) int {
	s.inserts.running.Wait()
	s.inserts.mu.Lock()
	defer s.inserts.mu.Unlock()
	return len(s.inserts.stmts)
}
