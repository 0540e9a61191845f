package node

import (
	"context"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

const benchBPS = 100_000_000 // the hard-drive speed, per device

// rawWriteRate writes total bytes sequentially with O_DIRECT (4 MiB
// writes) at off of the device, fdatasyncs, and returns bytes/s: the
// drive's limit, measured through the same throttle.
func rawWriteRate(b *testing.B, path string, off, total int64) float64 {
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
	for o := int64(0); o < total; o += int64(len(buf)) {
		if _, err := f.WriteAt(buf, off+o); err != nil {
			b.Fatal(err)
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
	return float64(total) / time.Since(start).Seconds()
}

// BenchmarkRebuildDiskBound: a 4+2 volume and a spare on 7 loop devices,
// filled with 4 MiB blocks, then every device throttled (cgroup v1 blkio)
// to 100 MB/s. The spare's raw O_DIRECT sequential write rate is
// measured through the throttle; then a member is removed and Run
// rebuilds its slot onto the spare. rebuild-limit-ratio = fragment bytes
// written by the rebuild per second ÷ that raw limit (target ≥ 0.8).
func BenchmarkRebuildDiskBound(b *testing.B) {
	const (
		blocks  = 120
		size    = 4 << 20
		devSize = 256 << 20
	)
	ctx := context.Background()
	for range b.N {
		loopdev.NeedRoot(b)
		var paths []string
		for range 7 {
			paths = append(paths, loopdev.Zero(b, devSize))
		}
		var ds []Drive
		for _, p := range paths {
			d, err := zone.OpenEmulated(p, zone.EmulatedOptions{ZoneSize: 4 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			ds = append(ds, Drive{Dev: d})
		}
		o := Options{Logger: quiet(), ZonesPerExtent: 4, ScrubDelay: time.Hour}
		n, err := Open(ctx, ds, o)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				for range blocks / 4 {
					blk := randBlock(rng, size)
					if _, err := n.Put(ctx, blk.key, blk.data); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
		st := n.Status()
		var spare, victim string
		for _, d := range st.Drives {
			switch {
			case d.Role == RoleSpare:
				spare = d.Path
			case d.Role == RoleMember && victim == "":
				victim = d.Path
			}
		}
		loopdev.Throttle(b, benchBPS, paths...)
		// Raw limit on the spare, past its label area and beyond where
		// the rebuild's extents will go first (they overwrite it anyway).
		raw := rawWriteRate(b, spare, 128<<20, 64<<20)
		if err := n.RemoveDrive(ctx, victim); err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		var rw sync.WaitGroup
		rw.Go(func() { _ = n.Run(rctx) })
		b.ResetTimer()
		deadline := time.Now().Add(5 * time.Minute)
		var job JobStatus
		for {
			st := n.Status()
			if len(st.Jobs) == 1 && !st.Jobs[0].Running && st.Volumes[0].State == "healthy" {
				job = st.Jobs[0]
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("rebuild did not finish: %+v", st.Jobs)
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.StopTimer()
		cancel()
		rw.Wait()
		if job.Err != "" || job.Progress.Done != blocks {
			b.Fatalf("rebuild job %+v", job)
		}
		written := float64(blocks) * float64((size+3)/4)
		rate := written / job.Finished.Sub(job.Progress.Started).Seconds()
		b.ReportMetric(rate/raw, "rebuild-limit-ratio")
		b.ReportMetric(rate/1e6, "rebuild-MB/s")
		b.ReportMetric(raw/1e6, "spare-raw-write-MB/s")
		n.Close()
	}
}
