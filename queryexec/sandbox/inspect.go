package sandbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/clouddbmanager/clouddb/domain"
)

// storageBatch bounds the number of schemas measured by one statement.
const storageBatch = 200

// StorageBytes measures data_length + index_length of every table of the schemas of ids, from
// information_schema.TABLES, in one statement (per storageBatch ids). A schema without tables
// measures 0; the ids whose schema does not exist are absent from the map.
//
// The figures are the storage engine's estimates: InnoDB refreshes them on its automatic
// statistics recalculation or on ANALYZE TABLE, so they lag behind writes a little. Each schema is
// its own UNION ALL branch with an equality on TABLE_SCHEMA, which MariaDB and MySQL answer by
// opening that schema's tables only (an IN list makes MariaDB open every table of the server).
//
// Returns a *domain.ValidationError if an id is not a UUID, an error wrapping
// domain.ErrUnavailable when the server does not answer.
func (s *Sandbox) StorageBytes(ctx context.Context, ids []string) (map[string]int64, error) {
	out := make(map[string]int64, len(ids))
	bySchema := make(map[string]string, len(ids))
	for _, id := range ids {
		n, err := s.names(id)
		if err != nil {
			return nil, err
		}
		bySchema[n.schema] = id
	}
	schemas := make([]string, 0, len(bySchema))
	for schema := range bySchema {
		schemas = append(schemas, schema)
	}
	for start := 0; start < len(schemas); start += storageBatch {
		batch := schemas[start:min(start+storageBatch, len(schemas))]
		branches := make([]string, len(batch))
		args := make([]any, 0, 2*len(batch))
		for i, schema := range batch {
			branches[i] = `SELECT SCHEMA_NAME, (SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0)
				FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?)
				FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`
			args = append(args, schema, schema)
		}
		rows, err := s.db.QueryContext(ctx, strings.Join(branches, " UNION ALL "), args...)
		if err != nil {
			return nil, s.Wrap("measure storage", err)
		}
		for rows.Next() {
			var schema string
			var bytes int64
			if err := rows.Scan(&schema, &bytes); err != nil {
				rows.Close()
				return nil, s.Wrap("measure storage", err)
			}
			if id, ok := bySchema[schema]; ok {
				out[id] = bytes
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, s.Wrap("measure storage", err)
		}
	}
	return out, nil
}

// Column is one column of a table or view, as the schema browser shows it.
type Column struct {
	Name     string  `json:"name"`
	Type     string  `json:"type"` // the full column type, e.g. "varchar(255)", "int(10) unsigned"
	Nullable bool    `json:"nullable"`
	Key      string  `json:"key"`     // "PRI", "UNI", "MUL" or ""
	Default  *string `json:"default"` // nil: no default, or DEFAULT NULL; else the value or expression (unquoted)
}

// Index is one index of a table; Columns are in index order (a functional key part shows as
// "(expression)").
type Index struct {
	Name    string   `json:"name"`
	Unique  bool     `json:"unique"`
	Columns []string `json:"columns"`
}

// Table is one table or view of a database's schema.
type Table struct {
	Name         string   `json:"name"`
	Type         string   `json:"type"`          // "table", "view" or "sequence" (MariaDB)
	RowsEstimate int64    `json:"rows_estimate"` // the engine's estimate; 0 for views
	Columns      []Column `json:"columns"`
	Indexes      []Index  `json:"indexes"`
}

// Schema lists the tables, views and sequences of database id's schema, ordered by name, with
// their columns in ordinal order, their indexes (PRIMARY first) and their row estimates, from
// information_schema and of that schema only.
//
// Returns an error wrapping domain.ErrNotFound if the schema does not exist, a
// *domain.ValidationError if id is not a UUID, an error wrapping domain.ErrUnavailable when the
// server does not answer.
func (s *Sandbox) Schema(ctx context.Context, id string) ([]Table, error) {
	n, err := s.names(id)
	if err != nil {
		return nil, err
	}
	var exists int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`, n.schema).Scan(&exists); err != nil {
		return nil, s.Wrap("schema of "+id, err)
	}
	if exists == 0 {
		return nil, fmt.Errorf("queryexec: sandbox %s: schema of %s: %w", s.name, id, domain.ErrNotFound)
	}

	var tables []Table
	index := map[string]int{}
	err = s.each(ctx, `SELECT TABLE_NAME, TABLE_TYPE, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`, n.schema, func(rows *sql.Rows) error {
		var t Table
		var kind string
		if err := rows.Scan(&t.Name, &kind, &t.RowsEstimate); err != nil {
			return err
		}
		switch kind {
		case "VIEW":
			t.Type, t.RowsEstimate = "view", 0
		case "SEQUENCE":
			t.Type = "sequence"
		case "BASE TABLE", "SYSTEM VERSIONED":
			t.Type = "table"
		default: // temporary tables of the admin session, system views: not the user's
			return nil
		}
		index[t.Name] = len(tables)
		tables = append(tables, t)
		return nil
	})
	if err != nil {
		return nil, s.Wrap("schema of "+id+": tables", err)
	}

	err = s.each(ctx, `SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY, COLUMN_DEFAULT
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`, n.schema, func(rows *sql.Rows) error {
		var table, nullable string
		var c Column
		var def sql.NullString
		if err := rows.Scan(&table, &c.Name, &c.Type, &nullable, &c.Key, &def); err != nil {
			return err
		}
		c.Nullable = nullable == "YES"
		c.Default = s.columnDefault(def)
		if i, ok := index[table]; ok {
			tables[i].Columns = append(tables[i].Columns, c)
		}
		return nil
	})
	if err != nil {
		return nil, s.Wrap("schema of "+id+": columns", err)
	}

	err = s.each(ctx, `SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COALESCE(COLUMN_NAME, '(expression)')
		FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?
		ORDER BY TABLE_NAME, INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX`, n.schema, func(rows *sql.Rows) error {
		var table, name, column string
		var nonUnique int
		if err := rows.Scan(&table, &name, &nonUnique, &column); err != nil {
			return err
		}
		i, ok := index[table]
		if !ok {
			return nil
		}
		t := &tables[i]
		if k := len(t.Indexes) - 1; k >= 0 && t.Indexes[k].Name == name {
			t.Indexes[k].Columns = append(t.Indexes[k].Columns, column)
		} else {
			t.Indexes = append(t.Indexes, Index{Name: name, Unique: nonUnique == 0, Columns: []string{column}})
		}
		return nil
	})
	if err != nil {
		return nil, s.Wrap("schema of "+id+": indexes", err)
	}
	return tables, nil
}

// each runs query with one argument and calls row for every row.
func (s *Sandbox) each(ctx context.Context, query string, arg any, row func(*sql.Rows) error) error {
	rows, err := s.db.QueryContext(ctx, query, arg)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// columnDefault normalizes COLUMN_DEFAULT. MariaDB (≥ 10.2.7) quotes string literals ('abc') and
// reports an explicit DEFAULT NULL as the word NULL, while MySQL reports the bare value and SQL
// NULL; both come back here as MySQL shows them, expressions (current_timestamp()) unchanged.
func (s *Sandbox) columnDefault(def sql.NullString) *string {
	if !def.Valid {
		return nil
	}
	v := def.String
	if s.flavor == FlavorMariaDB {
		if v == "NULL" {
			return nil
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = unquoteMariaDB(v[1 : len(v)-1])
		}
	}
	return &v
}

// unquoteMariaDB undoes the escaping MariaDB applies to a string default in COLUMN_DEFAULT: a quote
// doubled, and backslash escapes for the backslash and control characters.
func unquoteMariaDB(s string) string {
	if !strings.ContainsAny(s, `'\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case '0':
				c = 0
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'Z':
				c = 0x1a
			case 'b':
				c = '\b'
			default:
				c = s[i]
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}
