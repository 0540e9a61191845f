package zone

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Zone ioctls from linux/blkzoned.h, which golang.org/x/sys/unix lacks.
// An ioctl number is _IOC(dir, type, nr, size) = dir<<30 | size<<16 |
// type<<8 | nr, with dir 1 for _IOW, 2 for _IOR and 3 for _IOWR, type 0x12
// (the block layer's), struct blk_zone_report's header 16 bytes and
// struct blk_zone_range 16 bytes:
//
//	BLKREPORTZONE  _IOWR(0x12, 130, struct blk_zone_report) = 3<<30 | 16<<16 | 0x12<<8 | 130
//	BLKRESETZONE   _IOW(0x12, 131, struct blk_zone_range)   = 1<<30 | 16<<16 | 0x12<<8 | 131
//	BLKGETZONESZ   _IOR(0x12, 132, __u32)                   = 2<<30 |  4<<16 | 0x12<<8 | 132
//	BLKGETNRZONES  _IOR(0x12, 133, __u32)                   = 2<<30 |  4<<16 | 0x12<<8 | 133
//	BLKOPENZONE    _IOW(0x12, 134, struct blk_zone_range)
//	BLKCLOSEZONE   _IOW(0x12, 135, struct blk_zone_range)
//	BLKFINISHZONE  _IOW(0x12, 136, struct blk_zone_range)
const (
	iocWrite     = 1
	iocRead      = 2
	blkIoctlType = 0x12

	BLKREPORTZONE = (iocRead|iocWrite)<<30 | reportHeaderSize<<16 | blkIoctlType<<8 | 130
	BLKRESETZONE  = iocWrite<<30 | zoneRangeSize<<16 | blkIoctlType<<8 | 131
	BLKGETZONESZ  = iocRead<<30 | 4<<16 | blkIoctlType<<8 | 132
	BLKGETNRZONES = iocRead<<30 | 4<<16 | blkIoctlType<<8 | 133
	BLKOPENZONE   = iocWrite<<30 | zoneRangeSize<<16 | blkIoctlType<<8 | 134
	BLKCLOSEZONE  = iocWrite<<30 | zoneRangeSize<<16 | blkIoctlType<<8 | 135
	BLKFINISHZONE = iocWrite<<30 | zoneRangeSize<<16 | blkIoctlType<<8 | 136

	// BLK_ZONE_REP_CAPACITY: the report's capacity fields are valid.
	blkZoneRepCapacity = 1 << 0
)

// The report buffer (linux/blkzoned.h), all fields little-endian on the
// machines we run on (native order), sectors of 512 bytes:
//
//	struct blk_zone_report {     // 16 bytes
//	    __u64 sector;            //  0: first sector to report from
//	    __u32 nr_zones;          //  8: in: room for zones; out: zones filled
//	    __u32 flags;             // 12: out: BLK_ZONE_REP_CAPACITY
//	    struct blk_zone zones[]; // 16: nr_zones × 64 bytes
//	};
//	struct blk_zone {            // 64 bytes
//	    __u64 start;             //  0: sector
//	    __u64 len;               //  8: sectors
//	    __u64 wp;                // 16: sector
//	    __u8  type, cond, non_seq, reset; // 24..27
//	    __u8  resv[4];           // 28
//	    __u64 capacity;          // 32: sectors, valid with BLK_ZONE_REP_CAPACITY
//	    __u8  reserved[24];      // 40
//	};
const (
	reportHeaderSize = 16
	blkZoneSize      = 64
	zoneRangeSize    = 16
	sectorShift      = 9
	maxSector        = 1<<(63-sectorShift) - 1 // keeps byte offsets in int64
	reportBatch      = 1024                    // zones per BLKREPORTZONE call
)

// ReportError is a zone report buffer that does not decode, with the byte
// offset of the bad field.
type ReportError struct {
	Offset int
	Msg    string
}

func (e *ReportError) Error() string {
	return fmt.Sprintf("zone: bad zone report at byte %d: %s", e.Offset, e.Msg)
}

