package api

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/gorilla/mux"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

// openAPIDoc is the part of the OpenAPI document the tests read.
type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Info    struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	} `json:"info"`
	Servers    []struct{ URL string } `json:"servers"`
	Paths      map[string]map[string]json.RawMessage
	Components struct {
		Schemas         map[string]json.RawMessage `json:"schemas"`
		Responses       map[string]json.RawMessage `json:"responses"`
		SecuritySchemes map[string]struct {
			Type, Scheme, BearerFormat string
		} `json:"securitySchemes"`
	} `json:"components"`
}

func parseOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("api/openapi.json is not valid JSON: %v", err)
	}
	return doc
}

// documentedOperations lists the operations of doc as "METHOD /full/path", the path prefixed by
// the server that applies to it (the path's own, else the document's).
func documentedOperations(t *testing.T, doc openAPIDoc) map[string]bool {
	t.Helper()
	ops := map[string]bool{}
	for path, item := range doc.Paths {
		base := doc.Servers[0].URL
		if raw, ok := item["servers"]; ok {
			var servers []struct{ URL string }
			if err := json.Unmarshal(raw, &servers); err != nil || len(servers) == 0 {
				t.Fatalf("paths[%s].servers: %v", path, err)
			}
			base = servers[0].URL
		}
		full := strings.TrimSuffix(base, "/") + path
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				ops[strings.ToUpper(method)+" "+full] = true
			}
		}
	}
	return ops
}

var (
	muxVarPattern  = regexp.MustCompile(`\{([^}:]+):[^}]*\}`)
	pathVarPattern = regexp.MustCompile(`\{[^}]+\}`)
)

