package api

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// Defaults of ExportLimits.
const (
	DefaultExportIdle    = 60 * time.Second
	DefaultExportMax     = time.Hour
	DefaultExportsByUser = 2
	// exportRetryAfter is the Retry-After of a download refused for the user's running ones.
	exportRetryAfter = 5 * time.Second
)

// ExportLimits bound the downloads of GET /queries/{id}/export. A download holds its result in the
// result store (evicted or not, it counts against the tenant's share until the download ends), so
// a client that stops reading must not hold it for long, nor start many. Zero values mean the
// defaults.
type ExportLimits struct {
	// Idle cuts a download that makes no progress this long: each chunk (up to 64 KiB) must be
	// taken by the client within it.
	Idle time.Duration
	// Max cuts a download that takes longer than this in all.
	Max time.Duration
	// PerUser is how many downloads one user may have running at once; more are 429 rate_limited.
	PerUser int
}

func (l ExportLimits) withDefaults() ExportLimits {
	if l.Idle <= 0 {
		l.Idle = DefaultExportIdle
	}
	if l.Max <= 0 {
		l.Max = DefaultExportMax
	}
	if l.PerUser <= 0 {
		l.PerUser = DefaultExportsByUser
	}
	return l
}

// exportGate counts the downloads running per user.
type exportGate struct {
	limits  ExportLimits
	mu      sync.Mutex
	running map[domain.UserID]int
}

func newExportGate(limits ExportLimits) *exportGate {
	return &exportGate{limits: limits.withDefaults(), running: map[domain.UserID]int{}}
}

// enter admits one more download of user unless PerUser run already; the returned func leaves.
func (g *exportGate) enter(user domain.UserID) (func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running[user] >= g.limits.PerUser {
		return nil, &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message:    fmt.Sprintf("You have %d downloads running, the most at once; retry when one has ended.", g.limits.PerUser),
			Details:    map[string]any{"scope": "exports", "limit": g.limits.PerUser, "retry_after_s": int(exportRetryAfter / time.Second)},
			RetryAfter: exportRetryAfter}
	}
	g.running[user]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.running[user]--; g.running[user] <= 0 {
			delete(g.running, user)
		}
	}, nil
}

// deadlineWriter writes a download, giving each write to the connection until the idle deadline
// (or the download's end, when sooner): a client that stops reading is cut after Idle instead of
// holding the handler, and its result, for as long as it likes. The server has no write timeout
// of its own: other answers are small, and a download may rightly take long while it progresses.
type deadlineWriter struct {
	w         io.Writer
	rc        *http.ResponseController
	idle, max time.Duration
	end       time.Time
}

// writer is w with the deadlines of a download that starts now.
func (g *exportGate) writer(w http.ResponseWriter) *deadlineWriter {
	return &deadlineWriter{w: w, rc: http.NewResponseController(w), idle: g.limits.Idle, max: g.limits.Max,
		end: time.Now().Add(g.limits.Max)}
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	now := time.Now() // the wall clock: the deadline is the connection's, not the platform's clock
	if !now.Before(d.end) {
		return 0, fmt.Errorf("export: ran past its %s limit", d.max)
	}
	deadline := now.Add(d.idle)
	if deadline.After(d.end) {
		deadline = d.end
	}
	if err := d.rc.SetWriteDeadline(deadline); err != nil {
		return 0, fmt.Errorf("export: set the write deadline: %w", err)
	}
	return d.w.Write(p)
}
