package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const depFixture = `kernel/drivers/scsi/sd_mod.ko: kernel/block/t10-pi.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/block/t10-pi.ko:
kernel/drivers/scsi/scsi_debug.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/md/dm-flakey.ko: kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-mod.ko:
`

func fixtureIndex(t *testing.T) *ModuleIndex {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(depFixture), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/virtio/virtio_pci.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ix, err := LoadModuleIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestResolve(t *testing.T) {
	ix := fixtureIndex(t)
	for _, c := range []struct {
		names []string
		want  string
	}{
		{[]string{"sd_mod"}, "t10_pi scsi_common scsi_mod sd_mod"},
		{[]string{"scsi_debug", "sd_mod"}, "scsi_common scsi_mod scsi_debug t10_pi sd_mod"},
		{[]string{"dm-flakey"}, "dm_mod dm_flakey"},
		{[]string{"dm_flakey", "dm-mod"}, "dm_mod dm_flakey"},
		{[]string{"virtio-pci"}, ""},
	} {
		got, err := ix.Resolve(c.names...)
		if err != nil {
			t.Fatalf("%v: %v", c.names, err)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("Resolve(%v) = %q, want %q", c.names, got, c.want)
		}
	}
	if _, err := ix.Resolve("nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown module: err %v", err)
	}
	if p, ok := ix.Path("dm-flakey"); !ok || p != "kernel/drivers/md/dm-flakey.ko" {
		t.Errorf("Path(dm-flakey) = %q, %v", p, ok)
	}
}

func TestResolveCycle(t *testing.T) {
	ix, err := parseModulesDep(strings.NewReader("a.ko: b.ko\nb.ko: a.ko\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Resolve("a"); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("cycle: err %v", err)
	}
}

func TestParseModulesDepErrors(t *testing.T) {
	for _, bad := range []string{"no colon here\n", ": deps.ko\n"} {
		if _, err := parseModulesDep(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFindKernel(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-56-amd64", "6.10.0-1-amd64"} {
		if err := os.MkdirAll(filepath.Join(root, "lib", "modules", v), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "lib", "modules", v, "modules.dep"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := FindKernel(root); err == nil {
		t.Fatal("found a kernel without any vmlinuz")
	}
	// 6.10 has modules but no image; of the two with images, 56 > 9.
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-56-amd64"} {
		if err := os.WriteFile(filepath.Join(root, "boot", "vmlinuz-"+v), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k, err := FindKernel(root)
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.1.0-56-amd64" || k.Image != filepath.Join(root, "boot", "vmlinuz-6.1.0-56-amd64") {
		t.Fatalf("FindKernel = %+v", k)
	}
}

// TestHostModules resolves the modules the lab uses against the host's
// real modules.dep.
func TestHostModules(t *testing.T) {
	k, err := FindKernel("/")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (make deps installs linux-image-amd64)", err)
		}
		t.Skipf("%v", err)
	}
	ix, err := LoadModuleIndex(k.ModulesDir)
	if err != nil {
		t.Fatal(err)
	}
	order, err := ix.Resolve("nvme", "ahci", "virtio_blk", "virtio_scsi", "sd_mod", "sg", "null_blk", "scsi_debug", "dm-flakey", "dm-log-writes")
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range order {
		pos[m] = i
		p, ok := ix.Path(m)
		if !ok {
			t.Fatalf("%s: no path", m)
		}
		if _, err := os.Stat(filepath.Join(ix.Dir, p)); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	for _, pair := range [][2]string{{"nvme_core", "nvme"}, {"scsi_mod", "sd_mod"}, {"libata", "ahci"}, {"dm_mod", "dm_flakey"}, {"virtio_ring", "virtio_blk"}} {
		if pos[pair[0]] >= pos[pair[1]] {
			t.Errorf("%s loads at %d, not before %s at %d", pair[0], pos[pair[0]], pair[1], pos[pair[1]])
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range [][2]string{{"6.1.0-9-amd64", "6.1.0-56-amd64"}, {"5.10.0-1-amd64", "6.1.0-1-amd64"}, {"6.1.0", "6.1.0-1"}} {
		if !versionLess(c[0], c[1]) || versionLess(c[1], c[0]) {
			t.Errorf("versionLess(%q, %q) wrong", c[0], c[1])
		}
	}
}

// FuzzParseModulesDep parses fuzzed modules.dep text; whatever it accepts
// must resolve every module it lists to a known path or a clear error.
func FuzzParseModulesDep(f *testing.F) {
	f.Add(depFixture)
	f.Add("a.ko: b.ko\nb.ko: a.ko\n")
	f.Add("x.ko:\n# comment\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		ix, err := parseModulesDep(strings.NewReader(text))
		if err != nil {
			return
		}
		for name := range ix.path {
			order, err := ix.Resolve(name)
			if err != nil {
				continue
			}
			seen := map[string]bool{}
			for _, m := range order {
				if seen[m] {
					t.Fatalf("%s resolved twice in %q", m, order)
				}
				seen[m] = true
				if _, ok := ix.Path(m); !ok {
					t.Fatalf("%s in the load order has no path", m)
				}
				for _, d := range ix.deps[m] {
					if _, known := ix.path[d]; known && !seen[d] {
						t.Fatalf("%s loads before its dependency %s", m, d)
					}
				}
			}
			if order[len(order)-1] != name {
				t.Fatalf("Resolve(%s) ends with %s", name, order[len(order)-1])
			}
		}
	})
}
