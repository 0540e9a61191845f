package target

import (
	"context"
	"errors"
	"os"
	"testing"

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

// TestVirtualRefused: a virtual block device that is not a lab drive (the
// host's zram0, or a ram disk) is refused with ErrVirtual; a loop device, a
// lab drive, passes the same check and its bytes stay as they were.
func TestVirtualRefused(t *testing.T) {
	loop := loopdev.New(t, 8<<20)
	var virt string
	for _, p := range []string{"/dev/zram0", "/dev/ram0"} {
		if _, err := os.Stat(p); err == nil {
			virt = p
			break
		}
	}
	if virt == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no zram0 or ram0 device on this host (CI is set, so the test may not skip)")
		}
		t.Skip("no zram0 or ram0 device")
	}
	ctx := context.Background()
	if _, err := Check(ctx, Drive{Path: virt}, SkipList{}, Request{Action: lifecycle.ActErase}); !errors.Is(err, ErrVirtual) {
		t.Fatalf("%s: %v, want ErrVirtual", virt, err)
	}
	if v, lab, _, err := Virtual(loop); err != nil || !v || !lab {
		t.Fatalf("loop device: virtual %v lab %v %v", v, lab, err)
	}
	before := loopdev.Hash(t, loop)
	if _, err := Check(ctx, Drive{Path: loop}, SkipList{}, Request{Action: lifecycle.ActErase}); err != nil {
		t.Fatalf("loop device: %v", err)
	}
	if loopdev.Hash(t, loop) != before {
		t.Fatal("Check changed the device's bytes")
	}
}
