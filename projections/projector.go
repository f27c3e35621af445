// Package projections builds the read models of CloudDB Manager from the event log.
//
// One loop per process reads the tail of the event log for all projectors and gives each Projector
// its share. A projector's checkpoint lives in its own one-row table, locked and written in the same
// transaction as its read model, so every event takes effect exactly once, whichever process applies
// it, and a crash between the two leaves neither.
// Rebuild builds a fresh copy of a read model beside the live one and swaps it in with one
// RENAME TABLE, checkpoint included, so readers never see an empty or half-built model.
package projections

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/clouddbmanager/clouddb/eventstore"
)

// Projector builds one read model.
type Projector interface {
	// Name identifies the projector and prefixes its checkpoint table.
	Name() string
	// Tables are the read model's tables. Changing their DDL makes the runtime rebuild the model
	// at the next start.
	Tables() []Table
	// Handles lists the event types the projector applies; the others only advance its checkpoint.
	Handles() []string
	// Apply applies events, in log order, inside tx, to the physical tables that t names.
	// Returning an error rolls back everything Apply did for these events.
	Apply(ctx context.Context, tx *sql.Tx, t Tables, events []eventstore.Envelope) error
}

// Unhurried is a Projector some of whose event types need not be applied at once: an append of only
// those types does not wake it, and it looks for them every linger instead, applying in one batch
// what came meanwhile. For busy types (executed queries) whose read models may lag a moment, it
// saves a commit per append. WaitFor still waits for them (up to linger longer).
type Unhurried interface {
	Lazy() (types []string, linger time.Duration)
}

// Batcher is a Projector whose batches cost per row touched rather than per event (aggregates
// that rewrite the same buckets in every batch): the live loop reads up to BatchSize events at a
// time while it is behind, and applies them in one transaction, instead of readBatch.
type Batcher interface {
	BatchSize() int
}

// Ignorer is a Projector that handles every event type (AllEvents) but these: it never reads them.
type Ignorer interface {
	Ignores() []string
}

// Table is one table of a read model. DDL creates it, with {{table}} where its name goes.
type Table struct {
	Name string
	DDL  string
}

// Tables maps the logical table names of a projector to the physical tables it writes now: the live
// ones, or the copies a rebuild fills.
type Tables map[string]string

