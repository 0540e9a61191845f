package burnin

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

// rawSpeed measures plain O_DIRECT sequential writes and reads of n bytes
// past the label area of dev, in 1 MiB I/Os: the drive's limit.
func rawSpeed(tb testing.TB, dev zone.Device, n int64) (w, r float64) {
	tb.Helper()
	buf := zone.AlignedBlock(1 << 20)
	const base = 2 << 20
	t := time.Now()
	for off := int64(0); off < n; off += int64(len(buf)) {
		if _, err := dev.WriteAt(buf, base+off); err != nil {
			tb.Fatal(err)
		}
	}
	if err := dev.Flush(context.Background()); err != nil {
		tb.Fatal(err)
	}
	w = float64(n) / time.Since(t).Seconds()
	t = time.Now()
	for off := int64(0); off < n; off += int64(len(buf)) {
		if _, err := dev.ReadAt(buf, base+off); err != nil {
			tb.Fatal(err)
		}
	}
	return w, float64(n) / time.Since(t).Seconds()
}

// BenchmarkBurnIn burns in twelve loop devices at once, each throttled with
// cgroup blkio to 32 MiB/s (a slow disk), and reports burn-in time at the
// drive's measured raw write and read speed ÷ the burn-in's real time
// (worst drive): 1.0 means disk-bound.
func BenchmarkBurnIn(b *testing.B) {
	const n = 12
	var paths []string
	for range n {
		paths = append(paths, loopdev.New(b, 64<<20))
	}
	loopdev.Throttle(b, 32<<20, paths...)
	devs := make([]zone.Device, n)
	raws := make([][2]float64, n)
	for i, p := range paths {
		dev, _, err := target.Open(context.Background(), target.Drive{Path: p}, target.SkipList{}, target.Request{Action: lifecycle.ActBurnIn}, testZone)
		if err != nil {
			b.Fatal(err)
		}
		defer dev.Close()
		devs[i] = dev
	}
	var wg sync.WaitGroup
	for i := range devs {
		wg.Go(func() { raws[i][0], raws[i][1] = rawSpeed(b, devs[i], 32<<20) })
	}
	wg.Wait()
	for b.Loop() {
		worst, mbps := 2.0, 0.0
		reps := make([]*Report, n)
		for i := range devs {
			wg.Go(func() {
				rep, err := Run(context.Background(), devs[i], target.Drive{Path: paths[i]}, Config{Seed: uint64(i)})
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
			limit := float64(rep.BytesWritten)/raws[i][0] + float64(rep.BytesRead)/raws[i][1]
			el := rep.Finished.Sub(rep.Started).Seconds()
			worst = min(worst, limit/el)
			mbps += float64(rep.BytesWritten+rep.BytesRead) / el / 1e6
			b.Logf("%s: raw write %.1f MB/s read %.1f MB/s; burn-in write %.1f read %.1f MB/s, %.2f s at the limit, %.2f s taken",
				paths[i], raws[i][0]/1e6, raws[i][1]/1e6, rep.WriteBps/1e6, rep.ReadBps/1e6, limit, el)
		}
		b.ReportMetric(worst, "burnin-limit-ratio")
		b.ReportMetric(mbps/n, "MB/s/drive")
	}
}
