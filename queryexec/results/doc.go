// Package results keeps what a statement answered: it shapes MySQL rows as JSON values
// (RowReader), keeps each result for its owner in memory or a spill file for paging (Store), and
// exports a kept result as CSV, JSON or SQL (NewExporter). It runs no statements.
package results
