package nodeinit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFlushDrives: every drive in the fixture sysfs is opened and synced
// (regular files stand in for the device nodes); non-drives are skipped;
// a drive whose node cannot be opened is reported while the rest go on.
func TestFlushDrives(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	for _, n := range []string{"nvme0n1", "sda", "loop0", "dm-0", "sr0", "vdb"} {
		if err := os.MkdirAll(filepath.Join(sys, "block", n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"nvme0n1", "sda"} { // vdb has no node: skipped as gone
		if err := os.WriteFile(filepath.Join(dev, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := FlushDrives(sys, dev); err != nil {
		t.Fatal(err)
	}
	// A node that cannot be opened for reading is an error naming it.
	if err := os.Mkdir(filepath.Join(dev, "loop0"), 0o755); err != nil { // skipped: not a drive
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dev, "nowhere", "x"), filepath.Join(dev, "vdb")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dev, "sda"), 0); err != nil {
		t.Fatal(err)
	}
	err := FlushDrives(sys, dev)
	if os.Geteuid() != 0 && (err == nil || !strings.Contains(err.Error(), "flush sda")) {
		t.Fatalf("unreadable sda: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "loop0") {
		t.Fatalf("loop0 is not a drive: %v", err)
	}
	if err := FlushDrives(filepath.Join(sys, "none"), dev); err == nil {
		t.Fatal("missing sysfs accepted")
	}
}

func TestConventionalDrives(t *testing.T) {
	sys := t.TempDir()
	for n, zoned := range map[string]string{"nvme0n1": "host-managed", "nvme1n1": "none", "sda": "", "vdb": "none", "loop0": "none", "sdb": "host-aware"} {
		q := filepath.Join(sys, "block", n, "queue")
		if err := os.MkdirAll(q, 0o755); err != nil {
			t.Fatal(err)
		}
		if zoned != "" {
			if err := os.WriteFile(filepath.Join(q, "zoned"), []byte(zoned+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := ConventionalDrives(sys, "/dev")
	if err != nil || got != "/dev/nvme1n1,/dev/sda,/dev/vdb" {
		t.Fatalf("ConventionalDrives = %q, %v", got, err)
	}
	if _, err := ConventionalDrives(t.TempDir(), "/dev"); err == nil {
		t.Fatal("no sysfs: want an error")
	}
}

// TestSettleBlockDevices: a device appearing resets the quiet period; a
// list that keeps changing gives up at max.
func TestSettleBlockDevices(t *testing.T) {
	sys := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sys, "block", "vda"), 0o755); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(150 * time.Millisecond)
		_ = os.Mkdir(filepath.Join(sys, "block", "vdb"), 0o755)
	}()
	n, ok := SettleBlockDevices(context.Background(), sys, 400*time.Millisecond, 10*time.Second)
	if !ok || n != 2 {
		t.Fatalf("settled %v with %d devices, want 2", ok, n)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				_ = os.Mkdir(filepath.Join(sys, "block", "sd"+string(rune('a'+i%26))+string(rune('a'+i/26))), 0o755)
			}
		}
	}()
	if _, ok := SettleBlockDevices(context.Background(), sys, time.Second, 2*time.Second); ok {
		t.Fatal("a changing list settled")
	}
}
