package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
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
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/stowage/stowage/osd/volume"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// memVolume is a 4+2 volume over in-memory devices (the HTTP layer is
// what these tests exercise; loop devices are in osd/cmd/osd's tests).
func memVolume(t testing.TB) *volume.Volume {
	t.Helper()
	var devs []zone.Device
	for i := range 6 {
		m, err := zone.NewMem(zone.MemOptions{ZoneSize: 4 << 20, NumZones: 40, Path: fmt.Sprintf("mem%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, m)
	}
	v, err := volume.Create(context.Background(), devs, volume.Options{ZonesPerExtent: 2, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

type fixture struct {
	srv    *httptest.Server
	api    *Server
	vol    *volume.Volume
	router routers.Router
	doc    *openapi3.T
}

func newFixture(t testing.TB, cfg Config, to Timeouts) *fixture {
	t.Helper()
	return newFixtureOn(t, memVolume(t), cfg, to)
}

// loopVolume is a 4+2 volume on 6 real loop devices.
func loopVolume(t testing.TB) *volume.Volume {
	t.Helper()
	var devs []zone.Device
	for range 6 {
		d, err := zone.OpenEmulated(loopdev.Zero(t, 96<<20), zone.EmulatedOptions{ZoneSize: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		devs = append(devs, d)
	}
	v, err := volume.Create(context.Background(), devs, volume.Options{ZonesPerExtent: 2, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func newFixtureOn(t testing.TB, v *volume.Volume, cfg Config, to Timeouts) *fixture {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = v
	}
	if cfg.Status == nil {
		cfg.Status = func() Status {
			vs := v.Status()
			return Status{Code: fmt.Sprintf("%d+%d", vs.K, vs.M), Volumes: []VolumeStatus{{ID: vs.ID.String(), K: vs.K, M: vs.M, State: VolumeHealthy, Writable: true}},
				Damage: DamageCounters{Found: DamageMap{"corrupt": 1}, Repaired: DamageMap{"corrupt": 1}}, DrivesFailed: 1,
				Scrub: ScrubStatus{Running: true, Progress: Progress{Done: 1, Total: 4, Ratio: 0.25, ETASeconds: 30},
					Findings: DamageMap{"corrupt": 3}, LastPassFindings: DamageMap{"corrupt": 1}}}
		}
	}
	cfg.Logger = quiet()
	api := New(cfg)
	srv := httptest.NewUnstartedServer(api)
	srv.Config = HTTPServer(api, to, quiet())
	srv.Start()
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
	return &fixture{srv: srv, api: api, vol: v, router: router, doc: doc}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (f *fixture) do(t testing.TB, method, path string, hdr map[string]string, body []byte) result {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
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
	f.validate(t, req, resp.StatusCode, resp.Header, b)
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

// validate checks a response against the OpenAPI document.
func (f *fixture) validate(t testing.TB, req *http.Request, status int, h http.Header, body []byte) {
	t.Helper()
	route, params, err := f.router.FindRoute(req)
	if err != nil || status == http.StatusMethodNotAllowed || (status == http.StatusNotFound && bytes.Contains(body, []byte(ProblemBase+ProbNotFound+`"`))) {
		// No route (404 not-found) or no such method (405): the router
		// may match such paths loosely (a trailing slash), so these are
		// checked against the document's Problem schema instead.
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: not in the OpenAPI document (%v) but answered %d", req.Method, req.URL.Path, err, status)
		}
		checkProblem(t, status, h, body)
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		if err := f.doc.Components.Schemas["Problem"].Value.VisitJSON(v); err != nil {
			t.Errorf("%s does not match the Problem schema: %v", body, err)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: h,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s -> %d: response does not match the OpenAPI document: %v\nbody: %.400s", req.Method, req.URL.Path, status, err, body)
	}
	if status >= 400 && req.Method != http.MethodHead {
		checkProblem(t, status, h, body)
	}
}

func checkProblem(t testing.TB, status int, h http.Header, body []byte) Problem {
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
	if p.Status != status || p.Title == "" || !strings.HasPrefix(p.Type, ProblemBase) || p.Instance == "" {
		t.Errorf("problem %+v for status %d", p, status)
	}
	return p
}

func (r result) problem(t testing.TB, status int, slug string) Problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	p := checkProblem(t, r.status, r.header, r.body)
	if p.Type != ProblemBase+slug {
		t.Errorf("problem type %q, want %q", p.Type, ProblemBase+slug)
	}
	return p
}

func block(seed uint64, n int) ([]byte, string) {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	s := sha256.Sum256(b)
	return b, FormatKey(s)
}

func TestOpenAPIDocumentCoversRoutes(t *testing.T) {
	f := newFixture(t, Config{}, Timeouts{})
	for pattern := range f.api.methods {
		if f.doc.Paths.Find(pattern) == nil {
			t.Errorf("route %s missing from the OpenAPI document", pattern)
		}
	}
	for _, p := range f.doc.Paths.InMatchingOrder() {
		if _, ok := f.api.methods[p]; !ok {
			t.Errorf("OpenAPI path %s is not served", p)
		}
	}
	r := f.do(t, "GET", "/openapi.json", nil, nil)
	if r.status != 200 || !bytes.Equal(r.body, OpenAPI) {
		t.Fatalf("GET /openapi.json: %d", r.status)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := f.do(t, "GET", p, nil, nil); r.status != 200 {
			t.Errorf("%s: %d", p, r.status)
		}
	}
}

func TestPutGetHeadDelete(t *testing.T) {
	f := newFixture(t, Config{}, Timeouts{})
	data, key := block(1, 1<<20+17)
	path := "/v1/blocks/" + key
	r := f.do(t, "PUT", path, nil, data)
	if r.status != http.StatusCreated || r.header.Get("ETag") != `"`+key+`"` {
		t.Fatalf("first PUT: %d %s", r.status, r.body)
	}
	var pr PutResult
	if err := json.Unmarshal(r.body, &pr); err != nil || !pr.Created || pr.Size != len(data) || pr.Key != key {
		t.Fatalf("PUT result %s (%v)", r.body, err)
	}
	if r := f.do(t, "PUT", path, nil, data); r.status != http.StatusOK {
		t.Fatalf("second PUT: %d %s, want 200", r.status, r.body)
	}
	// Upper-case keys are the same key.
	if r := f.do(t, "PUT", "/v1/blocks/"+strings.ToUpper(key), nil, data); r.status != http.StatusOK {
		t.Fatalf("PUT upper-case key: %d", r.status)
	}
	r = f.do(t, "GET", path, nil, nil)
	if r.status != 200 || !bytes.Equal(r.body, data) || r.header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("GET: %d, %d bytes", r.status, len(r.body))
	}
	r = f.do(t, "HEAD", path, nil, nil)
	if r.status != 200 || r.header.Get("Content-Length") != fmt.Sprint(len(data)) || len(r.body) != 0 {
		t.Fatalf("HEAD: %d %v", r.status, r.header)
	}
	size := int64(len(data))
	for _, c := range []struct {
		rng        string
		start, end int64
	}{
		{"bytes=0-0", 0, 0},
		{"bytes=10-19", 10, 19},
		{"bytes=1000-", 1000, size - 1},
		{"bytes=-100", size - 100, size - 1},
		{"bytes=-99999999", 0, size - 1},
		{"bytes=5-99999999", 5, size - 1},
		{"bytes=99999999-, 3-4", 3, 4},
	} {
		r := f.do(t, "GET", path, map[string]string{"Range": c.rng}, nil)
		want := fmt.Sprintf("bytes %d-%d/%d", c.start, c.end, size)
		if r.status != http.StatusPartialContent || r.header.Get("Content-Range") != want || !bytes.Equal(r.body, data[c.start:c.end+1]) {
			t.Errorf("Range %s: %d %q, %d bytes; want 206 %q", c.rng, r.status, r.header.Get("Content-Range"), len(r.body), want)
		}
	}
	// Several ranges: the whole block.
	if r := f.do(t, "GET", path, map[string]string{"Range": "bytes=0-1,5-6"}, nil); r.status != 200 || !bytes.Equal(r.body, data) {
		t.Errorf("multi-range: %d", r.status)
	}
	// Another unit: ignored.
	if r := f.do(t, "GET", path, map[string]string{"Range": "items=0-1"}, nil); r.status != 200 {
		t.Errorf("Range items=: %d", r.status)
	}
	// If-Range with another validator: the whole block.
	if r := f.do(t, "GET", path, map[string]string{"Range": "bytes=0-1", "If-Range": `"other"`}, nil); r.status != 200 || len(r.body) != len(data) {
		t.Errorf("If-Range mismatch: %d", r.status)
	}
	if r := f.do(t, "GET", path, map[string]string{"If-None-Match": `"x", "` + key + `"`}, nil); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Errorf("If-None-Match: %d", r.status)
	}
	for _, rng := range []string{"bytes=2000000-", "bytes=abc", "bytes=5-1", "bytes=", "bytes=-0", "bytes", "bytes=1-2-3", "bytes=" + strings.Repeat("1-2,", MaxRanges+1)} {
		r := f.do(t, "GET", path, map[string]string{"Range": rng}, nil)
		r.problem(t, http.StatusRequestedRangeNotSatisfiable, ProbBadRange)
		if got := r.header.Get("Content-Range"); got != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("Range %q: Content-Range %q", rng, got)
		}
	}
	if r := f.do(t, "DELETE", path, nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	f.do(t, "GET", path, nil, nil).problem(t, http.StatusNotFound, ProbBlockNotFound)
	f.do(t, "DELETE", path, nil, nil).problem(t, http.StatusNotFound, ProbBlockNotFound)
	if r := f.do(t, "HEAD", path, nil, nil); r.status != http.StatusNotFound || len(r.body) != 0 {
		t.Fatalf("HEAD after delete: %d", r.status)
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t, Config{}, Timeouts{})
	data, key := block(2, 1000)
	other, _ := block(3, 1000)
	for _, bad := range []string{"abc", strings.Repeat("g", 64), strings.Repeat("a", 63), strings.Repeat("a", 65), "%00" + strings.Repeat("a", 63)} {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			f.do(t, m, "/v1/blocks/"+bad, nil, data).problem(t, http.StatusBadRequest, ProbBadKey)
		}
	}
	// Wrong key: 400 and nothing stored.
	f.do(t, "PUT", "/v1/blocks/"+key, nil, other).problem(t, http.StatusBadRequest, ProbKeyMismatch)
	if r := f.do(t, "HEAD", "/v1/blocks/"+key, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("after a mismatched PUT: HEAD %d", r.status)
	}
	if keys, err := f.vol.List(context.Background(), Key{}, 10); err != nil || len(keys) != 0 {
		t.Fatalf("after a mismatched PUT the volume lists %d keys (%v)", len(keys), err)
	}
	// Empty.
	empty := sha256.Sum256(nil)
	f.do(t, "PUT", "/v1/blocks/"+FormatKey(empty), nil, []byte{}).problem(t, http.StatusBadRequest, ProbEmpty)
	// Over 4 MiB, with a Content-Length and chunked.
	big := make([]byte, MaxBlock+1)
	bigKey := FormatKey(sha256.Sum256(big))
	f.do(t, "PUT", "/v1/blocks/"+bigKey, nil, big).problem(t, http.StatusRequestEntityTooLarge, ProbTooLarge)
	req, _ := http.NewRequest("PUT", f.srv.URL+"/v1/blocks/"+bigKey, io.MultiReader(bytes.NewReader(big))) // no length: chunked
	req.ContentLength = -1
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	f.validate(t, req, resp.StatusCode, resp.Header, b)
	result{resp.StatusCode, resp.Header, b}.problem(t, http.StatusRequestEntityTooLarge, ProbTooLarge)
	// Exactly 4 MiB is fine.
	max := big[:MaxBlock]
	if r := f.do(t, "PUT", "/v1/blocks/"+FormatKey(sha256.Sum256(max)), nil, max); r.status != http.StatusCreated {
		t.Fatalf("4 MiB PUT: %d %s", r.status, r.body)
	}
	// Unknown paths and methods.
	for _, p := range []string{"/", "/v1", "/v1/blocks/", "/v1/blocks/" + key + "/x", "/v2/blocks", "/../etc/passwd", "/v1/status/x"} {
		f.do(t, "GET", p, nil, nil).problem(t, http.StatusNotFound, ProbNotFound)
	}
	r := f.do(t, "POST", "/v1/blocks/"+key, nil, data)
	r.problem(t, http.StatusMethodNotAllowed, ProbMethodNotAllowed)
	if a := r.header.Get("Allow"); a != "GET, HEAD, PUT, DELETE" {
		t.Errorf("Allow %q", a)
	}
	f.do(t, "DELETE", "/v1/status", nil, nil).problem(t, http.StatusMethodNotAllowed, ProbMethodNotAllowed)
	f.do(t, "PUT", "/v1/blocks", nil, data).problem(t, http.StatusMethodNotAllowed, ProbMethodNotAllowed)
	// Bad list queries.
	for _, q := range []string{"limit=0", "limit=10001", "limit=x", "after=zz", "foo=1", "limit=1&limit=2"} {
		f.do(t, "GET", "/v1/blocks?"+q, nil, nil).problem(t, http.StatusBadRequest, ProbBadQuery)
	}
	// Admin without an Admin: 501; with no admin token: 403 first.
	f.do(t, "POST", "/v1/scrub", nil, nil).problem(t, http.StatusForbidden, ProbForbidden)
}

// rawRequest writes req on a fresh connection, optionally half-closes it,
// and returns what the server answered (nil: it closed the connection
// without a response).
func rawRequest(t *testing.T, addr, req string, closeWrite bool, wait time.Duration) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		c.(*net.TCPConn).CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

func TestTruncatedBodyAndSlowClients(t *testing.T) {
	f := newFixture(t, Config{}, Timeouts{ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond})
	addr := f.srv.Listener.Addr().String()
	_, key := block(4, 1000)
	head := fmt.Sprintf("PUT /v1/blocks/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", key)
	check := func(name string, resp *http.Response, status int, slug string) {
		t.Helper()
		if resp == nil {
			t.Fatalf("%s: no response", name)
		}
		b, _ := io.ReadAll(resp.Body)
		req, _ := http.NewRequest("PUT", "http://"+addr+"/v1/blocks/"+key, nil)
		f.validate(t, req, resp.StatusCode, resp.Header, b)
		result{resp.StatusCode, resp.Header, b}.problem(t, status, slug)
	}
	// The body ends (connection half-closed) after 10 of 1000 bytes.
	check("truncated", rawRequest(t, addr, head+strings.Repeat("x", 10), true, 5*time.Second), http.StatusBadRequest, ProbTruncated)
	// The body stalls: 408 once the read timeout passes.
	check("slow body", rawRequest(t, addr, head+strings.Repeat("x", 10), false, 5*time.Second), http.StatusRequestTimeout, ProbTimeout)
	if r := f.do(t, "HEAD", "/v1/blocks/"+key, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("after a truncated PUT: HEAD %d", r.status)
	}
	// Headers that never finish: the connection is closed, no response.
	if resp := rawRequest(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n", false, 5*time.Second); resp != nil {
		t.Fatalf("slow headers: got a %d response, want the connection closed", resp.StatusCode)
	}
	// Garbage instead of HTTP: 400 from net/http, never a panic.
	if resp := rawRequest(t, addr, "\x00\x01garbage\r\n\r\n", false, 5*time.Second); resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("garbage request: %v", resp)
	}
	// The server still works.
	if r := f.do(t, "GET", "/healthz", nil, nil); r.status != 200 {
		t.Fatal("healthz after slow clients")
	}
}

func TestList(t *testing.T) {
	f := newFixture(t, Config{}, Timeouts{})
	var keys []string
	for i := range 25 {
		data, k := block(uint64(100+i), 100+i)
		f.do(t, "PUT", "/v1/blocks/"+k, nil, data)
		keys = append(keys, k)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		r := f.do(t, "GET", "/v1/blocks?limit=7&after="+after, nil, nil)
		var lr ListResult
		if err := json.Unmarshal(r.body, &lr); err != nil || r.status != 200 {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		got = append(got, lr.Keys...)
		if lr.Next == "" {
			break
		}
		if lr.Next != lr.Keys[len(lr.Keys)-1] {
			t.Fatalf("next %s is not the page's last key", lr.Next)
		}
		after = lr.Next
	}
	if len(got) != len(keys) {
		t.Fatalf("listed %d keys, stored %d", len(got), len(keys))
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			t.Fatalf("not sorted at %d", i)
		}
	}
	r := f.do(t, "GET", "/v1/blocks", nil, nil)
	var lr ListResult
	json.Unmarshal(r.body, &lr)
	if len(lr.Keys) != 25 || lr.Next != "" {
		t.Fatalf("default page: %d keys, next %q", len(lr.Keys), lr.Next)
	}
}

func TestAuth(t *testing.T) {
	const readTok, adminTok = "read-0123456789", "admin-0123456789"
	f := newFixture(t, Config{Tokens: NewTokens([]string{readTok}, []string{adminTok})}, Timeouts{})
	data, key := block(5, 100)
	path := "/v1/blocks/" + key
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	f.do(t, "PUT", path, nil, data).problem(t, http.StatusUnauthorized, ProbUnauthorized)
	f.do(t, "PUT", path, bearer(readTok), data).problem(t, http.StatusForbidden, ProbForbidden)
	f.do(t, "PUT", path, bearer("wrong"), data).problem(t, http.StatusUnauthorized, ProbUnauthorized)
	f.do(t, "PUT", path, map[string]string{"Authorization": "Basic eDp5"}, data).problem(t, http.StatusUnauthorized, ProbUnauthorized)
	if r := f.do(t, "PUT", path, bearer(adminTok), data); r.status != http.StatusCreated {
		t.Fatalf("admin PUT: %d", r.status)
	}
	f.do(t, "GET", path, nil, nil).problem(t, http.StatusUnauthorized, ProbUnauthorized)
	for _, tok := range []string{readTok, adminTok} {
		if r := f.do(t, "GET", path, bearer(tok), nil); r.status != 200 {
			t.Fatalf("GET with %s: %d", tok, r.status)
		}
		if r := f.do(t, "GET", "/metrics", bearer(tok), nil); r.status != 200 {
			t.Fatalf("metrics with %s: %d", tok, r.status)
		}
	}
	f.do(t, "GET", "/v1/status", nil, nil).problem(t, http.StatusUnauthorized, ProbUnauthorized)
	f.do(t, "DELETE", path, bearer(readTok), nil).problem(t, http.StatusForbidden, ProbForbidden)
	f.do(t, "POST", "/v1/scrub", bearer(readTok), nil).problem(t, http.StatusForbidden, ProbForbidden)
	f.do(t, "POST", "/v1/scrub", bearer(adminTok), nil).problem(t, http.StatusNotImplemented, ProbUnavailable)
	if r := f.do(t, "GET", "/healthz", nil, nil); r.status != 200 {
		t.Fatal("healthz needs no token")
	}
}

func TestStatusAndMetrics(t *testing.T) {
	f := newFixture(t, Config{}, Timeouts{})
	data, key := block(6, 5000)
	put := f.do(t, "PUT", "/v1/blocks/"+key, nil, data)
	f.do(t, "GET", "/v1/blocks/"+key, nil, nil)
	f.do(t, "GET", "/nope", nil, nil)
	r := f.do(t, "GET", "/v1/status", nil, nil)
	var st Status
	if err := json.Unmarshal(r.body, &st); err != nil || st.Code != "4+2" || len(st.Volumes) != 1 {
		t.Fatalf("status %s (%v)", r.body, err)
	}
	r = f.do(t, "GET", "/metrics", nil, nil)
	body := string(r.body)
	for _, want := range []string{
		`stowage_osd_http_requests_total{code="201",method="PUT",route="/v1/blocks/{key}"} 1`,
		`stowage_osd_http_requests_total{code="404",method="GET",route="other"} 1`,
		`stowage_osd_http_request_body_bytes_total{route="/v1/blocks/{key}"} 5000`,
		fmt.Sprintf(`stowage_osd_http_response_body_bytes_total{route="/v1/blocks/{key}"} %d`, 5000+len(put.body)),
		`stowage_osd_http_request_duration_seconds_count{method="GET",route="/v1/blocks/{key}"} 1`,
		`stowage_osd_volumes{state="healthy"} 1`,
		`stowage_osd_volumes{state="degraded"} 0`,
		`stowage_osd_damage_found_total{kind="corrupt"} 1`,
		`stowage_osd_scrub_progress_ratio 0.25`,
		`stowage_osd_scrub_eta_seconds 30`,
		`stowage_osd_scrub_findings_total{kind="corrupt"} 3`,
		`stowage_osd_scrub_last_pass_findings{kind="corrupt"} 1`,
		`stowage_osd_damage_repaired_total{kind="corrupt"} 1`,
		`stowage_osd_drives_failed_total 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestConcurrent runs PUT, GET and DELETE from many goroutines (meant for
// -race) over HTTP onto a volume on 6 real loop devices: every response is
// what the sequential model says.
func TestConcurrent(t *testing.T) {
	loopdev.NeedRoot(t)
	f := newFixtureOn(t, loopVolume(t), Config{}, Timeouts{})
	const workers, per = 8, 12
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				data, key := block(uint64(w*1000+i), 1000+w*7000+i)
				path := "/v1/blocks/" + key
				if r := f.do(t, "PUT", path, nil, data); r.status != http.StatusCreated {
					t.Errorf("PUT %d", r.status)
					return
				}
				if r := f.do(t, "GET", path, nil, nil); r.status != 200 || !bytes.Equal(r.body, data) {
					t.Errorf("GET %d", r.status)
					return
				}
				if i%3 == 0 {
					if r := f.do(t, "DELETE", path, nil, nil); r.status != http.StatusNoContent {
						t.Errorf("DELETE %d", r.status)
						return
					}
					if r := f.do(t, "GET", path, nil, nil); r.status != http.StatusNotFound {
						t.Errorf("GET after DELETE %d", r.status)
					}
				}
				f.do(t, "GET", "/v1/blocks?limit=5", nil, nil)
			}
		})
	}
	wg.Wait()
	keys, err := f.vol.List(context.Background(), Key{}, 1000)
	if err != nil || len(keys) != workers*per*2/3 {
		t.Fatalf("%d keys left (%v), want %d", len(keys), err, workers*per*2/3)
	}
}
