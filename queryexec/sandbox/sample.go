package sandbox

import (
	"context"
	"fmt"
	"strings"

	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// LoadSample fills a provisioned database with the "sample" template: customers, products and
// orders, a few hundred rows of plausible data, the same every time.
func (s *Sandbox) LoadSample(ctx context.Context, id string) error {
	n, err := s.names(id)
	if err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.Wrap("load sample", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "USE "+sqlcheck.QuoteIdent(n.schema)); err != nil {
		return s.Wrap("load sample", err)
	}
	tables, data := sampleStatements()
	for _, stmt := range tables {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return s.Wrap("load sample", err)
		}
	}
	var rows int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM customers").Scan(&rows); err != nil {
		return s.Wrap("load sample", err)
	}
	if rows > 0 {
		return nil // loaded by an attempt that was interrupted before it was recorded
	}
	// The rows go in one transaction: an interrupted load leaves none, and the next attempt loads all.
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return s.Wrap("load sample", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for _, stmt := range data {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return s.Wrap("load sample", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.Wrap("load sample", err)
	}
	return nil
}

var (
	firstNames = []string{"Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis"}
	lastNames  = []string{"Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Ritchie"}
	products   = []string{"Keyboard", "Mouse", "Monitor", "Laptop stand", "USB hub", "Headset", "Webcam", "Desk lamp", "Notebook", "Cable set"}
)

// sampleStatements returns the sample's tables and, separately, its rows.
func sampleStatements() (tables, data []string) {
	tables = []string{
		`CREATE TABLE IF NOT EXISTS customers (
			id INT AUTO_INCREMENT PRIMARY KEY,
			name VARCHAR(100) NOT NULL,
			email VARCHAR(200) NOT NULL UNIQUE,
			country CHAR(2) NOT NULL,
			created_at DATETIME NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS products (
			id INT AUTO_INCREMENT PRIMARY KEY,
			name VARCHAR(100) NOT NULL,
			price DECIMAL(10,2) NOT NULL,
			stock INT NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS orders (
			id INT AUTO_INCREMENT PRIMARY KEY,
			customer_id INT NOT NULL,
			product_id INT NOT NULL,
			quantity INT NOT NULL,
			ordered_at DATETIME NOT NULL,
			KEY orders_customer (customer_id),
			CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id),
			CONSTRAINT orders_product FOREIGN KEY (product_id) REFERENCES products (id)
		)`,
	}
	countries := []string{"DE", "FR", "GB", "US", "NL"}
	var rows []string
	for i := 0; i < 100; i++ {
		first, last := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames))%len(lastNames)]
		rows = append(rows, fmt.Sprintf("(%d, '%s %s', '%s.%s%d@example.com', '%s', '2024-01-01' + INTERVAL %d DAY)",
			i+1, first, last, strings.ToLower(first), strings.ToLower(last), i, countries[i%len(countries)], i*3))
	}
	// Explicit ids: orders refer to them, and AUTO_INCREMENT values of an interrupted load are not
	// given back.
	data = append(data, "INSERT INTO customers (id, name, email, country, created_at) VALUES "+strings.Join(rows, ", "))
	rows = rows[:0]
	for i, p := range products {
		rows = append(rows, fmt.Sprintf("(%d, '%s', %d.%02d, %d)", i+1, p, 5+i*7, (i*37)%100, 10+i*13))
	}
	data = append(data, "INSERT INTO products (id, name, price, stock) VALUES "+strings.Join(rows, ", "))
	rows = rows[:0]
	for i := 0; i < 300; i++ {
		rows = append(rows, fmt.Sprintf("(%d, %d, %d, '2024-02-01' + INTERVAL %d HOUR)", 1+(i*7)%100, 1+(i*3)%len(products), 1+i%4, i*5))
	}
	return tables, append(data, "INSERT INTO orders (customer_id, product_id, quantity, ordered_at) VALUES "+strings.Join(rows, ", "))
}
