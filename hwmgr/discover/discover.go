// Package discover finds the drives of a storage node and describes each one:
// identity (WWN, serial, vendor, model, firmware), geometry (size, sector
// sizes, zoned model and zone geometry), transport, flags and enclosure slot.
//
// It reads sysfs (through jaypipes/ghw where ghw has the field, directly
// where it has not), the udev database and /dev/disk/by-id, all below
// injectable roots so tests run on fixture trees. Watch rescans on kernel
// uevents (netlink) and periodically, and reports what changed.
package discover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Transport says how a drive is attached.
type Transport string

// Transports. SCSI covers every SCSI host that is neither SATA (libata) nor
// SAS nor USB: virtio-scsi, parallel SCSI, iSCSI; Drive.HostDriver tells
// which.
const (
	TransportSATA    Transport = "sata"
	TransportSAS     Transport = "sas"
	TransportNVMe    Transport = "nvme"
	TransportVirtio  Transport = "virtio" // virtio-blk
	TransportSCSI    Transport = "scsi"
	TransportUSB     Transport = "usb"
	TransportMMC     Transport = "mmc"
	TransportLoop    Transport = "loop"
	TransportUnknown Transport = "unknown"
)

// Zoned is the zoned model of a drive, as sysfs queue/zoned says it.
type Zoned string

// Zoned models.
const (
	ZonedNone        Zoned = "none"
	ZonedHostAware   Zoned = "host-aware"
	ZonedHostManaged Zoned = "host-managed"
)

// zonedUnknownPrefix marks a queue/zoned value this package does not know.
const zonedUnknownPrefix = "unknown:"

// IDSource says where Drive.StableIDs came from.
type IDSource string

// ID sources.
const (
	// IDsFromUdev: the names of the /dev/disk/by-id links udev made.
	IDsFromUdev IDSource = "udev"
	// IDsDerived: no by-id link exists (no udev, as in our initramfs);
	// the names are derived here from WWN, model and serial the way udev's
	// rules would name them.
	IDsDerived IDSource = "derived"
	// IDsNone: the drive reports neither WWN nor serial.
	IDsNone IDSource = "none"
)

// Drive is one whole block device that counts as a drive.
type Drive struct {
	Name    string `json:"name"`     // kernel name: sda, nvme0n1, vda, loop3
	DevPath string `json:"dev_path"` // DevRoot/<name>: /dev/sda on a live system
	// SysPath is the resolved device directory in sysfs (below SysRoot),
	// e.g. /sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda.
	SysPath   string   `json:"sys_path"`
	MajMin    string   `json:"maj_min"`               // "8:0"
	ByIDPaths []string `json:"by_id_paths,omitempty"` // existing /dev/disk/by-id links to this drive
	// StableIDs are by-id style names: the link names when udev made them,
	// otherwise derived (see IDSource).
	StableIDs []string `json:"stable_ids,omitempty"`
	IDSource  IDSource `json:"id_source"`

	WWN        string    `json:"wwn,omitempty"`
	Serial     string    `json:"serial,omitempty"`
	Vendor     string    `json:"vendor,omitempty"`
	Model      string    `json:"model,omitempty"`
	Firmware   string    `json:"firmware,omitempty"`
	Transport  Transport `json:"transport"`
	HostDriver string    `json:"host_driver,omitempty"` // ahci, mpt3sas, virtio_scsi, nvme, virtio_blk, loop

	SizeBytes          uint64 `json:"size_bytes"`
	LogicalSectorSize  uint64 `json:"logical_sector_size"`
	PhysicalSectorSize uint64 `json:"physical_sector_size"`
	Rotational         bool   `json:"rotational"`
	ReadOnly           bool   `json:"read_only"`
	Removable          bool   `json:"removable"`

	Zoned          Zoned  `json:"zoned"`
	ZoneSizeBytes  uint64 `json:"zone_size_bytes,omitempty"` // chunk_sectors × 512
	ZoneCount      uint64 `json:"zone_count,omitempty"`      // nr_zones
	MaxOpenZones   uint64 `json:"max_open_zones,omitempty"`  // 0: no limit
	MaxActiveZones uint64 `json:"max_active_zones,omitempty"`

	NVMe      *NVMeNamespace `json:"nvme,omitempty"`
	Enclosure *Slot          `json:"enclosure,omitempty"`
	// BackingFile is set for loop devices only.
	BackingFile string `json:"backing_file,omitempty"`
}

// NVMeNamespace locates an NVMe namespace on its controller.
type NVMeNamespace struct {
	Controller string `json:"controller"` // nvme0
	NSID       uint32 `json:"nsid"`
	Transport  string `json:"transport,omitempty"` // pcie, tcp, rdma, fc, loop
}

// Slot is the enclosure slot holding a drive (from /sys/class/enclosure).
type Slot struct {
	Enclosure string `json:"enclosure"` // enclosure device, e.g. 0:0:8:0
	// Bay is the slot's component name, as SES reports it ("Slot 01",
	// "ArrayDevice07", or the number when the enclosure gives no name).
	Bay string `json:"bay"`
	// Slot is the number in the component's slot file; -1 when absent.
	Slot int `json:"slot"`
	// LocatePath is the sysfs file that switches the locate LED ("1"/"0").
	LocatePath string `json:"locate_path,omitempty"`
	// FaultPath is the sysfs fault LED file, when present.
	FaultPath string `json:"fault_path,omitempty"`
}

