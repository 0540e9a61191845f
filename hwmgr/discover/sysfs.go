package discover

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/jaypipes/ghw"
	"github.com/jaypipes/ghw/pkg/block"
)

// udevFields are what ghw reads from the udev database for one disk.
type udevFields struct {
	vendor, model, serial, wwn string
}

// ghwDisks asks ghw for every disk under the configured roots and keeps the
// udev-derived identity fields ghw reads (model, serial, WWN, vendor),
// keyed by kernel name. ghw failing is not fatal: sysfs has the rest.
func (s *Scanner) ghwDisks() map[string]udevFields {
	out := map[string]udevFields{}
	if _, err := os.Stat(filepath.Join(s.run, "udev", "data")); err != nil {
		// No udev database (our initramfs): ghw would only repeat the
		// sysfs reads describe makes anyway.
		return out
	}
	info, err := block.New(
		ghw.WithChroot("/"),
		ghw.WithPathOverrides(map[string]string{"/sys": s.sys, "/run": s.run, "/dev": s.dev}),
		ghw.WithDisableWarnings(),
	)
	if err != nil {
		s.log.Warn("discover: ghw block scan failed; using sysfs only", "err", err)
		return out
	}
	known := func(v string) string {
		v = strings.TrimSpace(v)
		if v == "unknown" {
			return ""
		}
		return v
	}
	for _, d := range info.Disks {
		out[d.Name] = udevFields{
			vendor: known(d.Vendor),
			model:  strings.ReplaceAll(known(d.Model), "_", " "),
			serial: known(d.SerialNumber),
			wwn:    known(d.WWN),
		}
	}
	return out
}

// byIDLinks maps a kernel name to the names of the /dev/disk/by-id links
// that point at it (whole disks only; -partN links point at partitions).
func (s *Scanner) byIDLinks() map[string][]string {
	dir := filepath.Join(s.dev, "disk", "by-id")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string][]string{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		base := filepath.Base(target)
		out[base] = append(out[base], e.Name())
	}
	return out
}

// sysAttr reads one sysfs attribute, trimmed. A missing attribute is "".
// Attributes are small; a stack buffer avoids os.ReadFile's page-sized
// allocation per read (sysfs reports every file as 4096 bytes).
func sysAttr(path ...string) string {
	f, err := os.Open(filepath.Join(path...))
	if err != nil {
		return ""
	}
	defer f.Close()
	var buf [256]byte
	n, err := io.ReadFull(f, buf[:])
	switch {
	case err == nil: // longer than the buffer
		rest, _ := io.ReadAll(f)
		return strings.TrimSpace(string(append(buf[:n:n], rest...)))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return strings.TrimSpace(string(buf[:n]))
	}
	return ""
}

