package engine

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/osd/record"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// Benchmarks. Each b.N iteration does a fixed amount of work, so
// `make bench` (-benchtime 1x) gives meaningful figures. Ratios are
// against limits measured in the same run on the same device.

const benchZone = 64 << 20 // 4 zones per extent: 256 MiB extents

// benchDevice returns a loop device of zones benchZone-sized zones (zone 0
// reserved) and an opener that zeroes every extent header first, so each
// iteration starts from an empty engine.
func benchDevice(b *testing.B, zones int) (path string, fresh func() *zone.Emulated) {
	path = loopdev.Zero(b, int64(zones)*benchZone)
	fresh = func() *zone.Emulated {
		d, err := zone.OpenEmulated(path, zone.EmulatedOptions{ZoneSize: benchZone})
		if err != nil {
			b.Fatal(err)
		}
		z := zone.AlignedBlock(record.BlockSize)
		for i := 1; i < d.Info().NumZones; i++ {
			if _, err := d.WriteAt(z, d.Info().ZoneStart(i)); err != nil {
				b.Fatal(err)
			}
		}
		if err := d.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		return d
	}
	return path, fresh
}

// throttle puts this process in a fresh cgroup v1 blkio group that limits
// reads and writes on dev to bps bytes per second; undo moves it back and
// removes the group.
func throttle(b *testing.B, dev string, bps int64) (undo func()) {
	root := "/sys/fs/cgroup/blkio"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		b.Skipf("no cgroup v1 blkio controller: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		b.Fatal(err)
	}
	rule := fmt.Sprintf("%d:%d %d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)), bps)
	orig := root
	if data, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] == "blkio" {
				orig = filepath.Join(root, f[2])
			}
		}
	}
	dir := filepath.Join(root, fmt.Sprintf("stowage-bench-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		b.Fatal(err)
	}
	write := func(file, s string) {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(s), 0o644); err != nil {
			b.Fatalf("%s/%s: %v", dir, file, err)
		}
	}
	write("blkio.throttle.write_bps_device", rule)
	write("blkio.throttle.read_bps_device", rule)
	write("cgroup.procs", strconv.Itoa(os.Getpid()))
	return func() {
		if err := os.WriteFile(filepath.Join(orig, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			b.Errorf("leaving the blkio group: %v", err)
		}
		if err := os.Remove(dir); err != nil {
			b.Errorf("removing %s: %v", dir, err)
		}
	}
}

// rawWriteRate writes total bytes sequentially with O_DIRECT in 4 MiB
// writes starting at zone 1, fdatasyncs, and returns bytes per second.
func rawWriteRate(b *testing.B, path string, total int64) float64 {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := zone.AlignedBlock(4 << 20)
	for i := range buf {
		buf[i] = byte(i*13 + 1)
	}
	start := time.Now()
	for off := int64(0); off < total; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf, benchZone+off); err != nil {
			b.Fatal(err)
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
	return float64(total) / time.Since(start).Seconds()
}

func randomID(rng *rand.Rand) ID {
	var id ID
	for i := 0; i < 32; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			id.Key[i+j] = byte(v >> (8 * j))
		}
	}
	return id
}

