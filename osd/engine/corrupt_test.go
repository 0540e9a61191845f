package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stowage/stowage/osd/record"
	"github.com/stowage/stowage/osd/zone"
)

// flipAt flips one byte at device offset off (any alignment).
func flipAt(t *testing.T, dev zone.Device, off int64) {
	t.Helper()
	b := zone.AlignedBlock(record.BlockSize)
	at := off &^ (record.BlockSize - 1)
	if _, err := dev.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[off-at] ^= 0x5a
	if _, err := dev.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptionTable damages bytes on the device (as
// prometheus/tsdb/wlog's TestWALRepair_ReadingError does) and states how
// many blocks recovery must still serve and how many Gets must report a
// CorruptionError. Blocks of 20 KiB (24 KiB records): 42 fit a 1 MiB
// extent, so 60 blocks leave extent 0 closed and extent 1 open.
func TestCorruptionTable(t *testing.T) {
	type layout struct {
		locs    []uint64 // record locations, in put order
		footer  int64    // device offset of extent 0's footer (closed cases)
		trailer int64
		header0 int64 // device offset of extent 0's header
	}
	cases := []struct {
		name      string
		blocks    int
		damage    func(l layout) int64 // device offset to flip
		damage2   func(l layout) int64 // and another, if set
		damage3   func(l layout) int64
		survive   int // blocks Get must still return intact
		corrupt   int // blocks whose Get reports corruption
		undamaged bool
	}{
		{name: "nothing", blocks: 20, undamaged: true, survive: 20},
		{name: "open extent: payload of record 15", blocks: 20, damage: func(l layout) int64 { return int64(l.locs[15])*4096 + 5000 }, survive: 15},
		{name: "open extent: header of record 0", blocks: 20, damage: func(l layout) int64 { return int64(l.locs[0])*4096 + 30 }, survive: 0},
		{name: "open extent: last record's padding", blocks: 20, damage: func(l layout) int64 { return int64(l.locs[19])*4096 + 24<<10 - 10 }, survive: 20},
		{name: "open extent: its header (salvaged from the first record)", blocks: 20, damage: func(l layout) int64 { return l.header0 + 8 }, survive: 20},
		{name: "open extent: its header and the first record", blocks: 20, damage: func(l layout) int64 { return l.header0 + 8 }, damage2: func(l layout) int64 { return int64(l.locs[0])*4096 + 40 }, survive: 0},
		{name: "closed extent: payload of record 3", blocks: 60, damage: func(l layout) int64 { return int64(l.locs[3])*4096 + 9000 }, survive: 59, corrupt: 1},
		{name: "closed extent: footer", blocks: 60, damage: func(l layout) int64 { return l.footer + 4096 + 100 }, survive: 60},
		{name: "closed extent: trailer", blocks: 60, damage: func(l layout) int64 { return l.trailer + 12 }, survive: 60},
		{name: "closed extent: its header (salvaged from the trailer)", blocks: 60, damage: func(l layout) int64 { return l.header0 + 20 }, survive: 60},
		{name: "closed extent: its header and trailer (salvaged by a scan)", blocks: 60, damage: func(l layout) int64 { return l.header0 + 20 }, damage2: func(l layout) int64 { return l.trailer + 12 }, survive: 60},
		{name: "closed extent: header, trailer and first record", blocks: 60, damage: func(l layout) int64 { return l.header0 + 20 }, damage2: func(l layout) int64 { return l.trailer + 12 }, damage3: func(l layout) int64 { return int64(l.locs[0])*4096 + 40 }, survive: 60 - 42},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dev := newMem(t, zone.KindFile, 0)
			e := mustOpen(t, dev, testOptions(rand.New(rand.NewPCG(1, 1))))
			rng := rand.New(rand.NewPCG(2, 2))
			var ids []ID
			var l layout
			for i := 0; i < tc.blocks; i++ {
				b := make([]byte, 20<<10)
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
				id := BlockID(b)
				if err := e.Put(ctx, id, b); err != nil {
					t.Fatal(err)
				}
				loc, _, err := e.find(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
				l.locs = append(l.locs, loc)
			}
			x := e.exts[0]
			l.header0 = e.info.ZoneStart(x.zones[0])
			if tr, err := e.findTrailer(x, x.inc, nil); err == nil && tr != nil {
				l.footer = x.device(e.info, int64(tr.FooterOff))
				l.trailer = x.device(e.info, x.trailerAt(int64(tr.FooterOff+tr.FooterSize)))
				if len(x.entries) != 0 || !x.footer {
					t.Fatalf("extent 0 should be closed with a footer")
				}
			} else if tc.blocks == 60 {
				t.Fatalf("extent 0 not closed after 60 blocks: %v", err)
			}
			e.Close()
			if !tc.undamaged {
				flipAt(t, dev, tc.damage(l))
			}
			if tc.damage2 != nil {
				flipAt(t, dev, tc.damage2(l))
			}
			if tc.damage3 != nil {
				flipAt(t, dev, tc.damage3(l))
			}
			e = mustOpen(t, dev, testOptions(nil))
			defer e.Close()
			ok, bad := 0, 0
			for _, id := range ids {
				_, err := e.Get(ctx, id)
				var ce *CorruptionError
				switch {
				case err == nil:
					ok++
				case errors.As(err, &ce):
					bad++
				case !errors.Is(err, ErrNotFound):
					t.Fatalf("Get: %v", err)
				}
			}
			if ok != tc.survive || bad != tc.corrupt {
				t.Fatalf("%d intact, %d corrupt; want %d intact, %d corrupt", ok, bad, tc.survive, tc.corrupt)
			}
			// The engine keeps working: a new block after the damage
			// survives a restart.
			b := []byte("after the damage")
			if err := e.Put(ctx, BlockID(b), b); err != nil {
				t.Fatal(err)
			}
			e.Close()
			e = mustOpen(t, dev, testOptions(nil))
			if got, err := e.Get(ctx, BlockID(b)); err != nil || string(got) != string(b) {
				t.Fatalf("block written after the damage: %q, %v", got, err)
			}
		})
	}
}
