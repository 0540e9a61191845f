// Package foreign finds what is on a drive before hwmgr writes to it:
// partition tables, filesystems, volume managers, RAID and cache
// superblocks, swap, encryption headers, and hwmgr's own label. It reads
// only the first and last few MiB of the device through an io.ReaderAt and
// never writes.
//
// A drive with anything not ours on it is `foreign` in the lifecycle: it is
// reported, never written, until an operator adopts it by serial.
package foreign

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/stowage/stowage/hwmgr/label"
)

// How much of the device Detect reads.
const (
	HeadSize = 2 << 20 // from the start: both conventional label regions, ZFS labels 0–1, btrfs, ISO9660
	TailSize = 1 << 20 // from the end: GPT backup, md v0.90/v1.0, ZFS labels 2–3
)

// Kinds of finding.
const (
	KindLabel    = "stowage-label" // our own label record (not foreign)
	KindMBR      = "mbr"
	KindPMBR     = "gpt-pmbr" // protective MBR (partition type 0xEE)
	KindGPT      = "gpt"
	KindExt2     = "ext2"
	KindExt3     = "ext3"
	KindExt4     = "ext4"
	KindXFS      = "xfs"
	KindBtrfs    = "btrfs"
	KindLVM2     = "lvm2"
	KindMD       = "mdraid"
	KindBcache   = "bcache"
	KindZFS      = "zfs"
	KindSwap     = "swap"
	KindLUKS     = "luks"
	KindFAT      = "fat"
	KindExFAT    = "exfat"
	KindNTFS     = "ntfs"
	KindISO9660  = "iso9660"
	KindBlueStor = "bluestore"
	KindSquashFS = "squashfs"
	KindCramFS   = "cramfs"
)

// Finding is one signature found on the device.
type Finding struct {
	Kind   string `json:"kind"`
	Offset int64  `json:"offset"` // byte offset of the signature's structure on the device
	Len    int64  `json:"len"`    // bytes from Offset that make up the signature (zero them to remove it)
	Detail string `json:"detail,omitempty"`
	Ours   bool   `json:"ours,omitempty"` // hwmgr's own label
	// InLabelArea: the signature lies in the label area (the first 2 MiB,
	// or a LabelOffsets region) outside every record of ours: someone
	// wrote over where our label lives. Such a finding makes the drive
	// foreign even when a label record of ours survives elsewhere.
	InLabelArea bool `json:"in_label_area,omitempty"`

	sig int64 // where the identifying bytes are
}

// Report is what Detect found.
type Report struct {
	Size     int64     `json:"size"`
	Findings []Finding `json:"findings"`
}

// Ours reports whether the device carries at least one valid record of our
// label.
func (r Report) Ours() bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Ours })
}

// Foreign reports whether the device holds something not ours: any
// foreign finding when there is no label of ours, and with a label of
// ours a finding in the label area (someone wrote over it). Leftovers
// outside the label area (an old GPT backup, OSD data in the tail that
// happens to look like a signature) do not make a labelled drive foreign;
// they stay listed in Findings.
func (r Report) Foreign() bool {
	ours := r.Ours()
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return !f.Ours && (!ours || f.InLabelArea) })
}

// Kinds returns the distinct kinds of the foreign findings, in order of
// first appearance (for lifecycle.Drive.Foreign).
func (r Report) Kinds() []string {
	var ks []string
	for _, f := range r.Findings {
		if !f.Ours && !slices.Contains(ks, f.Kind) {
			ks = append(ks, f.Kind)
		}
	}
	return ks
}

// Options tune Detect. The zero value is ready to use.
type Options struct {
	// LabelOffsets are further device offsets where a label region of
	// ours starts, beyond 0 and label.RegionSize: zone 1 of a zoned
	// drive. label.RegionSize bytes are read at each.
	LabelOffsets []int64
}

// Detect reads the head and tail of a device of size bytes and returns
// every signature it recognises. r may be a buffered read-only *os.File of
// a block device; reads are 4 KiB-aligned except a tail that is not.
func Detect(r io.ReaderAt, size int64, opts Options) (Report, error) {
	if size < 0 {
		return Report{}, fmt.Errorf("foreign: negative size %d", size)
	}
	headLen := min(size, HeadSize)
	head := make([]byte, headLen)
	if err := readFull(r, head, 0); err != nil {
		return Report{}, err
	}
	tailOff := max(size-TailSize, 0) &^ 4095
	tail := make([]byte, size-tailOff)
	if err := readFull(r, tail, tailOff); err != nil {
		return Report{}, err
	}
	var extra []window
	for _, off := range opts.LabelOffsets {
		if off < 0 || off >= size || off < headLen {
			continue
		}
		b := make([]byte, min(label.RegionSize, size-off))
		if err := readFull(r, b, off); err != nil {
			return Report{}, err
		}
		extra = append(extra, window{off: off, b: b})
	}
	return detect(size, window{0, head}, window{tailOff, tail}, extra), nil
}

