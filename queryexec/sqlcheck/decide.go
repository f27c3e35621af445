package sqlcheck

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/clouddbmanager/clouddb/domain"
)

// Thresholds of the decision.
const (
	// HighImpactRows: an ALTER TABLE of a table with at least this many rows (estimate) is high
	// impact too, whatever it changes: refused unless the tenant allows high-impact ALTERs.
	HighImpactRows = 100_000
	// ConfirmWriteRows: an UPDATE or DELETE estimated to touch more rows needs confirm: true.
	ConfirmWriteRows = 1_000
)

// Principal is who asks to run a statement.
type Principal struct {
	Role       domain.Role // the role in the database's tenant; "" for none
	SuperAdmin bool        // what a super admin may do in the tenant is domain.EffectiveRole's
}

// Place is the database a statement would run on and what its tenant allows there.
type Place struct {
	Schema       string // the database's physical schema: Classify refuses every other
	Settings     domain.TenantSettings
	Limits       domain.Limits
	StorageBytes int64 // what the tenant uses now
	// WriteWall is the storage quota (the tenant's, or the database owner's sub-quota) the
	// database's account may not write past, once over it; nil: writes are not restricted.
	WriteWall *domain.QuotaExceededError
}

// Question is one statement someone asks to run somewhere.
type Question struct {
	SQL     string
	Who     Principal
	Where   Place
	Confirm bool // the request says confirm: true
	// Estimate is the server's row estimate for what a first Decision asked to Measure; nil
	// before it was measured.
	Estimate *int64
}

// Account is the MySQL account of the database a statement runs on.
type Account string

// Accounts.
const (
	ReadWrite Account = "rw"
	ReadOnly  Account = "ro" // viewers: a statement the classifier misjudges still cannot write
)

// Measure is what only the server knows and the decision still needs.
type Measure int

// Measures.
const (
	MeasureNothing   Measure = iota
	MeasureWriteRows         // the rows the UPDATE or DELETE touches (EXPLAIN)
	MeasureTableRows         // the rows of Decision.Table, the table the ALTER TABLE changes
)

// Decision is the answer to a Question.
type Decision struct {
	// Class is what the statement is; its zero value when the classifier refused it.
	Class Classification
	// Account is the account the statement runs on. It depends on the principal alone, so every
	// statement of a request runs on one session; it is set whatever the verdict, since a statement
	// the classifier cannot read is still prepared on the server to place a syntax error.
	Account Account
	// Refusal is a *NotAllowedError: the statement may not run here at all.
	Refusal error
	// Confirm is set when the statement runs only when re-sent with confirm: true.
	Confirm *ConfirmationError
	// Quota is set when the statement writes while the tenant is at its storage.
	Quota *domain.QuotaExceededError
	// Measure, unless MeasureNothing, is what the server must estimate just before the statement
	// runs; the caller then asks again with Question.Estimate set, and the second answer stands.
	Measure Measure
	Table   string // for MeasureTableRows: the table, as its users name it
}

// Err is the decision as the error a request is answered with, checks in order: the refusal, the
// confirmation, the storage quota. nil: the statement may run (once measured, if it must be).
func (d Decision) Err() error {
	switch {
	case d.Refusal != nil:
		return d.Refusal
	case d.Confirm != nil:
		return d.Confirm
	case d.Quota != nil:
		return d.Quota
	}
	return nil
}

