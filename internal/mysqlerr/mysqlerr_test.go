package mysqlerr_test

import (
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/clouddbmanager/clouddb/internal/mysqlerr"
	"github.com/clouddbmanager/clouddb/internal/testdb"
)

func TestIsDuplicateKeyOfTheServer(t *testing.T) {
	db := testdb.New(t)
	if _, err := db.Exec(`CREATE TABLE taken (id INT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO taken VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	_, err := db.Exec(`INSERT INTO taken VALUES (1)`)
	if !mysqlerr.IsDuplicateKey(err) || !mysqlerr.IsDuplicateKey(fmt.Errorf("wrapped: %w", err)) {
		t.Errorf("IsDuplicateKey(%v) = false, want true (also wrapped)", err)
	}
	_, err = db.Exec(`INSERT INTO missing VALUES (1)`)
	for _, other := range []error{nil, err, sql.ErrNoRows, errors.New("1062"), &mysql.MySQLError{Number: 1061}} {
		if mysqlerr.IsDuplicateKey(other) {
			t.Errorf("IsDuplicateKey(%v) = true, want false", other)
		}
	}
}

func TestIsPrepareRefused(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1461, Message: "Can't create more than max_prepared_stmt_count statements"}, true},
		{fmt.Errorf("prepare: %w", &mysql.MySQLError{Number: 1295}), true},
		{&mysql.MySQLError{Number: 1062}, false},
		{errors.New("1461"), false},
		{nil, false},
	} {
		if got := mysqlerr.IsPrepareRefused(c.err); got != c.want {
			t.Errorf("IsPrepareRefused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
