package personaldata

// The migrations of what was recorded before personal data was sealed: email claims kept in clear
// (migration 29) and events holding personal data in clear (migration 30). Both run at start,
// under the migration lock, before the process serves.

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// Opener opens the codec a migration seals with (it needs the vault's key); nil when the caller
// has none, and then a migration that finds something to seal fails rather than be recorded
// without doing it.
type Opener func(ctx context.Context) (*Codec, error)

func (o Opener) open(ctx context.Context, what string) (*Codec, error) {
	if o == nil {
		return nil, fmt.Errorf("personaldata: %s needs the vault's key (CLOUDDB_SECRET_KEY): migrate with clouddb serve or clouddb migrate", what)
	}
	return o(ctx)
}

// MigrateClaims (migration 29) replaces every email claim kept in clear ("email:<address>") by
// the keyed hash ClaimKey gives it, a batch of 1,000 at a time; it returns at once when none is
// left.
func MigrateClaims(ctx context.Context, db *sql.DB, open Opener, log *slog.Logger) error {
	var codec *Codec
	moved := 0
	for {
		rows, err := db.QueryContext(ctx, `SELECT claim_key FROM claims WHERE claim_key LIKE ? LIMIT 1000`, domain.EmailClaimPrefix+"%")
		if err != nil {
			return fmt.Errorf("personaldata: read email claims: %w", err)
		}
		var keys []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return fmt.Errorf("personaldata: read email claims: %w", err)
			}
			keys = append(keys, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("personaldata: read email claims: %w", err)
		}
		if len(keys) == 0 {
			if moved > 0 {
				log.Info("email claims are keyed hashes now", "claims", moved)
			}
			return nil
		}
		if codec == nil {
			if codec, err = open.open(ctx, "migration 29 (email claims)"); err != nil {
				return err
			}
		}
		for _, k := range keys {
			hashed, err := codec.ClaimKey(ctx, k)
			if err != nil {
				return err
			}
			if _, err := db.ExecContext(ctx, `UPDATE claims SET claim_key = ? WHERE claim_key = ?`, []byte(hashed), []byte(k)); err != nil {
				return fmt.Errorf("personaldata: move an email claim: %w", err)
			}
		}
		moved += len(keys)
	}
}

// SealRecorded (migration 30) seals the personal data of the events recorded before it was
// sealed at append (their personal payload fields, and the IP address and user agent of their
// metadata), with eventstore.Rewrite: in one transaction under the sequence lock, re-chaining
// every chain it changed from its first changed event. Then it records what it did as
// platform.personal_data_sealed.v1 (the chains, their heads before and after, and the signed heads
// that no longer match, which Rewrite deleted: the head signer signs the new heads). It returns at
// once when nothing is in clear.
func SealRecorded(ctx context.Context, db *sql.DB, open Opener, log *slog.Logger) error {
	var count int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&count); err != nil {
		return fmt.Errorf("personaldata: count events: %w", err)
	}
	if count == 0 {
		return nil
	}
	codec, err := open.open(ctx, "migration 30 (personal data in the log)")
	if err != nil {
		return err
	}
	registry := eventstore.NewDomainRegistry()
	start := time.Now()
	sum, err := eventstore.Rewrite(ctx, db, func(ctx context.Context, env eventstore.Envelope, metadata []byte) ([]byte, []byte, bool, error) {
		return codec.sealRecorded(ctx, registry, env, metadata)
	})
	if err != nil {
		return err
	}
	if sum.Events == 0 {
		return nil
	}
	log.Info("personal data recorded in clear is sealed; its chains are re-chained", "events", sum.Events, "chains", len(sum.Chains),
		"superseded_heads", len(sum.Superseded), "took_ms", time.Since(start).Milliseconds())
	record := domain.PlatformPersonalDataSealed{At: time.Now().UTC(), Events: sum.Events}
	for _, c := range sum.Chains {
		record.Chains = append(record.Chains, domain.RechainedChain{ChainID: c.ChainID, FromSeq: c.FromSeq, HeadSeq: c.HeadSeq,
			OldHead: c.OldHead.String(), NewHead: c.NewHead.String()})
	}
	for _, s := range sum.Superseded {
		record.Superseded = append(record.Superseded, domain.SupersededHead{ChainID: s.ChainID, ChainSeq: s.ChainSeq, Hash: s.Hash.String(),
			SignedAt: s.SignedAt, KeyID: s.KeyID, Signature: base64.StdEncoding.EncodeToString(s.Signature)})
	}
	store := eventstore.New(db, registry, eventstore.Options{Logger: log, PersonalData: codec})
	defer store.Close()
	_, err = store.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{{ID: domain.PersonalDataSealedStream, Type: "platform",
		ExpectedVersion: eventstore.AnyVersion, Events: []domain.Event{record}}}})
	return err
}

// sealRecorded is SealRecorded's rewrite of one event: its personal fields and its metadata's IP
// address and user agent sealed, when one of them is in clear.
func (c *Codec) sealRecorded(ctx context.Context, registry *eventstore.Registry, env eventstore.Envelope, metadata []byte) ([]byte, []byte, bool, error) {
	md := env.Metadata
	clearMetadata := isClear(md.IP) || isClear(md.UserAgent)
	clearPayload := false
	var e domain.Event
	subject := ""
	if len(domain.PersonalPaths(env.EventType)) > 0 {
		var err error
		if e, err = registry.Decode(env); err != nil {
			return nil, nil, false, err
		}
		_, subject, _ = domain.SealPersonalData(e, env.StreamID, func(_, _, value string) (string, error) {
			clearPayload = clearPayload || isClear(value)
			return value, nil
		})
	}
	switch {
	case md.ActorID != "":
		subject = "user-" + md.ActorID
	case subject == "" && (strings.HasPrefix(env.StreamID, "user-") || strings.HasPrefix(env.StreamID, "address-")):
		subject = env.StreamID // an account's or an address's own event (a login), as its append's other events say
	}
	clearMetadata = clearMetadata && subject != "" // a request of nobody known stays as it is
	if !clearPayload && !clearMetadata {
		return nil, nil, false, nil
	}
	payload := []byte(env.Payload)
	if clearPayload {
		sealed, _, err := c.Seal(ctx, env.EventID, env.StreamID, e)
		if err != nil {
			return nil, nil, false, err
		}
		if payload, err = json.Marshal(sealed); err != nil {
			return nil, nil, false, err
		}
	}
	if clearMetadata {
		sealed, err := c.SealMetadata(ctx, md, subject)
		if err != nil {
			return nil, nil, false, err
		}
		if metadata, err = json.Marshal(sealed); err != nil {
			return nil, nil, false, err
		}
	}
	return payload, metadata, true, nil
}

func isClear(v string) bool { return v != "" && !strings.HasPrefix(v, Prefix) }
