package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// A query parameter that the route does not document is refused, as an unknown body field is,
// before authentication; documented ones pass on to the route.
func TestUnknownQueryParametersAreRefused(t *testing.T) {
	s := newDocumentedServer()
	for _, tc := range []struct {
		target, parameter string
		allowed           []string
	}{
		{"/api/v1/databases?page=2", "page", []string{"include_deleted", "state"}},
		{"/api/v1/databases/0b6f4c1e-6a57-4c3e-9a53-2f1f8f0e2d11?verbose=1", "verbose", []string{}},
		{"/api/v1/queries/history?limt=10", "limt", documentedQuery()["GET /queries/history"]},
	} {
		rec := do(t, s, http.MethodGet, tc.target, nil, nil)
		e := envelope(t, rec)
		if rec.Code != http.StatusBadRequest || e.Code != "invalid_request" || e.Details["parameter"] != tc.parameter ||
			!strings.Contains(e.Message, `"`+tc.parameter+`"`) {
			t.Errorf("GET %s = %d %+v, want 400 invalid_request naming %s", tc.target, rec.Code, e, tc.parameter)
		}
		var allowed []string
		for _, a := range e.Details["allowed"].([]any) {
			allowed = append(allowed, a.(string))
		}
		if !slices.Equal(allowed, tc.allowed) && !(len(allowed) == 0 && len(tc.allowed) == 0) {
			t.Errorf("GET %s: details.allowed = %v, want %v", tc.target, allowed, tc.allowed)
		}
	}
	// Documented parameters reach the route: here its authentication.
	if rec := do(t, s, http.MethodGet, "/api/v1/databases?state=running&include_deleted=true", nil, nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("GET /databases with its documented parameters = %d, want 401 (past the check)", rec.Code)
	}
	if got := documentedQuery()["GET /databases"]; !reflect.DeepEqual(got, []string{"include_deleted", "state"}) {
		t.Errorf("documented query parameters of GET /databases = %v", got)
	}
}

// Every route checks its query parameters, so every one documents a 400.
func TestOpenAPIDocumentsTheUnknownParameterAnswer(t *testing.T) {
	doc := parseOpenAPI(t)
	for key := range routeOperations(t, newDocumentedServer().Router()) {
		method, tmpl, _ := strings.Cut(key, " ")
		raw := doc.Paths[strings.TrimPrefix(tmpl, "/api/v1")][strings.ToLower(method)]
		var op struct{ Responses map[string]any }
		if raw != nil && (json.Unmarshal(raw, &op) != nil || op.Responses["400"] == nil) {
			t.Errorf("%s documents no 400 (an unknown query parameter is refused with invalid_request)", key)
		}
	}
}
