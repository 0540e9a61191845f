package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/stowage/stowage/hwmgr/node"
)

// Doubles for the node's sources; the real ones are wired in hwmgr/cmd/hwmgr
// and exercised end to end there.

type drivesDouble struct{ ids []node.Identity }

func (f drivesDouble) Scan(context.Context) ([]node.Identity, error) { return f.ids, nil }

type labelsDouble struct {
	mu     sync.Mutex
	labels map[string]node.Label
}

func initialLabels() map[string]node.Label {
	return map[string]node.Label{
		"sda": {State: node.StateForeign, Foreign: []string{"gpt"}},
		"sdb": {State: node.StateInService, HoldsData: true, Owner: "osd"},
	}
}

func (f *labelsDouble) Read(_ context.Context, id node.Identity) (node.Label, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.labels[id.Name]; ok {
		return l, nil
	}
	return node.Label{State: node.StateNew}, nil
}

var next = map[node.Action]map[node.State]node.State{
	node.ActionAdopt:  {node.StateForeign: node.StateNew},
	node.ActionDrain:  {node.StateInService: node.StateDraining},
	node.ActionRetire: {node.StateDrained: node.StateRetired, node.StateNew: node.StateRetired},
}

func (f *labelsDouble) Apply(_ context.Context, id node.Identity, t node.Transition) (node.Label, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.labels[id.Name]
	if !ok {
		l = node.Label{State: node.StateNew}
	}
	to, ok := next[t.Action][l.State]
	if !ok {
		return node.Label{}, fmt.Errorf("%w: %s from %s", node.ErrInvalidTransition, t.Action, l.State)
	}
	l.History = append(l.History, node.HistoryEntry{Time: time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC), From: l.State, To: to, Reason: t.Reason, Actor: t.Actor})
	l.State = to
	l.Foreign = nil
	f.labels[id.Name] = l
	return l, nil
}

type healthDouble struct{}

func (healthDouble) Judge(d node.Drive, _ *node.SMART) node.Health {
	return node.Health{Verdict: node.VerdictWarn, Reasons: []node.Reason{{Rule: "temperature", Severity: node.VerdictWarn, Detail: "58 °C over 55 °C"}}}
}

type smartDouble struct{}

func (smartDouble) Read(_ context.Context, id node.Identity) (node.SMART, error) {
	pass, temp, pos := true, 58.0, 3600.0*1000
	return node.SMART{Protocol: "ATA", Passed: &pass, TemperatureCelsius: &temp, PowerOnSeconds: &pos,
		ATA:      []node.ATAAttribute{{ID: 5, Name: "Reallocated_Sector_Ct", Value: 100, Worst: 100, Threshold: 10, Raw: 0}},
		SelfTest: &node.SelfTest{Total: 1}}, nil
}

const (
	readTok  = "read-token-0123456789"
	adminTok = "admin-token-0123456789"
)

