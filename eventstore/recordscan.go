package eventstore

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// scanRecord fills rec from raw, a record of an export, as json.Unmarshal(raw, rec) would, without
// reflection: decoding with encoding/json was 85 % of a verification's time. It reads the event
// records an export writes (plain strings, integers, hashes, and data, metadata and audit kept as
// the bytes of valid JSON values) and answers false, leaving rec in any state, for anything else —
// invalid JSON, a duplicate key, a key written in another case or with escapes, a string with an
// escape or invalid UTF-8, a number that is not an int64, a value of another type, null where a
// string is expected, a signed head. The caller then decodes raw with encoding/json, which reports
// what is wrong: scanRecord never accepts what encoding/json refuses (TestScanRecordAgrees,
// FuzzScanRecord).
func scanRecord(raw []byte, rec *fileRecord) bool {
	s := jsonScan{b: raw}
	s.ws()
	var seen uint32
	ok := s.object(func(key []byte, plain bool) bool {
		if !plain {
			return false
		}
		f := recordFieldIndex(key)
		switch {
		case f < 0:
			return !foldsToRecordField(key) && s.value(0)
		case seen&(1<<f) != 0:
			return false
		}
		seen |= 1 << f
		return s.field(recordFields[f], rec)
	})
	s.ws()
	return ok && s.i == len(s.b)
}

// recordFields are the JSON names of fileRecord's fields (with eventFields'). The last three are a
// signed head's, which scanRecord leaves to encoding/json.
var recordFields = [...]string{"kind", "chain_id", "chain_seq", "position", "event_id", "stream_id", "stream_type",
	"stream_version", "event_type", "recorded_at", "data_sha256", "metadata_sha256", "prev_hash", "hash", "data_withheld",
	"data", "metadata", "audit", "signed_at", "key_id", "signature"}

func recordFieldIndex(key []byte) int {
	for i, name := range recordFields {
		if string(key) == name {
			return i
		}
	}
	return -1
}

// foldsToRecordField says whether encoding/json would take key for a field, as it matches names
// without regard to case.
func foldsToRecordField(key []byte) bool {
	for _, name := range recordFields {
		if bytes.EqualFold(key, []byte(name)) {
			return true
		}
	}
	return false
}

// field reads the value of the field name into rec.
func (s *jsonScan) field(name string, rec *fileRecord) bool {
	text := func(into *string) bool {
		t, plain, ok := s.str()
		if ok && plain {
			*into = string(t)
		}
		return ok && plain
	}
	integer := func(into *int64) bool {
		t, isInt, ok := s.number()
		if !ok || !isInt {
			return false
		}
		n, err := strconv.ParseInt(string(t), 10, 64)
		*into = n
		return err == nil
	}
	hash := func(into *Hash) bool {
		t, plain, ok := s.str()
		return ok && plain && into.UnmarshalText(t) == nil
	}
	raw := func(into *[]byte) bool {
		start := s.i
		if !s.value(0) {
			return false
		}
		*into = s.b[start:s.i]
		return true
	}
	switch name {
	case "kind":
		return text(&rec.Kind)
	case "chain_id":
		return text(&rec.ChainID)
	case "chain_seq":
		return integer(&rec.ChainSeq)
	case "position":
		return integer(&rec.Position)
	case "event_id":
		return text(&rec.EventID)
	case "stream_id":
		return text(&rec.StreamID)
	case "stream_type":
		return text(&rec.StreamType)
	case "stream_version":
		return integer(&rec.StreamVersion)
	case "event_type":
		return text(&rec.EventType)
	case "recorded_at":
		return text(&rec.RecordedAt)
	case "data_sha256":
		return hash(&rec.DataSHA256)
	case "metadata_sha256":
		return hash(&rec.MetadataSHA256)
	case "prev_hash":
		return hash(&rec.PrevHash)
	case "hash":
		return hash(&rec.Hash)
	case "data_withheld":
		return text(&rec.DataWithheld)
	case "data":
		return raw((*[]byte)(&rec.Data))
	case "metadata":
		return raw((*[]byte)(&rec.Metadata))
	case "audit":
		return s.audit(rec)
	}
	return false // a signed head's field
}

