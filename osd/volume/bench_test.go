package volume

import (
	"context"
	"crypto/sha256"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/reedsolomon"

	"github.com/stowage/stowage/osd/zone"
)

// cpuTime is the process's user + system CPU time, and the system part.
func cpuTimes(b *testing.B) (total, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), time.Duration(ru.Stime.Nano())
}

func cpuTime(b *testing.B) time.Duration {
	t, _ := cpuTimes(b)
	return t
}

// BenchmarkCPU puts 4 MiB blocks into a 4+2 volume on unthrottled
// files with 8 concurrent writers and reports the CPU seconds per GB of
// user data against the floor measured in the same run: SHA-256 of the
// block, Reed-Solomon encoding, and CRC32C of every fragment byte, on one
// goroutine. cpu-limit-ratio = floor / put (1 = no overhead above the
// floor); user-cpu-limit-ratio leaves out the kernel's CPU time (the
// O_DIRECT writes and flushes), which the floor does not count. Then
// every block is read back with 8 readers: get-cpu-limit-ratio against
// SHA-256 + CRC32C of the data fragments.
func BenchmarkCPU(b *testing.B) {
	const (
		nBlocks   = 96
		blockSize = 4 << 20
		writers   = 8
	)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 1))
	blocks := make([]block, nBlocks)
	for i := range blocks {
		blocks[i] = randBlock(rng, blockSize)
	}
	user := float64(nBlocks * blockSize)
	for range b.N {
		b.StopTimer()
		dir := tempDir(b)
		var devs []zone.Device
		for i := range 6 {
			p := zeroFile(b, dir, "drive"+string(rune('a'+i)), 192<<20)
			d, err := zone.OpenEmulated(p, zone.EmulatedOptions{ZoneSize: 4 << 20})
			if err != nil {
				b.Fatal(err)
			}
			devs = append(devs, d)
		}
		v, err := Create(ctx, devs, testOpts())
		if err != nil {
			b.Fatal(err)
		}

		// The floor: the work no implementation can skip.
		enc, err := reedsolomon.New(4, 2)
		if err != nil {
			b.Fatal(err)
		}
		tab := crc32.MakeTable(crc32.Castagnoli)
		c0 := cpuTime(b)
		var sink uint32
		for _, bl := range blocks {
			sum := sha256.Sum256(bl.data)
			sink += uint32(sum[0])
			shards, err := enc.Split(bl.data)
			if err != nil {
				b.Fatal(err)
			}
			if err := enc.Encode(shards); err != nil {
				b.Fatal(err)
			}
			for _, s := range shards {
				sink += crc32.Checksum(s, tab)
			}
		}
		floor := (cpuTime(b) - c0).Seconds() / (user / 1e9)

		b.StartTimer()
		c1, s1 := cpuTimes(b)
		w1 := time.Now()
		var wg sync.WaitGroup
		var next sync.Mutex
		i := 0
		for range writers {
			wg.Go(func() {
				for {
					next.Lock()
					j := i
					i++
					next.Unlock()
					if j >= len(blocks) {
						return
					}
					if _, err := v.Put(ctx, blocks[j].key, blocks[j].data); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		c2, s2 := cpuTimes(b)
		put := (c2 - c1).Seconds() / (user / 1e9)
		sys := (s2 - s1).Seconds() / (user / 1e9)
		wall := time.Since(w1)

		// Reads: the floor is SHA-256 of the block and CRC32C of its k
		// data fragments; measured the same way.
		c3 := cpuTime(b)
		for _, bl := range blocks {
			sum := sha256.Sum256(bl.data)
			sink += uint32(sum[0]) + crc32.Checksum(bl.data, tab)
		}
		getFloor := (cpuTime(b) - c3).Seconds() / (user / 1e9)
		c4 := cpuTime(b)
		i = 0
		for range writers {
			wg.Go(func() {
				for {
					next.Lock()
					j := i
					i++
					next.Unlock()
					if j >= len(blocks) {
						return
					}
					if _, err := v.Get(ctx, blocks[j].key); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		get := (cpuTime(b) - c4).Seconds() / (user / 1e9)
		b.ReportMetric(get, "get-cpu-s/GB")
		b.ReportMetric(getFloor/get, "get-cpu-limit-ratio")

		// Rebuild slot 0 onto a spare file: the spare's bytes per second.
		spare, err := zone.OpenEmulated(zeroFile(b, dir, "spare", 192<<20), zone.EmulatedOptions{ZoneSize: 4 << 20})
		if err != nil {
			b.Fatal(err)
		}
		if err := v.MarkLost(ctx, 0); err != nil {
			b.Fatal(err)
		}
		w5 := time.Now()
		res, err := v.Rebuild(ctx, 0, spare, RebuildOptions{})
		if err != nil || res.Written != nBlocks {
			b.Fatalf("rebuild: %+v %v", res, err)
		}
		b.ReportMetric(float64(nBlocks*blockSize/4)/time.Since(w5).Seconds()/1e6, "rebuild-MB/s")
		devs = append(devs, spare)
		b.StopTimer()
		if sink == 1 {
			b.Log("")
		}
		b.ReportMetric(floor, "floor-cpu-s/GB")
		b.ReportMetric(put, "put-cpu-s/GB")
		b.ReportMetric(sys, "put-sys-cpu-s/GB")
		b.ReportMetric(floor/put, "cpu-limit-ratio")
		b.ReportMetric(floor/(put-sys), "user-cpu-limit-ratio")
		b.ReportMetric(user/wall.Seconds()/1e6, "put-MB/s")
		v.Close()
		for _, d := range devs {
			d.Close()
		}
		os.RemoveAll(dir)
	}
}
