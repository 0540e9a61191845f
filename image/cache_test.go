package image

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestInputsDigest(t *testing.T) {
	_, err := NewestKernel("/boot", "/lib/modules")
	needHost(t, err)
	_, err = lookPath("smartctl")
	needHost(t, err)
	src := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The module's real go.mod and go.sum: the digest reads the versions
	// of u-root and gobusybox from them.
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		write(name, string(b))
	}
	write("cmd/a/main.go", "package main\n")
	write("api/openapi.json", `{"openapi": "3.0.3"}`)
	ctx := context.Background()
	digest := func(c Config) string {
		t.Helper()
		c.Out, c.SourceDir = t.TempDir(), src
		d, err := InputsDigest(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d0 := digest(Config{Version: "v1"})
	if d := digest(Config{Version: "v1"}); d != d0 {
		t.Fatal("same inputs, different digests")
	}
	// Tests, testdata, out/ and dot directories are not inputs.
	write("cmd/a/main_test.go", "package main\n")
	write("cmd/a/testdata/x.go", "package x\n")
	write("out/image/y.go", "package y\n")
	write(".git/z.go", "package z\n")
	if d := digest(Config{Version: "v1"}); d != d0 {
		t.Fatal("a test file or an ignored directory changed the digest")
	}
	for name, c := range map[string]Config{
		"version": {Version: "v2"},
		"modules": {Version: "v1", Modules: []string{"nvme"}},
		"cmdline": {Version: "v1", Cmdline: "quiet"},
	} {
		if digest(c) == d0 {
			t.Errorf("%s change kept the digest", name)
		}
	}
	// Every other file of the tree can end up in a binary (go:embed): an
	// edit of each changes the digest.
	for _, f := range []struct{ rel, text string }{
		{"cmd/a/main.go", "package main\n\nfunc main() {}\n"},
		{"api/openapi.json", `{"openapi": "3.1.0"}`},
		{"cmd/a/banner.txt", "new file\n"},
	} {
		write(f.rel, f.text)
		d := digest(Config{Version: "v1"})
		if d == d0 {
			t.Errorf("editing %s kept the digest", f.rel)
		}
		d0 = d
	}
}

// TestComponents: on a Debian host the manifest's components name the
// kernel's package with its version, smartmontools, libc6 (smartctl's
// libraries), u-root and gobusybox as go.mod pins them, and smartctl's
// own version.
func TestComponents(t *testing.T) {
	kv, err := NewestKernel("/boot", "/lib/modules")
	needHost(t, err)
	_, err = exec.LookPath("dpkg-query")
	needHost(t, err)
	ctx := context.Background()
	c := Config{Out: t.TempDir(), SourceDir: "..", KernelVersion: kv}
	needHost(t, c.defaults(ctx))
	comps, err := c.components(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Component{}
	for _, x := range comps {
		if x.Version == "" {
			t.Errorf("%s (%s): no version", x.Name, x.Source)
		}
		got[x.Name] = x
	}
	for _, want := range []Component{
		{Name: "linux-image-" + kv, Source: "deb"},
		{Name: "smartmontools", Source: "deb"},
		{Name: "libc6", Source: "deb"},
		{Name: "github.com/u-root/u-root", Version: "v0.16.0", Source: "go"},
		{Name: "github.com/u-root/gobusybox/src", Source: "go"},
		{Name: "smartctl", Source: "smartctl --version"},
	} {
		g, ok := got[want.Name]
		if !ok || g.Source != want.Source || want.Version != "" && g.Version != want.Version {
			t.Errorf("component %s: got %+v, want %+v (all: %+v)", want.Name, g, want, comps)
		}
	}
	t.Logf("components: %+v", comps)
}

func TestCached(t *testing.T) {
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, KernelFile), []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := digestFile(filepath.Join(out, KernelFile))
	if err != nil {
		t.Fatal(err)
	}
	a.Name = KernelFile
	mj, _ := json.Marshal(Manifest{Version: "v", Artifacts: []Artifact{a}})
	if err := os.WriteFile(filepath.Join(out, ManifestFile), mj, 0o644); err != nil {
		t.Fatal(err)
	}
	c := Config{Out: out}
	if _, ok := cached(c, "abc"); ok {
		t.Fatal("hit without an inputs file")
	}
	if err := os.WriteFile(filepath.Join(out, InputsFile), []byte("abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, ok := cached(c, "abc"); !ok || m.Version != "v" {
		t.Fatalf("miss on the same inputs: %v %v", m, ok)
	}
	if _, ok := cached(c, "abd"); ok {
		t.Fatal("hit on other inputs")
	}
	if err := os.WriteFile(filepath.Join(out, KernelFile), []byte("kernem"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := cached(c, "abc"); ok {
		t.Fatal("hit although an artifact changed")
	}
}
