package zone

import (
	"fmt"
	"os"
)

// Options configure Open. The zero value is usable.
type Options struct {
	// SysRoot is where sysfs is mounted. Default DefaultSysRoot.
	SysRoot string
	// ZoneSize is the zone size emulated on conventional devices and
	// files. Default DefaultZoneSize. Zoned devices have their own.
	ZoneSize int64
	// Buffered opens a regular file without O_DIRECT (tmpfs refuses it).
	// Never for a drive.
	Buffered bool
	// HostAwareEmulated opens host-aware drives with emulated zones
	// instead of as zoned devices (see Open).
	HostAwareEmulated bool
}

// Open opens the device at path as the right kind, from what it is:
//
//   - a regular file: KindFile (OpenEmulated);
//   - a block device whose sysfs queue/zoned says host-managed: KindZoned
//     (OpenZoned);
//   - host-aware: KindZoned too, unless opts.HostAwareEmulated. A
//     host-aware drive takes random writes, but it keeps write pointers
//     and resets zones cheaply, and the engine only ever appends, so its
//     write pointers are the truth after a crash exactly as on a
//     host-managed drive;
//   - none, or no queue/zoned at all (a partition, an old kernel):
//     KindEmulated (OpenEmulated).
func Open(path string, opts Options) (Device, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("zone: open: %w", err)
	}
	eo := EmulatedOptions{ZoneSize: opts.ZoneSize}
	switch {
	case st.Mode().IsRegular():
		eo.Buffered = opts.Buffered
		return OpenEmulated(path, eo)
	case st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0:
		return nil, fmt.Errorf("zone: open: %s is neither a block device nor a regular file", path)
	}
	dir, err := SysfsDir(opts.SysRoot, path)
	if err != nil {
		return nil, err
	}
	geo, err := ReadGeometry(dir)
	if err != nil {
		return nil, fmt.Errorf("zone: open %s: %w", path, err)
	}
	switch {
	case geo.Model == ModelHostManaged, geo.Model == ModelHostAware && !opts.HostAwareEmulated:
		return OpenZoned(path, ZonedOptions{SysRoot: opts.SysRoot})
	case geo.Model == ModelHostAware && opts.ZoneSize == 0:
		eo.ZoneSize = geo.ZoneSize
	}
	return OpenEmulated(path, eo)
}