// Name returns the quoted physical name of a logical table; an unknown name panics, since it is a
// bug in the projector.
func (t Tables) Name(logical string) string {
	physical, ok := t[logical]
	if !ok {
		panic(fmt.Sprintf("projections: table %q is not declared", logical))
	}
	return "`" + physical + "`"
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

const (
	rebuildSuffix = "_rebuild"
	oldSuffix     = "_old"
)

// AllEvents in Handles makes a projector see every event.
const AllEvents = "*"

// projector is a registered Projector with what the runtime derives from it.
type projector struct {
	Projector
	handles    map[string]bool
	ignores    []string // types it never reads (Ignorer)
	live       Tables
	schemaHash string
}

func newProjector(p Projector) (*projector, error) {
	if !namePattern.MatchString(p.Name()) {
		return nil, fmt.Errorf("projections: name %q must match %s", p.Name(), namePattern)
	}
	h := sha256.New()
	for _, t := range p.Tables() {
		if !namePattern.MatchString(t.Name) || !strings.Contains(t.DDL, "{{table}}") {
			return nil, fmt.Errorf("projections: %s: table %q needs a name matching %s and {{table}} in its DDL", p.Name(), t.Name, namePattern)
		}
		fmt.Fprintf(h, "%s\x00%s\x00", t.Name, t.DDL)
	}
	handles := map[string]bool{}
	for _, typ := range p.Handles() {
		handles[typ] = true
	}
	registered := &projector{Projector: p, handles: handles, schemaHash: hex.EncodeToString(h.Sum(nil))}
	if ig, ok := p.(Ignorer); ok {
		registered.ignores = ig.Ignores()
	}
	registered.live = registered.tables("")
	return registered, nil
}

func (p *projector) checkpointTable() string { return p.Name() + "_checkpoint" }

func (p *projector) quotedCheckpoint() string { return "`" + p.checkpointTable() + "`" }

// tables names the live tables, or with a suffix the rebuild's or the replaced ones.
func (p *projector) tables(suffix string) Tables {
	t := Tables{}
	for _, table := range p.Tables() {
		t[table.Name] = table.Name + suffix
	}
	return t
}

// types are the event types the projector handles, nil when it handles every type.
func (p *projector) types() []string {
	if p.handles[AllEvents] {
		return nil
	}
	return p.Handles()
}

// urgentHead is the last local append holding an event whose append wakes the projector at once:
// one it handles, but not of its lazy types.
func (p *projector) urgentHead(store *eventstore.Store) int64 {
	lazy, _ := p.lazy()
	if p.handles[AllEvents] {
		return store.LocalHeadExcept(append(lazy, p.ignores...))
	}
	var urgent []string
	for _, t := range p.Handles() {
		if !slices.Contains(lazy, t) {
			urgent = append(urgent, t)
		}
	}
	return store.LocalHeadOf(urgent)
}

// lazy returns the projector's unhurried types and how long they may wait (see Unhurried).
func (p *projector) lazy() ([]string, time.Duration) {
	if u, ok := p.Projector.(Unhurried); ok {
		return u.Lazy()
	}
	return nil, 0
}

// batchSize is how many events the live loop gives the projector per transaction at most.
func (p *projector) batchSize() int {
	if b, ok := p.Projector.(Batcher); ok {
		return max(b.BatchSize(), readBatch)
	}
	return readBatch
}

func (p *projector) handlesType(eventType string) bool {
	return p.handles[eventType] || (p.handles[AllEvents] && !slices.Contains(p.ignores, eventType))
}

// relevant keeps the events the projector handles.
func (p *projector) relevant(events []eventstore.Envelope) []eventstore.Envelope {
	var out []eventstore.Envelope
	for _, e := range events {
		if p.handlesType(e.EventType) {
			out = append(out, e)
		}
	}
	return out
}

// create makes the tables (with suffix) and the checkpoint row if missing.
func (p *projector) create(ctx context.Context, db *sql.DB, suffix string) error {
	for _, t := range p.Tables() {
		ddl := strings.ReplaceAll(t.DDL, "{{table}}", "`"+t.Name+suffix+"`")
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return fmt.Errorf("projections: %s: create %s%s: %w", p.Name(), t.Name, suffix, err)
		}
	}
	checkpoint := "`" + p.checkpointTable() + suffix + "`"
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+checkpoint+` (
		id           TINYINT     NOT NULL PRIMARY KEY,
		position     BIGINT      NOT NULL,
		schema_hash  CHAR(64)    NOT NULL,
		paused_until DATETIME(6) NULL,
		updated_at   DATETIME(6) NOT NULL
	) ENGINE = InnoDB`); err != nil {
		return fmt.Errorf("projections: %s: create checkpoint: %w", p.Name(), err)
	}
	// Look before inserting: INSERT IGNORE on the existing row would wait for a batch that another
	// process is applying, which holds the row's lock.
	var rows int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+checkpoint).Scan(&rows); err != nil {
		return fmt.Errorf("projections: %s: read checkpoint row: %w", p.Name(), err)
	}
	if rows > 0 {
		return nil
	}
	_, err := db.ExecContext(ctx, `INSERT IGNORE INTO `+checkpoint+` (id, position, schema_hash, updated_at)
		VALUES (1, 0, ?, UTC_TIMESTAMP(6))`, p.schemaHash)
	if err != nil {
		return fmt.Errorf("projections: %s: create checkpoint row: %w", p.Name(), err)
	}
	return nil
}

// checkpoint reads the live checkpoint and the schema hash it was built with.
func (p *projector) checkpoint(ctx context.Context, db *sql.DB) (position int64, schemaHash string, err error) {
	err = db.QueryRowContext(ctx, "SELECT position, schema_hash FROM `"+p.checkpointTable()+"` WHERE id = 1").Scan(&position, &schemaHash)
	if err != nil {
		return 0, "", fmt.Errorf("projections: %s: read checkpoint: %w", p.Name(), err)
	}
	return position, schemaHash, nil
}
