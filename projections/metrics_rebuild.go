package projections

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/latency"
)

// A rebuild of the metrics starts from empty tables and reads the log in order, which is time
// order but for the moments between an event's time and its recording. So it writes each bucket
// once: metricsRebuild keeps the open buckets in memory across the rebuild's batches and writes
// a bucket with a plain multi-row INSERT (no upsert, no histogram read back) only once the log's
// time (about the latest recording time read, laterLogTime) has passed its end by rebuildSlack; when the rebuild
// reaches the head it writes every bucket still open. An event for a bucket written already (later
// than the slack) counts as a live batch counts it: its rows upserted, their stored histograms
// read back and merged. The rows are those the live projector writes, byte for byte
// (TestMetricsRebuildWritesEachBucketOnceAndEqualsLive).
//
// The state the gauges and sign-in failures follow (databases, totals, memberships) is kept in
// memory too (the tables start empty, so memory holds all of it) and written as it changes.
const rebuildSlack = time.Hour

// metricsRebuild is one rebuild's memory.
type metricsRebuild struct {
	p        Metrics
	t        Tables
	position int64
	counted  time.Time // the latest time counted
	cut      domain.MetricsPruned
	// The open buckets; written (per grain code) is where the buckets written end.
	usage    map[usageKey]*usageRow
	patterns map[patternKey]*patternRow
	written  map[string]int64
	logTime  time.Time             // where the log's time stands (laterLogTime)
	texts    map[textKey]time.Time // the last_seen each pattern's text was written with
	dbs      map[domain.DatabaseID]*metricsDatabase
	totals   map[domain.TenantID]*metricsTotals
	members  map[domain.UserID][]domain.TenantID
	intern   map[string]string // decode's: the ids, fingerprints and codes seen
	refs     rowRefs           // decode's
	slots    rowSlots          // fold's: the open rows by refs
	closed   [2]int            // close's: the usage and pattern rows the last batch closed
	noLoad   atomic.Bool       // the writes': LOAD DATA was refused
}

// rebuildLoadData: a rebuild tries LOAD DATA first (the tests turn it off to cover the INSERTs).
var rebuildLoadData = true

func (p Metrics) startRebuild(t Tables) rebuildSession {
	m := &metricsRebuild{p: p, t: t, usage: map[usageKey]*usageRow{}, patterns: map[patternKey]*patternRow{},
		written: map[string]int64{}, texts: map[textKey]time.Time{}, dbs: map[domain.DatabaseID]*metricsDatabase{},
		totals: map[domain.TenantID]*metricsTotals{}, members: map[domain.UserID][]domain.TenantID{},
		intern: map[string]string{}, refs: newRowRefs()}
	m.noLoad.Store(!rebuildLoadData)
	return m
}

// metricsRebuildWrite is what one batch of a rebuild writes: the buckets it closed, inserted, and
// a live batch's writes of the rest (late rows, followed state, texts, the state row and the cut).
type metricsRebuildWrite struct {
	noLoad      *atomic.Bool // the session's: LOAD DATA was refused
	usageKeys   []usageKey
	usageRows   []*usageRow
	patternKeys []patternKey
	patternRows []*patternRow
	batch       *metricsBatch
}

// decode decodes a batch's events: executed queries by decodeQuery, the others by the registry.
func (m *metricsRebuild) decode(events []eventstore.Envelope) (any, error) {
	decoded := make([]decodedEvent, len(events))
	for i, env := range events {
		e, err := m.p.decode(env, m.intern)
		if err != nil {
			return nil, fmt.Errorf("projections: metrics at position %d: %w", env.Position, err)
		}
		decoded[i] = decodedEvent{env: env, e: e}
		if q, ok := e.(domain.QueryExecuted); ok {
			decoded[i].refs = m.refs.of(q)
		}
	}
	return decoded, nil
}

// queryRefs number an executed query's rows for a rebuild's fold (rowRefs): its usage rows'
// subjects (the platform, tenant, database and member, in that order), its tenant's pattern and
// its database and member's, with the pattern's fingerprint. ok is false when rowRefs holds as
// many subjects as it may: the fold then looks the rows up by their keys.
type queryRefs struct {
	usage                  [4]int32
	pattern, memberPattern int32
	fingerprint            string
	ok                     bool
}

// rowRefs numbers the subjects of the rows a rebuild folds executed queries into. It is decode's:
// the reading goroutine hashes an event's ids once, in maps of thousands, and the fold finds most
// rows by index (rowSlots) instead of hashing the four strings of each of its 14 keys in maps of
// hundreds of thousands of open rows (a third of the fold's time). Subjects are numbered by the
// numbers of their ids, which hash as a few bytes.
type rowRefs struct {
	ids          map[string]int32 // tenants', databases' and users'
	fingerprints map[string]fingerprintRef
	usage        map[usageSubject]int32
	patterns     map[[4]int32]int32 // tenant, fingerprint, database, user (-1, -1: the tenant's own)
}

// fingerprintRef is a fingerprint's name (Fingerprint) and number.
type fingerprintRef struct {
	name string
	n    int32
}

// usageSubject is a usage row's key but its grain and bucket, by numbers: kind is the scope's
// letter, subject the database's or user's id (-1: none).
type usageSubject struct {
	kind            byte
	tenant, subject int32
}

// maxRefs bounds what rowRefs numbers (the slots are 3 per subject, 16 bytes each): a tenant's
// distinct statements are a pattern each.
const maxRefs = 200_000

func newRowRefs() rowRefs {
	return rowRefs{ids: map[string]int32{}, fingerprints: map[string]fingerprintRef{}, usage: map[usageSubject]int32{},
		patterns: map[[4]int32]int32{}}
}

func (r *rowRefs) of(q domain.QueryExecuted) queryRefs {
	fp, ok := r.fingerprints[q.Fingerprint]
	if !ok && len(r.fingerprints) < maxRefs {
		fp = fingerprintRef{Fingerprint(q.Fingerprint), int32(len(r.fingerprints))}
		r.fingerprints[q.Fingerprint] = fp
		ok = true
	}
	refs := queryRefs{fingerprint: fp.name, ok: ok}
	var tenant, db, user int32
	tenant, refs.ok = number(r.ids, string(q.TenantID), refs.ok)
	db, refs.ok = number(r.ids, string(q.DatabaseID), refs.ok)
	user, refs.ok = number(r.ids, string(q.UserID), refs.ok)
	for i, s := range [...]usageSubject{{ScopePlatform[0], -1, -1}, {ScopeTenant[0], tenant, -1}, {ScopeDatabase[0], tenant, db}, {ScopeUser[0], tenant, user}} {
		refs.usage[i], refs.ok = number(r.usage, s, refs.ok)
	}
	refs.pattern, refs.ok = number(r.patterns, [4]int32{tenant, fp.n, -1, -1}, refs.ok)
	refs.memberPattern, refs.ok = number(r.patterns, [4]int32{tenant, fp.n, db, user}, refs.ok)
	return refs
}

// number returns k's number in numbers, given one if it has none and numbers may grow; ok is
// false (and stays so) when it may not.
func number[K comparable](numbers map[K]int32, k K, ok bool) (int32, bool) {
	if !ok {
		return 0, false
	}
	n, found := numbers[k]
	if !found {
		if len(numbers) >= maxRefs {
			return 0, false
		}
		n = int32(len(numbers))
		numbers[k] = n
	}
	return n, true
}

// rowSlots are a rebuild fold's open rows by queryRefs: per subject and grain (3 slots a
// subject, in the order of grains), the row of the bucket last counted in, found in its map
// when the bucket changes. A slot stays right while the fold runs (written does not move), and
// the slots are emptied when rows leave the maps (close, prune).
type rowSlots struct {
	usage    []rowSlot[usageRow]
	patterns []rowSlot[patternRow]
	// textDay: per tenant's pattern, the day its text was last noted in the fold, plus one (0:
	// none).
	textDay []int64
}