// undocumentedRoutes lists the routes of router (as "METHOD /template") that doc lacks.
func undocumentedRoutes(t *testing.T, router *mux.Router, doc openAPIDoc) []string {
	t.Helper()
	ops := documentedOperations(t, doc)
	var missing []string
	err := router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if route.GetHandler() == nil {
			return nil // a subrouter's prefix, not an endpoint
		}
		tmpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		tmpl = muxVarPattern.ReplaceAllString(tmpl, "{$1}") // {id:[0-9]+} is {id} in OpenAPI
		methods, err := route.GetMethods()
		if err != nil {
			missing = append(missing, "(any method) "+tmpl+": routes must name their methods")
			return nil
		}
		for _, m := range methods {
			if !ops[m+" "+tmpl] {
				missing = append(missing, m+" "+tmpl)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return missing
}

// newDocumentedServer is a Server with every route that production mounts: the operational ones
// and those of MountIdentity, MountDatabases, MountQueries and MountAudit. A zero IdentityRoutes, DatabaseRoutes
// and QueryRoutes are enough to register (and walk) routes, since no handler runs; Limits and Now let the
// public handlers answer without dependencies, and QueryRoutes needs a positive rate for its limiters.
func newDocumentedServer() *Server {
	s := New(Config{})
	s.MountIdentity(IdentityRoutes{Limits: NewLimits(), Now: time.Now})
	s.MountDatabases(DatabaseRoutes{})
	s.MountQueries(QueryRoutes{PerSecond: 1})
	s.MountAudit(AuditRoutes{})
	s.MountAccessReport(AccessReportRoutes{})
	s.MountMetrics(MetricsRoutes{})
	s.MountAlerts(AlertRoutes{})
	return s
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := parseOpenAPI(t)
	s := newDocumentedServer()
	if missing := undocumentedRoutes(t, s.Router(), doc); len(missing) > 0 {
		t.Errorf("routes missing from api/openapi.json: %v", missing)
	}
	// The routes of MountIdentity are walked too: one left out of the document is reported.
	withoutLogin := doc
	withoutLogin.Paths = maps.Clone(doc.Paths)
	delete(withoutLogin.Paths, "/auth/login")
	if missing := undocumentedRoutes(t, s.Router(), withoutLogin); !slices.Equal(missing, []string{"POST /api/v1/auth/login"}) {
		t.Errorf("undocumentedRoutes without /auth/login = %v, want POST /api/v1/auth/login", missing)
	}
	// So are those of MountDatabases.
	withoutDatabases := doc
	withoutDatabases.Paths = maps.Clone(doc.Paths)
	delete(withoutDatabases.Paths, "/databases")
	delete(withoutDatabases.Paths, "/databases/{id}")
	missing := undocumentedRoutes(t, s.Router(), withoutDatabases)
	slices.Sort(missing)
	if want := []string{"DELETE /api/v1/databases/{id}", "GET /api/v1/databases", "GET /api/v1/databases/{id}", "POST /api/v1/databases"}; !slices.Equal(missing, want) {
		t.Errorf("undocumentedRoutes without /databases and /databases/{id} = %v, want %v", missing, want)
	}
	// And those of MountQueries.
	withoutQueries := doc
	withoutQueries.Paths = maps.Clone(doc.Paths)
	for _, p := range []string{"/databases/{id}/query", "/databases/{id}/validate", "/queries/history", "/queries/archive",
		"/queries/{id}/results", "/queries/{id}/export", "/queries/{id}/archive"} {
		delete(withoutQueries.Paths, p)
	}
	missing = undocumentedRoutes(t, s.Router(), withoutQueries)
	slices.Sort(missing)
	if want := []string{"DELETE /api/v1/queries/{id}/archive", "GET /api/v1/queries/archive", "GET /api/v1/queries/history",
		"GET /api/v1/queries/{id}/export", "GET /api/v1/queries/{id}/results",
		"POST /api/v1/databases/{id}/query", "POST /api/v1/databases/{id}/validate", "POST /api/v1/queries/{id}/archive"}; !slices.Equal(missing, want) {
		t.Errorf("undocumentedRoutes without the query paths = %v, want %v", missing, want)
	}
	// The check itself catches a forgotten route.
	s.API().HandleFunc("/databases/{id:[0-9a-f-]+}/clone", func(http.ResponseWriter, *http.Request) {}).Methods(http.MethodPost)
	if missing := undocumentedRoutes(t, s.Router(), doc); !slices.Equal(missing, []string{"POST /api/v1/databases/{id}/clone"}) {
		t.Errorf("undocumentedRoutes = %v, want the new route", missing)
	}
}

// TestOpenAPIDatabases: the database routes document what their handlers do — the statuses of
// POST /databases (200 dry run, 201 running or failed, 202 still provisioning, the errors), the
// query parameters, the states GET /databases accepts, and a Database schema whose fields are
// exactly those databaseDocument writes.
func TestOpenAPIDatabases(t *testing.T) {
	doc := parseOpenAPI(t)
	type parameter struct {
		Name, In string
		Ref      string `json:"$ref"`
		Schema   struct {
			Ref  string   `json:"$ref"`
			Enum []string `json:"enum"`
		}
	}
	type op struct {
		Access     string `json:"x-access"`
		Parameters []parameter
		Responses  map[string]json.RawMessage
	}
	get := func(path, method string) op {
		t.Helper()
		var o op
		raw := doc.Paths[path][method]
		if raw == nil {
			t.Fatalf("%s %s is not documented", method, path)
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return o
	}
	params := func(o op) map[string]parameter {
		m := map[string]parameter{}
		for _, p := range o.Parameters {
			m[p.Name] = p
		}
		return m
	}
	statuses := func(o op) []string {
		return slices.Sorted(maps.Keys(o.Responses))
	}

	create := get("/databases", "post")
	if create.Access != "developer" {
		t.Errorf("POST /databases x-access = %q, want developer", create.Access)
	}
	if want := []string{"200", "201", "202", "400", "401", "403", "405", "409", "413", "415", "500", "503"}; !slices.Equal(statuses(create), want) {
		t.Errorf("POST /databases documents %v, want %v", statuses(create), want)
	}
	if p, ok := params(create)["dry_run"]; !ok || p.In != "query" {
		t.Errorf("POST /databases does not document ?dry_run")
	}
	for status, want := range map[string][]string{
		"201": {"DatabaseCreated", "failure_reason", "connection", "Location"},
		"202": {"Database", "provisioning"},
		"403": {"quota_exceeded", "resource", "used", "limit"},
		"400": {"invalid_name", "validation_failed", "charset", "collation"},
		"409": {"name_taken"},
	} {
		for _, w := range want {
			if !strings.Contains(string(create.Responses[status]), w) {
				t.Errorf("POST /databases %s does not mention %q", status, w)
			}
		}
	}

	list := get("/databases", "get")
	ps := params(list)
	if ps["include_deleted"].In != "query" || ps["state"].Schema.Ref != "#/components/schemas/DatabaseState" {
		t.Errorf("GET /databases parameters = %+v, want state (DatabaseState) and include_deleted", list.Parameters)
	}
	var state struct{ Enum []string }
	if err := json.Unmarshal(doc.Components.Schemas["DatabaseState"], &state); err != nil {
		t.Fatal(err)
	}
	if want := []string{string(domain.StateProvisioning), string(domain.StateRunning), string(domain.StateStopped),
		string(domain.StateDeleted), string(domain.StateFailed)}; !slices.Equal(state.Enum, want) {
		t.Errorf("DatabaseState enum = %v, want %v", state.Enum, want)
	}
	// The handler accepts exactly these states and refuses others with 400.
	for _, v := range state.Enum {
		if status := listDatabasesStatus(t, v); status == http.StatusBadRequest {
			t.Errorf("state %q is documented but GET /databases refuses it", v)
		}
	}
	for _, v := range []string{"purged", "RUNNING", "bogus"} {
		if status := listDatabasesStatus(t, v); status != http.StatusBadRequest {
			t.Errorf("GET /databases?state=%s = %d, want 400: the state is not documented", v, status)
		}
	}
	if want := []string{"200", "400", "401", "403", "405", "413", "500", "503"}; !slices.Equal(statuses(list), want) {
		t.Errorf("GET /databases documents %v, want %v", statuses(list), want)
	}
	if one := get("/databases/{id}", "get"); one.Access != "member" || one.Responses["404"] == nil || one.Responses["200"] == nil {
		t.Errorf("GET /databases/{id}: access %q, responses %v", one.Access, statuses(one))
	}

	// The Database schema has exactly the fields databaseDocument writes; optional ones only in
	// their state.
	var schema struct {
		Required   []string
		Properties map[string]json.RawMessage
	}
	if err := json.Unmarshal(doc.Components.Schemas["Database"], &schema); err != nil {
		t.Fatal(err)
	}
	until := time.Now()
	full := databaseDocument(projections.DatabaseView{RecoverableUntil: &until, FailureReason: "x"})
	if got, want := slices.Sorted(maps.Keys(full)), slices.Sorted(maps.Keys(schema.Properties)); !slices.Equal(got, want) {
		t.Errorf("databaseDocument writes %v, the Database schema has %v", got, want)
	}
	if got, want := slices.Sorted(maps.Keys(databaseDocument(projections.DatabaseView{}))), slices.Sorted(slices.Values(schema.Required)); !slices.Equal(got, want) {
		t.Errorf("databaseDocument always writes %v, the Database schema requires %v", got, want)
	}
}

// listDatabasesStatus is the status GET /databases?state=state answers, past authentication: 400
// when the handler refuses the state, otherwise whatever the read model query gives (a read model
// that does not answer: 500).
func listDatabasesStatus(t *testing.T, state string) int {
	t.Helper()
	db, err := sql.Open("mysql", "nobody@tcp(127.0.0.1:1)/none?timeout=200ms")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(Config{Logger: slog.New(slog.DiscardHandler)})
	s.MountIdentity(IdentityRoutes{Views: projections.NewViews(db), Limits: NewLimits(), Now: time.Now})
	rec := httptest.NewRecorder()
	s.handleListDatabases(rec, httptest.NewRequest(http.MethodGet, "/api/v1/databases?state="+url.QueryEscape(state), nil))
	return rec.Code
}

// routeOperations lists the routes of router under /api/v1 as "METHOD /template" with an example
// path (variables replaced by a well-formed value), skipping the document itself.
func routeOperations(t *testing.T, router *mux.Router) map[string]string {
	t.Helper()
	routes := map[string]string{}
	err := router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if route.GetHandler() == nil {
			return nil
		}
		tmpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		tmpl = muxVarPattern.ReplaceAllString(tmpl, "{$1}")
		if !strings.HasPrefix(tmpl, "/api/v1/") || tmpl == "/api/v1/openapi.json" {
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil {
			return err
		}
		example := pathVarPattern.ReplaceAllString(tmpl, "0b6f4c1e-6a57-4c3e-9a53-2f1f8f0e2d11")
		for _, m := range methods {
			routes[m+" "+tmpl] = example
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return routes
}

// operation is the part of an operation object the access checks read.
type operation struct {
	Security    *[]map[string][]string `json:"security"`
	Access      string                 `json:"x-access"`
	Description string                 `json:"description"`
	Responses   map[string]json.RawMessage
}

// TestOpenAPIAccessLevels: every /api/v1 route documents its access level (x-access, also in the
// description) and security that match what the route does: a public route (security: [])
// serves an anonymous request, every other one answers it 401 and documents 401 (and 403 where
// a role or the CSRF check can refuse it).
func TestOpenAPIAccessLevels(t *testing.T) {
	doc := parseOpenAPI(t)
	s := newDocumentedServer()
	levels := []string{"public", "authenticated", "member", "developer", "tenant_admin", "super_admin"}
	routes := routeOperations(t, s.Router())
	if len(routes) < 20 {
		t.Fatalf("only %d routes under /api/v1: MountIdentity's routes are not walked", len(routes))
	}
	for key, example := range routes {
		method, tmpl, _ := strings.Cut(key, " ")
		raw := doc.Paths[strings.TrimPrefix(tmpl, "/api/v1")][strings.ToLower(method)]
		if raw == nil {
			continue // TestOpenAPIDocumentsEveryRoute reports it
		}
		var op operation
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if !slices.Contains(levels, op.Access) {
			t.Errorf("%s: x-access = %q, want one of %v", key, op.Access, levels)
			continue
		}
		if !strings.Contains(op.Description, "**Access: "+op.Access+"**") {
			t.Errorf("%s: the description does not state the access level (**Access: %s**)", key, op.Access)
		}
		if op.Security == nil {
			t.Errorf("%s: no security of its own", key)
			continue
		}
		public := op.Access == "public"
		if public != (len(*op.Security) == 0) {
			t.Errorf("%s: x-access %s but security %v", key, op.Access, *op.Security)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(method, example, nil))
		if got := rec.Code == http.StatusUnauthorized; got == public {
			t.Errorf("%s without credentials = %d: documented as %s", key, rec.Code, op.Access)
		}
		for _, status := range []string{"405", "500"} {
			if op.Responses[status] == nil {
				t.Errorf("%s does not document %s", key, status)
			}
		}
		if !public && op.Responses["401"] == nil {
			t.Errorf("%s does not document 401", key)
		}
		// 403: a role too low, or a cookie-authenticated mutating request without its CSRF token.
		mutating := method != http.MethodGet && method != http.MethodHead
		if !public && (op.Access != "authenticated" || mutating) && op.Responses["403"] == nil {
			t.Errorf("%s does not document 403", key)
		}
	}
}

func TestOpenAPIDocument(t *testing.T) {
	doc := parseOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	if doc.Info.Title != "CloudDB Manager API" || doc.Info.Version != "1" {
		t.Errorf("info = %q %q", doc.Info.Title, doc.Info.Version)
	}
	if len(doc.Servers) == 0 || doc.Servers[0].URL != "/api/v1" {
		t.Errorf("servers = %v, want /api/v1", doc.Servers)
	}
	if doc.Components.Schemas["Error"] == nil {
		t.Error("components.schemas.Error is missing")
	}
	for name, format := range map[string]string{"bearerAuth": "JWT", "apiKey": "cdb_<api_key>"} {
		sch := doc.Components.SecuritySchemes[name]
		if sch.Type != "http" || sch.Scheme != "bearer" || sch.BearerFormat != format {
			t.Errorf("securitySchemes.%s = %+v", name, sch)
		}
	}
	for _, resp := range []string{"InvalidRequest", "NotFound", "MethodNotAllowed", "PayloadTooLarge", "UnsupportedMediaType", "Internal"} {
		if doc.Components.Responses[resp] == nil {
			t.Errorf("components.responses.%s is missing", resp)
		}
	}
	for _, want := range []string{"X-Request-Id", "1 MiB", "Unknown fields", "limit", "cursor"} {
		if !strings.Contains(doc.Info.Description, want) {
			t.Errorf("info.description does not mention %q", want)
		}
	}
}

// TestOpenAPIErrorCodes: every code this package can send is in the ErrorCode enum and the
// description's table.
func TestOpenAPIErrorCodes(t *testing.T) {
	doc := parseOpenAPI(t)
	var codeSchema struct{ Enum []string }
	if err := json.Unmarshal(doc.Components.Schemas["ErrorCode"], &codeSchema); err != nil {
		t.Fatal(err)
	}
	codes := append(sentCodes(t), errInternal.Code)
	for _, k := range errorKinds {
		codes = append(codes, k.code)
	}
	for _, c := range []string{"invalid_request", "validation_failed", "payload_too_large", "unsupported_media_type",
		"method_not_allowed", "forbidden", "weak_password", "account_locked", "quota_exceeded", "rate_limited"} {
		if !slices.Contains(codes, c) {
			t.Errorf("sentCodes misses %q: the scan of the package's sources is broken", c)
		}
	}
	for _, c := range codes {
		if !slices.Contains(codeSchema.Enum, c) {
			t.Errorf("ErrorCode enum lacks %q", c)
		}
		if !strings.Contains(doc.Info.Description, "`"+c+"`") {
			t.Errorf("info.description lacks %q", c)
		}
	}
}

// sentCodes are the codes this package's sources give an *Error (Code: "..." in a composite
// literal), so a code added in a handler cannot be forgotten in the document.
func sentCodes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			kv, ok := n.(*ast.KeyValueExpr)
			if !ok {
				return true
			}
			key, ok := kv.Key.(*ast.Ident)
			lit, isLit := kv.Value.(*ast.BasicLit)
			if ok && key.Name == "Code" && isLit && lit.Kind == token.STRING {
				code, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatalf("%s: %v", fset.Position(lit.Pos()), err)
				}
				if !slices.Contains(codes, code) {
					codes = append(codes, code)
				}
			}
			return true
		})
	}
	return codes
}

