package label

import (
	"context"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// BenchmarkLoop measures, on a real loop device with direct I/O, a label
// write (Area.Write: encode, O_DIRECT write, flush, ping-pong zeroing every
// 256 writes) against the physical limit measured in the same run: a bare
// aligned 4 KiB O_DIRECT write plus flush at the same places; and a label
// open (scan of both regions) against a bare 2 MiB O_DIRECT read.
// write-limit-ratio and open-limit-ratio are bare time ÷ label time (1 is
// the limit).
func BenchmarkLoop(b *testing.B) {
	dev := loopdev.Zero(b, 8<<20)
	ctx := context.Background()
	d, err := zone.OpenEmulated(dev, zone.EmulatedOptions{ZoneSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	n := max(b.N, 300)

	blk := zone.AlignedBlock(BlockSize)
	blk[0] = 1
	start := time.Now()
	for i := range n {
		if _, err := d.WriteAt(blk, int64(i%512)*BlockSize); err != nil {
			b.Fatal(err)
		}
		if err := d.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	bare := time.Since(start) / time.Duration(n)
	big := zone.AlignedBlock(2 * RegionSize)
	start = time.Now()
	for range 50 {
		if _, err := d.ReadAt(big, 0); err != nil {
			b.Fatal(err)
		}
	}
	bareRead := time.Since(start) / 50

	zero := zone.AlignedBlock(2 * RegionSize)
	if _, err := d.WriteAt(zero, 0); err != nil {
		b.Fatal(err)
	}
	a, err := Open(ctx, d, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start = time.Now()
	for range n {
		if _, err := a.Write(ctx, Record{State: lifecycle.InService, Serial: "BENCH", Owner: "osd", Payload: []byte("superblock")}); err != nil {
			b.Fatal(err)
		}
	}
	write := time.Since(start) / time.Duration(n)
	start = time.Now()
	for range 50 {
		if _, err := Open(ctx, d, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	open := time.Since(start) / 50
	b.StopTimer()
	b.ReportMetric(float64(write.Nanoseconds()), "ns/label-write")
	b.ReportMetric(float64(bare)/float64(write), "write-limit-ratio")
	b.ReportMetric(float64(open.Nanoseconds()), "ns/label-open")
	b.ReportMetric(float64(bareRead)/float64(open), "open-limit-ratio")
}
