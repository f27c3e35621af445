package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/internal/idempotency"
)

// idempotencyHeader is the request header naming an idempotency key; replayedHeader marks a
// response that was replayed from the key's first request.
const (
	idempotencyHeader = "Idempotency-Key"
	replayedHeader    = "Idempotent-Replayed"
)

// idempotencyFinishTimeout bounds recording a key's outcome once the handler has answered: it is
// done even when the client has gone away.
const idempotencyFinishTimeout = 5 * time.Second

// idempotent serves an authenticated POST route (mount wraps every one, inside the guard) with
// Idempotency-Key support. A request without the header goes straight to h. With it, the body is
// read (within the body limit) and hashed, and the key is claimed for the principal: a key whose
// first request with the same method, path, query and body has completed gets that response
// again with Idempotent-Replayed: true, and h does not run; a key used for another request, or
// whose first request is still running, answers 409 conflict. Otherwise h runs, reading the
// same body, while its response is recorded: a 2xx, 3xx or 4xx answer (but 429, which says
// "retry") becomes the key's answer; a 5xx, a 429, a panic or an answer h marked with
// dontKeepAnswer (a read) abandons the key so that a retry runs again. A dry run (?dry_run=true)
// ignores the header, as does everything without a store (Config.Idempotency nil): what a
// request that changes nothing answers is not worth a row in the management database.
func (s *Server) idempotent(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		values, sent := r.Header[idempotencyHeader]
		if !sent || s.idempotency == nil || r.URL.Query().Get("dry_run") == "true" {
			h(w, r) // a dry run changes nothing: there is nothing to protect, and nothing to keep
			return
		}
		key, err := idempotencyKey(values)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		body, err := readBody(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		r.Body = readCloser{bytes.NewReader(body)}
		principal := idempotencyPrincipal(principalFrom(r.Context()))
		replay, err := s.idempotency.Begin(r.Context(), principal, key, r.Method, requestTarget(r), sha256.Sum256(body), s.now())
		orphaned := errors.Is(err, idempotency.ErrOrphaned)
		if err != nil && !orphaned {
			s.writeError(w, r, err)
			return
		}
		if replay != nil {
			writeReplay(w, replay)
			return
		}

		answer := &keptAnswer{keep: true, orphaned: orphaned}
		r = r.WithContext(context.WithValue(r.Context(), keptAnswerKey{}, answer))
		rec := &idempotencyRecorder{ResponseWriter: w}
		finished := false
		defer func() {
			if finished {
				return
			}
			// h panicked (the panic goes on to recoverPanics): the key must not keep a half answer.
			s.finishIdempotency(r, principal, key, nil)
		}()
		h(rec, r)
		finished = true
		status := rec.status
		if status == 0 {
			status = http.StatusOK // net/http's answer to a handler that wrote nothing
		}
		if status >= 500 || status == http.StatusTooManyRequests || !answer.keep {
			rec.send() // nothing to keep: the client need not wait for the key's release
			s.finishIdempotency(r, principal, key, nil)
			return
		}
		// The key holds the answer before the client has it: a process that dies in between
		// leaves a key whose retry replays the answer, not one whose outcome is unknown.
		s.finishIdempotency(r, principal, key, &idempotency.Response{Status: status, ContentType: rec.contentType,
			Location: rec.location, Body: rec.body.Bytes()})
		rec.send()
	}
}

// keptAnswer says whether the answer of a request with an Idempotency-Key is kept: a handler
// whose request turned out to change nothing (a read query, a validation) calls dontKeepAnswer, and
// its key is then released instead of storing an answer that a retry can as well compute again.
//
// orphaned says that the key's first request was running when its process died (it may have
// done its work): see retryOfOrphan.
type keptAnswer struct{ keep, orphaned bool }

type keptAnswerKey struct{}

// dontKeepAnswer marks r's answer as not to be kept under its Idempotency-Key, if it has one.
func dontKeepAnswer(r *http.Request) {
	if a, ok := r.Context().Value(keptAnswerKey{}).(*keptAnswer); ok {
		a.keep = false
	}
}

// retryOfOrphan reports whether r retries, with its Idempotency-Key, a request that was running
// when its process died: whatever that request did on the world outside the log (a statement on a
// tenant's database) may have been done.
func retryOfOrphan(r *http.Request) bool {
	a, ok := r.Context().Value(keptAnswerKey{}).(*keptAnswer)
	return ok && a.orphaned
}