type fixture struct {
	labels *labelsDouble
	srv    *httptest.Server
	node   *node.Node
	router routers.Router
	doc    *openapi3.T
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	labels := &labelsDouble{labels: initialLabels()}
	n := node.New(node.Config{
		Drives: drivesDouble{ids: []node.Identity{
			{Name: "sda", DevPath: "/dev/sda", Serial: "FOREIGN1", Model: "M1", SizeBytes: 1 << 40},
			{Name: "sdb", DevPath: "/dev/sdb", Serial: "DATA1", WWN: "0x5000c500deadbeef", Model: "M1", SizeBytes: 1 << 40},
			{Name: "sdc", DevPath: "/dev/sdc", Serial: "NEW1", Model: "M1", SizeBytes: 1 << 40},
		}},
		Labels: labels, SMART: smartDouble{}, Health: healthDouble{},
		Info: node.Info{Hostname: "node1", Version: "test"},
	})
	if err := n.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	n.PollSMART(ctx)
	s := New(Config{
		Node: n, Tokens: NewTokens([]string{readTok}, []string{adminTok}),
		Metrics:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "# metrics\n") }),
		Heartbeat: 50 * time.Millisecond,
	})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("load OpenAPI document: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("OpenAPI document invalid: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{labels: labels, srv: srv, node: n, router: router, doc: doc}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request and validates the response against the OpenAPI
// document.
func (f *fixture) do(t *testing.T, method, path, token, contentType string, body []byte) result {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f.validate(t, req, resp, b)
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

func (f *fixture) validate(t *testing.T, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	f.validateOpts(t, req, resp, body, &openapi3filter.Options{IncludeResponseStatus: true})
}

// validateStream checks an event stream's status and headers; its events
// are checked one by one with validateSchema.
func (f *fixture) validateStream(t *testing.T, req *http.Request, resp *http.Response) {
	t.Helper()
	f.validateOpts(t, req, resp, nil, &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: true})
}

// validateSchema checks a JSON value against a component schema.
func (f *fixture) validateSchema(t *testing.T, name string, data []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := f.doc.Components.Schemas[name].Value.VisitJSON(v); err != nil {
		t.Errorf("%s %s does not match the OpenAPI schema: %v", name, data, err)
	}
}

func (f *fixture) validateOpts(t *testing.T, req *http.Request, resp *http.Response, body []byte, opts *openapi3filter.Options) {
	t.Helper()
	route, params, err := f.router.FindRoute(req)
	if err != nil {
		// Paths outside the document must answer 404 problem+json.
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: not in the OpenAPI document (%v) but answered %d", req.Method, req.URL.Path, err, resp.StatusCode)
		}
		checkProblem(t, resp.StatusCode, resp.Header, body)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s -> %d: response does not match the OpenAPI document: %v\nbody: %.600s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

func checkProblem(t *testing.T, status int, h http.Header, body []byte) Problem {
	t.Helper()
	if ct := h.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("status %d: Content-Type %q, want application/problem+json", status, ct)
	}
	var p Problem
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body %.300q: %v", body, err)
	}
	if p.Status != status || p.Title == "" || p.Type == "" || p.Instance == "" {
		t.Errorf("problem %+v for status %d", p, status)
	}
	return p
}

func (r result) problem(t *testing.T, status int, slug string) Problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	p := checkProblem(t, r.status, r.header, r.body)
	if slug != "" && p.Type != ProblemBase+slug {
		t.Errorf("problem type %q, want %q", p.Type, ProblemBase+slug)
	}
	return p
}

// noJobs satisfies Jobs so that a Server registers the job routes.
type noJobs struct{}

func (noJobs) Start(context.Context, node.JobRequest) ([]node.Job, error) { return nil, nil }
func (noJobs) Cancel(context.Context, string, node.JobKind, string) (node.Job, error) {
	return node.Job{}, nil
}
func (noJobs) Report(string, node.JobKind) ([]byte, error) { return nil, nil }

// TestOpenAPIDocumentCoversRoutes: every route a Server with metrics and
// jobs registers (the burn-in and erase routes included), with each of its
// methods, is in the OpenAPI document; the list comes from the server, so
// a new route without documentation fails here.
func TestOpenAPIDocumentCoversRoutes(t *testing.T) {
	f := newFixture(t)
	s := New(Config{Node: f.node, Tokens: NewTokens([]string{readTok}, []string{adminTok}), Metrics: http.NotFoundHandler(), Jobs: noJobs{}})
	for _, want := range []string{"/v1/burnin", "/v1/drives/{id}/erase/report", "/metrics", "/v1/jobs"} {
		if _, ok := s.methods[want]; !ok {
			t.Fatalf("route %s not registered: %v", want, s.methods)
		}
	}
	for p, methods := range s.methods {
		item := f.doc.Paths.Find(p)
		if item == nil {
			t.Errorf("path %s missing from the OpenAPI document", p)
			continue
		}
		for _, m := range methods {
			if m != "HEAD" && item.GetOperation(m) == nil {
				t.Errorf("%s %s missing from the OpenAPI document", m, p)
			}
		}
	}
	r := f.do(t, "GET", "/openapi.json", "", "", nil)
	if r.status != 200 || !bytes.Equal(r.body, OpenAPI) {
		t.Fatalf("GET /openapi.json: %d", r.status)
	}
}

