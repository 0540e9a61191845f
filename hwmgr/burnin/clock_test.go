package burnin

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/smart"
	"github.com/stowage/stowage/osd/zone"
)

// stepClock is an injected clock that moves step forward at every reading,
// so a run's timing is a function of how often it looks at the clock.
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newStepClock(step time.Duration) *stepClock {
	return &stepClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), step: step}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

// advance moves the clock by d without a reading.
func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// tempReplay is a SMART source replaying real smartctl captures, one per
// call (the last repeats), with temperature.current (and the NVMe log's
// temperature) set to temps[i] where temps[i] >= 0; a capture without
// those fields (a drive in standby) is replayed as it is.
type tempReplay struct {
	t     *testing.T
	files []string
	temps []int64
	calls int
}

const smartFixtures = "../smart/testdata/smartctl-json/"

func (r *tempReplay) Run(ctx context.Context, device, deviceType string) (*smart.Output, error) {
	i := r.calls
	r.calls++
	raw, err := os.ReadFile(r.files[min(i, len(r.files)-1)])
	if err != nil {
		r.t.Fatal(err)
	}
	if c := r.temps[min(i, len(r.temps)-1)]; c >= 0 {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			r.t.Fatal(err)
		}
		if tm, ok := m["temperature"].(map[string]any); ok {
			tm["current"] = c
		}
		if nl, ok := m["nvme_smart_health_information_log"].(map[string]any); ok {
			nl["temperature"] = c
		}
		if raw, err = json.Marshal(m); err != nil {
			r.t.Fatal(err)
		}
	}
	rec, err := smart.Parse(raw)
	if err != nil {
		return nil, err
	}
	return &smart.Output{Raw: raw, Record: rec}, nil
}

// TestTemperatureCeiling burns in a memory drive (4 regions) whose SMART
// source replays real captures of an HDD without a drive limit, a SCSI
// drive reporting its trip temperature (85 °C), an NVMe drive, and a drive
// in standby, with the temperatures of each sample set. SMART is sampled at
// every region boundary (the clock moves 1 s per reading, the interval is
// 1 s), so the peak is judged, not the after-sample: a drive that is hot
// mid-run and cool at the end fails, and the run stops at the hot sample.
func TestTemperatureCeiling(t *testing.T) {
	const (
		hdd     = smartFixtures + "sat-Western_Digital_Ultrastar_DC_HC550-WDC__WUH721818ALN604-sda.json"
		scsi    = smartFixtures + "HITACHI_H109060SESUN600G_10.json"
		nvme    = smartFixtures + "INTEL_SSDPE2KX080T8_1.json"
		standby = "testdata/selftest/ata-standby.json"
	)
	if !slices.Contains(smart.Runner{}.Args("/dev/sdz", ""), "standby") {
		t.Fatal("the SMART runner burn-in samples with does not pass -n standby")
	}
	for _, c := range []struct {
		name    string
		files   []string
		temps   []int64
		max     int64
		pass    bool
		peak    int64
		ceil    int64
		samples int  // temperature readings counted
		stopped bool // the run stopped before the verify pass
		msg     string
	}{
		{"hdd hot mid-run, cool after", []string{hdd}, []int64{35, 45, 66, 40}, 0, false, 66, 60, 4, true, "default for a spinning drive"},
		{"hdd below 60", []string{hdd}, []int64{35, 45, 59, 50}, 0, true, 59, 60, 8, false, ""},
		{"hdd hot before the start", []string{hdd}, []int64{65, 40}, 0, false, 65, 60, 2, true, "default for a spinning drive"},
		{"scsi below its trip", []string{scsi}, []int64{34, 84, 40}, 0, true, 84, 85, 8, false, ""},
		{"scsi at its trip", []string{scsi}, []int64{34, 40, 40, 40, 40, 85, 40}, 0, false, 85, 85, 7, false, "the drive's own limit"},
		{"nvme below 70", []string{nvme}, []int64{30, 69, 40}, 0, true, 69, 70, 8, false, ""},
		{"nvme over 70", []string{nvme}, []int64{30, 72, 40}, 0, false, 72, 70, 3, true, "solid state and NVMe"},
		{"configured ceiling", []string{hdd}, []int64{35, 46, 40}, 45, false, 46, 45, 3, true, "configured"},
		{"no ceiling", []string{hdd}, []int64{35, 90, 40}, -1, true, 90, 0, 8, false, ""},
		{"asleep samples not counted", []string{hdd, standby, standby, hdd}, []int64{35, -1, -1, 41}, 0, true, 41, 60, 6, false, "not woken"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := &tempReplay{t: t, files: c.files, temps: c.temps}
			clk := newStepClock(time.Second)
			rep, err := Run(context.Background(), memDrive(t), target.Drive{Path: "mem"}, Config{SMART: src,
				SMARTInterval: time.Second, MaxTempC: c.max, ChunkSize: 256 << 10, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Regions) != 4 || src.calls < 2 {
				t.Fatalf("%d regions, %d SMART samples; want 4 regions, sampled before and after", len(rep.Regions), src.calls)
			}
			if rep.Pass != c.pass || rep.PeakTempC == nil || *rep.PeakTempC != c.peak || rep.TempSamples != c.samples {
				t.Fatalf("pass=%v peak %v over %d samples (%d calls), reasons %+v; want pass=%v peak %d over %d",
					rep.Pass, ptrVal(rep.PeakTempC), rep.TempSamples, src.calls, rep.Reasons, c.pass, c.peak, c.samples)
			}
			if c.ceil > 0 && (rep.TempCeilingC == nil || *rep.TempCeilingC != c.ceil) {
				t.Fatalf("ceiling %v, want %d", ptrVal(rep.TempCeilingC), c.ceil)
			}
			if c.ceil == 0 && rep.TempCeilingC != nil {
				t.Fatalf("ceiling %d with MaxTempC < 0", *rep.TempCeilingC)
			}
			if c.stopped != (rep.BytesRead == 0) {
				t.Fatalf("stopped %v: read %d bytes", c.stopped, rep.BytesRead)
			}
			if c.msg != "" && !slices.ContainsFunc(rep.Reasons, func(x Reason) bool {
				return x.Rule == RuleTemperature && x.Fail == !c.pass && strings.Contains(x.Message, c.msg)
			}) {
				t.Fatalf("no temperature reason %q (fail %v): %+v", c.msg, !c.pass, rep.Reasons)
			}
		})
	}
}