func readFull(r io.ReaderAt, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("foreign: read %d bytes at offset %d: %w", len(p), off, err)
}

// window is bytes read from the device at off.
type window struct {
	off int64
	b   []byte
}

// device gives the detectors the bytes Detect read.
type device struct {
	size int64
	ws   []window
	out  []Finding

	areas []Range // the label regions read
	ours  []Range // valid records of ours in them
}

func within(rs []Range, off int64) bool {
	return slices.ContainsFunc(rs, func(r Range) bool { return off >= r.Off && off < r.Off+r.Len })
}

// at returns the n bytes at device offset off, or nil if they were not
// read (or lie outside the device).
func (d *device) at(off, n int64) []byte {
	if off < 0 || n < 0 || off+n > d.size {
		return nil
	}
	for _, w := range d.ws {
		if off >= w.off && off+n <= w.off+int64(len(w.b)) {
			return w.b[off-w.off : off-w.off+n]
		}
	}
	return nil
}

func (d *device) has(off int64, sig string) bool {
	b := d.at(off, int64(len(sig)))
	return b != nil && string(b) == sig
}

func (d *device) u32(off int64) (uint32, bool) {
	b := d.at(off, 4)
	if b == nil {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b), true
}

// add records a finding: its structure at [off, off+n), its identifying
// bytes (magic) at sig.
func (d *device) add(kind string, off, n, sig int64, detail string) {
	d.out = append(d.out, Finding{Kind: kind, Offset: off, Len: n, Detail: detail, sig: sig})
}

func detect(size int64, head, tail window, extra []window) Report {
	d := &device{size: size, ws: append([]window{head, tail}, extra...)}
	d.label(append([]int64{0, label.RegionSize}, offsets(extra)...))
	d.partitions()
	d.gpt()
	d.ext()
	d.simple()
	d.lvm()
	d.md()
	d.bcache()
	d.zfs()
	d.swap()
	d.bootSectors()
	// Bytes inside our own records are ours, whatever they look like.
	d.out = slices.DeleteFunc(d.out, func(f Finding) bool { return !f.Ours && within(d.ours, f.sig) })
	for i := range d.out {
		d.out[i].InLabelArea = !d.out[i].Ours && within(d.areas, d.out[i].sig)
	}
	slices.SortStableFunc(d.out, func(a, b Finding) int {
		if a.Offset != b.Offset {
			if a.Offset < b.Offset {
				return -1
			}
			return 1
		}
		return 0
	})
	return Report{Size: size, Findings: d.out}
}

func offsets(ws []window) []int64 {
	var o []int64
	for _, w := range ws {
		o = append(o, w.off)
	}
	return o
}

// label walks each label region block by block for valid records of ours.
// One finding per region, at its newest valid record.
func (d *device) label(starts []int64) {
	for _, start := range starts {
		b := d.at(start, min(label.RegionSize, d.size-start))
		if b == nil {
			continue
		}
		d.areas = append(d.areas, Range{start, int64(len(b))})
		var best label.Record
		var bestOff, bestLen int64
		for off := 0; off+label.BlockSize <= len(b); {
			if !label.HasMagic(b[off:]) {
				off += label.BlockSize
				continue
			}
			r, n, err := label.DecodeRecord(b[off:])
			if err != nil {
				// A damaged record's bytes may be someone else's now (sgdisk
				// keeps the boot code area of sector 0, our header with it).
				off += label.BlockSize
				continue
			}
			// A valid record's bytes are ours, whatever they look like.
			d.ours = append(d.ours, Range{start + int64(off), int64(n)})
			if r.Generation > best.Generation {
				best, bestOff, bestLen = r, int64(off), int64(n)
			}
			off += n
		}
		if best.Generation > 0 {
			d.out = append(d.out, Finding{Kind: KindLabel, Offset: start + bestOff, Len: bestLen, Ours: true,
				Detail: fmt.Sprintf("generation %d, state %s, serial %q", best.Generation, best.State, best.Serial)})
		}
	}
}

// partitions: an MBR is 0x55AA at 510 with at least one plausible
// partition entry (boot flag 0x00 or 0x80, a type, a non-zero size), and
// not a FAT/NTFS boot sector (those are reported by bootSectors).
func (d *device) partitions() {
	s := d.at(0, 512)
	if s == nil || s[510] != 0x55 || s[511] != 0xaa || isVBR(s) {
		return
	}
	n, protective := 0, false
	for i := range 4 {
		e := s[446+16*i : 446+16*(i+1)]
		if e[0] != 0 && e[0] != 0x80 {
			return // not a partition table
		}
		if e[4] == 0 || binary.LittleEndian.Uint32(e[12:]) == 0 {
			continue
		}
		n++
		if e[4] == 0xee {
			protective = true
		}
	}
	switch {
	case protective:
		d.add(KindPMBR, 0, 512, 510, "protective MBR (type 0xee)")
	case n > 0:
		d.add(KindMBR, 0, 512, 510, fmt.Sprintf("%d partitions", n))
	}
}

