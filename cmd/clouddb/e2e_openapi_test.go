package main

// Every response an end-to-end test gets through e2eClient.do is checked against the OpenAPI
// document (api/openapi.json, the one copy, also served at GET /api/v1/openapi.json): its status
// must be documented for the route, its headers and JSON body must match the schema. So the
// document cannot drift from what the handlers answer without a test failing.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// openAPIRouter finds the operation of a request in the document, loaded once per test binary.
var openAPIRouter = sync.OnceValues(func() (routers.Router, error) {
	data, err := os.ReadFile("../../api/openapi.json")
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil { // its examples too
		return nil, err
	}
	return gorillamux.NewRouter(doc)
})

// checkOpenAPI fails the test unless the response to req (status, headers, body) is one the
// document describes for req's operation. A request to a path the document does not have must
// be answered 404 or 405.
func checkOpenAPI(t *testing.T, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	router, err := openAPIRouter()
	if err != nil {
		t.Fatalf("api/openapi.json: %v", err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s = %d, but api/openapi.json has no such operation: %v", req.Method, req.URL.Path, resp.StatusCode, err)
		}
		return
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		input.Options.ExcludeResponseBody = true // exports (CSV, SQL, NDJSON): their headers and status still count
	}
	if err := openapi3filter.ValidateResponse(req.Context(), input); err != nil {
		t.Errorf("%s %s = %d does not match api/openapi.json (%s): %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode,
			route.Operation.OperationID, err, truncateForLog(body))
	}
}
