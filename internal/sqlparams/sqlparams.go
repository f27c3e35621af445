// Package sqlparams writes the placeholders of statements whose number of parameters varies: the
// values of an IN (…) and the rows of a multi-row INSERT.
package sqlparams

import "strings"

// List is n placeholders, "?, ?, ?": the values of an IN (…). n must be at least 1.
func List(n int) string {
	return strings.Repeat("?, ", n-1) + "?"
}

// Rows is rows groups of columns placeholders, "(?, ?), (?, ?)": the VALUES of a multi-row INSERT.
// rows and columns must be at least 1.
func Rows(rows, columns int) string {
	row := "(" + List(columns) + ")"
	return strings.Repeat(row+", ", rows-1) + row
}
