package qemu

import (
	"os"
	"strings"
	"testing"
)

func TestDriveDefaults(t *testing.T) {
	d, err := Drive{Kind: NVMeZNS}.withDefaults(3, "/imgs")
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "d3" || d.Serial != "STWD3" || d.Size != 1<<30 || d.BlockSize != 4096 ||
		d.ZoneSize != 64<<20 || d.ZoneCapacity != 64<<20 || d.Image != "/imgs/d3.img" {
		t.Fatalf("defaults: %+v", d)
	}
	devs := d.devices("")
	if len(devs) != 2 {
		t.Fatalf("ZNS devices: %+v", devs)
	}
	if got := devs[0].arg(); got != "nvme,id=d3,serial=STWD3" {
		t.Errorf("controller: %s", got)
	}
	ns := devs[1].arg()
	for _, want := range []string{"nvme-ns,", "bus=d3", "drive=drv-d3", "zoned=true", "zoned.zone_size=67108864", "zoned.zone_capacity=67108864", "logical_block_size=4096"} {
		if !strings.Contains(ns, want) {
			t.Errorf("namespace %s lacks %s", ns, want)
		}
	}
	if got := (Drive{Image: "/a,b/c.img", ID: "x"}).blockdevArg(); !strings.HasSuffix(got, "file.filename=/a,,b/c.img") {
		t.Errorf("comma not escaped: %s", got)
	}
}

func TestDriveErrors(t *testing.T) {
	for name, d := range map[string]Drive{
		"kind":          {Kind: "floppy"},
		"id":            {Kind: NVMe, ID: "a,b"},
		"serial":        {Kind: NVMe, Serial: "a,b"},
		"zone capacity": {Kind: NVMeZNS, ZoneSize: 1 << 20, ZoneCapacity: 2 << 20},
		"zone size":     {Kind: NVMeZNS, Size: 3 << 20, ZoneSize: 2 << 20},
		"block size":    {Kind: SATA, Size: 1000},
		"rotation rate": {Kind: SATA, RotationRate: -1},
	} {
		if _, err := d.withDefaults(0, "/x"); err == nil {
			t.Errorf("%s: %+v accepted", name, d)
		}
	}
}

func TestCreateImageSparse(t *testing.T) {
	d, err := Drive{Kind: VirtioBlk, Size: 1 << 30}.withDefaults(0, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.createImage(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(d.Image)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 1<<30 {
		t.Fatalf("size %d", st.Size())
	}
	// An existing image is kept as it is (power-cut tests boot twice).
	if err := os.WriteFile(d.Image, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.createImage(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(d.Image); string(b) != "keep" {
		t.Fatal("createImage overwrote an existing image")
	}
}

func TestModuleList(t *testing.T) {
	got := moduleList([]Module{{Name: "scsi_debug", Params: "zbc=managed"}, {Name: "nvme"}},
		[]Drive{{Kind: NVMe}, {Kind: SCSI}})
	var names []string
	for _, m := range got {
		names = append(names, m.Name+"("+m.Params+")")
	}
	want := "nvme() virtio_pci() virtio_scsi() sd_mod() sg() scsi_debug(zbc=managed)"
	if strings.Join(names, " ") != want {
		t.Fatalf("moduleList = %s, want %s", strings.Join(names, " "), want)
	}
}

func TestRunPattern(t *testing.T) {
	if got := runPattern("TestVMZoned"); got != "^TestVMZoned$" {
		t.Errorf("got %s", got)
	}
	if got := runPattern("TestVMX/case_1.5"); got != `^TestVMX$/^case_1\.5$` {
		t.Errorf("got %s", got)
	}
}

func TestDriveRotationRate(t *testing.T) {
	for _, k := range []DriveKind{SATA, SCSI} {
		d, err := Drive{Kind: k, RotationRate: 7200}.withDefaults(0, "/x")
		if err != nil {
			t.Fatal(err)
		}
		if got := d.devices("bus.0")[0].arg(); !strings.Contains(got, "rotation_rate=7200") {
			t.Errorf("%s: %s", k, got)
		}
	}
}
