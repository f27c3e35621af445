// Package console serves the web console: the static assets that web/ builds into dist/ (see
// web/build.mjs), embedded in the binary. The page itself is one index.html for every client-side
// route; the assets carry a content hash in their names and are cached for a year.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var dist embed.FS

// ContentSecurityPolicy is the page's policy: scripts only from the console's own files (no inline
// script, no eval), requests only to its own origin, never framed. Inline styles stay allowed:
// CodeMirror positions its widgets with style attributes, and a style cannot run code.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// assetCache is how long a hashed asset may be kept: its name changes with its content.
const assetCache = "public, max-age=31536000, immutable"

// file is one embedded file, with its gzip form when that is smaller.
type file struct {
	body, gzipped []byte
	contentType   string
	etag          string // of body; the gzipped form's has "-gz" added
}

// Handler serves the console. Its zero value is not usable; use New.
type Handler struct {
	fsys  fs.FS
	once  sync.Once
	files map[string]*file // "/assets/main-X.js" → file
	index *file
}

// New returns the handler of the embedded console.
func New() *Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic("console: " + err.Error())
	}
	return &Handler{fsys: sub}
}

// load reads and compresses every file once, on the first request: the assets are a few hundred
// kilobytes, and compressing them ahead saves every later request the work.
func (h *Handler) load() {
	h.files = map[string]*file{}
	err := fs.WalkDir(h.fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(h.fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		f := &file{body: body, contentType: contentType(name), etag: hex.EncodeToString(sum[:12])}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(body)
		zw.Close()
		if buf.Len() < len(body) {
			f.gzipped = buf.Bytes()
		}
		h.files["/"+name] = f
		return nil
	})
	if err != nil {
		panic("console: reading the embedded assets: " + err.Error())
	}
	h.index = h.files["/index.html"]
	if h.index == nil {
		panic("console: dist/index.html is missing; build the console (make console)")
	}
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}

// ServeHTTP answers GET and HEAD: a file of the build by its path, and the page for any other
// path, so that client-side routes (/databases/…, /verify?token=…) load the console. A missing
// asset is a 404, not the page: a stale tab asking for an old hash must not get HTML as script.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(h.load)
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	// The links of mails carry their token in the query: no other origin may learn it.
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f, cache := h.files[r.URL.Path], assetCache
	switch {
	case f == h.index || (f == nil && !strings.HasPrefix(r.URL.Path, "/assets/")):
		// The page names the current assets: it is revalidated on every load.
		f, cache = h.index, "no-cache"
	case f == nil:
		http.NotFound(w, r)
		return
	case !strings.HasPrefix(r.URL.Path, "/assets/"):
		cache = "public, max-age=86400" // the favicon: no hash in its name
	}
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("Cache-Control", cache)
	hdr.Add("Vary", "Accept-Encoding")
	body, etag := f.body, f.etag
	if f.gzipped != nil && acceptsGzip(r) {
		hdr.Set("Content-Encoding", "gzip")
		body, etag = f.gzipped, etag+"-gz"
	}
	hdr.Set("ETag", `"`+etag+`"`)
	// The ETag lets a no-cache page be revalidated without its body.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
