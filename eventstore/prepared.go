package eventstore

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"sync"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"

	"github.com/clouddbmanager/clouddb/internal/mysqlerr"
)

// maxPreparedRows is the most events one prepared INSERT of the log carries; a larger group is
// inserted as text. The writer prepares one statement per number of rows it meets, up to this many.
const maxPreparedRows = 64

// preparedInserts are the INSERT statements of the log's group commits, prepared on the server
// (once per connection and number of rows): sent in the binary protocol, an event's payload and
// metadata are neither escaped by the driver nor lexed and unescaped by the server, which was a
// third of the server's work on each row. A server that refuses to prepare them gets text again.
type preparedInserts struct {
	db  *sql.DB
	log *slog.Logger

	mu        sync.Mutex
	stmts     map[string]*sql.Stmt // by query text
	preparing map[string]bool      // preparations running in the background
	disabled  bool                 // the server refused a preparation: text from now on
	closed    bool
	running   sync.WaitGroup // the background preparations
}

// prepareTimeout bounds one background preparation.
const prepareTimeout = 10 * time.Second

func newPreparedInserts(db *sql.DB, log *slog.Logger) *preparedInserts {
	return &preparedInserts{db: db, log: log, stmts: map[string]*sql.Stmt{}, preparing: map[string]bool{}}
}

// stmt returns the prepared statement of query, an insert of rows events, or nil when it runs as
// text. A statement not prepared yet runs as text this time and is prepared in the background:
// the caller holds the log's sequence lock, and preparing takes another connection of the pool,
// which must not make every append wait for a free one.
func (p *preparedInserts) stmt(query string, rows int) *sql.Stmt {
	if rows > maxPreparedRows || !strings.HasPrefix(query, "INSERT INTO events ") {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disabled || p.closed {
		return nil
	}
	if stmt, ok := p.stmts[query]; ok {
		return stmt
	}
	if !p.preparing[query] {
		p.preparing[query] = true
		p.running.Add(1)
		go p.prepare(query)
	}
	return nil
}

// prepare prepares query for the next group commits of its size.
func (p *preparedInserts) prepare(query string) {
	defer p.running.Done()
	ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
	defer cancel()
	stmt, err := p.db.PrepareContext(ctx, query)
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.preparing, query)
	switch {
	case mysqlerr.IsPrepareRefused(err):
		p.disable(err)
	case err != nil:
		// Tried again by the next group commit of this size.
	case p.closed:
		stmt.Close()
	default:
		p.stmts[query] = stmt
	}
}

// disable sends every insert as text from now on; p.mu is held.
func (p *preparedInserts) disable(err error) {
	if !p.disabled {
		p.log.Warn("eventstore: the server does not prepare the log's inserts; they are sent as text", "err", err)
	}
	p.disabled = true
}

// refused reports whether err is the server refusing to prepare the statement on the
// transaction's connection, and then sends text from now on.
func (p *preparedInserts) refused(err error) bool {
	if !mysqlerr.IsPrepareRefused(err) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.disable(err)
	return true
}

// Close releases the prepared statements, once the preparations running are done.
func (p *preparedInserts) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.running.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, stmt := range p.stmts {
		stmt.Close()
	}
	clear(p.stmts)
}

// publishTx is what the watermill publisher of one group commit writes with: the transaction,
// whose insert of events runs prepared.
type publishTx struct {
	wsql.StdSQLTx
	inserts *preparedInserts
}

func (t publishTx) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	if stmt := t.inserts.stmt(query, len(args)/len(placedRow{})); stmt != nil {
		res, err := t.Tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
		if err == nil || !t.inserts.refused(err) {
			return res, err
		}
		// This connection could not prepare it: nothing ran, the text does.
	}
	return t.Tx.ExecContext(ctx, query, args...)
}
