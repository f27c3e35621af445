package api

import (
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/projections"
	"github.com/clouddbmanager/clouddb/queryexec/results"
)

// AuditRoutes is what the routes of the audit trail need.
type AuditRoutes struct {
	// Signer signs the heads of the event log's hash chains; its public key is served.
	Signer      *eventstore.HeadSigner
	Views       *projections.Views
	Projections *projections.Runtime
	Store       *eventstore.Store
	// DB is the management database, where exports read the chains and their signatures.
	DB *sql.DB
}

// audit serves the audit trail's routes.
type audit struct {
	s *Server
	AuditRoutes
	actions []string // the actions an entry can have (projections.AuditActions)
}

// MountAudit adds the routes of the audit trail.
func (s *Server) MountAudit(routes AuditRoutes) {
	a := audit{s: s, AuditRoutes: routes}
	if routes.Store != nil {
		a.actions = projections.AuditActions(routes.Store.Registry().Types())
	}
	s.mount([]route{
		{"GET", "/audit/public-key", member, a.handlePublicKey},
		// Tenant admins read their tenant's trail, super admins any: decided by scope.
		{"GET", "/audit", authenticated, a.handleAudit},
		{"GET", "/audit/export", authenticated, a.handleExport},
	})
}

// handlePublicKey answers the key that verifies the signed chain heads, raw (base64) and as a PEM
// block (PKIX), which OpenSSL reads.
func (a audit) handlePublicKey(w http.ResponseWriter, r *http.Request) {
	id, pub := a.Signer.PublicKey()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		a.s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"key_id": id, "algorithm": "Ed25519",
		"public_key": base64.StdEncoding.EncodeToString(pub), "public_key_pem": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
}

// scope is the chain a caller may read: a tenant admin their session's tenant's, a super admin the
// one ?tenant_id names ("platform" for the platform's), or every chain ("").
func (a audit) scope(r *http.Request) (string, error) {
	p := principalFrom(r.Context())
	asked := r.URL.Query().Get("tenant_id")
	switch {
	case p.SuperAdmin:
		if asked != "" && asked != eventstore.PlatformChain {
			if _, err := domain.ParseTenantID(asked); err != nil {
				return "", domain.NewValidationError("tenant_id", "must be a tenant id or platform")
			}
		}
		return asked, nil
	case p.role() != domain.RoleTenantAdmin:
		return "", domain.ErrForbidden
	case asked != "" && asked != string(p.TenantID):
		return "", fmt.Errorf("tenant %s: %w", asked, domain.ErrNotFound) // another tenant's trail does not exist for them
	}
	return string(p.TenantID), nil
}

// period reads ?from= and ?to= (RFC 3339; to excluded).
func period(r *http.Request) (from, to time.Time, err error) {
	var errs []error
	for name, t := range map[string]*time.Time{"from": &from, "to": &to} {
		if raw := r.URL.Query().Get(name); raw != "" {
			parsed, perr := time.Parse(time.RFC3339Nano, raw)
			if perr != nil {
				errs = append(errs, domain.NewValidationError(name, "must be a time in RFC 3339 (2026-12-07T10:00:00Z)"))
				continue
			}
			*t = parsed.UTC()
		}
	}
	if len(errs) == 0 && !from.IsZero() && !to.IsZero() && from.After(to) {
		errs = append(errs, domain.NewValidationError("to", "must not be before from"))
	}
	return from, to, errors.Join(errs...)
}

// filter reads the filters of GET /audit. An action that is neither an action entries can have
// nor a prefix of one ending in a dot is refused (validation_failed): a typo would otherwise
// answer an empty list that looks like a clean record.
func (a audit) filter(r *http.Request) (projections.AuditFilter, error) {
	chain, err := a.scope(r)
	if err != nil {
		return projections.AuditFilter{}, err
	}
	q := r.URL.Query()
	f := projections.AuditFilter{Chain: chain, ActorID: q.Get("actor_id"), TargetID: q.Get("target_id"), Action: q.Get("action"), Cursor: q.Get("cursor")}
	var errs []error
	if f.From, f.To, err = period(r); err != nil {
		errs = append(errs, err)
	}
	if f.Action != "" && !slices.ContainsFunc(a.actions, func(known string) bool {
		return known == f.Action || strings.HasSuffix(f.Action, ".") && strings.HasPrefix(known, f.Action)
	}) {
		errs = append(errs, domain.NewValidationError("action", "is not an action of the audit log, nor a prefix of one ending in a dot (database.)"))
	}
	if f.Limit, err = pageLimit(r); err != nil {
		errs = append(errs, err)
	}
	return f, errors.Join(errs...)
}

