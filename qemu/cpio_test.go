package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// entry is one member of a newc archive, as read back by readNewc.
type entry struct {
	name         string
	mode         uint32
	data         []byte
	rmajor, rmin uint32
}

// readNewc is a strict test-side reader of newc archives: the oracle for
// the writer.
func readNewc(b []byte) ([]entry, error) {
	var out []entry
	off := 0
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if len(b)-off < 110 {
			return nil, fmt.Errorf("offset %d: short header", off)
		}
		h := b[off : off+110]
		if string(h[:6]) != "070701" {
			return nil, fmt.Errorf("offset %d: bad magic %q", off, h[:6])
		}
		field := func(i int) (uint32, error) {
			v, err := strconv.ParseUint(string(h[6+8*i:6+8*i+8]), 16, 32)
			return uint32(v), err
		}
		var f [13]uint32
		for i := range f {
			v, err := field(i)
			if err != nil {
				return nil, fmt.Errorf("offset %d: field %d: %w", off, i, err)
			}
			f[i] = v
		}
		mode, size, rmaj, rmin, namesize := f[1], int(f[6]), f[9], f[10], int(f[11])
		if namesize < 1 || off+110+namesize > len(b) {
			return nil, fmt.Errorf("offset %d: bad name size %d", off, namesize)
		}
		name := string(b[off+110 : off+110+namesize-1])
		if b[off+110+namesize-1] != 0 {
			return nil, fmt.Errorf("offset %d: name not NUL-terminated", off)
		}
		off = align(off + 110 + namesize)
		if name == "TRAILER!!!" {
			return out, nil
		}
		if off+size > len(b) {
			return nil, fmt.Errorf("%s: data runs past the end", name)
		}
		out = append(out, entry{name: name, mode: mode, data: b[off : off+size], rmajor: rmaj, rmin: rmin})
		off = align(off + size)
	}
}

func TestNewcRoundTrip(t *testing.T) {
	host := filepath.Join(t.TempDir(), "host.bin")
	if err := os.WriteFile(host, []byte("host file\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	a := newNewc(&buf)
	a.Bytes("/stowage/config.json", 0o644, []byte(`{"a":1}`))
	a.HostFile("/usr/sbin/tool", host)
	a.Symlink("/bin/sh", "/usr/sbin/tool")
	a.CharDev("/dev/console", 0o600, 5, 1)
	a.Bytes("/stowage/config.json", 0o644, []byte("second copy is ignored"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readNewc(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	byName := map[string]entry{}
	for _, e := range got {
		names = append(names, e.name)
		byName[e.name] = e
	}
	want := []string{"stowage", "stowage/config.json", "usr", "usr/sbin", "usr/sbin/tool", "bin", "bin/sh", "dev", "dev/console"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("names %q, want %q (parents first, no duplicates)", names, want)
	}
	if e := byName["usr/sbin/tool"]; string(e.data) != "host file\n" || e.mode != modeFile|0o755 {
		t.Errorf("tool: %q mode %o", e.data, e.mode)
	}
	if e := byName["stowage/config.json"]; string(e.data) != `{"a":1}` {
		t.Errorf("config: %q", e.data)
	}
	if e := byName["bin/sh"]; string(e.data) != "/usr/sbin/tool" || e.mode&0o170000 != modeSymlink {
		t.Errorf("symlink: %q mode %o", e.data, e.mode)
	}
	if e := byName["dev/console"]; e.rmajor != 5 || e.rmin != 1 || e.mode != modeChar|0o600 {
		t.Errorf("console: %d:%d mode %o", e.rmajor, e.rmin, e.mode)
	}

	// The real cpio tool agrees.
	if _, err := exec.LookPath("cpio"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("cpio not installed (make deps)")
		}
		t.Skip("cpio not installed; run make deps")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "cpio", "-it", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -it: %v", err)
	}
	listed := strings.Fields(string(out))
	sort.Strings(listed)
	sort.Strings(want)
	if strings.Join(listed, " ") != strings.Join(want, " ") {
		t.Fatalf("cpio -it lists %q, want %q", listed, want)
	}
}

func TestNewcErrors(t *testing.T) {
	var buf bytes.Buffer
	a := newNewc(&buf)
	a.HostFile("/x", filepath.Join(t.TempDir(), "missing"))
	if err := a.Close(); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing host file: err %v", err)
	}
	a = newNewc(&buf)
	a.Bytes("/", 0o644, nil)
	if err := a.Close(); err == nil {
		t.Fatal("empty name accepted")
	}
	a = newNewc(&buf)
	a.HostFile("/d", t.TempDir())
	if err := a.Close(); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory as host file: err %v", err)
	}
}

// FuzzNewc writes one file with a fuzzed name and contents and reads the
// archive back with the strict reader.
func FuzzNewc(f *testing.F) {
	f.Add("stowage/test", []byte("\x7fELF"))
	f.Add("a/b/c/d", []byte{})
	f.Add("../../etc/passwd", []byte("x"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		var buf bytes.Buffer
		a := newNewc(&buf)
		a.Bytes(name, 0o644, data)
		if err := a.Close(); err != nil {
			if _, nerr := cleanName(name); nerr == nil {
				t.Fatalf("name %q: %v", name, err)
			}
			return
		}
		got, err := readNewc(buf.Bytes())
		if err != nil {
			t.Fatalf("name %q: read back: %v", name, err)
		}
		clean, _ := cleanName(name)
		last := got[len(got)-1]
		if last.name != clean || !bytes.Equal(last.data, data) {
			t.Fatalf("wrote %q (%d bytes), read %q (%d bytes)", clean, len(data), last.name, len(last.data))
		}
		for _, e := range got {
			if strings.HasPrefix(e.name, "/") || strings.Contains("/"+e.name+"/", "/../") {
				t.Fatalf("entry %q escapes the archive root", e.name)
			}
		}
	})
}
