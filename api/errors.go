package api

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/gorilla/mux"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/idempotency"
	"github.com/clouddbmanager/clouddb/queryexec"
	"github.com/clouddbmanager/clouddb/queryexec/results"
	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// Error is an error with its HTTP answer: handlers return one to raise a code of API.md that no
// domain error kind carries (invalid_request, payload_too_large, ...). writeError sends it as it
// is. A zero Status means 400; nil Details are sent as {}.
type Error struct {
	Status  int
	Code    string
	Message string
	Details map[string]any
	// RetryAfter, when set, is sent as the Retry-After header (whole seconds, at least 1).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// errInternal is the answer to every error writeError does not know: a fixed text, the real error
// goes to the log only.
var errInternal = &Error{
	Status:  http.StatusInternalServerError,
	Code:    "internal",
	Message: "An internal error occurred; quote the request id when you report it.",
}

// errorKinds maps the error kinds of package domain to their answer. They are matched in order
// with errors.Is, so the more specific kind comes first; later issues add rows here.
var errorKinds = []struct {
	kind    error
	status  int
	code    string
	message string
}{
	{domain.ErrNotFound, http.StatusNotFound, "not_found", "The resource does not exist."},
	{domain.ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated", "Authentication is missing, expired or revoked; log in again."},
	{domain.ErrInvalidCredentials, http.StatusUnauthorized, "invalid_credentials", "The email or password is wrong."},
	{domain.ErrTOTPRequired, http.StatusUnauthorized, "totp_required", "This account uses two-factor authentication: send totp_code."},
	{domain.ErrInvalidTOTP, http.StatusUnauthorized, "invalid_totp", "The two-factor code is wrong or was used already."},
	{domain.ErrReauthenticationRequired, http.StatusUnauthorized, "reauthentication_required", "This change needs your password (and two-factor code) confirmed within the last 5 minutes: POST /api/v1/me/reauth, then retry."},
	{domain.ErrAPIKeyNotAllowed, http.StatusForbidden, "forbidden", "An API key cannot change the account's password, two factors or keys, nor who belongs to or controls a tenant, nor create tenants: log in with your password."},
	{domain.ErrNotInPlan, http.StatusForbidden, "forbidden", "The tenant's plan does not include this; the pro and enterprise plans do."},
	{domain.ErrReadWriteHidden, http.StatusForbidden, "forbidden", "Only the database's owner (a developer or more) and the tenant's admins may see its password; run SQL through POST /api/v1/databases/{id}/query instead."},
	{domain.ErrForbidden, http.StatusForbidden, "forbidden", "Your role does not allow this."},
	{domain.ErrEmailNotVerified, http.StatusForbidden, "email_not_verified", "Verify your email address first: follow the link we sent, or ask for a new one."},
	{domain.ErrExpired, http.StatusGone, "expired", "This link is invalid, expired or used already."},
	{domain.ErrPasswordReused, http.StatusBadRequest, "password_reused", "Choose a password you have not used recently."},
	{domain.ErrEmailTaken, http.StatusConflict, "email_taken", "An account with this email exists already."},
	{domain.ErrNameTaken, http.StatusConflict, "name_taken", "This name is taken."},
	{domain.ErrLastAdmin, http.StatusConflict, "last_admin", "The tenant would be left without a tenant admin."},
	{domain.ErrSelfDeactivation, http.StatusConflict, "conflict", "You cannot deactivate yourself; another tenant admin can, or you leave the tenant (POST /me/leave)."},
	{domain.ErrInvalidName, http.StatusBadRequest, "invalid_name", "A database name has 1 to 64 letters, digits and underscores."},
	{domain.ErrDatabaseStopped, http.StatusLocked, "database_stopped", "The database is stopped; start it first."},
	{domain.ErrDatabaseUnavailable, http.StatusLocked, "database_unavailable", "The database cannot take queries now (not running, or its server does not answer); try again later."},
	{queryexec.ErrTimeout, http.StatusGatewayTimeout, "query_timeout", "The query ran past its timeout and was stopped on the server."},
	{commands.ErrEarlierAttemptMayHaveRun, http.StatusConflict, "outcome_unknown", "An earlier request with this Idempotency-Key was running when its server process ended: its statements may or may not have been applied (see the query history); they were not run again."},
	{queryexec.ErrOutcomeUnknown, http.StatusConflict, "outcome_unknown", "The connection to the database was lost after the statement was sent: the statement may or may not have been applied; check before retrying."},
	{results.ErrExpired, http.StatusGone, "expired", "This result is no longer kept; run the query again."},
	{domain.ErrVersionConflict, http.StatusConflict, "version_conflict", "The resource changed meanwhile; reload it and retry."},
	{domain.ErrConflict, http.StatusConflict, "conflict", "The request conflicts with the current state of the resource."},
}

// unavailableRetryAfter is the Retry-After of 503 unavailable: long enough for a failover or a
// restarted server, short enough that a client does not give up on a blip.
const unavailableRetryAfter = 5 * time.Second

// errUnavailable answers a dependency that does not answer: a sandbox server no database is placed
// on yet (domain.ErrUnavailable), or the management database itself (an outage).
var errUnavailable = &Error{
	Status:     http.StatusServiceUnavailable,
	Code:       "unavailable",
	Message:    "A service this request needs does not answer; try again in a few seconds.",
	Details:    map[string]any{"retry_after_s": int(unavailableRetryAfter / time.Second)},
	RetryAfter: unavailableRetryAfter,
}

// outage reports an error that says a database did not answer (connection refused, reset or
// lost, the server going away, too many connections, a deadline passed waiting for it) rather
// than that the request was wrong or the code failed. Errors of a tenant's own database are
// answered before (database_unavailable, query_timeout); what is left is the management database.
func outage(err error) bool {
	var (
		netErr *net.OpError
		myErr  *mysql.MySQLError
	)
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr):
		return true
	case errors.As(err, &myErr):
		switch myErr.Number {
		case 1040, 1053, 1203: // too many connections, server shutdown in progress, max_user_connections
			return true
		}
	}
	return false
}

