package iostat

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/qemu/loopdev"
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
	return attachLoopOn(t, f.Name())
}

// attachLoopOn makes a direct-I/O loop device over backing (a file or a
// block device); cleanup detaches exactly that device.
func attachLoopOn(t testing.TB, backing string) string {
	t.Helper()
	return filepath.Base(loopdev.Attach(t, backing))
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

// TestLoopSlowSibling builds five identical "drives" (each a loop device
// over its own base loop device), makes one slow with cgroup v1 blkio
// throttling of its base device (1 MiB/s for the readers' cgroup), reads
// 1 MiB from each in 16 KiB direct reads, and checks that the outlier rule
// names exactly the throttled drive, from real /proc/diskstats counters.
func TestLoopSlowSibling(t *testing.T) {
	needRoot(t)
	const blkio = "/sys/fs/cgroup/blkio"
	if _, err := os.Stat(filepath.Join(blkio, "blkio.throttle.read_bps_device")); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("no cgroup v1 blkio throttling here: %v", err)
		}
		t.Fatal(err)
	}
	dir := t.TempDir()
	var drives, bases []string
	for range 5 {
		base := attachLoop(t, dir, 8<<20)
		bases = append(bases, base)
		drives = append(drives, attachLoopOn(t, "/dev/"+base))
	}
	slow, slowBase := drives[4], bases[4]
	cg := filepath.Join(blkio, fmt.Sprintf("stowage-iostat-%d", os.Getpid()))
	must(t, os.Mkdir(cg, 0o755))
	t.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			t.Errorf("remove cgroup %s: %v", cg, err)
		}
	})
	majmin, err := os.ReadFile("/sys/block/" + slowBase + "/dev")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(cg, "blkio.throttle.read_bps_device"),
		[]byte(strings.TrimSpace(string(majmin))+" 1048576"), 0o644))

	r, err := NewReader(Config{})
	must(t, err)
	ctx := context.Background()
	before, err := r.Sample(ctx)
	must(t, err)
	var readers []*exec.Cmd
	for _, d := range drives {
		// The shell joins the cgroup, then becomes dd: every read is issued
		// from inside it (and the loop worker charges the base device's
		// reads to it).
		cmd := exec.Command("sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs && exec dd if=/dev/%s of=/dev/null bs=16k count=64 iflag=direct status=none", cg, d))
		must(t, cmd.Start())
		readers = append(readers, cmd)
	}
	for i, cmd := range readers {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("dd on %s: %v", drives[i], err)
		}
	}
	after, err := r.Sample(ctx)
	must(t, err)
	rates, err := Rates(before, after)
	must(t, err)
	models := map[string]string{}
	for _, d := range drives {
		models[d] = "stowage-loop"
		t.Logf("%s: %d reads, %.2f ms average", d, rates[d].ReadOps, rates[d].ReadLatencyMs)
	}
	out := Outliers(rates, models, Rule{MinOps: 32})
	if len(out) != 1 || out[0].Drive != slow || out[0].Op != "read" || out[0].GroupSize != 5 {
		t.Fatalf("outliers %v, want only %s (read)", out, slow)
	}
	t.Log(out[0])
}