func TestReadEndpoints(t *testing.T) {
	f := newFixture(t)
	for _, tok := range []string{readTok, adminTok} {
		r := f.do(t, "GET", "/v1/inventory", tok, "", nil)
		if r.status != 200 {
			t.Fatalf("inventory: %d %s", r.status, r.body)
		}
		var inv node.Inventory
		if err := json.Unmarshal(r.body, &inv); err != nil {
			t.Fatal(err)
		}
		if inv.Node.Hostname != "node1" || len(inv.Drives) != 3 {
			t.Fatalf("inventory: %+v", inv)
		}
	}
	r := f.do(t, "GET", "/v1/drives", readTok, "", nil)
	var list DriveList
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Drives) != 3 {
		t.Fatalf("drives: %v %s", err, r.body)
	}
	for _, ref := range []string{"0x5000c500deadbeef", "DATA1", "sdb"} {
		r = f.do(t, "GET", "/v1/drives/"+ref, readTok, "", nil)
		var d node.Drive
		if err := json.Unmarshal(r.body, &d); err != nil || r.status != 200 {
			t.Fatalf("drive %s: %d %v", ref, r.status, err)
		}
		if d.ID != "0x5000c500deadbeef" || d.Label.State != node.StateInService || d.Health.Verdict != node.VerdictWarn ||
			d.SMART == nil || *d.SMART.TemperatureCelsius != 58 || len(d.Health.Reasons) != 1 {
			t.Errorf("drive %s: %+v", ref, d)
		}
	}
	f.do(t, "GET", "/v1/drives/nosuch", readTok, "", nil).problem(t, 404, ProbDriveNotFound)
	if r := f.do(t, "GET", "/healthz", "", "", nil); r.status != 200 {
		t.Errorf("healthz %d", r.status)
	}
	if r := f.do(t, "GET", "/readyz", "", "", nil); r.status != 200 {
		t.Errorf("readyz %d", r.status)
	}
	if r := f.do(t, "GET", "/metrics", readTok, "", nil); r.status != 200 {
		t.Errorf("metrics %d", r.status)
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t)
	r := f.do(t, "GET", "/v1/drives", "", "", nil)
	r.problem(t, 401, ProbUnauthorized)
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	r = f.do(t, "GET", "/v1/drives", "not-a-token", "", nil)
	r.problem(t, 401, ProbUnauthorized)
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	f.do(t, "GET", "/metrics", "", "", nil).problem(t, 401, ProbUnauthorized)
	body := []byte(`{"serial":"NEW1"}`)
	f.do(t, "POST", "/v1/drives/NEW1/actions/retire", "", "application/json", body).problem(t, 401, ProbUnauthorized)
	f.do(t, "POST", "/v1/drives/NEW1/actions/retire", readTok, "application/json", body).problem(t, 403, ProbForbidden)
	if d, _ := f.node.Drive("NEW1"); d.Label.State != node.StateNew {
		t.Fatalf("refused request changed the drive: %s", d.Label.State)
	}
	if r := f.do(t, "POST", "/v1/drives/NEW1/actions/retire", adminTok, "application/json", body); r.status != 200 {
		t.Fatalf("admin retire: %d %s", r.status, r.body)
	}
}