type rowSlot[R any] struct {
	bucket int64
	row    *R
}

// of returns the slots when refs are ok, grown to hold their subjects; else nil.
func (s *rowSlots) of(refs *queryRefs) *rowSlots {
	if s == nil || !refs.ok {
		return nil
	}
	usage := 3 * int(max(refs.usage[0], refs.usage[1], refs.usage[2], refs.usage[3])+1)
	if usage > len(s.usage) {
		s.usage = append(s.usage, make([]rowSlot[usageRow], usage-len(s.usage)+len(s.usage)/2)...)
	}
	if patterns := 3 * int(max(refs.pattern, refs.memberPattern)+1); patterns > len(s.patterns) {
		s.patterns = append(s.patterns, make([]rowSlot[patternRow], patterns-len(s.patterns)+len(s.patterns)/2)...)
		s.textDay = append(s.textDay, make([]int64, len(s.patterns)/3-len(s.textDay))...)
	}
	return s
}

func (s *rowSlots) usageSlots() []rowSlot[usageRow] {
	if s == nil {
		return nil
	}
	return s.usage
}

func (s *rowSlots) patternSlots() []rowSlot[patternRow] {
	if s == nil {
		return nil
	}
	return s.patterns
}

// slotIndex is the slot of subject in grain (its index in grains), or -1 without slots.
func slotIndex(s *rowSlots, subject int32, grain int) int {
	if s == nil {
		return -1
	}
	return 3*int(subject) + grain
}

// textSeen reports whether the text of the tenant's pattern was noted for day in this fold, and
// marks it so.
func (s *rowSlots) textSeen(pattern int32, day int64) bool {
	if s == nil {
		return false
	}
	if s.textDay[pattern] == day+1 {
		return true
	}
	s.textDay[pattern] = day + 1
	return false
}

func (s *rowSlots) clear() {
	if s != nil {
		clear(s.usage)
		clear(s.patterns)
		clear(s.textDay)
	}
}

// slotRow returns the row of k (a key of a bucket of grain): slots[i]'s when it holds that bucket,
// else openRow's, then kept in slots[i] (i < 0: no slot).
func slotRow[K comparable, R any](b *metricsBatch, slots []rowSlot[R], i int, rows, late map[K]*R, k K, grain string, bucket int64) *R {
	if i >= 0 && slots[i].row != nil && slots[i].bucket == bucket {
		return slots[i].row
	}
	row := openRow(b, rows, late, k, grain, bucket)
	if i >= 0 {
		slots[i] = rowSlot[R]{bucket, row}
	}
	return row
}

// fold counts a decoded batch (in log order, each event once) into the open buckets and returns
// the batch's writes.
func (m *metricsRebuild) fold(decoded any) (rebuildWrite, error) {
	b := m.batch()
	events := decoded.([]decodedEvent)
	for i := range events {
		b.position = events[i].env.Position
		b.fold(&events[i])
	}
	m.logTime = laterLogTime(m.logTime, events)
	until := m.logTime.Add(-rebuildSlack)
	for code, size := range grainSizes {
		m.written[code] = max(m.written[code], until.Truncate(size).Unix())
	}
	if len(m.usage)+len(m.patterns) > rebuildMaxOpenRows {
		// A tenant's distinct statements are a pattern row each, open until their day is over:
		// tens of millions in a day of a hostile tenant, where a live batch holds its own only.
		// Every open bucket closes now; later events for them count as late (upserted), as for
		// any bucket written.
		for k := range m.usage {
			m.written[k.grain] = max(m.written[k.grain], k.bucket+1)
		}
		for k := range m.patterns {
			m.written[k.grain] = max(m.written[k.grain], k.bucket+1)
		}
	}
	return m.close(b), nil
}

