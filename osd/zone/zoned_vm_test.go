//go:build vmtest

package zone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stowage/stowage/qemu"
)

// TestVMZoned boots one guest with three kinds of real kernel zoned
// device and runs the zoned tests on each: a null_blk zoned device, a
// scsi_debug host-managed SMR disk and a QEMU NVMe ZNS namespace whose zone
// capacity (48 MiB) is below its zone size (64 MiB).
func TestVMZoned(t *testing.T) {
	// Fresh sparse images per run, removed afterwards (left to itself,
	// RunTest would put them in the package directory and reuse them).
	img := t.TempDir()
	opts := qemu.Options{
		Drives: []qemu.Drive{
			{
				Kind: qemu.NVMeZNS, ID: "zns", Serial: "ZNS0", Size: 1 << 30, Image: filepath.Join(img, "zns.img"),
				ZoneSize: 64 << 20, ZoneCapacity: 48 << 20, MaxOpen: 4, MaxActive: 6,
			},
			// 2560 small zones: more than one BLKREPORTZONE batch.
			{Kind: qemu.NVMeZNS, ID: "many", Serial: "ZNSMANY", Size: 2560 << 20, ZoneSize: 1 << 20, Image: filepath.Join(img, "many.img")},
			{Kind: qemu.NVMe, ID: "conv", Serial: "NVMECONV", Size: 256 << 20, Image: filepath.Join(img, "conv.img")},
		},
		Modules: []qemu.Module{
			{Name: "null_blk", Params: "nr_devices=1 zoned=1 zone_size=64 zone_nr_conv=1 gb=1 memory_backed=1 zone_max_open=8 zone_max_active=8"},
			{Name: "scsi_debug", Params: "zbc=managed dev_size_mb=512 zone_size_mb=64 zone_nr_conv=1"},
		},
		Binaries: []string{"blkzone"},
	}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		nullb, err := g.WaitName("nullb0")
		if err != nil {
			t.Fatal(err)
		}
		sd, err := g.WaitModel("scsi_debug")
		if err != nil {
			t.Fatal(err)
		}
		zns, err := g.Device("ZNS0")
		if err != nil {
			t.Fatal(err)
		}
		t.Run("batches", func(t *testing.T) { vmReportBatches(t, g) })
		t.Run("conventional", func(t *testing.T) { vmConventional(t, g) })
		for _, tc := range []struct {
			name, path string
			want       Info
			conv       int   // conventional zones at the start
			capacity   int64 // of sequential zones
			flavor     Flavor
		}{
			{"null_blk", nullb.Path, Info{ZoneSize: 64 << 20, NumZones: 16, BlockSize: 4096, MaxOpen: 8, MaxActive: 8}, 1, 64 << 20, FlavorNullBlk},
			{"scsi_debug", sd.Path, Info{ZoneSize: 64 << 20, NumZones: 8, BlockSize: 4096, MaxOpen: 3}, 1, 64 << 20, FlavorZBC},
			{"zns", zns.Path, Info{ZoneSize: 64 << 20, NumZones: 16, BlockSize: 4096, MaxOpen: 4, MaxActive: 6}, 0, 48 << 20, FlavorZNS},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.want.Path, tc.want.Kind = tc.path, KindZoned
				tc.want.Size = int64(tc.want.NumZones) * tc.want.ZoneSize
				vmZonedDevice(t, tc.path, tc.want, tc.conv, tc.capacity, tc.flavor)
			})
		}
	})
}

