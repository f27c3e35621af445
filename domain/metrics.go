package domain

import "time"

// How long the metrics read models keep what they know, as SEED.md §5 says: performance data 30
// days, resource use and user activity 90 days, daily aggregates a year. The minute buckets and
// the hourly query patterns are the performance data; the hourly buckets carry resource use and
// activity; the daily buckets are the aggregates. Granularity thus decreases with age: minute,
// then hour, then day.
const (
	MetricsPerformanceRetention = 30 * 24 * time.Hour
	MetricsActivityRetention    = 90 * 24 * time.Hour
	MetricsDailyRetention       = 365 * 24 * time.Hour
)

// MetricsRetentionStream is the one stream of the retention reactor's cuts.
const MetricsRetentionStream = "metrics-retention"

// MetricsPruned is a cut of the retention reactor: the metrics read models drop every bucket that
// starts before the cutoff of its kind, and ignore from then on anything recorded for those times.
// Because the cut is an event, a rebuild of the read models from the log prunes exactly where the
// live ones did.
type MetricsPruned struct {
	PerformanceBefore time.Time `json:"performance_before"` // minute buckets, hourly query patterns
	ActivityBefore    time.Time `json:"activity_before"`    // hourly buckets
	DailyBefore       time.Time `json:"daily_before"`       // daily buckets and patterns
	At                time.Time `json:"at"`
}

func (MetricsPruned) EventType() string { return "metrics.pruned.v1" }

// MetricsCut is the cut due at now: each cutoff on a whole hour, so cuts made within the same hour
// are equal and a reactor in every process records the hour's cut once.
func MetricsCut(now time.Time) MetricsPruned {
	hour := now.UTC().Truncate(time.Hour)
	return MetricsPruned{
		PerformanceBefore: hour.Add(-MetricsPerformanceRetention),
		ActivityBefore:    hour.Add(-MetricsActivityRetention),
		DailyBefore:       hour.Add(-MetricsDailyRetention).Truncate(24 * time.Hour),
		At:                now.UTC(),
	}
}

// Moves reports whether cut prunes more than last did (last zero: nothing was cut yet).
func (cut MetricsPruned) Moves(last MetricsPruned) bool {
	return cut.PerformanceBefore.After(last.PerformanceBefore) || cut.ActivityBefore.After(last.ActivityBefore) ||
		cut.DailyBefore.After(last.DailyBefore)
}

// MetricsGrain is the length of a metrics bucket.
type MetricsGrain string

const (
	GrainMinute MetricsGrain = "minute"
	GrainHour   MetricsGrain = "hour"
	GrainDay    MetricsGrain = "day"
)

// Size is how long a bucket of the grain is.
func (g MetricsGrain) Size() time.Duration {
	switch g {
	case GrainMinute:
		return time.Minute
	case GrainHour:
		return time.Hour
	}
	return 24 * time.Hour
}

// Start is the start of the bucket of the grain that holds t.
func (g MetricsGrain) Start(t time.Time) time.Time { return t.UTC().Truncate(g.Size()) }

// MetricsRanges are the named ranges of the dashboards, by name.
var MetricsRanges = map[string]time.Duration{
	"15m": 15 * time.Minute, "1h": time.Hour, "1d": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour,
}

// MaxMetricsRange is the longest custom range: the daily buckets' year (a leap year's).
const MaxMetricsRange = 366 * 24 * time.Hour

// MetricsWindow is the period a dashboard or an export shows, and the grain of its series.
type MetricsWindow struct {
	Range    string // a name of MetricsRanges, or "custom"
	From, To time.Time
	Grain    MetricsGrain
}

// Previous is the period of the same length just before w, at w's grain.
func (w MetricsWindow) Previous() MetricsWindow {
	span := w.To.Sub(w.From)
	return MetricsWindow{Range: w.Range, From: w.From.Add(-span), To: w.From, Grain: w.Grain}
}

// NewMetricsWindow decides the window asked for: a named range ending now (name "" is "1h"), or
// from (and to, default now) for a custom one. With compare, the grain also suits the previous
// period. Returns a *ValidationError for an unknown range, a range given with from or to, to
// without from, from not before to, or more than MaxMetricsRange between them.
func NewMetricsWindow(name string, from, to *time.Time, compare bool, now time.Time) (MetricsWindow, error) {
	now = now.UTC()
	var w MetricsWindow
	switch {
	case name != "" && (from != nil || to != nil):
		return w, NewValidationError("range", "give range, or from and to, not both")
	case from == nil && to != nil:
		return w, NewValidationError("from", "required with to")
	case from != nil:
		w = MetricsWindow{Range: "custom", From: from.UTC(), To: now}
		if to != nil {
			w.To = to.UTC()
		}
		if !w.From.Before(w.To) {
			return w, NewValidationError("from", "must be before to")
		}
		if w.To.Sub(w.From) > MaxMetricsRange {
			return w, NewValidationError("to", "at most a year after from")
		}
	default:
		if name == "" {
			name = "1h"
		}
		span, ok := MetricsRanges[name]
		if !ok {
			return w, NewValidationError("range", "one of 15m, 1h, 1d, 7d, 30d")
		}
		w = MetricsWindow{Range: name, From: now.Add(-span), To: now}
	}
	earliest := w.From
	if compare {
		earliest = w.Previous().From
	}
	w.Grain = metricsGrainFor(w.To.Sub(w.From), earliest, now)
	return w, nil
}

// metricsGrainFor is the finest grain that charts span in a few hundred points at most and that
// is still kept from earliest on: minutes up to two hours, hours up to a week, days beyond.
func metricsGrainFor(span time.Duration, earliest, now time.Time) MetricsGrain {
	switch {
	case span <= 2*time.Hour && !earliest.Before(now.Add(-MetricsPerformanceRetention)):
		return GrainMinute
	case span <= 7*24*time.Hour && !earliest.Before(now.Add(-MetricsActivityRetention)):
		return GrainHour
	}
	return GrainDay
}

// MetricsView is what a dashboard shows its caller.
type MetricsView string

const (
	MetricsPlatform MetricsView = "platform" // every tenant: super admins
	MetricsTenant   MetricsView = "tenant"   // the session's tenant: tenant admins
	MetricsOwn      MetricsView = "own"      // the caller's own use in the tenant: developers
	MetricsStatus   MetricsView = "status"   // the state of the tenant's databases only: viewers
)

// MetricsViewOf is the view of a caller of role in their tenant: a super admin sees the platform,
// a tenant admin the tenant, a developer their own use, a viewer the status.
func MetricsViewOf(role Role, superAdmin bool) MetricsView {
	switch {
	case superAdmin:
		return MetricsPlatform
	case role.AtLeast(RoleTenantAdmin):
		return MetricsTenant
	case role.AtLeast(RoleDeveloper):
		return MetricsOwn
	}
	return MetricsStatus
}