// decodeReport decodes a BLKREPORTZONE buffer into zones, with byte
// offsets. zoneSize (bytes, > 0) gives each zone's Index. Capacity is the
// reported capacity when the report has BLK_ZONE_REP_CAPACITY, else the
// zone's length. Conventional, read-only, offline and not-write-pointer
// zones report their WP at their end (the device's WP is undefined for
// them). It never panics; garbage gives a *ReportError.
func decodeReport(b []byte, zoneSize int64) ([]Zone, error) {
	if len(b) < reportHeaderSize {
		return nil, &ReportError{0, fmt.Sprintf("%d bytes, shorter than the %d-byte header", len(b), reportHeaderSize)}
	}
	if zoneSize <= 0 {
		return nil, &ReportError{0, fmt.Sprintf("zone size %d", zoneSize)}
	}
	ne := binary.NativeEndian
	n := ne.Uint32(b[8:])
	flags := ne.Uint32(b[12:])
	if uint64(n) > uint64(len(b)-reportHeaderSize)/blkZoneSize {
		return nil, &ReportError{8, fmt.Sprintf("%d zones do not fit %d bytes", n, len(b))}
	}
	zs := make([]Zone, 0, n)
	for k := range int(n) {
		at := reportHeaderSize + k*blkZoneSize
		e := b[at : at+blkZoneSize]
		start, length, wp, capa := ne.Uint64(e[0:]), ne.Uint64(e[8:]), ne.Uint64(e[16:]), ne.Uint64(e[32:])
		typ, cond := Type(e[24]), Cond(e[25])
		switch {
		case start > maxSector || length > maxSector || start+length > maxSector:
			return nil, &ReportError{at, fmt.Sprintf("zone at sector %d of %d sectors is past any device", start, length)}
		case length == 0:
			return nil, &ReportError{at + 8, fmt.Sprintf("zone at sector %d has length 0", start)}
		case typ != TypeConventional && typ != TypeSeqWriteRequired && typ != TypeSeqWritePreferred:
			return nil, &ReportError{at + 24, fmt.Sprintf("zone at sector %d has unknown type %d", start, typ)}
		}
		z := Zone{
			Start:    int64(start) << sectorShift,
			Len:      int64(length) << sectorShift,
			Capacity: int64(length) << sectorShift,
			Type:     typ,
			Cond:     cond,
		}
		if z.Start%zoneSize != 0 {
			return nil, &ReportError{at, fmt.Sprintf("zone start %d is not a multiple of the zone size %d", z.Start, zoneSize)}
		}
		z.Index = int(z.Start / zoneSize)
		if k > 0 && z.Start < zs[k-1].Start+zs[k-1].Len {
			return nil, &ReportError{at, fmt.Sprintf("zone at %d overlaps the one before", z.Start)}
		}
		if flags&blkZoneRepCapacity != 0 {
			if capa == 0 || capa > length {
				return nil, &ReportError{at + 32, fmt.Sprintf("zone at sector %d: capacity %d sectors, length %d", start, capa, length)}
			}
			z.Capacity = int64(capa) << sectorShift
		}
		switch cond {
		case CondEmpty, CondImpOpen, CondExpOpen, CondClosed:
			if typ == TypeConventional {
				return nil, &ReportError{at + 25, fmt.Sprintf("conventional zone at sector %d is %v", start, cond)}
			}
			limit := start + length
			if flags&blkZoneRepCapacity != 0 {
				limit = start + capa
			}
			if wp < start || wp > limit {
				return nil, &ReportError{at + 16, fmt.Sprintf("zone at sector %d (%v): write pointer %d outside it", start, cond, wp)}
			}
			z.WP = int64(wp) << sectorShift
		case CondFull:
			z.WP = z.Start + z.Len
		case CondNotWP, CondReadOnly, CondOffline:
			z.WP = z.Start + z.Len
		default:
			return nil, &ReportError{at + 25, fmt.Sprintf("zone at sector %d has unknown condition %#x", start, int(cond))}
		}
		if typ == TypeConventional {
			z.WP = z.Start + z.Len
		}
		zs = append(zs, z)
	}
	return zs, nil
}

// Zoned is a Linux zoned block device (host-managed SMR, NVMe ZNS,
// null_blk, scsi_debug ZBC), opened with O_DIRECT. The kernel keeps the
// write pointers: a write anywhere but a zone's write pointer fails (EIO,
// or EREMOTEIO on SCSI).
type Zoned struct {
	f    *os.File
	info Info
	geo  Geometry
}

