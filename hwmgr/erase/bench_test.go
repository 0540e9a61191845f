package erase

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// rawWrite measures plain O_DIRECT sequential writes of n bytes past the
// label area of dev in 1 MiB I/Os: the drive's write limit.
func rawWrite(tb testing.TB, dev zone.Device, n int64) float64 {
	tb.Helper()
	buf := zone.AlignedBlock(1 << 20)
	t := time.Now()
	for off := int64(0); off < n; off += int64(len(buf)) {
		if _, err := dev.WriteAt(buf, 2<<20+off); err != nil {
			tb.Fatal(err)
		}
	}
	if err := dev.Flush(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return float64(n) / time.Since(t).Seconds()
}

// BenchmarkOverwriteErase erases twelve loop devices at once, each throttled
// with cgroup blkio to 32 MiB/s, and reports the erase pass's throughput ÷
// the same drive's raw O_DIRECT write speed (worst drive).
func BenchmarkOverwriteErase(b *testing.B) {
	const n = 12
	var paths []string
	for range n {
		paths = append(paths, loopdev.New(b, 64<<20))
	}
	loopdev.Throttle(b, 32<<20, paths...)
	devs := make([]zone.Device, n)
	raws := make([]float64, n)
	for i, p := range paths {
		dev, _, err := target.Open(context.Background(), target.Drive{Path: p}, target.SkipList{}, target.Request{Action: lifecycle.ActErase}, 8<<20)
		if err != nil {
			b.Fatal(err)
		}
		defer dev.Close()
		devs[i] = dev
	}
	var wg sync.WaitGroup
	for i := range devs {
		wg.Go(func() { raws[i] = rawWrite(b, devs[i], 32<<20) })
	}
	wg.Wait()
	for b.Loop() {
		worst, mbps := 2.0, 0.0
		reps := make([]*Report, n)
		for i := range devs {
			wg.Go(func() {
				rep, err := Run(context.Background(), devs[i], target.Drive{Path: paths[i]}, Config{Method: Overwrite{}, Seed: uint64(i)})
				if err != nil || !rep.Pass {
					b.Errorf("%s: %v %+v", paths[i], err, rep)
				}
				reps[i] = rep
			})
		}
		wg.Wait()
		for i, rep := range reps {
			if rep == nil {
				continue
			}
			worst = min(worst, rep.EraseBps/raws[i])
			mbps += rep.EraseBps / 1e6
			b.Logf("%s: raw write %.1f MB/s, erase %.1f MB/s, verified %d bytes", paths[i], raws[i]/1e6, rep.EraseBps/1e6, rep.BytesVerified)
		}
		b.ReportMetric(worst, "erase-limit-ratio")
		b.ReportMetric(mbps/n, "MB/s/drive")
	}
}
