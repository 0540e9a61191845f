package iostat

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// needRoot skips when loop devices cannot be made: not root and CI unset.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Getuid() != 0 && os.Getenv("CI") == "" {
		t.Skip("needs root for losetup (set CI=true to force)")
	}
}

// attachLoop backs a loop device with a sparse file in dir; cleanup
// detaches exactly that device.
func attachLoop(t testing.TB, dir string, size int64) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "disk-*.img")
	if err != nil {
		t.Fatal(err)
	}
	must(t, f.Truncate(size))
	f.Close()
	out, err := exec.Command("losetup", "--find", "--show", f.Name()).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup --find --show %s: %v: %s", f.Name(), err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		for i := 0; ; i++ {
			out, err := exec.Command("losetup", "--detach", dev).CombinedOutput()
			if err == nil || strings.Contains(string(out), "No such device") {
				return
			}
			if i == 20 {
				t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
				return
			}
			time.Sleep(50 * time.Millisecond) // bounded retry while the device is busy
		}
	})
	return filepath.Base(dev)
}

// aligned returns an n-byte buffer aligned for O_DIRECT.
func aligned(n int) []byte {
	b := make([]byte, n+4096)
	off := int(4096 - uintptr(unsafe.Pointer(&b[0]))%4096)
	return b[off%4096 : off%4096+n]
}

// TestLoopCountersMove does real O_DIRECT I/O on a loop device and checks
// that its counters and rates move by at least what was done.
func TestLoopCountersMove(t *testing.T) {
	needRoot(t)
	name := attachLoop(t, t.TempDir(), 4<<20)
	r, err := NewReader(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before, err := r.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := before.Devices[name]; !ok {
		t.Fatalf("%s not in /proc/diskstats", name)
	}
	f, err := os.OpenFile("/dev/"+name, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := aligned(64 << 10)
	for i := range buf {
		buf[i] = byte(i)
	}
	const chunks = 16 // 1 MiB in 64 KiB writes, then read back
	for i := range chunks {
		if _, err := f.WriteAt(buf, int64(i)*int64(len(buf))); err != nil {
			t.Fatal(err)
		}
	}
	must(t, f.Sync())
	for i := range chunks {
		if _, err := f.ReadAt(buf, int64(i)*int64(len(buf))); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	after, err := r.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, a := before.Devices[name], after.Devices[name]
	if a.WriteSectors-b.WriteSectors < (1<<20)/SectorSize || a.WriteIOs-b.WriteIOs < 1 ||
		a.ReadSectors-b.ReadSectors < (1<<20)/SectorSize || a.ReadIOs-b.ReadIOs < 1 {
		t.Fatalf("%s counters did not move by 1 MiB each way:\nbefore %+v\nafter  %+v", name, b, a)
	}
	rates, err := Rates(before, after)
	if err != nil {
		t.Fatal(err)
	}
	rt := rates[name]
	if rt.Reset || rt.WriteBytesPerSec <= 0 || rt.ReadBytesPerSec <= 0 || rt.ReadIOPS <= 0 || rt.WriteIOPS <= 0 {
		t.Errorf("%s rate %+v", name, rt)
	}
	// /sys/block/<name>/stat agrees with /proc/diskstats (no I/O since).
	sys, err := r.SampleSysfs(ctx, []string{name})
	if err != nil {
		t.Fatal(err)
	}
	if s := sys.Devices[name]; s.WriteSectors != a.WriteSectors || s.ReadSectors != a.ReadSectors || s.Major != a.Major || s.Minor != a.Minor {
		t.Errorf("sysfs stat %+v, diskstats %+v", s, a)
	}
	q, err := r.Queue(name)
	if err != nil {
		t.Fatal(err)
	}
	if q.NrRequests == 0 || q.Scheduler == "" || q.MaxSectorsKB == 0 {
		t.Errorf("queue %+v", q)
	}
}
