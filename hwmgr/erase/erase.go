// Package erase erases a drive's data area and proves it: marker blocks are
// written at seeded places first, the chosen Method erases (NVMe sanitize or
// Format NVM, ATA SECURITY ERASE UNIT, SCSI SANITIZE or FORMAT UNIT, a reset
// of every zone of a zoned drive, or an overwrite), and then the markers
// must be gone and a seeded sample of the whole data area must read as the
// method promises; a method the drive does not support, or whose result
// fails the check, gives way to the next (Methods: strongest first). The
// label area (target.LabelArea) keeps its bytes: overwrites skip it, and a
// device command that erases the whole drive has it saved and written back.
// The daemon updates the label after the verdict (UpdateLabel).
package erase

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/osd/zone"
)

// BlockSize is the unit of markers and verification.
const BlockSize = 4096

// ErrUnsupported is wrapped when a method cannot erase a device.
var ErrUnsupported = errors.New("erase: method not supported by the device")

// Span is a byte range of the data area inside one zone.
type Span struct {
	Zone   int   `json:"zone"`
	Offset int64 `json:"offset"`
	Len    int64 `json:"len"`
	Seq    bool  `json:"seq,omitempty"` // a sequential zone of a zoned device
}

// Expect is what an erased data area reads as.
type Expect struct {
	// Pattern, when set, is one BlockSize block every erased block equals.
	Pattern []byte
	// ZonesEmpty: every sequential zone of the data area is empty (write
	// pointer at its start); nothing past a write pointer is readable.
	ZonesEmpty bool
	// Neither: the contents are indeterminate (a crypto erase); only the
	// markers must be gone.
}

// Method is one way to erase. Overwrite and ZoneReset run on any Linux host;
// device commands (NVMe format/sanitize, ATA SECURITY ERASE UNIT, SCSI
// SANITIZE) implement the same interface around their ioctls.
type Method interface {
	// Name is the method's name in reports and the label history.
	Name() string
	// Supports returns nil when the method can erase dev, else an error
	// wrapping ErrUnsupported that says why.
	Supports(ctx context.Context, dev zone.Device) error
	// Erase erases every span of dev, calling progress with bytes done.
	// Device I/O happens in the calling goroutine.
	Erase(ctx context.Context, dev zone.Device, spans []Span, progress func(done int64)) error
	// Expect says what the erased spans read as.
	Expect() Expect
}

// Overwrite writes Pattern (repeated; nil means zeros) over every span,
// zone by zone from the write pointer (after a reset) on zoned devices.
type Overwrite struct {
	Pattern   []byte
	ChunkSize int // bytes per write; 0 means 1 MiB
}

// Name implements Method.
func (o Overwrite) Name() string {
	if len(o.Pattern) == 0 {
		return "overwrite-zeros"
	}
	return "overwrite-pattern"
}

// Supports implements Method: every writable device, with a pattern whose
// length divides BlockSize.
func (o Overwrite) Supports(context.Context, zone.Device) error {
	if n := len(o.Pattern); n > 0 && (n > BlockSize || BlockSize%n != 0) {
		return fmt.Errorf("erase: pattern of %d bytes must divide %d", n, BlockSize)
	}
	if o.ChunkSize < 0 || o.ChunkSize%BlockSize != 0 || o.ChunkSize > 64<<20 {
		return fmt.Errorf("erase: chunk size %d not a multiple of %d up to 64 MiB", o.ChunkSize, BlockSize)
	}
	return nil
}

// Expect implements Method.
func (o Overwrite) Expect() Expect {
	b := make([]byte, BlockSize)
	if len(o.Pattern) > 0 {
		for i := 0; i < BlockSize; i += len(o.Pattern) {
			copy(b[i:], o.Pattern)
		}
	}
	return Expect{Pattern: b}
}