var _ Device = (*Zoned)(nil)

// ZonedOptions configure OpenZoned. The zero value is usable.
type ZonedOptions struct {
	// SysRoot is where sysfs is mounted. Default DefaultSysRoot.
	SysRoot string
}

// OpenZoned opens the zoned block device at path read-write with
// O_DIRECT. Its geometry comes from sysfs and is checked against
// BLKGETZONESZ and BLKGETNRZONES. A trailing zone smaller than the zone
// size (a runt zone) is not used. Host-aware devices open too; their
// kernel does not refuse writes off the write pointer.
func OpenZoned(path string, opts ZonedOptions) (*Zoned, error) {
	dir, err := SysfsDir(opts.SysRoot, path)
	if err != nil {
		return nil, err
	}
	geo, err := ReadGeometry(dir)
	if err != nil {
		return nil, err
	}
	if !geo.Zoned() {
		return nil, fmt.Errorf("zone: %s is not a zoned device (%s says %q)", path, dir, geo.Model)
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		return nil, fmt.Errorf("zone: open zoned device: %w", err)
	}
	d := &Zoned{f: f, geo: geo}
	d.info = Info{
		Path:      path,
		Kind:      KindZoned,
		ZoneSize:  geo.ZoneSize,
		NumZones:  int(geo.Size / geo.ZoneSize),
		BlockSize: max(MinBlockSize, geo.LogicalBlockSize),
		MaxOpen:   geo.MaxOpen,
		MaxActive: geo.MaxActive,
	}
	d.info.Size = int64(d.info.NumZones) * geo.ZoneSize
	zsz, err := d.ioctlU32(BLKGETZONESZ, "BLKGETZONESZ")
	if err == nil && int64(zsz)<<sectorShift != geo.ZoneSize {
		err = fmt.Errorf("zone: %s: BLKGETZONESZ says %d sectors, sysfs %s says %d bytes", path, zsz, dir, geo.ZoneSize)
	}
	if err == nil {
		var nz uint32
		nz, err = d.ioctlU32(BLKGETNRZONES, "BLKGETNRZONES")
		if err == nil && int(nz) != geo.NumZones {
			err = fmt.Errorf("zone: %s: BLKGETNRZONES says %d zones, sysfs %s says %d", path, nz, dir, geo.NumZones)
		}
	}
	if err == nil && d.info.NumZones < 1 {
		err = fmt.Errorf("zone: %s: no whole zone", path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

// Geometry returns what sysfs said about the device.
func (d *Zoned) Geometry() Geometry { return d.geo }

// Info implements Device.
func (d *Zoned) Info() Info { return d.info }

func (d *Zoned) ioctlErr(name string, err error) error {
	return &os.PathError{Op: "ioctl", Path: d.info.Path, Err: os.NewSyscallError("ioctl("+name+")", err)}
}

func (d *Zoned) ioctlU32(req uintptr, name string) (uint32, error) {
	var v uint32
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), req, uintptr(unsafe.Pointer(&v))); e != 0 {
		return 0, d.ioctlErr(name, e)
	}
	return v, nil
}

// zoneRange runs one of the zone management ioctls on zone i.
func (d *Zoned) zoneRange(ctx context.Context, req uintptr, name string, i int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckZone(d.info, i); err != nil {
		return err
	}
	var r [zoneRangeSize]byte
	binary.NativeEndian.PutUint64(r[0:], uint64(d.info.ZoneStart(i))>>sectorShift)
	binary.NativeEndian.PutUint64(r[8:], uint64(d.info.ZoneSize)>>sectorShift)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), req, uintptr(unsafe.Pointer(&r[0]))); e != 0 {
		return fmt.Errorf("zone %d: %w", i, d.ioctlErr(name, e))
	}
	return nil
}

