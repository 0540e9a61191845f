// Package burnin burns in one drive, or many in parallel: write-then-verify
// passes with a pattern that encodes every 4 KiB block's LBA, the pass and a
// CRC32C (so bit flips, misdirected writes and lost writes are all caught),
// over the whole drive or a seeded sample of its regions, zone by zone at the
// write pointer on zoned drives; per-region write and read throughput; an
// optional SMART baseline (kept in the label across a resume) and
// after-sample judged by hwmgr/health, with samples between regions whose
// peak temperature is judged against a ceiling; a verdict
// with reasons and a JSON report; and Compare, which fails drives slower than
// their siblings of the same model. The label area (target.LabelArea) is never
// written, so the label and the job's checkpoint in it survive the burn-in.
package burnin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/health"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/smart"
	"github.com/stowage/stowage/osd/zone"
)

// TaskKind is the label.Task kind of a burn-in checkpoint.
const TaskKind = "burnin"

// SMART reads a drive's SMART record. smart.Runner satisfies it; the daemon
// passes its runner, tests may pass any other source.
type SMART interface {
	Run(ctx context.Context, device, deviceType string) (*smart.Output, error)
}

// Config configures one burn-in. The zero value is the documented default:
// one write+verify pass over the whole drive.
type Config struct {
	// Passes is the number of write-then-verify passes (default 1).
	Passes int
	// Share is the fraction of regions (zones) burned in, in (0, 1];
	// 0 means 1 (the whole drive). Which regions is decided by Seed.
	Share float64
	// Seed picks the sampled regions and salts the pass ids. A resumed run
	// must use the seed of the run it resumes (SeedFor derives one).
	Seed uint64
	// ChunkSize is the size of one I/O (default 1 MiB), a multiple of 4 KiB.
	ChunkSize int
	// SlowRegionPct: a region whose read throughput is below this percent
	// of the drive's median region is listed as slow (default 50).
	SlowRegionPct float64
	// FailSlowRegions makes a slow region fail the drive (default: noted).
	FailSlowRegions bool
	// MaxMismatches bounds the mismatches listed in the report (default 64);
	// all are counted.
	MaxMismatches int
	// SMART, when set, is sampled before and after; the after-sample is
	// judged by Health against the baseline. SMARTDevice and SMARTType are
	// passed to it (SMARTDevice defaults to the device path).
	SMART       SMART
	SMARTDevice string
	SMARTType   string
	Health      health.Config
	// SMARTInterval: between the baseline and the after-sample, SMART is
	// sampled again at region boundaries at most this often, for the
	// temperature peak (default 5 minutes; negative: only before and
	// after). smart.Runner passes -n standby: a sleeping drive is not woken,
	// its sample is skipped.
	SMARTInterval time.Duration
	// MaxTempC is the burn-in's temperature ceiling in °C: a drive whose
	// peak reading over the run's SMART samples reaches it fails with
	// "temperature", and the run stops at the sample that found it. 0: the
	// drive's own limit where SMART reports one (ATA SCT op_limit_max or
	// limit_max, SCSI drive_trip: smart.Temperature.Limit), else
	// Health.HDDTempWarn (60) for a spinning drive and Health.SSDTempWarn
	// (70) for SSD and NVMe. Negative: no ceiling.
	MaxTempC int64
	// Baseline, on a resumed run, is the SMART baseline the interrupted run
	// took (LoadBaseline reads it from the label): growth is judged from it
	// and no new baseline is taken. Nil: a baseline is sampled.
	Baseline *Baseline
	// KeepBaseline, when set, is called with the label history note that
	// holds the baseline a fresh run sampled (BaselineEntry, dated with the
	// run's start, the Task's Started): append it to the label next to the
	// checkpoint, so a resumed run finds it (LoadBaseline). An error stops
	// the run.
	KeepBaseline func(ctx context.Context, e label.Entry) error
	// SelfTest, with SelfTestKind "short" or "long", runs the drive's SMART
	// self-test after the baseline and before the passes (not again on a
	// resumed run): polled every SelfTestPoll (default 10s) for at most
	// SelfTestTimeout (default 15 minutes short, 24 hours long). A failed
	// or unfinished self-test fails the drive; a drive in standby is not
	// woken for it.
	SelfTest        SelfTester
	SelfTestKind    string
	SelfTestPoll    time.Duration
	SelfTestTimeout time.Duration
	// Started, when set, is the run's start time as checkpoints record it
	// (the daemon derives Seed from it with SeedFor); default Now().
	Started time.Time
	// Resume continues the run recorded in a label Task (Kind TaskKind) at
	// the start of the region it was in. The zero Task starts afresh.
	Resume label.Task
	// Checkpoint is called with the task to persist (label Area.Update)
	// at every region boundary. An error stops the run.
	Checkpoint func(ctx context.Context, t label.Task) error
	// Progress is called as bytes move.
	Progress func(Progress)
	// AfterWrite is called after each write pass is flushed, before it is
	// verified (a seam for tests and fault injection).
	AfterWrite func(ctx context.Context, pass int) error
	// Now is the clock (default time.Now); Logger the log (default slog.Default()).
	Now    func() time.Time
	Logger *slog.Logger
}

