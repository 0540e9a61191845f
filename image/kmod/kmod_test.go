package kmod

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const fixture = "testdata/lib/modules/6.1.0-test"

func TestResolveOrderAndBuiltins(t *testing.T) {
	ix, err := Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ix.Resolve("nvme", "virtio-blk", "libata", "nvme_core")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"crc64", "crc64_rocksoft", "nvme_core", "nvme", "virtio", "virtio_blk"}
	if !slices.Equal(got, want) {
		t.Fatalf("Resolve = %v, want %v (deps first, each once, builtin libata left out)", got, want)
	}
	if _, err := ix.Resolve("nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("unknown module: err = %v", err)
	}
}

func TestResolveCycle(t *testing.T) {
	ix := New()
	if err := ix.ParseDep(strings.NewReader("a.ko: b.ko\nb.ko: a.ko\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Resolve("a"); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("cycle: err = %v", err)
	}
}

func TestMatch(t *testing.T) {
	ix, err := Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		modalias string
		want     []string
	}{
		{"pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02", []string{"nvme"}},
		{"pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", []string{"virtio_pci"}},
		{"virtio:d00000002v00001AF4", []string{"virtio_blk"}},
		{"scsi:t-0x00", []string{"sd_mod"}},
		{"scsi:t-0x05", []string{"sd_mod"}},
		{"scsi:t-0x08", nil},
		{"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00\n", []string{"e1000"}},
		{"", nil},
	} {
		if got := ix.Match(c.modalias); !slices.Equal(got, c.want) {
			t.Errorf("Match(%q) = %v, want %v", c.modalias, got, c.want)
		}
	}
}

func TestSubset(t *testing.T) {
	ix, err := Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	order, err := ix.Resolve("nvme")
	if err != nil {
		t.Fatal(err)
	}
	dep, alias, err := ix.Subset(order)
	if err != nil {
		t.Fatal(err)
	}
	// The subset must itself load as an index that resolves the same way.
	dir := t.TempDir()
	for name, b := range map[string][]byte{"modules.dep": dep, "modules.alias": alias} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sub.Resolve("nvme")
	if err != nil || !slices.Equal(got, order) {
		t.Fatalf("subset Resolve = %v, %v; want %v", got, err, order)
	}
	if len(sub.Aliases()) != 1 || sub.Aliases()[0].Module != "nvme" {
		t.Fatalf("subset aliases = %v, want only nvme's", sub.Aliases())
	}
	if _, _, err := ix.Subset([]string{"nvme"}); err == nil {
		t.Fatal("Subset of a set missing dependencies: want an error")
	}
}

func TestParseErrors(t *testing.T) {
	ix := New()
	if err := ix.ParseDep(strings.NewReader("no colon here\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad dep line: %v", err)
	}
	if err := ix.ParseAlias(strings.NewReader("alias only-two\n")); err == nil {
		t.Fatal("bad alias line: want an error")
	}
	if err := ix.ParseAlias(strings.NewReader("alias pci:[ nvme\n")); err == nil {
		t.Fatal("bad alias pattern: want an error")
	}
}

// TestHostIndex resolves the storage modules against the host's real
// modules.dep when the kernel package is installed.
func TestHostIndex(t *testing.T) {
	dirs, _ := filepath.Glob("/lib/modules/*/modules.dep")
	if len(dirs) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("no /lib/modules/*/modules.dep (install linux-image-amd64)")
		}
		t.Skip("no /lib/modules/*/modules.dep")
	}
	ix, err := Load(filepath.Dir(dirs[0]))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ix.Resolve("nvme", "virtio_blk", "mlx5_core")
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range got {
		pos[m] = i
	}
	for _, m := range got {
		for _, d := range ix.Deps(m) {
			if p, ok := pos[d]; ok && p > pos[m] {
				t.Errorf("%s loads before its dependency %s", m, d)
			}
		}
	}
	if m := ix.Match("pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"); !slices.Contains(m, "ahci") {
		t.Errorf("AHCI controller modalias matched %v, want ahci", m)
	}
}

func FuzzParseAlias(f *testing.F) {
	f.Add("alias pci:v*d*sv*sd*bc01sc08i02* nvme\n")
	f.Add("# comment\nalias scsi:t-0x0[4-7]* sd_mod\n")
	f.Fuzz(func(t *testing.T, s string) {
		ix := New()
		if err := ix.ParseAlias(strings.NewReader(s)); err != nil {
			return
		}
		// Oracle: every parsed pattern is a valid glob and a module
		// matches a modalias equal to its literal pattern when the
		// pattern has no meta characters.
		for _, a := range ix.Aliases() {
			if !strings.ContainsAny(a.Pattern, `*?[\`) && !slices.Contains(ix.Match(a.Pattern), a.Module) {
				t.Fatalf("literal pattern %q does not match itself", a.Pattern)
			}
		}
	})
}

// FuzzParseDep parses fuzzed modules.dep text; whatever it accepts must
// resolve every module it lists, dependencies first and each once, or
// fail with a clear error (a cycle). Seeds include the lab's real
// Debian 6.1 lines (moved here from qemu, which uses this package).
func FuzzParseDep(f *testing.F) {
	f.Add("kernel/drivers/scsi/sd_mod.ko: kernel/block/t10-pi.ko kernel/drivers/scsi/scsi_mod.ko\nkernel/drivers/scsi/scsi_mod.ko:\nkernel/block/t10-pi.ko:\n")
	f.Add("a.ko: b.ko\nb.ko: a.ko\n")
	f.Add("x.ko:\n# comment\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		ix := New()
		if err := ix.ParseDep(strings.NewReader(text)); err != nil {
			return
		}
		for name := range ix.path {
			order, err := ix.Resolve(name)
			if err != nil {
				if err.Error() == "" {
					t.Fatal("empty error")
				}
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
				for _, d := range ix.Deps(m) {
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
