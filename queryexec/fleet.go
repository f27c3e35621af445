package queryexec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/domain"
)

// Fleet is every sandbox server of the platform (CLOUDDB_SANDBOX_DSN), by name.
type Fleet struct {
	servers []*Sandbox
	byName  map[string]*Sandbox
}

// OpenFleet opens a sandbox per admin DSN. Each server's name is its host:port, so a database
// remembers where it lives across restarts and reorderings of the list.
func OpenFleet(ctx context.Context, dsns []string, prefix string, log *slog.Logger) (*Fleet, error) {
	f := &Fleet{byName: map[string]*Sandbox{}}
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
		if f.byName[name] != nil {
			f.Close()
			return nil, fmt.Errorf("sandbox server %s is listed twice", name)
		}
		s, err := OpenSandbox(ctx, name, dsn, prefix, log)
		if err != nil {
			f.Close()
			return nil, err
		}
		f.servers = append(f.servers, s)
		f.byName[name] = s
	}
	if len(f.servers) == 0 {
		return nil, errors.New("no sandbox server configured")
	}
	return f, nil
}

// Get returns the server a database was placed on. Returns domain.ErrUnavailable for a server
// that is no longer configured.
func (f *Fleet) Get(name string) (*Sandbox, error) {
	s, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("sandbox server %q is not configured: %w", name, domain.ErrUnavailable)
	}
	return s, nil
}

// Place picks the server for a new database: among those that answer, the one with the fewest
// databases placed on it (placed counts them by server name; servers sharing one MySQL are told
// apart that way). Returns domain.ErrUnavailable when none answers.
func (f *Fleet) Place(ctx context.Context, placed map[string]int) (*Sandbox, error) {
	var best *Sandbox
	var problems []string
	for _, s := range f.servers {
		if err := s.db.PingContext(ctx); err != nil {
			problems = append(problems, s.wrap("ping", err).Error())
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

// Servers lists the servers.
func (f *Fleet) Servers() []*Sandbox { return f.servers }

// Close closes every server's pool.
func (f *Fleet) Close() error {
	var errs []error
	for _, s := range f.servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
