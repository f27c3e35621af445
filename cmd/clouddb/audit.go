package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/config"
	"github.com/clouddbmanager/clouddb/internal/localmysql"
	"github.com/clouddbmanager/clouddb/internal/mgmtdb"
)

const auditUsage = `usage: clouddb audit verify [--key KEY]... FILE     verify an audit export (NDJSON or JSON)
       clouddb audit verify [--key KEY]... --live     verify the whole event log of the management database
KEY is an Ed25519 public key: base64 (as GET /api/v1/audit/public-key gives public_key), or a PEM file.
Without --key, a file is checked with the keys its header states, and --live with the server's own.`

// keyList is the repeated --key flag.
type keyList []ed25519.PublicKey

func (k *keyList) String() string { return fmt.Sprint(len(*k), " keys") }

func (k *keyList) Set(v string) error {
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		pemBytes, ferr := os.ReadFile(v)
		if ferr != nil {
			return fmt.Errorf("neither a base64 key nor a readable PEM file: %w", ferr)
		}
		block, _ := pem.Decode(pemBytes)
		if block == nil {
			return errors.New("the file holds no PEM block")
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return err
		}
		ed, ok := pub.(ed25519.PublicKey)
		if !ok {
			return errors.New("the PEM key is not an Ed25519 key")
		}
		raw = ed
	}
	if len(raw) != ed25519.PublicKeySize {
		return fmt.Errorf("an Ed25519 public key has %d bytes, not %d", ed25519.PublicKeySize, len(raw))
	}
	*k = append(*k, ed25519.PublicKey(raw))
	return nil
}

// runAudit runs `clouddb audit verify ...` and returns the exit code: 0 verified, 1 broken or
// failed, 2 misused.
func runAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, auditUsage)
		return 2
	}
	flags := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprintln(stderr, auditUsage) }
	var keys keyList
	live := flags.Bool("live", false, "verify the live event log")
	flags.Var(&keys, "key", "a trusted public key (repeatable)")
	if err := flags.Parse(args[1:]); err != nil {
		return 2
	}
	if *live == (flags.NArg() == 1) || flags.NArg() > 1 {
		flags.Usage()
		return 2
	}
	start := time.Now()
	var summary eventstore.Summary
	var err error
	var extra string
	if *live {
		summary, err = verifyLive(ctx, keys, getenv, stderr)
	} else {
		var s eventstore.FileSummary
		s, err = verifyFile(flags.Arg(0), keys)
		summary = s.Summary
		extra = fmt.Sprintf(", %d audit entries, %d signed heads", s.AuditEntries, s.Signatures)
		if len(keys) == 0 && err == nil {
			var ids []string
			for _, k := range s.Header.PublicKeys {
				ids = append(ids, k.KeyID)
			}
			fmt.Fprintf(stdout, "checked with the key(s) the export states (%s): compare with key_id of GET /api/v1/audit/public-key\n", strings.Join(ids, ", "))
		}
	}
	var broken *eventstore.BrokenLink
	switch {
	case errors.As(err, &broken):
		fmt.Fprintln(stdout, "BROKEN: "+broken.Error())
		return 1
	case err != nil:
		fmt.Fprintln(stderr, "clouddb: "+err.Error())
		return 1
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "verified: %d events in %d chains, %d signed heads matched%s (%.0f events/s)\n", summary.Records, len(summary.Chains),
		summary.SignaturesMatched, extra, float64(summary.Records)/max(elapsed.Seconds(), 1e-9))
	for _, c := range summary.Chains {
		fmt.Fprintf(stdout, "  chain %s: entries %d to %d, head %s\n", c.ChainID, c.First, c.Last, c.Head)
	}
	return 0
}

func verifyFile(path string, keys []ed25519.PublicKey) (eventstore.FileSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return eventstore.FileSummary{}, err
	}
	defer f.Close()
	return eventstore.VerifyFile(f, keys)
}

// verifyLive verifies the management database's log with the server's key (CLOUDDB_AUDIT_SIGNING_KEY
// or the data dir's) and the keys given, for heads signed before a change of key. It opens the
// database only: nothing else of a serving process starts.
func verifyLive(ctx context.Context, keys []ed25519.PublicKey, getenv func(string) string, stderr io.Writer) (eventstore.Summary, error) {
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return eventstore.Summary{}, err
	}
	if err := cfg.LoadKeys(); err != nil {
		return eventstore.Summary{}, err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	dsn, stop := cfg.MgmtDSN, func() error { return nil }
	if dsn == "" {
		if dsn, stop, err = localmysql.Resolve(ctx, cfg.DataDir, log); err != nil {
			return eventstore.Summary{}, err
		}
	}
	defer stop() //nolint:errcheck // verification is over either way
	db, err := mgmtdb.Open(ctx, dsn, startupWait, log)
	if err != nil {
		return eventstore.Summary{}, err
	}
	defer db.Close()
	own, _ := cfg.AuditSigningKey.Public().(ed25519.PublicKey)
	return eventstore.VerifyLive(ctx, db, append(keys, own), func(events int64) {
		log.Info("verifying the event log", "events", events)
	})
}