// sysUint reads a decimal sysfs attribute; missing or unparsable is 0.
func sysUint(path ...string) uint64 {
	v, err := strconv.ParseUint(sysAttr(path...), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// describe builds the Drive for /sys/block/<name>. ok is false when the
// device exists but does not count (hidden, empty, optical, filtered loop).
func (s *Scanner) describe(name string, sc *scan) (Drive, bool, error) {
	link := filepath.Join(s.sys, "block", name)
	real, err := resolve(link)
	if err != nil {
		return Drive{}, false, fmt.Errorf("discover: resolve %s: %w", link, err)
	}
	majmin := sysAttr(real, "dev")
	if majmin == "" {
		if _, err := os.Stat(real); errors.Is(err, fs.ErrNotExist) {
			return Drive{}, false, fmt.Errorf("discover: %s: %w", real, err)
		}
		return Drive{}, false, fmt.Errorf("discover: %s: no dev attribute", real)
	}
	if sysAttr(real, "hidden") == "1" || sysAttr(real, "partition") != "" {
		return Drive{}, false, nil
	}
	sectors := sysUint(real, "size")
	if sectors == 0 {
		return Drive{}, false, nil
	}
	devDir, _ := resolve(filepath.Join(real, "device"))
	if devDir != "" && sysAttr(devDir, "type") == "5" { // SCSI ROM
		return Drive{}, false, nil
	}
	d := Drive{
		Name:               name,
		DevPath:            filepath.Join(s.dev, name),
		SysPath:            real,
		MajMin:             majmin,
		SizeBytes:          sectors * 512,
		LogicalSectorSize:  sysUint(real, "queue", "logical_block_size"),
		PhysicalSectorSize: sysUint(real, "queue", "physical_block_size"),
		Rotational:         sysAttr(real, "queue", "rotational") == "1",
		ReadOnly:           sysAttr(real, "ro") == "1",
		Removable:          sysAttr(real, "removable") == "1",
		Transport:          classify(name, real),
	}
	if d.Transport == TransportLoop {
		d.BackingFile = sysAttr(real, "loop", "backing_file")
		d.HostDriver = "loop"
		if dir := s.filter.LoopBackingDir; dir != "" && !within(d.BackingFile, dir) {
			return Drive{}, false, nil
		}
	}
	s.zoned(&d, real)
	s.identity(&d, real, devDir, sc.udev[name])
	if (d.Transport == TransportSAS || d.Transport == TransportSCSI) && d.Vendor == "ATA" {
		// A SATA drive behind a SAS HBA (the HBA's SATL presents it as
		// SCSI with vendor "ATA"): it speaks ATA, smartctl needs -d sat.
		d.Transport = TransportSATA
	}
	s.hostDriver(&d, real, devDir)
	if d.Transport == TransportNVMe && devDir != "" {
		nsid, _ := strconv.ParseUint(sysAttr(real, "nsid"), 10, 32)
		d.NVMe = &NVMeNamespace{
			Controller: filepath.Base(devDir),
			NSID:       uint32(nsid),
			Transport:  sysAttr(devDir, "transport"),
		}
	}
	if devDir != "" {
		d.Enclosure = sc.slotOf(devDir)
	}
	if links := sc.byID[name]; len(links) > 0 {
		d.IDSource = IDsFromUdev
		for _, l := range links {
			d.ByIDPaths = append(d.ByIDPaths, filepath.Join(s.dev, "disk", "by-id", l))
		}
		d.StableIDs = append(d.StableIDs, links...)
	} else if ids := derivedIDs(&d); len(ids) > 0 {
		d.IDSource = IDsDerived
		d.StableIDs = ids
	} else {
		d.IDSource = IDsNone
	}
	return d, true, nil
}

// resolve follows a sysfs link the way libudev does: one readlink, the
// relative target joined to the link's directory, which must itself be a
// canonical path (/sys/block, a device directory). sysfs links point
// straight at canonical /sys/devices paths, so this equals EvalSymlinks
// at a tenth of the syscalls; an absolute target (not made by the kernel)
// falls back to EvalSymlinks. The result must exist.
func resolve(link string) (string, error) {
	target, err := os.Readlink(link)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && errors.Is(pe.Err, syscall.EINVAL) {
			return link, nil // not a link: a real directory
		}
		return "", err
	}
	if filepath.IsAbs(target) {
		return filepath.EvalSymlinks(link)
	}
	p := filepath.Join(filepath.Dir(link), target)
	if _, err := os.Lstat(p); err != nil {
		return "", err
	}
	return p, nil
}

// within reports whether path lies below dir.
func within(path, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

var (
	ataPort    = regexp.MustCompile(`^ata[0-9]+$`)
	scsiHost   = regexp.MustCompile(`^host[0-9]+$`)
	scsiTarget = regexp.MustCompile(`^target[0-9]+:[0-9]+:[0-9]+$`)
)

// classify derives the transport from the kernel name and the device's
// place in the sysfs device tree.
func classify(name, real string) Transport {
	switch {
	case strings.HasPrefix(name, "loop"):
		return TransportLoop
	case strings.HasPrefix(name, "nvme"):
		return TransportNVMe
	case strings.HasPrefix(name, "mmcblk"):
		return TransportMMC
	}
	elems := strings.Split(filepath.ToSlash(real), "/")
	var usb, ata, sas, virtio, host, target bool
	for _, e := range elems {
		switch {
		case strings.HasPrefix(e, "usb"):
			usb = true
		case ataPort.MatchString(e):
			ata = true
		case strings.HasPrefix(e, "end_device-"):
			sas = true
		case strings.HasPrefix(e, "virtio"):
			virtio = true
		case scsiHost.MatchString(e):
			host = true
		case scsiTarget.MatchString(e):
			target = true
		}
	}
	switch {
	case usb:
		return TransportUSB
	case ata:
		return TransportSATA
	case sas:
		return TransportSAS
	case host && target:
		return TransportSCSI
	case virtio && strings.HasPrefix(name, "vd"):
		return TransportVirtio
	}
	return TransportUnknown
}

// zoned fills the zoned model and zone geometry from queue/.
func (s *Scanner) zoned(d *Drive, real string) {
	z := sysAttr(real, "queue", "zoned")
	switch z {
	case "", "none":
		d.Zoned = ZonedNone
		return
	case string(ZonedHostAware), string(ZonedHostManaged):
		d.Zoned = Zoned(z)
	default:
		d.Zoned = Zoned(zonedUnknownPrefix + z)
	}
	d.ZoneSizeBytes = sysUint(real, "queue", "chunk_sectors") * 512
	d.ZoneCount = sysUint(real, "queue", "nr_zones")
	d.MaxOpenZones = sysUint(real, "queue", "max_open_zones")
	d.MaxActiveZones = sysUint(real, "queue", "max_active_zones")
}

// identity fills vendor, model, serial, firmware and WWN: sysfs first
// (it is there without udev), the udev database (through ghw) second.
func (s *Scanner) identity(d *Drive, real, devDir string, u udevFields) {
	first := func(vs ...string) string {
		for _, v := range vs {
			if v = strings.TrimSpace(v); v != "" {
				return v
			}
		}
		return ""
	}
	var vendor, model, serial, fw, wwid string
	if devDir != "" {
		vendor = sysAttr(devDir, "vendor")
		model = sysAttr(devDir, "model")
		fw = first(sysAttr(devDir, "firmware_rev"), sysAttr(devDir, "rev"))
		switch d.Transport {
		case TransportNVMe:
			serial = sysAttr(devDir, "serial")
			wwid = first(sysAttr(real, "wwid"), sysAttr(real, "device", "wwid"))
		case TransportSATA, TransportSAS, TransportSCSI, TransportUSB:
			if b, err := os.ReadFile(filepath.Join(devDir, "vpd_pg80")); err == nil {
				if sn, err := ParseVPD80(b); err == nil {
					serial = sn
				} else {
					s.log.Debug("discover: bad VPD page 0x80", "device", d.Name, "err", err)
				}
			}
			wwid = sysAttr(devDir, "wwid")
		}
	}
	if d.Transport == TransportVirtio {
		serial = sysAttr(real, "serial")
	}
	d.Vendor = first(vendor, u.vendor)
	if strings.HasPrefix(d.Vendor, "0x") { // a PCI/virtio vendor id, not a name
		d.Vendor = ""
	}
	d.Model = first(model, u.model)
	d.Serial = first(serial, u.serial)
	d.Firmware = fw
	d.WWN = first(u.wwn, wwnFromWWID(wwid))
}

// wwnFromWWID turns a sysfs wwid into a WWN: "naa.5000c500a1b2c3d4" →
// "0x5000c500a1b2c3d4"; NVMe "eui."/"uuid." ids are kept as they are;
// t10 vendor ids and the kernel's synthesized "nvme." ids are not WWNs.
func wwnFromWWID(wwid string) string {
	switch {
	case strings.HasPrefix(wwid, "naa."):
		return "0x" + strings.ToLower(strings.TrimPrefix(wwid, "naa."))
	case strings.HasPrefix(wwid, "eui."), strings.HasPrefix(wwid, "uuid."):
		return wwid
	}
	return ""
}

// hostDriver names the driver of the controller the drive hangs off.
func (s *Scanner) hostDriver(d *Drive, real, devDir string) {
	switch d.Transport {
	case TransportLoop:
		return
	case TransportSATA, TransportSAS, TransportSCSI, TransportUSB:
		for _, e := range strings.Split(filepath.ToSlash(real), "/") {
			if scsiHost.MatchString(e) {
				d.HostDriver = sysAttr(s.sys, "class", "scsi_host", e, "proc_name")
				return
			}
		}
	case TransportNVMe:
		if devDir != "" {
			d.HostDriver = driverName(filepath.Join(devDir, "device"))
		}
	case TransportVirtio:
		if devDir != "" {
			d.HostDriver = driverName(devDir)
		}
	}
}

func driverName(dir string) string {
	t, err := os.Readlink(filepath.Join(dir, "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// scan is what one Scan reads once and shares between drives.
type scan struct {
	udev  map[string]udevFields // by kernel name, from ghw
	byID  map[string][]string   // kernel name → by-id link names
	slots map[string]*Slot      // resolved component device dir → slot
}

// slots resolves every /sys/class/enclosure/<encl>/<component>/device
// link once per scan (a JBOD has 60-100 components; resolving them per
// drive would cost drives × components symlink walks).
func (s *Scanner) slots() map[string]*Slot {
	// /sys/class/enclosure/<encl> is itself a link: resolve it first, so
	// each component's relative device link is joined to a canonical path.
	encls, _ := os.ReadDir(filepath.Join(s.sys, "class", "enclosure"))
	out := map[string]*Slot{}
	for _, e := range encls {
		dir, err := resolve(filepath.Join(s.sys, "class", "enclosure", e.Name()))
		if err != nil {
			continue
		}
		comps, _ := os.ReadDir(dir)
		for _, c := range comps {
			comp := filepath.Join(dir, c.Name())
			target, err := resolve(filepath.Join(comp, "device"))
			if err != nil {
				continue // not a component, an empty slot or a dangling link
			}
			slot := &Slot{Enclosure: e.Name(), Bay: c.Name(), Slot: -1}
			if n, err := strconv.Atoi(sysAttr(comp, "slot")); err == nil {
				slot.Slot = n
			}
			// LED paths are given by class, as operators know them.
			byClass := filepath.Join(s.sys, "class", "enclosure", e.Name(), c.Name())
			if _, err := os.Stat(filepath.Join(comp, "locate")); err == nil {
				slot.LocatePath = filepath.Join(byClass, "locate")
			}
			if _, err := os.Stat(filepath.Join(comp, "fault")); err == nil {
				slot.FaultPath = filepath.Join(byClass, "fault")
			}
			out[target] = slot
		}
	}
	return out
}

// slotOf finds the enclosure component whose device link resolves to the
// drive's SCSI device or to an ancestor of it (an NVMe controller's PCI
// function in a U.2 backplane slot).
func (sc *scan) slotOf(devDir string) *Slot {
	if len(sc.slots) == 0 {
		return nil
	}
	for p := devDir; p != "/" && p != "." && p != ""; p = filepath.Dir(p) {
		if slot, ok := sc.slots[p]; ok {
			c := *slot
			return &c
		}
	}
	return nil
}

// SetLocate switches the slot's locate LED (writes "1" or "0" to
// LocatePath).
func (s *Slot) SetLocate(on bool) error {
	return s.setLED(s.LocatePath, "locate", on)
}

// SetFault switches the slot's fault LED.
func (s *Slot) SetFault(on bool) error {
	return s.setLED(s.FaultPath, "fault", on)
}

// Locate reads the locate LED state.
func (s *Slot) Locate() (bool, error) {
	if s.LocatePath == "" {
		return false, fmt.Errorf("enclosure %s bay %q: no locate LED", s.Enclosure, s.Bay)
	}
	b, err := os.ReadFile(s.LocatePath)
	if err != nil {
		return false, fmt.Errorf("enclosure %s bay %q: %w", s.Enclosure, s.Bay, err)
	}
	return strings.TrimSpace(string(b)) != "0", nil
}

func (s *Slot) setLED(path, led string, on bool) error {
	if path == "" {
		return fmt.Errorf("enclosure %s bay %q: no %s LED", s.Enclosure, s.Bay, led)
	}
	v := "0"
	if on {
		v = "1"
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("enclosure %s bay %q: %s LED: %w", s.Enclosure, s.Bay, led, err)
	}
	if _, err := f.WriteString(v); err != nil {
		f.Close()
		return fmt.Errorf("enclosure %s bay %q: %s LED: write %s: %w", s.Enclosure, s.Bay, led, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("enclosure %s bay %q: %s LED: %w", s.Enclosure, s.Bay, led, err)
	}
	return nil
}

// derivedIDs names the drive the way udev's by-id rules (60-persistent-
// storage.rules with scsi_id) would, for systems without udev:
// wwn-<WWN> (nvme-<eui> for NVMe), ata-/nvme-<model>_<serial>,
// virtio-<serial>, scsi-3<naa> or scsi-0<vendor>_<model>_<serial>.
func derivedIDs(d *Drive) []string {
	var ids []string
	if d.WWN != "" {
		if d.Transport == TransportNVMe {
			ids = append(ids, "nvme-"+d.WWN)
		} else {
			ids = append(ids, "wwn-"+d.WWN)
		}
	}
	if d.Serial == "" {
		return ids
	}
	clean := func(s string) string {
		s = strings.Join(strings.Fields(s), "_")
		return strings.Map(func(r rune) rune {
			if r < 0x21 || r > 0x7e || r == '/' {
				return '_'
			}
			return r
		}, s)
	}
	bus := map[Transport]string{
		TransportSATA: "ata", TransportSAS: "scsi", TransportSCSI: "scsi",
		TransportNVMe: "nvme", TransportVirtio: "virtio", TransportUSB: "usb", TransportMMC: "mmc",
	}[d.Transport]
	if bus == "" {
		return ids
	}
	switch {
	case d.Transport == TransportVirtio:
		ids = append(ids, bus+"-"+clean(d.Serial))
	case bus == "scsi" && strings.HasPrefix(d.WWN, "0x"):
		// scsi_id: designator type 3 (NAA) from VPD page 0x83.
		ids = append(ids, "scsi-3"+strings.TrimPrefix(d.WWN, "0x"))
	case bus == "scsi":
		// scsi_id: type 0, vendor + model + serial.
		ids = append(ids, "scsi-0"+clean(d.Vendor)+"_"+clean(d.Model)+"_"+clean(d.Serial))
	case d.Model != "":
		ids = append(ids, bus+"-"+clean(d.Model)+"_"+clean(d.Serial))
	default:
		ids = append(ids, bus+"-"+clean(d.Serial))
	}
	return ids
}

// ParseVPD80 decodes a SCSI VPD page 0x80 (unit serial number) as sysfs
// vpd_pg80 holds it: a 4-byte header (peripheral, page code 0x80, 16-bit
// big-endian page length) followed by the serial, space padded.
func ParseVPD80(b []byte) (string, error) {
	if len(b) < 4 {
		return "", fmt.Errorf("vpd page 0x80: %d bytes, header needs 4", len(b))
	}
	if b[1] != 0x80 {
		return "", fmt.Errorf("vpd page 0x80: page code 0x%02x", b[1])
	}
	n := int(b[2])<<8 | int(b[3])
	if 4+n > len(b) {
		return "", fmt.Errorf("vpd page 0x80: page length %d exceeds %d bytes", n, len(b)-4)
	}
	sn := strings.Trim(string(b[4:4+n]), " \x00")
	for _, r := range []byte(sn) {
		if r < 0x20 || r > 0x7e {
			return "", fmt.Errorf("vpd page 0x80: non-ASCII byte 0x%02x in serial", r)
		}
	}
	return sn, nil
}

// EncodeVPD80 builds a VPD page 0x80 carrying serial (the inverse of
// ParseVPD80; used to build fixtures and as the fuzz oracle).
func EncodeVPD80(serial string) []byte {
	b := make([]byte, 4, 4+len(serial))
	b[1] = 0x80
	b[2], b[3] = byte(len(serial)>>8), byte(len(serial))
	return append(b, serial...)
}
