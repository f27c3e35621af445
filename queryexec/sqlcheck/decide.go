package queryexec

import (
	"fmt"

	"github.com/clouddbmanager/clouddb/domain"
)

// HighImpactRows: an ALTER TABLE of a table with at least this many rows (estimate) is high impact
// too, whatever it changes. The engine checks the estimate and refuses with DenyLargeAlter unless
// the tenant allows high-impact ALTERs.
const HighImpactRows = 100_000

// Authorize decides whether role may run the classified statement under the tenant's settings.
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
func Authorize(c Classification, role domain.Role, settings domain.TenantSettings) error {
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

// DenyLargeAlter is the refusal of an ALTER TABLE of table, estimated at rows rows (at least
// HighImpactRows), while the tenant does not allow high-impact ALTERs: reason high_impact_alter.
// table is shown to the user as given: pass the name without the physical schema.
func DenyLargeAlter(table string, rows int64) *Denied {
	return deny("high_impact_alter", "table %s has about %s rows (%s or more make an ALTER TABLE high impact: it can lock or rewrite the table for a long time); high-impact ALTERs are turned off for this tenant, a tenant admin can allow them in the tenant settings (allow_high_impact_alter)",
		table, groupDigits(rows), groupDigits(HighImpactRows))
}

// NeedsConfirm says why a statement needs confirm: true, or "" when it does not: "drop" for DROP,
// TRUNCATE and CREATE OR REPLACE TABLE (c.Drops), "no_where" for UPDATE or DELETE without WHERE
// (c.NoWhere). Drops wins when both apply.
func NeedsConfirm(c Classification) string {
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