func TestNoAdminTokenConfigured(t *testing.T) {
	n := node.New(node.Config{})
	srv := httptest.NewServer(New(Config{Node: n}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/drives")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("dev run without tokens: reads answer %d, want 200", resp.StatusCode)
	}
	resp, err = http.Post(srv.URL+"/v1/drives/x/actions/retire", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("actions without an admin token configured: %d, want 403", resp.StatusCode)
	}
}

func TestActionErrors(t *testing.T) {
	f := newFixture(t)
	post := func(path, ct, body string) result {
		return f.do(t, "POST", path, adminTok, ct, []byte(body))
	}
	const js = "application/json"
	post("/v1/drives/FOREIGN1/actions/adopt", js, `{"serial":`).problem(t, 400, ProbBadRequest)
	post("/v1/drives/FOREIGN1/actions/adopt", js, `{"serial":"FOREIGN1","force":true}`).problem(t, 400, ProbBadRequest)
	post("/v1/drives/FOREIGN1/actions/adopt", js, `{"serial":"FOREIGN1"} {}`).problem(t, 400, ProbBadRequest)
	post("/v1/drives/FOREIGN1/actions/adopt", js, `{"serial":"FOREIGN1","reason":"`+strings.Repeat("x", DefaultBodyLimit)+`"}`).problem(t, 413, ProbTooLarge)
	post("/v1/drives/FOREIGN1/actions/adopt", "text/plain", `{"serial":"FOREIGN1"}`).problem(t, 415, ProbUnsupportedMedia)
	post("/v1/drives/FOREIGN1/actions/adopt", js, `{}`).problem(t, 422, ProbSerialRequired)
	post("/v1/drives/FOREIGN1/actions/adopt", js, `{"serial":"OTHER"}`).problem(t, 409, ProbSerialMismatch)
	post("/v1/drives/DATA1/actions/drain", js, ``).problem(t, 422, ProbSerialRequired)
	post("/v1/drives/DATA1/actions/retire", js, `{"serial":"DATA1"}`).problem(t, 409, ProbInService)
	post("/v1/drives/NEW1/actions/drain", js, `{}`).problem(t, 409, ProbInvalidTransition)
	post("/v1/drives/NEW1/actions/locate-on", js, `{}`).problem(t, 409, ProbNoEnclosure)
	post("/v1/drives/NOPE/actions/drain", js, `{}`).problem(t, 404, ProbDriveNotFound)
	post("/v1/drives/NEW1/actions/explode", js, `{}`).problem(t, 404, ProbUnknownAction)
	for _, ref := range []string{"FOREIGN1", "DATA1", "NEW1"} {
		d, _ := f.node.Drive(ref)
		if len(d.Label.History) != 0 {
			t.Errorf("%s: refused requests left history %+v", ref, d.Label.History)
		}
	}
	r := post("/v1/drives/FOREIGN1/actions/adopt", js, `{"serial":"FOREIGN1","reason":"ticket 42"}`)
	var d node.Drive
	if err := json.Unmarshal(r.body, &d); err != nil || r.status != 200 {
		t.Fatalf("adopt: %d %s", r.status, r.body)
	}
	if d.Label.State != node.StateNew || len(d.Label.History) != 1 || d.Label.History[0].Reason != "ticket 42" || d.Label.History[0].Actor != "api:admin" {
		t.Errorf("after adopt: %+v", d.Label)
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	f := newFixture(t)
	f.do(t, "GET", "/v2/nothing", readTok, "", nil).problem(t, 404, ProbNotFound)
	f.do(t, "GET", "/", "", "", nil).problem(t, 404, ProbNotFound)
	r := f.do(t, "DELETE", "/v1/drives/NEW1", adminTok, "", nil)
	r.problem(t, 405, ProbMethodNotAllowed)
	if r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow %q", r.header.Get("Allow"))
	}
}

// sse reads Server-Sent Events from a stream.
type sse struct {
	sc *bufio.Scanner
}

type sseMsg struct {
	id, event, data string
	comment         bool
}

func (s *sse) next(t *testing.T) sseMsg {
	t.Helper()
	var m sseMsg
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if m.id != "" || m.event != "" || m.data != "" || m.comment {
				return m
			}
		case strings.HasPrefix(line, ":"):
			m.comment = true
		case strings.HasPrefix(line, "id: "):
			m.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			m.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			m.data = line[6:]
		}
	}
	t.Fatalf("stream ended: %v", s.sc.Err())
	return m
}

// nextEvent skips retry lines and heartbeats.
func (s *sse) nextEvent(t *testing.T) sseMsg {
	t.Helper()
	for {
		m := s.next(t)
		if m.event != "" {
			return m
		}
	}
}

