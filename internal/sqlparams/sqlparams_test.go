package sqlparams_test

import (
	"testing"

	"github.com/clouddbmanager/clouddb/internal/sqlparams"
)

func TestList(t *testing.T) {
	for n, want := range map[int]string{1: "?", 2: "?, ?", 3: "?, ?, ?"} {
		if got := sqlparams.List(n); got != want {
			t.Errorf("List(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRows(t *testing.T) {
	tests := []struct {
		rows, columns int
		want          string
	}{
		{1, 1, "(?)"},
		{1, 3, "(?, ?, ?)"},
		{2, 2, "(?, ?), (?, ?)"},
		{3, 1, "(?), (?), (?)"},
	}
	for _, tt := range tests {
		if got := sqlparams.Rows(tt.rows, tt.columns); got != tt.want {
			t.Errorf("Rows(%d, %d) = %q, want %q", tt.rows, tt.columns, got, tt.want)
		}
	}
}
