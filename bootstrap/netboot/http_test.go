package netboot

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type httpFixture struct {
	srv *httptest.Server
	log *bytes.Buffer
	dir string
}

func newHTTPFixture(t *testing.T) *httpFixture {
	t.Helper()
	dir := filesRoot(t)
	// A symlink pointing out of the files root must not be followed.
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	pf := filepath.Join(t.TempDir(), "profiles.json")
	writeFile(t, pf, goodProfiles, time.Now())
	var logBuf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logBuf, nil))
	rec := NewRecorder(log)
	h := &HTTP{Files: root, Rec: rec}
	srv := httptest.NewServer(nil)
	h.ServerURL = srv.URL
	src, err := NewFileSource(FileSourceConfig{Path: pf, Files: root.FS(), ServerURL: srv.URL, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h.Source = src
	srv.Config.Handler = h.Handler()
	t.Cleanup(srv.Close)
	return &httpFixture{srv: srv, log: &logBuf, dir: dir}
}

func (f *httpFixture) get(t *testing.T, path string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestHTTPScriptPerMAC(t *testing.T) {
	f := newHTTPFixture(t)
	code, body, _ := f.get(t, "/boot/52-54-00-00-00-07.ipxe")
	if code != http.StatusOK {
		t.Fatalf("script: %d %s", code, body)
	}
	u := f.srv.URL + "/boot/52:54:00:00:00:07"
	want := "#!ipxe\n" +
		"echo Stowage netboot: 52:54:00:00:00:07 boots profile burnin\n" +
		"kernel --name kernel " + u + "/kernel initrd=initrd0 initrd=initrd1 stowage.profile=burnin\n" +
		"initrd --name initrd0 " + u + "/initrd/0\n" +
		"initrd --name initrd1 " + u + "/initrd/1\n" +
		"boot\n"
	if body != want {
		t.Fatalf("script:\n%s\nwant:\n%s", body, want)
	}
	// A profile whose kernel and initrd are URLs points iPXE straight at them.
	_, body, _ = f.get(t, "/boot/52:54:00:ab:cd:ef.ipxe")
	if !strings.Contains(body, "kernel --name kernel http://images.example/erase/vmlinuz initrd=initrd0 stowage.profile=erase\n") ||
		!strings.Contains(body, "initrd --name initrd0 http://images.example/erase/initrd\n") {
		t.Fatalf("erase script:\n%s", body)
	}
	code, _, hdr := f.get(t, "/boot/52:54:00:ab:cd:ef/kernel")
	if code != http.StatusFound || hdr.Get("Location") != "http://images.example/erase/vmlinuz" {
		t.Fatalf("URL kernel: %d %q", code, hdr.Get("Location"))
	}
}

func TestHTTPKernelInitrdRange(t *testing.T) {
	f := newHTTPFixture(t)
	code, body, _ := f.get(t, "/boot/52:54:00:12:34:56/kernel")
	if code != http.StatusOK || body != "KERNEL-BYTES-0123456789" {
		t.Fatalf("kernel: %d %q", code, body)
	}
	code, body, hdr := f.get(t, "/boot/52:54:00:12:34:56/kernel", "Range", "bytes=7-11")
	if code != http.StatusPartialContent || body != "BYTES" || hdr.Get("Content-Range") != "bytes 7-11/23" {
		t.Fatalf("kernel range: %d %q %q", code, body, hdr.Get("Content-Range"))
	}
	code, body, _ = f.get(t, "/boot/52:54:00:00:00:07/initrd/1")
	if code != http.StatusOK || body != "INITRD-BURNIN" {
		t.Fatalf("initrd 1: %d %q", code, body)
	}
	code, _, _ = f.get(t, "/boot/52:54:00:00:00:07/initrd/2")
	if code != http.StatusNotFound {
		t.Fatalf("initrd 2 of 2: %d, want 404", code)
	}
	code, body, _ = f.get(t, "/files/conf/node.json")
	if code != http.StatusOK || body != `{"node":"x"}` {
		t.Fatalf("config file: %d %q", code, body)
	}
	// Each stage is logged with the MAC and counted.
	logs := f.log.String()
	for _, want := range []string{`"stage":"kernel","mac":"52:54:00:12:34:56","profile":"storage"`, `"stage":"initrd","mac":"52:54:00:00:00:07","profile":"burnin"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	_, metrics, _ := f.get(t, "/metrics")
	for _, want := range []string{
		`stowage_netboot_stage_total{profile="storage",stage="kernel"} 2`,
		`stowage_netboot_stage_total{profile="burnin",stage="initrd"} 1`,
		`stowage_netboot_sent_bytes_total{proto="http"} `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestHTTPRefusals(t *testing.T) {
	f := newHTTPFixture(t)
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/boot/52:54:00:12:34.ipxe", http.StatusBadRequest},       // short MAC
		{"/boot/not-a-mac.ipxe", http.StatusBadRequest},            // junk
		{"/boot/52:54:00:12:34:56.txt", http.StatusNotFound},       // not a script
		{"/files/passwd", http.StatusForbidden},                    // symlink out of the root
		{"/files/..%2f..%2fetc%2fpasswd", http.StatusBadRequest},   // escaped ..
		{"/files/conf", http.StatusNotFound},                       // a directory
		{"/files/nothing-here", http.StatusNotFound},               // missing
		{"/boot/52:54:00:12:34:56/initrd/x", http.StatusNotFound},  // bad index
		{"/boot/52:54:00:12:34:56/initrd/-1", http.StatusNotFound}, // negative index
	} {
		code, body, hdr := f.get(t, tc.path)
		if code != tc.code {
			t.Errorf("GET %s: %d %s; want %d", tc.path, code, body, tc.code)
			continue
		}
		if code >= 400 && hdr.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: error body is %q, want JSON", tc.path, hdr.Get("Content-Type"))
		}
		if strings.Contains(body, "root:") {
			t.Errorf("GET %s leaked /etc/passwd", tc.path)
		}
	}
}

func TestHTTPUnknownMachineIgnored(t *testing.T) {
	dir := filesRoot(t)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	pf := filepath.Join(t.TempDir(), "p.json")
	writeFile(t, pf, `{"profiles":{"storage":{"kernel":"vmlinuz"}},"machines":{"52:54:00:00:00:01":"storage"}}`, time.Now())
	src, err := NewFileSource(FileSourceConfig{Path: pf, Files: root.FS()})
	if err != nil {
		t.Fatal(err)
	}
	h := &HTTP{Source: src, Files: root, ServerURL: "http://s", Rec: NewRecorder(slog.New(slog.DiscardHandler))}
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/boot/52:54:00:00:00:02.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown machine: %d, want 404", resp.StatusCode)
	}
}