func vmZonedDevice(t *testing.T, path string, want Info, conv int, capacity int64, flavor Flavor) {
	ctx := context.Background()
	logSysfs(t, path)
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	z, ok := d.(*Zoned)
	if !ok {
		t.Fatalf("Open(%s) gave a %T, want *Zoned", path, d)
	}
	if in := z.Info(); in != want {
		t.Fatalf("info\n %+v, want\n %+v", in, want)
	}
	zs, err := z.ReportZones(ctx, 0, want.NumZones)
	if err != nil {
		t.Fatal(err)
	}
	for i, zn := range zs {
		typ, capa := TypeSeqWriteRequired, capacity
		if i < conv {
			typ, capa = TypeConventional, want.ZoneSize
		}
		if zn.Index != i || zn.Start != want.ZoneStart(i) || zn.Len != want.ZoneSize || zn.Type != typ || zn.Capacity != capa {
			t.Fatalf("zone %d: %+v, want type %d, capacity %d", i, zn, typ, capa)
		}
	}
	checkAgainstBlkzone(t, path, zs)

	// Write at the WP, off the WP, reset, finish, capacity.
	seq := conv
	start := want.ZoneStart(seq)
	if err := z.Reset(ctx, seq); err != nil {
		t.Fatal(err)
	}
	p := AlignedBlock(64 << 10)
	for i := range p {
		p[i] = byte(i/4096 + 7)
	}
	if _, err := z.WriteAt(p, start); err != nil {
		t.Fatalf("write at the WP: %v", err)
	}
	if zn := report1(t, z, seq); zn.WP != start+int64(len(p)) || zn.Cond != CondImpOpen {
		t.Fatalf("after a 64 KiB write at the start: %+v", zn)
	}
	// A raw report of the first four zones, for the golden files under
	// testdata/report (TestDecodeReportRealCaptures).
	raw := make([]byte, reportHeaderSize+4*blkZoneSize)
	if err := z.reportRaw(raw, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("report-capture %s zone-size %d: %x", path, want.ZoneSize, raw)
	for name, off := range map[string]int64{"past the WP": start + int64(len(p)) + 4096, "behind the WP": start} {
		_, err := z.WriteAt(p[:4096], off)
		if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.EREMOTEIO) {
			t.Errorf("write %s: err = %v, want EIO or EREMOTEIO", name, err)
		}
		t.Logf("write %s refused: %v", name, err)
	}
	if err := z.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	q := AlignedBlock(len(p))
	if _, err := z.ReadAt(q, start); err != nil || !bytes.Equal(p, q) {
		t.Fatalf("read back (err %v) differs", err)
	}
	if err := z.Reset(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if zn := report1(t, z, seq); zn.WP != start || zn.Cond != CondEmpty {
		t.Fatalf("after reset: %+v", zn)
	}
	// What a read past the write pointer returns is the device's
	// business (the engine never reads there); log it.
	clear(q)
	if _, err := z.ReadAt(q, start); err != nil || !bytes.Equal(q, make([]byte, len(q))) {
		t.Logf("a read of a reset zone returns nonzero bytes or fails (err %v)", err)
	}
	if err := z.Finish(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if zn := report1(t, z, seq); zn.WP != start+want.ZoneSize || zn.Cond != CondFull {
		t.Fatalf("after finish: %+v", zn)
	}
	if _, err := z.WriteAt(p[:4096], start); err == nil {
		t.Fatal("a write to a finished zone succeeded")
	}
	// Fill a zone to its capacity: it turns full and takes no more.
	if err := z.Reset(ctx, seq); err != nil {
		t.Fatal(err)
	}
	big := AlignedBlock(4 << 20)
	for off := int64(0); off < capacity; off += int64(len(big)) {
		if _, err := z.WriteAt(big[:min(int64(len(big)), capacity-off)], start+off); err != nil {
			t.Fatalf("filling zone %d at %d: %v", seq, off, err)
		}
	}
	if zn := report1(t, z, seq); zn.Cond != CondFull {
		t.Fatalf("zone written to capacity %d: %+v", capacity, zn)
	}
	if err := z.Reset(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if conv > 0 {
		if err := z.Reset(ctx, 0); err == nil {
			t.Error("reset of a conventional zone succeeded")
		}
		if _, err := z.WriteAt(p[:4096], 8192); err != nil {
			t.Errorf("random write to a conventional zone: %v", err)
		}
	}

	// The open and active limits, on the device and on a Mem with the
	// same geometry and flavor: the same script must succeed and fail at
	// the same steps, with the same errno, and leave the same conditions.
	m, err := NewMem(MemOptions{
		Kind: KindZoned, ZoneSize: want.ZoneSize, NumZones: want.NumZones,
		ZoneCapacity: capacity, ConvZones: conv, MaxOpen: want.MaxOpen, MaxActive: want.MaxActive, Flavor: flavor,
	})
	if err != nil {
		t.Fatal(err)
	}
	dev, model := limitScript(ctx, z, conv), limitScript(ctx, m, conv)
	failures := 0
	for i := range dev {
		t.Logf("step %2d %-34s device: %-60s mem: %s", i, dev[i].name, dev[i].outcome(), model[i].outcome())
		if dev[i].outcome() != model[i].outcome() {
			t.Errorf("step %d %s: the device and the Mem disagree", i, dev[i].name)
		}
		if dev[i].err != nil {
			failures++
		}
	}
	if failures == 0 {
		t.Error("the limit script never hit a limit")
	}
}

// vmReportBatches reports 2560 zones, more than one BLKREPORTZONE batch,
// whole and in ranges that straddle the batch size, against blkzone.
func vmReportBatches(t *testing.T, g *qemu.Guest) {
	ctx := context.Background()
	bd, err := g.Device("ZNSMANY")
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenZoned(bd.Path, ZonedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := d.Info()
	if in.NumZones != 2560 || in.ZoneSize != 1<<20 || in.MaxOpen != 0 {
		t.Fatalf("info %+v", in)
	}
	// Write a few zones so the report is not uniform.
	buf := AlignedBlock(8192)
	for _, i := range []int{0, 1023, 1024, 2047, 2559} {
		if _, err := d.WriteAt(buf[:4096*(1+i%2)], in.ZoneStart(i)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := d.ReportZones(ctx, 0, in.NumZones)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstBlkzone(t, bd.Path, all)
	for _, r := range [][2]int{{1000, 100}, {1023, 1026}, {2559, 1}, {5, 0}, {0, 2560}} {
		zs, err := d.ReportZones(ctx, r[0], r[1])
		if err != nil {
			t.Fatalf("report [%d, +%d): %v", r[0], r[1], err)
		}
		if len(zs) != r[1] {
			t.Fatalf("report [%d, +%d): %d zones", r[0], r[1], len(zs))
		}
		for k, z := range zs {
			if z != all[r[0]+k] {
				t.Fatalf("report [%d, +%d): zone %d is %+v, the full report says %+v", r[0], r[1], r[0]+k, z, all[r[0]+k])
			}
		}
	}
	if w := all[1023].WP - all[1023].Start; w != 8192 || all[1024].WP-all[1024].Start != 4096 {
		t.Fatalf("write pointers of zones 1023/1024: %d, %d", w, all[1024].WP-all[1024].Start)
	}
	if _, err := d.ReportZones(ctx, 2559, 2); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("report past the end: %v", err)
	}
}

// vmConventional opens a conventional NVMe namespace: Open picks emulated
// zones, and O_DIRECT I/O round-trips through a real NVMe driver.
func vmConventional(t *testing.T, g *qemu.Guest) {
	ctx := context.Background()
	bd, err := g.Device("NVMECONV")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(bd.Path, Options{ZoneSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if in := d.Info(); in.Kind != KindEmulated || in.NumZones != 4 {
		t.Fatalf("info %+v, want 4 emulated zones", in)
	}
	p := AlignedBlock(1 << 20)
	for i := range p {
		p[i] = byte(i / 512)
	}
	if _, err := d.WriteAt(p, 64<<20+4096); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	q := AlignedBlock(len(p))
	if _, err := d.ReadAt(q, 64<<20+4096); err != nil || !bytes.Equal(p, q) {
		t.Fatalf("read back (err %v) differs", err)
	}
	// NVMe takes 4-byte-aligned DMA buffers, so misalign by one byte.
	if _, err := d.WriteAt(AlignedBlock(8192)[1:4096+1], 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("misaligned buffer on NVMe: %v, want EINVAL from O_DIRECT", err)
	}
}

type scriptStep struct {
	name  string
	err   error
	conds string
}

func (s scriptStep) outcome() string {
	e := "ok"
	if s.err != nil {
		e = "error"
		var errno syscall.Errno
		if errors.As(s.err, &errno) {
			e = "error " + errno.Error()
		}
	}
	return e + " " + s.conds
}

// limitScript opens zones explicitly and implicitly up to and past the
// device's limits, closes, finishes and resets them, and records each
// step's outcome and the conditions of every sequential zone after it.
func limitScript(ctx context.Context, d interface {
	Device
	zoneOpener
}, conv int) []scriptStep {
	in := d.Info()
	var steps []scriptStep
	record := func(name string, err error) {
		s := scriptStep{name: name, err: err}
		zs, rerr := d.ReportZones(ctx, 0, in.NumZones)
		if rerr != nil {
			s.conds = "report: " + rerr.Error()
		} else {
			var b strings.Builder
			for _, z := range zs[conv:] {
				fmt.Fprintf(&b, "%x", int(z.Cond))
			}
			s.conds = b.String()
		}
		steps = append(steps, s)
	}
	buf := AlignedBlock(4096)
	write := func(i int) error {
		zs, err := d.ReportZones(ctx, i, 1)
		if err != nil {
			return err
		}
		_, err = d.WriteAt(buf, zs[0].WP)
		return err
	}
	seq := in.NumZones - conv
	for i := conv; i < in.NumZones; i++ {
		record(fmt.Sprintf("reset %d", i), d.Reset(ctx, i))
	}
	// Explicit opens up to the limit and one past it.
	n := min(in.MaxOpen+1, seq)
	for k := range n {
		record(fmt.Sprintf("open %d", conv+k), d.OpenZone(ctx, conv+k))
	}
	if n < seq {
		record(fmt.Sprintf("write %d (all open explicit)", conv+n), write(conv+n))
	}
	for k := range n + 1 {
		if conv+k < in.NumZones {
			record(fmt.Sprintf("close %d", conv+k), d.CloseZone(ctx, conv+k))
		}
	}
	for i := conv; i < in.NumZones; i++ {
		record(fmt.Sprintf("reset %d", i), d.Reset(ctx, i))
	}
	// Implicit opens through writes, across every zone.
	for i := conv; i < in.NumZones; i++ {
		record(fmt.Sprintf("write %d", i), write(i))
	}
	// Finishing frees resources; closing keeps a zone active.
	record(fmt.Sprintf("finish %d", conv), d.Finish(ctx, conv))
	record(fmt.Sprintf("close %d", conv+1), d.CloseZone(ctx, conv+1))
	record(fmt.Sprintf("write %d again", in.NumZones-1), write(in.NumZones-1))
	for i := conv; i < in.NumZones; i++ {
		record(fmt.Sprintf("reset %d", i), d.Reset(ctx, i))
	}
	return steps
}

func report1(t *testing.T, d Device, i int) Zone {
	t.Helper()
	zs, err := d.ReportZones(context.Background(), i, 1)
	if err != nil {
		t.Fatal(err)
	}
	return zs[0]
}

// logSysfs logs the device's sysfs queue attributes, the raw material of
// the fixtures under testdata/sys.
func logSysfs(t *testing.T, path string) {
	dir, err := SysfsDir("", path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range []string{"size", "queue/zoned", "queue/chunk_sectors", "queue/nr_zones", "queue/max_open_zones", "queue/max_active_zones", "queue/logical_block_size", "queue/physical_block_size"} {
		v, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			fmt.Fprintf(&b, " %s=<%v>", f, err)
			continue
		}
		fmt.Fprintf(&b, " %s=%s", f, strings.TrimSpace(string(v)))
	}
	t.Logf("sysfs %s:%s", path, b.String())
}

// blkzoneLine matches a zone line of util-linux `blkzone report`.
var blkzoneLine = regexp.MustCompile(`start: 0x([0-9a-f]+), len 0x([0-9a-f]+), (?:cap 0x([0-9a-f]+), )?wptr 0x([0-9a-f]+).*zcond:\s*(\d+).*type:\s*(\d+)`)

// checkAgainstBlkzone compares zs with what util-linux blkzone, an
// independent reader of BLKREPORTZONE, reports.
func checkAgainstBlkzone(t *testing.T, path string, zs []Zone) {
	out, err := exec.Command("blkzone", "report", path).CombinedOutput()
	if err != nil {
		t.Fatalf("blkzone report %s: %v: %s", path, err, out)
	}
	var got []Zone
	for _, l := range strings.Split(string(out), "\n") {
		m := blkzoneLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		h := func(s string) int64 { v, _ := strconv.ParseInt(s, 16, 64); return v * 512 }
		start, length := h(m[1]), h(m[2])
		capa := length
		if m[3] != "" {
			capa = h(m[3])
		}
		cond, _ := strconv.Atoi(m[5])
		typ, _ := strconv.Atoi(m[6])
		got = append(got, Zone{Start: start, Len: length, Capacity: capa, WP: start + h(m[4]), Cond: Cond(cond), Type: Type(typ)})
	}
	if len(got) < len(zs) {
		t.Fatalf("blkzone reported %d zones, we %d:\n%s", len(got), len(zs), out)
	}
	for i, z := range zs {
		b := got[i]
		if b.Start != z.Start || b.Len != z.Len || b.Capacity != z.Capacity || b.Cond != z.Cond || b.Type != z.Type {
			t.Errorf("zone %d: blkzone says %+v, we say %+v", i, b, z)
		}
		if z.Type != TypeConventional && z.Cond >= CondEmpty && z.Cond <= CondClosed && b.WP != z.WP {
			t.Errorf("zone %d: blkzone says WP %d, we say %d", i, b.WP, z.WP)
		}
	}
}
