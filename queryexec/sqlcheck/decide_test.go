package sqlcheck

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/clouddbmanager/clouddb/domain"
)

// authzStatements are classified for real: each with the type and flags the matrix expects.
var authzStatements = []struct {
	sql        string
	typ        StatementType
	routine    bool
	foreignKey bool
	rewrites   bool
}{
	{sql: "SELECT * FROM t", typ: TypeRead},
	{sql: "SHOW TABLES", typ: TypeRead},
	{sql: "DESCRIBE t", typ: TypeRead},
	{sql: "EXPLAIN SELECT * FROM t", typ: TypeRead},
	{sql: "EXPLAIN UPDATE t SET a = 1", typ: TypeRead},               // EXPLAIN does not run it
	{sql: "EXPLAIN ANALYZE DELETE FROM t WHERE a = 1", typ: TypeDML}, // runs it
	{sql: "ANALYZE UPDATE t SET a = 1 WHERE b = 2", typ: TypeDML},    // MariaDB ANALYZE runs it
	{sql: "ANALYZE SELECT * FROM t", typ: TypeRead},
	{sql: "SELECT * FROM t WHERE id = 1 FOR UPDATE", typ: TypeDML}, // locking read
	{sql: "INSERT INTO t (a) VALUES (1)", typ: TypeDML},
	{sql: "UPDATE t SET a = 1 WHERE id = 2", typ: TypeDML},
	{sql: "DELETE FROM t", typ: TypeDML},
	{sql: "CREATE TABLE t2 (a INT)", typ: TypeDDL},
	{sql: "CREATE TABLE c (pid INT, FOREIGN KEY (pid) REFERENCES p (id))", typ: TypeDDL, foreignKey: true},
	{sql: "ALTER TABLE t ADD COLUMN b INT", typ: TypeDDL},
	{sql: "ALTER TABLE t DROP COLUMN b", typ: TypeDDL, rewrites: true},
	{sql: "ALTER TABLE t DROP INDEX i", typ: TypeDDL},
	{sql: "ALTER TABLE t DROP FOREIGN KEY fk", typ: TypeDDL},
	{sql: "ALTER TABLE t MODIFY b BIGINT, ADD FOREIGN KEY (b) REFERENCES p (id)", typ: TypeDDL, foreignKey: true, rewrites: true},
	{sql: "CREATE PROCEDURE p() BEGIN SELECT 1; END", typ: TypeDDL, routine: true},
	{sql: "DROP TRIGGER trg", typ: TypeDDL, routine: true},
	{sql: "CREATE PROCEDURE p() BEGIN ALTER TABLE t ENGINE=InnoDB; END", typ: TypeDDL, routine: true, rewrites: true},
	{sql: "DROP TABLE t", typ: TypeDDL},
	{sql: "CALL p(1)", typ: TypeOther},
	{sql: "SET @a = 1", typ: TypeOther},
	{sql: "BEGIN", typ: TypeOther},
	{sql: "ANALYZE TABLE t", typ: TypeOther},
}

var authzRoles = []domain.Role{domain.RoleViewer, domain.RoleDeveloper, domain.RoleTenantAdmin, domain.RoleSuperAdmin, "", "owner"}

