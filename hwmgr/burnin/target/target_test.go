package target

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/qemu/loopdev"
)

func TestLimiterBoundsPerKey(t *testing.T) {
	l := &Limiter{PerKey: 2}
	ctx := context.Background()
	r1, err := l.Acquire(ctx, "hba0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "hba0"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "hba1"); err != nil {
		t.Fatalf("another controller must not wait: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Acquire(cctx, "hba0"); !errors.Is(err, context.Canceled) {
		t.Fatalf("third job on hba0: %v; want it to wait (and give up on cancel)", err)
	}
	r1()
	if _, err := l.Acquire(ctx, "hba0"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestSkipListMatch(t *testing.T) {
	s := SkipList{Serials: []string{"  ABC "}, WWNs: []string{"NAA.1"}, Paths: []string{"/dev/disk/by-path/x"}}
	for _, c := range []struct {
		d    Drive
		want bool
	}{
		{Drive{Serial: "ABC"}, true},
		{Drive{WWN: "naa.1"}, true},
		{Drive{Path: "/dev/sdz", Aliases: []string{"/dev/disk/by-path/x"}}, true},
		{Drive{Serial: "ABD", WWN: "naa.2", Path: "/dev/sdz"}, false},
		{Drive{}, false},
	} {
		if got := s.Match(c.d) != ""; got != c.want {
			t.Errorf("%+v: match %v, want %v", c.d, got, c.want)
		}
	}
}

// fakeSysfs makes a sysfs tree under a temporary root in which the block
// device at dev (a real device node) is the sysfs device devDir (relative
// to the root, e.g. devices/virtual/block/zram0), as the kernel links
// dev/block/MAJ:MIN.
func fakeSysfs(t *testing.T, dev, devDir string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, devDir, "queue"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "dev", "block"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
	if err := os.Symlink(filepath.Join("..", "..", devDir), link); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestVirtualRefused: a block device that sysfs shows as virtual and not a
// lab drive (zram, device-mapper, md, nbd, a ram disk) is refused with
// ErrVirtual; lab drives (loop, null_blk) and a disk on a PCI controller
// pass. The device checked is a real loop device, shown under each sysfs
// name by a fixture sysfs root, so no zram or dm is needed on the host;
// its bytes are hashed before and after every check. The host's own zram0
// or ram0, where present, is checked through the real /sys too.
func TestVirtualRefused(t *testing.T) {
	loop := loopdev.New(t, 8<<20)
	ctx := context.Background()
	before := loopdev.Hash(t, loop)
	for _, c := range []struct {
		devDir  string
		refused bool
	}{
		{"devices/virtual/block/zram0", true},
		{"devices/virtual/block/dm-3", true},
		{"devices/virtual/block/md127", true},
		{"devices/virtual/block/nbd0", true},
		{"devices/virtual/block/ram0", true},
		{"devices/virtual/block/loop5", false},
		{"devices/virtual/block/nullb0", false},
		{"devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", false},
	} {
		name := filepath.Base(c.devDir)
		root := fakeSysfs(t, loop, c.devDir)
		v, lab, got, err := Virtual(root, loop)
		if err != nil || got != name || v != strings.Contains(c.devDir, "/virtual/") || lab == c.refused && v {
			t.Errorf("%s: Virtual = %v lab %v name %q %v", name, v, lab, got, err)
		}
		_, err = Check(ctx, Drive{Path: loop, SysRoot: root}, SkipList{}, Request{Action: lifecycle.ActErase})
		if c.refused != errors.Is(err, ErrVirtual) || !c.refused && err != nil {
			t.Errorf("%s: Check: %v (refused %v)", name, err, c.refused)
		}
		if c.refused && err != nil && !strings.Contains(err.Error(), name) {
			t.Errorf("%s: the refusal does not name the device: %v", name, err)
		}
		if loopdev.Hash(t, loop) != before {
			t.Fatalf("%s: Check changed the device's bytes", name)
		}
	}
	if v, lab, _, err := Virtual("", loop); err != nil || !v || !lab {
		t.Fatalf("loop device in the real /sys: virtual %v lab %v %v", v, lab, err)
	}
	for _, p := range []string{"/dev/zram0", "/dev/ram0"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		h0 := loopdev.Hash(t, p)
		if _, err := Check(ctx, Drive{Path: p}, SkipList{}, Request{Action: lifecycle.ActErase}); !errors.Is(err, ErrVirtual) {
			t.Errorf("%s: %v, want ErrVirtual", p, err)
		}
		if loopdev.Hash(t, p) != h0 {
			t.Errorf("%s: Check changed the device's bytes", p)
		}
	}
}
