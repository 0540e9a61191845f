//go:build vmtest

package qemu_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/qemu"
	"github.com/stowage/stowage/qemu/guest"
)

// A minimal, test-local wrapper of the zoned block ioctls of
// linux/blkzoned.h; osd/zone owns the real one.
const (
	blkReportZone = 0xC0101282 // _IOWR(0x12, 130, struct blk_zone_report)
	blkResetZone  = 0x40101283 // _IOW(0x12, 131, struct blk_zone_range)

	zoneTypeConventional = 1
	zoneTypeSeqRequired  = 2
)

// blkZone is struct blk_zone (64 bytes).
type blkZone struct {
	Start, Len, WP            uint64 // 512-byte sectors
	Type, Cond, NonSeq, Reset uint8
	_                         [4]uint8
	Capacity                  uint64
	_                         [24]uint8
}

// reportZones returns up to n zones starting at sector.
func reportZones(f *os.File, sector uint64, n int) ([]blkZone, error) {
	buf := make([]byte, 16+64*n)
	*(*uint64)(unsafe.Pointer(&buf[0])) = sector
	*(*uint32)(unsafe.Pointer(&buf[8])) = uint32(n)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkReportZone, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return nil, &os.PathError{Op: "ioctl(BLKREPORTZONE)", Path: f.Name(), Err: e}
	}
	got := int(*(*uint32)(unsafe.Pointer(&buf[8])))
	if got > n {
		return nil, fmt.Errorf("%s: BLKREPORTZONE returned %d zones for %d asked", f.Name(), got, n)
	}
	zones := make([]blkZone, got)
	for i := range zones {
		zones[i] = *(*blkZone)(unsafe.Pointer(&buf[16+64*i]))
	}
	return zones, nil
}

func resetZone(f *os.File, z blkZone) error {
	r := [2]uint64{z.Start, z.Len}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkResetZone, uintptr(unsafe.Pointer(&r[0]))); e != 0 {
		return &os.PathError{Op: fmt.Sprintf("ioctl(BLKRESETZONE) sector %d", z.Start), Path: f.Name(), Err: e}
	}
	return nil
}

// exerciseZones reports the zones of dev, checks the zone size, resets the
// first sequential-write-required zone, writes 8 KiB at its write pointer
// with O_DIRECT, checks the write pointer moved by exactly that much and
// reads the data back.
func exerciseZones(t *testing.T, dev guest.BlockDevice, wantZoneBytes int64) {
	t.Helper()
	if dev.Zoned != "host-managed" {
		t.Fatalf("%s: queue/zoned = %q, want host-managed", dev.Path, dev.Zoned)
	}
	if dev.ZoneSize() != wantZoneBytes {
		t.Fatalf("%s: zone size %d bytes in sysfs, want %d", dev.Path, dev.ZoneSize(), wantZoneBytes)
	}
	f, err := os.OpenFile(dev.Path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zones, err := reportZones(f, 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	if len(zones) == 0 {
		t.Fatalf("%s: BLKREPORTZONE returned no zones", dev.Path)
	}
	var seq *blkZone
	for i := range zones {
		z := &zones[i]
		if z.Len*512 != uint64(wantZoneBytes) {
			t.Fatalf("%s: zone %d at sector %d is %d bytes, want %d", dev.Path, i, z.Start, z.Len*512, wantZoneBytes)
		}
		if i > 0 && z.Start != zones[i-1].Start+zones[i-1].Len {
			t.Fatalf("%s: zone %d starts at %d, not where zone %d ends", dev.Path, i, z.Start, i-1)
		}
		if seq == nil && z.Type == zoneTypeSeqRequired {
			seq = z
		}
	}
	if seq == nil {
		t.Fatalf("%s: no sequential-write-required zone among %d", dev.Path, len(zones))
	}
	t.Logf("%s: %d zones of %d MiB reported (nr_zones %d), first sequential zone at sector %d (type %d cond %d wp %d)",
		dev.Path, len(zones), wantZoneBytes>>20, dev.NrZones, seq.Start, seq.Type, seq.Cond, seq.WP)
	// Dirty the zone first so the reset has something to undo.
	buf, err := unix.Mmap(-1, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	if err := resetZone(f, *seq); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	if _, err := f.WriteAt(buf, int64(seq.Start)*512); err != nil {
		t.Fatalf("%s: first write at zone start: %v", dev.Path, err)
	}
	if err := resetZone(f, *seq); err != nil {
		t.Fatal(err)
	}
	after, err := reportZones(f, seq.Start, 1)
	if err != nil {
		t.Fatal(err)
	}
	if after[0].WP != seq.Start {
		t.Fatalf("%s: after reset, wp %d, want zone start %d", dev.Path, after[0].WP, seq.Start)
	}
	// A write away from the write pointer must be refused (the kernel logs
	// an I/O error on the console for it; that is expected).
	if _, err := f.WriteAt(buf[:4096], int64(seq.Start)*512+64*1024); err == nil {
		t.Fatalf("%s: a write 64 KiB past the write pointer succeeded", dev.Path)
	}
	for i := range buf {
		buf[i] = byte(i*13 + 5)
	}
	want := bytes.Clone(buf)
	if _, err := f.WriteAt(buf, int64(after[0].WP)*512); err != nil {
		t.Fatalf("%s: write at wp %d: %v", dev.Path, after[0].WP, err)
	}
	moved, err := reportZones(f, seq.Start, 1)
	if err != nil {
		t.Fatal(err)
	}
	if moved[0].WP != seq.Start+16 {
		t.Fatalf("%s: after an 8 KiB write, wp %d, want %d", dev.Path, moved[0].WP, seq.Start+16)
	}
	clear(buf)
	if _, err := f.ReadAt(buf, int64(seq.Start)*512); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, want) {
		t.Fatalf("%s: read back differs from what was written at the write pointer", dev.Path)
	}
}

// TestVMZoned finds, in one boot, a ZNS namespace (zone size as asked), a
// zoned null_blk and a host-managed scsi_debug disk, and on each reports
// zones, resets one, writes at its write pointer and checks it advanced.
func TestVMZoned(t *testing.T) {
	const znsZone = 32 << 20
	opts := qemu.Options{
		Drives: []qemu.Drive{
			{Kind: qemu.NVMeZNS, Serial: "ZNS-ACCEPT", Size: 512 << 20, ZoneSize: znsZone, MaxOpen: 8, MaxActive: 8},
		},
		Modules: []qemu.Module{
			{Name: "null_blk", Params: "nr_devices=1 zoned=1 zone_size=16 gb=1 memory_backed=1"},
			{Name: "scsi_debug", Params: "zbc=managed dev_size_mb=128 zone_size_mb=8 zone_nr_conv=1"},
		},
	}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		zns, err := g.Device("ZNS-ACCEPT")
		if err != nil {
			t.Fatal(err)
		}
		if zns.MaxOpenZones != 8 || zns.MaxActiveZones != 8 {
			t.Errorf("%s: max_open_zones %d max_active_zones %d, want 8 and 8", zns.Path, zns.MaxOpenZones, zns.MaxActiveZones)
		}
		t.Run("nvme-zns", func(t *testing.T) { exerciseZones(t, zns, znsZone) })

		nullb, err := g.WaitName("nullb0")
		if err != nil {
			t.Fatal(err)
		}
		t.Run("null_blk", func(t *testing.T) { exerciseZones(t, nullb, 16<<20) })

		smr, err := g.WaitModel("scsi_debug")
		if err != nil {
			t.Fatal(err)
		}
		t.Run("scsi_debug", func(t *testing.T) { exerciseZones(t, smr, 8<<20) })
	})
}
