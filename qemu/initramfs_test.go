package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stowage/stowage/qemu/guest"
)

// readAll reads concatenated newc archives, the way the kernel unpacks an
// initramfs, and returns the last entry for each name.
func readAll(t *testing.T, b []byte) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	for len(b) > 0 {
		ents, err := readNewc(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			out[e.name] = e
		}
		// Skip to just past this archive's trailer.
		i := strings.Index(string(b), "TRAILER!!!")
		if i < 0 {
			t.Fatal("no trailer")
		}
		next := (i + len("TRAILER!!!") + 1 + 3) &^ 3
		b = b[next:]
	}
	return out
}

func TestInitramfsBuild(t *testing.T) {
	k, err := FindKernel("/")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if _, err := lookBinary("smartctl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	initBin := filepath.Join(dir, "init")
	if err := os.WriteFile(initBin, []byte("#!init"), 0o755); err != nil {
		t.Fatal(err)
	}
	testBin := filepath.Join(dir, "pkg.test")
	if err := os.WriteFile(testBin, []byte("test binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "extra.txt")
	if err := os.WriteFile(extra, []byte("extra"), 0o644); err != nil {
		t.Fatal(err)
	}
	ir := Initramfs{
		Init: initBin, Kernel: k,
		Modules:  moduleList([]Module{{Name: "scsi_debug", Params: "zbc=managed"}}, []Drive{{Kind: NVMe}}),
		Binaries: []string{"smartctl"},
		Files:    map[string]string{"/etc/extra.txt": extra},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cache := filepath.Join(dir, "cache")
	out := filepath.Join(dir, "initrd")
	cfg := guest.Config{Args: []string{"/stowage/test", "-test.run", "^TestVMX$"}}
	if err := ir.Build(ctx, out, cache, cfg, testBin, "/stowage/test"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ents := readAll(t, b)
	for _, name := range []string{"init", "dev/console", "stowage/test", "etc/extra.txt", "usr/sbin/smartctl",
		"stowage/modules/nvme.ko", "stowage/modules/nvme_core.ko", "stowage/modules/sd_mod.ko", "stowage/modules/scsi_debug.ko"} {
		if _, ok := ents[name]; !ok {
			t.Errorf("initramfs lacks %s", name)
		}
	}
	var libc bool
	for n := range ents {
		libc = libc || strings.Contains(n, "/libc.so")
	}
	if !libc {
		t.Error("initramfs lacks smartctl's libc")
	}
	if e := ents["init"]; string(e.data) != "#!init" || e.mode&0o111 == 0 {
		t.Errorf("init: %q mode %o", e.data, e.mode)
	}
	got, err := guest.ParseConfig(ents[strings.TrimPrefix(guest.ConfigPath, "/")].data)
	if err != nil {
		t.Fatal(err)
	}
	// Modules load dependencies first, scsi_debug after sd_mod and sg,
	// with its parameters, each from a file in the archive.
	pos := map[string]int{}
	for i, m := range got.Modules {
		pos[m.Name] = i
		if _, ok := ents[strings.TrimPrefix(m.Path, "/")]; !ok {
			t.Errorf("module %s: %s not in the archive", m.Name, m.Path)
		}
	}
	if pos["nvme_core"] > pos["nvme"] || pos["sd_mod"] > pos["scsi_debug"] || pos["sg"] > pos["scsi_debug"] {
		t.Errorf("module order %+v", got.Modules)
	}
	if m := got.Modules[pos["scsi_debug"]]; m.Params != "zbc=managed" {
		t.Errorf("scsi_debug params %q", m.Params)
	}

	// The base archive is cached: a second build with the same inputs
	// reuses it; a changed input makes a new one.
	bases, _ := filepath.Glob(filepath.Join(cache, "initramfs-*.cpio"))
	if len(bases) != 1 {
		t.Fatalf("cache holds %q", bases)
	}
	st1, _ := os.Stat(bases[0])
	if err := ir.Build(ctx, out, cache, cfg, testBin, "/stowage/test"); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(bases[0])
	if !os.SameFile(st1, st2) {
		t.Error("the cached base archive was rewritten for the same inputs")
	}
	if err := os.WriteFile(extra, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ir.Build(ctx, out, cache, cfg, testBin, "/stowage/test"); err != nil {
		t.Fatal(err)
	}
	if bases, _ := filepath.Glob(filepath.Join(cache, "initramfs-*.cpio")); len(bases) != 2 {
		t.Errorf("after changing an input the cache holds %q, want a second archive", bases)
	}

	// Bad inputs are clear errors.
	bad := ir
	bad.Modules = []Module{{Name: "no_such_module"}}
	if err := bad.Build(ctx, out, cache, cfg, testBin, "/stowage/test"); err == nil || !strings.Contains(err.Error(), "no_such_module") {
		t.Errorf("unknown module: %v", err)
	}
	bad = ir
	bad.Files = map[string]string{"relative": extra}
	if err := bad.Build(ctx, out, cache, cfg, testBin, "/stowage/test"); err == nil {
		t.Error("a relative guest path was accepted")
	}
	bad = ir
	bad.Modules = []Module{{Name: "sd_mod"}, {Name: "scsi_mod", Params: "x=1"}}
	if err := bad.Build(ctx, out, cache, cfg, testBin, "/stowage/test"); err == nil {
		t.Error("parameters for a module already loaded as a dependency were accepted")
	}
}
