// Package loopdev gives tests real block devices on the build host: loop
// devices (direct I/O on) over pre-written backing files, hashing of a
// device's bytes, and cgroup v1 blkio throttling that makes a loop device
// as slow as a hard drive. Every helper cleans up when the test ends.
package loopdev

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"unsafe"

	"golang.org/x/sys/unix"
)

// NeedRoot skips a loop-device test when it cannot run (not root, or no
// losetup), unless CI is set: then it fails.
func NeedRoot(t testing.TB) {
	t.Helper()
	_, err := exec.LookPath("losetup")
	if err == nil && os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("loop devices need root and losetup (uid %d, losetup: %v)", os.Geteuid(), err)
	}
	t.Skip("loop devices need root (CI unset): run as root to exercise real devices")
}

// New makes a loop device of size bytes over a backing file pre-written
// with 0xa5 (so that a test sees what a wipe changed) and detaches it when
// the test ends.
func New(t testing.TB, size int64, flags ...string) string {
	t.Helper()
	NeedRoot(t)
	return Attach(t, File(t, size, 0xa5), flags...)
}

// Zero makes a loop device of size bytes over a zero-filled backing file
// (a blank drive) and detaches it when the test ends.
func Zero(t testing.TB, size int64, flags ...string) string {
	t.Helper()
	NeedRoot(t)
	return Attach(t, File(t, size, 0), flags...)
}

// File writes a backing file of size bytes, every byte fill, in /var/tmp
// (a disk, not tmpfs: O_DIRECT must work) and removes it when the test
// ends. The bytes are really written, not fallocated: O_DIRECT into
// unwritten extents crawls and would distort benchmarks.
func File(t testing.TB, size int64, fill byte) string {
	t.Helper()
	f, err := os.CreateTemp("/var/tmp", "stowage-loop-*.img")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = fill
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), size-off)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// Attach attaches file as a loop device with direct I/O on (plus any
// extra losetup flags, e.g. "-r" or "--sector-size=4096") and detaches it
// when the test ends. Other test binaries attach loop devices at the same
// time, so a lost race for a free device is retried; a device that some
// other process already detached is not this test's failure.
func Attach(t testing.TB, file string, flags ...string) string {
	t.Helper()
	NeedRoot(t)
	args := append([]string{"--find", "--show", "--direct-io=on"}, flags...)
	args = append(args, file)
	var out []byte
	var err error
	for try := 0; ; try++ {
		if out, err = exec.Command("losetup", args...).CombinedOutput(); err == nil {
			break
		}
		if try == 4 {
			t.Fatalf("losetup %s: %v: %s", strings.Join(args, " "), err, out)
		}
		time.Sleep(time.Duration(100*(try+1)) * time.Millisecond)
	}
	dev := strings.TrimSpace(string(out))
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = file
	}
	t.Cleanup(func() {
		// A test may have detached the device itself (a pulled drive),
		// and another test binary may since have been given the same
		// /dev/loopN: detach only while it is still bound to this file.
		if BackingFile(dev) == abs {
			Detach(t, dev)
		}
	})
	return dev
}

// BackingFile returns the file the loop device dev ("/dev/loop3" or
// "loop3") is bound to, as sysfs names it (without a " (deleted)"
// suffix), or "" when it is bound to nothing.
func BackingFile(dev string) string {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file"))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
}