// SeedFor derives a run's seed from the drive serial and the task start
// time, so a daemon resuming from the label reproduces it.
func SeedFor(serial string, started time.Time) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range []byte(serial) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h ^ uint64(started.UnixNano())
}

// Progress is a snapshot of a running burn-in.
type Progress struct {
	Path  string        `json:"path"`
	Step  string        `json:"step"` // write-N, verify-N, reset
	Done  int64         `json:"done"` // bytes of the whole run
	Total int64         `json:"total"`
	ETA   time.Duration `json:"eta"`
}

// Region is one span burned in (a zone, minus the label area) and its speed.
type Region struct {
	Zone     int     `json:"zone"`
	Offset   int64   `json:"offset"`
	Len      int64   `json:"len"`
	WriteBps float64 `json:"write_bps"`
	ReadBps  float64 `json:"read_bps"`
	Slow     bool    `json:"slow,omitempty"`

	seq bool // a sequential zone of a zoned device: written at its write pointer
}

// Reason is one cause of a verdict.
type Reason struct {
	Rule    string `json:"rule"`
	Fail    bool   `json:"fail"`
	Message string `json:"message"`
}

// Rules.
const (
	RuleMismatch    = "mismatch"
	RuleIOError     = "io-error"
	RuleSlowRegion  = "slow-region"
	RuleSMART       = "smart"
	RuleSiblingSlow = "sibling-slow"
	RuleTemperature = "temperature"
)

// Report is the result of one burn-in.
type Report struct {
	Path          string         `json:"path"`
	Serial        string         `json:"serial,omitempty"`
	WWN           string         `json:"wwn,omitempty"`
	Model         string         `json:"model,omitempty"`
	Pass          bool           `json:"pass"`
	Reasons       []Reason       `json:"reasons,omitempty"`
	Started       time.Time      `json:"started"`
	Finished      time.Time      `json:"finished"`
	Passes        int            `json:"passes"`
	Share         float64        `json:"share"`
	Seed          uint64         `json:"seed"`
	BytesWritten  int64          `json:"bytes_written"`
	BytesRead     int64          `json:"bytes_read"`
	WriteBps      float64        `json:"write_bps"`
	ReadBps       float64        `json:"read_bps"`
	Regions       []Region       `json:"regions"`
	Mismatches    []Mismatch     `json:"mismatches,omitempty"`
	MismatchCount int            `json:"mismatch_count"`
	SMART         *health.Result `json:"smart,omitempty"`
	// SelfTest is the passed SMART self-test's log entry.
	SelfTest *smart.SelfTest `json:"self_test,omitempty"`
	// PeakTempC is the highest temperature over the run's SMART samples
	// (TempSamples readings), TempCeilingC the ceiling it was judged by.
	PeakTempC    *int64 `json:"peak_temp_c,omitempty"`
	TempCeilingC *int64 `json:"temp_ceiling_c,omitempty"`
	TempSamples  int    `json:"temp_samples,omitempty"`

	writeDur, readDur time.Duration
}

func (r *Report) fail(rule, format string, a ...any) {
	r.Reasons = append(r.Reasons, Reason{Rule: rule, Fail: true, Message: fmt.Sprintf(format, a...)})
	r.Pass = false
}

func (r *Report) note(rule, format string, a ...any) {
	r.Reasons = append(r.Reasons, Reason{Rule: rule, Message: fmt.Sprintf(format, a...)})
}

