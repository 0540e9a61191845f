package nodeinit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
