package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
)

// documentedQuery maps each operation of the OpenAPI document ("GET /databases/{id}") to the query
// parameters it lists: the one statement of what a route reads from its query string, which
// knownQuery enforces and the end-to-end tests check the document against.
var documentedQuery = sync.OnceValue(func() map[string][]string {
	var doc struct {
		Paths      map[string]map[string]json.RawMessage
		Components struct {
			Parameters map[string]queryParameter
		}
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		panic("api: openapi.json: " + err.Error()) // embedded and tested: cannot happen in a build
	}
	ops := map[string][]string{}
	for path, methods := range doc.Paths {
		for method, raw := range methods {
			var op struct{ Parameters []queryParameter }
			if json.Unmarshal(raw, &op) != nil {
				continue // "parameters" shared by a path, or another member that is no operation
			}
			names := []string{}
			for _, p := range op.Parameters {
				if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
					p = doc.Components.Parameters[name]
				}
				if p.In == "query" {
					names = append(names, p.Name)
				}
			}
			slices.Sort(names)
			ops[strings.ToUpper(method)+" "+path] = names
		}
	}
	return ops
})

type queryParameter struct {
	Ref      string `json:"$ref"`
	Name, In string
}

// muxVariable is a path variable with its pattern, {id:[0-9a-f-]+}, as the document writes {id}.
var muxVariable = regexp.MustCompile(`\{(\w+):[^}]*\}`)

// knownQuery refuses, with 400 invalid_request, a request whose query string holds a parameter
// that its route does not document, as unknown fields of a JSON body are refused: a misspelt
// ?limt=10, or a ?page=2 that this API does not have, would otherwise be ignored without a word.
// A route the document lacks is not checked (TestOpenAPIDocumentsEveryRoute fails for it).
func (s *Server) knownQuery(method, path string, next http.HandlerFunc) http.HandlerFunc {
	allowed, documented := documentedQuery()[method+" "+muxVariable.ReplaceAllString(path, "{$1}")]
	if !documented {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		query := r.URL.Query()
		names := make([]string, 0, len(query))
		for name := range query {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if !slices.Contains(allowed, name) {
				s.respond(w, r, &Error{Status: http.StatusBadRequest, Code: "invalid_request",
					Message: fmt.Sprintf("Unknown query parameter %q: %s.", name, takes(allowed)),
					Details: map[string]any{"parameter": name, "allowed": allowed}})
				return
			}
		}
		next(w, r)
	}
}

// takes says which query parameters a route takes.
func takes(allowed []string) string {
	if len(allowed) == 0 {
		return "this route takes none"
	}
	return "this route takes " + strings.Join(allowed, ", ")
}

// timeParams reads the named query parameters as RFC 3339 times, nil for those not given; a value
// that is not one is a *domain.ValidationError naming every such parameter.
func timeParams(r *http.Request, names ...string) ([]*time.Time, error) {
	out := make([]*time.Time, len(names))
	fields := map[string]string{}
	for i, name := range names {
		if raw := r.URL.Query().Get(name); raw != "" {
			t, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil {
				fields[name] = "must be a time in RFC 3339 (2026-12-07T10:00:00Z)"
				continue
			}
			out[i] = &t
		}
	}
	if len(fields) > 0 {
		return nil, &domain.ValidationError{Fields: fields}
	}
	return out, nil
}
