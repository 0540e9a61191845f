package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTreeNewcListsWithCpio(t *testing.T) {
	_, err := exec.LookPath("cpio")
	needHost(t, err)
	src := filepath.Join(t.TempDir(), "host")
	if err := os.WriteFile(src, []byte("hello from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr := NewTree()
	for _, err := range []error{
		tr.HostFile("/bin/tool", src, 0o755),
		tr.Bytes("/etc/motd", 0o644, []byte("abc")),
		tr.Symlink("/bin/ls", "bb"),
		tr.CharDev("/dev/console", 0o600, 5, 1),
		tr.Dir("/tmp", 0o1777),
		tr.Bytes("/a-b/c", 0o600, nil),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := tr.WriteNewc(&buf, 1700000000); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -it: %v\n%s", err, out)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		l0, _, _ := strings.Cut(l, " -> ")
		f := strings.Fields(l0)
		names = append(names, f[len(f)-1])
		if strings.HasSuffix(l, "bb") && !strings.HasPrefix(l, "lrwxrwxrwx") {
			t.Errorf("symlink listed as %q", l)
		}
		if !strings.Contains(l, "root") || !strings.Contains(l, "2023") {
			t.Errorf("entry %q: want owner root and the fixed 2023 mtime", l)
		}
	}
	want := []string{"a-b", "a-b/c", "bin", "bin/ls", "bin/tool", "dev", "dev/console", "etc", "etc/motd", "tmp"}
	if !slices.Equal(names, want) {
		t.Fatalf("cpio lists %v, want %v (sorted, parents first)", names, want)
	}
	// Extract and compare content.
	dir := t.TempDir()
	x := exec.Command("cpio", "-id", "--quiet", "--no-absolute-filenames")
	x.Dir = dir
	x.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := x.CombinedOutput(); err != nil && !strings.Contains(string(out), "console") {
		t.Fatalf("cpio -id: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bin/tool")); err != nil || string(b) != "hello from the host\n" {
		t.Fatalf("bin/tool = %q, %v", b, err)
	}
	// Same tree, same bytes.
	var again bytes.Buffer
	if err := tr.WriteNewc(&again, 1700000000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("writing the same tree twice gave different bytes")
	}
}

func TestTreeRejects(t *testing.T) {
	tr := NewTree()
	if err := tr.Bytes("/etc/x", 0o644, []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := tr.Bytes("/etc/x", 0o644, []byte("2")); err == nil {
		t.Error("a path added twice: want an error")
	}
	if err := tr.Bytes("/etc/x/y", 0o644, nil); err == nil {
		t.Error("a file under a file: want an error")
	}
	if err := tr.Bytes("/", 0o644, nil); err == nil {
		t.Error("the root as a file: want an error")
	}
	if err := tr.HostFile("/z", "/nonexistent/file", 0o644); err == nil {
		t.Error("a missing host file: want an error")
	}
	if err := tr.WriteNewc(&bytes.Buffer{}, -1); err == nil {
		t.Error("a negative mtime: want an error")
	}
}

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n" +
		"\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f)\n"
	got, err := ParseLdd(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libm.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if !slices.Equal(got, want) {
		t.Fatalf("ParseLdd = %v, want %v", got, want)
	}
	if _, err := ParseLdd("\tlibfoo.so.1 => not found\n"); err == nil {
		t.Fatal("a missing library: want an error")
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"6.1.0-9-amd64", "6.1.0-56-amd64", true},
		{"6.1.0-56-amd64", "6.1.0-9-amd64", false},
		{"5.10.0-30-amd64", "6.1.0-1-amd64", true},
		{"6.1.0-56-amd64", "6.1.0-56-amd64", false},
	} {
		if got := VersionLess(c.a, c.b); got != c.less {
			t.Errorf("VersionLess(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

// TestBuildReproducible builds the image twice into two directories and
// requires identical bytes for every artifact; it also checks the
// manifest against the files and the size budget.
func TestBuildReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the image twice (minutes); not in -short")
	}
	_, err := NewestKernel("/boot", "/lib/modules")
	needHost(t, err)
	_, err = lookPath("smartctl")
	needHost(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	epoch := int64(1700000000)
	var sums [2]map[string]string
	var contents [2]map[string]string
	for i := range sums {
		out := t.TempDir()
		start := time.Now()
		m, err := Build(ctx, Config{Out: out, Version: "repro-test", Epoch: &epoch})
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = map[string]string{}
		for _, a := range m.Artifacts {
			b, err := os.ReadFile(filepath.Join(out, a.Name))
			if err != nil {
				t.Fatal(err)
			}
			s := sha256.Sum256(b)
			if hex.EncodeToString(s[:]) != a.SHA256 || int64(len(b)) != a.Size {
				t.Fatalf("manifest entry %s does not match the file", a.Name)
			}
			sums[i][a.Name] = a.SHA256
			if a.Name == InitramfsFile {
				t.Logf("build %d: %s %d bytes (%.1f MiB) in %s", i+1, a.Name, a.Size, float64(a.Size)/(1<<20), time.Since(start).Round(time.Second))
				if a.Size > 40<<20 {
					t.Errorf("initramfs is %d bytes, over the 40 MiB budget", a.Size)
				}
			}
		}
		mb, err := os.ReadFile(filepath.Join(out, ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(mb)
		sums[i][ManifestFile] = hex.EncodeToString(s[:])
		var back Manifest
		if err := json.Unmarshal(mb, &back); err != nil {
			t.Fatal(err)
		}
		contents[i] = map[string]string{}
		for _, a := range back.Contents {
			contents[i][a.Name] = a.SHA256
		}
		for _, want := range []string{"/init", "/bin/hwmgr", "/bin/osd", "/bin/bb", "/usr/sbin/smartctl"} {
			if !slices.ContainsFunc(back.Contents, func(a Artifact) bool { return a.Name == want }) {
				t.Errorf("manifest contents lack %s", want)
			}
		}
		for _, want := range []string{"nvme", "ahci", "virtio_blk", "virtio_net", "mlx5_core", "null_blk", "scsi_debug", "dm_flakey"} {
			if !slices.Contains(back.Modules, want) {
				t.Errorf("manifest modules lack %s", want)
			}
		}
	}
	for name, s := range sums[0] {
		if sums[1][name] != s {
			t.Errorf("%s differs between two builds: %s vs %s", name, s, sums[1][name])
		}
	}
	// Name the files inside that differ: in a shared working tree, a
	// source edited between the two builds shows up here (init, hwmgr).
	for name, s := range contents[0] {
		if contents[1][name] != s {
			t.Errorf("initramfs file %s differs between the builds", name)
		}
	}
	t.Logf("two builds, identical: %v", sums[0])
}
