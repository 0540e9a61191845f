package zone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
)

func newMem(t *testing.T, o MemOptions) *Mem {
	t.Helper()
	m, err := NewMem(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fill returns n bytes of a pattern that differs per seed.
func fill(n int, seed byte) []byte {
	p := AlignedBlock(n)
	for i := range p {
		p[i] = seed + byte(i/512)*3 + 1
	}
	return p
}

func zoneOf(t *testing.T, d Device, i int) Zone {
	t.Helper()
	zs, err := d.ReportZones(context.Background(), i, 1)
	if err != nil {
		t.Fatal(err)
	}
	return zs[0]
}

func readAll(t *testing.T, d Device) []byte {
	t.Helper()
	p := AlignedBlock(int(d.Info().Size))
	if _, err := d.ReadAt(p, 0); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewMemRejectsBadOptions(t *testing.T) {
	for _, o := range []MemOptions{
		{Kind: Kind(9)},
		{BlockSize: 4096, SectorSize: 1000},
		{ZoneSize: 5000},
		{Kind: KindZoned, ZoneCapacity: 2 << 20},
		{Kind: KindZoned, ZoneCapacity: 1000},
		{Kind: KindZoned, NumZones: 2, ConvZones: 3},
		{Kind: KindEmulated, MaxOpen: 2},
		{Kind: KindZoned, MaxOpen: -1},
	} {
		if _, err := NewMem(o); err == nil {
			t.Errorf("NewMem(%+v) accepted bad options", o)
		}
	}
}

func TestMemZonedWritePointer(t *testing.T) {
	ctx := context.Background()
	const zs, capa = 64 << 10, 48 << 10
	m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: zs, NumZones: 4, ZoneCapacity: capa, ConvZones: 1})
	in := m.Info()
	if in.Kind != KindZoned || in.Size != 4*zs || in.NumZones != 4 {
		t.Fatalf("info %+v", in)
	}
	if z := zoneOf(t, m, 0); z.Type != TypeConventional || z.Cond != CondNotWP {
		t.Fatalf("zone 0 = %+v, want conventional", z)
	}
	z := zoneOf(t, m, 1)
	if z.Type != TypeSeqWriteRequired || z.Cond != CondEmpty || z.WP != zs || z.Capacity != capa || z.Len != zs {
		t.Fatalf("zone 1 = %+v, want empty sequential at %d, capacity %d", z, zs, capa)
	}
	// Conventional zone: anywhere, any order.
	if _, err := m.WriteAt(fill(4096, 1), 8192); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteAt(fill(4096, 2), 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Reset(ctx, 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("reset of a conventional zone: %v, want EIO", err)
	}
	// Sequential zone: only at the write pointer.
	start := in.ZoneStart(1)
	if _, err := m.WriteAt(fill(4096, 3), start+4096); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write past the WP: %v, want EIO", err)
	}
	if _, err := m.WriteAt(fill(8192, 3), start); err != nil {
		t.Fatal(err)
	}
	if z := zoneOf(t, m, 1); z.WP != start+8192 || z.Cond != CondImpOpen {
		t.Fatalf("after 8 KiB: %+v, want WP %d implicit-open", z, start+8192)
	}
	if _, err := m.WriteAt(fill(4096, 4), start); !errors.Is(err, syscall.EIO) {
		t.Fatalf("rewrite behind the WP: %v, want EIO", err)
	}
	if _, err := m.WriteAt(fill(capa, 4), start+8192); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write past the capacity: %v, want EIO", err)
	}
	if _, err := m.WriteAt(fill(zs, 4), in.ZoneStart(2)+0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write of a whole zone size into a smaller capacity: %v, want EIO", err)
	}
	if _, err := m.WriteAt(fill(capa-8192, 5), start+8192); err != nil {
		t.Fatal(err)
	}
	if z := zoneOf(t, m, 1); z.Cond != CondFull || z.WP != start+zs {
		t.Fatalf("zone written to capacity: %+v, want full with WP at the zone end", z)
	}
	if _, err := m.WriteAt(fill(4096, 6), start+capa); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write to a full zone: %v, want EIO", err)
	}
	// Reads past the WP are zeros; reads before it are the data.
	got := AlignedBlock(16384)
	if _, err := m.ReadAt(got, start); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:8192], fill(8192, 3)) || !bytes.Equal(got[8192:], fill(capa-8192, 5)[:8192]) {
		t.Fatal("read back of zone 1 differs")
	}
	// Reset empties, Finish fills.
	if err := m.Reset(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if z := zoneOf(t, m, 1); z.Cond != CondEmpty || z.WP != start {
		t.Fatalf("after reset: %+v", z)
	}
	if _, err := m.ReadAt(got, start); err != nil || !bytes.Equal(got, make([]byte, len(got))) {
		t.Fatalf("reset zone reads back data (err %v)", err)
	}
	if _, err := m.WriteAt(fill(4096, 7), start); err != nil {
		t.Fatalf("write at the start of a reset zone: %v", err)
	}
	if err := m.Finish(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if z := zoneOf(t, m, 1); z.Cond != CondFull || z.WP != start+zs {
		t.Fatalf("after finish: %+v", z)
	}
	if err := m.Finish(ctx, 1); err != nil {
		t.Fatalf("finish of a full zone: %v", err)
	}
	if err := m.Finish(ctx, 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("finish of a conventional zone: %v", err)
	}
	if err := m.Finish(ctx, 4); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("finish of zone 4 of 4: %v", err)
	}
	// A write may not cross into the next zone.
	if _, err := m.WriteAt(fill(8192, 8), in.ZoneStart(1)-4096); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write across a zone boundary: %v", err)
	}
}