// putAll puts count blocks of size bytes (random keys, fragment mode: no
// SHA-256 check) with writers goroutines and returns the wall time.
func putAll(b *testing.B, e *Engine, size, count, writers int) time.Duration {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	ids := make([]ID, count)
	rng := rand.New(rand.NewPCG(uint64(size), uint64(count)))
	for i := range ids {
		ids[i] = randomID(rng)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(count) {
					return
				}
				if err := e.Put(context.Background(), ids[i], data); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkPutDiskBound: a loop device throttled to 200 MB/s (a hard
// drive), 16 concurrent writers, user bytes per second ÷ a plain O_DIRECT
// sequential writer's rate on the same throttled device.
func BenchmarkPutDiskBound(b *testing.B) {
	const bps = 200_000_000
	const total = 600 << 20
	for _, size := range []int{4 << 20, 64 << 10} {
		b.Run(fmt.Sprintf("block=%dKiB", size>>10), func(b *testing.B) {
			path, fresh := benchDevice(b, 17)
			undo := throttle(b, path, bps)
			defer undo()
			for b.Loop() {
				limit := rawWriteRate(b, path, total)
				dev := fresh()
				e := mustOpen(b, dev, Options{FirstZone: 1, Logger: quietLogger()})
				n := total / size
				d := putAll(b, e, size, n, 16)
				e.Close()
				dev.Close()
				rate := float64(n*size) / d.Seconds()
				b.ReportMetric(rate/limit, "put-limit-ratio")
				b.ReportMetric(rate/1e6, "put-MB/s")
				b.ReportMetric(limit/1e6, "limit-MB/s")
			}
		})
	}
}

// rawReadRate reads total bytes sequentially with O_DIRECT in 4 MiB reads
// from zone 1 and returns bytes per second.
func rawReadRate(b *testing.B, path string, total int64) float64 {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := zone.AlignedBlock(4 << 20)
	start := time.Now()
	for off := int64(0); off < total; off += int64(len(buf)) {
		if _, err := f.ReadAt(buf, benchZone+off); err != nil {
			b.Fatal(err)
		}
	}
	return float64(total) / time.Since(start).Seconds()
}

// BenchmarkGetDiskBound: 4 MiB blocks read back in random order by 16
// readers on a loop device throttled to 200 MB/s, against a plain O_DIRECT
// sequential reader on the same device.
func BenchmarkGetDiskBound(b *testing.B) {
	const bps = 200_000_000
	const size, n = 4 << 20, 100
	path, fresh := benchDevice(b, 13)
	dev := fresh()
	e := mustOpen(b, dev, Options{FirstZone: 1, Logger: quietLogger()})
	defer func() { e.Close(); dev.Close() }()
	putAll(b, e, size, n, 16) // unthrottled fill
	ids := make([]ID, n)
	rng := rand.New(rand.NewPCG(uint64(size), uint64(n)))
	for i := range ids {
		ids[i] = randomID(rng)
	}
	undo := throttle(b, path, bps)
	defer undo()
	for b.Loop() {
		limit := rawReadRate(b, path, n*size)
		order := rand.New(rand.NewPCG(1, 1)).Perm(n)
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
					if _, err := e.Get(context.Background(), ids[order[i]]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		rate := float64(n*size) / time.Since(start).Seconds()
		b.ReportMetric(rate/limit, "get-limit-ratio")
		b.ReportMetric(rate/1e6, "get-MB/s")
		b.ReportMetric(limit/1e6, "limit-MB/s")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPutCPU: unthrottled, whole-block mode (the engine checks
// SHA-256(data) == key): process CPU seconds per GB stored against the
// floor of SHA-256 + CRC32C over the same bytes, measured in the same run.
func BenchmarkPutCPU(b *testing.B) {
	const size, count = 4 << 20, 96
	_, fresh := benchDevice(b, 13)
	blocks := make([][]byte, count)
	ids := make([]ID, count)
	src := rand.NewChaCha8([32]byte{1})
	for i := range blocks {
		blocks[i] = make([]byte, size)
		if _, err := src.Read(blocks[i]); err != nil {
			b.Fatal(err)
		}
		ids[i] = ID{Key: sha256.Sum256(blocks[i])}
	}
	gb := float64(size*count) / 1e9
	for b.Loop() {
		c0 := cpuTime()
		for _, blk := range blocks {
			_ = sha256.Sum256(blk)
			_ = record.Checksum(blk)
		}
		floor := (cpuTime() - c0).Seconds() / gb

		dev := fresh()
		e := mustOpen(b, dev, Options{FirstZone: 1, Logger: quietLogger(), VerifyKey: true})
		var next atomic.Int64
		var wg sync.WaitGroup
		c1 := cpuTime()
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < count; i = next.Add(1) - 1 {
					if err := e.Put(context.Background(), ids[i], blocks[i]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		actual := (cpuTime() - c1).Seconds() / gb
		e.Close()
		dev.Close()
		b.ReportMetric(floor/actual, "cpu-limit-ratio")
		b.ReportMetric(actual, "cpu-s/GB")
		b.ReportMetric(floor, "floor-cpu-s/GB")
	}
}

// BenchmarkPut4K: 4 KiB puts per second with 64 concurrent writers (group
// commit) ÷ fio's 4 KiB write+fsync ops per second on the same device.
func BenchmarkPut4K(b *testing.B) {
	if _, err := exec.LookPath("fio"); err != nil {
		b.Skip("fio not installed")
	}
	path, fresh := benchDevice(b, 13)
	for b.Loop() {
		out, err := exec.Command("fio", "--name=put4k", "--filename="+path, "--rw=write", "--bs=4k", "--fsync=1",
			"--direct=1", "--offset="+strconv.Itoa(benchZone), "--size=64m", "--runtime=5", "--time_based=0",
			"--output-format=json").Output()
		if err != nil {
			b.Fatalf("fio: %v", err)
		}
		var res struct {
			Jobs []struct {
				Write struct {
					IOPS float64 `json:"iops"`
				} `json:"write"`
			} `json:"jobs"`
		}
		if err := json.Unmarshal(out, &res); err != nil || len(res.Jobs) == 0 {
			b.Fatalf("fio output: %v", err)
		}
		fioOps := res.Jobs[0].Write.IOPS
		dev := fresh()
		e := mustOpen(b, dev, Options{FirstZone: 1, Logger: quietLogger()})
		const n = 40000
		d := putAll(b, e, 4096, n, 64)
		e.Close()
		dev.Close()
		ops := n / d.Seconds()
		b.ReportMetric(ops/fioOps, "put4k-fio-ratio")
		b.ReportMetric(ops, "puts/s")
		b.ReportMetric(fioOps, "fio-ops/s")
	}
}

// BenchmarkRestart fills the engine with small blocks (1 M by default;
// STOWAGE_BENCH_RESTART_BLOCKS overrides), closes it and times Open:
// seconds per million blocks, and the index's bytes per block afterwards.
func BenchmarkRestart(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("STOWAGE_BENCH_RESTART_BLOCKS"); s != "" {
		if v, err := strconv.Atoi(s); err == nil && v > 0 {
			n = v
		}
	}
	// 4 KiB per record plus footers; 256 MiB extents.
	zones := 1 + 4*int((int64(n)*4200/(4*benchZone))+3) // + the reserve extent
	_, fresh := benchDevice(b, zones)
	dev := fresh()
	e := mustOpen(b, dev, Options{FirstZone: 1, Logger: quietLogger()})
	putAll(b, e, 64, n, 64)
	e.Close()
	dev.Close()
	for b.Loop() {
		d, err := zone.OpenEmulated(dev.Info().Path, zone.EmulatedOptions{ZoneSize: benchZone})
		if err != nil {
			b.Fatal(err)
		}
		dropCaches()
		start := time.Now()
		e := mustOpen(b, d, Options{FirstZone: 1, Logger: quietLogger()})
		el := time.Since(start)
		st := e.Stats()
		if st.Blocks != n {
			b.Fatalf("recovered %d blocks, want %d", st.Blocks, n)
		}
		b.ReportMetric(el.Seconds()/(float64(n)/1e6), "restart-s/Mblock")
		b.ReportMetric(float64(st.IndexBytes)/float64(st.Blocks), "index-B/block")
		e.Close()
		d.Close()
	}
}

// dropCaches asks the kernel to drop clean page cache (best effort, root
// only) so that restart reads come from the loop device's backing file.
func dropCaches() {
	f, err := os.OpenFile("/proc/sys/vm/drop_caches", os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	w.WriteString("1\n")
	w.Flush()
}