// ID is the key the drive is known by across rescans: the first stable
// id (wwn-… preferred), else the kernel name.
func (d *Drive) ID() string {
	for _, id := range d.StableIDs {
		if strings.HasPrefix(id, "wwn-") {
			return id
		}
	}
	if len(d.StableIDs) > 0 {
		return d.StableIDs[0]
	}
	if d.Transport == TransportLoop && d.BackingFile != "" {
		return "loop-" + d.Name + ":" + d.BackingFile
	}
	return "name-" + d.Name
}

// Filter decides which block devices count as drives. The zero value
// counts real disks only: SATA, SAS, NVMe, virtio, SCSI, USB and MMC disks
// with a non-zero size. Never counted: partitions, device-mapper (dm-*), md
// RAID, optical drives (sr*, SCSI type 5), floppies, zram, ram disks, nbd,
// hidden NVMe multipath paths, null_blk test devices (nullb*), and loop
// devices unless Loop is set.
type Filter struct {
	// Loop counts attached loop devices (tests).
	Loop bool
	// LoopBackingDir, when set with Loop, counts only loop devices whose
	// backing file lies below this directory, so a test sees only the
	// loop devices it made.
	LoopBackingDir string
	// Names, when non-empty, counts only devices with these kernel names.
	Names []string
}

// Config says where to read from and which devices count. The zero value
// reads the live system.
type Config struct {
	SysRoot string // sysfs mount point; default /sys
	DevRoot string // devtmpfs; default /dev (for /dev/disk/by-id)
	// RunRoot holds the udev database at RunRoot/udev/data; default /run.
	RunRoot string
	Filter  Filter
	Logger  *slog.Logger // default slog.Default()
}

// Scanner discovers drives. It is safe for concurrent use.
type Scanner struct {
	sys, dev, run string
	filter        Filter
	log           *slog.Logger
}

// NewScanner returns a Scanner for cfg.
func NewScanner(cfg Config) *Scanner {
	s := &Scanner{sys: cfg.SysRoot, dev: cfg.DevRoot, run: cfg.RunRoot, filter: cfg.Filter, log: cfg.Logger}
	if s.sys == "" {
		s.sys = "/sys"
	}
	if s.dev == "" {
		s.dev = "/dev"
	}
	if s.run == "" {
		s.run = "/run"
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	// ghw joins its roots below a chroot of "/": they must be absolute.
	for _, p := range []*string{&s.sys, &s.dev, &s.run} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	return s
}

// Scan lists the drives that pass the filter, sorted by kernel name
// (sda before sdb before sdaa, nvme0n1 before nvme1n1).
func (s *Scanner) Scan(ctx context.Context) ([]Drive, error) {
	blockDir := filepath.Join(s.sys, "block")
	entries, err := os.ReadDir(blockDir)
	if err != nil {
		return nil, fmt.Errorf("discover: list %s: %w", blockDir, err)
	}
	sc := scan{udev: s.ghwDisks(), byID: s.byIDLinks(), slots: s.slots()}
	var drives []Drive
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("discover: scan %s: %w", blockDir, err)
		}
		name := e.Name()
		if !s.candidate(name) {
			continue
		}
		d, ok, err := s.describe(name, &sc)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// Gone between ReadDir and now (hot-unplug): not a drive any more.
				s.log.Debug("discover: device vanished during scan", "device", name, "err", err)
				continue
			}
			return nil, err
		}
		if ok {
			drives = append(drives, d)
		}
	}
	sort.Slice(drives, func(i, j int) bool { return lessName(drives[i].Name, drives[j].Name) })
	return drives, nil
}

// lessName orders kernel names naturally: digit runs by value
// (nvme2n1 < nvme10n1), and for letter-numbered disks (sd, vd, hd, xvd)
// a shorter letter run first (sdz < sdaa), as the kernel assigns them.
func lessName(a, b string) bool {
	ra, rb := runs(a), runs(b)
	for i := 0; i < len(ra) && i < len(rb); i++ {
		x, y := ra[i], rb[i]
		if x == y {
			continue
		}
		xd, yd := x[0] >= '0' && x[0] <= '9', y[0] >= '0' && y[0] <= '9'
		switch {
		case xd && yd:
			x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
			if len(x) != len(y) {
				return len(x) < len(y)
			}
		case i == 0 && !xd && !yd && len(x) != len(y) && letterDisk(x) && letterDisk(y) && x[:2] == y[:2]:
			return len(x) < len(y)
		}
		return x < y
	}
	return len(ra) < len(rb)
}

func letterDisk(s string) bool {
	for _, p := range []string{"sd", "vd", "hd", "xvd"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// runs splits s into alternating runs of digits and non-digits.
func runs(s string) []string {
	var out []string
	start := 0
	for i := 1; i <= len(s); i++ {
		if i == len(s) || (s[i] >= '0' && s[i] <= '9') != (s[i-1] >= '0' && s[i-1] <= '9') {
			out = append(out, s[start:i])
			start = i
		}
	}
	return out
}

// candidate rejects, by name alone, what never counts.
func (s *Scanner) candidate(name string) bool {
	if len(s.filter.Names) > 0 {
		found := false
		for _, n := range s.filter.Names {
			if n == name {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	for _, p := range []string{"dm-", "md", "sr", "zram", "ram", "fd", "nbd", "ublkb", "rbd", "mtdblock", "pmem", "nullb"} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	if strings.HasPrefix(name, "loop") {
		return s.filter.Loop
	}
	return true
}
