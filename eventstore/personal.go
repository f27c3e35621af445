package eventstore

import (
	"context"

	"github.com/clouddbmanager/clouddb/domain"
)

// PersonalData seals the personal fields of events (domain.SealPersonalData) and of their
// metadata (IP address, user agent) as they are appended, and opens them as they are read: every
// Envelope the Store returns holds clear values, or the erased placeholders (domain.ErasedValue)
// once a subject's key is gone. The chains hash what is stored, the sealed bytes, so erasing a key
// changes no hash. internal/personaldata implements it; a reader of raw rows (an export, say)
// opens them with Open. docs/ARCHITECTURE.md, "Personal data and erasure".
type PersonalData interface {
	// Seal returns e with its personal fields sealed for the event eventID of stream, and the
	// subject they belong to ("" when e has none).
	Seal(ctx context.Context, eventID, stream string, e domain.Event) (domain.Event, string, error)
	// SealMetadata returns md with its IP address and user agent sealed for subject; "" leaves them
	// as they are (a request of nobody known).
	SealMetadata(ctx context.Context, md Metadata, subject string) (Metadata, error)
	// Open replaces in env's payload and metadata each sealed value with its clear value, or with
	// its placeholder when its key is erased. A value that is not sealed stays as it is.
	Open(ctx context.Context, env *Envelope) error
	// ClaimKey returns the key under which a claim is stored: a keyed hash for a key that holds
	// personal data (an email address), key itself for the others.
	ClaimKey(ctx context.Context, key string) (string, error)
}