// toError is the one mapping from an error to its answer. The second result says the error is
// not the client's doing and must be logged.
func toError(err error, now time.Time) (e *Error, logIt bool) {
	var (
		apiErr   *Error
		verr     *domain.ValidationError
		tooLarge *http.MaxBytesError
		weak     *domain.WeakPasswordError
		locked   *domain.AccountLockedError
		quota    *domain.QuotaExceededError
		choice   *domain.TenantChoiceError
		stmt     *queryexec.StatementError
	)
	if errors.As(err, &stmt) {
		e, logIt := toError(stmt.Err, now)
		details := map[string]any{"statement": stmt.Index}
		if len(stmt.Completed) > 0 {
			details["results"] = stmt.Completed
		}
		for k, v := range e.Details {
			details[k] = v
		}
		with := *e
		with.Details = details
		return &with, logIt
	}
	if e := queryError(err); e != nil {
		return e, false
	}
	if e := idempotencyError(err); e != nil {
		return e, false
	}
	switch {
	case errors.As(err, &weak):
		return &Error{Status: http.StatusBadRequest, Code: "weak_password", Message: weak.RuleMessage(),
			Details: map[string]any{"rule": weak.Rule}}, false
	case errors.As(err, &locked):
		return &Error{Status: http.StatusLocked, Code: "account_locked",
			Message:    "Too many failed logins: the account is locked for a while.",
			Details:    map[string]any{"locked_until": locked.Until.UTC().Format(time.RFC3339)},
			RetryAfter: locked.Until.Sub(now)}, false
	case errors.As(err, &quota):
		return &Error{Status: http.StatusForbidden, Code: "quota_exceeded", Message: "This would exceed the " + quota.Resource + " quota.",
			Details: map[string]any{"resource": quota.Resource, "used": quota.Used, "limit": quota.Limit}}, false
	case errors.As(err, &choice):
		tenants := make([]map[string]any, len(choice.Tenants))
		for i, m := range choice.Tenants {
			tenants[i] = map[string]any{"id": m.TenantID, "slug": m.Slug, "name": m.Name, "role": m.Role}
		}
		return &Error{Status: http.StatusBadRequest, Code: "validation_failed",
			Message: "You belong to several tenants: log in again with tenant set to the id or slug of one of details.tenants.",
			Details: map[string]any{"fields": map[string]string{"tenant": "name the tenant to log in to (id or slug)"}, "tenants": tenants}}, false
	case errors.As(err, &apiErr):
		return apiErr, apiErr.Status >= 500
	case errors.As(err, &verr):
		fields := verr.Fields
		if fields == nil {
			fields = map[string]string{}
		}
		return &Error{
			Status:  http.StatusBadRequest,
			Code:    "validation_failed",
			Message: "Some fields are invalid; see details.fields.",
			Details: map[string]any{"fields": fields},
		}, false
	case errors.As(err, &tooLarge):
		return &Error{
			Status:  http.StatusRequestEntityTooLarge,
			Code:    "payload_too_large",
			Message: fmt.Sprintf("The request body is larger than %d bytes.", tooLarge.Limit),
			Details: map[string]any{"limit_bytes": tooLarge.Limit},
		}, false
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.kind) {
			return &Error{Status: k.status, Code: k.code, Message: k.message}, k.status >= 500
		}
	}
	if errors.Is(err, domain.ErrUnavailable) || outage(err) {
		return errUnavailable, true
	}
	return errInternal, true
}