// Failed reports whether any reason fails the drive.
func (r *Report) Failed() bool { return !r.Pass }

func (c *Config) fill() error {
	if c.Passes == 0 {
		c.Passes = 1
	}
	if c.Passes < 0 || c.Passes > 99 {
		return fmt.Errorf("burnin: passes %d out of [1, 99]", c.Passes)
	}
	if c.Share == 0 {
		c.Share = 1
	}
	if !(c.Share > 0 && c.Share <= 1) {
		return fmt.Errorf("burnin: share %v out of (0, 1]", c.Share)
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = 1 << 20
	}
	if c.ChunkSize < BlockSize || c.ChunkSize%BlockSize != 0 || c.ChunkSize > 64<<20 {
		return fmt.Errorf("burnin: chunk size %d not a multiple of %d up to 64 MiB", c.ChunkSize, BlockSize)
	}
	if c.SlowRegionPct == 0 {
		c.SlowRegionPct = 50
	}
	if c.SMARTInterval == 0 {
		c.SMARTInterval = 5 * time.Minute
	}
	if c.MaxMismatches == 0 {
		c.MaxMismatches = 64
	}
	if c.Health == (health.Config{}) {
		c.Health = health.Defaults()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch c.SelfTestKind {
	case "", "none":
		c.SelfTestKind = ""
	case "short", "long":
	default:
		return fmt.Errorf("burnin: self-test kind %q: short, long or none", c.SelfTestKind)
	}
	if c.SelfTestPoll <= 0 {
		c.SelfTestPoll = 10 * time.Second
	}
	if c.SelfTestTimeout <= 0 {
		c.SelfTestTimeout = 15 * time.Minute
		if c.SelfTestKind == "long" {
			c.SelfTestTimeout = 24 * time.Hour
		}
	}
	if c.Resume.Kind != "" && c.Resume.Kind != TaskKind {
		return fmt.Errorf("burnin: cannot resume a %q task", c.Resume.Kind)
	}
	return nil
}

// Regions returns the regions a burn-in with share and seed covers on a
// device: one per zone (zones past the label area; on conventional devices
// the label's 2 MiB are cut off the first zone), a deterministic sample of
// ceil(share × n) of them in device order.
func Regions(ctx context.Context, dev zone.Device, share float64, seed uint64) ([]Region, error) {
	info := dev.Info()
	skip := target.LabelArea(info)
	zs, err := dev.ReportZones(ctx, 0, info.NumZones)
	if err != nil {
		return nil, fmt.Errorf("burnin: %s: report zones: %w", info.Path, err)
	}
	var all []Region
	for _, z := range zs {
		start, end := z.Start, z.Start+z.Len
		if info.Kind == zone.KindZoned {
			end = z.Start + z.Capacity
		}
		start = max(start, skip)
		if end-start < BlockSize {
			continue
		}
		all = append(all, Region{Zone: z.Index, Offset: start, Len: (end - start) / BlockSize * BlockSize,
			seq: info.Kind == zone.KindZoned && z.Type != zone.TypeConventional})
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("burnin: %s: no space past the label area (%d bytes)", info.Path, skip)
	}
	n := int(float64(len(all))*share + 0.999999)
	n = min(max(n, 1), len(all))
	if n == len(all) {
		return all, nil
	}
	idx := rand.New(rand.NewPCG(seed, 0x5707a6e)).Perm(len(all))[:n]
	sort.Ints(idx)
	out := make([]Region, n)
	for i, j := range idx {
		out[i] = all[j]
	}
	return out, nil
}

// passID is the id written into every block of pass p of the run with seed.
func passID(seed uint64, p int) uint64 { return seed*31 + uint64(p) + 1 }

// Run burns in the device dev of drive d. The caller has run target.Check
// (target.Open does) and moved the drive to lifecycle.BurnIn. Every device
// I/O is issued from the calling goroutine, so a caller may pin it to a
// thread or cgroup. The error is non-nil only when the run could not be
// carried out to a verdict (bad config, cancelled, checkpoint failed); a
// drive's own faults (mismatches, I/O errors, SMART) are failing reasons in
// the report.
func Run(ctx context.Context, dev zone.Device, d target.Drive, cfg Config) (*Report, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	info := dev.Info()
	rep := &Report{Path: info.Path, Serial: d.Serial, WWN: d.WWN, Model: d.Model, Pass: true,
		Passes: cfg.Passes, Share: cfg.Share, Seed: cfg.Seed, Started: cfg.Started}
	if rep.Started.IsZero() {
		rep.Started = cfg.Now()
	}
	regions, err := Regions(ctx, dev, cfg.Share, cfg.Seed)
	if err != nil {
		return nil, err
	}
	rep.Regions = regions
	var span int64
	for _, r := range regions {
		span += r.Len
	}
	steps := make([]string, 0, 2*cfg.Passes)
	for p := 1; p <= cfg.Passes; p++ {
		steps = append(steps, fmt.Sprintf("write-%d", p), fmt.Sprintf("verify-%d", p))
	}
	first, firstRegion := 0, 0
	started := rep.Started
	if cfg.Resume.Kind == TaskKind {
		first = slices.Index(steps, cfg.Resume.Step)
		if first < 0 {
			return nil, fmt.Errorf("burnin: %s: resume: unknown step %q", info.Path, cfg.Resume.Step)
		}
		var sum int64
		for firstRegion < len(regions) && sum+regions[firstRegion].Len <= int64(cfg.Resume.Done) {
			sum += regions[firstRegion].Len
			firstRegion++
		}
		if !cfg.Resume.Started.IsZero() {
			started = cfg.Resume.Started
		}
		cfg.Logger.Info("burn-in resumes", "path", info.Path, "step", cfg.Resume.Step, "region", firstRegion)
	}
	w := &worker{dev: dev, cfg: &cfg, rep: rep, info: info, started: started,
		total: span * int64(len(steps)), buf: zone.AlignedBlock(cfg.ChunkSize), t0: cfg.Now()}
	w.done = int64(first)*span + func() int64 {
		var s int64
		for _, r := range regions[:firstRegion] {
			s += r.Len
		}
		return s
	}()
	w.done0 = w.done
	if err := w.baseline(ctx); err != nil {
		return rep, err
	}
	if cfg.SelfTest != nil && cfg.SelfTestKind != "" && first == 0 && firstRegion == 0 {
		if err := w.selfTest(ctx); err != nil {
			return rep, err
		}
	}
	for si := first; si < len(steps) && rep.Pass && !w.hot; si++ {
		pass := si/2 + 1
		from := 0
		if si == first {
			from = firstRegion
		}
		if err := w.step(ctx, steps[si], pass, si%2 == 0, from); err != nil {
			return rep, err
		}
		if !rep.Pass || w.hot {
			break
		}
		if si%2 == 0 && rep.Pass {
			if err := dev.Flush(ctx); err != nil {
				rep.fail(RuleIOError, "%s: flush after %s: %v", info.Path, steps[si], err)
				break
			}
			if cfg.AfterWrite != nil {
				if err := cfg.AfterWrite(ctx, pass); err != nil {
					return rep, fmt.Errorf("burnin: %s: after write pass %d: %w", info.Path, pass, err)
				}
			}
		}
	}
	if rep.Pass && !w.hot {
		w.resetZones(ctx)
	}
	w.finish(ctx)
	return rep, nil
}

type worker struct {
	dev     zone.Device
	cfg     *Config
	rep     *Report
	info    zone.Info
	buf     []byte
	started time.Time
	t0      time.Time
	done    int64
	done0   int64 // done when this run (fresh or resumed) began: the ETA's rate counts only this run's bytes
	total   int64
	before  *smart.Record
	sampled time.Time // last SMART sample
	hot     bool      // the temperature ceiling was reached
	asleep  bool      // a sample found the drive asleep (noted once)
	ceilSrc string    // where the temperature ceiling comes from
}

func (w *worker) progress(step string) {
	if w.cfg.Progress == nil {
		return
	}
	p := Progress{Path: w.info.Path, Step: step, Done: w.done, Total: w.total}
	if el, moved := w.cfg.Now().Sub(w.t0), w.done-w.done0; moved > 0 && el > 0 && w.total > w.done {
		p.ETA = time.Duration(float64(el) / float64(moved) * float64(w.total-w.done))
	}
	w.cfg.Progress(p)
}

func (w *worker) checkpoint(ctx context.Context, step string, done, total int64) error {
	if w.cfg.Checkpoint == nil {
		return nil
	}
	t := label.Task{Kind: TaskKind, Step: step, Done: uint64(done), Total: uint64(total),
		Started: w.started, Updated: w.cfg.Now()}
	if err := w.cfg.Checkpoint(ctx, t); err != nil {
		return fmt.Errorf("burnin: %s: checkpoint %s at %d: %w", w.info.Path, step, done, err)
	}
	return nil
}

// step runs one write or verify pass over the regions from index from.
func (w *worker) step(ctx context.Context, step string, pass int, write bool, from int) error {
	id := passID(w.cfg.Seed, pass)
	fill := fillFor(id)
	var stepTotal, stepDone int64
	for i, r := range w.rep.Regions {
		stepTotal += r.Len
		if i < from {
			stepDone += r.Len
		}
	}
	for i := from; i < len(w.rep.Regions); i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("burnin: %s: %s: %w", w.info.Path, step, err)
		}
		if err := w.checkpoint(ctx, step, stepDone, stepTotal); err != nil {
			return err
		}
		if i > from && w.sampleDue() {
			if w.sampleTemp(ctx); w.hot {
				break // mismatches verified so far are still judged below
			}
		}
		r := &w.rep.Regions[i]
		if write && r.seq {
			if err := w.dev.Reset(ctx, r.Zone); err != nil {
				w.rep.fail(RuleIOError, "%s: reset zone %d before %s: %v", w.info.Path, r.Zone, step, err)
				return nil
			}
		}
		t := w.cfg.Now()
		for off := r.Offset; off < r.Offset+r.Len; {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("burnin: %s: %s at offset %d: %w", w.info.Path, step, off, err)
			}
			n := min(int64(len(w.buf)), r.Offset+r.Len-off)
			b := w.buf[:n]
			if write {
				for k := int64(0); k < n; k += BlockSize {
					fillBlock(b[k:k+BlockSize], uint64(off+k)/BlockSize, id, fill)
				}
				if _, err := w.dev.WriteAt(b, off); err != nil {
					w.rep.fail(RuleIOError, "%s: %s: write %d bytes at offset %d: %v", w.info.Path, step, n, off, err)
					return nil
				}
				w.rep.BytesWritten += n
			} else {
				if _, err := w.dev.ReadAt(b, off); err != nil {
					w.rep.fail(RuleIOError, "%s: %s: read %d bytes at offset %d: %v", w.info.Path, step, n, off, err)
					return nil
				}
				w.rep.BytesRead += n
				for k := int64(0); k < n; k += BlockSize {
					lba := uint64(off+k) / BlockSize
					if m, ok := checkBlock(b[k:k+BlockSize], lba, id, off+k); !ok {
						w.rep.MismatchCount++
						if len(w.rep.Mismatches) < w.cfg.MaxMismatches {
							w.rep.Mismatches = append(w.rep.Mismatches, m)
						}
					}
				}
			}
			off += n
			w.done += n
			stepDone += n
			w.progress(step)
		}
		el := w.cfg.Now().Sub(t)
		if el <= 0 {
			el = time.Nanosecond
		}
		bps := float64(r.Len) / el.Seconds()
		if write {
			r.WriteBps = bps
			w.rep.writeDur += el
		} else {
			r.ReadBps = bps
			w.rep.readDur += el
		}
	}
	if !write && w.rep.MismatchCount > 0 {
		w.rep.fail(RuleMismatch, "%s: %s: %d blocks did not read back as written; first: %s",
			w.info.Path, step, w.rep.MismatchCount, w.rep.Mismatches[0])
	}
	return nil
}