// finishIdempotency completes the key with resp, or abandons it when resp is nil. A failure (the
// management database cut or hung) is logged, and the client still gets its answer, which is
// true: the key, left running, answers 409 until its process's lease lapses, and then, for a
// write, 409 outcome_unknown. The key is the client's name for its request, not a secret.
func (s *Server) finishIdempotency(r *http.Request, principal, key string, resp *idempotency.Response) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), idempotencyFinishTimeout)
	defer cancel()
	var err error
	if resp == nil {
		err = s.idempotency.Abandon(ctx, principal, key)
	} else {
		err = s.idempotency.Complete(ctx, principal, key, *resp)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "could not record the outcome of an idempotency key",
			"request_id", RequestID(r.Context()), "method", r.Method, "path", r.URL.Path, "idempotency_key", key, "err", err)
	}
}

// idempotencyKey checks the header: sent once, 1 to 255 printable ASCII characters.
func idempotencyKey(values []string) (string, error) {
	if len(values) != 1 {
		return "", domain.NewValidationError(idempotencyHeader, "must be sent once")
	}
	key := values[0]
	valid := key != "" && len(key) <= idempotency.MaxKeySize
	for i := 0; valid && i < len(key); i++ {
		valid = key[i] >= 0x20 && key[i] <= 0x7e
	}
	if !valid {
		return "", domain.NewValidationError(idempotencyHeader, "must be 1 to 255 printable ASCII characters")
	}
	return key, nil
}

// idempotencyPrincipal is whose keys a request uses: the user's, or the API key's own.
func idempotencyPrincipal(p Principal) string {
	if p.APIKeyID != "" {
		return "key:" + string(p.APIKeyID)
	}
	return string(p.UserID)
}

// requestTarget is the path and query a key is bound to (?dry_run=true is another request). A
// query that is long or not plain ASCII is replaced by its SHA-256, so the target fits its column.
func requestTarget(r *http.Request) string {
	target := r.URL.EscapedPath()
	if q := r.URL.RawQuery; q != "" {
		plain := len(target)+1+len(q) <= idempotency.MaxPathSize
		for i := 0; plain && i < len(q); i++ {
			plain = q[i] > 0x20 && q[i] < 0x7f
		}
		if plain {
			return target + "?" + q
		}
		sum := sha256.Sum256([]byte(q))
		return target + "?sha256=" + hex.EncodeToString(sum[:])
	}
	return target
}

// writeReplay answers with a key's stored response.
func writeReplay(w http.ResponseWriter, resp *idempotency.Response) {
	h := w.Header()
	if resp.ContentType != "" {
		h.Set("Content-Type", resp.ContentType)
	}
	if resp.Location != "" {
		h.Set("Location", resp.Location)
	}
	h.Set(replayedHeader, "true")
	h.Set("Cache-Control", "no-store") // first answers may carry passwords and keys
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(resp.Status)
	if len(resp.Body) > 0 {
		w.Write(resp.Body)
	}
}

// readCloser gives a handler the body the idempotency check read.
type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// idempotencyRecorder holds a response back until its key has recorded it (see finish): a client
// that has an answer can then always have it again, even if the process dies right after sending
// it. It keeps the status, Content-Type, Location and body. A body larger than
// idempotency.MaxBodySize cannot be kept anyway, and a handler that flushes streams: either way
// the response goes through from then on, and the recorder keeps one byte more than the store
// keeps (enough for the store to know it is too large to keep).
type idempotencyRecorder struct {
	http.ResponseWriter
	status                int
	contentType, location string
	body                  bytes.Buffer
	through               bool // the response is on its way: what follows is written through
}

func (rw *idempotencyRecorder) WriteHeader(code int) {
	switch {
	case code < 200: // 1xx are interim; the real status follows
		rw.ResponseWriter.WriteHeader(code)
	case rw.status == 0:
		rw.status = code
		h := rw.Header()
		rw.contentType, rw.location = h.Get("Content-Type"), h.Get("Location")
	}
}

func (rw *idempotencyRecorder) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.through {
		if room := idempotency.MaxBodySize + 1 - rw.body.Len(); room > 0 {
			rw.body.Write(b[:min(room, len(b))])
		}
		return rw.ResponseWriter.Write(b)
	}
	rw.body.Write(b)
	if rw.body.Len() > idempotency.MaxBodySize {
		if err := rw.send(); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// send writes what is held and lets the rest of the response through.
func (rw *idempotencyRecorder) send() error {
	if rw.through {
		return nil
	}
	rw.through = true
	if rw.status == 0 {
		rw.status = http.StatusOK // net/http's answer to a handler that wrote nothing
	}
	rw.ResponseWriter.WriteHeader(rw.status)
	if rw.body.Len() == 0 {
		return nil
	}
	_, err := rw.ResponseWriter.Write(rw.body.Bytes())
	return err
}

// Flush lets a handler stream through the recorder; its answer is not held back from then on.
func (rw *idempotencyRecorder) Flush() {
	if rw.send() == nil {
		_ = http.NewResponseController(rw.ResponseWriter).Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (rw *idempotencyRecorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }
