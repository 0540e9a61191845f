// Package server is the OSD's HTTP API: PUT/GET (with Range)/HEAD/DELETE
// of content-addressed blocks, paginated listing, node status, admin
// actions (drain, add or remove a drive, scrub), the OpenAPI document,
// health endpoints and /metrics, behind optional bearer tokens. Errors are
// RFC 9457 problem details. The server owns the small Store interface it
// needs; the daemon (osd/cmd/osd) passes its node.
package server

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stowage/stowage/osd/volume"
)

// OpenAPI is the OpenAPI 3 document of this API, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// MaxBlock is the largest block a PUT takes.
const MaxBlock = 4 << 20

// Store is what the API needs from the node. Its errors are volume's
// (ErrNotFound, ErrKeyMismatch, ErrEmpty, ErrTooLarge, ErrUnrecoverable,
// ErrDegraded, ErrClosed), wrapped or not; any other error is a 503 when
// it wraps ErrUnavailable and a 500 otherwise.
type Store interface {
	// Put stores data under key (its SHA-256, which Put verifies) durably;
	// stored is false when the block was already there.
	Put(ctx context.Context, key Key, data []byte) (stored bool, err error)
	Get(ctx context.Context, key Key) ([]byte, error)
	Stat(ctx context.Context, key Key) (volume.BlockInfo, error)
	Delete(ctx context.Context, key Key) error
	List(ctx context.Context, after Key, limit int) ([]Key, error)
}

// BlockGetter is what a Store may add so that a GET sends the block
// straight from the buffers it was read into (osd/volume.Block), without
// joining or copying it.
type BlockGetter interface {
	// GetBlock is Get returning a Block the caller releases.
	GetBlock(ctx context.Context, key Key) (*volume.Block, error)
}

// GetBlock gets key's block from st: with st's GetBlock if it has one,
// else with Get. Release the block when done.
func GetBlock(ctx context.Context, st Store, key Key) (*volume.Block, error) {
	if bg, ok := st.(BlockGetter); ok {
		return bg.GetBlock(ctx, key)
	}
	data, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return volume.BlockOf(data), nil
}

// ErrUnavailable marks store errors that mean "try again later" (503).
var ErrUnavailable = errors.New("store unavailable")

// Admin is what the admin endpoints call (nil: they answer 501).
type Admin interface {
	AddDrive(ctx context.Context, path string) error
	RemoveDrive(ctx context.Context, path string) error
	// Drain moves the drive's data off it; it runs until done, and the
	// server runs it in the background.
	Drain(ctx context.Context, path string) error
	// Scrub starts a scrub pass now (or reports one already running).
	Scrub(ctx context.Context) error
}

// Admin errors the server maps to statuses.
var (
	ErrNoSuchDrive = errors.New("no such drive")                    // 404
	ErrConflict    = errors.New("conflicts with the drive's state") // 409
)

// Config configures a Server. Zero values are the documented defaults.
type Config struct {
	Store  Store
	Admin  Admin
	Status func() Status // nil: /v1/status answers an empty status
	Ready  func() bool   // nil: always ready
	Tokens Tokens
	// MaxBlock caps PUT bodies (default MaxBlock); larger ones get 413.
	MaxBlock int
	Logger   *slog.Logger
	// Context bounds background admin tasks (drain). Default Background.
	Context context.Context
}

// Server routes the API. Create it with New.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	methods map[string][]string
	metrics *metrics
	bufs    sync.Pool
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.MaxBlock <= 0 {
		cfg.MaxBlock = MaxBlock
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Status == nil {
		cfg.Status = func() Status { return Status{} }
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), methods: map[string][]string{}}
	s.bufs.New = func() any { b := make([]byte, cfg.MaxBlock+1); return &b }
	s.metrics = newMetrics(cfg.Status)
	s.handle("GET", "/healthz", RolePublic, s.healthz)
	s.handle("GET", "/readyz", RolePublic, s.readyz)
	s.handle("GET", "/openapi.json", RolePublic, s.openapi)
	s.handle("GET", "/metrics", RoleRead, s.metrics.handler.ServeHTTP)
	s.handle("GET", "/v1/status", RoleRead, s.status)
	s.handle("GET", "/v1/blocks", RoleRead, s.list)
	s.handle("GET", "/v1/blocks/{key}", RoleRead, s.get) // and HEAD
	s.handle("PUT", "/v1/blocks/{key}", RoleWrite, s.put)
	s.handle("DELETE", "/v1/blocks/{key}", RoleWrite, s.delete)
	s.handle("POST", "/v1/drives/add", RoleAdmin, s.adminDrive("add"))
	s.handle("POST", "/v1/drives/remove", RoleAdmin, s.adminDrive("remove"))
	s.handle("POST", "/v1/drives/drain", RoleAdmin, s.adminDrive("drain"))
	s.handle("POST", "/v1/scrub", RoleAdmin, s.scrub)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, r, http.StatusNotFound, ProbNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	return s
}