// resetZones empties the burned zones of a zoned device for the OSD, and
// the emulated zones wholly past the label area of a conventional one.
func (w *worker) resetZones(ctx context.Context) {
	skip := target.LabelArea(w.info)
	for _, r := range w.rep.Regions {
		if w.info.Kind == zone.KindZoned && !r.seq || w.info.ZoneStart(r.Zone) < skip {
			continue
		}
		if err := w.dev.Reset(ctx, r.Zone); err != nil {
			w.rep.fail(RuleIOError, "%s: reset zone %d after burn-in: %v", w.info.Path, r.Zone, err)
			return
		}
	}
	if err := w.dev.Flush(ctx); err != nil {
		w.rep.fail(RuleIOError, "%s: flush after zone resets: %v", w.info.Path, err)
	}
}

// smartRead reads the drive's SMART record once.
func (w *worker) smartRead(ctx context.Context) (string, *smart.Record, error) {
	devName := w.cfg.SMARTDevice
	if devName == "" {
		devName = w.info.Path
	}
	out, err := w.cfg.SMART.Run(ctx, devName, w.cfg.SMARTType)
	w.sampled = w.cfg.Now()
	if err == nil && (out == nil || out.Record == nil) {
		err = errors.New("no record")
	}
	if err != nil {
		return devName, nil, err
	}
	return devName, out.Record, nil
}

