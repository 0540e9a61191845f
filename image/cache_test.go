package image

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestInputsDigest(t *testing.T) {
	if _, err := NewestKernel("/boot", "/lib/modules"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if _, err := lookPath("smartctl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
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
	write("go.mod", "module example.com/x\n")
	write("cmd/a/main.go", "package main\n")
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
	write("cmd/a/main.go", "package main\n\nfunc main() {}\n")
	if digest(Config{Version: "v1"}) == d0 {
		t.Error("a source change kept the digest")
	}
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
