// Package iostat turns the kernel's block I/O counters (/proc/diskstats,
// /sys/block/*/stat, /sys/block/*/queue) into per-drive rates over a window
// — IOPS, bytes/s, average latency, utilisation, queue depth — and finds
// drives that are slow against drives of the same model ("slow but not
// failed"). Counters are read with prometheus/procfs below injectable roots.
package iostat

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs/blockdevice"
)

// SectorSize is the unit of the sector counters in /proc/diskstats and
// /sys/block/*/stat: always 512 bytes, whatever the drive's sector size.
const SectorSize = 512

// Counters are one device's cumulative counters as the kernel prints them.
// Times are milliseconds.
type Counters struct {
	Major, Minor   uint32
	ReadIOs        uint64
	ReadMerges     uint64
	ReadSectors    uint64
	ReadTicks      uint64 // ms spent by all reads
	WriteIOs       uint64
	WriteMerges    uint64
	WriteSectors   uint64
	WriteTicks     uint64
	InFlight       uint64 // I/Os in flight now (not cumulative)
	IOTicks        uint64 // ms during which at least one I/O was in flight
	TimeInQueue    uint64 // weighted ms: Σ of in-flight time of every I/O
	DiscardIOs     uint64
	DiscardSectors uint64
	DiscardTicks   uint64
	FlushIOs       uint64
	FlushTicks     uint64
}

// Sample is the counters of every block device at one instant.
type Sample struct {
	At      time.Time
	Devices map[string]Counters // by kernel name
}

// Config says where to read. Zero values read the live system.
type Config struct {
	ProcRoot string           // procfs mount point; default /proc
	SysRoot  string           // sysfs mount point; default /sys
	Now      func() time.Time // clock; default time.Now
}

// Reader samples block I/O counters.
type Reader struct {
	fs   blockdevice.FS
	proc string
	sys  string
	now  func() time.Time
}

// NewReader returns a Reader for cfg; it fails if a root does not exist.
func NewReader(cfg Config) (*Reader, error) {
	r := &Reader{proc: cfg.ProcRoot, sys: cfg.SysRoot, now: cfg.Now}
	if r.proc == "" {
		r.proc = "/proc"
	}
	if r.sys == "" {
		r.sys = "/sys"
	}
	if r.now == nil {
		r.now = time.Now
	}
	fs, err := blockdevice.NewFS(r.proc, r.sys)
	if err != nil {
		return nil, fmt.Errorf("iostat: roots %s, %s: %w", r.proc, r.sys, err)
	}
	r.fs = fs
	return r, nil
}

// Sample reads /proc/diskstats. If the file is absent (procfs without
// it), it falls back to /sys/block/*/stat.
func (r *Reader) Sample(ctx context.Context) (Sample, error) {
	if err := ctx.Err(); err != nil {
		return Sample{}, err
	}
	at := r.now()
	stats, err := r.fs.ProcDiskstats()
	if errors.Is(err, fs.ErrNotExist) {
		return r.SampleSysfs(ctx, nil)
	}
	if err != nil {
		return Sample{}, fmt.Errorf("iostat: %s: %w", filepath.Join(r.proc, "diskstats"), err)
	}
	s := Sample{At: at, Devices: make(map[string]Counters, len(stats))}
	for _, d := range stats {
		s.Devices[d.DeviceName] = fromIOStats(d.MajorNumber, d.MinorNumber, d.IOStats)
	}
	return s, nil
}

// SampleSysfs reads /sys/block/<name>/stat for the named devices (all of
// /sys/block when names is empty). A device that vanished meanwhile is
// left out.
func (r *Reader) SampleSysfs(ctx context.Context, names []string) (Sample, error) {
	if len(names) == 0 {
		var err error
		if names, err = r.fs.SysBlockDevices(); err != nil {
			return Sample{}, fmt.Errorf("iostat: list %s: %w", filepath.Join(r.sys, "block"), err)
		}
	}
	s := Sample{At: r.now(), Devices: make(map[string]Counters, len(names))}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return Sample{}, err
		}
		st, count, err := r.fs.SysBlockDeviceStat(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Sample{}, fmt.Errorf("iostat: %s: %w", filepath.Join(r.sys, "block", n, "stat"), err)
		}
		if count < 11 {
			return Sample{}, fmt.Errorf("iostat: %s: %d fields, want at least 11", filepath.Join(r.sys, "block", n, "stat"), count)
		}
		majmin, _ := os.ReadFile(filepath.Join(r.sys, "block", n, "dev"))
		var maj, min uint64
		if a, b, ok := strings.Cut(strings.TrimSpace(string(majmin)), ":"); ok {
			maj, _ = strconv.ParseUint(a, 10, 32)
			min, _ = strconv.ParseUint(b, 10, 32)
		}
		s.Devices[n] = fromIOStats(uint32(maj), uint32(min), st)
	}
	return s, nil
}