// Erase implements Method.
func (o Overwrite) Erase(ctx context.Context, dev zone.Device, spans []Span, progress func(int64)) error {
	chunk := o.ChunkSize
	if chunk == 0 {
		chunk = 1 << 20
	}
	buf := zone.AlignedBlock(chunk)
	blk := o.Expect().Pattern
	for i := 0; i < chunk; i += BlockSize {
		copy(buf[i:], blk)
	}
	path := dev.Info().Path
	var done int64
	for _, s := range spans {
		if s.Seq {
			if err := dev.Reset(ctx, s.Zone); err != nil {
				return fmt.Errorf("erase: %s: reset zone %d: %w", path, s.Zone, err)
			}
		}
		for off := s.Offset; off < s.Offset+s.Len; {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("erase: %s: overwrite at offset %d: %w", path, off, err)
			}
			n := min(int64(chunk), s.Offset+s.Len-off)
			if _, err := dev.WriteAt(buf[:n], off); err != nil {
				return fmt.Errorf("erase: %s: write %d bytes at offset %d: %w", path, n, off, err)
			}
			off += n
			done += n
			progress(done)
		}
	}
	return nil
}

// ZoneReset resets every sequential zone of the data area of a zoned device.
type ZoneReset struct{}

// Name implements Method.
func (ZoneReset) Name() string { return "zone-reset" }

// Supports implements Method: zoned devices only (an emulated zone's reset
// clears one block, which erases nothing).
func (ZoneReset) Supports(_ context.Context, dev zone.Device) error {
	if k := dev.Info().Kind; k != zone.KindZoned {
		return fmt.Errorf("erase: %s: zone reset on a %s device: %w", dev.Info().Path, k, ErrUnsupported)
	}
	return nil
}

// Expect implements Method.
func (ZoneReset) Expect() Expect { return Expect{ZonesEmpty: true} }

// Erase implements Method.
func (ZoneReset) Erase(ctx context.Context, dev zone.Device, spans []Span, progress func(int64)) error {
	var done int64
	for _, s := range spans {
		if !s.Seq {
			return fmt.Errorf("erase: %s: zone %d is conventional: zone reset cannot erase it: %w", dev.Info().Path, s.Zone, ErrUnsupported)
		}
		if err := dev.Reset(ctx, s.Zone); err != nil {
			return fmt.Errorf("erase: %s: reset zone %d: %w", dev.Info().Path, s.Zone, err)
		}
		done += s.Len
		progress(done)
	}
	return nil
}

// Config configures one erase. Method is required; other zero values are
// the documented defaults.
type Config struct {
	Method Method
	// Fallback methods are tried in order when the one before is not
	// supported (its Supports or the device says ErrUnsupported) or its
	// verification finds markers or data left: Methods(info) gives the
	// strongest-first list for a device. Every try is in Report.Attempts.
	Fallback []Method
	// Markers is how many marker blocks are written before erasing (64).
	Markers int
	// VerifyShare is the share of the data area read back after erasing,
	// in 1 MiB samples chosen by Seed, plus its first and last MiB (0.02).
	VerifyShare float64
	Seed        uint64
	// Progress is called as bytes are erased and verified.
	Progress func(Progress)
	// AfterErase runs between the erase and the verification (a seam for
	// tests and fault injection).
	AfterErase func(ctx context.Context) error
	Now        func() time.Time
	Logger     *slog.Logger
}

// Progress is a snapshot of a running erase.
type Progress struct {
	Path  string        `json:"path"`
	Step  string        `json:"step"` // markers, erase, verify
	Done  int64         `json:"done"`
	Total int64         `json:"total"`
	ETA   time.Duration `json:"eta"`
}

// Report is the result of one erase.
type Report struct {
	Path          string    `json:"path"`
	Serial        string    `json:"serial,omitempty"`
	Method        string    `json:"method"`
	Pass          bool      `json:"pass"`
	Reasons       []string  `json:"reasons,omitempty"`
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished"`
	BytesErased   int64     `json:"bytes_erased"`
	EraseBps      float64   `json:"erase_bps"`
	BytesVerified int64     `json:"bytes_verified"`
	Markers       int       `json:"markers"`
	MarkersFound  int       `json:"markers_found"`
	// Attempts lists every method tried, in order, the last being the
	// one this report is about.
	Attempts []Attempt `json:"attempts,omitempty"`

	refused bool // the device refused the erase as not supported
}

// Attempt is one method tried by Run.
type Attempt struct {
	Method  string `json:"method"`
	Outcome string `json:"outcome"` // unsupported, failed, pass
	Detail  string `json:"detail,omitempty"`
}

