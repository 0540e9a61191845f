package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DriveKind says how a drive is attached to the guest.
type DriveKind string

// The drive kinds. Every kind carries a serial the guest can find in sysfs
// (guest.BlockDevices); NVMe and SATA also answer SMART.
const (
	NVMe      DriveKind = "nvme"       // conventional NVMe namespace on its own controller
	NVMeZNS   DriveKind = "nvme-zns"   // zoned (ZNS) NVMe namespace on its own controller
	SATA      DriveKind = "sata"       // ide-hd on the AHCI controller "ahci0"
	VirtioBlk DriveKind = "virtio-blk" // virtio-blk-pci
	SCSI      DriveKind = "scsi"       // scsi-hd on the virtio-scsi controller "scsi0"
)

// Drive is one emulated drive. Zero values are the documented defaults.
type Drive struct {
	Kind DriveKind
	// ID is the QEMU device id, used by VM.Unplug and VM.Plug.
	// Default "d<index>".
	ID string
	// Serial is what the guest sees as the drive's serial (at most 20
	// characters for NVMe, SATA and virtio-blk). Default "STW" + upper-cased ID.
	Serial string
	// Model is the model string of SATA drives and the product of SCSI
	// drives (at most 16 characters); ignored for other kinds.
	Model string
	// Size in bytes of the sparse image file; default 1 GiB.
	Size int64
	// Image is the host file backing the drive; default <dir>/<ID>.img,
	// created sparse with Size bytes. An existing file is used as it is.
	Image string
	// BlockSize is the logical (and physical) block size; default 512,
	// 4096 for NVMeZNS.
	BlockSize int
	// ZoneSize and ZoneCapacity in bytes (NVMeZNS); defaults 64 MiB and
	// the zone size.
	ZoneSize, ZoneCapacity int64
	// MaxOpen and MaxActive zone limits (NVMeZNS); 0 = no limit.
	MaxOpen, MaxActive int
	// RotationRate (SATA and SCSI): 0 leaves it unreported, 1 says
	// "non-rotating" (SSD), other values are RPM (7200 makes a disk look
	// like a hard drive to the guest).
	RotationRate int
}

const (
	defaultDriveSize = 1 << 30
	defaultZoneSize  = 64 << 20
)

// withDefaults fills the zero fields of the i-th drive.
func (d Drive) withDefaults(i int, dir string) (Drive, error) {
	switch d.Kind {
	case NVMe, NVMeZNS, SATA, VirtioBlk, SCSI:
	default:
		return d, fmt.Errorf("drive %d: unknown kind %q", i, d.Kind)
	}
	if d.ID == "" {
		d.ID = "d" + strconv.Itoa(i)
	}
	if strings.ContainsAny(d.ID, ",= \t\n") {
		return d, fmt.Errorf("drive %d: bad id %q", i, d.ID)
	}
	if d.Serial == "" {
		d.Serial = "STW" + strings.ToUpper(d.ID)
	}
	if strings.ContainsAny(d.Serial, ",\n") {
		return d, fmt.Errorf("drive %s: bad serial %q", d.ID, d.Serial)
	}
	if d.Size == 0 {
		d.Size = defaultDriveSize
	}
	if d.RotationRate < 0 || d.RotationRate > 0xfffe {
		return d, fmt.Errorf("drive %s: rotation rate %d out of range", d.ID, d.RotationRate)
	}
	if d.BlockSize == 0 {
		d.BlockSize = 512
		if d.Kind == NVMeZNS {
			d.BlockSize = 4096
		}
	}
	if d.Kind == NVMeZNS {
		if d.ZoneSize == 0 {
			d.ZoneSize = defaultZoneSize
		}
		if d.ZoneCapacity == 0 {
			d.ZoneCapacity = d.ZoneSize
		}
		if d.ZoneCapacity > d.ZoneSize || d.Size%d.ZoneSize != 0 {
			return d, fmt.Errorf("drive %s: size %d, zone size %d, zone capacity %d: want capacity <= zone size dividing size",
				d.ID, d.Size, d.ZoneSize, d.ZoneCapacity)
		}
	}
	if d.Size <= 0 || d.Size%int64(d.BlockSize) != 0 {
		return d, fmt.Errorf("drive %s: size %d is not a positive multiple of block size %d", d.ID, d.Size, d.BlockSize)
	}
	if d.Image == "" {
		d.Image = filepath.Join(dir, d.ID+".img")
	}
	return d, nil
}

