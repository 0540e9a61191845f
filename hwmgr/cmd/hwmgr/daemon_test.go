package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/stowage/stowage/hwmgr/api"
	"github.com/stowage/stowage/hwmgr/node"
	"github.com/stowage/stowage/qemu/loopdev"
)

// needRoot skips a test that needs root (loop devices) when not root,
// unless CI is set: under CI it must run.
func needRoot(t *testing.T) { loopdev.NeedRoot(t) }

// loopDevice attaches a new loop device (qemu/loopdev) over a sparse file
// of size bytes in dir (the daemon counts loop devices backed below dir)
// and detaches it at cleanup, or when detach is called.
func loopDevice(t *testing.T, dir, name string, size int64, flags ...string) (dev string, detach func()) {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dev = loopdev.Attach(t, path, flags...)
	var once sync.Once
	return dev, func() { once.Do(func() { loopdev.Detach(t, dev) }) }
}

type testDaemon struct {
	url    string
	cancel context.CancelFunc
	done   chan error
	d      *daemon
}

const (
	tRead  = "e2e-read-token"
	tAdmin = "e2e-admin-token"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// startDaemon runs the real daemon in-process on 127.0.0.1 with loop
// devices below dir and waits for its first scan.
func startDaemon(t *testing.T, dir string, mod func(*options)) *testDaemon {
	t.Helper()
	o := defaultOptions()
	o.IncludeLoop, o.LoopBackingDir = true, dir
	o.KmsgPath = ""
	o.SmartInterval, o.StatsInterval, o.RescanInterval = time.Hour, time.Hour, time.Hour
	o.ReadTokens, o.AdminTokens = []string{tRead}, []string{tAdmin}
	o.ShutdownTimeout = 5 * time.Second
	if _, err := exec.LookPath("smartctl"); err != nil {
		o.Smartctl = ""
	}
	if mod != nil {
		mod(&o)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &testDaemon{url: "http://" + l.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	started := make(chan *daemon, 1)
	log := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { td.done <- runDaemon(ctx, o, l, log, func(d *daemon) { started <- d }) }()
	select {
	case td.d = <-started:
	case err := <-td.done:
		t.Fatalf("daemon exited before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("daemon not ready within 60s")
	}
	t.Cleanup(func() { td.stop(t) })
	return td
}

func (td *testDaemon) stop(t *testing.T) {
	t.Helper()
	td.cancel()
	select {
	case err := <-td.done:
		if err != nil {
			t.Errorf("daemon: %v", err)
		}
		td.done <- nil // later stops return at once
	case <-time.After(30 * time.Second):
		t.Error("daemon did not stop within 30s")
	}
}

// openAPI loads the served document's router for response validation.
func openAPI(t *testing.T) routers.Router {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatal(err)
	}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// get fetches a JSON document, checks it against the OpenAPI document and
// decodes it into v.
func (td *testDaemon) request(t *testing.T, router routers.Router, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, td.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if router != nil {
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Body: io.NopCloser(bytes.NewReader(b)), Options: &openapi3filter.Options{IncludeResponseStatus: true},
		}); err != nil {
			t.Errorf("%s %s -> %d does not match the OpenAPI document: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, b
}

// events opens the event stream and returns a channel of parsed events.
func (td *testDaemon) events(t *testing.T) <-chan node.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", td.url+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+tRead)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	ch := make(chan node.Event, 64)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev node.Event
				if json.Unmarshal([]byte(data), &ev) == nil && ev.ID > 0 {
					ch <- ev
				}
			}
		}
	}()
	return ch
}

func waitEvent(t *testing.T, ch <-chan node.Event, what string, match func(node.Event) bool) node.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event stream ended waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within 30s", what)
		}
	}
}