func TestMemZonedOpenLimits(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 64 << 10, NumZones: 8, MaxOpen: 2, MaxActive: 3})
	if in := m.Info(); in.MaxOpen != 2 || in.MaxActive != 3 {
		t.Fatalf("limits in info: %+v", in)
	}
	w := func(i int) error {
		z := zoneOf(t, m, i)
		_, err := m.WriteAt(fill(4096, byte(i)), z.WP)
		return err
	}
	conds := func() []Cond {
		zs, err := m.ReportZones(ctx, 0, 8)
		if err != nil {
			t.Fatal(err)
		}
		var c []Cond
		for _, z := range zs {
			c = append(c, z.Cond)
		}
		return c
	}
	for i := range 2 {
		if err := w(i); err != nil {
			t.Fatal(err)
		}
	}
	// Third implicit open: the drive closes an implicitly open zone.
	if err := w(2); err != nil {
		t.Fatalf("third implicit open: %v", err)
	}
	if c := conds(); c[0] != CondClosed || c[1] != CondImpOpen || c[2] != CondImpOpen {
		t.Fatalf("conditions %v, want zone 0 closed, 1 and 2 open", c)
	}
	// Three active (one closed, two open): a fourth empty zone is refused.
	if err := w(3); !errors.Is(err, syscall.EOVERFLOW) {
		t.Fatalf("fourth active zone: %v, want EOVERFLOW", err)
	}
	if err := m.Finish(ctx, 3); !errors.Is(err, syscall.EOVERFLOW) {
		t.Fatalf("finish of an empty zone past the active limit: %v, want EOVERFLOW", err)
	}
	// Writing the closed zone again reopens it, closing another.
	if err := w(0); err != nil {
		t.Fatal(err)
	}
	if err := m.Finish(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Explicit opens are never closed to make room.
	if err := m.OpenZone(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := m.CloseZone(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.OpenZone(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if c := conds(); c[2] != CondExpOpen || c[3] != CondExpOpen || c[0] != CondClosed {
		t.Fatalf("conditions %v, want zones 2 and 3 explicitly open, 0 closed", c)
	}
	if err := w(0); !errors.Is(err, syscall.ETOOMANYREFS) {
		t.Fatalf("write with every open zone explicit: %v, want ETOOMANYREFS", err)
	}
	// Closing an empty explicitly open zone leaves it empty and frees both.
	if err := m.CloseZone(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if c := conds(); c[3] != CondEmpty {
		t.Fatalf("closed empty zone is %v", c[3])
	}
	if err := m.CloseZone(ctx, 3); !errors.Is(err, syscall.EIO) {
		t.Fatalf("close of an empty zone: %v, want EIO", err)
	}
	if err := w(0); err != nil {
		t.Fatalf("write after an open slot freed: %v", err)
	}
	if err := m.OpenZone(ctx, 1); !errors.Is(err, syscall.EIO) {
		t.Fatalf("open of a full zone: %v, want EIO", err)
	}
}

func TestMemEmulatedKinds(t *testing.T) {
	ctx := context.Background()
	for _, k := range []Kind{KindFile, KindEmulated} {
		t.Run(k.String(), func(t *testing.T) {
			m := newMem(t, MemOptions{Kind: k, ZoneSize: 64 << 10, NumZones: 2})
			if in := m.Info(); in.Kind != k || in.MaxOpen != 0 {
				t.Fatalf("info %+v", in)
			}
			// Anywhere, any order: the device keeps no write pointer.
			if _, err := m.WriteAt(fill(8192, 1), 16384); err != nil {
				t.Fatal(err)
			}
			if _, err := m.WriteAt(fill(8192, 2), 0); err != nil {
				t.Fatal(err)
			}
			if z := zoneOf(t, m, 0); z.Cond != CondUnknown || z.WP != 0 {
				t.Fatalf("zone %+v, want CondUnknown", z)
			}
			if err := m.Reset(ctx, 0); err != nil {
				t.Fatal(err)
			}
			got := readAll(t, m)
			want := make([]byte, 128<<10)
			copy(want[4096:], fill(8192, 2)[4096:])
			copy(want[16384:], fill(8192, 1))
			if !bytes.Equal(got, want) {
				t.Fatal("reset zeroed more or less than the zone's first block")
			}
			if err := m.Finish(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := m.WriteAt(fill(4096, 1), 100); !errors.Is(err, ErrUnaligned) {
				t.Fatalf("unaligned write: %v", err)
			}
			if _, err := m.ReadAt(make([]byte, 4096), 128<<10); !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("read past the end: %v", err)
			}
		})
	}
}

// refDev is the test's oracle for the crash model: a flat byte image and
// write pointers, changed by a list of operations.
type refDev struct {
	o     MemOptions
	img   []byte
	wp    []int64
	full  []bool
	zoned bool
}

type refOp struct {
	kind memOpKind
	off  int64
	data []byte
	zone int
}

func newRef(o MemOptions) *refDev {
	r := &refDev{o: o, img: make([]byte, int64(o.NumZones)*o.ZoneSize), wp: make([]int64, o.NumZones), full: make([]bool, o.NumZones), zoned: o.Kind == KindZoned}
	return r
}

func (r *refDev) clone() *refDev {
	c := *r
	c.img = bytes.Clone(r.img)
	c.wp = append([]int64(nil), r.wp...)
	c.full = append([]bool(nil), r.full...)
	return &c
}

func (r *refDev) do(op refOp) {
	switch op.kind {
	case memWrite:
		copy(r.img[op.off:], op.data)
		i := int(op.off / r.o.ZoneSize)
		if r.zoned && i >= r.o.ConvZones {
			r.wp[i] = op.off + int64(len(op.data)) - int64(i)*r.o.ZoneSize
			r.full[i] = r.wp[i] == r.o.ZoneCapacity
		}
	case memReset:
		s := int64(op.zone) * r.o.ZoneSize
		clear(r.img[s : s+r.o.ZoneSize])
		r.wp[op.zone], r.full[op.zone] = 0, false
	case memFinish:
		r.full[op.zone] = true
	}
}

// check compares a Mem with the oracle: every byte, and on a zoned device
// every write pointer and condition after a power cycle.
func (r *refDev) check(t *testing.T, m *Mem, what string) {
	t.Helper()
	got := readAll(t, m)
	if i := firstDiff(got, r.img); i >= 0 {
		t.Fatalf("%s: byte %d (zone %d) is %#x, oracle says %#x", what, i, int64(i)/r.o.ZoneSize, got[i], r.img[i])
	}
	if !r.zoned {
		return
	}
	zs, err := m.ReportZones(context.Background(), 0, r.o.NumZones)
	if err != nil {
		t.Fatal(err)
	}
	for i, z := range zs[r.o.ConvZones:] {
		i += r.o.ConvZones
		want, cond := z.Start+r.wp[i], CondClosed
		switch {
		case r.full[i]:
			want, cond = z.Start+z.Len, CondFull
		case r.wp[i] == 0:
			cond = CondEmpty
		}
		got := z.Cond
		if what == "live device" && (got == CondImpOpen || got == CondExpOpen) {
			got = CondClosed // open zones close in a power cycle
		}
		if z.WP != want || got != cond {
			t.Fatalf("%s: zone %d is %v at %d, oracle says %v at %d", what, i, z.Cond, z.WP, cond, want)
		}
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// workload runs random valid operations on m and the oracle: appends at
// the write pointer (or anywhere, on emulated zones), resets, finishes and
// flushes. It returns the oracle's durable state and the operations since
// the last flush.
func workload(t *testing.T, m *Mem, rng *rand.Rand, steps int) (*refDev, []refOp) {
	t.Helper()
	ctx := context.Background()
	o := m.Options()
	durable, cur := newRef(o), newRef(o)
	var pending []refOp
	for range steps {
		i := rng.IntN(o.NumZones)
		start := int64(i) * o.ZoneSize
		var op refOp
		switch x := rng.IntN(20); {
		case x == 0:
			if err := m.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for _, p := range pending {
				durable.do(p)
			}
			pending = nil
			continue
		case x == 1 && (!cur.zoned || i >= o.ConvZones):
			if err := m.Reset(ctx, i); err != nil {
				t.Fatal(err)
			}
			op = refOp{kind: memReset, zone: i}
			if !cur.zoned {
				op = refOp{kind: memWrite, off: start, data: make([]byte, o.BlockSize)}
			}
		case x == 2 && cur.zoned && i >= o.ConvZones && !cur.full[i]:
			if err := m.Finish(ctx, i); err != nil {
				t.Fatal(err)
			}
			op = refOp{kind: memFinish, zone: i}
		default:
			blocks := int64(1 + rng.IntN(4))
			off := start + rng.Int64N(o.ZoneSize/o.BlockSize-blocks+1)*o.BlockSize
			if cur.zoned && i >= o.ConvZones {
				if cur.full[i] || cur.wp[i]+blocks*o.BlockSize > o.ZoneCapacity {
					continue
				}
				off = start + cur.wp[i]
			}
			p := AlignedBlock(int(blocks * o.BlockSize))
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			if _, err := m.WriteAt(p, off); err != nil {
				t.Fatal(err)
			}
			op = refOp{kind: memWrite, off: off, data: p}
		}
		cur.do(op)
		pending = append(pending, op)
	}
	cur.check(t, m, "live device")
	if len(pending) != m.Pending() {
		t.Fatalf("device has %d pending changes, oracle %d", m.Pending(), len(pending))
	}
	return durable, pending
}

// TestMemCrashModel enumerates every crash point of random workloads and
// compares what survives with the oracle's reading of the model: flushed
// data, a prefix of the pending changes, and the next write torn at a
// sector boundary.
func TestMemCrashModel(t *testing.T) {
	for _, o := range []MemOptions{
		{Kind: KindFile, ZoneSize: 32 << 10, NumZones: 4},
		{Kind: KindEmulated, ZoneSize: 32 << 10, NumZones: 4, BlockSize: 8192, SectorSize: 4096},
		{Kind: KindZoned, ZoneSize: 32 << 10, NumZones: 5, ConvZones: 1, ZoneCapacity: 24 << 10},
		{Kind: KindZoned, ZoneSize: 32 << 10, NumZones: 4, MaxOpen: 8},
	} {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("%v/cap%d/seed%d", o.Kind, o.ZoneCapacity>>10, seed), func(t *testing.T) {
				m := newMem(t, o)
				durable, pending := workload(t, m, rand.New(rand.NewPCG(seed, 1)), 60)
				for k := 0; k <= len(pending); k++ {
					sectors := 1
					if k < len(pending) && pending[k].kind == memWrite {
						sectors = len(pending[k].data) / int(m.Options().SectorSize)
						if sectors != m.PendingSectors(k) {
							t.Fatalf("pending change %d: %d sectors, oracle %d", k, m.PendingSectors(k), sectors)
						}
					}
					for s := range sectors {
						p := CrashPoint{Keep: k, TornSectors: s}
						want := durable.clone()
						for _, op := range pending[:k] {
							want.do(op)
						}
						if s > 0 {
							torn := pending[k]
							torn.data = torn.data[:int64(s)*m.Options().SectorSize]
							want.do(torn)
						}
						c := m.CrashAt(p)
						want.check(t, c, p.String())
						if c.Pending() != 0 {
							t.Fatalf("%v: crashed device has %d pending changes", p, c.Pending())
						}
					}
				}
			})
		}
	}
}

// TestMemCrashThenContinue checks that a crashed zoned device works on:
// every write pointer sits just past surviving data, open zones come back
// closed, and a write at the reported pointer is accepted.
func TestMemCrashThenContinue(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 64 << 10, NumZones: 4, MaxOpen: 2, MaxActive: 3})
	if _, err := m.WriteAt(fill(8192, 1), 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.OpenZone(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteAt(fill(8192, 2), 8192); err != nil {
		t.Fatal(err)
	}
	c := m.CrashAt(CrashPoint{Keep: 0, TornSectors: 3})
	z0, z1 := zoneOf(t, c, 0), zoneOf(t, c, 1)
	if z0.Cond != CondClosed || z0.WP != 8192+3*512 {
		t.Fatalf("zone 0 after a torn write of 3 sectors: %+v", z0)
	}
	if z1.Cond != CondEmpty {
		t.Fatalf("explicitly opened empty zone after power cycle: %v, want empty", z1.Cond)
	}
	got := AlignedBlock(16384)
	if _, err := c.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := append(fill(8192, 1), fill(8192, 2)[:1536]...)
	want = append(want, make([]byte, 16384-len(want))...)
	if !bytes.Equal(got, want) {
		t.Fatal("crashed zone 0 does not hold the flushed data plus 3 torn sectors")
	}
	// The WP is not block aligned: the engine must finish or reset the
	// zone, as on a 512e drive. A block-aligned write past it fails.
	if _, err := c.WriteAt(fill(4096, 3), 12288); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write past a torn WP: %v, want EIO", err)
	}
	if _, err := c.WriteAt(fill(4096, 3), z1.WP); err != nil {
		t.Fatalf("write at the WP of a crashed device: %v", err)
	}
	// The original device is untouched by crashing it.
	if z := zoneOf(t, m, 1); z.Cond != CondExpOpen || z.WP != 64<<10+0 {
		t.Fatalf("original zone 1 changed by Crash: %+v", z)
	}
}

func TestMemCrashDeterministic(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 1 << 20, NumZones: 4})
	for i := range 40 {
		z := i % 4
		if _, err := m.WriteAt(fill(4096, byte(i)), int64(z)<<20+int64(i/4)*4096); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			if err := m.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[CrashPoint]bool{}
	for seed := range uint64(50) {
		a := m.Crash(rand.New(rand.NewPCG(seed, seed)))
		b := m.Crash(rand.New(rand.NewPCG(seed, seed)))
		if !bytes.Equal(readAll(t, a), readAll(t, b)) {
			t.Fatalf("seed %d: two crashes differ", seed)
		}
		seen[m.PickCrash(rand.New(rand.NewPCG(seed, seed)))] = true
	}
	if len(seen) < 20 {
		t.Fatalf("50 seeds gave only %d distinct crash points", len(seen))
	}
	for p := range seen {
		if p.Keep < 0 || p.Keep > 29 || p.TornSectors < 0 || p.TornSectors >= 8 {
			t.Fatalf("crash point %v out of range for 29 pending 8-sector writes", p)
		}
	}
}

func TestMemPowerCut(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 64 << 10, NumZones: 2})
	m.CutPowerAfter(3)
	if _, err := m.WriteAt(fill(4096, 1), 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteAt(fill(4096, 2), 4096); err != nil {
		t.Fatal(err)
	}
	before := m.Ops()
	for name, f := range map[string]func() error{
		"write":  func() error { _, err := m.WriteAt(fill(4096, 3), 8192); return err },
		"read":   func() error { _, err := m.ReadAt(make([]byte, 4096), 0); return err },
		"flush":  func() error { return m.Flush(ctx) },
		"reset":  func() error { return m.Reset(ctx, 0) },
		"finish": func() error { return m.Finish(ctx, 1) },
		"report": func() error { _, err := m.ReportZones(ctx, 0, 1); return err },
		"open":   func() error { return m.OpenZone(ctx, 1) },
		"close":  func() error { return m.CloseZone(ctx, 0) },
	} {
		if err := f(); !errors.Is(err, ErrPowerCut) || !errors.Is(err, syscall.EIO) {
			t.Errorf("%s after the power cut: %v, want ErrPowerCut and EIO", name, err)
		}
	}
	if m.Ops() != before+8 {
		t.Errorf("ops %d, want %d", m.Ops(), before+8)
	}
	if m.Pending() != 1 {
		t.Fatalf("%d pending changes, want 1: failed operations must change nothing", m.Pending())
	}
	c := m.CrashAt(CrashPoint{Keep: 0})
	if z := zoneOf(t, c, 0); z.WP != 4096 || z.Cond != CondClosed {
		t.Fatalf("after the crash zone 0 is %+v, want closed at 4096", z)
	}
	if _, err := c.WriteAt(fill(4096, 4), 4096); err != nil {
		t.Fatalf("a crashed device has power again: %v", err)
	}
	m.CutPowerAfter(-1)
	if _, err := m.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatalf("disarmed power cut still fails: %v", err)
	}
}