// createImage makes the sparse image file unless it exists.
func (d Drive) createImage() error {
	f, err := os.OpenFile(d.Image, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if os.IsExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("drive %s: %w", d.ID, err)
	}
	if err := f.Truncate(d.Size); err != nil {
		f.Close()
		return fmt.Errorf("drive %s: size image %s: %w", d.ID, d.Image, err)
	}
	return f.Close()
}

// nodeName is the QEMU block node of the drive's image.
func (d Drive) nodeName() string { return "drv-" + d.ID }

// prop is one QEMU device property.
type prop struct{ k, v string }

// qdev is one QEMU device: a driver and its properties, in order.
type qdev struct {
	driver string
	props  []prop
}

// arg renders the device for -device, escaping commas in values.
func (q qdev) arg() string {
	var b strings.Builder
	b.WriteString(q.driver)
	for _, p := range q.props {
		b.WriteString("," + p.k + "=" + strings.ReplaceAll(p.v, ",", ",,"))
	}
	return b.String()
}

// qmpArgs renders the device for the QMP device_add command.
func (q qdev) qmpArgs() map[string]any {
	m := map[string]any{"driver": q.driver}
	for _, p := range q.props {
		m[p.k] = p.v
	}
	return m
}

// blockdevArg is the -blockdev option of the drive's image.
func (d Drive) blockdevArg() string {
	return "driver=raw,node-name=" + d.nodeName() + ",file.driver=file,file.filename=" + strings.ReplaceAll(d.Image, ",", ",,")
}

// blockdevQMP is the blockdev-add argument of the drive's image.
func (d Drive) blockdevQMP() map[string]any {
	return map[string]any{
		"driver":    "raw",
		"node-name": d.nodeName(),
		"file":      map[string]any{"driver": "file", "filename": d.Image},
	}
}

// devices are the QEMU devices of the drive, controller first. bus is the
// bus for SATA ("ahci0.N") and SCSI ("scsi0.0") drives.
func (d Drive) devices(bus string) []qdev {
	bs := strconv.Itoa(d.BlockSize)
	blk := []prop{{"logical_block_size", bs}, {"physical_block_size", bs}}
	switch d.Kind {
	case NVMe:
		return []qdev{{"nvme", append([]prop{{"id", d.ID}, {"serial", d.Serial}, {"drive", d.nodeName()}}, blk...)}}
	case NVMeZNS:
		ns := []prop{{"id", d.ID + "-ns1"}, {"bus", d.ID}, {"drive", d.nodeName()}, {"nsid", "1"}}
		ns = append(ns, blk...)
		ns = append(ns, prop{"zoned", "true"},
			prop{"zoned.zone_size", strconv.FormatInt(d.ZoneSize, 10)},
			prop{"zoned.zone_capacity", strconv.FormatInt(d.ZoneCapacity, 10)},
			prop{"zoned.max_open", strconv.Itoa(d.MaxOpen)},
			prop{"zoned.max_active", strconv.Itoa(d.MaxActive)})
		return []qdev{
			{"nvme", []prop{{"id", d.ID}, {"serial", d.Serial}}},
			{"nvme-ns", ns},
		}
	case SATA:
		p := []prop{{"id", d.ID}, {"bus", bus}, {"drive", d.nodeName()}, {"serial", d.Serial}}
		if d.Model != "" {
			p = append(p, prop{"model", d.Model})
		}
		if d.RotationRate != 0 {
			p = append(p, prop{"rotation_rate", strconv.Itoa(d.RotationRate)})
		}
		return []qdev{{"ide-hd", append(p, blk...)}}
	case SCSI:
		p := []prop{{"id", d.ID}, {"bus", bus}, {"drive", d.nodeName()}, {"serial", d.Serial}}
		if d.Model != "" {
			p = append(p, prop{"product", d.Model})
		}
		if d.RotationRate != 0 {
			p = append(p, prop{"rotation_rate", strconv.Itoa(d.RotationRate)})
		}
		return []qdev{{"scsi-hd", append(p, blk...)}}
	default: // VirtioBlk
		return []qdev{{"virtio-blk-pci", append([]prop{{"id", d.ID}, {"drive", d.nodeName()}, {"serial", d.Serial}}, blk...)}}
	}
}

// modules are the guest kernel modules the drive kind needs.
func (k DriveKind) modules() []string {
	switch k {
	case NVMe, NVMeZNS:
		return []string{"nvme"}
	case SATA:
		return []string{"ahci", "sd_mod"}
	case SCSI:
		return []string{"virtio_pci", "virtio_scsi", "sd_mod"}
	case VirtioBlk:
		return []string{"virtio_pci", "virtio_blk"}
	}
	return nil
}
