package netboot

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, body string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	// Set the mtime explicitly: two writes within the file system's
	// timestamp granularity must still be seen as a change.
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestFileSourceReloadKeepsLastGood(t *testing.T) {
	dir := filesRoot(t)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	pf := filepath.Join(t.TempDir(), "profiles.json")
	t0 := time.Unix(1_700_000_000, 0)
	writeFile(t, pf, `{"default":"storage","profiles":{"storage":{"kernel":"vmlinuz","cmdline":"p={{.Profile}}"},"rescue":{"kernel":"vmlinuz","cmdline":"p={{.Profile}}"}}}`, t0)
	var logBuf bytes.Buffer
	var reloads []bool
	src, err := NewFileSource(FileSourceConfig{
		Path: pf, Files: root.FS(), ServerURL: "http://s",
		Log:      slog.New(slog.NewTextHandler(&logBuf, nil)),
		OnReload: func(ok bool) { reloads = append(reloads, ok) },
	})
	if err != nil {
		t.Fatal(err)
	}
	mac := mustMAC(t, "52:54:00:00:00:09")
	boot := func() string {
		t.Helper()
		b, ok, err := src.Boot(context.Background(), mac)
		if err != nil || !ok {
			t.Fatalf("Boot: ok=%v err=%v", ok, err)
		}
		return b.Profile
	}
	if got := boot(); got != "storage" {
		t.Fatalf("profile %q, want storage", got)
	}
	if changed, err := src.Check(); changed || err != nil {
		t.Fatalf("Check on an unchanged file: %v %v", changed, err)
	}

	// A good edit takes effect.
	writeFile(t, pf, `{"default":"rescue","profiles":{"storage":{"kernel":"vmlinuz"},"rescue":{"kernel":"vmlinuz"}}}`, t0.Add(time.Second))
	if changed, err := src.Check(); !changed || err != nil {
		t.Fatalf("Check after a good edit: changed=%v err=%v", changed, err)
	}
	if got := boot(); got != "rescue" {
		t.Fatalf("after reload: profile %q, want rescue", got)
	}

	// A bad edit (a profile naming a missing kernel) is refused, logged,
	// and the last good profiles stay.
	writeFile(t, pf, `{"default":"storage","profiles":{"storage":{"kernel":"missing-kernel"}}}`, t0.Add(2*time.Second))
	changed, err := src.Check()
	if changed || err == nil || !strings.Contains(err.Error(), "missing-kernel") {
		t.Fatalf("Check after a bad edit: changed=%v err=%v; want the missing kernel named", changed, err)
	}
	if got := boot(); got != "rescue" {
		t.Fatalf("after a bad edit: profile %q, want the last good (rescue)", got)
	}
	if !strings.Contains(logBuf.String(), "keeping the last good profiles") || !strings.Contains(logBuf.String(), "missing-kernel") {
		t.Fatalf("bad edit not logged with its reason:\n%s", logBuf.String())
	}
	// The same bad file is not re-parsed and re-logged on every poll.
	logBuf.Reset()
	if changed, err := src.Check(); changed || err != nil || logBuf.Len() != 0 {
		t.Fatalf("second Check of the same bad file: changed=%v err=%v log=%q", changed, err, logBuf.String())
	}

	// Deleting the file keeps the profiles too.
	if err := os.Remove(pf); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Check(); err == nil {
		t.Fatal("Check of a deleted file: no error")
	}
	if got := boot(); got != "rescue" {
		t.Fatalf("after delete: profile %q, want rescue", got)
	}
	// And a fixed file comes back.
	writeFile(t, pf, `{"default":"storage","profiles":{"storage":{"kernel":"vmlinuz"}}}`, t0.Add(3*time.Second))
	if changed, err := src.Check(); !changed || err != nil {
		t.Fatalf("Check after the fix: changed=%v err=%v", changed, err)
	}
	if got := boot(); got != "storage" {
		t.Fatalf("after fix: profile %q, want storage", got)
	}
	want := []bool{true, false, false, true}
	if len(reloads) != len(want) {
		t.Fatalf("reload hook calls %v, want %v", reloads, want)
	}
	for i := range want {
		if reloads[i] != want[i] {
			t.Fatalf("reload hook calls %v, want %v", reloads, want)
		}
	}
}

func TestFileSourceFirstLoadMustSucceed(t *testing.T) {
	pf := filepath.Join(t.TempDir(), "profiles.json")
	writeFile(t, pf, `{"profiles":{"gaming":{"kernel":"k"}}}`, time.Now())
	if _, err := NewFileSource(FileSourceConfig{Path: pf}); err == nil || !strings.Contains(err.Error(), "gaming") {
		t.Fatalf("NewFileSource with a bad file: %v", err)
	}
	if _, err := NewFileSource(FileSourceConfig{Path: filepath.Join(t.TempDir(), "none.json")}); err == nil {
		t.Fatal("NewFileSource with no file: no error")
	}
}

func TestAPISource(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pxe/v1/boot/52:54:00:00:00:01":
			_, _ = w.Write([]byte(`{"kernel":"/images/vmlinuz","initrd":["initrd.img","https://cdn.example/x.img"],"cmdline":"console=ttyS0 a=b"}`))
		case "/pxe/v1/boot/52:54:00:00:00:02":
			http.NotFound(w, r)
		case "/pxe/v1/boot/52:54:00:00:00:03":
			_, _ = w.Write([]byte(`{"kernel":`))
		case "/pxe/v1/boot/52:54:00:00:00:04":
			_, _ = w.Write([]byte(`{"kernel":"file:///etc/passwd"}`))
		case "/pxe/v1/boot/52:54:00:00:00:05":
			_, _ = w.Write([]byte(`{"kernel":"k","cmdline":"a\nchain http://evil/"}`))
		default:
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	}))
	defer api.Close()
	src, err := NewAPISource(api.URL+"/pxe", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, ok, err := src.Boot(ctx, mustMAC(t, "52:54:00:00:00:01"))
	if err != nil || !ok {
		t.Fatalf("Boot: %v %v", ok, err)
	}
	if b.Kernel != api.URL+"/images/vmlinuz" || b.Initrd[0] != api.URL+"/pxe/initrd.img" || b.Initrd[1] != "https://cdn.example/x.img" || b.Cmdline != "console=ttyS0 a=b" || b.Profile != ProfileAPI {
		t.Fatalf("Boot = %+v", b)
	}
	if _, ok, err := src.Boot(ctx, mustMAC(t, "52:54:00:00:00:02")); ok || err != nil {
		t.Fatalf("404: ok=%v err=%v, want ignored", ok, err)
	}
	for _, m := range []string{"52:54:00:00:00:03", "52:54:00:00:00:04", "52:54:00:00:00:05", "52:54:00:00:00:06"} {
		if _, ok, err := src.Boot(ctx, mustMAC(t, m)); ok || err == nil {
			t.Errorf("%s: ok=%v err=%v, want an error", m, ok, err)
		}
	}
	if _, err := NewAPISource("ftp://x", nil); err == nil {
		t.Error("NewAPISource(ftp://x): no error")
	}
}
