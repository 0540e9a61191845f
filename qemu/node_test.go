package qemu

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestNodeDrives(t *testing.T) {
	dir := t.TempDir()
	ds := NodeDrives(dir, 0)
	if len(ds) != 12 {
		t.Fatalf("%d drives, want 12", len(ds))
	}
	kinds := map[DriveKind]int{}
	ids, serials := map[string]bool{}, map[string]bool{}
	for i, d := range ds {
		kinds[d.Kind]++
		full, err := d.withDefaults(i, dir)
		if err != nil {
			t.Fatal(err)
		}
		// The controllers' ids (ahci0, scsi0) must not clash with a drive's.
		if full.ID == "ahci0" || full.ID == "scsi0" || ids[full.ID] || serials[full.Serial] {
			t.Errorf("drive %d: id %q / serial %q clashes", i, full.ID, full.Serial)
		}
		ids[full.ID], serials[full.Serial] = true, true
		if full.Image != filepath.Join(dir, full.ID+".img") || full.Size != 1<<30 {
			t.Errorf("drive %s: image %s size %d", full.ID, full.Image, full.Size)
		}
	}
	want := map[DriveKind]int{NVMeZNS: 3, NVMe: 3, SATA: 2, VirtioBlk: 2, SCSI: 2}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s drives, want %d", kinds[k], k, n)
		}
	}
	// Same directory, same drives: a second run finds its images.
	if again := NodeDrives(dir, 0); !slices.EqualFunc(ds, again, func(a, b Drive) bool { return a == b }) {
		t.Error("NodeDrives is not stable")
	}
}

func TestNodeMachine(t *testing.T) {
	img := t.TempDir()
	for _, f := range []string{"vmlinuz", "initramfs.cpio.gz"} {
		if err := os.WriteFile(filepath.Join(img, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	drives := filepath.Join(t.TempDir(), "drives")
	m, err := Node{ImageDir: img, DrivesDir: drives, HwmgrPort: 19741, OSDPort: 19742, Cmdline: "stowage.rescue=1"}.Machine()
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(m.ExtraArgs, " ")
	for _, want := range []string{"hostfwd=tcp:127.0.0.1:19741-:9741", "hostfwd=tcp:127.0.0.1:19742-:9742", "virtio-net-pci", "virtio-rng-pci"} {
		if !strings.Contains(args, want) {
			t.Errorf("QEMU args %q lack %q", args, want)
		}
	}
	if len(m.Drives) != 12 || m.Dir != drives || !strings.HasSuffix(m.Cmdline, " stowage.rescue=1") || m.Kernel != filepath.Join(img, "vmlinuz") {
		t.Errorf("machine %+v", m)
	}
	if st, err := os.Stat(drives); err != nil || !st.IsDir() {
		t.Errorf("drives dir not created: %v", err)
	}
	for _, bad := range []Node{
		{ImageDir: img, DrivesDir: drives, HwmgrPort: 1, OSDPort: 1},
		{ImageDir: img, DrivesDir: drives},
		{ImageDir: t.TempDir(), DrivesDir: drives, HwmgrPort: 1, OSDPort: 2},
		{DrivesDir: drives, HwmgrPort: 1, OSDPort: 2},
	} {
		if _, err := bad.Machine(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestFreePort(t *testing.T) {
	p, err := FreePort(0)
	if err != nil || p <= 0 {
		t.Fatal(p, err)
	}
	if q, err := FreePort(p); err != nil || q != p {
		t.Errorf("free port %d not kept: %d %v", p, q, err)
	}
}