// handle adds a route needing role; other methods on the path get 405 with
// an Allow header.
func (s *Server) handle(method, pattern string, role Role, h http.HandlerFunc) {
	s.mux.Handle(method+" "+pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Tokens.authorize(w, r, role) {
			h(w, r)
		}
	}))
	if _, ok := s.methods[pattern]; !ok {
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			allow := s.methods[pattern]
			w.Header().Set("Allow", strings.Join(allow, ", "))
			WriteProblem(w, r, http.StatusMethodNotAllowed, ProbMethodNotAllowed, fmt.Sprintf("%s does not allow %s (allowed: %s)", pattern, r.Method, strings.Join(allow, ", ")))
		})
	}
	s.methods[pattern] = append(s.methods[pattern], method)
	if method == "GET" {
		s.methods[pattern] = append(s.methods[pattern], "HEAD")
	}
}

// ServeHTTP serves the API, counting every request in the metrics and
// turning panics into 500 problems.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	body := &countingBody{ReadCloser: r.Body}
	r.Body = body
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if !sw.wrote {
				WriteProblem(sw, r, http.StatusInternalServerError, ProbInternal, "internal error")
			}
		}
		route := routeOf(r.Pattern)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.metrics.observe(r.Method, route, sw.status, body.n, sw.n, time.Since(start))
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "remote", r.RemoteAddr, "duration", time.Since(start))
	}()
	s.mux.ServeHTTP(sw, r)
}

// routeOf turns a mux pattern ("PUT /v1/blocks/{key}") into the route
// label ("/v1/blocks/{key}"); unmatched requests are "other".
func routeOf(pattern string) string {
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == ' ' {
			pattern = pattern[i+1:]
			break
		}
	}
	if pattern == "" || pattern == "/" {
		return "other"
	}
	return pattern
}

type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Ready() {
		WriteProblem(w, r, http.StatusServiceUnavailable, ProbNotReady, "the store is not open yet")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(OpenAPI)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, normalize(s.cfg.Status()))
}

// normalize replaces nil slices and maps with empty ones, so that the JSON
// has [] and {} where the schema wants arrays and objects.
func normalize(st Status) Status {
	if st.Drives == nil {
		st.Drives = []DriveStatus{}
	}
	if st.Volumes == nil {
		st.Volumes = []VolumeStatus{}
	}
	for i := range st.Volumes {
		if st.Volumes[i].Slots == nil {
			st.Volumes[i].Slots = []SlotStatus{}
		}
	}
	for _, m := range []*DamageMap{&st.Scrub.Findings, &st.Damage.Found, &st.Damage.Repaired} {
		if *m == nil {
			*m = DamageMap{}
		}
	}
	return st
}

// storeError writes the problem for a store error.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, volume.ErrNotFound):
		WriteProblem(w, r, http.StatusNotFound, ProbBlockNotFound, "no block with this key")
	case errors.Is(err, volume.ErrKeyMismatch):
		WriteProblem(w, r, http.StatusBadRequest, ProbKeyMismatch, "the SHA-256 of the body does not match the key; nothing was stored")
	case errors.Is(err, volume.ErrEmpty):
		WriteProblem(w, r, http.StatusBadRequest, ProbEmpty, "a block has at least one byte")
	case errors.Is(err, volume.ErrTooLarge):
		WriteProblem(w, r, http.StatusRequestEntityTooLarge, ProbTooLarge, err.Error())
	case errors.Is(err, volume.ErrUnrecoverable):
		s.log.Error("block unrecoverable", "path", r.URL.Path, "err", err)
		WriteProblem(w, r, http.StatusInternalServerError, ProbUnrecoverable, "the block cannot be read: fewer than k good fragments")
	case errors.Is(err, volume.ErrDegraded), errors.Is(err, volume.ErrClosed), errors.Is(err, ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		WriteProblem(w, r, http.StatusServiceUnavailable, ProbUnavailable, err.Error())
	case r.Context().Err() != nil:
		// The client went away; nobody reads this.
		WriteProblem(w, r, http.StatusServiceUnavailable, ProbUnavailable, "request cancelled")
	default:
		s.log.Error("store error", "method", r.Method, "path", r.URL.Path, "err", err)
		WriteProblem(w, r, http.StatusInternalServerError, ProbInternal, err.Error())
	}
}

func (s *Server) key(w http.ResponseWriter, r *http.Request) (Key, bool) {
	k, err := ParseKey(r.PathValue("key"))
	if err != nil {
		WriteProblem(w, r, http.StatusBadRequest, ProbBadKey, err.Error())
		return k, false
	}
	return k, true
}