// TestAuthorizeMatrix runs every statement × role × combination of the three settings.
func TestAuthorizeMatrix(t *testing.T) {
	for _, st := range authzStatements {
		c, err := Classify(st.sql, "tenant_42")
		if err != nil {
			t.Fatalf("Classify(%q): %v", st.sql, err)
		}
		if c.Type != st.typ || c.Routine != st.routine || c.ForeignKey != st.foreignKey || c.Rewrites != st.rewrites {
			t.Fatalf("Classify(%q) = %+v, want type %s routine=%v foreignKey=%v rewrites=%v", st.sql, c, st.typ, st.routine, st.foreignKey, st.rewrites)
		}
		for _, role := range authzRoles {
			for bits := range 8 {
				s := domain.TenantSettings{AllowProcedures: bits&1 != 0, AllowForeignKeys: bits&2 != 0, AllowHighImpactAlter: bits&4 != 0}
				want := ""
				switch {
				case role == domain.RoleViewer && st.typ != TypeRead:
					want = "read_only_role"
				case role == domain.RoleViewer:
				case role.Level() == 0:
					want = "unknown_role"
				case st.routine && !s.AllowProcedures:
					want = "procedures_not_allowed"
				case st.foreignKey && !s.AllowForeignKeys:
					want = "foreign_keys_not_allowed"
				case st.rewrites && !s.AllowHighImpactAlter:
					want = "high_impact_alter"
				}
				name := fmt.Sprintf("%q as %q with procedures=%v foreign_keys=%v high_impact=%v", st.sql, role, s.AllowProcedures, s.AllowForeignKeys, s.AllowHighImpactAlter)
				err := authorize(c, role, s)
				if got := reasonOf(t, err); got != want {
					t.Errorf("authorize(%s) = %v, want %q", name, err, want)
				}
			}
		}
	}
}

func reasonOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var d *Denied
	if !errors.As(err, &d) {
		t.Fatalf("%v is not a *Denied", err)
	}
	if d.Message == "" {
		t.Errorf("%s: empty message", d.Reason)
	}
	return d.Reason
}

