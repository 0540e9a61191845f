// Package qemu is Stowage's QEMU test lab: it boots Debian's kernel under
// TCG with a minimal initramfs built on the fly (a static Go init, kernel
// modules resolved from modules.dep, host binaries with their libraries)
// and the drives a test asks for (NVMe ZNS, NVMe, SATA on AHCI,
// virtio-blk, SCSI on virtio-scsi), and runs a Go test function inside the
// guest with RunTest. A QMP client hot-unplugs and hot-plugs drives; Kill
// is a power cut. Every guest holds the host lock /tmp/stowage-qemu.lock.
package qemu
