// Package api is hwmgr's HTTP API: inventory, drives, actions, the event
// stream (Server-Sent Events), the OpenAPI document, health endpoints and
// /metrics, behind bearer-token auth with a read and an admin role. Errors
// are RFC 9457 problem details.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/stowage/stowage/hwmgr/node"
)

// OpenAPI is the OpenAPI 3 document of this API, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Node is what the API needs from the daemon core.
type Node interface {
	Inventory() node.Inventory
	Drive(ref string) (node.Drive, bool)
	Act(ctx context.Context, ref string, a node.Action, req node.ActionRequest) (node.Drive, error)
	Events() *node.Bus
	Ready() bool
}

// Jobs starts, cancels and reports burn-ins and erases; their progress is
// in each drive's Job (Node.Drive, Node.Inventory).
type Jobs interface {
	Start(ctx context.Context, req node.JobRequest) ([]node.Job, error)
	Cancel(ctx context.Context, ref string, kind node.JobKind, actor string) (node.Job, error)
	Report(ref string, kind node.JobKind) ([]byte, error)
}

// Config configures a Server. Zero values are the documented defaults.
type Config struct {
	Node   Node
	Tokens Tokens
	// Jobs serves burn-in and erase; nil leaves those endpoints out.
	Jobs Jobs
	// Metrics serves /metrics (read role); nil leaves it out.
	Metrics http.Handler
	// BodyLimit caps request bodies (default 64 KiB); larger ones get 413.
	BodyLimit int64
	// Heartbeat is the interval of SSE comment lines that keep idle
	// streams open through proxies (default 15s).
	Heartbeat time.Duration
	// StreamWriteTimeout bounds each write to an event stream (default 10s).
	StreamWriteTimeout time.Duration
	Logger             *slog.Logger
}

// Server routes the API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	methods map[string][]string // path pattern -> methods, for 405
}

// DefaultBodyLimit is the default request body limit.
const DefaultBodyLimit = 64 << 10

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), methods: map[string][]string{}}
	s.Handle("GET", "/healthz", RolePublic, http.HandlerFunc(s.healthz))
	s.Handle("GET", "/readyz", RolePublic, http.HandlerFunc(s.readyz))
	s.Handle("GET", "/openapi.json", RolePublic, http.HandlerFunc(s.openapi))
	s.Handle("GET", "/v1/inventory", RoleRead, http.HandlerFunc(s.inventory))
	s.Handle("GET", "/v1/drives", RoleRead, http.HandlerFunc(s.drives))
	s.Handle("GET", "/v1/drives/{id}", RoleRead, http.HandlerFunc(s.drive))
	s.Handle("POST", "/v1/drives/{id}/actions/{action}", RoleAdmin, http.HandlerFunc(s.action))
	s.Handle("GET", "/v1/events", RoleRead, http.HandlerFunc(s.events))
	if cfg.Metrics != nil {
		s.Handle("GET", "/metrics", RoleRead, cfg.Metrics)
	}
	if cfg.Jobs != nil {
		s.Handle("GET", "/v1/jobs", RoleRead, http.HandlerFunc(s.jobs))
		for _, k := range []node.JobKind{node.JobBurnIn, node.JobErase} {
			s.Handle("POST", "/v1/"+string(k), RoleAdmin, s.startJob(k))
			s.Handle("GET", "/v1/drives/{id}/"+string(k), RoleRead, s.driveJob(k))
			s.Handle("DELETE", "/v1/drives/{id}/"+string(k), RoleAdmin, s.cancelJob(k))
			s.Handle("GET", "/v1/drives/{id}/"+string(k)+"/report", RoleRead, s.jobReport(k))
		}
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, r, http.StatusNotFound, ProbNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	return s
}

// Handle adds a route that needs the given role (later features, such as
// burn-in and erase, add their endpoints here). The role is checked before
// h runs; other methods on the same path get 405 with an Allow header.
func (s *Server) Handle(method, pattern string, role Role, h http.Handler) {
	s.mux.Handle(method+" "+pattern, s.guard(role, h))
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

type roleKey struct{}

// RoleOf returns the role of the token that authorised the request.
func RoleOf(ctx context.Context) Role {
	r, _ := ctx.Value(roleKey{}).(Role)
	return r
}

func (s *Server) guard(need Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role, ok := s.cfg.Tokens.authorize(w, r, need)
		if !ok {
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), roleKey{}, role)))
	})
}

// ServeHTTP serves the API, turning panics into 500 problems.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
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
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "remote", r.RemoteAddr, "duration", time.Since(start))
	}()
	s.mux.ServeHTTP(sw, r)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
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
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flush,
// write deadlines).
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
	if !s.cfg.Node.Ready() {
		WriteProblem(w, r, http.StatusServiceUnavailable, ProbNotReady, "the first drive scan has not completed")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(OpenAPI)
}

func (s *Server) inventory(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Node.Inventory())
}

// DriveList is the body of GET /v1/drives.
type DriveList struct {
	Drives []node.Drive `json:"drives"`
}

func (s *Server) drives(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, DriveList{Drives: s.cfg.Node.Inventory().Drives})
}

