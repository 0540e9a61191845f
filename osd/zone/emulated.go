package zone

import (
	"context"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultZoneSize is the zone size used to emulate zones on conventional
// devices: 256 MiB, as on today's host-managed SMR drives.
const DefaultZoneSize = 256 << 20

// MinBlockSize is the smallest I/O alignment any device gets.
const MinBlockSize = 4096

// EmulatedOptions configure OpenEmulated. The zero value is usable.
type EmulatedOptions struct {
	// ZoneSize is the emulated zone size in bytes, a multiple of the block
	// size. Zero means DefaultZoneSize.
	ZoneSize int64
	// Buffered opens without O_DIRECT. Only for files on filesystems that
	// refuse O_DIRECT (tmpfs); never for a real drive.
	Buffered bool
}

// Emulated is a conventional block device or a plain file cut into zones
// in software. It keeps no write pointers: ReportZones returns CondUnknown
// and the caller finds each pointer by scanning. Reset zeroes the zone's
// first block, so a scan from the zone's start finds it empty; later bytes
// of the old contents stay until overwritten, so records must say which
// incarnation of a zone they belong to.
type Emulated struct {
	f    *os.File
	info Info
	zero []byte // one aligned block of zeros, for Reset
}

var _ Device = (*Emulated)(nil)

// OpenEmulated opens the block device or regular file at path read-write
// with O_DIRECT and emulates zones on it. A trailing partial zone is not
// used.
func OpenEmulated(path string, opts EmulatedOptions) (*Emulated, error) {
	flags := os.O_RDWR
	if !opts.Buffered {
		flags |= unix.O_DIRECT
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, fmt.Errorf("zone: open emulated device: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("zone: stat %s: %w", path, err)
	}
	kind := KindFile
	bs := int64(MinBlockSize)
	var size int64
	switch {
	case st.Mode().IsRegular():
		size = st.Size()
	case st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0:
		kind = KindEmulated
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, fmt.Errorf("zone: size of %s: %w", path, err)
		}
		lbs, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
		if err != nil {
			f.Close()
			return nil, &os.PathError{Op: "ioctl", Path: path, Err: os.NewSyscallError("ioctl(BLKSSZGET)", err)}
		}
		if int64(lbs) > bs {
			bs = int64(lbs)
		}
	default:
		f.Close()
		return nil, fmt.Errorf("zone: %s is neither a block device nor a regular file", path)
	}
	zs := opts.ZoneSize
	if zs == 0 {
		zs = DefaultZoneSize
	}
	if zs <= 0 || zs%bs != 0 {
		f.Close()
		return nil, fmt.Errorf("zone: zone size %d is not a positive multiple of block size %d", zs, bs)
	}
	n := size / zs
	if n < 1 {
		f.Close()
		return nil, fmt.Errorf("zone: %s holds %d bytes, less than one %d-byte zone", path, size, zs)
	}
	return &Emulated{
		f: f,
		info: Info{
			Path:      path,
			Kind:      kind,
			Size:      n * zs,
			ZoneSize:  zs,
			NumZones:  int(n),
			BlockSize: bs,
		},
		zero: AlignedBlock(int(bs)),
	}, nil
}

// Info implements Device.
func (d *Emulated) Info() Info { return d.info }

// ReportZones implements Device. Every zone is sequential-write-required
// in spirit, with an unknown write pointer.
func (d *Emulated) ReportZones(_ context.Context, first, n int) ([]Zone, error) {
	if n < 0 || CheckZone(d.info, first) != nil || first+n > d.info.NumZones {
		return nil, fmt.Errorf("%w: zones [%d, %d) on %s (%d zones)", ErrOutOfRange, first, first+n, d.info.Path, d.info.NumZones)
	}
	zs := make([]Zone, n)
	for i := range zs {
		start := d.info.ZoneStart(first + i)
		zs[i] = Zone{
			Index:    first + i,
			Start:    start,
			Len:      d.info.ZoneSize,
			Capacity: d.info.ZoneSize,
			WP:       start,
			Type:     TypeSeqWriteRequired,
			Cond:     CondUnknown,
		}
	}
	return zs, nil
}

// ReadAt implements Device.
func (d *Emulated) ReadAt(p []byte, off int64) (int, error) {
	if err := CheckIO(d.info, off, len(p)); err != nil {
		return 0, err
	}
	n, err := d.f.ReadAt(p, off)
	if err != nil {
		return n, fmt.Errorf("zone: read %d bytes at offset %d (zone %d): %w", len(p), off, d.info.ZoneOf(off), err)
	}
	return n, nil
}

// WriteAt implements Device.
func (d *Emulated) WriteAt(p []byte, off int64) (int, error) {
	if err := CheckIO(d.info, off, len(p)); err != nil {
		return 0, err
	}
	n, err := d.f.WriteAt(p, off)
	if err != nil {
		return n, fmt.Errorf("zone: write %d bytes at offset %d (zone %d): %w", len(p), off, d.info.ZoneOf(off), err)
	}
	return n, nil
}

// Flush implements Device: fdatasync, which on a block device is a cache
// flush.
func (d *Emulated) Flush(context.Context) error {
	if err := unix.Fdatasync(int(d.f.Fd())); err != nil {
		return &os.PathError{Op: "fdatasync", Path: d.info.Path, Err: err}
	}
	return nil
}

// Reset implements Device by zeroing the zone's first block. The zero
// block is durable only after the next Flush, like any write.
func (d *Emulated) Reset(_ context.Context, i int) error {
	if err := CheckZone(d.info, i); err != nil {
		return err
	}
	if _, err := d.f.WriteAt(d.zero, d.info.ZoneStart(i)); err != nil {
		return fmt.Errorf("zone: reset zone %d of %s: %w", i, d.info.Path, err)
	}
	return nil
}

// Finish implements Device; emulated zones hold no open resources.
func (d *Emulated) Finish(_ context.Context, i int) error { return CheckZone(d.info, i) }

// Close implements Device.
func (d *Emulated) Close() error { return d.f.Close() }

// AlignedBlock returns a zeroed buffer of n bytes whose start is aligned
// to MinBlockSize, as O_DIRECT needs.
func AlignedBlock(n int) []byte {
	b := make([]byte, n+MinBlockSize)
	off := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % MinBlockSize); r != 0 {
		off = MinBlockSize - r
	}
	return b[off : off+n : off+n]
}