// rebuildMaxOpenRows bounds the rows a rebuild keeps open in memory (a few hundred bytes each).
var rebuildMaxOpenRows = 1_000_000

// logTimeEvents is how many of a batch's last events say where the log's time stands: the
// earliest of their recording times, so that one event recorded by a clock far ahead does not
// close every open bucket (the rest of the rebuild would then be late, and upserted).
const logTimeEvents = 64

// laterLogTime is the log's time after events: the earliest recording time of the last
// logTimeEvents of them, if later than now.
func laterLogTime(now time.Time, events []decodedEvent) time.Time {
	if len(events) == 0 {
		return now
	}
	last := events[max(len(events)-logTimeEvents, 0):]
	at := last[0].env.RecordedAt
	for _, d := range last[1:] {
		if d.env.RecordedAt.Before(at) {
			at = d.env.RecordedAt
		}
	}
	if at.After(now) {
		return at
	}
	return now
}

// flush returns the writes of every bucket still open; later events (the rebuild's last ones,
// read while the live projector waits) count as late.
func (m *metricsRebuild) flush() rebuildWrite {
	for code := range grainSizes {
		m.written[code] = math.MaxInt64
	}
	return m.close(m.batch())
}

// batch is a live batch's fold over the rebuild's memory.
func (m *metricsRebuild) batch() *metricsBatch {
	return &metricsBatch{t: m.t, position: m.position, counted: m.counted, cut: m.cut,
		usage: m.usage, patterns: m.patterns, texts: map[textKey]patternText{}, dbs: m.dbs, totals: m.totals, members: m.members,
		written: m.written, lateUsage: map[usageKey]*usageRow{}, latePatterns: map[patternKey]*patternRow{},
		slots: &m.slots}
}

// close takes b's results back into memory, closes the buckets before written and returns what to
// write. The write owns everything it holds: the next fold runs while it is written.
func (m *metricsRebuild) close(b *metricsBatch) *metricsRebuildWrite {
	m.position, m.counted, m.cut = b.position, b.counted, b.cut
	m.slots.clear() // the closed rows and the late ones leave
	w := &metricsRebuildWrite{noLoad: &m.noLoad}
	closedBefore := func(grain string, bucket int64) bool { return bucket < m.written[grain] }
	w.usageKeys, w.usageRows = takeClosed(m.usage, func(k usageKey) bool { return closedBefore(k.grain, k.bucket) }, compareUsageKeys, m.closed[0])
	w.patternKeys, w.patternRows = takeClosed(m.patterns, func(k patternKey) bool { return closedBefore(k.grain, k.bucket) }, comparePatternKeys, m.closed[1])
	m.closed = [2]int{len(w.usageKeys), len(w.patternKeys)}
	// The late rows, the followed state that changed (copied: the next fold changes it) and the
	// texts not written with this last_seen yet go through a live batch's writes, reading every
	// stored histogram back.
	late := &metricsBatch{t: m.t, position: b.position, counted: b.counted, cut: b.cut, cutMoved: b.cutMoved,
		usage: b.lateUsage, patterns: b.latePatterns, texts: map[textKey]patternText{},
		dbs: map[domain.DatabaseID]*metricsDatabase{}, totals: map[domain.TenantID]*metricsTotals{}, joined: b.joined, readAll: true,
		cache: &cachedHistograms{usage: map[usageKey]*latency.Histogram{}, patterns: map[patternKey]*latency.Histogram{},
			complete: map[string]int64{}}}
	for code := range grainSizes {
		late.cache.complete[code] = math.MaxInt64
	}
	for id, d := range m.dbs {
		if d.changed {
			c := *d
			late.dbs[id] = &c
			d.changed = false
		}
	}
	for id, t := range m.totals {
		if t.changed {
			c := *t
			late.totals[id] = &c
			t.changed = false
		}
	}
	if b.cutMoved {
		clear(m.texts) // the cut may delete them
	}
	for k, v := range b.texts {
		if last, ok := m.texts[k]; !ok || last.Before(v.lastSeen) {
			late.texts[k] = v
			m.texts[k] = v.lastSeen
		}
	}
	if len(m.texts) > rebuildMaxOpenRows {
		clear(m.texts) // a tenant's distinct statements, too many to remember: written again when seen
	}
	w.batch = late
	return w
}

