#!/usr/bin/env bash
# Builds testdata/server: a sysfs, /dev and /run/udev fixture of one storage
# server, laid out as Linux 6.1 lays them out. Re-run after editing; the
# result is committed. Needs GNU coreutils (ln -r) and printf.
set -euo pipefail
cd "$(dirname "$0")"
R=server
rm -rf "$R"
S=$R/sys
mkdir -p "$S/block" "$S/class/scsi_host" "$S/class/enclosure" "$R/dev/disk/by-id" "$R/run/udev/data" \
	"$S/bus/pci/drivers/nvme" "$S/bus/pci/drivers/ahci" "$S/bus/pci/drivers/mpt3sas" \
	"$S/bus/pci/drivers/virtio-pci" "$S/bus/virtio/drivers/virtio_blk" "$S/bus/virtio/drivers/virtio_scsi"

put() { mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" >"$1"; }
link() { mkdir -p "$(dirname "$2")"; ln -sr "$1" "$2"; }

# blockat DEVDIR NAME MAJ:MIN SECTORS ROT LBS PBS REMOVABLE: a block device directory.
blockat() {
	local d=$1
	put "$d/dev" "$3"; put "$d/size" "$4"; put "$d/ro" 0; put "$d/removable" "$8"
	put "$d/stat" "       0        0        0        0        0        0        0        0        0        0        0        0        0        0        0        0        0"
	put "$d/queue/rotational" "$5"; put "$d/queue/logical_block_size" "$6"; put "$d/queue/physical_block_size" "$7"
	put "$d/queue/zoned" none; put "$d/queue/chunk_sectors" 0; put "$d/queue/nr_zones" 0
	put "$d/queue/max_open_zones" 0; put "$d/queue/max_active_zones" 0; put "$d/queue/nr_requests" 64
	link "$d" "$S/block/$2"
	: >"$R/dev/$2" # stands in for the device node
}
# blockdev PARENT NAME ...: a disk below its parent device, linked back as device.
blockdev() {
	local p=$1; shift
	blockat "$p/block/$1" "$@"
	link "$p" "$p/block/$1/device"
}
# scsidev DIR VENDOR MODEL REV SERIAL WWID TYPE
scsidev() {
	put "$1/vendor" "$2"; put "$1/model" "$3"; put "$1/rev" "$4"; put "$1/type" "$7"
	printf '\x00\x80\x00%b%s' "\\x$(printf %02x ${#5})" "$5" >"$1/vpd_pg80"
	[ -n "$6" ] && put "$1/wwid" "$6"; true
}
udev() { # udev MAJ:MIN KEY=VAL...
	local f=$R/run/udev/data/b$1; shift
	: >"$f"; for kv in "$@"; do printf 'E:%s\n' "$kv" >>"$f"; done
}
byid() { ln -s "../../$2" "$R/dev/disk/by-id/$1"; }

PCI=$S/devices/pci0000:00

# 1. SATA HDD on AHCI (Seagate Exos X16), with one partition.
H0=$PCI/0000:00:1f.2/ata1/host0
put "$H0/scsi_host/host0/proc_name" ahci; link "$H0/scsi_host/host0" "$S/class/scsi_host/host0"
link "$S/bus/pci/drivers/ahci" "$PCI/0000:00:1f.2/driver"
D=$H0/target0:0:0/0:0:0:0
scsidev "$D" "ATA     " "ST16000NM001G-2K" SN03 ZL2ABCDE naa.5000c500c1234567 0
blockdev "$D" sda 8:0 31251759104 1 512 4096 0
: >"$R/dev/sda1"; put "$D/block/sda/sda1/dev" 8:1; put "$D/block/sda/sda1/partition" 1; put "$D/block/sda/sda1/size" 2048
udev 8:0 DEVNAME=/dev/sda ID_BUS=ata ID_MODEL=ST16000NM001G-2K ID_SERIAL=ST16000NM001G-2K_ZL2ABCDE ID_SERIAL_SHORT=ZL2ABCDE ID_WWN=0x5000c500c1234567 ID_WWN_WITH_EXTENSION=0x5000c500c1234567 ID_REVISION=SN03
byid ata-ST16000NM001G-2K_ZL2ABCDE sda; byid wwn-0x5000c500c1234567 sda; byid ata-ST16000NM001G-2K_ZL2ABCDE-part1 sda1

# 2. Host-managed SMR SAS HDD behind an mpt3sas HBA and an expander, in
#    enclosure slot 7 (the enclosure's SES device is 1:0:1:0).
H1=$PCI/0000:00:03.0/0000:03:00.0/host1
put "$H1/scsi_host/host1/proc_name" mpt3sas; link "$H1/scsi_host/host1" "$S/class/scsi_host/host1"
link "$S/bus/pci/drivers/mpt3sas" "$PCI/0000:00:03.0/0000:03:00.0/driver"
EXP=$H1/port-1:0/expander-1:0
D=$EXP/port-1:0:0/end_device-1:0:0/target1:0:0/1:0:0:0
scsidev "$D" "HGST    " "HSH721414AL52M0 " A21D 9JG4ABCD naa.5000cca2a1b2c3d4 20
blockdev "$D" sdb 8:16 27344764928 1 4096 4096 0
B=$D/block/sdb/queue
put "$B/zoned" host-managed; put "$B/chunk_sectors" 524288; put "$B/nr_zones" 52156
put "$B/max_open_zones" 128; put "$B/max_active_zones" 0
udev 8:16 DEVNAME=/dev/sdb ID_BUS=scsi ID_VENDOR=HGST ID_MODEL=HSH721414AL52M0 ID_SERIAL=35000cca2a1b2c3d4 ID_SERIAL_SHORT=9JG4ABCD ID_WWN=0x5000cca2a1b2c3d4 ID_WWN_WITH_EXTENSION=0x5000cca2a1b2c3d4
byid scsi-35000cca2a1b2c3d4 sdb; byid wwn-0x5000cca2a1b2c3d4 sdb
# 2b. A SATA HDD behind the same SAS HBA and expander (SATL), in slot 8.
D8=$EXP/port-1:0:2/end_device-1:0:2/target1:0:2/1:0:2:0
scsidev "$D8" "ATA     " "WDC WUH721816AL" W680 2BKABCDE naa.5000cca2b0c0ffee 0
blockdev "$D8" sdd 8:48 31251759104 1 512 4096 0
udev 8:48 DEVNAME=/dev/sdd ID_BUS=ata ID_MODEL=WDC_WUH721816AL ID_SERIAL=WDC_WUH721816AL_2BKABCDE ID_SERIAL_SHORT=2BKABCDE ID_WWN=0x5000cca2b0c0ffee ID_WWN_WITH_EXTENSION=0x5000cca2b0c0ffee
byid ata-WDC_WUH721816AL_2BKABCDE sdd; byid wwn-0x5000cca2b0c0ffee sdd
E=$EXP/port-1:0:1/end_device-1:0:1/target1:0:1/1:0:1:0
scsidev "$E" "HGST    " "H4060-J         " 3010 "" naa.5000cca0123400fe 13
for n in 6 7 8; do
	C="$E/enclosure/1:0:1:0/Slot 0$n"
	put "$C/slot" "$n"; put "$C/locate" 0; put "$C/fault" 0; put "$C/status" OK; put "$C/type" "array device"
done
link "$D" "$E/enclosure/1:0:1:0/Slot 07/device"
link "$D8" "$E/enclosure/1:0:1:0/Slot 08/device"
link "$E/enclosure/1:0:1:0" "$S/class/enclosure/1:0:1:0"

# 3. NVMe ZNS namespace (QEMU's controller: 64 MiB zones, 16 zones).
N0=$PCI/0000:00:04.0/nvme/nvme0
link "$S/bus/pci/drivers/nvme" "$PCI/0000:00:04.0/driver"
put "$N0/model" "QEMU NVMe Ctrl"; put "$N0/serial" ZNS0001; put "$N0/firmware_rev" "7.2.0"; put "$N0/transport" pcie
link "$PCI/0000:00:04.0" "$N0/device"
mkdir -p "$N0/nvme0n1"; put "$N0/nvme0n1/nsid" 1; put "$N0/nvme0n1/wwid" "nvme.1b36-5a4e5330303031-51454d55204e564d65204374726c-00000001"
put "$N0/nvme0n1/dev" 259:0
put "$N0/nvme0n1/size" 2097152; put "$N0/nvme0n1/ro" 0; put "$N0/nvme0n1/removable" 0
Q=$N0/nvme0n1/queue
put "$Q/rotational" 0; put "$Q/logical_block_size" 4096; put "$Q/physical_block_size" 4096
put "$Q/zoned" host-managed; put "$Q/chunk_sectors" 131072; put "$Q/nr_zones" 16; put "$Q/max_open_zones" 14; put "$Q/max_active_zones" 15
link "$N0" "$N0/nvme0n1/device"; link "$N0/nvme0n1" "$S/block/nvme0n1"; : >"$R/dev/nvme0n1"
udev 259:0 DEVNAME=/dev/nvme0n1 ID_MODEL=QEMU NVMe Ctrl ID_SERIAL=QEMU NVMe Ctrl_ZNS0001 ID_SERIAL_SHORT=ZNS0001
byid "nvme-QEMU_NVMe_Ctrl_ZNS0001" nvme0n1

# 4. Conventional NVMe (Samsung PM9A3), with a hidden multipath path device.
N1=$PCI/0000:00:05.0/nvme/nvme1
link "$S/bus/pci/drivers/nvme" "$PCI/0000:00:05.0/driver"
put "$N1/model" "SAMSUNG MZQL23T8HCLS-00A07"; put "$N1/serial" S64HNE0R123456; put "$N1/firmware_rev" GDC5602Q; put "$N1/transport" pcie
link "$PCI/0000:00:05.0" "$N1/device"
mkdir -p "$N1/nvme1n1"
put "$N1/nvme1n1/nsid" 1; put "$N1/nvme1n1/wwid" eui.36344630528029720025385800000001
put "$N1/nvme1n1/dev" 259:1; put "$N1/nvme1n1/size" 7501476528; put "$N1/nvme1n1/ro" 0; put "$N1/nvme1n1/removable" 0
Q=$N1/nvme1n1/queue
put "$Q/rotational" 0; put "$Q/logical_block_size" 512; put "$Q/physical_block_size" 4096; put "$Q/zoned" none; put "$Q/chunk_sectors" 0
link "$N1" "$N1/nvme1n1/device"; link "$N1/nvme1n1" "$S/block/nvme1n1"; : >"$R/dev/nvme1n1"
mkdir -p "$N1/nvme1c1n1"; put "$N1/nvme1c1n1/dev" 259:2; put "$N1/nvme1c1n1/hidden" 1; put "$N1/nvme1c1n1/size" 7501476528
link "$N1/nvme1c1n1" "$S/block/nvme1c1n1"
udev 259:1 DEVNAME=/dev/nvme1n1 ID_MODEL=SAMSUNG MZQL23T8HCLS-00A07 ID_SERIAL_SHORT=S64HNE0R123456 ID_WWN=eui.36344630528029720025385800000001
byid nvme-SAMSUNG_MZQL23T8HCLS-00A07_S64HNE0R123456 nvme1n1; byid nvme-eui.36344630528029720025385800000001 nvme1n1

# 5. virtio-blk disk.
V=$PCI/0000:00:06.0/virtio2
link "$S/bus/pci/drivers/virtio-pci" "$PCI/0000:00:06.0/driver"
put "$V/vendor" 0x1af4; put "$V/device" 0x0002; link "$S/bus/virtio/drivers/virtio_blk" "$V/driver"
blockdev "$V" vda 254:0 2097152 1 512 512 0
put "$V/block/vda/serial" VIRTIO01
udev 254:0 DEVNAME=/dev/vda ID_SERIAL=VIRTIO01
byid virtio-VIRTIO01 vda

# 6. virtio-scsi disk.
H2=$PCI/0000:00:07.0/virtio3/host2
put "$H2/scsi_host/host2/proc_name" virtio_scsi; link "$H2/scsi_host/host2" "$S/class/scsi_host/host2"
link "$S/bus/virtio/drivers/virtio_scsi" "$PCI/0000:00:07.0/virtio3/driver"
D=$H2/target2:0:0/2:0:0:0
scsidev "$D" "QEMU    " "QEMU HARDDISK   " 2.5+ VSCSI001 "t10.QEMU    QEMU HARDDISK   VSCSI001" 0
blockdev "$D" sdc 8:32 2097152 1 512 512 0
udev 8:32 DEVNAME=/dev/sdc ID_BUS=scsi ID_VENDOR=QEMU ID_MODEL=QEMU_HARDDISK ID_SERIAL=0QEMU_QEMU_HARDDISK_VSCSI001 ID_SERIAL_SHORT=VSCSI001
byid scsi-0QEMU_QEMU_HARDDISK_VSCSI001 sdc

# 7. Loop devices: loop0 attached to a 1 MiB file, loop1 detached.
VB=$S/devices/virtual/block
blockat "$VB/loop0" loop0 7:0 2048 0 512 512 0
put "$VB/loop0/loop/backing_file" /var/tmp/stowage/disk0.img
blockat "$VB/loop1" loop1 7:1 0 0 512 512 0

# Things that must not count.
blockat "$VB/dm-0" dm-0 253:0 2097152 0 512 512 0; put "$VB/dm-0/dm/name" vg0-data
blockat "$VB/md0" md0 9:0 62503518208 1 512 4096 0; put "$VB/md0/md/level" raid1
blockat "$VB/zram0" zram0 252:0 8388608 0 4096 4096 0
blockat "$VB/ram0" ram0 1:0 8192 0 512 4096 0
H3=$PCI/0000:00:1f.2/ata2/host3
put "$H3/scsi_host/host3/proc_name" ahci; link "$H3/scsi_host/host3" "$S/class/scsi_host/host3"
D=$H3/target3:0:0/3:0:0:0
scsidev "$D" "QEMU    " "QEMU DVD-ROM    " 2.5+ QM00003 "" 5
blockdev "$D" sr0 11:0 2097151 1 2048 2048 1