func (a audit) handleAudit(w http.ResponseWriter, r *http.Request) {
	f, err := a.filter(r)
	if err != nil {
		a.s.writeError(w, r, err)
		return
	}
	a.s.caughtUp(r.Context(), a.Store, a.Projections, "audit_log")
	entries, next, err := a.Views.Audit(r.Context(), f)
	if err != nil {
		a.s.writeError(w, r, err)
		return
	}
	if entries == nil {
		entries = []projections.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": entries, "next_cursor": nullable(next)})
}

// exportWindow is how many events of a chain an export reads in one window: memory stays bounded
// whatever the period.
const exportWindow = 1000

// auditCSVColumns are the columns of a CSV export, all text but details (JSON).
var auditCSVColumns = []results.Column{{Name: "id", Type: "CHAR"}, {Name: "at", Type: "VARCHAR"}, {Name: "tenant_id", Type: "CHAR"},
	{Name: "action", Type: "VARCHAR"}, {Name: "actor_id", Type: "CHAR"}, {Name: "actor_email", Type: "VARCHAR"},
	{Name: "actor_via", Type: "VARCHAR"}, {Name: "target_type", Type: "VARCHAR"}, {Name: "target_id", Type: "VARCHAR"},
	{Name: "ip", Type: "VARCHAR"}, {Name: "user_agent", Type: "VARCHAR"}, {Name: "details", Type: "JSON"}}

// handleExport streams the entries of a period (any length) in chain order. NDJSON and JSON carry,
// per chain, its signed heads and every event from the first entry exported to a signed head
// (signing the head now when none covers the last entry yet), each with its link and its audit
// entry: `clouddb audit verify FILE` checks it with the public key alone. CSV holds the entries.
func (a audit) handleExport(w http.ResponseWriter, r *http.Request) {
	chain, err := a.scope(r)
	var from, to time.Time
	if err == nil {
		from, to, err = period(r)
	}
	format := r.URL.Query().Get("format")
	if err == nil && format != "csv" && format != "json" && format != "ndjson" {
		err = domain.NewValidationError("format", "must be csv, json or ndjson")
	}
	if err != nil {
		a.s.writeError(w, r, err)
		return
	}
	a.s.caughtUp(r.Context(), a.Store, a.Projections, "audit_log")
	ranges, err := a.Views.AuditRanges(r.Context(), chain, from, to)
	if err != nil {
		a.s.writeError(w, r, err)
		return
	}
	sections, err := a.sections(r.Context(), ranges, format != "csv")
	if err != nil {
		a.s.writeError(w, r, err)
		return
	}
	name := chain
	if name == "" {
		name = "all"
	}
	h := w.Header()
	h.Set("Content-Type", map[string]string{"csv": "text/csv; charset=utf-8", "json": "application/json", "ndjson": "application/x-ndjson"}[format])
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="audit-%s-%s.%s"`, name, a.s.now().UTC().Format("20060102T150405Z"), format))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if format == "csv" {
		err = a.exportCSV(r.Context(), w, sections, from, to)
	} else {
		err = a.exportChains(r.Context(), w, format == "json", chain, sections, from, to)
	}
	if err != nil { // the status is sent: all that is left is to cut the download short
		a.s.log.WarnContext(r.Context(), "audit export interrupted", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// section is the part of a chain an export carries: its entries' sequences, up to a signed head.
type section struct {
	projections.AuditChainRange
	head int64 // the signed head the events run to (≥ Last); 0 for CSV
	sigs []eventstore.HeadSignature
}

// sections finds, for each chain, the signed heads from its first entry on, signing the chain's
// head now when no signature covers its last entry yet.
func (a audit) sections(ctx context.Context, ranges []projections.AuditChainRange, signed bool) ([]section, error) {
	out := make([]section, len(ranges))
	for i, rg := range ranges {
		out[i].AuditChainRange = rg
		if !signed {
			continue
		}
		sigs, err := eventstore.ReadSignatures(ctx, a.DB, rg.Chain, rg.First)
		if err != nil {
			return nil, err
		}
		if len(sigs) == 0 || sigs[len(sigs)-1].ChainSeq < rg.Last {
			if _, err := a.Signer.Sign(ctx, rg.Chain); err != nil {
				return nil, err
			}
			if sigs, err = eventstore.ReadSignatures(ctx, a.DB, rg.Chain, rg.First); err != nil {
				return nil, err
			}
		}
		for _, sig := range sigs {
			out[i].sigs = append(out[i].sigs, sig)
			if sig.ChainSeq >= rg.Last {
				out[i].head = sig.ChainSeq
				break
			}
		}
		if out[i].head == 0 {
			return nil, fmt.Errorf("audit export: no signed head of chain %s covers entry %d", rg.Chain, rg.Last)
		}
	}
	return out, nil
}

func (a audit) exportChains(ctx context.Context, w http.ResponseWriter, asJSON bool, chain string, sections []section, from, to time.Time) error {
	keyID, pub := a.Signer.PublicKey()
	header := eventstore.ExportHeader{ExportedAt: a.s.now().UTC(), TenantID: chain,
		PublicKeys: []eventstore.ExportKey{{KeyID: keyID, Algorithm: "Ed25519", PublicKey: pub}}}
	if !from.IsZero() {
		header.From = &from
	}
	if !to.IsZero() {
		header.To = &to
	}
	out, err := eventstore.NewExportWriter(w, asJSON, header)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var current *section
	for b := range a.readAhead(ctx, sections, from, to, true) {
		if b.err != nil {
			return b.err
		}
		if b.sec != current { // a chain's signed heads come before its events
			current = b.sec
			for _, sig := range current.sigs {
				if err := out.SignedHead(sig); err != nil {
					return err
				}
			}
		}
		start := 0
		for _, end := range b.ends {
			if err := out.Encoded((*b.records)[start:end]); err != nil {
				return err
			}
			start = end
		}
		exportBlocks.Put(b.records)
	}
	return out.Close()
}

func (a audit) exportCSV(ctx context.Context, w http.ResponseWriter, sections []section, from, to time.Time) error {
	out, err := results.NewExporter(w, results.ExportOptions{Format: results.ExportCSV})
	if err != nil {
		return err
	}
	if err := out.Begin(auditCSVColumns); err != nil {
		return err
	}
	text := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for b := range a.readAhead(ctx, sections, from, to, false) {
		if b.err != nil {
			return b.err
		}
		for _, e := range b.entries {
			row, err := json.Marshal([]any{e.ID, e.At.Format(time.RFC3339Nano), text(e.TenantID), e.Action, text(e.Actor.ID), text(e.Actor.Email),
				text(e.Actor.Via), e.Target.Type, e.Target.ID, text(e.IP), text(e.UserAgent), e.Details})
			if err != nil {
				return err
			}
			if err := out.Row(row); err != nil {
				return err
			}
		}
	}
	return out.End()
}

// exportBatch is one window of a chain: for CSV its entries in the period, for NDJSON and JSON its
// events with their entries, encoded.
type exportBatch struct {
	sec     *section
	entries []projections.AuditEntry
	records *[]byte // the records, one after the other, from exportBlocks
	ends    []int   // where each record ends in records
	err     error   // nothing follows a batch with an error
}

// exportBlocks holds the blocks windows' records are encoded into, handed back once written: a
// window's 2–3 MB are not allocated again for each.
var exportBlocks = sync.Pool{New: func() any { return new([]byte) }}

// exportReaders is how many windows an export reads at once. A window's time is mostly the
// database's (the serving process was busy a quarter of an export's time when it read one window
// ahead), so windows are read side by side and written in order; memory stays bounded by
// exportReaders windows in flight and as many read ahead.
const exportReaders = 4

// readAhead reads the sections' windows on exportReaders goroutines, ahead of the writer, and
// returns them in order; withChain reads the events too, up to each section's signed head. It
// stops when ctx ends.
func (a audit) readAhead(ctx context.Context, sections []section, from, to time.Time, withChain bool) <-chan exportBatch {
	type window struct {
		sec    *section
		lo, hi int64
		read   chan exportBatch
	}
	work, ordered, batches := make(chan window), make(chan chan exportBatch, exportReaders), make(chan exportBatch)
	for range exportReaders {
		go func() {
			for w := range work {
				w.read <- a.readWindow(ctx, w.sec, w.lo, w.hi, from, to, withChain)
			}
		}()
	}
	go func() {
		defer close(ordered)
		defer close(work)
		for i := range sections {
			sec := &sections[i]
			last := sec.Last
			if withChain {
				last = sec.head
			}
			for lo := sec.First; lo <= last; lo += exportWindow {
				w := window{sec: sec, lo: lo, hi: min(last, lo+exportWindow-1), read: make(chan exportBatch, 1)}
				select {
				case ordered <- w.read:
				case <-ctx.Done():
					return
				}
				select {
				case work <- w:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	go func() {
		defer close(batches)
		for read := range ordered {
			var b exportBatch
			select {
			case b = <-read:
			case <-ctx.Done():
				return
			}
			select {
			case batches <- b:
			case <-ctx.Done():
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	return batches
}

// readWindow reads the entries of sec from sequence lo to hi that are in the period or, with
// withChain, its events with their entries, encoded as the export's records.
func (a audit) readWindow(ctx context.Context, sec *section, lo, hi int64, from, to time.Time, withChain bool) exportBatch {
	b := exportBatch{sec: sec}
	if !withChain {
		if lo <= sec.Last {
			b.entries, b.err = a.Views.AuditBySeq(ctx, sec.Chain, lo, min(hi, sec.Last), from, to)
		}
		return b
	}
	block := exportBlocks.Get().(*[]byte)
	records, entry := (*block)[:0], []byte(nil)
	b.ends = make([]int, 0, hi-lo+1)
	b.err = a.Views.AuditChain(ctx, sec.Chain, lo, hi, from, to, func(rec *eventstore.ChainRecord, e *projections.AuditEntry) error {
		entry = entry[:0]
		if e != nil {
			entry = e.AppendJSON(entry)
		}
		records = eventstore.AppendEvent(records, *rec, eventstore.Withheld(rec.Data), entry)
		b.ends = append(b.ends, len(records))
		return nil
	})
	*block = records
	b.records = block
	return b
}