func isVBR(s []byte) bool {
	return string(s[3:11]) == "NTFS    " || string(s[3:11]) == "EXFAT   " ||
		((s[0] == 0xeb || s[0] == 0xe9) && (string(s[54:59]) == "FAT12" || string(s[54:59]) == "FAT16" ||
			string(s[54:62]) == "FAT     " || string(s[82:87]) == "FAT32"))
}

// gpt: "EFI PART" at LBA 1 for 512- and 4096-byte sectors, and the backup
// header at the last LBA.
func (d *device) gpt() {
	for _, ss := range []int64{512, 4096} {
		if d.has(ss, "EFI PART") {
			d.add(KindGPT, ss, ss, ss, fmt.Sprintf("primary header, %d-byte sectors", ss))
		}
		if d.size >= 2*ss && d.size%ss == 0 && d.has(d.size-ss, "EFI PART") {
			d.add(KindGPT, d.size-ss, ss, d.size-ss, fmt.Sprintf("backup header, %d-byte sectors", ss))
		}
	}
}

// ext: the superblock at 1024 with magic 0xEF53 at 1080, a sane block
// size and revision; ext4 / ext3 / ext2 by feature flags.
func (d *device) ext() {
	sb := d.at(1024, 1024)
	if sb == nil || binary.LittleEndian.Uint16(sb[56:]) != 0xef53 {
		return
	}
	logBlock := binary.LittleEndian.Uint32(sb[24:])
	rev := binary.LittleEndian.Uint32(sb[76:])
	if logBlock > 6 || rev > 1 {
		return
	}
	compat := binary.LittleEndian.Uint32(sb[92:])
	incompat := binary.LittleEndian.Uint32(sb[96:])
	roCompat := binary.LittleEndian.Uint32(sb[100:])
	kind := KindExt2
	switch {
	case incompat&(0x40|0x80|0x200) != 0 || roCompat&(0x8|0x10|0x20|0x40) != 0: // extents, 64bit, flex_bg; huge_file, gdt_csum, dir_nlink, extra_isize
		kind = KindExt4
	case compat&0x4 != 0: // has_journal
		kind = KindExt3
	}
	d.add(kind, 1024, 1024, 1080, fmt.Sprintf("block size %d", 1024<<logBlock))
}

// simple signatures at fixed offsets.
func (d *device) simple() {
	for _, s := range []struct {
		kind   string
		off    int64
		sig    string
		n      int64
		detail string
	}{
		{KindXFS, 0, "XFSB", 512, "superblock"},
		{KindBtrfs, 65536 + 64, "_BHRfS_M", 4096, "superblock"},
		{KindLUKS, 0, "LUKS\xba\xbe", 4096, "header"},
		{KindLUKS, 16384, "SKUL\xba\xbe", 4096, "LUKS2 secondary header"},
		{KindISO9660, 32768 + 1, "CD001", 2048, "primary volume descriptor"},
		{KindBlueStor, 0, "bluestore block device\n", 4096, "Ceph BlueStore label"},
		{KindSquashFS, 0, "hsqs", 96, "superblock"},
		{KindCramFS, 16, "Compressed ROMFS", 64, "superblock"},
		{KindCramFS, 512 + 16, "Compressed ROMFS", 64, "superblock after a 512-byte pad"},
	} {
		if d.has(s.off, s.sig) {
			off := s.off
			switch s.kind {
			case KindBtrfs:
				off = 65536
			case KindISO9660:
				off = 32768
			case KindCramFS:
				off -= 16
			}
			d.add(s.kind, off, s.n, s.off, s.detail)
		}
	}
}

// lvm: "LABELONE" at the start of one of sectors 0–3, "LVM2 001" at +24.
func (d *device) lvm() {
	for s := int64(0); s < 4; s++ {
		if d.has(s*512, "LABELONE") && d.has(s*512+24, "LVM2 001") {
			d.add(KindLVM2, s*512, 512, s*512, fmt.Sprintf("physical volume label in sector %d", s))
		}
	}
}

const mdMagic = 0xa92b4efc

