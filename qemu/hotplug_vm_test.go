//go:build vmtest

package qemu_test

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/stowage/stowage/qemu"
)

// TestVMHotplug pulls an NVMe drive and a SCSI disk through QMP while the
// guest runs, sees them gone in the guest, plugs the same NVMe drive back
// (its data intact) and a new virtio-blk drive in, signals the guest over
// the control port, and the guest sees them come.
func TestVMHotplug(t *testing.T) {
	nvme := qemu.Drive{Kind: qemu.NVMe, ID: "pull", Serial: "HOT-NVME-1", Size: 64 << 20}
	opts := qemu.Options{
		Drives: []qemu.Drive{
			nvme,
			{Kind: qemu.SCSI, ID: "scsi", Serial: "HOT-SCSI-1", Size: 64 << 20},
			{Kind: qemu.VirtioBlk, ID: "stay", Serial: "HOT-STAY-1", Size: 64 << 20},
		},
		Host: func(ctx context.Context, vm *qemu.VM) error {
			if err := vm.WaitMark(ctx, "written"); err != nil {
				return err
			}
			d, _ := vm.Drive("pull")
			if err := vm.Unplug(ctx, "pull"); err != nil {
				return err
			}
			if err := vm.Unplug(ctx, "scsi"); err != nil {
				return err
			}
			if err := vm.WaitMark(ctx, "gone"); err != nil {
				return err
			}
			if err := vm.Plug(ctx, d); err != nil {
				return err
			}
			if err := vm.Plug(ctx, qemu.Drive{Kind: qemu.VirtioBlk, ID: "new", Serial: "HOT-NEW-1", Size: 32 << 20}); err != nil {
				return err
			}
			return vm.Signal(ctx, "plugged")
		},
	}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		pull, err := g.Device("HOT-NVME-1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Device("HOT-SCSI-1"); err != nil {
			t.Fatal(err)
		}
		pattern := bytes.Repeat([]byte("stowage!"), 512)
		f, err := os.OpenFile(pull.Path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(pattern, 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		g.Mark("written")
		for _, s := range []string{"HOT-NVME-1", "HOT-SCSI-1"} {
			if err := g.WaitGone(s, 2*time.Minute); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s gone", s)
		}
		if _, err := g.Device("HOT-STAY-1"); err != nil {
			t.Fatalf("the drive that stayed: %v", err)
		}
		g.Mark("gone")
		if err := g.WaitHost("plugged", 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		back, err := g.Device("HOT-NVME-1")
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(pattern))
		f, err = os.Open(back.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.ReadAt(got, 1<<20); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pattern) {
			t.Fatalf("%s: data written before the unplug is not there after the re-plug", back.Path)
		}
		n, err := g.Device("HOT-NEW-1")
		if err != nil {
			t.Fatal(err)
		}
		if n.Size != 32<<20 {
			t.Errorf("%s: size %d, want %d", n.Path, n.Size, 32<<20)
		}
		t.Logf("re-plugged %s as %s, new drive as %s", back.Serial, back.Name, n.Name)
	})
}