// queryError answers the errors of the query engine, nil for others. Their codes are the ones the
// engine records them with (queryexec.ErrorCode); this decides status, message and details.
func queryError(err error) *Error {
	var (
		denied  *sqlcheck.NotAllowedError
		confirm *sqlcheck.ConfirmationError
		failed  *queryexec.QueryError
		busy    *queryexec.BusyError
		large   *queryexec.TooLargeError
	)
	switch {
	case errors.As(err, &denied):
		return &Error{Status: http.StatusForbidden, Code: queryexec.ErrorCode(err), Message: denied.Message,
			Details: map[string]any{"statement_type": denied.StatementType, "reason": denied.Reason}}
	case errors.As(err, &confirm):
		details := map[string]any{"reason": confirm.Reason}
		if confirm.EstimatedRows > 0 {
			details["estimated_rows"] = confirm.EstimatedRows
		}
		return &Error{Status: http.StatusConflict, Code: queryexec.ErrorCode(err), Message: confirm.Error(), Details: details}
	case errors.As(err, &failed):
		details := map[string]any{"mysql_code": failed.MySQLCode, "sqlstate": failed.SQLState}
		if failed.Position != nil {
			details["position"] = failed.Position
		}
		if failed.Explanation != "" {
			details["explanation"] = failed.Explanation
		}
		if failed.Hint != "" {
			details["hint"] = failed.Hint
		}
		if failed.Syntax() {
			return &Error{Status: http.StatusBadRequest, Code: queryexec.ErrorCode(err), Message: failed.Message, Details: details}
		}
		return &Error{Status: http.StatusUnprocessableEntity, Code: queryexec.ErrorCode(err), Message: failed.Message, Details: details}
	case errors.As(err, &busy):
		if busy.Scope != "" {
			return &Error{Status: http.StatusTooManyRequests, Code: queryexec.ErrorCode(err),
				Message: "The server is busy with other queries' results; try again in a moment.",
				Details: map[string]any{"retry_after_s": 1, "scope": busy.Scope}, RetryAfter: time.Second}
		}
		return &Error{Status: http.StatusTooManyRequests, Code: queryexec.ErrorCode(err),
			Message: "Too many queries are running for this tenant or database; try again in a moment.",
			Details: map[string]any{"retry_after_s": 1}, RetryAfter: time.Second}
	case errors.As(err, &large):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: queryexec.ErrorCode(err),
			Message: fmt.Sprintf("The result is too large: %s over %d bytes; select fewer or smaller values (LIMIT, SUBSTRING).",
				map[string]string{"row_too_large": "a row is", "result_too_large": "its rows are"}[large.Reason], large.Limit),
			Details: map[string]any{"reason": large.Reason, "limit_bytes": large.Limit}}
	}
	return nil
}