// Outcomes of an Attempt.
const (
	OutcomeUnsupported = "unsupported"
	OutcomeFailed      = "failed"
	OutcomePass        = "pass"
)

func (r *Report) fail(format string, a ...any) {
	if len(r.Reasons) < 64 {
		r.Reasons = append(r.Reasons, fmt.Sprintf(format, a...))
	}
	r.Pass = false
}

// DataSpans returns the data area of dev: every zone minus the label area.
func DataSpans(ctx context.Context, dev zone.Device) ([]Span, error) {
	info := dev.Info()
	skip := target.LabelArea(info)
	zs, err := dev.ReportZones(ctx, 0, info.NumZones)
	if err != nil {
		return nil, fmt.Errorf("erase: %s: report zones: %w", info.Path, err)
	}
	var out []Span
	for _, z := range zs {
		end := z.Start + z.Len
		if info.Kind == zone.KindZoned {
			end = z.Start + z.Capacity
		}
		start := max(z.Start, skip)
		if end-start < BlockSize {
			continue
		}
		out = append(out, Span{Zone: z.Index, Offset: start, Len: (end - start) / BlockSize * BlockSize,
			Seq: info.Kind == zone.KindZoned && z.Type != zone.TypeConventional})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("erase: %s: no data area past the label (%d bytes)", info.Path, skip)
	}
	return out, nil
}

// markerBlock is the marker written at off in run seed.
func markerBlock(b []byte, off int64, seed uint64) {
	copy(b, "STOWMARK")
	binary.LittleEndian.PutUint64(b[8:], uint64(off))
	binary.LittleEndian.PutUint64(b[16:], seed)
	for i := 24; i < BlockSize; i++ {
		b[i] = byte(i*7) ^ byte(seed)
	}
}

// Choose returns the method named name and its fallbacks for a device:
// "" or "auto" is Methods(info) (strongest first, each falling back to the
// next); any other name is that one method of Methods(info) alone, or
// "overwrite-zeros" / "zone-reset" on any device.
func Choose(info zone.Info, name string) (Method, []Method, error) {
	ms := Methods(info)
	if name == "" || name == "auto" {
		return ms[0], ms[1:], nil
	}
	for _, m := range append(ms, Overwrite{}, ZoneReset{}) {
		if m.Name() == name {
			return m, nil, nil
		}
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.Name())
	}
	return nil, nil, fmt.Errorf("erase: %s: no method %q (auto, %s, zone-reset)", info.Path, name, strings.Join(names, ", "))
}

// isMarker reports whether b is a marker block of run seed (at any offset).
func isMarker(b []byte, seed uint64) bool {
	return string(b[:8]) == "STOWMARK" && binary.LittleEndian.Uint64(b[16:]) == seed
}

