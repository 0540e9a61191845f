package zone

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// needRoot skips a test that needs root (loop devices) when not root and
// not under CI; under CI=true it fails instead.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root for loop devices, and CI is set")
	}
	t.Skip("needs root for loop devices (losetup); run as root or under CI")
}

// loopDevice attaches a fresh backing file of size bytes to a loop device
// with direct I/O and the given logical sector size, and detaches it when
// the test ends.
func loopDevice(t testing.TB, size int64, sectorSize int) string {
	t.Helper()
	needRoot(t)
	if _, err := exec.LookPath("losetup"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("losetup missing under CI")
		}
		t.Skip("losetup missing")
	}
	backing := filepath.Join(t.TempDir(), "backing")
	f, err := os.Create(backing)
	if err != nil {
		t.Fatal(err)
	}
	// Write the file out (not fallocate): O_DIRECT into unwritten extents
	// is slow on ext4.
	if _, err := f.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("losetup", "--find", "--show", "--direct-io=on", "--sector-size", strconv.Itoa(sectorSize), backing).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

func TestOpenPicksFileKind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drive")
	if err := os.WriteFile(path, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(path, Options{ZoneSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if in := d.Info(); in.Kind != KindFile || in.NumZones != 2 {
		t.Fatalf("info %+v, want 2 zones of file kind", in)
	}
	if _, err := Open(t.TempDir(), Options{}); err == nil {
		t.Fatal("a directory opened")
	}
	if _, err := Open("/dev/null", Options{}); err == nil || !strings.Contains(err.Error(), "neither a block device") {
		t.Fatalf("a character device: err = %v", err)
	}
}

// TestLoopEmulated runs the emulated kind on real loop devices with direct
// I/O, 512-byte and 4 KiB logical sectors: Open picks emulated from sysfs
// (queue/zoned is "none"), I/O goes through O_DIRECT (a misaligned buffer
// is refused by the kernel), data survives a close and reopen, and Reset
// zeroes a zone's first block.
func TestLoopEmulated(t *testing.T) {
	ctx := context.Background()
	for _, ss := range []int{512, 4096} {
		t.Run(strconv.Itoa(ss), func(t *testing.T) {
			dev := loopDevice(t, 8<<20+4096, ss)
			dir, err := SysfsDir("", dev)
			if err != nil {
				t.Fatal(err)
			}
			g, err := ReadGeometry(dir)
			if err != nil {
				t.Fatal(err)
			}
			if g.Model != ModelNone || g.Size != 8<<20+4096 || g.LogicalBlockSize != int64(ss) {
				t.Fatalf("sysfs geometry of %s: %+v", dev, g)
			}
			d, err := Open(dev, Options{ZoneSize: 2 << 20})
			if err != nil {
				t.Fatal(err)
			}
			in := d.Info()
			if in.Kind != KindEmulated || in.NumZones != 4 || in.Size != 8<<20 || in.BlockSize != 4096 || in.Path != dev {
				t.Fatalf("info %+v", in)
			}
			p := AlignedBlock(64 << 10)
			for i := range p {
				p[i] = byte(i*13 + ss)
			}
			off := in.ZoneStart(3) - int64(len(p))
			if _, err := d.WriteAt(p, off); err != nil {
				t.Fatal(err)
			}
			// O_DIRECT is really on: the kernel refuses a buffer that
			// is not aligned to the logical block size in memory.
			buf := AlignedBlock(8192)[1 : 4096+1]
			if _, err := d.WriteAt(buf, 0); !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "offset 0 (zone 0)") {
				t.Fatalf("misaligned buffer: err = %v, want EINVAL from O_DIRECT saying where", err)
			}
			if _, err := d.ReadAt(buf, 0); !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("misaligned read buffer: err = %v, want EINVAL from O_DIRECT", err)
			}
			if _, err := d.WriteAt(AlignedBlock(4096), 512); !errors.Is(err, ErrUnaligned) {
				t.Fatalf("offset 512: err = %v, want ErrUnaligned", err)
			}
			if _, err := d.WriteAt(AlignedBlock(4096), in.Size); !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("write past the last whole zone: err = %v, want ErrOutOfRange", err)
			}
			if err := d.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := d.Reset(ctx, 2); err != nil {
				t.Fatal(err)
			}
			if err := d.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			d, err = Open(dev, Options{ZoneSize: 2 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			q := AlignedBlock(len(p))
			if _, err := d.ReadAt(q, off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(q, p) {
				t.Fatal("data differs after close and reopen")
			}
			first := AlignedBlock(8192)
			if _, err := d.ReadAt(first, in.ZoneStart(2)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first[:4096], make([]byte, 4096)) {
				t.Fatal("reset did not zero the zone's first block")
			}
		})
	}
}

// TestOpenZonedOnLoopFails points Open at a sysfs tree that claims a real
// loop device is host-managed: Open goes the zoned way, and the ioctl
// cross-check refuses it. The same tree saying host-aware, or nothing,
// shows how Open picks. The zone ioctls themselves fail with errors naming
// the ioctl and the device.
func TestOpenZonedOnLoopFails(t *testing.T) {
	dev := loopDevice(t, 4<<20, 512)
	real, err := SysfsDir("", dev)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	fake, err := SysfsDir(root, dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(fake, "queue"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{
		"size": "8192", "queue/zoned": "host-managed", "queue/chunk_sectors": "2048",
		"queue/nr_zones": "4", "queue/logical_block_size": "512",
	} {
		if err := os.WriteFile(filepath.Join(fake, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err = Open(dev, Options{SysRoot: root}); err == nil || !strings.Contains(err.Error(), "BLKGETZONESZ says 0 sectors") {
		t.Fatalf("zoned open of a loop device: err = %v, want the BLKGETZONESZ cross-check to refuse it", err)
	}
	// Host-aware goes the zoned way too, unless asked to emulate; then the
	// emulated zones take the device's zone size.
	if err := os.WriteFile(filepath.Join(fake, "queue/zoned"), []byte("host-aware\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = Open(dev, Options{SysRoot: root}); err == nil || !strings.Contains(err.Error(), "BLKGETZONESZ") {
		t.Fatalf("host-aware open: err = %v, want the zoned path", err)
	}
	d, err := Open(dev, Options{SysRoot: root, HostAwareEmulated: true})
	if err != nil {
		t.Fatal(err)
	}
	if in := d.Info(); in.Kind != KindEmulated || in.ZoneSize != 1<<20 || in.NumZones != 4 {
		t.Fatalf("host-aware opened emulated: %+v, want 4 emulated zones of the device's 1 MiB", in)
	}
	d.Close()
	// No queue/zoned at all (a partition): emulated.
	if err := os.Remove(filepath.Join(fake, "queue/zoned")); err != nil {
		t.Fatal(err)
	}
	d, err = Open(dev, Options{SysRoot: root, ZoneSize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if in := d.Info(); in.Kind != KindEmulated || in.NumZones != 2 {
		t.Fatalf("no queue/zoned: %+v, want 2 emulated zones", in)
	}
	d.Close()
	// The zone ioctls themselves fail on a loop device; their errors name
	// the ioctl, the device and the zone.
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	z := &Zoned{f: f, info: Info{Path: dev, Kind: KindZoned, Size: 4 << 20, ZoneSize: 1 << 20, NumZones: 4, BlockSize: 4096}}
	defer z.Close()
	ctx := context.Background()
	for name, op := range map[string]func() error{
		"BLKRESETZONE":  func() error { return z.Reset(ctx, 1) },
		"BLKFINISHZONE": func() error { return z.Finish(ctx, 1) },
		"BLKOPENZONE":   func() error { return z.OpenZone(ctx, 1) },
		"BLKCLOSEZONE":  func() error { return z.CloseZone(ctx, 1) },
		"BLKREPORTZONE": func() error { _, err := z.ReportZones(ctx, 1, 2); return err },
	} {
		err := op()
		var pe *os.PathError
		var se *os.SyscallError
		if !errors.As(err, &pe) || pe.Op != "ioctl" || pe.Path != dev || !errors.As(err, &se) || se.Syscall != "ioctl("+name+")" || !strings.Contains(err.Error(), "1") {
			t.Errorf("%s on a loop device: err = %v, want a PathError wrapping ioctl(%s)", name, err, name)
		}
	}
	if _, err := OpenZoned(dev, ZonedOptions{}); err == nil || !strings.Contains(err.Error(), "not a zoned device") {
		t.Fatalf("OpenZoned with the real sysfs %s: err = %v", real, err)
	}
}
