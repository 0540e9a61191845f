package foreign

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
)

// sparse is a device of size bytes that is zero except where put says.
type sparse struct {
	size   int64
	chunks []chunk
}

type chunk struct {
	off int64
	b   []byte
}

func (s *sparse) put(off int64, b []byte) *sparse {
	s.chunks = append(s.chunks, chunk{off, append([]byte(nil), b...)})
	return s
}

func (s *sparse) putU32(off int64, v uint32, order binary.AppendByteOrder) *sparse {
	return s.put(off, order.AppendUint32(nil, v))
}

func (s *sparse) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= s.size {
		return 0, io.EOF
	}
	n := len(p)
	if off+int64(n) > s.size {
		n = int(s.size - off)
	}
	clear(p[:n])
	for _, c := range s.chunks {
		lo, hi := max(off, c.off), min(off+int64(n), c.off+int64(len(c.b)))
		if lo < hi {
			copy(p[lo-off:hi-off], c.b[lo-c.off:hi-c.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

const (
	mib = int64(1) << 20
	// An odd size: 8 MiB + 3 sectors + 40 KiB, so that end-relative
	// offsets are not trivially aligned.
	odd = 8*mib + 3*512 + 40960
	// A 16 TB drive, 4 KiB-aligned.
	big = int64(16_000_900_661_248)
)

func bootSector(fill func(s []byte)) []byte {
	s := make([]byte, 512)
	fill(s)
	s[510], s[511] = 0x55, 0xaa
	return s
}

func TestFixtures(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	md := func(size, off int64) *sparse {
		d := &sparse{size: size}
		d.putU32(off, 0xa92b4efc, le).putU32(off+4, 1, le)
		return d
	}
	// Offsets computed the way mdadm and the kernel write them (sectors).
	md10 := func(size int64) int64 { return (size/512 - 8*2) & ^int64(4*2-1) * 512 }
	md090 := func(size int64) int64 { return ((size/512)&^(128-1) - 128) * 512 }
	zfsEnd := func(size int64, label int) int64 { return size&^(256<<10-1) - int64(2-label)*(256<<10) }
	labelRec := func() []byte {
		r := label.Record{Generation: 5, State: lifecycle.InService, Serial: "Z1", Owner: "osd", Payload: []byte("sb")}
		b, err := label.Encode(&r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()

	// A valid record of ours whose payload holds "EFI PART" at device
	// offset 512 and an ext superblock magic at 1080.
	mimic := func() []byte {
		r := label.Record{Generation: 9, State: lifecycle.Ready, Payload: bytes.Repeat([]byte{'x'}, 2000)}
		b, _ := label.Encode(&r)
		at := bytes.Index(b, []byte("xxxx"))
		copy(r.Payload[512-at:], "EFI PART")
		copy(r.Payload[1080-at:], []byte{0x53, 0xef})
		b, err := label.Encode(&r)
		if err != nil || string(b[512:520]) != "EFI PART" {
			t.Fatalf("mimic record: %v", err)
		}
		return b
	}()
	cases := []struct {
		name    string
		dev     *sparse
		opts    Options
		want    []at
		foreign bool
	}{
		{"blank", &sparse{size: odd}, Options{}, nil, false},
		{"blank 16 TB", &sparse{size: big}, Options{}, nil, false},
		{"tiny device", &sparse{size: 1024}, Options{}, nil, false},
		{"empty device", &sparse{size: 0}, Options{}, nil, false},
		{"xfs", (&sparse{size: odd}).put(0, []byte("XFSB\x00\x00\x10\x00")), Options{}, []at{{KindXFS, 0}}, true},
		{"btrfs", (&sparse{size: odd}).put(65536+64, []byte("_BHRfS_M")), Options{}, []at{{KindBtrfs, 65536}}, true},
		{"btrfs magic one byte early", (&sparse{size: odd}).put(65536+63, []byte("_BHRfS_M")), Options{}, nil, false},
		{"lvm2 in sector 1", (&sparse{size: odd}).put(512, []byte("LABELONE")).put(512+24, []byte("LVM2 001")), Options{}, []at{{KindLVM2, 512}}, true},
		{"LABELONE without LVM2 type", (&sparse{size: odd}).put(512, []byte("LABELONE")), Options{}, nil, false},
		{"lvm2 in sector 4 is not a label", (&sparse{size: odd}).put(2048, []byte("LABELONE")).put(2048+24, []byte("LVM2 001")), Options{}, nil, false},
		{"md v1.1", md(odd, 0), Options{}, []at{{KindMD, 0}}, true},
		{"md v1.2", md(odd, 4096), Options{}, []at{{KindMD, 4096}}, true},
		{"md v1.0", md(odd, md10(odd)), Options{}, []at{{KindMD, md10(odd)}}, true},
		{"md v1.0 on 16 TB", md(big, md10(big)), Options{}, []at{{KindMD, md10(big)}}, true},
		{"md v1.2 magic, major version 2", (&sparse{size: odd}).putU32(4096, 0xa92b4efc, le).putU32(4100, 2, le), Options{}, nil, false},
		{"md v0.90 little-endian", (&sparse{size: odd}).putU32(md090(odd), 0xa92b4efc, le), Options{}, []at{{KindMD, md090(odd)}}, true},
		{"md v0.90 big-endian", (&sparse{size: odd}).putU32(md090(odd), 0xa92b4efc, be), Options{}, []at{{KindMD, md090(odd)}}, true},
		{"bcache", (&sparse{size: odd}).put(4096+24, bcacheMagic), Options{}, []at{{KindBcache, 4096}}, true},
		{"zfs label 0, little-endian uberblock", (&sparse{size: odd}).put(128<<10, le.AppendUint64(nil, 0x00bab10c)), Options{}, []at{{KindZFS, 0}}, true},
		{"zfs label 1, big-endian uberblock in slot 5", (&sparse{size: odd}).put(256<<10+128<<10+5<<10, be.AppendUint64(nil, 0x00bab10c)), Options{}, []at{{KindZFS, 256 << 10}}, true},
		{"zfs labels 2 and 3 only", (&sparse{size: odd}).
			put(zfsEnd(odd, 0)+128<<10, le.AppendUint64(nil, 0x00bab10c)).
			put(zfsEnd(odd, 1)+255<<10, le.AppendUint64(nil, 0x00bab10c)), Options{},
			[]at{{KindZFS, zfsEnd(odd, 0)}, {KindZFS, zfsEnd(odd, 1)}}, true},
		{"zfs magic off the slot grid", (&sparse{size: odd}).put(128<<10+100, le.AppendUint64(nil, 0x00bab10c)), Options{}, nil, false},
		{"swap, 4 KiB pages", (&sparse{size: odd}).put(4096-10, []byte("SWAPSPACE2")), Options{}, []at{{KindSwap, 0}}, true},
		{"old swap, 64 KiB pages", (&sparse{size: odd}).put(65536-10, []byte("SWAP-SPACE")), Options{}, []at{{KindSwap, 0}}, true},
		{"luks", (&sparse{size: odd}).put(0, []byte("LUKS\xba\xbe\x00\x02")), Options{}, []at{{KindLUKS, 0}}, true},
		{"luks2 secondary header only", (&sparse{size: odd}).put(16384, []byte("SKUL\xba\xbe\x00\x02")), Options{}, []at{{KindLUKS, 16384}}, true},
		{"fat32 boot sector, not an mbr", (&sparse{size: odd}).put(0, bootSector(func(s []byte) {
			copy(s, "\xeb\x58\x90mkfs.fat")
			copy(s[82:], "FAT32   ")
			s[446] = 0x7e // boot code where an MBR has its table
		})), Options{}, []at{{KindFAT, 0}}, true},
		{"fat16", (&sparse{size: odd}).put(0, bootSector(func(s []byte) { copy(s, "\xeb\x3c\x90MSDOS5.0"); copy(s[54:], "FAT16   ") })), Options{}, []at{{KindFAT, 0}}, true},
		{"exfat", (&sparse{size: odd}).put(0, bootSector(func(s []byte) { copy(s, "\xeb\x76\x90EXFAT   ") })), Options{}, []at{{KindExFAT, 0}}, true},
		{"ntfs", (&sparse{size: odd}).put(0, bootSector(func(s []byte) { copy(s, "\xeb\x52\x90NTFS    ") })), Options{}, []at{{KindNTFS, 0}}, true},
		{"mbr, one linux partition", (&sparse{size: odd}).put(0, bootSector(func(s []byte) {
			e := s[446:]
			e[0], e[4] = 0x80, 0x83
			le.PutUint32(e[8:], 2048)
			le.PutUint32(e[12:], 4096)
		})), Options{}, []at{{KindMBR, 0}}, true},
		{"0x55aa with a bad boot flag", (&sparse{size: odd}).put(0, bootSector(func(s []byte) { s[446], s[446+4], s[446+12] = 0x12, 0x83, 1 })), Options{}, nil, false},
		{"0x55aa with an empty table", (&sparse{size: odd}).put(0, bootSector(func([]byte) {})), Options{}, nil, false},
		{"iso9660", (&sparse{size: odd}).put(32768, []byte("\x01CD001\x01")), Options{}, []at{{KindISO9660, 32768}}, true},
		{"gpt, 4096-byte sectors, both headers", (&sparse{size: 8 * mib}).put(4096, []byte("EFI PART")).put(8*mib-4096, []byte("EFI PART")), Options{},
			[]at{{KindGPT, 4096}, {KindGPT, 8*mib - 4096}}, true},
		{"gpt backup on a 16 TB drive", (&sparse{size: big}).put(big-512, []byte("EFI PART")), Options{}, []at{{KindGPT, big - 512}}, true},
		{"EFI PART one byte late", (&sparse{size: odd}).put(513, []byte("EFI PART")), Options{}, nil, false},
		{"ext4 magic, impossible revision", (&sparse{size: odd}).put(1080, []byte{0x53, 0xef}).putU32(1024+76, 7, le), Options{}, nil, false},
		{"ext4 by features", (&sparse{size: odd}).put(1080, []byte{0x53, 0xef}).putU32(1024+76, 1, le).putU32(1024+96, 0x2c2, le), Options{}, []at{{KindExt4, 1024}}, true},
		{"ceph bluestore", (&sparse{size: odd}).put(0, []byte("bluestore block device\n")), Options{}, []at{{KindBlueStor, 0}}, true},
		{"squashfs", (&sparse{size: odd}).put(0, []byte("hsqs")), Options{}, []at{{KindSquashFS, 0}}, true},
		{"cramfs", (&sparse{size: odd}).putU32(0, 0x28cd3d45, le).put(16, []byte("Compressed ROMFS")), Options{}, []at{{KindCramFS, 0}}, true},
		{"our label", (&sparse{size: odd}).put(0, labelRec), Options{}, []at{{KindLabel, 0}}, false},
		{"our label, torn: foreign-free but not ours", (&sparse{size: odd}).put(0, labelRec[:30]), Options{}, nil, false},
		{"our label in region 1 after a switch", (&sparse{size: odd}).put(label.RegionSize+8192, labelRec), Options{}, []at{{KindLabel, label.RegionSize + 8192}}, false},
		{"our label in zone 1 of a zoned drive", (&sparse{size: 512 * mib}).put(256*mib, labelRec), Options{LabelOffsets: []int64{256 * mib}},
			[]at{{KindLabel, 256 * mib}}, false},
		{"zone 1 not named: label not seen", (&sparse{size: 512 * mib}).put(256*mib, labelRec), Options{}, nil, false},
		{"our label and a leftover gpt backup: ours", (&sparse{size: odd}).put(0, labelRec).put(odd-512, []byte("EFI PART")), Options{},
			[]at{{KindLabel, 0}, {KindGPT, odd - 512}}, false},
		{"gpt written over region 0 of our label: foreign", (&sparse{size: odd}).put(label.RegionSize, labelRec).
			put(0, bootSector(func(s []byte) { s[446+4], s[446+12] = 0xee, 1 })).put(512, []byte("EFI PART")), Options{},
			[]at{{KindPMBR, 0}, {KindGPT, 512}, {KindLabel, label.RegionSize}}, true},
		{"signatures inside our record are ours", (&sparse{size: odd}).put(0, mimic), Options{}, []at{{KindLabel, 0}}, false},
		{"a damaged record of ours masks nothing", (&sparse{size: odd}).put(0, mimic[:1100]), Options{}, []at{{KindGPT, 512}}, true},
		{"everything at once", (&sparse{size: odd}).put(0, []byte("XFSB")).put(65600, []byte("_BHRfS_M")).put(4096-10, []byte("SWAPSPACE2")).
			put(4096+24, bcacheMagic), Options{}, []at{{KindXFS, 0}, {KindSwap, 0}, {KindBcache, 4096}, {KindBtrfs, 65536}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Detect(c.dev, c.dev.size, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := findingsAt(r); !slices.Equal(got, c.want) {
				t.Fatalf("findings %v, want %v (%+v)", got, c.want, r.Findings)
			}
			if r.Foreign() != c.foreign {
				t.Errorf("Foreign() = %v, want %v", r.Foreign(), c.foreign)
			}
			checkFindings(t, c.dev, r)
		})
	}
}

// checkFindings: every finding lies inside the device and covers at least
// one non-zero byte (a signature is never made of zeros).
func checkFindings(t *testing.T, dev io.ReaderAt, r Report) {
	t.Helper()
	for _, f := range r.Findings {
		if f.Offset < 0 || f.Len <= 0 || f.Offset+f.Len > r.Size {
			t.Fatalf("finding %+v outside a %d-byte device", f, r.Size)
		}
		b := make([]byte, f.Len)
		if _, err := dev.ReadAt(b, f.Offset); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
			t.Fatalf("finding %+v covers only zeros", f)
		}
	}
}

type failingReader struct{ at int64 }

func (f failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off <= f.at && f.at < off+int64(len(p)) {
		return 0, errors.New("medium error")
	}
	clear(p)
	return len(p), nil
}

func TestReadErrors(t *testing.T) {
	for _, at := range []int64{0, odd - 100} {
		if _, err := Detect(failingReader{at}, odd, Options{}); err == nil {
			t.Errorf("read error at %d not reported", at)
		}
	}
	short := &sparse{size: 4096}
	if _, err := Detect(short, 8192, Options{}); err == nil {
		t.Error("short device not reported")
	}
	if _, err := Detect(short, -1, Options{}); err == nil {
		t.Error("negative size accepted")
	}
}

// FuzzDetect: arbitrary bytes at the head and the tail of a device with a
// gap of zeros between them. Detect never panics, is deterministic, every
// finding points inside the device at non-zero bytes, and the same device
// all zeros yields nothing.
func FuzzDetect(f *testing.F) {
	f.Add([]byte("XFSB"), []byte("EFI PART"), uint32(1<<20))
	f.Add(bootSector(func(s []byte) { s[446], s[450], s[458] = 0x80, 0xee, 1 }), []byte{}, uint32(0))
	f.Add(make([]byte, 70000), []byte("SWAPSPACE2"), uint32(4096))
	f.Fuzz(func(t *testing.T, head, tail []byte, gap uint32) {
		size := int64(len(head)) + int64(gap%(64<<20)) + int64(len(tail))
		dev := (&sparse{size: size}).put(0, head).put(size-int64(len(tail)), tail)
		r, err := Detect(dev, size, Options{LabelOffsets: []int64{size / 2}})
		if err != nil {
			t.Fatal(err)
		}
		checkFindings(t, dev, r)
		r2, _ := Detect(dev, size, Options{LabelOffsets: []int64{size / 2}})
		if !slices.Equal(r.Findings, r2.Findings) {
			t.Fatal("not deterministic")
		}
		blank, err := Detect(&sparse{size: size}, size, Options{})
		if err != nil || len(blank.Findings) != 0 {
			t.Fatalf("blank device: %v %v", blank.Findings, err)
		}
		if r.Ours() && r.Foreign() {
			t.Fatal("ours and foreign at once")
		}
	})
}

func TestWipeRanges(t *testing.T) {
	r := Report{Size: 100 << 10, Findings: []Finding{
		{Kind: KindLabel, Offset: 0, Len: 4096, Ours: true},
		{Kind: KindExt4, Offset: 1024, Len: 1024},
		{Kind: KindSwap, Offset: 0, Len: 4096},
		{Kind: KindBcache, Offset: 4096, Len: 4096},
		{Kind: KindGPT, Offset: 100<<10 - 512, Len: 512},
	}}
	want := []Range{{0, 8192}, {96 << 10, 4096}}
	if got := r.WipeRanges(4096); !slices.Equal(got, want) {
		t.Errorf("WipeRanges(4096) = %v, want %v", got, want)
	}
	want = []Range{{0, 8192}, {100<<10 - 512, 512}}
	if got := r.WipeRanges(512); !slices.Equal(got, want) {
		t.Errorf("WipeRanges(512) = %v, want %v", got, want)
	}
}