// Run erases dev (of drive d) with cfg.Method, or the first of
// cfg.Method and cfg.Fallback the device supports, and verifies the result;
// a method whose verification fails (markers or data left) gives way to the
// next too. The caller has passed target.Check (target.Open does) and moved
// the drive to lifecycle.Erasing. A failed verification or a device error is
// a failing report; the error is for a run that could not reach a verdict
// (bad config, no supported method, cancelled).
func Run(ctx context.Context, dev zone.Device, d target.Drive, cfg Config) (*Report, error) {
	if cfg.Method == nil {
		return nil, errors.New("erase: no method")
	}
	if cfg.Markers == 0 {
		cfg.Markers = 64
	}
	if cfg.VerifyShare == 0 {
		cfg.VerifyShare = 0.02
	}
	if cfg.Markers < 0 || !(cfg.VerifyShare > 0 && cfg.VerifyShare <= 1) {
		return nil, fmt.Errorf("erase: markers %d, verify share %v: want ≥ 0 and (0, 1]", cfg.Markers, cfg.VerifyShare)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	methods := append([]Method{cfg.Method}, cfg.Fallback...)
	var attempts []Attempt
	for i, m := range methods {
		last := i == len(methods)-1
		if err := m.Supports(ctx, dev); err != nil {
			if !errors.Is(err, ErrUnsupported) || last {
				return nil, err
			}
			cfg.Logger.Info("erase method not supported", "path", dev.Info().Path, "method", m.Name(), "err", err)
			attempts = append(attempts, Attempt{Method: m.Name(), Outcome: OutcomeUnsupported, Detail: err.Error()})
			continue
		}
		rep, fallback, err := runMethod(ctx, dev, d, m, cfg)
		if err != nil || rep.Pass || last || !fallback {
			if rep != nil {
				out := Attempt{Method: m.Name(), Outcome: OutcomePass}
				if !rep.Pass {
					out.Outcome = OutcomeFailed
					if len(rep.Reasons) > 0 {
						out.Detail = rep.Reasons[0]
					}
				}
				rep.Attempts = append(attempts, out)
			}
			return rep, err
		}
		out := Attempt{Method: m.Name(), Outcome: OutcomeFailed, Detail: strings.Join(rep.Reasons[:min(len(rep.Reasons), 3)], "; ")}
		if rep.refused {
			out.Outcome = OutcomeUnsupported
		}
		cfg.Logger.Info("erase method gave way to the next", "path", dev.Info().Path, "method", m.Name(), "outcome", out.Outcome, "detail", out.Detail)
		attempts = append(attempts, out)
	}
	return nil, errors.New("erase: no method left") // not reached: the last method always returns
}

// runMethod runs one method: markers, erase, verify. fallback reports a
// failure the next method may cure: the device refused the erase as not
// supported, or the verification found markers or data left (with the
// label area intact).
func runMethod(ctx context.Context, dev zone.Device, d target.Drive, m Method, cfg Config) (rep *Report, fallback bool, err error) {
	info := dev.Info()
	spans, err := DataSpans(ctx, dev)
	if err != nil {
		return nil, false, err
	}
	size := area(spans)
	rep = &Report{Path: info.Path, Serial: d.Serial, Method: m.Name(), Pass: true, Started: cfg.Now()}
	rng := newRNG(cfg.Seed)
	t0 := cfg.Now()
	total := size + int64(float64(size)*cfg.VerifyShare)
	progress := func(step string, done int64) {
		if cfg.Progress == nil {
			return
		}
		p := Progress{Path: info.Path, Step: step, Done: done, Total: total}
		if el := cfg.Now().Sub(t0); done > 0 {
			p.ETA = time.Duration(float64(el) / float64(done) * float64(max(total-done, 0)))
		}
		cfg.Progress(p)
	}

	// 1. Markers.
	markers, err := writeMarkers(ctx, dev, spans, cfg.Markers, cfg.Seed, rng)
	if err != nil {
		rep.fail("%v", err)
		rep.Finished = cfg.Now()
		return rep, false, nil
	}
	rep.Markers = len(markers)

	// 2. Erase (a device command erases the label area too: it is saved
	// first and written back after, whatever the command's outcome).
	var saved []byte
	if _, whole := m.(wholeDeviceMethod); whole {
		if saved, err = saveLabelArea(dev); err != nil {
			rep.fail("%v", err)
			rep.Finished = cfg.Now()
			return rep, false, nil
		}
	}
	te := cfg.Now()
	err = m.Erase(ctx, dev, spans, func(n int64) { rep.BytesErased = n; progress("erase", n) })
	if saved != nil {
		if rerr := restoreLabelArea(context.WithoutCancel(ctx), dev, saved); rerr != nil {
			rep.fail("%v", rerr)
			rep.Finished = cfg.Now()
			return rep, false, errors.Join(err, rerr) // the label is at stake: no fallback
		}
	}
	if err == nil {
		err = dev.Flush(ctx)
	}
	if ctx.Err() != nil {
		return rep, false, fmt.Errorf("erase: %s: %w", info.Path, ctx.Err())
	}
	if err != nil {
		rep.fail("%v", err)
		rep.Finished = cfg.Now()
		rep.refused = errors.Is(err, ErrUnsupported)
		return rep, rep.refused, nil
	}
	if el := cfg.Now().Sub(te); el > 0 {
		rep.EraseBps = float64(rep.BytesErased) / el.Seconds()
	}
	if cfg.AfterErase != nil {
		if err := cfg.AfterErase(ctx); err != nil {
			return rep, false, fmt.Errorf("erase: %s: after erase: %w", info.Path, err)
		}
	}

	// 3. Verify.
	if err := verify(ctx, dev, spans, markers, m.Expect(), cfg, rep, rng, func(n int64) { progress("verify", size+n) }); err != nil {
		return rep, false, err
	}
	rep.Finished = cfg.Now()
	cfg.Logger.Info("erase done", "path", info.Path, "serial", d.Serial, "method", rep.Method, "pass", rep.Pass,
		"erased", rep.BytesErased, "verified", rep.BytesVerified, "markers", rep.Markers, "markers_found", rep.MarkersFound)
	return rep, !rep.Pass, nil
}

// saveLabelArea reads the label area of a conventional device.
func saveLabelArea(dev zone.Device) ([]byte, error) {
	info := dev.Info()
	if info.Kind == zone.KindZoned {
		return nil, fmt.Errorf("erase: %s: a whole-device erase of a zoned device would lose its label zones", info.Path)
	}
	b := zone.AlignedBlock(int(target.LabelArea(info)))
	if _, err := dev.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("erase: %s: save the label area: %w", info.Path, err)
	}
	return b, nil
}