// ReportZones implements Device with BLKREPORTZONE, in batches.
func (d *Zoned) ReportZones(ctx context.Context, first, n int) ([]Zone, error) {
	if n < 0 || CheckZone(d.info, first) != nil || first+n > d.info.NumZones {
		return nil, fmt.Errorf("%w: zones [%d, %d) on %s (%d zones)", ErrOutOfRange, first, first+n, d.info.Path, d.info.NumZones)
	}
	out := make([]Zone, 0, n)
	buf := make([]byte, reportHeaderSize+min(n, reportBatch)*blkZoneSize)
	for len(out) < n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		next := first + len(out)
		want := min(n-len(out), reportBatch)
		if err := d.reportRaw(buf[:reportHeaderSize+want*blkZoneSize], next); err != nil {
			return nil, err
		}
		zs, err := decodeReport(buf[:reportHeaderSize+want*blkZoneSize], d.info.ZoneSize)
		if err != nil {
			return nil, fmt.Errorf("zone: %s: report from zone %d: %w", d.info.Path, next, err)
		}
		if len(zs) == 0 {
			return nil, fmt.Errorf("zone: %s: report from zone %d returned no zones", d.info.Path, next)
		}
		for k, z := range zs {
			if z.Index != next+k || z.Len != d.info.ZoneSize {
				return nil, fmt.Errorf("zone: %s: report from zone %d: got zone %d at %d of %d bytes, want zone %d of %d bytes", d.info.Path, next, z.Index, z.Start, z.Len, next+k, d.info.ZoneSize)
			}
		}
		out = append(out, zs[:min(len(zs), n-len(out))]...)
	}
	return out, nil
}

// reportRaw runs BLKREPORTZONE from zone first into buf, which has room
// for (len(buf)-16)/64 zones.
func (d *Zoned) reportRaw(buf []byte, first int) error {
	clear(buf)
	binary.NativeEndian.PutUint64(buf[0:], uint64(d.info.ZoneStart(first))>>sectorShift)
	binary.NativeEndian.PutUint32(buf[8:], uint32((len(buf)-reportHeaderSize)/blkZoneSize))
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), BLKREPORTZONE, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return fmt.Errorf("zones from %d: %w", first, d.ioctlErr("BLKREPORTZONE", e))
	}
	return nil
}

// ReadAt implements Device.
func (d *Zoned) ReadAt(p []byte, off int64) (int, error) {
	if err := CheckIO(d.info, off, len(p)); err != nil {
		return 0, err
	}
	n, err := d.f.ReadAt(p, off)
	if err != nil {
		return n, fmt.Errorf("zone: read %d bytes at offset %d (zone %d): %w", len(p), off, d.info.ZoneOf(off), err)
	}
	return n, nil
}

// WriteAt implements Device. The kernel refuses a write that is not at
// the zone's write pointer, crosses the zone's capacity or needs a zone
// past the open/active limits.
func (d *Zoned) WriteAt(p []byte, off int64) (int, error) {
	if err := CheckIO(d.info, off, len(p)); err != nil {
		return 0, err
	}
	n, err := d.f.WriteAt(p, off)
	if err != nil {
		return n, fmt.Errorf("zone: write %d bytes at offset %d (zone %d): %w", len(p), off, d.info.ZoneOf(off), err)
	}
	return n, nil
}

// Flush implements Device: fdatasync, a cache flush of the device.
func (d *Zoned) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(d.f.Fd())); err != nil {
		return &os.PathError{Op: "fdatasync", Path: d.info.Path, Err: err}
	}
	return nil
}

// Reset implements Device with BLKRESETZONE.
func (d *Zoned) Reset(ctx context.Context, i int) error {
	return d.zoneRange(ctx, BLKRESETZONE, "BLKRESETZONE", i)
}

// Finish implements Device with BLKFINISHZONE.
func (d *Zoned) Finish(ctx context.Context, i int) error {
	return d.zoneRange(ctx, BLKFINISHZONE, "BLKFINISHZONE", i)
}

// OpenZone opens zone i explicitly with BLKOPENZONE.
func (d *Zoned) OpenZone(ctx context.Context, i int) error {
	return d.zoneRange(ctx, BLKOPENZONE, "BLKOPENZONE", i)
}

// CloseZone closes zone i with BLKCLOSEZONE.
func (d *Zoned) CloseZone(ctx context.Context, i int) error {
	return d.zoneRange(ctx, BLKCLOSEZONE, "BLKCLOSEZONE", i)
}

// Close implements Device.
func (d *Zoned) Close() error { return d.f.Close() }