func (f *fixture) stream(t *testing.T, lastID string) (*sse, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+readTok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	f.validateStream(t, req, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &sse{sc: bufio.NewScanner(resp.Body)}, resp
}

func TestEventStream(t *testing.T) {
	f := newFixture(t)
	s, _ := f.stream(t, "")
	// The first message is the retry hint; wait for a heartbeat so the
	// subscription is known to be live before acting.
	for m := s.next(t); !m.comment; m = s.next(t) {
	}
	r := f.do(t, "POST", "/v1/drives/FOREIGN1/actions/adopt", adminTok, "application/json", []byte(`{"serial":"FOREIGN1","reason":"rma"}`))
	if r.status != 200 {
		t.Fatalf("adopt: %d %s", r.status, r.body)
	}
	m := s.nextEvent(t)
	if m.event != node.EventLifecycle {
		t.Fatalf("event %+v", m)
	}
	var ev node.Event
	if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
		t.Fatal(err)
	}
	var ld node.LifecycleData
	if err := json.Unmarshal(ev.Data, &ld); err != nil {
		t.Fatal(err)
	}
	f.validateSchema(t, "Event", []byte(m.data))
	f.validateSchema(t, "LifecycleData", ev.Data)
	if fmt.Sprint(ev.ID) != m.id || ev.Drive != "FOREIGN1" || ld.From != node.StateForeign || ld.To != node.StateNew || ld.Reason != "rma" {
		t.Fatalf("lifecycle event %+v %+v", ev, ld)
	}
	// Resume: a client that saw the drive.added events gets the adopt
	// event again from the ring.
	s2, _ := f.stream(t, fmt.Sprint(ev.ID-1))
	m2 := s2.nextEvent(t)
	if m2.id != m.id || m2.event != node.EventLifecycle {
		t.Fatalf("resumed stream: %+v", m2)
	}
	// A bad Last-Event-ID is a 400 problem.
	f.do(t, "GET", "/v1/events?last_event_id=abc", readTok, "", nil).problem(t, 400, ProbBadRequest)
}

func TestEventStreamGap(t *testing.T) {
	n := node.New(node.Config{EventRing: 2})
	for i := 0; i < 5; i++ {
		n.Events().Publish(node.EventDriveAdded, fmt.Sprint("d", i), time.Now(), node.DriveData{Name: fmt.Sprint("d", i)})
	}
	srv := httptest.NewServer(New(Config{Node: n}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/events", nil)
	req.Header.Set("Last-Event-ID", "1")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := &sse{sc: bufio.NewScanner(resp.Body)}
	var got []string
	for len(got) < 3 {
		m := s.nextEvent(t)
		got = append(got, m.event+"/"+m.id)
	}
	if fmt.Sprint(got) != "[gap/ drive.added/4 drive.added/5]" {
		t.Fatalf("after a gap: %v", got)
	}
}

// TestHandleAddsGuardedRoutes: later features (burn-in, erase) add their
// endpoints with Handle and get the same auth, 405 and problem handling.
func TestHandleAddsGuardedRoutes(t *testing.T) {
	n := node.New(node.Config{})
	s := New(Config{Node: n, Tokens: NewTokens([]string{readTok}, []string{adminTok})})
	s.Handle("POST", "/v1/drives/{id}/burnin", RoleAdmin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusAccepted, map[string]string{"drive": r.PathValue("id"), "role": RoleOf(r.Context()).String()})
	}))
	srv := httptest.NewServer(s)
	defer srv.Close()
	try := func(method, tok string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+"/v1/drives/sdq/burnin", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := try("POST", ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := try("POST", readTok); code != 403 {
		t.Errorf("read token: %d", code)
	}
	if code, body := try("POST", adminTok); code != 202 || !strings.Contains(body, `"role": "admin"`) || !strings.Contains(body, `"drive": "sdq"`) {
		t.Errorf("admin token: %d %s", code, body)
	}
	if code, _ := try("GET", adminTok); code != 405 {
		t.Errorf("GET on a POST route: %d", code)
	}
}