func ptrVal(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// slowReads is a drive whose reads in [from, to) take ten times as long as
// elsewhere: the device interface the burn-in uses, with time kept on the
// run's injected clock (each MiB read costs perMiB, or 10 × perMiB there),
// so the region's throughput is exact and no test waits.
type slowReads struct {
	zone.Device
	clk      *stepClock
	from, to int64
	perMiB   time.Duration
}

func (s *slowReads) ReadAt(p []byte, off int64) (int, error) {
	d := s.perMiB * time.Duration(len(p)) / (1 << 20)
	if off < s.to && off+int64(len(p)) > s.from {
		d *= 10
	}
	s.clk.advance(d)
	return s.Device.ReadAt(p, off)
}

func (s *slowReads) WriteAt(p []byte, off int64) (int, error) {
	s.clk.advance(s.perMiB * time.Duration(len(p)) / (1 << 20))
	return s.Device.WriteAt(p, off)
}

// TestSlowRegionNamed: one region of a memory drive reads ten times slower
// than the rest; the report marks that region slow and names it in a
// slow-region reason, a warning by default and a failure with
// FailSlowRegions.
func TestSlowRegionNamed(t *testing.T) {
	const slowZone = 4
	for _, failSlow := range []bool{false, true} {
		clk := newStepClock(time.Nanosecond)
		dev := &slowReads{Device: memDrive(t), clk: clk, from: slowZone << 20, to: (slowZone + 1) << 20, perMiB: 100 * time.Millisecond}
		rep, err := Run(context.Background(), dev, target.Drive{Path: "mem"}, Config{ChunkSize: 256 << 10, Now: clk.Now, FailSlowRegions: failSlow})
		if err != nil {
			t.Fatal(err)
		}
		var slow []int
		for _, r := range rep.Regions {
			if r.Slow {
				slow = append(slow, r.Zone)
			}
		}
		if !slices.Equal(slow, []int{slowZone}) || rep.Pass == failSlow {
			t.Fatalf("fail-slow %v: slow zones %v, pass=%v, regions %+v; want only zone %d slow", failSlow, slow, rep.Pass, rep.Regions, slowZone)
		}
		if !slices.ContainsFunc(rep.Reasons, func(x Reason) bool {
			return x.Rule == RuleSlowRegion && x.Fail == failSlow && strings.Contains(x.Message, "offset 4194304 (zone 4)")
		}) {
			t.Fatalf("fail-slow %v: no slow-region reason naming zone 4: %+v", failSlow, rep.Reasons)
		}
	}
}

// TestETADecreasesToZero: on a drive whose every MiB costs the same time
// on the injected clock, the ETA of every progress report is non-negative,
// never grows, and is 0 when all bytes are done; a run resumed halfway
// estimates from its own rate (the same ETA as the fresh run at that
// point), not from bytes an earlier run moved.
func TestETADecreasesToZero(t *testing.T) {
	run := func(resume label.Task, keep func(label.Task)) []Progress {
		clk := newStepClock(time.Nanosecond)
		dev := &slowReads{Device: memDrive(t), clk: clk, perMiB: 100 * time.Millisecond}
		var ps []Progress
		_, err := Run(context.Background(), dev, target.Drive{Path: "mem"}, Config{ChunkSize: 256 << 10, Now: clk.Now, Seed: 5,
			Resume: resume, Progress: func(p Progress) { ps = append(ps, p) },
			Checkpoint: func(ctx context.Context, tk label.Task) error { keep(tk); return nil }})
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	var mid label.Task
	fresh := run(label.Task{}, func(tk label.Task) {
		if tk.Step == "verify-1" && tk.Done == 2<<20 {
			mid = tk
		}
	})
	for i, p := range fresh {
		if p.ETA < 0 || (i > 0 && p.ETA > fresh[i-1].ETA) {
			t.Fatalf("progress %d: ETA %v after %v (%+v)", i, p.ETA, fresh[max(i-1, 0)].ETA, p)
		}
	}
	if last := fresh[len(fresh)-1]; last.ETA != 0 || last.Done != last.Total || last.Total != 8<<20 {
		t.Fatalf("last progress %+v; want all 8 MiB done, ETA 0", last)
	}
	if mid.Kind == "" {
		t.Fatal("no checkpoint halfway through verify-1")
	}
	resumed := run(mid, func(label.Task) {})
	first := resumed[0]
	var same Progress
	for _, p := range fresh {
		if p.Done == first.Done {
			same = p
		}
	}
	if d := first.ETA - same.ETA; same.Done == 0 || d < -same.ETA/100 || d > same.ETA/100 {
		t.Fatalf("resumed run's first ETA %v at %d bytes; the fresh run's at that point %v", first.ETA, first.Done, same.ETA)
	}
	if last := resumed[len(resumed)-1]; last.ETA != 0 || last.Done != last.Total {
		t.Fatalf("resumed run's last progress %+v", last)
	}
}
