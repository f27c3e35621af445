package sandbox

import (
	"testing"

	"github.com/go-sql-driver/mysql"
)

// Connection details name the TCP address of the admin DSN, or 127.0.0.1 and the server's own
// port for a socket DSN: "localhost" would send mysql and mariadb clients to their default socket.
func TestHostPort(t *testing.T) {
	for _, tc := range []struct {
		dsn  string
		host string
		port int
	}{
		{"root@tcp(db.internal:3307)/", "db.internal", 3307},
		{"root@unix(/tmp/clouddb/mysql.sock)/", "127.0.0.1", 40321},
	} {
		cfg, err := mysql.ParseDSN(tc.dsn)
		if err != nil {
			t.Fatal(err)
		}
		if host, port := hostPort(cfg, 40321); host != tc.host || port != tc.port {
			t.Errorf("hostPort(%s) = %s:%d, want %s:%d", tc.dsn, host, port, tc.host, tc.port)
		}
	}
}
