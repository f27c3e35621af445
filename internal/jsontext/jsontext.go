// Package jsontext appends JSON text by hand where encoding/json's reflection is the cost of a
// hot path (the audit export writes a million records): the output is what json.Marshal writes.
package jsontext

import "encoding/json"

// AppendString appends s as a JSON string, escaped as json.Marshal escapes it.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s) // a string always encodes
			return append(b, quoted...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendNullable appends s as a JSON string, or null when s is nil.
func AppendNullable(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return AppendString(b, *s)
}