// restoreLabelArea writes the saved label area back, flushes it and drops
// the kernel's cached pages of the device, which predate the erase.
func restoreLabelArea(ctx context.Context, dev zone.Device, b []byte) error {
	info := dev.Info()
	if _, err := dev.WriteAt(b, 0); err != nil {
		return fmt.Errorf("erase: %s: label area not restored after the erase: %w", info.Path, err)
	}
	if err := dev.Flush(ctx); err != nil {
		return fmt.Errorf("erase: %s: label area not flushed after the erase: %w", info.Path, err)
	}
	f, err := os.Open(info.Path)
	if err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0); err != nil {
		return fmt.Errorf("erase: %s: %w", info.Path, os.NewSyscallError("ioctl(BLKFLSBUF)", err))
	}
	return nil
}

// writeMarkers writes n marker blocks at seeded offsets of the data area
// (at the write pointer of sampled sequential zones on a zoned device).
func writeMarkers(ctx context.Context, dev zone.Device, spans []Span, n int, seed uint64, rng *rand.Rand) ([]int64, error) {
	info := dev.Info()
	b := zone.AlignedBlock(BlockSize)
	var out []int64
	seen := map[int64]bool{}
	for range n {
		s := spans[rng.IntN(len(spans))]
		off := s.Offset + rng.Int64N(s.Len/BlockSize)*BlockSize
		if s.Seq {
			zs, err := dev.ReportZones(ctx, s.Zone, 1)
			if err != nil {
				return nil, fmt.Errorf("erase: %s: report zone %d: %w", info.Path, s.Zone, err)
			}
			if zs[0].WP >= s.Offset+s.Len || zs[0].Cond == zone.CondFull {
				continue
			}
			off = zs[0].WP
		}
		if seen[off] {
			continue
		}
		seen[off] = true
		markerBlock(b, off, seed)
		if _, err := dev.WriteAt(b, off); err != nil {
			return nil, fmt.Errorf("erase: %s: marker at offset %d: %w", info.Path, off, err)
		}
		out = append(out, off)
	}
	if err := dev.Flush(ctx); err != nil {
		return nil, fmt.Errorf("erase: %s: flush markers: %w", info.Path, err)
	}
	return out, nil
}

