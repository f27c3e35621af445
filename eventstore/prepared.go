package eventstore

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"sync"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/go-sql-driver/mysql"
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

	mu       sync.Mutex
	stmts    map[string]*sql.Stmt // by query text
	disabled bool                 // the server refused a preparation: text from now on
}

func newPreparedInserts(db *sql.DB, log *slog.Logger) *preparedInserts {
	return &preparedInserts{db: db, log: log, stmts: map[string]*sql.Stmt{}}
}

// stmt returns the prepared statement of query, an insert of rows events, or nil when it runs as
// text.
func (p *preparedInserts) stmt(ctx context.Context, query string, rows int) *sql.Stmt {
	if rows > maxPreparedRows || !strings.HasPrefix(query, "INSERT INTO events ") {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disabled {
		return nil
	}
	if stmt, ok := p.stmts[query]; ok {
		return stmt
	}
	stmt, err := p.db.PrepareContext(ctx, query)
	if err != nil {
		if refusal(err) {
			p.disable(err)
		}
		return nil // this time as text
	}
	p.stmts[query] = stmt
	return stmt
}

// disable sends every insert as text from now on; p.mu is held.
func (p *preparedInserts) disable(err error) {
	if !p.disabled {
		p.log.Warn("eventstore: the server does not prepare the log's inserts; they are sent as text", "err", err)
	}
	p.disabled = true
}

// refused reports whether err is the server refusing to prepare the statement on the
// transaction's connection (refusal), and then sends text from now on.
func (p *preparedInserts) refused(err error) bool {
	if !refusal(err) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.disable(err)
	return true
}

// refusal reports whether err is the server refusing to prepare a statement: too many prepared
// (ER_MAX_PREPARED_STMT_COUNT_REACHED) or not in the binary protocol (ER_UNSUPPORTED_PS).
func refusal(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1461 || me.Number == 1295)
}

// Close releases the prepared statements.
func (p *preparedInserts) Close() {
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
	if stmt := t.inserts.stmt(ctx, query, len(args)/len(placedRow{})); stmt != nil {
		res, err := t.Tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
		if err == nil || !t.inserts.refused(err) {
			return res, err
		}
		// This connection could not prepare it: nothing ran, the text does.
	}
	return t.Tx.ExecContext(ctx, query, args...)
}
