package qemu

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// The guest ports of the node's daemons (the image's init starts them
// there).
const (
	HwmgrGuestPort = 9741
	OSDGuestPort   = 9742
)

// NodeDrives are the 12 drives of a development node, five kinds: three
// zoned NVMe (ZNS) namespaces, three conventional NVMe drives, two SATA
// disks on AHCI (one looks like a 7200 rpm hard drive, one like an SSD),
// two virtio-blk drives and two SCSI disks on virtio-scsi. Their images
// are dir/<ID>.img, sparse, size bytes each (a multiple of 64 MiB, the
// zone size; 0 means 1 GiB). The serials are stable, so a node booted
// again on the same images finds the same drives.
func NodeDrives(dir string, size int64) []Drive {
	if size == 0 {
		size = defaultDriveSize
	}
	var ds []Drive
	add := func(kind DriveKind, id, serial, model string, rpm int) {
		d := Drive{Kind: kind, ID: id, Serial: serial, Model: model, Size: size, Image: filepath.Join(dir, id+".img"), RotationRate: rpm}
		if kind == NVMeZNS {
			d.ZoneSize, d.MaxOpen, d.MaxActive = defaultZoneSize, 14, 14
		}
		ds = append(ds, d)
	}
	for i := range 3 {
		add(NVMeZNS, "zns"+strconv.Itoa(i), "STWZNS"+strconv.Itoa(i), "", 0)
	}
	for i := range 3 {
		add(NVMe, "nvme"+strconv.Itoa(i), "STWNVME"+strconv.Itoa(i), "", 0)
	}
	add(SATA, "sata0", "STWSATA0", "STOWAGE HDD", 7200)
	add(SATA, "sata1", "STWSATA1", "STOWAGE SSD", 1)
	for i := range 2 {
		add(VirtioBlk, "virt"+strconv.Itoa(i), "STWVIRT"+strconv.Itoa(i), "", 0)
	}
	for i := range 2 {
		add(SCSI, "sd"+strconv.Itoa(i), "STWSCSI"+strconv.Itoa(i), "STOWAGE SCSI", 0)
	}
	return ds
}

// Node describes a whole storage node to boot from the image (out/image):
// its drives, and the host ports its APIs are forwarded to.
type Node struct {
	// ImageDir holds vmlinuz and initramfs.cpio.gz (required).
	ImageDir string
	// DrivesDir holds the drive images; they are created when missing
	// and kept, so the node boots again with its data (required).
	DrivesDir string
	// Drives default to NodeDrives(DrivesDir, DriveSize).
	Drives    []Drive
	DriveSize int64
	// HwmgrPort and OSDPort are the host ports (on 127.0.0.1) forwarded
	// to the guest's HwmgrGuestPort and OSDGuestPort (required; FreePort
	// finds one).
	HwmgrPort, OSDPort int
	// Cmdline is appended to the node's kernel command line.
	Cmdline string
	// MemoryMiB defaults to 1024.
	MemoryMiB int
	// Console gets the serial console; Input, if set, is typed into it.
	Console io.Writer
	Input   io.Reader
	// OwnProcessGroup starts QEMU in a process group of its own, so a
	// terminal's Ctrl-C reaches only the caller (which then powers the
	// node off through QMP).
	OwnProcessGroup bool
}

// NodeCmdline is the kernel command line a node boots with. The OSD
// takes only the conventional drives: QEMU (7.2) keeps a ZNS namespace's
// zone state in memory, so after QEMU restarts every zone reads as empty
// and what the OSD wrote there is lost to it, while the node is meant to
// boot again with its data. The ZNS drives still show in hwmgr with their
// zone geometry, and the zoned engine is tested on them within one boot.
const NodeCmdline = "console=ttyS0 quiet panic=-1 no_timer_check mitigations=off stowage.dhcp.timeout=30s stowage.osd.devices=conventional"

// Machine is the QEMU machine of the node: the image's kernel and
// initramfs, the drives, a virtio NIC on QEMU's user network forwarding
// the API ports, and a virtio RNG (DHCP's transaction IDs need a seeded
// kernel RNG). Its Dir is DrivesDir (where QMP's socket lives too).
func (n Node) Machine() (Machine, error) {
	if n.ImageDir == "" || n.DrivesDir == "" {
		return Machine{}, errors.New("qemu: Node needs ImageDir and DrivesDir")
	}
	if n.HwmgrPort <= 0 || n.OSDPort <= 0 || n.HwmgrPort == n.OSDPort {
		return Machine{}, fmt.Errorf("qemu: Node needs two different host ports (hwmgr %d, osd %d)", n.HwmgrPort, n.OSDPort)
	}
	kernel, initrd := filepath.Join(n.ImageDir, "vmlinuz"), filepath.Join(n.ImageDir, "initramfs.cpio.gz")
	for _, p := range []string{kernel, initrd} {
		if _, err := os.Stat(p); err != nil {
			return Machine{}, fmt.Errorf("qemu: node image: %w (build it with make image)", err)
		}
	}
	if err := os.MkdirAll(n.DrivesDir, 0o755); err != nil {
		return Machine{}, fmt.Errorf("qemu: %w", err)
	}
	drives := n.Drives
	if drives == nil {
		drives = NodeDrives(n.DrivesDir, n.DriveSize)
	}
	cmdline := NodeCmdline
	if n.Cmdline != "" {
		cmdline += " " + n.Cmdline
	}
	return Machine{
		Kernel: kernel, Initrd: initrd, Cmdline: cmdline, MemoryMiB: n.MemoryMiB,
		Drives: drives, Dir: n.DrivesDir, Console: n.Console, Input: n.Input, OwnProcessGroup: n.OwnProcessGroup,
		ExtraArgs: []string{
			"-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:%d,hostfwd=tcp:127.0.0.1:%d-:%d",
				n.HwmgrPort, HwmgrGuestPort, n.OSDPort, OSDGuestPort),
			"-device", "virtio-net-pci,netdev=net0",
			"-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
		},
	}, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago:
// want itself when it is free, else one the kernel picks.
func FreePort(want int) (int, error) {
	if want > 0 {
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(want))); err == nil {
			l.Close()
			return want, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("qemu: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