func fromIOStats(maj, min uint32, st blockdevice.IOStats) Counters {
	return Counters{
		Major: maj, Minor: min,
		ReadIOs: st.ReadIOs, ReadMerges: st.ReadMerges, ReadSectors: st.ReadSectors, ReadTicks: st.ReadTicks,
		WriteIOs: st.WriteIOs, WriteMerges: st.WriteMerges, WriteSectors: st.WriteSectors, WriteTicks: st.WriteTicks,
		InFlight: st.IOsInProgress, IOTicks: st.IOsTotalTicks, TimeInQueue: st.WeightedIOTicks,
		DiscardIOs: st.DiscardIOs, DiscardSectors: st.DiscardSectors, DiscardTicks: st.DiscardTicks,
		FlushIOs: st.FlushRequestsCompleted, FlushTicks: st.TimeSpentFlushing,
	}
}

// Queue is a device's request queue configuration (/sys/block/X/queue).
// Attributes a device lacks (loop devices have no io_timeout) are zero.
type Queue struct {
	NrRequests   uint64 // queue capacity per hardware queue
	Scheduler    string // the active I/O scheduler ("none" included)
	MaxSectorsKB uint64
	Rotational   bool
	IOTimeoutMs  uint64
}

// Queue reads the queue settings of one device. It reads the attributes
// one by one rather than through procfs's BlockQueueStats, which fails
// when any of its 30 attributes is missing.
func (r *Reader) Queue(name string) (Queue, error) {
	dir := filepath.Join(r.sys, "block", name, "queue")
	if _, err := os.Stat(dir); err != nil {
		return Queue{}, fmt.Errorf("iostat: %w", err)
	}
	read := func(attr string) string {
		b, _ := os.ReadFile(filepath.Join(dir, attr))
		return strings.TrimSpace(string(b))
	}
	num := func(attr string) uint64 {
		v, _ := strconv.ParseUint(read(attr), 10, 64)
		return v
	}
	q := Queue{NrRequests: num("nr_requests"), MaxSectorsKB: num("max_sectors_kb"),
		Rotational: read("rotational") == "1", IOTimeoutMs: num("io_timeout")}
	for _, s := range strings.Fields(read("scheduler")) {
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			q.Scheduler = s[1 : len(s)-1]
		}
	}
	if q.Scheduler == "" && read("scheduler") == "none" {
		q.Scheduler = "none"
	}
	return q, nil
}

// Rate is one device's activity over the window between two samples.
type Rate struct {
	Interval         time.Duration `json:"interval_ns"`
	ReadIOPS         float64       `json:"read_iops"`
	WriteIOPS        float64       `json:"write_iops"`
	ReadBytesPerSec  float64       `json:"read_bytes_per_second"`
	WriteBytesPerSec float64       `json:"write_bytes_per_second"`
	// ReadLatencyMs and WriteLatencyMs are the average time per completed
	// I/O in the window (Δticks / Δios), queueing included; 0 without I/O.
	ReadLatencyMs  float64 `json:"read_latency_ms"`
	WriteLatencyMs float64 `json:"write_latency_ms"`
	// Utilization is the busy fraction of the window (Δio_ticks /
	// interval), 0..1.
	Utilization float64 `json:"utilization"`
	// QueueDepth is the average number of I/Os in flight (Δtime_in_queue /
	// interval), iostat's aqu-sz.
	QueueDepth float64 `json:"queue_depth"`
	// Discards and cache flushes (kernel 4.18+ and 5.5+; zero before).
	DiscardIOPS        float64 `json:"discard_iops"`
	DiscardBytesPerSec float64 `json:"discard_bytes_per_second"`
	FlushIOPS          float64 `json:"flush_iops"`
	// FlushLatencyMs is the average time per cache flush: what an
	// acknowledged write waits for on a drive with a volatile cache.
	FlushLatencyMs float64 `json:"flush_latency_ms"`
	InFlight       uint64  `json:"in_flight"` // in flight at the end of the window
	ReadOps        uint64  `json:"read_ops"`  // completed in the window
	WriteOps       uint64  `json:"write_ops"`
	// Reset is set when the window has no valid rates: the device is new,
	// its major:minor changed, or a counter went backwards (a drive
	// replaced under the same name, counters reset). All rates are zero
	// and the later sample is the new baseline.
	Reset bool `json:"reset"`
}

// ErrInterval is returned when the second sample is not after the first.
var ErrInterval = errors.New("iostat: samples not in time order")