func (s *Server) drive(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, ok := s.cfg.Node.Drive(id)
	if !ok {
		WriteProblem(w, r, http.StatusNotFound, ProbDriveNotFound, fmt.Sprintf("no drive %q (give its ID, serial, WWN or kernel name)", id))
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// ActionBody is the JSON body of an action.
type ActionBody struct {
	Serial string `json:"serial,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// decodeBody strictly decodes a JSON body into v. An empty body leaves v
// as is. It writes the problem and returns false on error.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, s.cfg.BodyLimit)
	raw, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			WriteProblem(w, r, http.StatusRequestEntityTooLarge, ProbTooLarge, fmt.Sprintf("request body over the limit of %d bytes", mbe.Limit))
			return false
		}
		WriteProblem(w, r, http.StatusBadRequest, ProbBadRequest, "reading the request body: "+err.Error())
		return false
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return true
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			WriteProblem(w, r, http.StatusUnsupportedMediaType, ProbUnsupportedMedia, fmt.Sprintf("the body must be application/json, not %q", ct))
			return false
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteProblem(w, r, http.StatusBadRequest, ProbBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		WriteProblem(w, r, http.StatusBadRequest, ProbBadRequest, "invalid JSON body: data after the JSON object")
		return false
	}
	return true
}

func (s *Server) action(w http.ResponseWriter, r *http.Request) {
	id, act := r.PathValue("id"), node.Action(r.PathValue("action"))
	known := false
	for _, a := range node.Actions {
		known = known || a == act
	}
	if !known {
		WriteProblem(w, r, http.StatusNotFound, ProbUnknownAction, fmt.Sprintf("unknown action %q (known: adopt, drain, retire, mark-repaired, locate-on, locate-off)", act))
		return
	}
	var body ActionBody
	if !s.decodeBody(w, r, &body) {
		return
	}
	d, err := s.cfg.Node.Act(r.Context(), id, act, node.ActionRequest{Serial: body.Serial, Reason: body.Reason, Actor: "api:" + RoleOf(r.Context()).String()})
	if err != nil {
		status, slug := actionStatus(err)
		if status >= 500 {
			s.log.Error("action failed", "drive", id, "action", act, "err", err)
		}
		WriteProblem(w, r, status, slug, err.Error())
		return
	}
	s.log.Info("action", "drive", d.ID, "action", act, "state", d.Label.State, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, d)
}

// actionStatus maps node errors to HTTP statuses. A missing serial is 422
// (the request lacks what this drive needs); a wrong one, an in-service
// drive, a transition the lifecycle refuses and a drive without a locate
// LED are 409 (they conflict with the drive's state).
func actionStatus(err error) (int, string) {
	switch {
	case errors.Is(err, node.ErrNotFound):
		return http.StatusNotFound, ProbDriveNotFound
	case errors.Is(err, node.ErrUnknownAction):
		return http.StatusNotFound, ProbUnknownAction
	case errors.Is(err, node.ErrSerialRequired):
		return http.StatusUnprocessableEntity, ProbSerialRequired
	case errors.Is(err, node.ErrSerialMismatch):
		return http.StatusConflict, ProbSerialMismatch
	case errors.Is(err, node.ErrInService):
		return http.StatusConflict, ProbInService
	case errors.Is(err, node.ErrInvalidTransition):
		return http.StatusConflict, ProbInvalidTransition
	case errors.Is(err, node.ErrNoEnclosure):
		return http.StatusConflict, ProbNoEnclosure
	case errors.Is(err, node.ErrJobRunning):
		return http.StatusConflict, ProbJobRunning
	case errors.Is(err, node.ErrNoJob):
		return http.StatusNotFound, ProbNoJob
	case errors.Is(err, node.ErrNoReport):
		return http.StatusNotFound, ProbNoReport
	case errors.Is(err, node.ErrSkipped):
		return http.StatusConflict, ProbSkipped
	case errors.Is(err, node.ErrReadOnly):
		return http.StatusConflict, ProbReadOnly
	case errors.Is(err, node.ErrVirtual):
		return http.StatusConflict, ProbVirtual
	case errors.Is(err, node.ErrBadRequest):
		return http.StatusUnprocessableEntity, ProbBadRequest
	}
	return http.StatusInternalServerError, ProbInternal
}

// events streams the node's events as Server-Sent Events. A client
// resumes with the Last-Event-ID header (or ?last_event_id=); events still
// in the ring are replayed, and a "gap" event says when some were lost.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	last := r.Header.Get("Last-Event-ID")
	if q := r.URL.Query().Get("last_event_id"); last == "" && q != "" {
		last = q
	}
	var (
		after   uint64
		backlog []node.Event
		ch      <-chan node.Event
		gap     bool
		cancel  func()
	)
	if last != "" {
		v, err := strconv.ParseUint(strings.TrimSpace(last), 10, 64)
		if err != nil {
			WriteProblem(w, r, http.StatusBadRequest, ProbBadRequest, fmt.Sprintf("Last-Event-ID %q is not an event ID", last))
			return
		}
		after = v
		backlog, ch, gap, cancel = s.cfg.Node.Events().Subscribe(after)
	} else {
		ch, cancel = s.cfg.Node.Events().SubscribeNew()
	}
	defer cancel()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(chunk string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout))
		if _, err := io.WriteString(w, chunk); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write("retry: 2000\n\n") {
		return
	}
	if gap {
		if !write(fmt.Sprintf("event: gap\ndata: {\"after\":%d}\n\n", after)) {
			return
		}
	}
	for _, ev := range backlog {
		if !write(sseEvent(ev)) {
			return
		}
	}
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-ch:
			if !ok {
				// Dropped for falling behind: end the stream; the client
				// reconnects with Last-Event-ID and resumes from the ring.
				return
			}
			if !write(sseEvent(ev)) {
				return
			}
		case <-beat.C:
			if !write(": heartbeat\n\n") {
				return
			}
		}
	}
}

func sseEvent(ev node.Event) string {
	b, _ := json.Marshal(ev)
	return fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, b)
}

// HTTPServer wraps h in an http.Server with hwmgr's timeouts. Event
// streams extend their own write deadline per write.
func HTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	if log != nil {
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	}
	return srv
}