func TestMemClosed(t *testing.T) {
	m := newMem(t, MemOptions{})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteAt(fill(4096, 1), 0); err == nil {
		t.Fatal("write to a closed device succeeded")
	}
}

// TestMemConcurrent writes every zone from its own goroutine, under -race.
func TestMemConcurrent(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 256 << 10, NumZones: 8})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			for j := range 64 {
				if _, err := m.WriteAt(fill(4096, byte(i)), int64(i)*(256<<10)+int64(j)*4096); err != nil {
					errs <- err
					return
				}
				if j%16 == 0 {
					if err := m.Flush(ctx); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range 8 {
		if z := zoneOf(t, m, i); z.Cond != CondFull {
			t.Fatalf("zone %d: %+v, want full", i, z)
		}
	}
}

// TestMemFlavors pins the corner cases where null_blk, SCSI ZBC and NVMe
// ZNS differ (TestVMZoned checks the same against the real devices).
func TestMemFlavors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		f               Flavor
		closeOpenEmpty  Cond  // closing an explicitly opened empty zone
		closeEmptyFails bool  // closing an empty zone is an error
		sideClose       bool  // a failed open at both limits still closes an implicit zone
		wpErr           error // a write off the write pointer
	}{
		{FlavorNullBlk, CondEmpty, true, false, syscall.EIO},
		{FlavorZBC, CondEmpty, false, false, syscall.EREMOTEIO},
		{FlavorZNS, CondClosed, true, true, syscall.EIO},
	} {
		t.Run(tc.f.String(), func(t *testing.T) {
			m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 64 << 10, NumZones: 8, MaxOpen: 2, MaxActive: 3, Flavor: tc.f})
			if err := m.OpenZone(ctx, 0); err != nil {
				t.Fatal(err)
			}
			if err := m.CloseZone(ctx, 0); err != nil {
				t.Fatal(err)
			}
			if c := zoneOf(t, m, 0).Cond; c != tc.closeOpenEmpty {
				t.Errorf("closed empty zone is %v, want %v", c, tc.closeOpenEmpty)
			}
			if err := m.CloseZone(ctx, 1); (err != nil) != tc.closeEmptyFails {
				t.Errorf("close of an empty zone: err = %v, want failure %v", err, tc.closeEmptyFails)
			}
			if _, err := m.WriteAt(fill(4096, 1), 64<<10+4096); !errors.Is(err, tc.wpErr) {
				t.Errorf("write off the WP: %v, want %v", err, tc.wpErr)
			}
			if err := m.Reset(ctx, 0); err != nil { // frees zone 0 on every flavor
				t.Fatal(err)
			}
			for i := 2; i < 5; i++ {
				if _, err := m.WriteAt(fill(4096, 1), int64(i)*64<<10); err != nil {
					t.Fatal(err)
				}
			}
			// The drive closed zone 2 to open zone 4: zones 3 and 4 are
			// implicitly open, three are active. Opening zone 5 fails on
			// the active limit; only ZNS closes zone 3 on the way.
			before := zoneOf(t, m, 3).Cond
			if _, err := m.WriteAt(fill(4096, 1), 5*64<<10); !errors.Is(err, syscall.EOVERFLOW) {
				t.Fatalf("write to a fourth active zone: %v, want EOVERFLOW", err)
			}
			after := zoneOf(t, m, 3).Cond
			if (before != after) != tc.sideClose {
				t.Errorf("zone 3 went from %v to %v on a failed open; side close expected: %v", before, after, tc.sideClose)
			}
		})
	}
	if _, err := NewMem(MemOptions{Kind: KindZoned, Flavor: 7}); err == nil {
		t.Error("flavor 7 accepted")
	}
}

