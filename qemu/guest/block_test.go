package guest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTree creates files under root from a path -> contents map; values
// starting with "->" become symlinks.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, v := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(v, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// vpd80 builds a page 0x80 as the kernel exposes it.
func vpd80(serial string) string {
	return string([]byte{0, 0x80, byte(len(serial) >> 8), byte(len(serial))}) + serial
}

// sysFixture is a sysfs tree shaped like the guest's: an NVMe ZNS
// namespace, a SATA disk (serial in VPD page 0x80), a virtio-blk disk and
// a zoned null_blk without a serial.
func sysFixture(t *testing.T) string {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"devices/pci0000:00/0000:00:04.0/nvme/nvme1/serial": "ZNS-1               \n",
		"devices/pci0000:00/0000:00:04.0/nvme/nvme1/model":  "QEMU NVMe Ctrl                          \n",
		"block/nvme1n1/device":                              "->../../devices/pci0000:00/0000:00:04.0/nvme/nvme1",
		"block/nvme1n1/size":                                "1048576\n",
		"block/nvme1n1/queue/zoned":                         "host-managed\n",
		"block/nvme1n1/queue/chunk_sectors":                 "65536\n",
		"block/nvme1n1/queue/nr_zones":                      "16\n",
		"block/nvme1n1/queue/max_open_zones":                "8\n",
		"block/nvme1n1/queue/max_active_zones":              "8\n",
		"block/nvme1n1/queue/logical_block_size":            "4096\n",
		"block/sda/device/vpd_pg80":                         vpd80("SATA-1  "),
		"block/sda/device/model":                            "STOWAGE SATA    \n",
		"block/sda/size":                                    "2097152\n",
		"block/sda/queue/zoned":                             "none\n",
		"block/sda/queue/rotational":                        "1\n",
		"block/vda/serial":                                  "VIRTIO-1\n",
		"block/vda/size":                                    "524288\n",
		"block/nullb0/size":                                 "2097152\n",
		"block/nullb0/queue/zoned":                          "host-managed\n",
		"block/nullb0/queue/chunk_sectors":                  "32768\n",
	})
	return root
}

func TestBlockDevices(t *testing.T) {
	root := sysFixture(t)
	list, err := BlockDevices(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := Describe(list); got != `nullb0 zoned=host-managed, nvme1n1 serial=ZNS-1 model="QEMU NVMe Ctrl" zoned=host-managed, sda serial=SATA-1 model="STOWAGE SATA", vda serial=VIRTIO-1` {
		t.Fatalf("Describe = %s", got)
	}
	zns, err := FindSerial(list, "ZNS-1")
	if err != nil {
		t.Fatal(err)
	}
	if zns.Path != "/dev/nvme1n1" || zns.Controller != "/dev/nvme1" || zns.Size != 512<<20 || zns.ZoneSize() != 32<<20 ||
		zns.NrZones != 16 || zns.MaxOpenZones != 8 || zns.MaxActiveZones != 8 || zns.LogicalBlockSize != 4096 {
		t.Fatalf("ZNS namespace: %+v", zns)
	}
	if sda, _ := FindSerial(list, "SATA-1"); sda.Name != "sda" || sda.Zoned != "none" || sda.ZoneSize() != 0 || !sda.Rotational || zns.Rotational {
		t.Fatalf("SATA: %+v", sda)
	}
	if got := FindModel(list, "STOWAGE SATA"); len(got) != 1 || got[0].Name != "sda" {
		t.Fatalf("FindModel: %+v", got)
	}
	if _, err := FindSerial(list, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing serial: %v", err)
	}
	if _, err := BlockDevices(filepath.Join(root, "missing")); err == nil {
		t.Fatal("a missing sysfs root gave no error")
	}
}

func TestWaitSerialAndGone(t *testing.T) {
	root := sysFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	appeared := make(chan error, 1)
	go func() {
		b, err := WaitSerial(ctx, root, "LATE-1")
		if err == nil && b.Name != "vdb" {
			err = errors.New("wrong device " + b.Name)
		}
		appeared <- err
	}()
	writeTree(t, root, map[string]string{"block/vdb/serial": "LATE-1\n"})
	if err := <-appeared; err != nil {
		t.Fatal(err)
	}
	gone := make(chan error, 1)
	go func() { gone <- WaitGone(ctx, root, "LATE-1") }()
	if err := os.RemoveAll(filepath.Join(root, "block", "vdb")); err != nil {
		t.Fatal(err)
	}
	if err := <-gone; err != nil {
		t.Fatal(err)
	}

	short, cancelShort := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancelShort()
	_, err := WaitSerial(short, root, "NEVER")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "serial=ZNS-1") {
		t.Fatalf("timeout error should list the devices seen: %v", err)
	}
	if err := WaitGone(short, root, "ZNS-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a drive that stays: %v", err)
	}
}

func TestParseVPD80(t *testing.T) {
	for raw, want := range map[string]string{
		vpd80("ABC123"):          "ABC123",
		vpd80("  padded  "):      "padded",
		vpd80("NUL\x00\x00"):     "NUL",
		"\x00\x83\x00\x02ab":     "",      // another page
		"\x00\x80\x00":           "",      // short
		"\x00\x80\x00\x10short":  "short", // length past the end
		"\x00\x80\x00\x02abcdef": "ab",
	} {
		if got := ParseVPD80([]byte(raw)); got != want {
			t.Errorf("ParseVPD80(%q) = %q, want %q", raw, got, want)
		}
	}
}

// FuzzParseVPD80: a page built from a serial parses back to the serial
// without its padding; arbitrary bytes never panic and never give more
// than the page holds.
func FuzzParseVPD80(f *testing.F) {
	f.Add([]byte(vpd80("SN-1")), "SN-1")
	f.Add([]byte{0, 0x80, 0xff, 0xff}, "x")
	f.Fuzz(func(t *testing.T, raw []byte, serial string) {
		if got := ParseVPD80(raw); len(got) > len(raw) {
			t.Fatalf("ParseVPD80(%q) = %q, longer than the page", raw, got)
		}
		if len(serial) > 0xffff {
			return
		}
		want := strings.Trim(serial, " \x00")
		if got := ParseVPD80([]byte(vpd80(serial))); got != want {
			t.Fatalf("round trip of %q: got %q, want %q", serial, got, want)
		}
	})
}
