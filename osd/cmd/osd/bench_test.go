package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/reedsolomon"

	"github.com/stowage/stowage/osd/client"
	"github.com/stowage/stowage/osd/server"
	"github.com/stowage/stowage/qemu/loopdev"
)

// The benchmarks drive the whole daemon stack in this process: the store
// the daemon opens (openStore), the HTTP server with the daemon's
// timeouts, and 16 osd/client clients over 127.0.0.1.

const (
	benchK, benchM = 4, 2
	benchClients   = 16
)

type benchStack struct {
	c     *client.Client
	hc    *http.Client
	url   string
	store *nodeStore
}

// discardGet GETs a block and throws the body away, reading it 256 KiB
// at a time (io.Copy to io.Discard reads 8 KiB per call: needless load
// generator CPU on the cores the server uses).
func (s *benchStack) discardGet(ctx context.Context, k client.Key, buf []byte) error {
	req, err := http.NewRequestWithContext(ctx, "GET", s.url+"/v1/blocks/"+server.FormatKey(k), nil)
	if err != nil {
		return err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var n int
	for {
		m, rerr := resp.Body.Read(buf)
		n += m
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			break
		}
	}
	if err == nil && (resp.StatusCode != 200 || n == 0) {
		err = fmt.Errorf("GET: %d, %d bytes", resp.StatusCode, n)
	}
	return err
}

func openBench(b *testing.B, paths []string, zoneSize int64) *benchStack {
	b.Helper()
	log := slog.New(slog.DiscardHandler)
	devs, err := openDevices(paths, "/sys", zoneSize, log)
	if err != nil {
		b.Fatal(err)
	}
	st, err := openNodeStore(context.Background(), devs, storeOptions{k: benchK, m: benchM, log: log}, "/sys", zoneSize)
	if err != nil {
		b.Fatal(err)
	}
	api := server.New(server.Config{Store: st, Status: st.Status, Logger: log})
	srv := httptest.NewUnstartedServer(api)
	srv.Config = server.HTTPServer(api, server.Timeouts{}, log)
	srv.Start()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2 * benchClients
	hc := &http.Client{Transport: tr}
	c, err := client.New(srv.URL, client.Options{HTTPClient: hc})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		srv.Close()
		st.Close()
		for _, d := range devs {
			d.Close()
		}
	})
	return &benchStack{c: c, hc: hc, url: srv.URL, store: st}
}

type benchBlock struct {
	key  client.Key
	data []byte
}

func benchBlocks(n, size int, seed uint64) []benchBlock {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([]benchBlock, n)
	for i := range out {
		d := make([]byte, size)
		for j := 0; j < size; j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < size; k++ {
				d[j+k] = byte(v >> (8 * k))
			}
		}
		out[i] = benchBlock{key: sha256.Sum256(d), data: d}
	}
	return out
}

// drive calls fn for every block from benchClients goroutines and returns
// the wall time and each call's latency.
func drive(b *testing.B, blocks []benchBlock, fn func(benchBlock) error) (time.Duration, []time.Duration) {
	b.Helper()
	lat := make([]time.Duration, len(blocks))
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(blocks) {
					return
				}
				t0 := time.Now()
				if err := fn(blocks[i]); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	return time.Since(start), lat
}

func reportLatency(b *testing.B, prefix string, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, prefix+"-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, prefix+"-p99-ms")
}

