package domain

import (
	"regexp"
	"strconv"
	"strings"
)

// PlanID names a subscription plan.
type PlanID string

const (
	PlanFree       PlanID = "free"
	PlanPro        PlanID = "pro"
	PlanEnterprise PlanID = "enterprise"
)

// Limits are what a plan allows a tenant.
type Limits struct {
	MaxDatabases     int64 `json:"max_databases"`
	MaxStorageBytes  int64 `json:"max_storage_bytes"`
	MaxConnections   int64 `json:"max_connections"`
	MaxUsers         int64 `json:"max_users"`
	MaxQueryTimeoutS int64 `json:"max_query_timeout_s"`
	MaxRowLimit      int64 `json:"max_row_limit"`
	MaxWriteRows     int64 `json:"max_write_rows"` // the largest UPDATE/DELETE (rows, estimated) one statement may touch
	ResultArchiving  bool  `json:"result_archiving"`
}

// Plan is a subscription plan and its limits.
type Plan struct {
	ID     PlanID `json:"id"`
	Name   string `json:"name"`
	Limits Limits `json:"limits"`
}

const gib = int64(1) << 30

// Plans are the plans of DESIGN.md, cheapest first.
var Plans = []Plan{
	{ID: PlanFree, Name: "Free", Limits: Limits{MaxDatabases: 5, MaxStorageBytes: gib, MaxConnections: 10, MaxUsers: 5, MaxQueryTimeoutS: 30, MaxRowLimit: 1_000, MaxWriteRows: 10_000}},
	{ID: PlanPro, Name: "Pro", Limits: Limits{MaxDatabases: 50, MaxStorageBytes: 50 * gib, MaxConnections: 100, MaxUsers: 50, MaxQueryTimeoutS: 300, MaxRowLimit: 100_000, MaxWriteRows: 1_000_000, ResultArchiving: true}},
	{ID: PlanEnterprise, Name: "Enterprise", Limits: Limits{MaxDatabases: 500, MaxStorageBytes: 1024 * gib, MaxConnections: 1_000, MaxUsers: 1_000, MaxQueryTimeoutS: 3_600, MaxRowLimit: 1_000_000, MaxWriteRows: 10_000_000, ResultArchiving: true}},
}

// PlanByID returns the plan, or a *ValidationError for the field "plan".
func PlanByID(id PlanID) (Plan, error) {
	for _, p := range Plans {
		if p.ID == id {
			return p, nil
		}
	}
	return Plan{}, NewValidationError("plan", "must be free, pro or enterprise")
}

// MaxIdleTimeoutMinutes is the longest a session may go unused, whatever its tenant's settings.
const MaxIdleTimeoutMinutes = 24 * 60

// TenantSettings are what a tenant admin tunes, within the plan.
type TenantSettings struct {
	QueryTimeoutS        int64 `json:"query_timeout_s"`
	RowLimit             int64 `json:"row_limit"`
	IdleTimeoutMinutes   int64 `json:"idle_timeout_minutes"`
	AutoStopMinutes      int64 `json:"auto_stop_minutes"`
	AllowProcedures      bool  `json:"allow_procedures"`
	AllowForeignKeys     bool  `json:"allow_foreign_keys"`
	AllowHighImpactAlter bool  `json:"allow_high_impact_alter"`
}

// DefaultSettings are a new tenant's settings: 30 s queries, 1,000 rows, sessions idle out after
// 30 minutes, databases stop after 60 idle minutes; foreign keys allowed, procedures and
// high-impact ALTERs not.
func DefaultSettings(limits Limits) TenantSettings {
	return TenantSettings{
		QueryTimeoutS:      min(30, limits.MaxQueryTimeoutS),
		RowLimit:           min(1_000, limits.MaxRowLimit),
		IdleTimeoutMinutes: 30,
		AutoStopMinutes:    60,
		AllowForeignKeys:   true,
	}
}

// Validate checks settings against the plan's limits; the error lists every field out of bounds.
func (s TenantSettings) Validate(limits Limits) error {
	fields := map[string]string{}
	bound := func(name string, v, lo, hi int64) {
		if v < lo || v > hi {
			fields[name] = "must be from " + strconv.FormatInt(lo, 10) + " to " + strconv.FormatInt(hi, 10)
		}
	}
	bound("query_timeout_s", s.QueryTimeoutS, 1, limits.MaxQueryTimeoutS)
	bound("row_limit", s.RowLimit, 1, limits.MaxRowLimit)
	bound("idle_timeout_minutes", s.IdleTimeoutMinutes, 5, MaxIdleTimeoutMinutes)
	bound("auto_stop_minutes", s.AutoStopMinutes, 5, 30*24*60)
	if len(fields) > 0 {
		return &ValidationError{Fields: fields}
	}
	return nil
}

// FitTo lowers settings that exceed a (smaller) plan's limits.
func (s TenantSettings) FitTo(limits Limits) TenantSettings {
	s.QueryTimeoutS = min(s.QueryTimeoutS, limits.MaxQueryTimeoutS)
	s.RowLimit = min(s.RowLimit, limits.MaxRowLimit)
	return s
}

var slugPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$`)

// ValidateSlug checks a tenant slug: 1 to 40 lower-case letters, digits and inner dashes.
func ValidateSlug(s string) error {
	if !slugPattern.MatchString(s) {
		return NewValidationError("slug", "must be 1 to 40 lower-case letters, digits and dashes, not starting or ending with a dash")
	}
	return nil
}

// SlugFrom derives a slug from a tenant name: ASCII letters and digits kept, lower-cased, every
// other run of characters one dash. A name without any gives "tenant".
func SlugFrom(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
		if b.Len() >= 36 {
			break
		}
	}
	slug := strings.Trim(b.String(), "-")
	if slug == "" {
		return "tenant"
	}
	return slug
}
