package personaldata_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// The cost per event of sealing and opening, with the subject's key in the cache (the vault is read
// once per subject and KeyTTL): what an append and a read of the log pay for personal data.
// go test -run '^$' -bench . -benchmem ./internal/personaldata
func BenchmarkPersonalData(b *testing.B) {
	ctx := context.Background()
	codec, _ := newCodec(b)
	user := domain.UserID(uuid.NewString())
	md := eventstore.Metadata{ActorID: string(user), IP: "198.51.100.23", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}
	event := domain.SessionStarted{SessionID: "s", UserID: user, IP: md.IP, UserAgent: md.UserAgent}
	sealedMD, err := codec.SealMetadata(ctx, md, user.Stream())
	if err != nil {
		b.Fatal(err)
	}
	sealed, _, err := codec.Seal(ctx, "e", "session-s", event)
	if err != nil {
		b.Fatal(err)
	}
	payload, _ := json.Marshal(sealed)
	plain, _ := json.Marshal(domain.TenantMemberAdded{UserID: user, Role: domain.RoleViewer})
	b.Run("seal metadata (every append of a known person)", func(b *testing.B) {
		for b.Loop() {
			codec.SealMetadata(ctx, md, user.Stream())
		}
	})
	b.Run("seal a session's payload", func(b *testing.B) {
		for b.Loop() {
			codec.Seal(ctx, "e", "session-s", event)
		}
	})
	b.Run("open an event without personal fields", func(b *testing.B) {
		for b.Loop() {
			env := eventstore.Envelope{EventID: "e", EventType: "tenant.member_added.v1", Payload: plain, Metadata: sealedMD}
			codec.Open(ctx, &env)
		}
	})
	b.Run("open a session's event", func(b *testing.B) {
		for b.Loop() {
			env := eventstore.Envelope{EventID: "e", EventType: "session.started.v1", Payload: payload, Metadata: sealedMD}
			if err := codec.Open(ctx, &env); err != nil {
				b.Fatal(err)
			}
		}
	})
}