// Rates computes per-device rates from prev to cur. Devices only in prev
// are left out; devices only in cur get Reset.
//
// Wrap handling: the kernel prints I/O and sector counts as unsigned
// long (64 bits here), so a count going backwards is a reset. It prints
// every time field (ticks, io_ticks, time_in_queue) as a 32-bit unsigned
// int of milliseconds, which wraps every 49.7 days: a time field going
// backwards is taken as one wrap when the wrapped delta is below 2^31 ms
// and the counts did not reset, otherwise as a reset.
func Rates(prev, cur Sample) (map[string]Rate, error) {
	iv := cur.At.Sub(prev.At)
	if iv <= 0 {
		return nil, fmt.Errorf("%w: %s then %s", ErrInterval, prev.At.Format(time.RFC3339Nano), cur.At.Format(time.RFC3339Nano))
	}
	out := make(map[string]Rate, len(cur.Devices))
	for name, c := range cur.Devices {
		p, ok := prev.Devices[name]
		if !ok || p.Major != c.Major || p.Minor != c.Minor {
			out[name] = Rate{Interval: iv, Reset: true, InFlight: c.InFlight}
			continue
		}
		out[name] = rate(p, c, iv)
	}
	return out, nil
}

func rate(p, c Counters, iv time.Duration) Rate {
	reset := Rate{Interval: iv, Reset: true, InFlight: c.InFlight}
	var ok = true
	count := func(a, b uint64) uint64 {
		if b < a {
			ok = false
			return 0
		}
		return b - a
	}
	ms := func(a, b uint64) uint64 {
		if b >= a {
			return b - a
		}
		if a <= math.MaxUint32 && b <= math.MaxUint32 {
			if d := b + (1 << 32) - a; d < 1<<31 {
				return d
			}
		}
		ok = false
		return 0
	}
	rIOs, wIOs := count(p.ReadIOs, c.ReadIOs), count(p.WriteIOs, c.WriteIOs)
	rSec, wSec := count(p.ReadSectors, c.ReadSectors), count(p.WriteSectors, c.WriteSectors)
	count(p.ReadMerges, c.ReadMerges)
	count(p.WriteMerges, c.WriteMerges)
	dIOs, dSec, fIOs := count(p.DiscardIOs, c.DiscardIOs), count(p.DiscardSectors, c.DiscardSectors), count(p.FlushIOs, c.FlushIOs)
	fTicks := ms(p.FlushTicks, c.FlushTicks)
	ms(p.DiscardTicks, c.DiscardTicks)
	rTicks, wTicks := ms(p.ReadTicks, c.ReadTicks), ms(p.WriteTicks, c.WriteTicks)
	ioTicks, inQueue := ms(p.IOTicks, c.IOTicks), ms(p.TimeInQueue, c.TimeInQueue)
	if !ok {
		return reset
	}
	sec := iv.Seconds()
	ivMs := sec * 1000
	r := Rate{
		Interval:           iv,
		ReadIOPS:           float64(rIOs) / sec,
		WriteIOPS:          float64(wIOs) / sec,
		ReadBytesPerSec:    float64(rSec*SectorSize) / sec,
		WriteBytesPerSec:   float64(wSec*SectorSize) / sec,
		Utilization:        min(float64(ioTicks)/ivMs, 1),
		QueueDepth:         float64(inQueue) / ivMs,
		DiscardIOPS:        float64(dIOs) / sec,
		DiscardBytesPerSec: float64(dSec*SectorSize) / sec,
		FlushIOPS:          float64(fIOs) / sec,
		InFlight:           c.InFlight,
		ReadOps:            rIOs,
		WriteOps:           wIOs,
	}
	if rIOs > 0 {
		r.ReadLatencyMs = float64(rTicks) / float64(rIOs)
	}
	if wIOs > 0 {
		r.WriteLatencyMs = float64(wTicks) / float64(wIOs)
	}
	if fIOs > 0 {
		r.FlushLatencyMs = float64(fTicks) / float64(fIOs)
	}
	return r
}

// Tracker keeps the previous sample so a poller gets rates with one call.
// It is not safe for concurrent use.
type Tracker struct {
	r    *Reader
	prev Sample
}

// NewTracker returns a Tracker reading through r.
func NewTracker(r *Reader) *Tracker { return &Tracker{r: r} }

// Next samples and returns the rates since the previous call, and the
// sample itself. The first call only takes the baseline: rates is nil.
func (t *Tracker) Next(ctx context.Context) (map[string]Rate, Sample, error) {
	s, err := t.r.Sample(ctx)
	if err != nil {
		return nil, Sample{}, err
	}
	prev := t.prev
	t.prev = s
	if prev.Devices == nil {
		return nil, s, nil
	}
	rates, err := Rates(prev, s)
	if err != nil {
		return nil, s, err
	}
	return rates, s, nil
}
