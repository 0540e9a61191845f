package zone

import (
	"context"
	"testing"
)

// FuzzMemCrash drives a Mem with operations decoded from the fuzz input,
// then crashes it with a plan also taken from the input, and compares the
// result with the flat-image oracle (refDev) byte for byte and, on zoned
// Mems, write pointer for write pointer. Input: byte 0 picks the
// geometry; then 3 bytes per operation (what and where in the zone, zone,
// length); the bytes
// after a 0xff are the crash plan, one per pending change.
func FuzzMemCrash(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 0, 2, 1, 3, 1, 4, 0, 1, 1, 0xff, 9, 3, 0})
	f.Add([]byte{1, 0, 0, 1, 0, 0, 3, 5, 0, 0, 0, 1, 1, 0xff, 1, 1, 1, 0})
	f.Add([]byte{2, 0, 1, 8, 1, 2, 0, 0, 3, 2, 0, 1, 0, 0, 1, 4, 1, 0, 0xff, 4, 0, 200, 1})
	f.Add([]byte{3, 0, 0, 2, 0, 0, 2, 4, 0, 0, 0, 0, 3, 0xff, 255, 3})
	geometries := []MemOptions{
		{Kind: KindFile, ZoneSize: 16 << 10, NumZones: 3},
		{Kind: KindEmulated, ZoneSize: 16 << 10, NumZones: 3, BlockSize: 8192, SectorSize: 4096},
		{Kind: KindZoned, ZoneSize: 16 << 10, NumZones: 4, ConvZones: 1, ZoneCapacity: 12 << 10},
		{Kind: KindZoned, ZoneSize: 32 << 10, NumZones: 2, SectorSize: 4096},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		ctx := context.Background()
		o := geometries[int(in[0])%len(geometries)]
		m, err := NewMem(o)
		if err != nil {
			t.Fatal(err)
		}
		o = m.Options()
		durable, cur := newRef(o), newRef(o)
		var pending []refOp
		in = in[1:]
		for len(in) >= 3 && in[0] != 0xff {
			what, pos, i := in[0]%4, int64(in[0]>>2), int(in[1])%o.NumZones
			n := int64(in[2])%(o.ZoneSize/o.BlockSize) + 1
			in = in[3:]
			start := int64(i) * o.ZoneSize
			seq := cur.zoned && i >= o.ConvZones
			var op refOp
			switch {
			case what == 0:
				if err := m.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				for _, p := range pending {
					durable.do(p)
				}
				pending = nil
				continue
			case what == 1 && (!cur.zoned || seq):
				if err := m.Reset(ctx, i); err != nil {
					t.Fatal(err)
				}
				op = refOp{kind: memReset, zone: i}
				if !cur.zoned {
					op = refOp{kind: memWrite, off: start, data: make([]byte, o.BlockSize)}
				}
			case what == 2 && seq && !cur.full[i]:
				if err := m.Finish(ctx, i); err != nil {
					t.Fatal(err)
				}
				op = refOp{kind: memFinish, zone: i}
			default:
				size := n * o.BlockSize
				off := start + (pos*o.BlockSize)%(o.ZoneSize-size+o.BlockSize)
				if seq {
					if cur.full[i] || cur.wp[i]+size > o.ZoneCapacity {
						// The device must refuse it and change nothing.
						at := start + cur.wp[i]
						if cur.full[i] {
							at = start // start+WP may be the next zone's start
						}
						if _, err := m.WriteAt(AlignedBlock(int(size)), at); err == nil {
							t.Fatalf("write of %d bytes into zone %d (WP %d, full %v) accepted", size, i, cur.wp[i], cur.full[i])
						}
						continue
					}
					off = start + cur.wp[i]
				}
				p := AlignedBlock(int(size))
				for j := range p {
					p[j] = byte(len(pending)*31 + j/512 + 1)
				}
				if _, err := m.WriteAt(p, off); err != nil {
					t.Fatal(err)
				}
				op = refOp{kind: memWrite, off: off, data: p}
			}
			cur.do(op)
			pending = append(pending, op)
		}
		if len(in) > 0 && in[0] == 0xff {
			in = in[1:]
		}
		// The plan: one byte per pending change; keep a per-zone prefix
		// on sequential zones so the plan is valid everywhere.
		plan := make(CrashPlan, len(pending))
		lost := map[int]bool{}
		want := durable.clone()
		for k, op := range pending {
			size := 1
			if op.kind == memWrite {
				size = len(op.data) / int(o.SectorSize)
			}
			keep := 0
			if k < len(in) {
				keep = int(in[k]) % (size + 2)
				keep = min(keep, size)
			}
			z := op.zone
			if op.kind == memWrite {
				z = int(op.off / o.ZoneSize)
			}
			if cur.zoned && z >= o.ConvZones {
				if lost[z] {
					keep = 0
				}
				if keep < size {
					lost[z] = true
				}
			}
			plan[k] = keep
			if keep == 0 {
				continue
			}
			if op.kind == memWrite {
				op.data = op.data[:int64(keep)*o.SectorSize]
			}
			want.do(op)
		}
		c, err := m.CrashWith(plan)
		if err != nil {
			t.Fatalf("plan %v: %v", plan, err)
		}
		want.check(t, c, "crash")
		cur.check(t, m, "live device")
	})
}
