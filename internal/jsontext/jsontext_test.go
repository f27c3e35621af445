package jsontext

import (
	"encoding/json"
	"testing"
)

func TestAppendStringIsWhatMarshalWrites(t *testing.T) {
	s := "plain"
	for _, v := range []string{"", "database-1", `quote " and \ back`, "<script>&", "tab\there", "ünïcode \u2028", "\x00\x1f", "\xff invalid"} {
		want, _ := json.Marshal(v)
		if got := AppendString(nil, v); string(got) != string(want) {
			t.Errorf("%q: %s, want %s", v, got, want)
		}
	}
	if got := string(AppendNullable([]byte("x:"), nil)) + string(AppendNullable(nil, &s)); got != `x:null"plain"` {
		t.Errorf("nullable: %s", got)
	}
}
