//go:build vmtest

package label

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu"
)

// TestVMLabel runs the label area on real kernel zoned devices in a guest:
// a null_blk device whose zone 0 is conventional and zone 1 sequential, a
// scsi_debug host-managed SMR disk with only sequential zones (max 3 open),
// NVMe ZNS namespaces with zone capacity below zone size (one with 1 MiB
// zones of 768 KiB capacity, MaxOpen 2, MaxActive 2), and a conventional
// NVMe drive. Each gets 600 writes across several ping-pongs, with the
// device closed and reopened along the way; the label must never hold more
// than one zone active.
func TestVMLabel(t *testing.T) {
	dir := t.TempDir() // fresh images every run
	opts := qemu.Options{
		Drives: []qemu.Drive{
			{Kind: qemu.NVMeZNS, ID: "zns", Image: filepath.Join(dir, "zns.img"), Serial: "ZNS0", Size: 256 << 20, ZoneSize: 64 << 20, ZoneCapacity: 48 << 20, MaxOpen: 4, MaxActive: 6},
			{Kind: qemu.NVMeZNS, ID: "small", Image: filepath.Join(dir, "small.img"), Serial: "ZNS1", Size: 64 << 20, ZoneSize: 1 << 20, ZoneCapacity: 768 << 10, MaxOpen: 2, MaxActive: 2},
			{Kind: qemu.NVMe, ID: "conv", Image: filepath.Join(dir, "conv.img"), Serial: "NVMECONV", Size: 64 << 20},
		},
		Modules: []qemu.Module{
			{Name: "null_blk", Params: "nr_devices=1 zoned=1 zone_size=64 zone_nr_conv=1 gb=1 memory_backed=1 zone_max_open=8 zone_max_active=8"},
			{Name: "scsi_debug", Params: "zbc=managed dev_size_mb=128 zone_size_mb=8 zone_nr_conv=0"},
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
		var paths = map[string]string{"null_blk": nullb.Path, "scsi_debug": sd.Path}
		for _, s := range []string{"ZNS0", "ZNS1", "NVMECONV"} {
			d, err := g.Device(s)
			if err != nil {
				t.Fatal(err)
			}
			paths[s] = d.Path
		}
		for _, name := range []string{"null_blk", "scsi_debug", "ZNS0", "ZNS1", "NVMECONV"} {
			t.Run(name, func(t *testing.T) { vmLabel(t, paths[name], name != "NVMECONV") })
		}
	})
}

func vmLabel(t *testing.T, path string, zoned bool) {
	ctx := context.Background()
	open := func() (zone.Device, *Area) {
		d, err := zone.Open(path, zone.Options{ZoneSize: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Info().Kind == zone.KindZoned; got != zoned {
			t.Fatalf("%s: kind %s", path, d.Info().Kind)
		}
		a, err := Open(ctx, d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return d, a
	}
	d, a := open()
	if _, ok := a.Current(); ok {
		t.Fatal("fresh device has a label")
	}
	var last Record
	switches, prev := 0, 0
	for i := range 600 {
		last = write(t, a, (i*1237)%9000)
		if a.active != prev {
			switches++
			prev = a.active
		}
		if zoned {
			zs, err := d.ReportZones(ctx, 0, 2)
			if err != nil {
				t.Fatal(err)
			}
			active := 0
			for _, z := range zs {
				if z.Type != zone.TypeConventional && (z.Cond == zone.CondImpOpen || z.Cond == zone.CondExpOpen || z.Cond == zone.CondClosed) {
					active++
				}
			}
			if active > 1 {
				t.Fatalf("write %d: label holds %d active zones: %+v", i, active, zs)
			}
		}
		if i%50 == 49 {
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			d, a = open()
			got, ok := a.Current()
			sameRecord(t, got, ok, last)
		}
	}
	defer d.Close()
	if switches < 3 {
		t.Errorf("%d region switches in 600 writes", switches)
	}
	if c := a.Corruptions(); len(c) != 0 {
		t.Errorf("corruptions: %v", c)
	}
	t.Logf("%s: %s, %d switches, newest generation %d in region %d", path, d.Info().Kind, switches, last.Generation, a.active)
}
