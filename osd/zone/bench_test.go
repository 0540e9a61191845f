package zone

import (
	"context"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkEmulatedWrite measures sequential 1 MiB writes plus a flush
// through an emulated device on a real loop device (direct I/O), against
// the limit: a plain O_DIRECT pwrite loop with fdatasync on the same
// device, in the same run. write-limit-ratio = device ÷ limit throughput
// (median passes). Loop devices here run at page-cache speed, so this
// measures the seam's overhead, not a disk.
func BenchmarkEmulatedWrite(b *testing.B) {
	const size, chunk = 64 << 20, 1 << 20
	dev := loopDevice(b, size, 512)
	buf := AlignedBlock(chunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	pass := func(write func(p []byte, off int64) error, flush func() error) time.Duration {
		start := time.Now()
		for off := int64(0); off < size; off += chunk {
			if err := write(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := flush(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}

	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rawWrite := func(p []byte, off int64) error { _, err := unix.Pwrite(int(f.Fd()), p, off); return err }
	rawFlush := func() error { return unix.Fdatasync(int(f.Fd())) }
	d, err := Open(dev, Options{ZoneSize: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	devWrite := func(p []byte, off int64) error { _, err := d.WriteAt(p, off); return err }
	devFlush := func() error { return d.Flush(context.Background()) }

	pass(rawWrite, rawFlush) // warm up both paths
	pass(devWrite, devFlush)
	// Each op is 9 alternating pairs of passes; the ratio compares the
	// medians, so a burst from other work on a shared machine does not
	// decide it.
	var raw, through []time.Duration
	for range b.N {
		for range 9 {
			raw = append(raw, pass(rawWrite, rawFlush))
			through = append(through, pass(devWrite, devFlush))
		}
	}
	slices.Sort(raw)
	slices.Sort(through)
	r, d2 := raw[len(raw)/2], through[len(through)/2]
	b.SetBytes(2 * 9 * size)
	b.ReportMetric(size/r.Seconds()/1e6, "limit-MB/s")
	b.ReportMetric(size/d2.Seconds()/1e6, "device-MB/s")
	b.ReportMetric(r.Seconds()/d2.Seconds(), "write-limit-ratio")
}

// BenchmarkMemWrite measures the heap a Mem takes per 4 KiB block
// written and flushed (the block itself is 4096 of it), which a crash test
// multiplies by the blocks it writes, and the time per block.
func BenchmarkMemWrite(b *testing.B) {
	const blocks = 4096
	buf := AlignedBlock(4096)
	var before, after runtime.MemStats
	var heap uint64
	for range b.N {
		runtime.ReadMemStats(&before)
		m, err := NewMem(MemOptions{Kind: KindZoned, ZoneSize: 4 << 20, NumZones: 4})
		if err != nil {
			b.Fatal(err)
		}
		for i := range blocks {
			if _, err := m.WriteAt(buf, int64(i)*4096); err != nil {
				b.Fatal(err)
			}
			if i%64 == 63 {
				if err := m.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		}
		runtime.ReadMemStats(&after)
		heap += after.TotalAlloc - before.TotalAlloc
		runtime.KeepAlive(m)
	}
	b.ReportMetric(float64(heap)/float64(b.N*blocks), "B/block")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*blocks), "ns/block")
}