func verify(ctx context.Context, dev zone.Device, spans []Span, markers []int64, exp Expect, cfg Config, rep *Report, rng *rand.Rand, progress func(int64)) error {
	info := dev.Info()
	wp := map[int]int64{} // readable end of each sequential zone
	if exp.ZonesEmpty || info.Kind == zone.KindZoned {
		zs, err := dev.ReportZones(ctx, 0, info.NumZones)
		if err != nil {
			rep.fail("%s: report zones after erase: %v", info.Path, err)
			return nil
		}
		for _, s := range spans {
			if !s.Seq {
				continue
			}
			z := zs[s.Zone]
			wp[s.Zone] = z.WP
			if z.Cond == zone.CondFull {
				wp[s.Zone] = z.Start + z.Capacity
			}
			if exp.ZonesEmpty && (z.Cond != zone.CondEmpty || z.WP != z.Start) {
				rep.fail("%s: zone %d not empty after erase: %s, write pointer at %d", info.Path, s.Zone, z.Cond, z.WP)
			}
		}
	}
	readable := func(off int64) bool {
		s := spanOf(spans, off)
		return s != nil && (!s.Seq || off+BlockSize <= wp[s.Zone])
	}
	b := zone.AlignedBlock(1 << 20)
	mk := zone.AlignedBlock(BlockSize)
	for _, off := range markers {
		if !readable(off) {
			continue // past the write pointer: gone
		}
		if _, err := dev.ReadAt(b[:BlockSize], off); err != nil {
			rep.fail("%s: read marker at offset %d: %v", info.Path, off, err)
			continue
		}
		markerBlock(mk, off, cfg.Seed)
		if bytes.Equal(b[:BlockSize], mk) {
			rep.MarkersFound++
			rep.fail("%s: marker at offset %d survived the erase", info.Path, off)
		} else if exp.Pattern != nil && !bytes.Equal(b[:BlockSize], exp.Pattern) {
			rep.fail("%s: block at offset %d (a marker's place) is not the erase pattern", info.Path, off)
		}
	}
	if exp.ZonesEmpty {
		return nil // nothing past the write pointers is readable
	}
	// Sampled read: the first and last MiB of the data area, then
	// seeded 1 MiB samples until VerifyShare of it is read. With a
	// pattern every block must equal it; with indeterminate content (a
	// crypto or block erase) every block must read and none may be a
	// marker of this run.
	var area int64
	for _, s := range spans {
		area += s.Len
	}
	want := int64(float64(area) * cfg.VerifyShare)
	first, last := spans[0], spans[len(spans)-1]
	offs := []int64{first.Offset, last.Offset + max(last.Len-(1<<20), 0)}
	for n := int64(2 << 20); n < want; n += 1 << 20 {
		s := spans[rng.IntN(len(spans))]
		offs = append(offs, s.Offset+rng.Int64N(max(s.Len/(1<<20), 1))*(1<<20))
	}
	for _, off := range offs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("erase: %s: verify at offset %d: %w", info.Path, off, err)
		}
		s := spanOf(spans, off)
		end := min(off+1<<20, s.Offset+s.Len)
		if s.Seq {
			end = min(end, wp[s.Zone])
		}
		if end <= off {
			continue
		}
		p := b[:end-off]
		if _, err := dev.ReadAt(p, off); err != nil {
			rep.fail("%s: verify read of %d bytes at offset %d: %v", info.Path, len(p), off, err)
			continue
		}
		for k := 0; k < len(p); k += BlockSize {
			blk := p[k : k+BlockSize]
			switch {
			case exp.Pattern != nil && !bytes.Equal(blk, exp.Pattern):
				rep.fail("%s: block at offset %d does not read as the erase pattern", info.Path, off+int64(k))
			case exp.Pattern == nil && isMarker(blk, cfg.Seed):
				rep.fail("%s: block at offset %d is a marker after the erase", info.Path, off+int64(k))
			}
		}
		rep.BytesVerified += int64(len(p))
		progress(rep.BytesVerified)
	}
	return nil
}

// newRNG is the seeded source that picks marker and sample places.
func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0xe2a5e)) }

func spanOf(spans []Span, off int64) *Span {
	for i := range spans {
		if off >= spans[i].Offset && off < spans[i].Offset+spans[i].Len {
			return &spans[i]
		}
	}
	return nil
}

// UpdateLabel records a finished erase in the drive's label: on a pass the
// owner and its payload are cleared (the data they described is gone) and
// any Task; in every case an erase entry with the result is appended. The
// daemon then applies the erase-done or retire transition.
func UpdateLabel(ctx context.Context, a *label.Area, rep *Report) (label.Record, error) {
	return a.Update(ctx, func(r *label.Record) error {
		res, detail := label.ResultFail, rep.Method
		if rep.Pass {
			res = label.ResultPass
			r.Owner, r.Payload = "", nil
		} else if len(rep.Reasons) > 0 {
			detail += ": " + rep.Reasons[0]
		}
		r.Task = label.Task{}
		if len(detail) > label.MaxDetailLen {
			detail = detail[:label.MaxDetailLen]
		}
		r.AddEntry(label.Entry{Time: rep.Finished, Kind: label.KindErase, Result: res, Actor: "erase", Detail: detail})
		return nil
	})
}
