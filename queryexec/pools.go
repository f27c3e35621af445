package queryexec

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// Passwords gives the current password of a database's account: the read-only one when readOnly.
type Passwords func(ctx context.Context, id domain.DatabaseID, readOnly bool) (string, error)

// Pool limits of one tenant account. The plan's connection limit is also the account's
// MAX_USER_CONNECTIONS; the pool keeps a share of it free for the tenant's own clients.
const (
	maxPoolPerAccount = 32
	poolMaxIdleTime   = time.Minute
	poolMaxLifetime   = 10 * time.Minute
	poolUnusedAfter   = 5 * time.Minute // a pool unused this long is closed
	releaseTimeout    = 5 * time.Second // for the lock release of a session going back to its pool
)

// poolKey names one account's pool.
type poolKey struct {
	server   string
	id       domain.DatabaseID
	readOnly bool
	tenant   domain.TenantID // whose database it is (the load sampler counts pools per tenant)
}

type accountPool struct {
	db       *sql.DB
	maxOpen  int       // under pools.mu
	lastUsed time.Time // under pools.mu
}

// pools holds one connection pool per tenant account in use. Pools open lazily with the password
// the vault holds now, and are dropped when unused, when their database stops or is deleted, and
// when the server refuses their password (after a rotation).
type pools struct {
	fleet     *sandbox.Fleet
	passwords Passwords
	log       *slog.Logger
	now       func() time.Time

	mu sync.Mutex
	m  map[poolKey]*accountPool
}

func newPools(fleet *sandbox.Fleet, passwords Passwords, log *slog.Logger, now func() time.Time) *pools {
	return &pools{fleet: fleet, passwords: passwords, log: log, now: now, m: map[poolKey]*accountPool{}}
}

// conn is one session on a tenant account, with the server's id for it (for KILL QUERY).
type conn struct {
	*sql.Conn
	id     uint64
	server *sandbox.Sandbox
	key    poolKey
	// killed: a statement of the session was killed past its deadline (or its client left). The
	// server may run it on for a while: the session's slot is not free until the server lets go.
	killed bool
}

// session takes a session on the request's account, as the decision on its statements chose. The
// pools of all processes together keep at most half the plan's connections (the account's
// MAX_USER_CONNECTIONS): each process its share, at least 1, at most maxPoolPerAccount. The rest
// are the tenant's own clients'.
// A request waits for a free session up to the admission's wait, then is refused as busy.
func (e *Engine) session(ctx context.Context, req Request, account sqlcheck.Account) (*conn, error) {
	key := poolKey{server: req.Target.Server, id: req.Target.ID, readOnly: account == sqlcheck.ReadOnly, tenant: req.Target.Tenant}
	wait, cancel := context.WithTimeout(ctx, e.admission.wait)
	defer cancel()
	c, err := e.pools.get(wait, key, int(min(e.share(req.Policy.Limits.MaxConnections/2), maxPoolPerAccount)))
	if err != nil && ctx.Err() == nil && wait.Err() != nil {
		return nil, &BusyError{Message: "the database has no free connection"}
	}
	return c, err
}

// get returns a session on the account of database id; maxOpen bounds the pool. A refused
// password (a rotation the pool has not seen) reopens the pool with the vault's password once.
// Returns an error wrapping domain.ErrDatabaseUnavailable when the server does not answer.
func (p *pools) get(ctx context.Context, key poolKey, maxOpen int) (*conn, error) {
	server, err := p.fleet.Get(key.server)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", domain.ErrDatabaseUnavailable, err)
	}
	for attempt := 0; ; attempt++ {
		db, err := p.pool(ctx, server, key, maxOpen)
		if err != nil {
			return nil, err
		}
		c, err := db.Conn(ctx)
		if err == nil {
			var id uint64
			err = c.Raw(func(dc any) error {
				tc, ok := dc.(*trackedConn)
				if !ok {
					return errors.New("queryexec: unexpected driver connection")
				}
				id = tc.id
				return nil
			})
			if err != nil {
				c.Close()
				return nil, err
			}
			return &conn{Conn: c, id: id, server: server, key: key}, nil
		}
		switch sandbox.Errno(err) {
		case 1045, 4151, 3118: // wrong password (rotated), account locked (MariaDB, MySQL)
			p.drop(key)
			if attempt == 0 {
				continue
			}
			return nil, fmt.Errorf("%w: the database's account refuses connections: %w", domain.ErrDatabaseUnavailable, err)
		case 1226, 1040: // too many connections for the account or the server
			return nil, &BusyError{Message: "the database has no free connection"}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", domain.ErrDatabaseUnavailable, server.Wrap("connect to the database", err))
	}
}

