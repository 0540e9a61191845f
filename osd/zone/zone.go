// Package zone is the OSD's one seam for device I/O: a drive seen as a row
// of equal zones, each written only at its write pointer and reset whole.
//
// Three kinds of device sit behind the Device interface:
//
//   - KindZoned: a Linux zoned block device (host-managed SMR through
//     ZBC/ZAC, NVMe ZNS). The kernel keeps the write pointers and refuses a
//     write anywhere else; ReportZones returns them.
//   - KindEmulated: a conventional block device (a plain HDD, a loop device)
//     cut into zones in software. The device keeps no write pointers; the
//     engine keeps the rule and, after a restart, finds each pointer by
//     scanning for the last valid record (ReportZones says CondUnknown).
//   - KindFile: a plain file with emulated zones, for unit tests.
//
// All data I/O is aligned to Info.BlockSize (at least 4 KiB) in offset and
// length. The caller writes at most once in flight per zone and keeps no
// more zones open than Info.MaxOpen / Info.MaxActive allow.
//
// Open picks the kind from the device (sysfs queue/zoned). For tests, Mem
// is an in-memory device that can lose power (Crash, CrashAt,
// CrashReordered) and Faulty wraps any Device to inject errors and
// corruption; both implement the same interface, the way Pebble's vfs and
// errorfs do for files. README.md has the crash model.
package zone

import (
	"context"
	"errors"
	"fmt"
)

// Kind says how a device keeps its zones.
type Kind int

// The kinds of device.
const (
	KindFile     Kind = iota + 1 // plain file, zones emulated (tests)
	KindEmulated                 // conventional block device, zones emulated
	KindZoned                    // Linux zoned block device: the kernel keeps write pointers
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindEmulated:
		return "emulated"
	case KindZoned:
		return "zoned"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Info is a device's fixed geometry and limits.
type Info struct {
	Path      string
	Kind      Kind
	Size      int64 // usable bytes: NumZones × ZoneSize
	ZoneSize  int64 // bytes between zone starts
	NumZones  int
	BlockSize int64 // I/O alignment for offsets and lengths (≥ 4096)
	MaxOpen   int   // most zones open at once; 0: no limit
	MaxActive int   // most zones open or closed-but-not-full at once; 0: no limit
}

// ZoneStart returns the byte offset where zone i starts.
func (in Info) ZoneStart(i int) int64 { return int64(i) * in.ZoneSize }

// ZoneOf returns the zone that holds byte offset off.
func (in Info) ZoneOf(off int64) int { return int(off / in.ZoneSize) }

// Type is a zone's write rule.
type Type int

// Zone types (linux/blkzoned.h BLK_ZONE_TYPE_*).
const (
	TypeConventional      Type = 1 // random writes allowed (no write pointer)
	TypeSeqWriteRequired  Type = 2 // host-managed: write only at the write pointer
	TypeSeqWritePreferred Type = 3 // host-aware
)

// Cond is a zone's condition.
type Cond int

// Zone conditions (linux/blkzoned.h BLK_ZONE_COND_*), plus CondUnknown for
// emulated zones whose write pointer only a scan can tell.
const (
	CondNotWP    Cond = 0x0
	CondEmpty    Cond = 0x1
	CondImpOpen  Cond = 0x2
	CondExpOpen  Cond = 0x3
	CondClosed   Cond = 0x4
	CondReadOnly Cond = 0xd
	CondFull     Cond = 0xe
	CondOffline  Cond = 0xf
	CondUnknown  Cond = 0x100
)

func (c Cond) String() string {
	switch c {
	case CondNotWP:
		return "not-wp"
	case CondEmpty:
		return "empty"
	case CondImpOpen:
		return "implicit-open"
	case CondExpOpen:
		return "explicit-open"
	case CondClosed:
		return "closed"
	case CondReadOnly:
		return "read-only"
	case CondFull:
		return "full"
	case CondOffline:
		return "offline"
	case CondUnknown:
		return "unknown"
	}
	return fmt.Sprintf("Cond(%#x)", int(c))
}

// Zone is one zone's state as the device reports it.
type Zone struct {
	Index    int
	Start    int64 // byte offset of the zone on the device
	Len      int64 // bytes from Start to the next zone
	Capacity int64 // writable bytes from Start (≤ Len; ZNS may have less)
	WP       int64 // byte offset of the write pointer; meaningless when Cond is CondUnknown
	Type     Type
	Cond     Cond
}

// Device is a drive seen as zones. Implementations are safe for concurrent
// use by several goroutines as long as writes to one zone are not
// concurrent.
type Device interface {
	// Info returns the device's geometry. It never changes.
	Info() Info
	// ReportZones returns the state of zones [first, first+n).
	ReportZones(ctx context.Context, first, n int) ([]Zone, error)
	// ReadAt reads len(p) bytes at off. off and len(p) are multiples of
	// BlockSize; p is suitably aligned for O_DIRECT (see AlignedBlock).
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt writes p at off, which must be the zone's write pointer on a
	// zoned device. Alignment as for ReadAt. The bytes are durable only
	// after a successful Flush.
	WriteAt(p []byte, off int64) (int, error)
	// Flush makes every completed write durable (a device cache flush).
	Flush(ctx context.Context) error
	// Reset empties zone i: its write pointer goes back to its start and
	// its old contents are gone for every later scan from the zone's
	// start. Bytes past a zoned device's write pointer are not data: some
	// devices (null_blk) still return the old bytes there, so never read
	// past it.
	Reset(ctx context.Context, i int) error
	// Finish moves zone i to full, releasing its open/active resources.
	Finish(ctx context.Context, i int) error
	// Close releases the device.
	Close() error
}

// ErrUnaligned is returned for I/O whose offset or length is not a multiple
// of the device's block size.
var ErrUnaligned = errors.New("zone: unaligned I/O")

// ErrOutOfRange is returned for I/O or zone indices past the device's end.
var ErrOutOfRange = errors.New("zone: out of range")

// CheckIO validates an I/O of n bytes at off against info, for
// implementations. It returns an error wrapping ErrUnaligned or
// ErrOutOfRange.
func CheckIO(info Info, off int64, n int) error {
	if off%info.BlockSize != 0 || int64(n)%info.BlockSize != 0 {
		return fmt.Errorf("%w: %d bytes at offset %d on %s (block size %d)", ErrUnaligned, n, off, info.Path, info.BlockSize)
	}
	if off < 0 || off+int64(n) > info.Size {
		return fmt.Errorf("%w: %d bytes at offset %d on %s (size %d)", ErrOutOfRange, n, off, info.Path, info.Size)
	}
	return nil
}

// CheckZone validates zone index i against info.
func CheckZone(info Info, i int) error {
	if i < 0 || i >= info.NumZones {
		return fmt.Errorf("%w: zone %d on %s (%d zones)", ErrOutOfRange, i, info.Path, info.NumZones)
	}
	return nil
}
