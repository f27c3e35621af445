package api

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/time/rate"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/internal/ratelimit"
	"github.com/clouddbmanager/clouddb/projections"
	"github.com/clouddbmanager/clouddb/queryexec"
	"github.com/clouddbmanager/clouddb/queryexec/results"
)

// historyLength is how many of a user's queries GET /queries/history keeps.
const historyLength = 100

// QueryRoutes is what the HTTP handlers of queries need.
type QueryRoutes struct {
	Commands *commands.QueryRunner
	History  func(ctx context.Context, tenant domain.TenantID, user domain.UserID, limit int) ([]projections.QueryHistoryItem, error)
	// Store and Projections let the history wait for the caller's last queries (Server.caughtUp).
	Store       *eventstore.Store
	Projections *projections.Runtime
	// PerSecond is how many queries (and, separately, validations) a second each user may send on
	// average, with bursts of twice as many, in the whole deployment: each of the Processes (nil:
	// one) grants its share (ratelimit.WithShare).
	PerSecond float64
	Processes func() int
	// Exports bound the downloads of results.
	Exports ExportLimits
}

type queryLimits struct {
	run, validate *ratelimit.Limiter
	exports       *exportGate
}

// MountQueries adds the query routes.
func (s *Server) MountQueries(q QueryRoutes) {
	s.queries = q
	burst := max(1, int(2*q.PerSecond))
	processes := q.Processes
	if processes == nil {
		processes = func() int { return 1 }
	}
	s.queryLimits = queryLimits{
		run:      ratelimit.New(rate.Limit(q.PerSecond), burst, 10*time.Minute, ratelimit.WithShare(processes)),
		validate: ratelimit.New(rate.Limit(q.PerSecond), burst, 10*time.Minute, ratelimit.WithShare(processes)),
		exports:  newExportGate(q.Exports),
	}
	s.mount([]route{
		{"POST", "/databases/{id}/query", member, s.handleRunQuery},
		{"POST", "/databases/{id}/validate", member, s.handleValidateQuery},
		{"GET", "/queries/history", member, s.handleQueryHistory},
		{"GET", "/queries/archive", member, s.handleQueryArchive},
		{"GET", "/queries/{id}/results", member, s.handleQueryResults},
		{"GET", "/queries/{id}/export", member, s.handleQueryExport},
		{"POST", "/queries/{id}/archive", member, s.handleArchiveQuery},
		{"DELETE", "/queries/{id}/archive", member, s.handleDeleteArchivedQuery},
	})
}

// queryRequest is the body of POST /databases/{id}/query and /validate.
type queryRequest struct {
	SQL      string  `json:"sql"`
	TimeoutS float64 `json:"timeout_s"`
	RowLimit int64   `json:"row_limit"`
	PageSize int64   `json:"page_size"`
	Confirm  bool    `json:"confirm"`
	Multi    bool    `json:"multi"`
}

// readQuery decodes a query request for the database in the path, within the caller's rate.
func (s *Server) readQuery(w http.ResponseWriter, r *http.Request, limiter *ratelimit.Limiter) (commands.RunQuery, error) {
	p := principalFrom(r.Context())
	if ok, retry := limiter.Allow(string(p.UserID), s.identity.Now()); !ok {
		return commands.RunQuery{}, rateLimited(retry)
	}
	id, err := pathID(r, domain.ParseDatabaseID)
	if err != nil {
		return commands.RunQuery{}, err
	}
	var req queryRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return commands.RunQuery{}, err
	}
	return commands.RunQuery{Tenant: p.TenantID, User: p.UserID, Role: p.Role, SuperAdmin: p.SuperAdmin, Database: id, SQL: req.SQL,
		TimeoutS: req.TimeoutS, RowLimit: req.RowLimit, PageSize: req.PageSize, Confirm: req.Confirm, Multi: req.Multi,
		RetryOfOrphan: retryOfOrphan(r), Meta: metadata(r.Context(), r)}, nil
}

func (s *Server) handleRunQuery(w http.ResponseWriter, r *http.Request) {
	cmd, err := s.readQuery(w, r, s.queryLimits.run)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	results, err := s.queries.Commands.Run(r.Context(), cmd)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if onlyReads(results) {
		dontKeepAnswer(r) // a retry may as well read again; a kept page of rows is dead weight
	}
	if cmd.Multi {
		writeJSON(w, http.StatusOK, map[string]any{"results": results})
		return
	}
	writeJSON(w, http.StatusOK, results[0])
}

func (s *Server) handleValidateQuery(w http.ResponseWriter, r *http.Request) {
	cmd, err := s.readQuery(w, r, s.queryLimits.validate)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.queries.Commands.Validate(r.Context(), cmd)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	dontKeepAnswer(r) // validating changes nothing
	writeJSON(w, http.StatusOK, v)
}