// takeClosed removes from open the rows whose buckets are closed and returns them in key order;
// about as many as expected (the previous batch's: batches close alike) are made room for first.
func takeClosed[K comparable, R any](open map[K]R, closed func(K) bool, compare func(K, K) int, expected int) ([]K, []R) {
	type entry struct {
		k K
		r R
	}
	taken := make([]entry, 0, expected+expected/4)
	for k, r := range open {
		if closed(k) {
			taken = append(taken, entry{k, r})
			delete(open, k)
		}
	}
	slices.SortFunc(taken, func(x, y entry) int { return compare(x.k, y.k) })
	keys, rows := make([]K, len(taken)), make([]R, len(taken))
	for i, e := range taken {
		keys[i], rows[i] = e.k, e.r
	}
	return keys, rows
}

func (w *metricsRebuildWrite) write(ctx context.Context, tx *sql.Tx) error {
	if err := w.insert(ctx, tx); err != nil {
		return err
	}
	return w.batch.write(ctx, tx) // its histogram cache is its own, thrown away with it
}

// insert writes the closed buckets: by LOAD DATA LOCAL INFILE (the rows as tab-separated text,
// which MariaDB reads for a third less processor time than the same rows in INSERT statements),
// or by INSERTs where the server or the driver refuses it (local_infile off: then for the rest
// of the rebuild).
func (w *metricsRebuildWrite) insert(ctx context.Context, tx *sql.Tx) error {
	b := w.batch
	if !w.noLoad.Load() {
		err := loadRows(ctx, tx, b.t.Name("metrics_usage"), usageColumns, tsvRows(w.usageKeys, w.usageRows, appendUsageRow))
		if err == nil {
			loadErr := loadRows(ctx, tx, b.t.Name("metrics_patterns"), patternColumns, tsvRows(w.patternKeys, w.patternRows, appendPatternRow))
			if loadErr == nil {
				return nil
			}
			// The usage rows are in: the patterns go by INSERT.
			w.noLoad.Store(true)
			loadsRefused.Add(1)
			if err := insertRows(ctx, tx, b.t.Name("metrics_patterns"), patternColumns, w.patternKeys, w.patternRows, appendPatternRow); err != nil {
				return fmt.Errorf("projections: metrics: write patterns (LOAD DATA: %v): %w", loadErr, err)
			}
			return nil
		}
		w.noLoad.Store(true)
		loadsRefused.Add(1)
	}
	if err := insertRows(ctx, tx, b.t.Name("metrics_usage"), usageColumns, w.usageKeys, w.usageRows, appendUsageRow); err != nil {
		return fmt.Errorf("projections: metrics: write buckets: %w", err)
	}
	if err := insertRows(ctx, tx, b.t.Name("metrics_patterns"), patternColumns, w.patternKeys, w.patternRows, appendPatternRow); err != nil {
		return fmt.Errorf("projections: metrics: write patterns: %w", err)
	}
	return nil
}

var (
	// usageColumns and patternColumns are the columns appendUsageRow and appendPatternRow write.
	usageColumns   = "(tenant_id, scope, subject_id, grain, bucket, " + strings.Join(counterColumns[:], ", ") + ", latency, database_count, storage_bytes)"
	patternColumns = "(tenant_id, scope, grain, bucket, fingerprint, database_id, user_id, queries, errors, latency)"
	loadsRefused   atomic.Int64 // LOAD DATA refused, in this process
)

