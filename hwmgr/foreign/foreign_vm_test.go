//go:build vmtest

package foreign

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu"
)

// TestVMForeign runs Detect on the drive kinds a node has, in a guest:
// NVMe ZNS with 64 MiB and with 1 MiB zones (capacity below zone size, so
// the head and tail reads cross zone boundaries and capacity gaps),
// scsi_debug host-managed SMR, null_blk zoned, a conventional NVMe drive
// and a SATA disk. Blank drives are not foreign; after hwmgr/label writes
// a label they are ours (zone 1 named as a label offset on zoned drives);
// a GPT made with sgdisk over the label on the conventional drives makes
// them foreign although their label region 1 survives.
func TestVMForeign(t *testing.T) {
	dir := t.TempDir() // fresh images every run
	opts := qemu.Options{
		Drives: []qemu.Drive{
			{Kind: qemu.NVMeZNS, ID: "zns", Image: filepath.Join(dir, "zns.img"), Serial: "ZNS0", Size: 256 << 20, ZoneSize: 64 << 20, ZoneCapacity: 48 << 20},
			{Kind: qemu.NVMeZNS, ID: "small", Image: filepath.Join(dir, "small.img"), Serial: "ZNS1", Size: 64 << 20, ZoneSize: 1 << 20, ZoneCapacity: 768 << 10},
			{Kind: qemu.NVMe, ID: "conv", Image: filepath.Join(dir, "conv.img"), Serial: "NVMECONV", Size: 64 << 20},
			{Kind: qemu.SATA, ID: "sata", Image: filepath.Join(dir, "sata.img"), Serial: "SATA0", Size: 64 << 20},
		},
		Modules: []qemu.Module{
			{Name: "null_blk", Params: "nr_devices=1 zoned=1 zone_size=64 zone_nr_conv=1 gb=1 memory_backed=1"},
			{Name: "scsi_debug", Params: "zbc=managed dev_size_mb=128 zone_size_mb=8 zone_nr_conv=0"},
		},
		Binaries: []string{"sgdisk"},
	}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		paths := map[string]string{}
		for _, s := range []string{"ZNS0", "ZNS1", "NVMECONV", "SATA0"} {
			d, err := g.Device(s)
			if err != nil {
				t.Fatal(err)
			}
			paths[s] = d.Path
		}
		nullb, err := g.WaitName("nullb0")
		if err != nil {
			t.Fatal(err)
		}
		sd, err := g.WaitModel("scsi_debug")
		if err != nil {
			t.Fatal(err)
		}
		paths["null_blk"], paths["scsi_debug"] = nullb.Path, sd.Path
		for _, name := range []string{"ZNS0", "ZNS1", "null_blk", "scsi_debug", "NVMECONV", "SATA0"} {
			t.Run(name, func(t *testing.T) { vmForeign(t, paths[name]) })
		}
	})
}

func vmDetect(t *testing.T, path string, opts Options) Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Detect(f, size, opts)
	if err != nil {
		t.Fatalf("detect %s: %v", path, err)
	}
	return r
}

func vmForeign(t *testing.T, path string) {
	ctx := context.Background()
	if r := vmDetect(t, path, Options{}); len(r.Findings) != 0 {
		t.Fatalf("blank %s: %+v", path, r.Findings)
	}
	d, err := zone.Open(path, zone.Options{ZoneSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	zoned := d.Info().Kind == zone.KindZoned
	a, err := label.Open(ctx, d, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Enough records to move the label to region/zone 1.
	for range 300 {
		if _, err := a.Write(ctx, label.Record{State: lifecycle.Ready, Serial: "VM"}); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	var opts Options
	if zoned {
		opts.LabelOffsets = []int64{d.Info().ZoneStart(1)}
	}
	r := vmDetect(t, path, opts)
	if !r.Ours() || r.Foreign() {
		t.Fatalf("%s with our label: %+v", path, r.Findings)
	}
	t.Logf("%s (%s): %+v", path, d.Info().Kind, r.Findings)
	if zoned {
		return
	}
	if out, err := exec.Command("sgdisk", "-n", "1:2048:0", path).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v: %s", err, out)
	}
	r = vmDetect(t, path, Options{})
	if !r.Foreign() || !slicesEqual(r.Kinds(), []string{KindPMBR, KindGPT}) {
		t.Fatalf("%s after sgdisk: %+v", path, r.Findings)
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