// BenchmarkDiskBound: 6 loop devices throttled to 100 MB/s each (cgroup
// v1 blkio, this process), a 4+2 volume, 16 clients PUT then GET (random
// order) 4 MiB blocks over HTTP. The limit is the devices' raw O_DIRECT
// sequential rate measured in the same run, all six at once:
// put-limit-ratio = user bytes/s ÷ (Σ write limit × k/(k+m)), and
// get-limit-ratio likewise with the read limit.
func BenchmarkDiskBound(b *testing.B) {
	const (
		bps       = 100_000_000
		devSize   = 384 << 20
		nBlocks   = 96 // 384 MiB of user data: 96 MiB per device
		blockSize = 4 << 20
		rawOff    = 256 << 20 // the raw measurement's region, past what the volume uses here
		rawBytes  = 128 << 20
	)
	loopdev.NeedRoot(b)
	var paths []string
	for range benchK + benchM {
		paths = append(paths, loopdev.Zero(b, devSize))
	}
	loopdev.Throttle(b, bps, paths...)
	blocks := benchBlocks(nBlocks, blockSize, 1)
	direct := benchBlocks(nBlocks, blockSize, 11)
	warm := benchBlocks(benchClients, blockSize, 21)
	user := float64(nBlocks * blockSize)
	share := float64(benchK) / float64(benchK+benchM)
	for range b.N {
		wlim, rlim := parallelRates(b, paths, rawOff, rawBytes)
		s := openBench(b, paths, 16<<20) // 64 MiB extents
		ctx := context.Background()
		// One untimed round of PUTs first: a running daemon's buffer
		// pools and the clients' connections are warm; a fresh process
		// pays page faults on its first 4 MiB bodies (a third of a
		// six-round run's time, measured). What is timed is the steady
		// state, for HTTP and for the store alike.
		drive(b, warm, func(bl benchBlock) error {
			_, err := s.c.PutKey(ctx, bl.key, bl.data)
			return err
		})
		d, lat := drive(b, blocks, func(bl benchBlock) error {
			_, err := s.c.PutKey(ctx, bl.key, bl.data)
			return err
		})
		put := user / d.Seconds()
		reportLatency(b, "put", lat)
		// The same writes (other blocks) straight into the store.
		d, _ = drive(b, direct, func(bl benchBlock) error {
			_, err := s.store.Put(ctx, bl.key, bl.data)
			return err
		})
		b.ReportMetric(user/d.Seconds()/(wlim*share), "store-put-limit-ratio")
		for _, bl := range blocks[:1] {
			if created, err := s.c.PutKey(ctx, bl.key, bl.data); err != nil || created {
				b.Fatalf("re-PUT: created=%v %v", created, err)
			}
		}
		shuffled := slices.Clone(blocks)
		rand.New(rand.NewPCG(2, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		// The load generator shares the cores: it reads and discards the
		// body (no SHA-256 on the client side; the server verifies).
		bufs := sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
		d, lat = drive(b, shuffled, func(bl benchBlock) error {
			buf := bufs.Get().(*[]byte)
			defer bufs.Put(buf)
			return s.discardGet(ctx, bl.key, *buf)
		})
		get := user / d.Seconds()
		reportLatency(b, "get", lat)
		// The same reads straight from the store, without HTTP: what the
		// volume itself reaches on these drives in this run.
		d, _ = drive(b, shuffled, func(bl benchBlock) error {
			blk, err := s.store.GetBlock(ctx, bl.key)
			if err == nil {
				blk.Release()
			}
			return err
		})
		b.ReportMetric(user/d.Seconds()/(rlim*share), "store-get-limit-ratio")
		b.ReportMetric(put/(wlim*share), "put-limit-ratio")
		b.ReportMetric(get/(rlim*share), "get-limit-ratio")
		b.ReportMetric(put/1e6, "put-MB/s")
		b.ReportMetric(get/1e6, "get-MB/s")
		b.ReportMetric(wlim/1e6, "write-limit-MB/s")
		b.ReportMetric(rlim/1e6, "read-limit-MB/s")
	}
}

// parallelRates measures every device's raw sequential O_DIRECT write and
// then read rate, all devices at once, and returns the sums.
func parallelRates(b *testing.B, paths []string, off, total int64) (write, read float64) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range paths {
		wg.Go(func() {
			r := loopdev.SeqWriteRate(b, p, off, total)
			mu.Lock()
			write += r
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, p := range paths {
		wg.Go(func() {
			r := loopdev.SeqReadRate(b, p, off, total)
			mu.Lock()
			read += r
			mu.Unlock()
		})
	}
	wg.Wait()
	return write, read
}

func cpuTimes(b *testing.B) (total, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), time.Duration(ru.Stime.Nano())
}

// benchFiles makes n zero-filled (really written) drive files in
// /var/tmp: unthrottled drives for the CPU-bound benchmarks.
func benchFiles(b *testing.B, n int, size int64) []string {
	dir, err := os.MkdirTemp("/var/tmp", "stowage-osd-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	zero := make([]byte, 4<<20)
	var out []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("drive%d", i))
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < size; off += int64(len(zero)) {
			if _, err := f.Write(zero); err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
		out = append(out, p)
	}
	return out
}

// BenchmarkCPU: CPU seconds (user + system) of the osd daemon process
// (the real binary, on unthrottled drive files) per GB of 4 MiB blocks
// PUT over HTTP by 16 clients in this process, against the floor measured
// in the same run: SHA-256 of the block, Reed-Solomon encoding and CRC32C
// of every fragment byte, on one goroutine. cpu-limit-ratio = floor ÷ put
// (target ≥ 0.5). The clients' CPU is not counted: they stand for remote
// machines.
func BenchmarkCPU(b *testing.B) {
	const (
		nBlocks   = 128
		blockSize = 4 << 20
	)
	blocks := benchBlocks(nBlocks, blockSize, 5)
	user := float64(nBlocks * blockSize)
	for range b.N {
		b.StopTimer()
		paths := benchFiles(b, benchK+benchM, 384<<20)
		d := startDaemon(b, "-devices", strings.Join(paths, ","), "-scrub-rate", "0", "-log-level", "info")
		c := d.client(b)
		enc, err := reedsolomon.New(benchK, benchM)
		if err != nil {
			b.Fatal(err)
		}
		tab := crc32.MakeTable(crc32.Castagnoli)
		var sink uint32
		c0, _ := cpuTimes(b)
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
			for _, sh := range shards {
				sink += crc32.Checksum(sh, tab)
			}
		}
		c1, _ := cpuTimes(b)
		floor := (c1 - c0).Seconds() / (user / 1e9)
		b.StartTimer()
		ctx := context.Background()
		u2, s2 := procCPU(b, d.cmd.Process.Pid)
		wall, _ := drive(b, blocks, func(bl benchBlock) error {
			_, err := c.PutKey(ctx, bl.key, bl.data)
			return err
		})
		u3, s3 := procCPU(b, d.cmd.Process.Pid)
		b.StopTimer()
		d.stop(b)
		put := ((u3 - u2) + (s3 - s2)).Seconds() / (user / 1e9)
		if sink == 1 {
			b.Log("")
		}
		b.ReportMetric(floor, "floor-cpu-s/GB")
		b.ReportMetric(put, "put-cpu-s/GB")
		b.ReportMetric((s3-s2).Seconds()/(user/1e9), "put-sys-cpu-s/GB")
		b.ReportMetric(floor/put, "cpu-limit-ratio")
		b.ReportMetric(user/wall.Seconds()/1e6, "put-MB/s")
	}
}

// procCPU is a process's user and system CPU time from /proc/PID/stat.
func procCPU(b *testing.B, pid int) (user, sys time.Duration) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name: state is field 3;
	// utime and stime are fields 14 and 15, in clock ticks (100 Hz).
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	return time.Duration(ut) * 10 * time.Millisecond, time.Duration(st) * 10 * time.Millisecond
}

// BenchmarkPut4K: 4 KiB blocks PUT over HTTP by 64 clients onto
// unthrottled drive files; each PUT is durable on all six drives when
// acknowledged, and the engines' group commit shares flushes between
// concurrent PUTs. Reports ops/s and latency.
func BenchmarkPut4K(b *testing.B) {
	const nBlocks = 8000
	blocks := benchBlocks(nBlocks, 4<<10, 9)
	for range b.N {
		b.StopTimer()
		paths := benchFiles(b, benchK+benchM, 256<<20)
		s := openBench(b, paths, 0)
		ctx := context.Background()
		b.StartTimer()
		var next atomic.Int64
		var wg sync.WaitGroup
		lat := make([]time.Duration, nBlocks)
		start := time.Now()
		for range 64 {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= nBlocks {
						return
					}
					t0 := time.Now()
					if _, err := s.c.PutKey(ctx, blocks[i].key, blocks[i].data); err != nil {
						b.Error(err)
						return
					}
					lat[i] = time.Since(t0)
				}
			})
		}
		wg.Wait()
		d := time.Since(start)
		b.StopTimer()
		b.ReportMetric(nBlocks/d.Seconds(), "put4k-ops/s")
		reportLatency(b, "put4k", lat)
	}
}