// onlyReads reports whether every statement of a query request was a read ("read" is the
// statement_type of the API): such a request changed nothing a retry could repeat.
func onlyReads(results []queryexec.Result) bool {
	for _, res := range results {
		if string(res.StatementType) != "read" {
			return false
		}
	}
	return true
}

func (s *Server) handleQueryHistory(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", historyLength, 1, historyLength)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := principalFrom(r.Context())
	s.caughtUp(r.Context(), s.queries.Store, s.queries.Projections, "query_history")
	items, err := s.queries.History(r.Context(), p.TenantID, p.UserID, int(limit))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if items == nil {
		items = []projections.QueryHistoryItem{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nil})
}

func (s *Server) handleQueryResults(w http.ResponseWriter, r *http.Request) {
	offset, err := intParam(r, "offset", 0, 0, 1<<62)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := intParam(r, "limit", queryexec.DefaultPageSize, 1, queryexec.MaxPageSize)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := mux.Vars(r)["id"]
	p := principalFrom(r.Context())
	page, err := s.queries.Commands.Page(r.Context(), p.TenantID, p.UserID, id, offset, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"query_id": id, "columns": page.Columns, "rows": page.Rows,
		"truncated": page.Truncated, "page": queryexec.PageInfo{Offset: page.Offset, Limit: int64(len(page.Rows)), Total: page.Total}})
}

var exportTable = regexp.MustCompile(`^[A-Za-z0-9_$]{1,64}$`)

func (s *Server) handleQueryExport(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = results.ExportCSV
	}
	contentType, ext, ok := results.ExportContentType(format)
	if !ok {
		s.writeError(w, r, domain.NewValidationError("format", "must be csv, json or sql"))
		return
	}
	rawFormulas, err := csvFormulas(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	table := r.URL.Query().Get("table")
	if table == "" {
		table = "result"
	} else if !exportTable.MatchString(table) {
		s.writeError(w, r, domain.NewValidationError("table", "must be 1 to 64 letters, digits, _ or $"))
		return
	}
	id := mux.Vars(r)["id"]
	p := principalFrom(r.Context())
	o := results.ExportOptions{Format: format, Table: table, RawFormulas: rawFormulas}
	leave, err := s.queryLimits.exports.enter(p.UserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer leave()
	started := false
	err = s.queries.Commands.Export(r.Context(), p.TenantID, p.UserID, id, o, s.queryLimits.exports.writer(w), func() {
		started = true
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="query-%s.%s"`, id, ext))
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
	}, metadata(r.Context(), r))
	switch {
	case err == nil:
	case started: // the status is sent; all that is left is to cut the download short
		s.log.WarnContext(r.Context(), "export interrupted", "query_id", id, "err", err)
		panic(http.ErrAbortHandler)
	default:
		s.writeError(w, r, err)
	}
}

// csvFormulas reads csv_formulas: "escape" (the default) writes a text cell that a spreadsheet
// would run as a formula with a leading ', "raw" writes it as it is, for machine consumers.
func csvFormulas(r *http.Request) (raw bool, err error) {
	switch r.URL.Query().Get("csv_formulas") {
	case "", "escape":
		return false, nil
	case "raw":
		return true, nil
	}
	return false, domain.NewValidationError("csv_formulas", "must be escape or raw")
}

// handleQueryArchive lists the caller's archived results in the session's tenant, newest first.
func (s *Server) handleQueryArchive(w http.ResponseWriter, r *http.Request) {
	limit, err := pageLimit(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := principalFrom(r.Context())
	items, next, err := s.queries.Commands.Archived(r.Context(), p.TenantID, p.UserID, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nullable(next)})
}

// handleArchiveQuery keeps one of the caller's results until they delete it.
func (s *Server) handleArchiveQuery(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	item, err := s.queries.Commands.Archive(r.Context(), p.TenantID, p.UserID, mux.Vars(r)["id"], metadata(r.Context(), r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, item)
}

// handleDeleteArchivedQuery deletes one of the caller's archived results.
func (s *Server) handleDeleteArchivedQuery(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	if err := s.queries.Commands.DeleteArchived(r.Context(), p.TenantID, p.UserID, mux.Vars(r)["id"], metadata(r.Context(), r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// intParam reads the query parameter name as an integer from lowest to highest, fallback when
// absent.
func intParam(r *http.Request, name string, fallback, lowest, highest int64) (int64, error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return fallback, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < lowest || n > highest {
		return 0, domain.NewValidationError(name, fmt.Sprintf("must be a number from %d to %d", lowest, highest))
	}
	return n, nil
}