// release returns c to its pool, or closes it for good when discard is set: a session whose state
// a statement may have changed (a transaction, variables, temporary tables) serves no one else.
// A session going back to the pool first gives up every user-level lock it holds, unless what ran
// on it could take none (mayLock false): the classifier refuses GET_LOCK, but a stored function or
// trigger made over a direct connection could still take one, and a lock name is server-wide
// (another tenant's, or the platform's). A session that held one, or cannot say, is closed too.
func (p *pools) release(c *conn, discard, mayLock bool) {
	if !discard && mayLock {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		var released sql.NullInt64
		err := c.QueryRowContext(ctx, "SELECT RELEASE_ALL_LOCKS()").Scan(&released)
		cancel()
		if err != nil || released.Int64 > 0 {
			p.log.Warn("a pooled session held user-level locks; released and closed", "database_id", c.key.id, "locks", released.Int64, "err", err)
			discard = true
		}
	}
	if discard {
		_ = c.Raw(func(any) error { return driver.ErrBadConn })
	}
	c.Close()
}

func (p *pools) pool(ctx context.Context, server *sandbox.Sandbox, key poolKey, maxOpen int) (*sql.DB, error) {
	p.mu.Lock()
	if ap, ok := p.m[key]; ok {
		ap.lastUsed = p.now()
		ap.resize(maxOpen) // the plan or the number of processes changed
		p.mu.Unlock()
		return ap.db, nil
	}
	p.mu.Unlock()

	password, err := p.passwords(ctx, key.id, key.readOnly)
	if err != nil {
		return nil, err
	}
	cfg, err := server.AccountConfig(string(key.id), password, key.readOnly)
	if err != nil {
		return nil, err
	}
	cfg.MultiStatements = false // one statement per round trip: the classifier saw each one
	cfg.InterpolateParams = false
	cfg.ParseTime = false
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	ap := &accountPool{db: sql.OpenDB(trackingConnector{connector}), lastUsed: p.now()}
	ap.resize(maxOpen)
	ap.db.SetConnMaxIdleTime(poolMaxIdleTime)
	ap.db.SetConnMaxLifetime(poolMaxLifetime)

	p.mu.Lock()
	defer p.mu.Unlock()
	if other, ok := p.m[key]; ok { // another request opened it meanwhile
		ap.db.Close()
		other.lastUsed = p.now()
		other.resize(maxOpen)
		return other.db, nil
	}
	p.m[key] = ap
	return ap.db, nil
}

// resize bounds the pool to maxOpen sessions; idle sessions end after poolMaxIdleTime. Sessions
// over a lower bound end as they are released.
func (ap *accountPool) resize(maxOpen int) {
	if ap.maxOpen != maxOpen {
		ap.maxOpen = maxOpen
		ap.db.SetMaxOpenConns(maxOpen)
		ap.db.SetMaxIdleConns(maxOpen)
	}
}

// drop closes the pool of key; its sessions in use end when they are released.
func (p *pools) drop(key poolKey) {
	p.mu.Lock()
	ap, ok := p.m[key]
	delete(p.m, key)
	p.mu.Unlock()
	if ok {
		ap.db.Close()
	}
}

// forget closes the pools of a database: it stopped, was deleted, or its password changed.
func (p *pools) forget(id domain.DatabaseID) {
	p.mu.Lock()
	var gone []*accountPool
	for k, ap := range p.m {
		if k.id == id {
			gone = append(gone, ap)
			delete(p.m, k)
		}
	}
	p.mu.Unlock()
	for _, ap := range gone {
		ap.db.Close()
	}
}

