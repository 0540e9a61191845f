package qemu

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stowage/stowage/image/kmod"
)

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
	ix, err := kmod.Load(k.ModulesDir)
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
		if _, err := os.Stat(filepath.Join(k.ModulesDir, p)); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	for _, pair := range [][2]string{{"nvme_core", "nvme"}, {"scsi_mod", "sd_mod"}, {"libata", "ahci"}, {"dm_mod", "dm_flakey"}, {"virtio_ring", "virtio_blk"}} {
		if pos[pair[0]] >= pos[pair[1]] {
			t.Errorf("%s loads at %d, not before %s at %d", pair[0], pos[pair[0]], pair[1], pos[pair[1]])
		}
	}
}