// idempotencyError answers the refusals of an Idempotency-Key, nil for other errors.
func idempotencyError(err error) *Error {
	var (
		tooLarge *idempotency.TooLargeError
		full     *idempotency.FullError
	)
	switch {
	case errors.Is(err, idempotency.ErrKeyReused):
		return &Error{Status: http.StatusConflict, Code: "conflict",
			Message: "This Idempotency-Key was used with another request (method, path or body); use a new key for a new request.",
			Details: map[string]any{"header": idempotencyHeader}}
	case errors.Is(err, idempotency.ErrInProgress):
		return &Error{Status: http.StatusConflict, Code: "conflict",
			Message: "A request with this Idempotency-Key is still running; retry later.",
			Details: map[string]any{"header": idempotencyHeader, "retry_after_s": 1}, RetryAfter: time.Second}
	case errors.As(err, &tooLarge):
		return &Error{Status: http.StatusConflict, Code: "conflict",
			Message: fmt.Sprintf("The first response to this Idempotency-Key was over %d bytes, too large to keep; it was %d. The request is not run again.", idempotency.MaxBodySize, tooLarge.Status),
			Details: map[string]any{"header": idempotencyHeader, "status": tooLarge.Status, "limit_bytes": idempotency.MaxBodySize}}
	case errors.As(err, &full):
		retry := max(full.RetryAfter, time.Second)
		return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: "Too many Idempotency-Keys are kept for you (or in all); retry later, or send the request without a key.",
			Details: map[string]any{"header": idempotencyHeader, "scope": full.Scope, "limit": full.Limit,
				"retry_after_s": int64(math.Ceil(retry.Seconds()))},
			RetryAfter: retry}
	}
	return nil
}

// writeError is the one place errors become responses, in the envelope of API.md. Errors that are
// not the client's doing are logged with the request id; their text never reaches the client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if shuttingDown(r, err) { // cut at the end of the drain: expected, and another process answers
		s.respond(w, r, errDraining)
		return
	}
	e, logIt := toError(err, s.now())
	if logIt {
		s.log.ErrorContext(r.Context(), "request failed",
			"request_id", RequestID(r.Context()),
			"method", r.Method,
			"path", r.URL.Path,
			"err", err,
		)
	}
	s.respond(w, r, e)
}

type errorEnvelope struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	Details   map[string]any `json:"details"`
	RequestID string         `json:"request_id"`
}

// respond writes e as the error envelope.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, e *Error) {
	status, details := e.Status, e.Details
	if status == 0 {
		status = http.StatusBadRequest
	}
	if details == nil {
		details = map[string]any{}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	writeJSON(w, status, errorEnvelope{Error: errorBody{
		Code:      e.Code,
		Message:   sentence(e.Message),
		Details:   details,
		RequestID: RequestID(r.Context()),
	}})
}

// sentence gives every error message one voice, a sentence: a capital first letter and a final
// full stop, also for the texts that come from elsewhere (a password rule, a MySQL error).
func sentence(message string) string {
	message = strings.TrimSpace(message)
	if message == "" {
		return message
	}
	first, size := utf8.DecodeRuneInString(message)
	message = string(unicode.ToUpper(first)) + message[size:]
	if !strings.ContainsRune(".!?", rune(message[len(message)-1])) {
		message += "."
	}
	return message
}

// handleNoRoute is mux's NotFoundHandler and MethodNotAllowedHandler: 405 method_not_allowed
// with an Allow header when the path exists with other methods, else 404 not_found. mux's own
// verdict is not trusted for the difference: a method mismatch inside a subrouter is forgotten as
// soon as a later route of that subrouter is tried (mux v1.8 copies the prefix matcher into each
// route, and its match clears the mismatch).
func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	allowed := s.allowedMethods(r)
	if len(allowed) == 0 {
		s.respond(w, r, &Error{
			Status:  http.StatusNotFound,
			Code:    "not_found",
			Message: "No such resource: " + r.URL.Path,
		})
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	s.respond(w, r, &Error{
		Status:  http.StatusMethodNotAllowed,
		Code:    "method_not_allowed",
		Message: fmt.Sprintf("%s is not allowed on %s.", r.Method, r.URL.Path),
		Details: map[string]any{"allowed": allowed},
	})
}

// allowProbe are the methods a 405's Allow header may list.
var allowProbe = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// allowedMethods lists the methods some route accepts for r's path, by matching r again with each.
func (s *Server) allowedMethods(r *http.Request) []string {
	var allowed []string
	for _, m := range allowProbe {
		probe := r.WithContext(r.Context()) // a shallow copy
		probe.Method = m
		var match mux.RouteMatch
		if s.router.Match(probe, &match) && match.MatchErr == nil {
			allowed = append(allowed, m)
		}
	}
	return allowed
}