// TestDaemonLoopDevices runs the real daemon (discovery, smartctl, API,
// metrics, event stream, uevent watcher) against real loop devices.
func TestDaemonLoopDevices(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	devA, _ := loopDevice(t, dir, "a.img", 32<<20)
	devB, detachB := loopDevice(t, dir, "b.img", 48<<20)
	td := startDaemon(t, dir, nil)
	router := openAPI(t)

	status, body := td.request(t, router, "GET", "/v1/drives", tRead, "")
	if status != 200 {
		t.Fatalf("drives: %d %s", status, body)
	}
	var list api.DriveList
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	// The host's own disks count too; the loop devices are ours.
	got := map[string]uint64{}
	for _, d := range list.Drives {
		if strings.HasPrefix(d.Identity.Name, "loop") {
			got[d.Identity.DevPath] = d.Identity.SizeBytes
			if d.Identity.Transport != "loop" {
				t.Errorf("%s: transport %q", d.Identity.DevPath, d.Identity.Transport)
			}
		}
	}
	if len(got) != 2 || got[devA] != 32<<20 || got[devB] != 48<<20 {
		t.Fatalf("drives %v, want %s (32 MiB) and %s (48 MiB)", got, devA, devB)
	}
	nameA := filepath.Base(devA)
	status, body = td.request(t, router, "GET", "/v1/drives/"+nameA, tRead, "")
	if status != 200 {
		t.Fatalf("drive %s: %d %s", nameA, status, body)
	}
	td.request(t, router, "GET", "/v1/inventory", tRead, "")
	if status, _ := td.request(t, router, "GET", "/v1/drives", "", ""); status != 401 {
		t.Errorf("no token: %d", status)
	}
	if status, _ := td.request(t, router, "POST", "/v1/drives/"+nameA+"/actions/locate-on", tRead, "{}"); status != 403 {
		t.Errorf("read token on an action: %d", status)
	}
	// A loop device has no enclosure slot.
	if status, body := td.request(t, router, "POST", "/v1/drives/"+nameA+"/actions/locate-on", tAdmin, "{}"); status != 409 {
		t.Errorf("locate on a loop device: %d %s", status, body)
	}

	// I/O statistics: 4 MiB written with O_DIRECT show up in the counters
	// and as a write rate over the window since the startup sample.
	if out, err := exec.Command("dd", "if=/dev/zero", "of="+devA, "bs=1M", "count=4", "oflag=direct").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v: %s", err, out)
	}
	if err := td.d.node.PollStats(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d, _ := td.d.node.Drive(nameA); d.Stats == nil || d.Stats.WriteBytesTotal < 4<<20 || d.Stats.WriteIOPS <= 0 || d.Stats.WriteBytesPerSecond <= 0 {
		t.Errorf("stats of %s after writing 4 MiB: %+v", nameA, d.Stats)
	}

	// The scrape of the live daemon is lint-clean and counts the drives.
	status, body = td.request(t, nil, "GET", "/metrics", tRead, "")
	if status != 200 {
		t.Fatalf("metrics: %d", status)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if want := fmt.Sprintf("stowage_hwmgr_drives %d\n", len(list.Drives)); !bytes.Contains(body, []byte(want)) {
		t.Errorf("metrics lack %s", want)
	}
	if !bytes.Contains(body, []byte(`stowage_drive_size_bytes{device="`+nameA+`",drive="`+nameA+`"} 3.3554432e+07`)) {
		t.Errorf("metrics lack the size of %s", nameA)
	}

	// Hot-plug: detaching a loop device and attaching another reach the
	// event stream through kernel uevents (the periodic rescan is 1h).
	evs := td.events(t)
	detachB()
	waitEvent(t, evs, "drive.removed", func(ev node.Event) bool {
		var dd node.DriveData
		_ = json.Unmarshal(ev.Data, &dd)
		return ev.Type == node.EventDriveRemoved && "/dev/"+dd.Name == devB
	})
	devC, _ := loopDevice(t, dir, "c.img", 16<<20)
	waitEvent(t, evs, "drive.added", func(ev node.Event) bool {
		var dd node.DriveData
		_ = json.Unmarshal(ev.Data, &dd)
		return ev.Type == node.EventDriveAdded && "/dev/"+dd.Name == devC
	})
	if d, ok := td.d.node.Drive(filepath.Base(devC)); !ok || d.Identity.SizeBytes != 16<<20 {
		t.Errorf("hot-plugged drive: %+v %v", d.Identity, ok)
	}
}

// TestDaemonNotifiesSystemd checks the service protocol of the real
// daemon: READY=1 once the first scan is done, WATCHDOG=1 pings at half of
// WATCHDOG_USEC, STOPPING=1 on shutdown.
func TestDaemonNotifiesSystemd(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "hwmgr-notify")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	path := filepath.Join(sockDir, "n")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	recv := func() string {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 1024)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("notify socket: %v", err)
		}
		return string(buf[:n])
	}
	td := startDaemon(t, t.TempDir(), func(o *options) { o.Smartctl = ""; o.NoUevents = true })
	if msg := recv(); !strings.HasPrefix(msg, "READY=1\nSTATUS=serving ") {
		t.Fatalf("first notification %q, want READY=1", msg)
	}
	if msg := recv(); msg != "WATCHDOG=1" {
		t.Fatalf("second notification %q, want WATCHDOG=1", msg)
	}
	td.stop(t)
	for {
		msg := recv()
		if msg == "STOPPING=1" {
			break
		}
		if msg != "WATCHDOG=1" {
			t.Fatalf("notification %q, want STOPPING=1", msg)
		}
	}
}

func testingCI() bool { return os.Getenv("CI") != "" }