// TestMemCrashReordered draws out-of-order crash plans for random
// workloads and compares each crashed device with the oracle applying the
// same plan; on zoned Mems every plan keeps a prefix per zone.
func TestMemCrashReordered(t *testing.T) {
	for _, o := range []MemOptions{
		{Kind: KindEmulated, ZoneSize: 32 << 10, NumZones: 4},
		{Kind: KindZoned, ZoneSize: 32 << 10, NumZones: 5, ConvZones: 1, ZoneCapacity: 24 << 10},
	} {
		reordered := false // across seeds: one seed may leave changes in one zone only
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%v/seed%d", o.Kind, seed), func(t *testing.T) {
				m := newMem(t, o)
				rng := rand.New(rand.NewPCG(seed, 3))
				durable, pending := workload(t, m, rng, 60)
				for range 150 {
					plan := m.PickReordered(rng)
					if len(plan) != len(pending) {
						t.Fatalf("plan for %d changes, %d pending", len(plan), len(pending))
					}
					want := durable.clone()
					lostAt := -1
					for i, op := range pending {
						n := plan[i]
						size := 1
						if op.kind == memWrite {
							size = len(op.data) / int(m.Options().SectorSize)
						}
						if n < 0 || n > size {
							t.Fatalf("plan keeps %d of %d sectors of change %d", n, size, i)
						}
						if n > 0 && lostAt >= 0 {
							reordered = true
						}
						if n < size && lostAt < 0 {
							lostAt = i
						}
						if n == 0 {
							continue
						}
						if op.kind == memWrite {
							op.data = op.data[:int64(n)*m.Options().SectorSize]
						}
						want.do(op)
					}
					c, err := m.CrashWith(plan)
					if err != nil {
						t.Fatalf("plan %v: %v", plan, err)
					}
					want.check(t, c, fmt.Sprintf("plan %v", plan))
				}
			})
		}
		if !reordered {
			t.Errorf("%v: 450 plans never kept a change after losing an earlier one", o.Kind)
		}
	}
}