// loadRows loads rows, tab-separated text as LOAD DATA reads it by default, into table.
func loadRows(ctx context.Context, tx *sql.Tx, table, columns string, rows []byte) error {
	if len(rows) == 0 {
		return nil
	}
	// The driver's readers are the process's, served to any connection whose server asks for
	// the name, tenants' sandbox sessions included (their LOAD DATA is refused before it is
	// sent, see sqlcheck): a name nobody can guess keeps the rows this statement's alone.
	name := "clouddb-metrics-rebuild-" + uuid.NewString()
	mysql.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(rows) })
	defer mysql.DeregisterReaderHandler(name)
	_, err := tx.ExecContext(ctx, `LOAD DATA LOCAL INFILE 'Reader::`+name+`' INTO TABLE `+table+` CHARACTER SET binary `+columns)
	return err
}

// rowFormat writes a closed bucket's values in one of the two forms a rebuild sends them in:
// LOAD DATA's default text (tsv: fields by tabs, \N for NULL) or an INSERT's literals.
type rowFormat struct {
	tsv     bool
	scratch *[]byte // where histograms are encoded, one after the other
}

func (f rowFormat) sep(q []byte) []byte {
	if f.tsv {
		return append(q, '\t')
	}
	return append(q, ',')
}

func (f rowFormat) text(q []byte, s string) []byte {
	if f.tsv {
		return appendEscaped(q, s)
	}
	return appendString(q, s)
}

// histogram appends h's encoding: NULL when h is nil or empty (MarshalBinary's nil).
func (f rowFormat) histogram(q []byte, h *latency.Histogram) []byte {
	var b []byte
	if h != nil {
		*f.scratch, _ = h.AppendBinary((*f.scratch)[:0])
		if len(*f.scratch) > 0 {
			b = *f.scratch
		}
	}
	if f.tsv {
		return appendField(q, b)
	}
	return appendBytes(q, b)
}

func (f rowFormat) bucket(q []byte, unix int64) []byte {
	if f.tsv {
		return time.Unix(unix, 0).UTC().AppendFormat(q, time.DateTime)
	}
	return appendBucket(q, unix)
}

func (f rowFormat) nullInt(q []byte, v *int64) []byte {
	if f.tsv {
		return appendNullInt(q, v)
	}
	return appendInt(q, v)
}

// appendUsageRow appends a usage row's values in usageColumns' order.
func appendUsageRow(q []byte, f rowFormat, k usageKey, r *usageRow) []byte {
	q = f.text(q, string(k.tenant))
	q = f.text(f.sep(q), k.scope)
	q = f.text(f.sep(q), k.subject)
	q = f.text(f.sep(q), k.grain)
	q = f.bucket(f.sep(q), k.bucket)
	for _, c := range r.counts {
		q = strconv.AppendUint(f.sep(q), c, 10)
	}
	r.settle()
	q = f.histogram(f.sep(q), r.latency)
	q = f.nullInt(f.sep(q), r.databases)
	return f.nullInt(f.sep(q), r.storage)
}

// appendPatternRow appends a pattern row's values in patternColumns' order.
func appendPatternRow(q []byte, f rowFormat, k patternKey, r *patternRow) []byte {
	q = f.text(q, string(k.tenant))
	q = f.text(f.sep(q), k.scope())
	q = f.text(f.sep(q), k.grain)
	q = f.bucket(f.sep(q), k.bucket)
	q = f.text(f.sep(q), k.fingerprint)
	q = f.text(f.sep(q), string(k.database))
	q = f.text(f.sep(q), string(k.user))
	q = strconv.AppendUint(f.sep(q), r.queries, 10)
	q = strconv.AppendUint(f.sep(q), r.errors, 10)
	r.settle()
	return f.histogram(f.sep(q), &r.latency)
}

