//go:build vmtest

package qemu_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/qemu"
)

// TestVMPowerCut boots twice on the same drive image: the first guest
// writes a block with O_DIRECT and fdatasync, says so, and keeps writing
// until the host kills QEMU; the second guest finds the synced block.
func TestVMPowerCut(t *testing.T) {
	drive := qemu.Drive{Kind: qemu.NVMe, ID: "cut", Serial: "CUT-1", Size: 64 << 20,
		Image: filepath.Join(t.TempDir(), "cut.img")}
	block := bytes.Repeat([]byte("durable."), 512) // 4 KiB
	const off = 4 << 20

	qemu.RunTest(t, qemu.Options{
		Boot:   "before",
		Drives: []qemu.Drive{drive},
		Host: func(ctx context.Context, vm *qemu.VM) error {
			if err := vm.WaitMark(ctx, "synced"); err != nil {
				return err
			}
			vm.Kill()
			return nil
		},
	}, func(t *testing.T, g *qemu.Guest) {
		dev, err := g.Device("CUT-1")
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(dev.Path, os.O_RDWR|unix.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		buf, err := unix.Mmap(-1, 0, len(block), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			t.Fatal(err)
		}
		copy(buf, block)
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			t.Fatal(err)
		}
		g.Mark("synced")
		// Keep the drive busy until the power goes; the test binary never
		// gets to exit on its own.
		for i := int64(0); ; i++ {
			if _, err := f.WriteAt(buf, off+4096*(1+i%64)); err != nil {
				t.Fatal(err)
			}
		}
	})
	if t.Failed() {
		return
	}

	qemu.RunTest(t, qemu.Options{Boot: "after", Drives: []qemu.Drive{drive}}, func(t *testing.T, g *qemu.Guest) {
		dev, err := g.Device("CUT-1")
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(dev.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got := make([]byte, len(block))
		if _, err := f.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, block) {
			t.Fatalf("%s: the block synced before the power cut is not there after it", dev.Path)
		}
	})
}