// Decide is the one place that decides whether a principal may run a statement on a database, and
// how. In order:
//
//  1. the classifier (Classify): a deny-by-default filter; a *Denied reason such as unparsable,
//     other_schema or file_access;
//  2. the role (domain.EffectiveRole: a super admin acts as one) and the tenant's settings (see
//     authorize);
//  3. confirmation: "drop" and "no_where" unless q.Confirm;
//  4. storage: writes other than DELETE, DROP and TRUNCATE are refused while the tenant is at its
//     plan's storage or the database's account is restricted for it;
//  5. once the server has estimated what Measure asked (q.Estimate): an UPDATE or DELETE above the
//     plan's max_write_rows is refused (too_large), above ConfirmWriteRows it needs confirm
//     (large_write); an ALTER TABLE of a table of HighImpactRows or more is high_impact_alter
//     unless the tenant allows high-impact ALTERs.
//
// The account is read-only for viewers, read-write otherwise. The HTTP routes ask for a member of
// the tenant (viewer and up, or a super admin in it) before anything else: a gate in front of this
// decision, which stays the authority (it refuses any role it does not know).
func Decide(q Question) Decision {
	role := domain.EffectiveRole(q.Who.Role, q.Who.SuperAdmin)
	d := Decision{Account: ReadWrite}
	if role == domain.RoleViewer {
		d.Account = ReadOnly
	}
	c, err := Classify(q.SQL, q.Where.Schema)
	if err != nil {
		d.Refusal = NotAllowed("", err)
		return d
	}
	d.Class = c
	if err := authorize(c, role, q.Where.Settings); err != nil {
		d.Refusal = NotAllowed(c.Type, err)
		return d
	}
	if reason := needsConfirm(c); reason != "" && !q.Confirm {
		d.Confirm = &ConfirmationError{Reason: reason}
	}
	d.Quota = storageCheck(c, q.Where)
	switch {
	case c.Verb == "UPDATE" || c.Verb == "DELETE":
		d.Measure = MeasureWriteRows
	case alterTable.MatchString(q.SQL) && len(c.Tables) > 0 && !q.Where.Settings.AllowHighImpactAlter:
		d.Measure, d.Table = MeasureTableRows, strings.TrimPrefix(c.Tables[0], q.Where.Schema+".")
	}
	if q.Estimate == nil || d.Err() != nil {
		return d
	}
	rows := *q.Estimate
	switch d.Measure {
	case MeasureWriteRows:
		if limit := q.Where.Limits.MaxWriteRows; limit > 0 && rows > limit {
			d.Refusal = &NotAllowedError{StatementType: c.Type, Denied: deny("too_large",
				"this statement would touch about %d rows; the plan allows %d per statement: split it into smaller ones", rows, limit)}
		} else if rows > ConfirmWriteRows && !q.Confirm {
			d.Confirm = &ConfirmationError{Reason: "large_write", EstimatedRows: rows}
		}
	case MeasureTableRows:
		if rows >= HighImpactRows {
			d.Refusal = &NotAllowedError{StatementType: c.Type, Denied: denyLargeAlter(d.Table, rows)}
		}
	}
	return d
}

// alterTable matches ALTER TABLE statements, whose first table is the one altered (others may be
// referenced by a foreign key).
var alterTable = regexp.MustCompile(`(?is)^\s*ALTER\s+(ONLINE\s+|OFFLINE\s+|IGNORE\s+)*TABLE\s`)

// NotAllowedError is a statement refused before it ran, with its type where it is known.
type NotAllowedError struct {
	StatementType StatementType
	*Denied
}

// Unwrap gives the classifier's refusal.
func (e *NotAllowedError) Unwrap() error { return e.Denied }

// ConfirmationError: the statement runs only when re-sent with confirm: true.
type ConfirmationError struct {
	Reason        string // "drop", "no_where", "large_write"
	EstimatedRows int64  // for large_write
}

func (e *ConfirmationError) Error() string {
	switch e.Reason {
	case "drop":
		return "this statement drops or empties data; re-send it with confirm: true"
	case "no_where":
		return "this UPDATE or DELETE has no WHERE and touches every row; re-send it with confirm: true"
	}
	return fmt.Sprintf("this statement touches about %d rows; re-send it with confirm: true", e.EstimatedRows)
}

// NotAllowed is err as the refusal of a statement of type t ("" when unknown) when it is a
// *Denied, else err.
func NotAllowed(t StatementType, err error) error {
	var d *Denied
	if errors.As(err, &d) {
		return &NotAllowedError{StatementType: t, Denied: d}
	}
	return err
}

// storageCheck refuses writes while the tenant uses more storage than its plan allows, or while
// the database's account is restricted for it (the wall the storage sampler sets; the usage the
// request saw may already be under again); statements that free space (DELETE, DROP, TRUNCATE)
// stay allowed, so the tenant can get back under.
func storageCheck(c Classification, p Place) *domain.QuotaExceededError {
	if c.Type != TypeDML && c.Type != TypeDDL {
		return nil
	}
	switch c.Verb {
	case "DELETE", "DROP", "TRUNCATE":
		return nil
	}
	if p.WriteWall != nil && p.WriteWall.Resource != "storage" {
		wall := *p.WriteWall // the owner's sub-quota: the member hears of their own storage, not the tenant's
		return &wall
	}
	if p.WriteWall != nil || (p.Limits.MaxStorageBytes > 0 && p.StorageBytes >= p.Limits.MaxStorageBytes) {
		return &domain.QuotaExceededError{Resource: "storage", Used: p.StorageBytes, Limit: p.Limits.MaxStorageBytes}
	}
	return nil
}

