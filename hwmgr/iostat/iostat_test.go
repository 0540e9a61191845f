package iostat

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// fixtureSamples reads the two fixture snapshots, 10 s apart, through
// /proc/diskstats (or /sys/block/*/stat when sysfs is set).
func fixtureSamples(t *testing.T, sysfs bool) (Sample, Sample) {
	t.Helper()
	var out [2]Sample
	for i, dir := range []string{"testdata/t0", "testdata/t1"} {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		r, err := NewReader(Config{ProcRoot: dir + "/proc", SysRoot: dir + "/sys", Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		if sysfs {
			out[i], err = r.SampleSysfs(context.Background(), nil)
		} else {
			out[i], err = r.Sample(context.Background())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return out[0], out[1]
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestFixtureRates(t *testing.T) {
	for _, sysfs := range []bool{false, true} {
		name := "diskstats"
		if sysfs {
			name = "sysfs"
		}
		t.Run(name, func(t *testing.T) {
			a, b := fixtureSamples(t, sysfs)
			if len(a.Devices) != 10 || len(b.Devices) != 11 {
				t.Fatalf("devices: %d then %d", len(a.Devices), len(b.Devices))
			}
			if c := b.Devices["sde"]; c.Major != 8 || c.Minor != 64 || c.FlushIOs != 10 {
				t.Errorf("sde counters %+v", c)
			}
			rates, err := Rates(a, b)
			if err != nil {
				t.Fatal(err)
			}
			for dev, w := range map[string]Rate{
				"sda": {ReadIOPS: 100, WriteIOPS: 50, ReadBytesPerSec: 16000 * 512 / 10, WriteBytesPerSec: 8000 * 512 / 10,
					ReadLatencyMs: 8, WriteLatencyMs: 5, Utilization: 0.5, QueueDepth: 1.05, InFlight: 2, ReadOps: 1000, WriteOps: 500},
				"sdd": {ReadIOPS: 100, WriteIOPS: 50, ReadBytesPerSec: 16000 * 512 / 10, WriteBytesPerSec: 8000 * 512 / 10,
					ReadLatencyMs: 40, WriteLatencyMs: 5.2, Utilization: 0.99, QueueDepth: 4.26, InFlight: 1, ReadOps: 1000, WriteOps: 500},
				// Read ticks and time in queue wrapped past 2^32 ms.
				"sde": {ReadIOPS: 100, WriteIOPS: 50, ReadBytesPerSec: 16000 * 512 / 10, WriteBytesPerSec: 8000 * 512 / 10,
					ReadLatencyMs: 8, WriteLatencyMs: 5, Utilization: 0.5, QueueDepth: 1.05, ReadOps: 1000, WriteOps: 500},
				// Utilisation is clamped to 1 (io_ticks 10000 ms in 10 s).
				"nvme0n1": {ReadIOPS: 20000, WriteIOPS: 10000, ReadBytesPerSec: 1600000 * 512 / 10, WriteBytesPerSec: 800000 * 512 / 10,
					ReadLatencyMs: 0.1, WriteLatencyMs: 0.05, Utilization: 1, QueueDepth: 2.5, InFlight: 4, ReadOps: 200000, WriteOps: 100000,
					DiscardIOPS: 5, DiscardBytesPerSec: 102400 * 512 / 10, FlushIOPS: 100, FlushLatencyMs: 2},
				"loop0": {},
				// Replaced drive: counters went backwards.
				"sdf": {Reset: true},
				// New device: no baseline.
				"sdg": {Reset: true},
			} {
				g := rates[dev]
				w.Interval = 10 * time.Second
				ok := g.Reset == w.Reset && g.InFlight == w.InFlight && g.ReadOps == w.ReadOps && g.WriteOps == w.WriteOps && g.Interval == w.Interval
				for _, p := range [][2]float64{
					{g.ReadIOPS, w.ReadIOPS}, {g.WriteIOPS, w.WriteIOPS}, {g.ReadBytesPerSec, w.ReadBytesPerSec},
					{g.WriteBytesPerSec, w.WriteBytesPerSec}, {g.ReadLatencyMs, w.ReadLatencyMs}, {g.WriteLatencyMs, w.WriteLatencyMs},
					{g.Utilization, w.Utilization}, {g.QueueDepth, w.QueueDepth},
					{g.DiscardIOPS, w.DiscardIOPS}, {g.DiscardBytesPerSec, w.DiscardBytesPerSec},
					{g.FlushIOPS, w.FlushIOPS}, {g.FlushLatencyMs, w.FlushLatencyMs},
				} {
					ok = ok && near(p[0], p[1])
				}
				if !ok {
					t.Errorf("%s:\n got %+v\nwant %+v", dev, g, w)
				}
			}
		})
	}
}

func TestRatesTable(t *testing.T) {
	base := Counters{Major: 8, FlushIOs: 7, FlushTicks: 70, ReadIOs: 100, ReadSectors: 800, ReadTicks: 1000, WriteIOs: 10, WriteSectors: 80, WriteTicks: 100, IOTicks: 500, TimeInQueue: 1100}
	for _, tc := range []struct {
		name  string
		mut   func(c *Counters)
		reset bool
		check func(r Rate) bool
	}{
		{"idle", func(c *Counters) {}, false, func(r Rate) bool { return r.ReadIOPS == 0 && r.ReadLatencyMs == 0 && r.Utilization == 0 }},
		{"reads", func(c *Counters) { c.ReadIOs += 10; c.ReadTicks += 50; c.ReadSectors += 80; c.IOTicks += 250 },
			false, func(r Rate) bool {
				return r.ReadIOPS == 10 && r.ReadLatencyMs == 5 && r.ReadBytesPerSec == 80*512 && r.Utilization == 0.25
			}},
		{"read ios backwards", func(c *Counters) { c.ReadIOs = 5 }, true, nil},
		{"write sectors backwards", func(c *Counters) { c.WriteSectors = 0 }, true, nil},
		{"flushes backwards", func(c *Counters) { c.FlushIOs = 0 }, true, nil},
		{"flushes", func(c *Counters) { c.FlushIOs += 4; c.FlushTicks += 10 }, false, func(r Rate) bool { return r.FlushIOPS == 4 && r.FlushLatencyMs == 2.5 }},
		{"merges backwards", func(c *Counters) { c.ReadMerges = 0; base.ReadMerges = 3 }, true, nil},
		{"major:minor changed", func(c *Counters) { c.Minor = 16 }, true, nil},
		{"io_ticks wrapped", func(c *Counters) { c.IOTicks = 100 }, false, nil},
		{"time backwards by more than half the range", func(c *Counters) { c.ReadTicks = 0; c.ReadIOs += 1 }, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := base
			b.ReadMerges = 0
			c := b
			if tc.name == "merges backwards" {
				b.ReadMerges = 3
			}
			if tc.name == "io_ticks wrapped" {
				b.IOTicks = math.MaxUint32 - 899 // +1000 ms across the wrap
			}
			tc.mut(&c)
			r, err := Rates(Sample{At: t0, Devices: map[string]Counters{"sda": b}},
				Sample{At: t0.Add(time.Second), Devices: map[string]Counters{"sda": c}})
			if err != nil {
				t.Fatal(err)
			}
			g := r["sda"]
			if g.Reset != tc.reset {
				t.Fatalf("reset = %v, want %v (%+v)", g.Reset, tc.reset, g)
			}
			if g.Reset && (g.ReadIOPS != 0 || g.WriteBytesPerSec != 0 || g.Utilization != 0) {
				t.Errorf("reset window has rates: %+v", g)
			}
			if tc.name == "io_ticks wrapped" && g.Utilization != 1 {
				t.Errorf("utilisation across the wrap = %v, want 1", g.Utilization)
			}
			for _, v := range []float64{g.ReadIOPS, g.WriteIOPS, g.ReadBytesPerSec, g.WriteBytesPerSec, g.ReadLatencyMs, g.WriteLatencyMs, g.Utilization, g.QueueDepth} {
				if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("bad rate %v in %+v", v, g)
				}
			}
			if tc.check != nil && !tc.check(g) {
				t.Errorf("rate %+v", g)
			}
		})
	}
	s := Sample{At: t0, Devices: map[string]Counters{}}
	if _, err := Rates(s, s); !errors.Is(err, ErrInterval) {
		t.Errorf("zero interval: %v", err)
	}
	if _, err := Rates(Sample{At: t0.Add(time.Second)}, s); !errors.Is(err, ErrInterval) {
		t.Errorf("negative interval: %v", err)
	}
}

func TestReaderErrors(t *testing.T) {
	if _, err := NewReader(Config{ProcRoot: "/nonexistent/proc", SysRoot: "/nonexistent/sys"}); err == nil {
		t.Error("NewReader on missing roots: no error")
	}
	// Malformed diskstats: a clear error, no panic.
	dir := t.TempDir()
	must(t, writeFile(dir+"/proc/diskstats", "   8 0 sda 1 2 x\n"))
	must(t, writeFile(dir+"/sys/block/.keep", ""))
	r, err := NewReader(Config{ProcRoot: dir + "/proc", SysRoot: dir + "/sys"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Sample(context.Background()); err == nil {
		t.Error("malformed diskstats: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Sample(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Sample: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func TestTracker(t *testing.T) {
	clock := []time.Time{t0, t0.Add(10 * time.Second), t0.Add(10 * time.Second)}
	dir := t.TempDir()
	must(t, writeFile(dir+"/sys/block/.keep", ""))
	must(t, writeFile(dir+"/proc/diskstats", ""))
	r, err := NewReader(Config{ProcRoot: dir + "/proc", SysRoot: dir + "/sys", Now: func() time.Time { c := clock[0]; clock = clock[1:]; return c }})
	if err != nil {
		t.Fatal(err)
	}
	copyStats := func(from string) {
		b, err := os.ReadFile(from)
		must(t, err)
		must(t, writeFile(dir+"/proc/diskstats", string(b)))
	}
	tr := NewTracker(r)
	copyStats("testdata/t0/proc/diskstats")
	rates, s, err := tr.Next(context.Background())
	if err != nil || rates != nil || len(s.Devices) != 10 {
		t.Fatalf("baseline: rates %v, %d devices, %v", rates, len(s.Devices), err)
	}
	copyStats("testdata/t1/proc/diskstats")
	rates, _, err = tr.Next(context.Background())
	if err != nil || !near(rates["sda"].ReadIOPS, 100) || !near(rates["sdd"].ReadLatencyMs, 40) {
		t.Fatalf("second: %+v %v", rates["sda"], err)
	}
	if _, _, err := tr.Next(context.Background()); !errors.Is(err, ErrInterval) {
		t.Errorf("a clock that did not move: %v", err)
	}
}
