// Package mysqlerr reads what the MySQL server said in an error.
package mysqlerr

import (
	"errors"

	"github.com/go-sql-driver/mysql"
)

// erDupEntry is ER_DUP_ENTRY: a row's key is taken.
const erDupEntry = 1062

// IsDuplicateKey reports whether err is (or wraps) MySQL's duplicate-key error: an INSERT or
// UPDATE gave a row a primary or unique key another row has.
func IsDuplicateKey(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == erDupEntry
}

// erNoSuchTable is ER_NO_SUCH_TABLE.
const erNoSuchTable = 1146

// IsNoSuchTable reports whether err is (or wraps) MySQL's "table doesn't exist".
func IsNoSuchTable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == erNoSuchTable
}

// erMaxPreparedStmtCountReached and erUnsupportedPS are the server refusing to prepare a
// statement: too many prepared on the server (max_prepared_stmt_count), or one the binary
// protocol does not take.
const (
	erMaxPreparedStmtCountReached = 1461
	erUnsupportedPS               = 1295
)

// IsPrepareRefused reports whether err is (or wraps) the server refusing to prepare a statement;
// running it as text still works.
func IsPrepareRefused(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == erMaxPreparedStmtCountReached || me.Number == erUnsupportedPS)
}