// tsvRows is the rows as LOAD DATA reads them: a line each.
func tsvRows[K, R any](keys []K, rows []R, appendRow func([]byte, rowFormat, K, R) []byte) []byte {
	q := make([]byte, 0, 256*len(keys))
	f := rowFormat{tsv: true, scratch: new([]byte)}
	for i, k := range keys {
		q = append(appendRow(q, f, k, rows[i]), '\n')
	}
	return q
}

// appendField appends b escaped as LOAD DATA's default format reads it; nil is NULL.
func appendField(q, b []byte) []byte {
	if b == nil {
		return append(q, '\\', 'N')
	}
	return appendEscaped(q, b)
}

// appendEscaped appends s escaped as LOAD DATA's default format reads it: a string as it is (an
// id's 36 bytes converted would be an allocation), and what needs no escape in one copy.
func appendEscaped[T string | []byte](q []byte, s T) []byte {
	plain := 0
	for plain < len(s) && s[plain] != '\\' && s[plain] != '\t' && s[plain] != '\n' && s[plain] != 0 {
		plain++
	}
	q = append(q, s[:plain]...)
	for i := plain; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			q = append(q, '\\', '\\')
		case '\t':
			q = append(q, '\\', 't')
		case '\n':
			q = append(q, '\\', 'n')
		case 0:
			q = append(q, '\\', '0')
		default:
			q = append(q, c)
		}
	}
	return q
}

func appendNullInt(q []byte, v *int64) []byte {
	if v == nil {
		return append(q, '\\', 'N')
	}
	return strconv.AppendInt(q, *v, 10)
}

// insertRowsPerStatement bounds a plain INSERT's rows (about 300 bytes each).
const insertRowsPerStatement = 2000

// insertRows inserts new rows into table in statements of at most insertRowsPerStatement, the
// text built here: no arguments to box and interpolate, a histogram in hex.
func insertRows[K, R any](ctx context.Context, tx *sql.Tx, table, columns string, keys []K, rows []R,
	appendRow func([]byte, rowFormat, K, R) []byte) error {
	var q []byte
	f := rowFormat{scratch: new([]byte)}
	for from := 0; from < len(keys); from += insertRowsPerStatement {
		q = append(q[:0], `INSERT INTO `+table+` `+columns+` VALUES `...)
		for i := from; i < min(from+insertRowsPerStatement, len(keys)); i++ {
			if i > from {
				q = append(q, ',')
			}
			q = append(appendRow(append(q, '('), f, keys[i], rows[i]), ')')
		}
		if _, err := tx.ExecContext(ctx, string(q)); err != nil {
			return err
		}
	}
	return nil
}

// appendString appends s as a literal: quoted when it holds only letters, digits, '-', '_', '.'
// and spaces (ids, codes), else as hex, which needs no escaping whatever the server's SQL mode.
func appendString(q []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ' ') {
			return appendBytes(q, []byte(s))
		}
	}
	q = append(q, '\'')
	q = append(q, s...)
	return append(q, '\'')
}

// appendBytes appends b as a hex literal, NULL when nil (an empty histogram encodes as nil, as the
// driver writes it), an empty string when empty.
func appendBytes(q []byte, b []byte) []byte {
	switch {
	case b == nil:
		return append(q, "NULL"...)
	case len(b) == 0:
		return append(q, "''"...)
	}
	q = append(q, "X'"...)
	q = hex.AppendEncode(q, b)
	return append(q, '\'')
}

func appendInt(q []byte, v *int64) []byte {
	if v == nil {
		return append(q, "NULL"...)
	}
	return strconv.AppendInt(q, *v, 10)
}

// appendBucket appends a bucket's start as a DATETIME literal in UTC.
func appendBucket(q []byte, unix int64) []byte {
	q = append(q, '\'')
	q = time.Unix(unix, 0).UTC().AppendFormat(q, time.DateTime)
	return append(q, '\'')
}
