//go:build vmtest

package qemu_test

import (
	"os"
	"testing"

	"github.com/stowage/stowage/qemu"
)

// TestVMDrives boots one guest with a drive of every kind and finds each
// one by its serial, with the kind's expected properties.
func TestVMDrives(t *testing.T) {
	opts := qemu.Options{Drives: []qemu.Drive{
		{Kind: qemu.NVMe, Serial: "NVME-CONV-1"},
		{Kind: qemu.NVMeZNS, Serial: "NVME-ZNS-1", ZoneSize: 32 << 20},
		{Kind: qemu.SATA, Serial: "SATA-1", Model: "STOWAGE SATA", RotationRate: 1},
		{Kind: qemu.VirtioBlk, Serial: "VIRTIO-1", Size: 256 << 20},
		{Kind: qemu.SCSI, Serial: "SCSI-1", Model: "STW-SCSI", RotationRate: 7200},
	}}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		for _, d := range g.Drives {
			b, err := g.Device(d.Serial)
			if err != nil {
				t.Fatalf("drive %s (%s): %v", d.ID, d.Kind, err)
			}
			t.Logf("%s %s -> %s model=%q zoned=%s size=%d", d.Kind, d.Serial, b.Name, b.Model, b.Zoned, b.Size)
			if b.Size != d.Size {
				t.Errorf("drive %s: size %d, want %d", d.ID, b.Size, d.Size)
			}
			wantZoned := "none"
			if d.Kind == qemu.NVMeZNS {
				wantZoned = "host-managed"
			}
			if b.Zoned != wantZoned {
				t.Errorf("drive %s: zoned %q, want %q", d.ID, b.Zoned, wantZoned)
			}
			if d.RotationRate != 0 && b.Rotational != (d.RotationRate > 1) {
				t.Errorf("drive %s: rotational %v with rotation rate %d", d.ID, b.Rotational, d.RotationRate)
			}
			if d.Model != "" && b.Model != d.Model {
				t.Errorf("drive %s: model %q, want %q", d.ID, b.Model, d.Model)
			}
		}
	})
	// Default images live in the run's temporary directory, never in the
	// package directory.
	for _, d := range opts.Drives {
		if _, err := os.Stat(d.Serial + ".img"); err == nil {
			t.Errorf("image %s.img left in the package directory", d.Serial)
		}
	}
	if _, err := os.Stat("d0.img"); err == nil {
		t.Error("image d0.img left in the package directory")
	}
}