// TestOpenAPIRefsResolve: every "$ref" points at something in the document.
func TestOpenAPIRefsResolve(t *testing.T) {
	var root any
	if err := json.Unmarshal(openAPIDocument, &root); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if !resolves(root, ref) {
					t.Errorf("$ref %q does not resolve", ref)
				}
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(root)
}

func resolves(root any, ref string) bool {
	if !strings.HasPrefix(ref, "#/") {
		return false
	}
	cur := root
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[strings.NewReplacer("~1", "/", "~0", "~").Replace(part)]; !ok {
			return false
		}
	}
	return true
}

func TestOpenAPIServed(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	rec := do(t, s, http.MethodGet, "/api/v1/openapi.json", nil, nil)
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), openAPIDocument) {
		t.Fatalf("GET /api/v1/openapi.json = %d, want 200 and the embedded document", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
}

// TestOpenAPIIdempotencyKey: every POST route that needs credentials (mount gives each one
// Idempotency-Key support) lists the IdempotencyKey parameter, its 409 and the Idempotent-Replayed
// header of its successes; public POSTs, which ignore the header, do not list it.
func TestOpenAPIIdempotencyKey(t *testing.T) {
	doc := parseOpenAPI(t)
	type ref struct {
		Ref string `json:"$ref"`
	}
	var posts int
	for key := range routeOperations(t, newDocumentedServer().Router()) {
		method, tmpl, _ := strings.Cut(key, " ")
		if method != http.MethodPost {
			continue
		}
		raw := doc.Paths[strings.TrimPrefix(tmpl, "/api/v1")]["post"]
		if raw == nil {
			continue // TestOpenAPIDocumentsEveryRoute reports it
		}
		posts++
		var op struct {
			Access     string `json:"x-access"`
			Parameters []ref
			Responses  map[string]struct {
				Headers map[string]json.RawMessage
			}
		}
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		listed := slices.Contains(op.Parameters, ref{"#/components/parameters/IdempotencyKey"})
		if listed != (op.Access != "public") {
			t.Errorf("%s (x-access %s): IdempotencyKey listed %v", key, op.Access, listed)
		}
		if !listed {
			continue
		}
		for _, status := range []string{"400", "409"} {
			if _, ok := op.Responses[status]; !ok {
				t.Errorf("%s takes Idempotency-Key but does not document %s", key, status)
			}
		}
		for status, resp := range op.Responses {
			if strings.HasPrefix(status, "2") && resp.Headers["Idempotent-Replayed"] == nil {
				t.Errorf("%s %s does not document the Idempotent-Replayed header", key, status)
			}
		}
	}
	if posts < 20 {
		t.Errorf("only %d POST routes checked", posts)
	}
	for _, want := range []string{"Idempotency-Key", "Idempotent-Replayed: true", "24 hours"} {
		if !strings.Contains(doc.Info.Description, want) {
			t.Errorf("info.description does not mention %q", want)
		}
	}
	if strings.Contains(doc.Info.Description, "do not implement it") {
		t.Error("info.description still says the routes do not implement Idempotency-Key")
	}
}
