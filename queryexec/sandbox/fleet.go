package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/domain"
)

// Fleet is every sandbox server of the platform (CLOUDDB_SANDBOX_DSN), by name. A server that
// does not answer when the fleet opens is kept as down and reconnected later (Reconnect), so one
// server's outage does not keep the platform from starting.
type Fleet struct {
	prefix string
	log    *slog.Logger

	mu      sync.RWMutex
	names   []string // in the configured order
	servers []*Sandbox
	byName  map[string]*Sandbox
	down    map[string]string // name → admin DSN of servers not connected yet
}

// OpenFleet opens a sandbox per admin DSN. Each server's name is its host:port (and database, if
// the DSN names one), so a database remembers where it lives across restarts and reorderings of
// the list. Returns an error for a malformed or repeated DSN, or a server that answers but is not
// usable (refused login, unsupported version).
func OpenFleet(ctx context.Context, dsns []string, prefix string, log *slog.Logger) (*Fleet, error) {
	f := &Fleet{prefix: prefix, log: log, byName: map[string]*Sandbox{}, down: map[string]string{}}
	for _, dsn := range dsns {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("sandbox DSN: %w", err)
		}
		name := cfg.Addr
		if cfg.DBName != "" {
			name += "/" + cfg.DBName
		}
		if _, dup := f.down[name]; dup || f.byName[name] != nil {
			f.Close()
			return nil, fmt.Errorf("sandbox server %s is listed twice", name)
		}
		f.down[name] = dsn
		f.names = append(f.names, name)
	}
	if len(f.down) == 0 {
		return nil, errors.New("no sandbox server configured")
	}
	if err := f.Reconnect(ctx); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Reconnect opens the servers that are down. A server that still does not answer stays down
// (logged); one that answers but is unusable is an error.
func (f *Fleet) Reconnect(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range f.names {
		dsn, isDown := f.down[name]
		if !isDown {
			continue
		}
		s, err := Open(ctx, name, dsn, f.prefix, f.log)
		if errors.Is(err, domain.ErrUnavailable) {
			f.log.Warn("sandbox server does not answer; its databases are unavailable until it does", "server", name, "err", err)
			continue
		} else if err != nil {
			return err
		}
		delete(f.down, name)
		f.servers = append(f.servers, s)
		f.byName[name] = s
		f.log.Info("sandbox server connected", "server", name, "flavor", s.Flavor(), "version", s.Version())
	}
	return nil
}

// Get returns the server a database was placed on. Returns domain.ErrUnavailable for a server
// that is down or no longer configured.
func (f *Fleet) Get(name string) (*Sandbox, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("sandbox server %q is down or not configured: %w", name, domain.ErrUnavailable)
	}
	return s, nil
}

// Place picks the server for a new database: among those that answer, the one with the fewest
// databases placed on it (placed counts them by server name; servers sharing one MySQL are told
// apart that way). Returns domain.ErrUnavailable when none answers.
func (f *Fleet) Place(ctx context.Context, placed map[string]int) (*Sandbox, error) {
	f.mu.RLock()
	servers := f.servers
	f.mu.RUnlock()
	var best *Sandbox
	var problems []string
	for name := range f.downServers() {
		problems = append(problems, name+" is down")
	}
	for _, s := range servers {
		if err := s.db.PingContext(ctx); err != nil {
			problems = append(problems, s.Wrap("ping", err).Error())
			continue
		}
		if best == nil || placed[s.name] < placed[best.name] {
			best = s
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no sandbox server answers (%s): %w", strings.Join(problems, "; "), domain.ErrUnavailable)
	}
	return best, nil
}

// Prefix is the prefix of the physical names on every server of the fleet.
func (f *Fleet) Prefix() string { return f.prefix }

// Servers lists the connected servers, in the configured order of their connection.
func (f *Fleet) Servers() []*Sandbox {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.servers
}

func (f *Fleet) downServers() map[string]string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return maps.Clone(f.down)
}

// Close closes every server's pool.
func (f *Fleet) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, s := range f.servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