func TestMemCrashWithRejectsHoles(t *testing.T) {
	m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 64 << 10, NumZones: 2})
	for i := range 3 {
		if _, err := m.WriteAt(fill(4096, byte(i)), int64(i)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.WriteAt(fill(4096, 9), 64<<10); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []CrashPlan{{8, 0, 8, 0}, {8, 3, 1, 8}, {-1}, {8, 8, 8, 8, 8}} {
		if _, err := m.CrashWith(bad); err == nil {
			t.Errorf("plan %v accepted on a zoned device", bad)
		}
	}
	// Zones are independent: zone 1's write may survive zone 0's loss.
	c, err := m.CrashWith(CrashPlan{8, 2, 0, 8})
	if err != nil {
		t.Fatal(err)
	}
	if z0, z1 := zoneOf(t, c, 0), zoneOf(t, c, 1); z0.WP != 4096+1024 || z1.WP != 64<<10+4096 {
		t.Fatalf("WPs after the plan: %d, %d", z0.WP, z1.WP)
	}
	e := newMem(t, MemOptions{Kind: KindEmulated, ZoneSize: 64 << 10, NumZones: 1})
	for i := range 2 {
		if _, err := e.WriteAt(fill(4096, byte(i+1)), int64(i)*4096); err != nil {
			t.Fatal(err)
		}
	}
	c, err = e.CrashWith(CrashPlan{0, 8})
	if err != nil {
		t.Fatalf("a hole on emulated zones: %v", err)
	}
	got := readAll(t, c)
	if !bytes.Equal(got[:4096], make([]byte, 4096)) || !bytes.Equal(got[4096:8192], fill(4096, 2)) {
		t.Fatal("emulated plan {0, 8} did not keep only the second write")
	}
}

// TestMemPowerCutDuringWrite: the write at the cut fails, the live device
// does not show it, but a crash may keep it whole or torn.
func TestMemPowerCutDuringWrite(t *testing.T) {
	for _, k := range []Kind{KindEmulated, KindZoned} {
		t.Run(k.String(), func(t *testing.T) {
			m := newMem(t, MemOptions{Kind: k, ZoneSize: 64 << 10, NumZones: 2})
			m.CutPowerDuring(1)
			if _, err := m.WriteAt(fill(4096, 1), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := m.WriteAt(fill(8192, 2), 4096); !errors.Is(err, ErrPowerCut) {
				t.Fatalf("write at the cut: %v, want ErrPowerCut", err)
			}
			if _, err := m.WriteAt(fill(4096, 3), 12288); !errors.Is(err, ErrPowerCut) {
				t.Fatalf("write after the cut: %v", err)
			}
			if m.Pending() != 2 || m.PendingSectors(1) != 16 {
				t.Fatalf("pending %d (second %d sectors), want the completed write and the one in flight", m.Pending(), m.PendingSectors(1))
			}
			whole := readAll(t, m.CrashAt(CrashPoint{Keep: 2}))
			if !bytes.Equal(whole[4096:12288], fill(8192, 2)) || !bytes.Equal(whole[12288:16384], make([]byte, 4096)) {
				t.Fatal("the in-flight write did not land whole, or the write after the cut landed")
			}
			torn := m.CrashAt(CrashPoint{Keep: 1, TornSectors: 5})
			got := readAll(t, torn)
			if !bytes.Equal(got[4096:4096+2560], fill(8192, 2)[:2560]) || !bytes.Equal(got[4096+2560:12288], make([]byte, 8192-2560)) {
				t.Fatal("the in-flight write was not torn after 5 sectors")
			}
			if k == KindZoned {
				if z := zoneOf(t, torn, 0); z.WP != 4096+2560 {
					t.Fatalf("WP after a torn in-flight write: %d", z.WP)
				}
			}
			// A write the device would refuse never lands.
			n := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 64 << 10, NumZones: 2})
			n.CutPowerDuring(0)
			if _, err := n.WriteAt(fill(4096, 1), 8192); !errors.Is(err, ErrPowerCut) {
				t.Fatal(err)
			}
			if n.Pending() != 0 {
				t.Fatal("a write off the write pointer joined the pending changes")
			}
		})
	}
}

func TestMemStaleReads(t *testing.T) {
	ctx := context.Background()
	for _, stale := range []bool{false, true} {
		m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 64 << 10, NumZones: 2, StaleReads: stale})
		if _, err := m.WriteAt(fill(8192, 1), 0); err != nil {
			t.Fatal(err)
		}
		if err := m.Reset(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := m.WriteAt(fill(4096, 2), 0); err != nil {
			t.Fatal(err)
		}
		if z := zoneOf(t, m, 0); z.WP != 4096 {
			t.Fatalf("stale %v: WP %d", stale, z.WP)
		}
		got := AlignedBlock(8192)
		if _, err := m.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		past := make([]byte, 4096)
		if stale {
			past = fill(8192, 1)[4096:]
		}
		if !bytes.Equal(got[:4096], fill(4096, 2)) || !bytes.Equal(got[4096:], past) {
			t.Fatalf("stale %v: bytes past the WP are not what the flavor promises", stale)
		}
	}
	if _, err := NewMem(MemOptions{Kind: KindEmulated, StaleReads: true}); err == nil {
		t.Fatal("StaleReads accepted on emulated zones")
	}
}