// Detach detaches the loop device dev ("/dev/loop3" or "loop3"). A device
// is busy for a moment after I/O, so that is retried (bounded); a device
// that is already gone, detached by the test or by another process, is
// not an error.
func Detach(t testing.TB, dev string) {
	t.Helper()
	if !strings.HasPrefix(dev, "/dev/") {
		dev = "/dev/" + dev
	}
	for try := 0; ; try++ {
		out, err := exec.Command("losetup", "--detach", dev).CombinedOutput()
		if err == nil || strings.Contains(string(out), "No such device") {
			return
		}
		if try == 20 {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Hash returns the SHA-256 of every byte of the device.
func Hash(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0); err != nil {
		t.Fatalf("BLKFLSBUF %s: %v", path, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Throttle limits reads and writes of each block device in paths to bps
// bytes per second for this whole process, with a cgroup v1 blkio group of
// its own; the process moves back and the group goes when the test ends.
// A process is in one blkio group at a time: a second call replaces the
// first one's limits; use ThrottleEach for devices of different speeds.
func Throttle(t testing.TB, bps int64, paths ...string) {
	t.Helper()
	rates := make(map[string]int64, len(paths))
	for _, p := range paths {
		rates[p] = bps
	}
	ThrottleEach(t, rates)
}

// ThrottleEach limits reads and writes of each block device to its own
// rate in bytes per second (path → rate) for this whole process, in one
// cgroup v1 blkio group, as Throttle does.
func ThrottleEach(t testing.TB, rates map[string]int64) {
	t.Helper()
	if len(rates) == 0 {
		t.Fatal("loopdev.ThrottleEach: no devices")
	}
	paths := make([]string, 0, len(rates))
	for p := range rates {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	root := "/sys/fs/cgroup/blkio"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		t.Fatalf("cgroup v1 blkio not mounted at %s: %v", root, err)
	}
	home, err := blkioCgroup()
	if err != nil {
		t.Fatal(err)
	}
	g := filepath.Join(root, fmt.Sprintf("stowage-loop-%d-%s", os.Getpid(), filepath.Base(paths[0])))
	if err := os.Mkdir(g, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			os.Remove(g)
			t.Fatal(err)
		}
		rule := fmt.Sprintf("%d:%d %d", unix.Major(st.Rdev), unix.Minor(st.Rdev), rates[path])
		for _, f := range []string{"blkio.throttle.write_bps_device", "blkio.throttle.read_bps_device"} {
			if err := os.WriteFile(filepath.Join(g, f), []byte(rule), 0); err != nil {
				os.Remove(g)
				t.Fatalf("%s: %v", f, err)
			}
		}
	}
	pid := []byte(fmt.Sprint(os.Getpid()))
	if err := os.WriteFile(filepath.Join(g, "cgroup.procs"), pid, 0); err != nil {
		os.Remove(g)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(root, home, "cgroup.procs"), pid, 0); err != nil {
			t.Errorf("moving back to blkio %s: %v", home, err)
		}
		if err := os.Remove(g); err != nil {
			t.Errorf("removing %s: %v", g, err)
		}
	})
}

// blkioCgroup returns this process's blkio cgroup path.
func blkioCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		p := strings.SplitN(l, ":", 3)
		if len(p) == 3 && strings.Contains(","+p[1]+",", ",blkio,") {
			return p[2], nil
		}
	}
	return "/", nil
}

// SeqDepth is how many 4 MiB requests SeqWriteRate and SeqReadRate keep
// in flight: the device's queue never runs dry between requests (fio's
// iodepth), so what they measure is the device's limit, not the latency
// of one request after another. Through a blkio throttle a single
// request stream loses 10-20 % to the gaps.
const SeqDepth = 4

// SeqWriteRate writes total bytes sequentially from off on the device at
// path with O_DIRECT in 4 MiB writes, SeqDepth of them in flight,
// fdatasyncs, and returns bytes per second: the raw limit benchmarks
// divide by. It overwrites those bytes.
func SeqWriteRate(t testing.TB, path string, off, total int64) float64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	if err := seqDo(off, total, func(buf []byte, at int64) error {
		_, err := f.WriteAt(buf, at)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	return float64(total) / time.Since(start).Seconds()
}

// SeqReadRate reads total bytes sequentially from off with O_DIRECT in
// 4 MiB reads, SeqDepth of them in flight, and returns bytes per second.
func SeqReadRate(t testing.TB, path string, off, total int64) float64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	if err := seqDo(off, total, func(buf []byte, at int64) error {
		_, err := f.ReadAt(buf, at)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return float64(total) / time.Since(start).Seconds()
}

// seqDo hands the 4 MiB chunks of [off, off+total) in ascending order to
// SeqDepth workers, each with its own aligned buffer, and returns the
// first error.
func seqDo(off, total int64, io func(buf []byte, at int64) error) error {
	const chunk = 4 << 20
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, SeqDepth)
	for w := range SeqDepth {
		wg.Go(func() {
			buf := alignedBuf(chunk)
			for i := range buf {
				buf[i] = byte(i*13 + 1)
			}
			for {
				o := (next.Add(1) - 1) * chunk
				if o >= total {
					return
				}
				if err := io(buf[:min(chunk, total-o)], off+o); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// alignedBuf returns n bytes aligned to 4096 for O_DIRECT (n a multiple
// of 4096).
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	a := 4096 - int(uintptr(unsafe.Pointer(&b[0]))&4095)
	return b[a%4096 : a%4096+n]
}
