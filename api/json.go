package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

const contentTypeJSON = "application/json; charset=utf-8"

// writeJSON writes v as the JSON response with the given status. v is encoded before anything is
// sent, so a value that cannot be encoded becomes a 500 envelope rather than half a body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(errorEnvelope{Error: errorBody{
			Code:      errInternal.Code,
			Message:   errInternal.Message,
			Details:   map[string]any{},
			RequestID: w.Header().Get(requestIDHeader),
		}})
	}
	h := w.Header()
	h.Set("Content-Type", contentTypeJSON)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// decodeJSON reads the request body, one JSON object, into dst (a pointer). The error it returns
// is an *Error ready for writeError: 415 unsupported_media_type unless Content-Type is
// application/json, 413 payload_too_large over the body limit, and 400 invalid_request for an
// empty body, malformed JSON (with the byte offset), an unknown field or a value of the wrong
// type (naming the field), or data after the object. A dst that cannot be decoded into is a
// programming error, returned as is (→ 500).
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); !isJSONContentType(ct) {
		return &Error{
			Status:  http.StatusUnsupportedMediaType,
			Code:    "unsupported_media_type",
			Message: "The request body must be JSON, sent with Content-Type: application/json.",
			Details: map[string]any{"content_type": ct},
		}
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return invalidRequest(nil, "The request body is empty; a JSON object was expected.")
	case string(trimmed) == "null":
		return invalidRequest(nil, "The request body must be a JSON object, not null.")
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, len(body))
	}
	end := dec.InputOffset()
	if rest := body[end:]; len(bytes.TrimSpace(rest)) > 0 {
		offset := end + int64(len(rest)-len(bytes.TrimLeft(rest, " \t\r\n")))
		return invalidRequest(map[string]any{"offset": offset},
			"Unexpected data after the JSON object at byte offset %d.", offset)
	}
	return nil
}

// readBody reads the whole request body within the body limit: an *http.MaxBytesError over it
// (→ 413), 400 invalid_request when the body cannot be read.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, bodyLimit(r.Context())))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, tooLarge
		}
		return nil, invalidRequest(nil, "The request body could not be read.")
	}
	return body, nil
}

// isJSONContentType accepts application/json, with no charset or charset utf-8.
func isJSONContentType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// decodeError explains an error of json.Decoder.Decode to the client.
func decodeError(err error, size int) error {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		invalid   *json.InvalidUnmarshalError
		unknownFd = "json: unknown field "
	)
	switch {
	case errors.As(err, &invalid):
		return fmt.Errorf("api: decode request body: %w", err)
	case errors.As(err, &syntax):
		return invalidRequest(map[string]any{"offset": syntax.Offset},
			"Malformed JSON at byte offset %d: %s.", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidRequest(map[string]any{"offset": size},
			"Malformed JSON at byte offset %d: the body ends in the middle of a value.", size)
	case errors.As(err, &typeErr):
		want := jsonKind(typeErr.Type)
		if typeErr.Field == "" {
			return invalidRequest(map[string]any{"expected": want},
				"The request body must be a JSON %s, not %s.", want, typeErr.Value)
		}
		return invalidRequest(map[string]any{"field": typeErr.Field, "expected": want},
			"Field %q must be %s %s, not %s.", typeErr.Field, article(want), want, typeErr.Value)
	case strings.HasPrefix(err.Error(), unknownFd): // encoding/json has no type for it
		field := strings.Trim(strings.TrimPrefix(err.Error(), unknownFd), `"`)
		return invalidRequest(map[string]any{"field": field}, "Unknown field %q.", field)
	default: // an UnmarshalJSON method refused the value
		return invalidRequest(nil, "The request body could not be decoded: %s.", strings.TrimPrefix(err.Error(), "json: "))
	}
}

func invalidRequest(details map[string]any, format string, args ...any) *Error {
	return &Error{
		Status:  http.StatusBadRequest,
		Code:    "invalid_request",
		Message: fmt.Sprintf(format, args...),
		Details: details,
	}
}

// jsonKind names the JSON type a Go type is decoded from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string" // []byte is base64 text
		}
		return "array"
	case reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return "value of another type"
}

func article(kind string) string {
	switch kind[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an"
	}
	return "a"
}