// smartSample reads the baseline or the after-sample; an unreadable one is
// noted in the report.
func (w *worker) smartSample(ctx context.Context) *smart.Record {
	devName, rec, err := w.smartRead(ctx)
	if err != nil {
		w.rep.note(RuleSMART, "%s: SMART unreadable: %v", devName, err)
		return nil
	}
	return rec
}

func (w *worker) finish(ctx context.Context) {
	r := w.rep
	if r.writeDur > 0 {
		r.WriteBps = float64(r.BytesWritten) / r.writeDur.Seconds()
	}
	if r.readDur > 0 {
		r.ReadBps = float64(r.BytesRead) / r.readDur.Seconds()
	}
	var reads []float64
	for _, g := range r.Regions {
		if g.ReadBps > 0 {
			reads = append(reads, g.ReadBps)
		}
	}
	if len(reads) >= 3 {
		med := median(reads)
		for i := range r.Regions {
			g := &r.Regions[i]
			if g.ReadBps > 0 && g.ReadBps < med*w.cfg.SlowRegionPct/100 {
				g.Slow = true
				msg := fmt.Sprintf("%s: region at offset %d (zone %d) reads at %.0f B/s, below %.0f%% of the drive's median %.0f B/s",
					r.Path, g.Offset, g.Zone, g.ReadBps, w.cfg.SlowRegionPct, med)
				if w.cfg.FailSlowRegions {
					r.fail(RuleSlowRegion, "%s", msg)
				} else {
					r.note(RuleSlowRegion, "%s", msg)
				}
			}
		}
	}
	if w.cfg.SMART != nil {
		after := w.smartSample(ctx)
		w.observe(after, true)
		if after != nil {
			var prev *health.Sample
			if w.before != nil {
				prev = &health.Sample{SMART: w.before}
			}
			res := w.cfg.Health.Evaluate(health.Sample{SMART: after}, prev)
			r.SMART = &res
			if res.Verdict == health.Fail {
				for _, x := range res.Sorted() {
					if x.Verdict == health.Fail {
						r.fail(RuleSMART, "%s: %s", r.Path, x.Message)
					}
				}
			}
		}
		w.judgeTemp()
	}
	r.Finished = w.cfg.Now()
	lvl := slog.LevelInfo
	if !r.Pass {
		lvl = slog.LevelWarn
	}
	w.cfg.Logger.Log(ctx, lvl, "burn-in done", "path", r.Path, "serial", r.Serial, "pass", r.Pass,
		"written", r.BytesWritten, "read", r.BytesRead, "write_bps", r.WriteBps, "read_bps", r.ReadBps,
		"mismatches", r.MismatchCount)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// UpdateLabel records a finished burn-in in the drive's label: it clears the
// Task (the checkpoint) and appends a burn-in history entry with the result
// and the first reasons. The daemon then applies lifecycle.ActBurnInPass or
// ActBurnInFail with label.Area.Apply.
func UpdateLabel(ctx context.Context, a *label.Area, rep *Report) (label.Record, error) {
	return a.Update(ctx, func(r *label.Record) error {
		res := label.ResultFail
		detail := fmt.Sprintf("%d B written, %d B read, %.0f/%.0f B/s", rep.BytesWritten, rep.BytesRead, rep.WriteBps, rep.ReadBps)
		if rep.Pass {
			res = label.ResultPass
		}
		for _, x := range rep.Reasons {
			if x.Fail {
				detail = x.Rule + ": " + x.Message
				break
			}
		}
		if len(detail) > label.MaxDetailLen {
			detail = detail[:label.MaxDetailLen]
		}
		r.Task = label.Task{}
		r.AddEntry(label.Entry{Time: rep.Finished, Kind: label.KindBurnIn, Result: res, Actor: "burnin", Detail: detail})
		return nil
	})
}