// audit reads the audit entry of an event record: null, or an object whose "id" is kept.
func (s *jsonScan) audit(rec *fileRecord) bool {
	if s.literal("null") {
		rec.Audit = nil
		return true
	}
	rec.Audit = &struct{ ID string }{}
	idSeen := false
	return s.object(func(key []byte, plain bool) bool {
		switch {
		case !plain:
			return false
		case string(key) == "id":
			t, plain, ok := s.str()
			rec.Audit.ID = string(t)
			ok = ok && plain && !idSeen
			idSeen = true
			return ok
		case bytes.EqualFold(key, []byte("id")):
			return false
		}
		return s.value(0)
	})
}

// jsonScan reads JSON text (RFC 8259, as encoding/json accepts it) from b at i.
type jsonScan struct {
	b []byte
	i int
}

// maxScanDepth bounds the nesting scanRecord follows; deeper values go to encoding/json.
const maxScanDepth = 1000

func (s *jsonScan) at(c byte) bool { return s.i < len(s.b) && s.b[s.i] == c }

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScan) literal(word string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		s.i += len(word)
		return true
	}
	return false
}

// str reads a string: the bytes between its quotes, and whether they are its value as
// encoding/json decodes it (no escape, valid UTF-8).
func (s *jsonScan) str() (text []byte, plain, ok bool) {
	if !s.at('"') {
		return nil, false, false
	}
	start := s.i + 1
	plain = true
	high := false
	for i := start; i < len(s.b); i++ {
		for i < len(s.b) && !strSpecial[s.b[i]] {
			i++
		}
		if i == len(s.b) {
			break
		}
		switch c := s.b[i]; {
		case c == '"':
			s.i = i + 1
			text = s.b[start:i]
			return text, plain && (!high || utf8.Valid(text)), true
		case c == '\\':
			plain = false
			i++
			if i >= len(s.b) {
				return nil, false, false
			}
			switch s.b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s.b) {
					return nil, false, false
				}
				for _, h := range s.b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return nil, false, false
					}
				}
				i += 4
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		case c >= utf8.RuneSelf:
			high = true
		}
	}
	return nil, false, false
}

// strSpecial are the bytes of a string that str looks at: the closing quote, an escape, control
// characters (invalid) and the bytes of multi-byte UTF-8 sequences.
var strSpecial = func() (special [256]bool) {
	for c := range 256 {
		special[c] = c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf
	}
	return special
}()

// number reads a number, and says whether it is an integer (no fraction, no exponent).
func (s *jsonScan) number() (text []byte, integer, ok bool) {
	start := s.i
	digits := func() int {
		n := 0
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.at('-') {
		s.i++
	}
	switch {
	case s.at('0'):
		s.i++
	case digits() == 0:
		return nil, false, false
	}
	integer = true
	if s.at('.') {
		s.i++
		integer = false
		if digits() == 0 {
			return nil, false, false
		}
	}
	if s.at('e') || s.at('E') {
		s.i++
		integer = false
		if s.at('+') || s.at('-') {
			s.i++
		}
		if digits() == 0 {
			return nil, false, false
		}
	}
	return s.b[start:s.i], integer, true
}

// list reads the items of an object or an array, s.i at its opening bracket, up to end; item
// reads one.
func (s *jsonScan) list(end byte, item func() bool) bool {
	s.i++
	s.ws()
	for !s.at(end) {
		if !item() {
			return false
		}
		s.ws()
		if s.at(',') {
			s.i++
			s.ws()
			if s.at(end) {
				return false
			}
		} else if !s.at(end) {
			return false
		}
	}
	s.i++
	return true
}

// object reads an object; member reads the value of each key (plain as str says).
func (s *jsonScan) object(member func(key []byte, plain bool) bool) bool {
	if !s.at('{') {
		return false
	}
	return s.list('}', func() bool {
		key, plain, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if !s.at(':') {
			return false
		}
		s.i++
		s.ws()
		return member(key, plain)
	})
}

// oneValue reports whether s holds one JSON value, spaces around it aside (false also for one
// nested deeper than maxScanDepth).
func (s *jsonScan) oneValue() bool {
	s.ws()
	if !s.value(0) {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

// value reads any value, checking that it is valid JSON.
func (s *jsonScan) value(depth int) bool {
	if s.i >= len(s.b) || depth > maxScanDepth {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '{':
		return s.object(func([]byte, bool) bool { return s.value(depth + 1) })
	case c == '[':
		return s.list(']', func() bool { return s.value(depth + 1) })
	case c == '-' || '0' <= c && c <= '9':
		_, _, ok := s.number()
		return ok
	}
	return s.literal("true") || s.literal("false") || s.literal("null")
}
