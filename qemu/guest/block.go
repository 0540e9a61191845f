package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// BlockDevice is a whole-disk block device as sysfs describes it.
type BlockDevice struct {
	Name             string // kernel name, "nvme0n1", "sda", "vdb", "nullb0"
	Path             string // device node, "/dev/" + Name
	Serial           string // drive serial, "" when the device has none
	Model            string // model string, "" when the device has none
	Controller       string // NVMe only: the controller's character device, "/dev/nvme0"
	Zoned            string // "none", "host-managed" or "host-aware"
	Size             int64  // bytes
	LogicalBlockSize int64  // bytes
	ZoneSectors      int64  // zone size in 512-byte sectors (queue/chunk_sectors), 0 if not zoned
	NrZones          int64  // queue/nr_zones
	MaxOpenZones     int64  // queue/max_open_zones, 0 = no limit
	MaxActiveZones   int64  // queue/max_active_zones, 0 = no limit
	Rotational       bool   // queue/rotational is 1
}

// ZoneSize is the zone size in bytes, 0 for a device that is not zoned.
func (b BlockDevice) ZoneSize() int64 { return b.ZoneSectors * 512 }

// BlockDevices lists the block devices under sysRoot ("/sys" in a guest, a
// fixture tree in tests), sorted by name. Attributes a device lacks are
// left empty; only an unreadable /sys/block is an error.
func BlockDevices(sysRoot string) ([]BlockDevice, error) {
	dir := filepath.Join(sysRoot, "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	var out []BlockDevice
	for _, e := range ents {
		d := filepath.Join(dir, e.Name())
		b := BlockDevice{Name: e.Name(), Path: "/dev/" + e.Name()}
		b.Serial = firstAttr(filepath.Join(d, "serial"), filepath.Join(d, "device", "serial"))
		if b.Serial == "" {
			if raw, err := os.ReadFile(filepath.Join(d, "device", "vpd_pg80")); err == nil {
				b.Serial = ParseVPD80(raw)
			}
		}
		b.Model = firstAttr(filepath.Join(d, "device", "model"))
		if strings.HasPrefix(b.Name, "nvme") {
			if l, err := os.Readlink(filepath.Join(d, "device")); err == nil && strings.HasPrefix(filepath.Base(l), "nvme") {
				b.Controller = "/dev/" + filepath.Base(l)
			}
		}
		b.Zoned = firstAttr(filepath.Join(d, "queue", "zoned"))
		if sectors := intAttr(filepath.Join(d, "size")); sectors > 0 {
			b.Size = sectors * 512
		}
		b.LogicalBlockSize = intAttr(filepath.Join(d, "queue", "logical_block_size"))
		if b.Zoned != "" && b.Zoned != "none" {
			b.ZoneSectors = intAttr(filepath.Join(d, "queue", "chunk_sectors"))
		}
		b.NrZones = intAttr(filepath.Join(d, "queue", "nr_zones"))
		b.MaxOpenZones = intAttr(filepath.Join(d, "queue", "max_open_zones"))
		b.MaxActiveZones = intAttr(filepath.Join(d, "queue", "max_active_zones"))
		b.Rotational = intAttr(filepath.Join(d, "queue", "rotational")) == 1
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ParseVPD80 extracts the serial number from a SCSI Unit Serial Number VPD
// page (0x80) as the kernel exposes it in device/vpd_pg80. It returns ""
// for anything that is not a well-formed page 0x80.
func ParseVPD80(raw []byte) string {
	if len(raw) < 4 || raw[1] != 0x80 {
		return ""
	}
	n := int(raw[2])<<8 | int(raw[3])
	body := raw[4:]
	if n < len(body) {
		body = body[:n]
	}
	return string(bytes.Trim(body, " \x00"))
}

// ErrNotFound says no block device matched.
var ErrNotFound = errors.New("block device not found")

// FindSerial returns the device with the given serial from list.
func FindSerial(list []BlockDevice, serial string) (BlockDevice, error) {
	for _, b := range list {
		if b.Serial == serial {
			return b, nil
		}
	}
	return BlockDevice{}, fmt.Errorf("serial %q: %w", serial, ErrNotFound)
}

// FindModel returns the devices whose model is model.
func FindModel(list []BlockDevice, model string) []BlockDevice {
	var out []BlockDevice
	for _, b := range list {
		if b.Model == model {
			out = append(out, b)
		}
	}
	return out
}

// pollInterval is how often the Wait functions re-read sysfs.
const pollInterval = 50 * time.Millisecond

// WaitFor re-reads sysRoot until match accepts one of the block devices and
// returns it, or until ctx ends.
func WaitFor(ctx context.Context, sysRoot, what string, match func(BlockDevice) bool) (BlockDevice, error) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last []BlockDevice
	for {
		list, err := BlockDevices(sysRoot)
		if err == nil {
			last = list
			for _, b := range list {
				if match(b) {
					return b, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return BlockDevice{}, fmt.Errorf("waiting for %s: %w (devices seen: %s)", what, ctx.Err(), Describe(last))
		case <-t.C:
		}
	}
}

// WaitSerial waits until a block device with the serial appears.
func WaitSerial(ctx context.Context, sysRoot, serial string) (BlockDevice, error) {
	return WaitFor(ctx, sysRoot, "serial "+strconv.Quote(serial), func(b BlockDevice) bool { return b.Serial == serial })
}

// WaitGone waits until no block device has the serial any more.
func WaitGone(ctx context.Context, sysRoot, serial string) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		list, err := BlockDevices(sysRoot)
		if err == nil {
			if _, err := FindSerial(list, serial); errors.Is(err, ErrNotFound) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for serial %q to disappear: %w (devices seen: %s)", serial, ctx.Err(), Describe(list))
		case <-t.C:
		}
	}
}

// Describe renders a device list in one line for error messages.
func Describe(list []BlockDevice) string {
	if len(list) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(list))
	for _, b := range list {
		s := b.Name
		if b.Serial != "" {
			s += " serial=" + b.Serial
		}
		if b.Model != "" {
			s += " model=" + strconv.Quote(b.Model)
		}
		if b.Zoned != "" && b.Zoned != "none" {
			s += " zoned=" + b.Zoned
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func firstAttr(paths ...string) string {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if s := strings.TrimSpace(strings.Trim(string(b), "\x00")); s != "" {
			return s
		}
	}
	return ""
}

func intAttr(path string) int64 {
	s := firstAttr(path)
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0
	}
	return n
}