// TestAuthorizeCases spells out the rules with hand-built classifications.
func TestAuthorizeCases(t *testing.T) {
	all := domain.TenantSettings{AllowProcedures: true, AllowForeignKeys: true, AllowHighImpactAlter: true}
	none := domain.TenantSettings{}
	defaults := domain.DefaultSettings(domain.Plans[0].Limits) // foreign keys on, procedures and high-impact off
	tests := []struct {
		name     string
		c        Classification
		role     domain.Role
		settings domain.TenantSettings
		want     string
	}{
		{"viewer reads", Classification{Type: TypeRead, Verb: "SELECT"}, domain.RoleViewer, none, ""},
		{"viewer writes", Classification{Type: TypeDML, Verb: "INSERT"}, domain.RoleViewer, all, "read_only_role"},
		{"viewer DDL", Classification{Type: TypeDDL, Verb: "CREATE"}, domain.RoleViewer, all, "read_only_role"},
		{"viewer other", Classification{Type: TypeOther, Verb: "CALL"}, domain.RoleViewer, all, "read_only_role"},
		{"viewer unclassified", Classification{}, domain.RoleViewer, all, "read_only_role"},
		{"viewer routine: the role comes first", Classification{Type: TypeDDL, Verb: "CREATE", Routine: true}, domain.RoleViewer, none, "read_only_role"},
		{"developer writes", Classification{Type: TypeDML, Verb: "UPDATE"}, domain.RoleDeveloper, none, ""},
		{"developer other", Classification{Type: TypeOther, Verb: "CALL"}, domain.RoleDeveloper, none, ""},
		{"developer routine off", Classification{Type: TypeDDL, Verb: "CREATE", Routine: true}, domain.RoleDeveloper, defaults, "procedures_not_allowed"},
		{"developer routine on", Classification{Type: TypeDDL, Verb: "CREATE", Routine: true}, domain.RoleDeveloper, all, ""},
		{"developer foreign key by default", Classification{Type: TypeDDL, Verb: "CREATE", ForeignKey: true}, domain.RoleDeveloper, defaults, ""},
		{"developer foreign key off", Classification{Type: TypeDDL, Verb: "CREATE", ForeignKey: true}, domain.RoleDeveloper, none, "foreign_keys_not_allowed"},
		{"developer rewrite by default", Classification{Type: TypeDDL, Verb: "ALTER", Rewrites: true}, domain.RoleDeveloper, defaults, "high_impact_alter"},
		{"developer rewrite on", Classification{Type: TypeDDL, Verb: "ALTER", Rewrites: true}, domain.RoleDeveloper, all, ""},
		{"tenant admin bound by settings", Classification{Type: TypeDDL, Verb: "ALTER", Rewrites: true}, domain.RoleTenantAdmin, none, "high_impact_alter"},
		{"super admin like tenant admin", Classification{Type: TypeDDL, Verb: "CREATE", Routine: true}, domain.RoleSuperAdmin, none, "procedures_not_allowed"},
		{"super admin writes", Classification{Type: TypeDML, Verb: "DELETE"}, domain.RoleSuperAdmin, none, ""},
		{"procedures checked before foreign keys", Classification{Type: TypeDDL, Routine: true, ForeignKey: true, Rewrites: true}, domain.RoleDeveloper, none, "procedures_not_allowed"},
		{"foreign keys checked before rewrites", Classification{Type: TypeDDL, ForeignKey: true, Rewrites: true}, domain.RoleDeveloper, none, "foreign_keys_not_allowed"},
		{"no role", Classification{Type: TypeRead}, "", all, "unknown_role"},
		{"unknown role", Classification{Type: TypeRead}, "owner", all, "unknown_role"},
	}
	for _, tt := range tests {
		if got := reasonOf(t, authorize(tt.c, tt.role, tt.settings)); got != tt.want {
			t.Errorf("%s: Authorize = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestAuthorizeDenyLargeAlter(t *testing.T) {
	d := denyLargeAlter("orders", 1_234_567)
	if d.Reason != "high_impact_alter" {
		t.Errorf("reason %q", d.Reason)
	}
	for _, want := range []string{"orders", "1,234,567", "100,000", "allow_high_impact_alter"} {
		if !strings.Contains(d.Message, want) {
			t.Errorf("message %q lacks %q", d.Message, want)
		}
	}
	var err error = d
	var got *Denied
	if !errors.As(err, &got) || got != d {
		t.Errorf("denyLargeAlter is not usable as an error")
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 100000: "100,000", -1234: "-1,234"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestAuthorizeNeedsConfirm(t *testing.T) {
	tests := []struct {
		sql  string
		want string
	}{
		{"DROP TABLE t", "drop"},
		{"DROP TABLE IF EXISTS t1, t2", "drop"},
		{"TRUNCATE TABLE t", "drop"},
		{"TRUNCATE t", "drop"},
		{"CREATE OR REPLACE TABLE t (a INT)", "drop"},
		{"DROP VIEW v", "drop"},
		{"DROP PROCEDURE p", "drop"},
		{"DELETE FROM t", "no_where"},
		{"UPDATE t SET a = 1", "no_where"},
		{"UPDATE t SET a = (SELECT MAX(b) FROM u WHERE x = 1)", "no_where"},
		{"ANALYZE DELETE FROM t", "no_where"},
		{"EXPLAIN DELETE FROM t", ""}, // not run
		{"DELETE FROM t WHERE id = 1", ""},
		{"UPDATE t SET a = 1 WHERE id = 1", ""},
		{"SELECT * FROM t", ""},
		{"INSERT INTO t VALUES (1)", ""},
		{"ALTER TABLE t DROP COLUMN a", ""}, // high impact, not a confirmation
		{"CREATE TABLE t (a INT)", ""},
	}
	for _, tt := range tests {
		c, err := Classify(tt.sql, "tenant_42")
		if err != nil {
			t.Errorf("Classify(%q): %v", tt.sql, err)
			continue
		}
		if got := needsConfirm(c); got != tt.want {
			t.Errorf("needsConfirm(%q) = %q, want %q", tt.sql, got, tt.want)
		}
	}
	if got := needsConfirm(Classification{Drops: true, NoWhere: true}); got != "drop" {
		t.Errorf("needsConfirm(Drops and NoWhere) = %q, want drop", got)
	}
}

// TestDecide covers what Decide adds to the classifier and authorize: the super admin, the
// account, confirmation, the storage quota and the second decision on the server's estimates.
func TestDecide(t *testing.T) {
	const schema = "cdbt_0123456789abcdef0123456789abcdef"
	limits := domain.Limits{MaxWriteRows: 50_000, MaxStorageBytes: 1 << 30}
	here := Place{Schema: schema, Settings: domain.TenantSettings{AllowForeignKeys: true}, Limits: limits}
	full := here
	full.StorageBytes = 1 << 30
	restricted := here
	restricted.WriteWall = &domain.QuotaExceededError{Resource: "storage", Used: 1 << 30, Limit: 1 << 30}
	developer := Principal{Role: domain.RoleDeveloper}
	rows := func(n int64) *int64 { return &n }
	tests := []struct {
		name    string
		q       Question
		account Account
		want    string // "" may run; a *Denied reason; "confirm:<reason>"; "quota"
		measure Measure
		table   string
	}{
		{"viewer reads on the read-only account", Question{SQL: "SELECT 1", Who: Principal{Role: domain.RoleViewer}, Where: here}, ReadOnly, "", MeasureNothing, ""},
		{"viewer may not write", Question{SQL: "DELETE FROM t WHERE id = 1", Who: Principal{Role: domain.RoleViewer}, Where: here}, ReadOnly, "read_only_role", MeasureNothing, ""},
		{"the account is chosen for what the classifier refuses", Question{SQL: "SELECT 'open", Who: Principal{Role: domain.RoleViewer}, Where: here}, ReadOnly, "unparsable", MeasureNothing, ""},
		{"a super admin without a role acts as tenant admin", Question{SQL: "INSERT INTO t VALUES (1)", Who: Principal{SuperAdmin: true}, Where: here}, ReadWrite, "", MeasureNothing, ""},
		{"a super admin who is a viewer acts as tenant admin", Question{SQL: "INSERT INTO t VALUES (1)", Who: Principal{Role: domain.RoleViewer, SuperAdmin: true}, Where: here}, ReadWrite, "", MeasureNothing, ""},
		{"no role", Question{SQL: "SELECT 1", Where: here}, ReadWrite, "unknown_role", MeasureNothing, ""},
		{"another schema", Question{SQL: "SELECT * FROM mysql.user", Who: developer, Where: here}, ReadWrite, "other_schema", MeasureNothing, ""},
		{"drop needs confirm", Question{SQL: "DROP TABLE t", Who: developer, Where: here}, ReadWrite, "confirm:drop", MeasureNothing, ""},
		{"drop confirmed", Question{SQL: "DROP TABLE t", Who: developer, Where: here, Confirm: true}, ReadWrite, "", MeasureNothing, ""},
		{"update without where needs confirm", Question{SQL: "UPDATE t SET a = 1", Who: developer, Where: here}, ReadWrite, "confirm:no_where", MeasureWriteRows, ""},
		{"a refusal comes before a confirmation", Question{SQL: "DROP TABLE t", Who: Principal{Role: domain.RoleViewer}, Where: here}, ReadOnly, "read_only_role", MeasureNothing, ""},
		{"insert at the storage limit", Question{SQL: "INSERT INTO t VALUES (1)", Who: developer, Where: full}, ReadWrite, "quota", MeasureNothing, ""},
		{"insert while the account is restricted", Question{SQL: "INSERT INTO t VALUES (1)", Who: developer, Where: restricted}, ReadWrite, "quota", MeasureNothing, ""},
		{"a confirmation comes before the quota", Question{SQL: "TRUNCATE t", Who: developer, Where: full}, ReadWrite, "confirm:drop", MeasureNothing, ""},
		{"delete frees space at the limit", Question{SQL: "DELETE FROM t WHERE id = 1", Who: developer, Where: full}, ReadWrite, "", MeasureWriteRows, ""},
		{"reads at the limit", Question{SQL: "SELECT * FROM t", Who: developer, Where: full}, ReadWrite, "", MeasureNothing, ""},
		{"a small update", Question{SQL: "UPDATE t SET a = 1 WHERE b = 2", Who: developer, Where: here, Estimate: rows(ConfirmWriteRows)}, ReadWrite, "", MeasureWriteRows, ""},
		{"a large update needs confirm", Question{SQL: "UPDATE t SET a = 1 WHERE b = 2", Who: developer, Where: here, Estimate: rows(ConfirmWriteRows + 1)}, ReadWrite, "confirm:large_write", MeasureWriteRows, ""},
		{"a large update confirmed", Question{SQL: "UPDATE t SET a = 1 WHERE b = 2", Who: developer, Where: here, Confirm: true, Estimate: rows(ConfirmWriteRows + 1)}, ReadWrite, "", MeasureWriteRows, ""},
		{"a delete above the plan", Question{SQL: "DELETE FROM t WHERE b = 2", Who: developer, Where: here, Confirm: true, Estimate: rows(50_001)}, ReadWrite, "too_large", MeasureWriteRows, ""},
		{"alter of a table to measure", Question{SQL: "ALTER TABLE `" + schema + "`.t ADD COLUMN b INT", Who: developer, Where: here}, ReadWrite, "", MeasureTableRows, "t"},
		{"alter of a small table", Question{SQL: "ALTER TABLE t ADD COLUMN b INT", Who: developer, Where: here, Estimate: rows(HighImpactRows - 1)}, ReadWrite, "", MeasureTableRows, "t"},
		{"alter of a large table", Question{SQL: "ALTER TABLE t ADD COLUMN b INT", Who: developer, Where: here, Estimate: rows(HighImpactRows)}, ReadWrite, "high_impact_alter", MeasureTableRows, "t"},
		{"alter when the tenant allows high impact", Question{SQL: "ALTER TABLE t ADD COLUMN b INT", Who: developer,
			Where: Place{Schema: schema, Settings: domain.TenantSettings{AllowHighImpactAlter: true}, Limits: limits}}, ReadWrite, "", MeasureNothing, ""},
	}
	for _, tt := range tests {
		d := Decide(tt.q)
		if d.Account != tt.account || d.Measure != tt.measure || d.Table != tt.table {
			t.Errorf("%s: account %q, measure %d, table %q; want %q, %d, %q", tt.name, d.Account, d.Measure, d.Table, tt.account, tt.measure, tt.table)
		}
		if got := verdict(d.Err()); got != tt.want {
			t.Errorf("%s: Decide = %q (%v), want %q", tt.name, got, d.Err(), tt.want)
		}
	}
}

// A refused write names the quota that stops it: the tenant's storage with its use now, or the
// database owner's storage sub-quota, so a member over their own share is not told of the tenant's.
func TestDecideNamesTheStorageWall(t *testing.T) {
	limits := domain.Limits{MaxWriteRows: 50_000, MaxStorageBytes: 1 << 30}
	for _, tt := range []struct {
		name  string
		where Place
		want  domain.QuotaExceededError
	}{
		{"the tenant's", Place{Limits: limits, StorageBytes: 3 << 29, WriteWall: &domain.QuotaExceededError{Resource: "storage", Used: 1 << 30, Limit: 1 << 30}},
			domain.QuotaExceededError{Resource: "storage", Used: 3 << 29, Limit: 1 << 30}},
		{"the tenant's, measured before the wall", Place{Limits: limits, StorageBytes: 1 << 30},
			domain.QuotaExceededError{Resource: "storage", Used: 1 << 30, Limit: 1 << 30}},
		{"the owner's sub-quota", Place{Limits: limits, StorageBytes: 1 << 20, WriteWall: &domain.QuotaExceededError{Resource: "user_storage", Used: 5000, Limit: 4096}},
			domain.QuotaExceededError{Resource: "user_storage", Used: 5000, Limit: 4096}},
	} {
		var quota *domain.QuotaExceededError
		err := Decide(Question{SQL: "INSERT INTO t VALUES (1)", Who: Principal{Role: domain.RoleDeveloper}, Where: tt.where}).Err()
		if !errors.As(err, &quota) || *quota != tt.want {
			t.Errorf("%s: %v, want %+v", tt.name, err, tt.want)
		}
	}
}

// verdict names a decision's error for TestDecide.
func verdict(err error) string {
	var (
		na      *NotAllowedError
		confirm *ConfirmationError
		quota   *domain.QuotaExceededError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &na):
		return na.Reason
	case errors.As(err, &confirm):
		return "confirm:" + confirm.Reason
	case errors.As(err, &quota):
		return "quota"
	}
	return err.Error()
}
