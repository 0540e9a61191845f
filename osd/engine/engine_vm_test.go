//go:build vmtest

package engine

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu"
)

// TestVMEngineZoned runs the engine inside a QEMU guest on three real
// kernel zoned devices, opened through zone.Open's auto-detection: a
// null_blk zoned device, a scsi_debug host-managed SMR disk (at most 3
// open zones) and an NVMe ZNS namespace whose zone capacity (12 MiB) is
// below its zone size (16 MiB). Zones are small so that the guest's
// 1 GiB holds null_blk's and scsi_debug's memory. Each gets puts that close several
// extents, deletes, compaction until nothing is left to reclaim, and a
// reopen that must find exactly the live blocks.
func TestVMEngineZoned(t *testing.T) {
	opts := qemu.Options{
		Drives: []qemu.Drive{{
			Kind: qemu.NVMeZNS, ID: "zns", Serial: "ZNS0", Size: 512 << 20,
			ZoneSize: 16 << 20, ZoneCapacity: 12 << 20, MaxOpen: 4, MaxActive: 6,
		}},
		Modules: []qemu.Module{
			{Name: "null_blk", Params: "nr_devices=1 zoned=1 zone_size=16 zone_nr_conv=1 gb=1 memory_backed=1 zone_max_open=8 zone_max_active=8"},
			{Name: "scsi_debug", Params: "zbc=managed dev_size_mb=192 zone_size_mb=16 zone_nr_conv=1"},
		},
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
		for _, d := range []struct{ name, path string }{{"null_blk", nullb.Path}, {"scsi_debug", sd.Path}, {"zns", zns.Path}} {
			t.Run(d.name, func(t *testing.T) { vmEngineWorkload(t, d.path) })
		}
	})
}

func vmEngineWorkload(t *testing.T, path string) {
	ctx := context.Background()
	dev, err := zone.Open(path, zone.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if k := dev.Info().Kind; k != zone.KindZoned {
		t.Fatalf("%s opened as %v, want zoned", path, k)
	}
	opts := Options{FirstZone: 2, ZonesPerExtent: 1, Logger: quietLogger()}
	e := mustOpen(t, dev, opts)
	rng := rand.New(rand.NewPCG(11, 11))
	live := map[ID][]byte{}
	gone := map[ID]bool{}
	var ids []ID
	for i := 0; i < 240; i++ {
		b := randomBlock(rng, 512<<10)
		id := randomID(rng)
		if err := e.Put(ctx, id, b); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		live[id] = b
		ids = append(ids, id)
	}
	for i, id := range ids {
		if i%3 != 0 {
			if err := e.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			delete(live, id)
			gone[id] = true
		}
	}
	checkState(t, e, live, gone)
	st := e.Stats()
	if st.ClosedExtents < 2 {
		t.Fatalf("only %d closed extents: the workload must close several", st.ClosedExtents)
	}
	for {
		did, err := e.Compact(ctx, 4<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !did {
			break
		}
	}
	checkState(t, e, live, gone)
	e.Close()
	e = mustOpen(t, dev, opts)
	defer e.Close()
	checkState(t, e, live, gone)
	t.Logf("%s: %d live blocks after compaction and reopen; %d of %d extents free", path, len(live), e.Stats().FreeExtents, e.Stats().Extents)
}
