package nodeinit

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBanner(t *testing.T) {
	b := Banner{
		Version: "v1.2.3", Kernel: "6.1.0-56-amd64", Hostname: "node7",
		Addresses: []string{"eth0 10.0.2.15/24"},
		Drives: []Drive{
			{Name: "nvme0n1", Size: 1 << 30, Model: "QEMU NVMe Ctrl", Serial: "ZNS0", Zoned: "host-managed"},
			{Name: "vda", Size: 512 << 20, Serial: "VIRT0", Zoned: "none"},
		},
		APIs:     APIURLs(":9741", []string{"eth0 10.0.2.15/24"}),
		OSDAPIs:  OSDURLs(":9742", []string{"eth0 10.0.2.15/24"}),
		OSDState: "starting",
		Ready:    true,
		Problems: []string{`kernel command line: unknown key "stowage.x"`},
	}
	s := b.String()
	for _, want := range []string{
		"Stowage node node7   version v1.2.3   kernel 6.1.0-56-amd64",
		"network:   eth0 10.0.2.15/24",
		"drives:    2",
		"nvme0n1      1.0 GiB  QEMU NVMe Ctrl           ZNS0 zoned=host-managed",
		"vda        512.0 MiB  -                        VIRT0\n",
		"hwmgr API: http://10.0.2.15:9741/v1/inventory",
		"hwmgr API: http://127.0.0.1:9741/v1/inventory (on the node)",
		"OSD API:   http://10.0.2.15:9742/v1/status",
		"osd:       starting (it opens or forms its volumes; a line follows once its API answers)",
		`problem:   kernel command line: unknown key "stowage.x"`,
		"rescue shell: press Enter",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("banner lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, OSDReadyMarker) {
		t.Errorf("the banner must not hold the OSD's marker (tests wait for it):\n%s", s)
	}
	if !strings.HasSuffix(s, ReadyMarker+"\n") {
		t.Errorf("a ready banner must end with the marker:\n%s", s)
	}
	b.Ready, b.Addresses = false, nil
	s = b.String()
	if strings.Contains(s, ReadyMarker) || !strings.Contains(s, "NOT READY") || !strings.Contains(s, "no address") {
		t.Errorf("not-ready banner:\n%s", s)
	}
}

func TestAPIURLs(t *testing.T) {
	if got := APIURLs("127.0.0.1:8080", []string{"eth0 10.0.0.2/8"}); !slices.Equal(got, []string{"http://127.0.0.1:8080/v1/inventory"}) {
		t.Errorf("bound address: %v", got)
	}
	got := APIURLs("[::]:9741", []string{"eth0 fd00::2/64", "eth1 10.0.0.2/8"})
	if len(got) != 3 || got[0] != "http://[fd00::2]:9741/v1/inventory" || got[1] != "http://10.0.0.2:9741/v1/inventory" {
		t.Errorf("wildcard address: %v", got)
	}
}

func TestDrivesFromSysfs(t *testing.T) {
	sys := t.TempDir()
	write := func(rel, v string) {
		p := filepath.Join(sys, "block", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	write("nvme0n1/size", "2097152\n")
	write("nvme0n1/device/serial", "NVME0   \n")
	write("nvme0n1/device/model", "QEMU NVMe Ctrl\n")
	write("nvme0n1/queue/zoned", "host-managed\n")
	write("vda/size", "1024\n")
	write("vda/serial", "VIRT0\n")
	write("sda/size", "2048\n")
	write("sda/device/vpd_pg80", "\x00\x80\x00\x05SATA1")
	write("loop0/size", "8\n")
	write("dm-0/size", "8\n")
	got, err := Drives(sys)
	if err != nil {
		t.Fatal(err)
	}
	want := []Drive{
		{Name: "nvme0n1", Size: 1 << 30, Model: "QEMU NVMe Ctrl", Serial: "NVME0", Zoned: "host-managed"},
		{Name: "sda", Size: 1 << 20, Serial: "SATA1"},
		{Name: "vda", Size: 512 << 10, Serial: "VIRT0"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Drives = %+v\nwant %+v", got, want)
	}
}

func TestIsPowerPress(t *testing.T) {
	ev := func(typ, code uint16, value int32) []byte {
		b := make([]byte, eventSize)
		binary.LittleEndian.PutUint16(b[16:], typ)
		binary.LittleEndian.PutUint16(b[18:], code)
		binary.LittleEndian.PutUint32(b[20:], uint32(value))
		return b
	}
	if !IsPowerPress(ev(evKey, keyPower, 1)) {
		t.Error("power key press not recognised")
	}
	for _, b := range [][]byte{ev(evKey, keyPower, 0), ev(evKey, 28, 1), ev(0, keyPower, 1), ev(evKey, keyPower, 1)[:16]} {
		if IsPowerPress(b) {
			t.Errorf("%x taken for a power key press", b)
		}
	}
}
