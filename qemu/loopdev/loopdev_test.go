package loopdev

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestNewHashAndDetach(t *testing.T) {
	var dev string
	t.Run("attach", func(t *testing.T) {
		dev = New(t, 3<<20)
		st, err := os.Stat(dev)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode()&os.ModeDevice == 0 {
			t.Fatalf("%s is not a device: %v", dev, st.Mode())
		}
		want := sha256.Sum256(bytes.Repeat([]byte{0xa5}, 3<<20))
		if got := Hash(t, dev); got != hex.EncodeToString(want[:]) {
			t.Fatalf("hash of a fresh loop device = %s, want the hash of 3 MiB of 0xa5", got)
		}
		out, err := exec.Command("losetup", "--list", "--noheadings", "--output", "DIO", dev).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Fatalf("losetup DIO of %s = %q (%v), want 1", dev, out, err)
		}
	})
	if dev == "" {
		return
	}
	out, _ := exec.Command("losetup", "--list", "--noheadings", "--output", "NAME").CombinedOutput()
	for _, l := range strings.Fields(string(out)) {
		if l == dev {
			t.Fatalf("%s still attached after its test ended", dev)
		}
	}
}

// TestCleanupSparesReusedDevice: a test detaches its device itself (a
// pulled drive) and the kernel hands the same /dev/loopN to another test
// binary; the first test's cleanup must leave that binding alone.
func TestCleanupSparesReusedDevice(t *testing.T) {
	NeedRoot(t)
	other := File(t, 1<<20, 0x5a)
	var dev string
	t.Run("pull", func(t *testing.T) {
		dev = New(t, 1<<20)
		Detach(t, dev)
		// "Another test binary" takes the same device number.
		if out, err := exec.Command("losetup", "--direct-io=on", dev, other).CombinedOutput(); err != nil {
			t.Fatalf("losetup %s %s: %v: %s", dev, other, err, out)
		}
	})
	if dev == "" {
		return
	}
	defer Detach(t, dev)
	if got := BackingFile(dev); got != other {
		t.Fatalf("after the pulling test's cleanup %s is bound to %q, want %q (the other test's file)", dev, got, other)
	}
}