// md: v1.1 at 0, v1.2 at 4 KiB, v1.0 at 8–12 KiB before the end (4 KiB
// aligned), v0.90 in the last 64 KiB-aligned 64 KiB (either byte order).
func (d *device) md() {
	for _, c := range []struct {
		off    int64
		detail string
	}{
		{0, "v1.1 superblock"},
		{4096, "v1.2 superblock"},
		{((d.size >> 9) - 16) &^ 7 << 9, "v1.0 superblock"},
	} {
		if v, ok := d.u32(c.off); ok && v == mdMagic && d.size >= 64<<10 {
			if m, _ := d.u32(c.off + 4); m == 1 { // major_version
				d.add(KindMD, c.off, 4096, c.off, c.detail)
			}
		}
	}
	if d.size >= 128<<10 {
		off := (d.size &^ (64<<10 - 1)) - 64<<10
		if b := d.at(off, 4); b != nil && (binary.LittleEndian.Uint32(b) == mdMagic || binary.BigEndian.Uint32(b) == mdMagic) {
			d.add(KindMD, off, 4096, off, "v0.90 superblock")
		}
	}
}

var bcacheMagic = []byte{0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d, 0x81}

func (d *device) bcache() {
	if b := d.at(4096+24, 16); b != nil && bytes.Equal(b, bcacheMagic) {
		d.add(KindBcache, 4096, 4096, 4096+24, "superblock")
	}
}

const (
	zfsLabelSize  = 256 << 10
	zfsUberOffset = 128 << 10 // uberblock ring within a label
	zfsUberSlot   = 1 << 10   // smallest uberblock slot (ashift ≤ 10)
	zfsUberMagic  = 0x00bab10c
)

// zfs: four vdev labels, two at the start and two at the end of the
// 256 KiB-aligned size; a label counts when any uberblock slot of its ring
// starts with the uberblock magic (either byte order).
func (d *device) zfs() {
	if d.size < 4*zfsLabelSize {
		return
	}
	psize := d.size &^ (zfsLabelSize - 1)
	for i, lo := range []int64{0, zfsLabelSize, psize - 2*zfsLabelSize, psize - zfsLabelSize} {
		for s := int64(zfsUberOffset); s < zfsLabelSize; s += zfsUberSlot {
			b := d.at(lo+s, 8)
			if b == nil {
				break
			}
			if binary.LittleEndian.Uint64(b) == zfsUberMagic || binary.BigEndian.Uint64(b) == zfsUberMagic {
				d.add(KindZFS, lo, zfsLabelSize, lo+s, fmt.Sprintf("vdev label %d (uberblock at +%d)", i, s))
				break
			}
		}
	}
}

// swap: "SWAPSPACE2" (or the old "SWAP-SPACE") in the last 10 bytes of
// the first page, for the page sizes Linux uses.
func (d *device) swap() {
	for _, ps := range []int64{4096, 8192, 16384, 65536} {
		if d.has(ps-10, "SWAPSPACE2") || d.has(ps-10, "SWAP-SPACE") {
			d.add(KindSwap, 0, ps, ps-10, fmt.Sprintf("%d-byte pages", ps))
		}
	}
}

// bootSectors: FAT, exFAT and NTFS volume boot records at sector 0.
func (d *device) bootSectors() {
	s := d.at(0, 512)
	if s == nil {
		return
	}
	switch {
	case string(s[3:11]) == "NTFS    ":
		d.add(KindNTFS, 0, 512, 3, "boot sector")
	case string(s[3:11]) == "EXFAT   ":
		d.add(KindExFAT, 0, 512, 3, "boot sector")
	case s[510] == 0x55 && s[511] == 0xaa && isVBR(s):
		d.add(KindFAT, 0, 512, 510, "boot sector")
	}
}

// Range is a byte range of the device.
type Range struct {
	Off int64 `json:"off"`
	Len int64 `json:"len"`
}

// WipeRanges returns the ranges that hold the foreign findings, widened to
// multiples of align (a power of two, e.g. 4096 for O_DIRECT; ≤ 1 means
// no widening), clipped to the device and merged, in order. Zeroing them
// removes every signature Detect found, which is what an adopt does before
// it writes our label (on a zoned drive, reset the zones instead).
func (r Report) WipeRanges(align int64) []Range {
	if align < 1 {
		align = 1
	}
	var rs []Range
	for _, f := range r.Findings {
		if f.Ours {
			continue
		}
		lo := f.Offset / align * align
		hi := min((f.Offset+f.Len+align-1)/align*align, r.Size)
		rs = append(rs, Range{lo, hi - lo})
	}
	slices.SortFunc(rs, func(a, b Range) int { return cmp.Compare(a.Off, b.Off) })
	var out []Range
	for _, x := range rs {
		if n := len(out); n > 0 && x.Off <= out[n-1].Off+out[n-1].Len {
			out[n-1].Len = max(out[n-1].Off+out[n-1].Len, x.Off+x.Len) - out[n-1].Off
			continue
		}
		out = append(out, x)
	}
	return out
}
