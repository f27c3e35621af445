package sqlcheck

import "testing"

// BenchmarkClassify measures the classifier on a typical statement (parsed by
// sqlparser) and on a CTE (sqlparser fails, lexical fallback). Goal: < 50 µs.
func BenchmarkClassify(b *testing.B) {
	cases := []struct{ name, sql string }{
		{"select_join", "SELECT t.id, d.name FROM tenants t JOIN `databases` d ON d.tenant_id = t.id WHERE t.status = 'active' AND d.created_at > '2024-01-01' ORDER BY d.name LIMIT 100"},
		{"cte_fallback", "WITH recent AS (SELECT id, tenant_id, ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY created_at DESC) AS rn FROM orders) SELECT r.id, t.name FROM recent r JOIN tenants t ON t.id = r.tenant_id WHERE r.rn = 1"},
		{"update", "UPDATE orders SET status = 'shipped' WHERE id = 42"},
	}
	for _, tc := range cases {
		if _, err := Classify(tc.sql, "tenant_42"); err != nil {
			b.Fatalf("%s: %v", tc.name, err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := Classify(tc.sql, "tenant_42"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
