package nodeinit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sysfs writes a fixture sysfs tree: bus/<bus>/devices/<dev>/modalias.
func sysfs(t *testing.T, root string, devs map[string]string) {
	t.Helper()
	for dev, alias := range devs {
		dir := filepath.Join(root, "bus", dev)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "modalias"), []byte(alias+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
}

const modFixture = "../../image/kmod/testdata/lib/modules/6.1.0-test"

func TestModuleLoaderLoadsWhatDevicesAsk(t *testing.T) {
	sys := t.TempDir()
	sysfs(t, sys, map[string]string{
		"pci/devices/0000:00:04.0":    "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02", // NVMe
		"pci/devices/0000:00:05.0":    "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", // virtio block (legacy)
		"pci/devices/0000:00:06.0":    "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", // e1000
		"pci/devices/0000:00:01.0":    "pci:v00008086d00007000sv00001AF4sd00001100bc06sc01i00", // ISA bridge: no driver
		"platform/devices/serial8250": "platform:serial8250",
	})
	var order []string
	l := &ModuleLoader{SysRoot: sys, Dir: modFixture, Load: func(path string) error {
		name := strings.TrimSuffix(filepath.Base(path), ".ko")
		order = append(order, name)
		if name == "virtio_pci" {
			// Loading virtio_pci makes the virtio bus and its device:
			// the next round must find and load virtio_blk.
			sysfs(t, sys, map[string]string{"virtio/devices/virtio0": "virtio:d00000002v00001AF4"})
		}
		if name == "e1000" {
			return &os.PathError{Op: "finit_module", Path: path, Err: unix.ENOEXEC}
		}
		if name == "crc64" {
			return unix.EEXIST // already loaded: fine
		}
		return nil
	}}
	loaded, err := l.LoadAll(context.Background(), []string{"sd_mod"})
	want := []string{"scsi_common", "sd_mod", "e1000", "crc64", "crc64-rocksoft", "nvme-core", "nvme", "virtio", "virtio_pci", "virtio_blk"}
	if !slices.Equal(order, want) {
		t.Fatalf("load order %v, want %v (extra first, then matches sorted, dependencies first, new bus rescanned)", order, want)
	}
	if slices.Contains(loaded, "e1000") || !slices.Contains(loaded, "crc64") || !slices.Contains(loaded, "virtio_blk") {
		t.Errorf("loaded = %v: want the failed e1000 out, crc64 (EEXIST) and virtio_blk in", loaded)
	}
	if err == nil || !strings.Contains(err.Error(), "e1000") || !errors.Is(err, unix.ENOEXEC) {
		t.Errorf("err = %v, want e1000's ENOEXEC reported", err)
	}
	// Each module once: a second call loads nothing new.
	order = nil
	if more, _ := l.LoadAll(context.Background(), []string{"nvme", "nosuch"}); len(more) != 0 || len(order) != 0 {
		t.Fatalf("second LoadAll loaded %v (calls %v), want nothing", more, order)
	}
}

func TestModaliasesDistinctSorted(t *testing.T) {
	sys := t.TempDir()
	sysfs(t, sys, map[string]string{
		"pci/devices/a":        "pci:b",
		"pci/devices/b":        "pci:a",
		"scsi/devices/0:0:0:0": "scsi:t-0x00",
		"scsi/devices/1:0:0:0": "scsi:t-0x00",
		"acpi/devices/empty":   "",
	})
	got, err := Modaliases(sys)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"pci:a", "pci:b", "scsi:t-0x00"}; !slices.Equal(got, want) {
		t.Fatalf("Modaliases = %v, want %v", got, want)
	}
}

func TestModuleLoaderBadDir(t *testing.T) {
	l := &ModuleLoader{SysRoot: t.TempDir(), Dir: filepath.Join(t.TempDir(), "none")}
	if _, err := l.LoadAll(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "modules.dep") {
		t.Fatalf("missing modules.dep: err = %v", err)
	}
}
