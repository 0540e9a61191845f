package zone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultSysRoot is where sysfs is mounted on a running system.
const DefaultSysRoot = "/sys"

// Zoned models, as sysfs queue/zoned spells them.
const (
	ModelNone          = "none"
	ModelHostManaged   = "host-managed"
	ModelHostAware     = "host-aware"
	sysfsSectorSize    = 512 // chunk_sectors and size count 512-byte sectors
	maxSysfsNumber     = 1 << 53
	sysfsQueueZoned    = "queue/zoned"
	sysfsChunkSectors  = "queue/chunk_sectors"
	sysfsNrZones       = "queue/nr_zones"
	sysfsMaxOpenZones  = "queue/max_open_zones"
	sysfsMaxActive     = "queue/max_active_zones"
	sysfsLogicalBlock  = "queue/logical_block_size"
	sysfsPhysicalBlock = "queue/physical_block_size"
	sysfsSize          = "size"
)

// Geometry is what sysfs says about a block device's zones.
type Geometry struct {
	Model             string // ModelNone, ModelHostManaged or ModelHostAware
	Size              int64  // bytes (size × 512)
	ZoneSize          int64  // bytes (chunk_sectors × 512); 0 when not zoned
	NumZones          int    // nr_zones; 0 when not zoned
	MaxOpen           int    // max_open_zones; 0: no limit or not reported
	MaxActive         int    // max_active_zones; 0: no limit or not reported
	LogicalBlockSize  int64
	PhysicalBlockSize int64
}

// Zoned reports whether the kernel exposes zones for the device.
func (g Geometry) Zoned() bool { return g.Model == ModelHostManaged || g.Model == ModelHostAware }

// SysfsDir returns the sysfs directory of the block device at path,
// <sysRoot>/dev/block/<major>:<minor>, which sysfs links to the device's
// directory. sysRoot "" means DefaultSysRoot.
func SysfsDir(sysRoot, path string) (string, error) {
	if sysRoot == "" {
		sysRoot = DefaultSysRoot
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("zone: %s is not a block device", path)
	}
	return filepath.Join(sysRoot, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))), nil
}

// ReadGeometry reads the geometry of the block device whose sysfs
// directory is dir (e.g. /sys/block/nullb0, or what SysfsDir returns). A
// missing queue/zoned means ModelNone (old kernels, partitions, whose
// logical block size then reads as 512 unless present); a missing
// nr_zones is computed from the size; missing max_open_zones and
// max_active_zones mean no limit. Anything unreadable or out of range is
// an error naming the file.
func ReadGeometry(dir string) (Geometry, error) {
	var g Geometry
	model, err := readSysfs(dir, sysfsQueueZoned)
	noQueue := errors.Is(err, os.ErrNotExist)
	switch {
	case noQueue:
		model = ModelNone
	case err != nil:
		return g, err
	}
	switch model {
	case ModelNone, ModelHostManaged, ModelHostAware:
		g.Model = model
	default:
		return g, fmt.Errorf("zone: %s: unknown zoned model %q", filepath.Join(dir, sysfsQueueZoned), model)
	}
	num := func(name string, optional bool) (int64, error) {
		s, err := readSysfs(dir, name)
		if optional && errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 || v > maxSysfsNumber {
			return 0, fmt.Errorf("zone: %s: bad number %q", filepath.Join(dir, name), s)
		}
		return v, nil
	}
	sectors, err := num(sysfsSize, false)
	if err != nil {
		return g, err
	}
	g.Size = sectors * sysfsSectorSize
	if g.LogicalBlockSize, err = num(sysfsLogicalBlock, noQueue); err != nil {
		return g, err
	}
	if g.LogicalBlockSize == 0 {
		g.LogicalBlockSize = sysfsSectorSize // a partition: its disk's queue is elsewhere
	}
	if g.PhysicalBlockSize, err = num(sysfsPhysicalBlock, true); err != nil {
		return g, err
	}
	if g.PhysicalBlockSize == 0 {
		g.PhysicalBlockSize = g.LogicalBlockSize
	}
	for _, bs := range []int64{g.LogicalBlockSize, g.PhysicalBlockSize} {
		if bs < 512 || bs > 1<<20 || bs&(bs-1) != 0 {
			return g, fmt.Errorf("zone: %s: block size %d is not a power of two between 512 B and 1 MiB", dir, bs)
		}
	}
	if !g.Zoned() {
		return g, nil
	}
	chunk, err := num(sysfsChunkSectors, false)
	if err != nil {
		return g, err
	}
	if chunk == 0 {
		return g, fmt.Errorf("zone: %s: a zoned device with zero chunk_sectors", filepath.Join(dir, sysfsChunkSectors))
	}
	g.ZoneSize = chunk * sysfsSectorSize
	if g.ZoneSize%g.LogicalBlockSize != 0 {
		return g, fmt.Errorf("zone: %s: zone size %d is not a multiple of the logical block size %d", dir, g.ZoneSize, g.LogicalBlockSize)
	}
	nz, err := num(sysfsNrZones, true)
	if err != nil {
		return g, err
	}
	if nz == 0 {
		nz = (g.Size + g.ZoneSize - 1) / g.ZoneSize
	}
	if nz == 0 || nz > (g.Size+g.ZoneSize-1)/g.ZoneSize || nz < g.Size/g.ZoneSize {
		return g, fmt.Errorf("zone: %s: %d zones of %d bytes do not fit a %d-byte device", dir, nz, g.ZoneSize, g.Size)
	}
	g.NumZones = int(nz)
	mo, err := num(sysfsMaxOpenZones, true)
	if err != nil {
		return g, err
	}
	ma, err := num(sysfsMaxActive, true)
	if err != nil {
		return g, err
	}
	g.MaxOpen, g.MaxActive = int(mo), int(ma)
	return g, nil
}

func readSysfs(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("zone: sysfs: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