// authorize decides whether role may run the classified statement under the tenant's settings.
// It returns nil or a *Denied with one of these reasons, checked in this order:
//
//	read_only_role            a viewer and any statement that is not TypeRead (viewers run
//	                          SELECT, SHOW, DESCRIBE, EXPLAIN only; locking reads, EXPLAIN ANALYZE
//	                          and ANALYZE of a write are not reads)
//	unknown_role              a role that is not viewer, developer, tenant_admin or super_admin
//	procedures_not_allowed    c.Routine and !settings.AllowProcedures (CALL of an existing
//	                          routine stays allowed)
//	foreign_keys_not_allowed  c.ForeignKey and !settings.AllowForeignKeys
//	high_impact_alter         c.Rewrites and !settings.AllowHighImpactAlter
//
// Developer, tenant_admin and super_admin (acting in a tenant, treated like tenant_admin) may run
// every type the classifier allows, within the tenant's settings: the settings bind admins too.
func authorize(c Classification, role domain.Role, settings domain.TenantSettings) error {
	switch role {
	case domain.RoleViewer:
		if c.Type != TypeRead {
			return deny("read_only_role", "viewers may only run read statements (SELECT, SHOW, DESCRIBE, EXPLAIN): this statement %s", notReadBecause(c.Type))
		}
		return nil // reads set none of the flags below
	case domain.RoleDeveloper, domain.RoleTenantAdmin, domain.RoleSuperAdmin:
	default:
		return deny("unknown_role", "role %q may not run statements", string(role))
	}
	if c.Routine && !settings.AllowProcedures {
		return deny("procedures_not_allowed", "creating, changing or dropping procedures, functions, triggers and events is turned off for this tenant; a tenant admin can allow it in the tenant settings (allow_procedures)")
	}
	if c.ForeignKey && !settings.AllowForeignKeys {
		return deny("foreign_keys_not_allowed", "foreign keys are turned off for this tenant; a tenant admin can allow them in the tenant settings (allow_foreign_keys)")
	}
	if c.Rewrites && !settings.AllowHighImpactAlter {
		return deny("high_impact_alter", "this ALTER TABLE drops or redefines columns or rebuilds the table, which can lock it for a long time; high-impact ALTERs are turned off for this tenant, a tenant admin can allow them in the tenant settings (allow_high_impact_alter)")
	}
	return nil
}

// denyLargeAlter is the refusal of an ALTER TABLE of table, estimated at rows rows (at least
// HighImpactRows), while the tenant does not allow high-impact ALTERs: reason high_impact_alter.
// table is shown to the user as given: pass the name without the physical schema.
func denyLargeAlter(table string, rows int64) *Denied {
	return deny("high_impact_alter", "table %s has about %s rows (%s or more make an ALTER TABLE high impact: it can lock or rewrite the table for a long time); high-impact ALTERs are turned off for this tenant, a tenant admin can allow them in the tenant settings (allow_high_impact_alter)",
		table, groupDigits(rows), groupDigits(HighImpactRows))
}

// needsConfirm says why a statement needs confirm: true, or "" when it does not: "drop" for DROP,
// TRUNCATE and CREATE OR REPLACE TABLE (c.Drops), "no_where" for UPDATE or DELETE without WHERE
// (c.NoWhere). Drops wins when both apply.
func needsConfirm(c Classification) string {
	switch {
	case c.Drops:
		return "drop"
	case c.NoWhere:
		return "no_where"
	}
	return ""
}

// notReadBecause says in words what a statement of type t does instead of reading.
func notReadBecause(t StatementType) string {
	switch t {
	case TypeDML:
		return "writes or locks rows"
	case TypeDDL:
		return "changes the database's structure"
	}
	return "is not a read (transactions, session settings, CALL and table maintenance are not)"
}

// groupDigits formats n with thousands separators: 100000 → "100,000".
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