// sweep closes the pools unused since poolUnusedAfter.
func (p *pools) sweep() int {
	cutoff := p.now().Add(-poolUnusedAfter)
	p.mu.Lock()
	var gone []*accountPool
	for k, ap := range p.m {
		if ap.lastUsed.Before(cutoff) {
			gone = append(gone, ap)
			delete(p.m, k)
		}
	}
	p.mu.Unlock()
	for _, ap := range gone {
		ap.db.Close()
	}
	return len(gone)
}

func (p *pools) close() {
	p.mu.Lock()
	all := p.m
	p.m = map[poolKey]*accountPool{}
	p.mu.Unlock()
	for _, ap := range all {
		ap.db.Close()
	}
}

// kill ends the statement running on session c from the server's admin connection.
func (c *conn) kill(ctx context.Context) error { return c.server.KillQuery(ctx, c.id) }

// gone waits until the server no longer lists session c, asking every interval; false when ctx
// ends or stop closes first. A failed question counts as still listed.
func (c *conn) gone(ctx context.Context, interval time.Duration, stop <-chan struct{}) bool {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if listed, err := c.server.Listed(ctx, c.id); err == nil && !listed {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		case <-tick.C:
		}
	}
}

// interrupted reports whether max_statement_time interrupted the session's last statement on
// MariaDB, which some functions answer quietly instead of failing.
func (c *conn) interrupted(ctx context.Context) (bool, error) {
	var name string
	var count uint64
	if err := c.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Max_statement_time_exceeded'").Scan(&name, &count); err != nil {
		return false, err
	}
	var before uint64
	err := c.Raw(func(dc any) error {
		tc, ok := dc.(*trackedConn)
		if !ok {
			return errors.New("queryexec: unexpected driver connection")
		}
		before, tc.interruptions = tc.interruptions, count
		return nil
	})
	return count > before, err
}

// trackingConnector asks each new session for its CONNECTION_ID(), so a runaway statement can be
// killed from another connection.
type trackingConnector struct{ driver.Connector }

// driverConn is what go-sql-driver's connections implement; trackedConn forwards all of it, so
// database/sql keeps its fast paths (direct queries, session checks).
type driverConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

type trackedConn struct {
	driverConn
	id uint64
	// interruptions is the session's Max_statement_time_exceeded (MariaDB) as last read: every
	// session ending in an error is discarded, so a larger value means a quiet interruption.
	interruptions uint64
}

func (tc trackingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := tc.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	full, ok := dc.(driverConn)
	if !ok {
		dc.Close()
		return nil, errors.New("queryexec: the MySQL driver's connection lacks an interface this package needs")
	}
	rows, err := full.QueryContext(ctx, "SELECT CONNECTION_ID()", nil)
	if err != nil {
		dc.Close()
		return nil, err
	}
	defer rows.Close()
	values := make([]driver.Value, 1)
	if err := rows.Next(values); err != nil {
		dc.Close()
		return nil, fmt.Errorf("queryexec: read CONNECTION_ID(): %w", err)
	}
	id, err := strconv.ParseUint(fmt.Sprint(asText(values[0])), 10, 64)
	if err != nil {
		dc.Close()
		return nil, fmt.Errorf("queryexec: read CONNECTION_ID(): %w", err)
	}
	return &trackedConn{driverConn: full, id: id}, nil
}

func asText(v driver.Value) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// byTenant adds up the statistics of each tenant's open account pools.
func (p *pools) byTenant() map[domain.TenantID]sql.DBStats {
	p.mu.Lock()
	dbs := make(map[poolKey]*sql.DB, len(p.m))
	for k, ap := range p.m {
		dbs[k] = ap.db
	}
	p.mu.Unlock()
	out := map[domain.TenantID]sql.DBStats{}
	for k, db := range dbs {
		s, sum := db.Stats(), out[k.tenant]
		sum.OpenConnections += s.OpenConnections
		sum.InUse += s.InUse
		out[k.tenant] = sum
	}
	return out
}
