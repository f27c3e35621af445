package eventstore_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/clouddbmanager/clouddb/eventstore"
)

// TestExportOfAStoredPayloadThatIsNotJSONDoesNotVerify: since migration 31 the log's payload and
// metadata are text the server no longer checks as JSON. Bytes that are not a JSON value (written
// to the database behind the store's back) must not go into an export as they are: there they
// would close the record's "data" and add keys after it — a second data_sha256 naming the
// original digest, which encoding/json takes as the record's — and an export of the altered log
// would verify. The record must stay one record, and the link must break.
func TestExportOfAStoredPayloadThatIsNotJSONDoesNotVerify(t *testing.T) {
	db, signer := chainedLog(t)
	_, pub := signer.PublicKey()
	for _, column := range []string{"payload", "metadata"} {
		var stored []byte
		if err := db.QueryRow(`SELECT ` + column + ` FROM events WHERE position = 4`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		original := sha256.Sum256(stored)
		injected := map[string]string{
			"payload":  `null,"data_sha256":"` + hex.EncodeToString(original[:]) + `"`,
			"metadata": `{},"metadata_sha256":"` + hex.EncodeToString(original[:]) + `","metadata":` + string(stored),
		}[column]
		if _, err := db.Exec(`UPDATE events SET `+column+` = ? WHERE position = 4`, injected); err != nil {
			t.Fatal(err)
		}
		for _, asJSON := range []bool{false, true} {
			file := export(t, db, signer, asJSON, 1)
			var broken *eventstore.BrokenLink
			if _, err := eventstore.VerifyFile(bytes.NewReader(file), []ed25519.PublicKey{pub}); !errors.As(err, &broken) || broken.Position != 4 {
				t.Errorf("%s altered to %s, json=%v: verified %v, want a broken link at position 4", column, injected, asJSON, err)
			}
		}
		if _, err := db.Exec(`UPDATE events SET `+column+` = ? WHERE position = 4`, stored); err != nil {
			t.Fatal(err)
		}
	}
}