func etag(k Key) string { return `"` + FormatKey(k) + `"` }

func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	key, ok := s.key(w, r)
	if !ok {
		return
	}
	limit := s.cfg.MaxBlock
	if r.ContentLength > int64(limit) {
		drain(w, r.Body, limit)
		WriteProblem(w, r, http.StatusRequestEntityTooLarge, ProbTooLarge, fmt.Sprintf("Content-Length %d is over the block limit of %d bytes", r.ContentLength, limit))
		return
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	n, err := readBody(r.Body, *bp)
	switch {
	case err != nil:
		w.Header().Set("Connection", "close")
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			WriteProblem(w, r, http.StatusRequestTimeout, ProbTimeout, "the body did not arrive within the server's read timeout; nothing was stored")
			return
		}
		WriteProblem(w, r, http.StatusBadRequest, ProbTruncated, fmt.Sprintf("the body ended early after %d bytes (%v); nothing was stored", n, err))
		return
	case n > limit:
		drain(w, r.Body, limit)
		WriteProblem(w, r, http.StatusRequestEntityTooLarge, ProbTooLarge, fmt.Sprintf("body over the block limit of %d bytes", limit))
		return
	}
	stored, err := s.cfg.Store.Put(r.Context(), key, (*bp)[:n])
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(key))
	w.Header().Set("Location", "/v1/blocks/"+FormatKey(key))
	status := http.StatusOK
	if stored {
		status = http.StatusCreated
	}
	writeJSON(w, status, PutResult{Key: FormatKey(key), Size: n, Created: stored})
}

// PutResult is the body of a successful PUT.
type PutResult struct {
	Key     string `json:"key"`
	Size    int    `json:"size"`
	Created bool   `json:"created"` // false: it was already stored
}

// drain reads and discards up to 2×limit more bytes of an oversized body
// before the 413 goes out, so that a client that sends its whole body
// before reading (most do) sees the problem rather than a connection
// reset; a body longer still gets the connection closed.
func drain(w http.ResponseWriter, body io.Reader, limit int) {
	n, _ := io.CopyN(io.Discard, body, 2*int64(limit)+1)
	if n > 2*int64(limit) {
		w.Header().Set("Connection", "close")
	}
}

// readBody reads r into buf until EOF. It returns len(buf) when the body
// is longer than len(buf)-1 (the caller's limit + 1). A body that ends
// early (Content-Length not reached, connection closed) or times out is an
// error.
func readBody(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	key, ok := s.key(w, r)
	if !ok {
		return
	}
	h := w.Header()
	tag := etag(key)
	if r.Method == http.MethodHead {
		bi, err := s.cfg.Store.Stat(r.Context(), key)
		if err != nil {
			s.storeError(w, r, err)
			return
		}
		h.Set("ETag", tag)
		h.Set("Accept-Ranges", "bytes")
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.Itoa(bi.Size))
		w.WriteHeader(http.StatusOK)
		return
	}
	blk, err := GetBlock(r.Context(), s.cfg.Store, key)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	defer blk.Release()
	size := int64(blk.Len())
	h.Set("ETag", tag)
	h.Set("Accept-Ranges", "bytes")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	var ranges []ByteRange
	if rh := r.Header.Get("Range"); rh != "" {
		if ir := r.Header.Get("If-Range"); ir == "" || ir == tag {
			ranges, err = ParseRange(rh, size)
			if err != nil {
				h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
				WriteProblem(w, r, http.StatusRequestedRangeNotSatisfiable, ProbBadRange, fmt.Sprintf("%v: %q (the block has %d bytes)", err, rh, size))
				return
			}
		}
	}
	h.Set("Content-Type", "application/octet-stream")
	if len(ranges) == 1 {
		br := ranges[0]
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", br.Start, br.End, size))
		h.Set("Content-Length", strconv.FormatInt(br.Len(), 10))
		w.WriteHeader(http.StatusPartialContent)
		_, _ = blk.WriteRange(w, br.Start, br.Len())
		return
	}
	// No Range, or several: the whole block (RFC 9110 lets a server
	// ignore a multi-range request).
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	_, _ = blk.WriteTo(w)
}

// etagMatch reports whether an If-None-Match list names tag (or is "*").
func etagMatch(list, tag string) bool {
	for i := 0; i < len(list); {
		for i < len(list) && (list[i] == ' ' || list[i] == ',' || list[i] == '\t') {
			i++
		}
		j := i
		for j < len(list) && list[j] != ',' {
			j++
		}
		t := list[i:j]
		for len(t) > 0 && (t[len(t)-1] == ' ' || t[len(t)-1] == '\t') {
			t = t[:len(t)-1]
		}
		if len(t) > 2 && t[:2] == "W/" {
			t = t[2:]
		}
		if t == "*" || t == tag {
			return true
		}
		i = j
	}
	return false
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	key, ok := s.key(w, r)
	if !ok {
		return
	}
	if err := s.cfg.Store.Delete(r.Context(), key); err != nil {
		s.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ListResult is the body of GET /v1/blocks.
type ListResult struct {
	Keys []string `json:"keys"`
	// Next is the after= of the next page; empty on the last page.
	Next string `json:"next,omitempty"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q, err := ParseListQuery(r.URL.Query())
	if err != nil {
		WriteProblem(w, r, http.StatusBadRequest, ProbBadQuery, err.Error())
		return
	}
	keys, err := s.cfg.Store.List(r.Context(), q.After, q.Limit+1)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	res := ListResult{Keys: []string{}}
	for i, k := range keys {
		if i == q.Limit {
			res.Next = res.Keys[i-1]
			break
		}
		res.Keys = append(res.Keys, FormatKey(k))
	}
	writeJSON(w, http.StatusOK, res)
}

// DriveRequest is the body of the drive admin actions.
type DriveRequest struct {
	Path string `json:"path"`
}

// ActionResult is the body of an accepted admin action.
type ActionResult struct {
	Action string `json:"action"`
	Path   string `json:"path,omitempty"`
	State  string `json:"state"` // "done" or "started" (runs in the background)
}

func (s *Server) adminDrive(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Admin == nil {
			WriteProblem(w, r, http.StatusNotImplemented, ProbUnavailable, "this daemon has no admin actions")
			return
		}
		var req DriveRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Path == "" {
			if err == nil {
				err = errors.New(`"path" is required`)
			}
			WriteProblem(w, r, http.StatusBadRequest, ProbBadRequest, "the body must be {\"path\": \"/dev/...\"}: "+err.Error())
			return
		}
		var err error
		switch action {
		case "add":
			err = s.cfg.Admin.AddDrive(r.Context(), req.Path)
		case "remove":
			err = s.cfg.Admin.RemoveDrive(r.Context(), req.Path)
		case "drain":
			go func() {
				if err := s.cfg.Admin.Drain(s.cfg.Context, req.Path); err != nil {
					s.log.Error("drain failed", "path", req.Path, "err", err)
					return
				}
				s.log.Info("drain done", "path", req.Path)
			}()
			s.log.Info("admin action", "action", action, "path", req.Path, "remote", r.RemoteAddr)
			writeJSON(w, http.StatusAccepted, ActionResult{Action: action, Path: req.Path, State: "started"})
			return
		}
		if err != nil {
			s.adminError(w, r, err)
			return
		}
		s.log.Info("admin action", "action", action, "path", req.Path, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, ActionResult{Action: action, Path: req.Path, State: "done"})
	}
}

func (s *Server) adminError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNoSuchDrive):
		WriteProblem(w, r, http.StatusNotFound, ProbNotFound, err.Error())
	case errors.Is(err, ErrConflict), errors.Is(err, volume.ErrInUse):
		WriteProblem(w, r, http.StatusConflict, ProbConflict, err.Error())
	default:
		s.storeError(w, r, err)
	}
}

func (s *Server) scrub(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Admin == nil {
		WriteProblem(w, r, http.StatusNotImplemented, ProbUnavailable, "this daemon has no admin actions")
		return
	}
	if err := s.cfg.Admin.Scrub(r.Context()); err != nil {
		s.adminError(w, r, err)
		return
	}
	s.log.Info("admin action", "action", "scrub", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, ActionResult{Action: "scrub", State: "started"})
}

// Timeouts of the HTTP server.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers; a client slower than
	// that has its connection closed without a response.
	ReadHeader time.Duration
	// Read bounds reading a whole request, body included; a PUT body not
	// in by then gets 408 and the connection is closed.
	Read time.Duration
	// Write bounds writing a response.
	Write time.Duration
	// Idle closes keep-alive connections idle for that long.
	Idle time.Duration
}

// DefaultTimeouts are the daemon's defaults: a 4 MiB body at 100 KB/s
// still arrives in time.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 60 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second}

// HTTPServer wraps h in an http.Server with the timeouts (zero fields
// take DefaultTimeouts').
func HTTPServer(h http.Handler, t Timeouts, log *slog.Logger) *http.Server {
	d := DefaultTimeouts
	for _, p := range []struct{ v, def *time.Duration }{{&t.ReadHeader, &d.ReadHeader}, {&t.Read, &d.Read}, {&t.Write, &d.Write}, {&t.Idle, &d.Idle}} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    64 << 10,
	}
	if log != nil {
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	}
	return srv
}
