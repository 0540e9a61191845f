package zone

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
)

// ErrInjected marks every error a Faulty device makes up.
var ErrInjected = errors.New("zone: injected fault")

// Op is a set of device operations, for choosing where Faulty injects.
type Op uint

// The operations. OpOpen and OpClose are OpenZone and CloseZone.
const (
	OpRead Op = 1 << iota
	OpWrite
	OpFlush
	OpReset
	OpFinish
	OpReport
	OpOpen
	OpClose

	OpAll = OpRead | OpWrite | OpFlush | OpReset | OpFinish | OpReport | OpOpen | OpClose
)

func (o Op) String() string {
	var s []string
	for i, n := range []string{"read", "write", "flush", "reset", "finish", "report", "open", "close"} {
		if o&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "|")
}

// Rule says which operations of a Faulty device fail, or (with Corrupt)
// which reads return flipped bits. A rule matches an operation when the
// operation is in Ops and touches the byte range [From, To) (zone
// operations touch their whole zones; Flush touches no range and matches
// only a rule with no range). Of the matching operations, the first After
// pass; then each fails with probability Prob (1 when Prob is 0), drawn
// from the device's seeded generator, until Count have failed (no end
// when Count is 0). Rules are checked in order; the first that fires wins.
type Rule struct {
	Ops      Op      // operations to match; 0 means OpAll
	From, To int64   // byte range; To 0 means the device's end
	After    int64   // matching operations that pass before the first fault
	Count    int64   // most faults this rule injects; 0: no limit
	Prob     float64 // chance that a matching operation after After fails; 0: always
	// Corrupt makes a matching read succeed with one bit flipped in each
	// BlockSize block of the data it returns that lies in [From, To),
	// instead of failing. Ops must be OpRead.
	Corrupt bool
	// Partial makes a matching write reach the device for a random number
	// of whole blocks (0 ≤ k < its length in blocks) before failing, as a
	// drive that dies mid-write; WriteAt returns the bytes written. Ops
	// must be OpWrite.
	Partial bool
	// Err is wrapped instead of syscall.EIO (e.g. syscall.ENOSPC).
	Err error
}

type ruleState struct {
	Rule
	seen, hits int64
}

// Faulty wraps a Device and injects errors and read corruption by rule,
// the way Pebble's vfs/errorfs does for files. Errors it makes up wrap
// ErrInjected and syscall.EIO (or the rule's Err) and say the operation,
// offset or zone and device; a failed operation never reaches the wrapped
// device. To cut the power at a random point of a workload on a Mem,
// either arm Mem.CutPowerAfter or add Rule{After: n} (every operation
// after the n-th fails), then crash the Mem.
type Faulty struct {
	d    Device
	info Info

	mu       sync.Mutex
	rng      *rand.Rand
	rules    []*ruleState
	ops      int64
	injected int64
}

var _ Device = (*Faulty)(nil)

// NewFaulty wraps d. seed drives every random choice, so a run replays
// exactly.
func NewFaulty(d Device, seed uint64, rules ...Rule) (*Faulty, error) {
	f := &Faulty{d: d, info: d.Info(), rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	if err := f.Inject(rules...); err != nil {
		return nil, err
	}
	return f, nil
}

// Inject adds rules after the existing ones.
func (f *Faulty) Inject(rules ...Rule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rules {
		if r.Ops == 0 {
			r.Ops = OpAll
		}
		switch {
		case r.Ops&^OpAll != 0:
			return fmt.Errorf("zone: fault rule: unknown operations %#x", uint(r.Ops))
		case r.Corrupt && r.Ops != OpRead:
			return fmt.Errorf("zone: fault rule: Corrupt applies to reads only, not %v", r.Ops)
		case r.Partial && r.Ops != OpWrite:
			return fmt.Errorf("zone: fault rule: Partial applies to writes only, not %v", r.Ops)
		case r.From < 0 || r.To < 0 || (r.To != 0 && r.To <= r.From):
			return fmt.Errorf("zone: fault rule: bad range [%d, %d)", r.From, r.To)
		case r.Prob < 0 || r.Prob > 1 || r.After < 0 || r.Count < 0:
			return fmt.Errorf("zone: fault rule: bad counts or probability in %+v", r)
		}
		f.rules = append(f.rules, &ruleState{Rule: r})
	}
	return nil
}

// Clear removes every rule: the device works again.
func (f *Faulty) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// Ops returns how many operations the device has seen.
func (f *Faulty) Ops() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops
}

// Injected returns how many faults (errors and corrupted reads) it has
// injected.
func (f *Faulty) Injected() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected
}

// Unwrap returns the wrapped device.
func (f *Faulty) Unwrap() Device { return f.d }

// fire finds the rule that fires for op on bytes [off, end); ranged is
// false for Flush. f.mu is held.
func (f *Faulty) fire(op Op, off, end int64, ranged bool) *ruleState {
	f.ops++
	for _, r := range f.rules {
		if r.Ops&op == 0 {
			continue
		}
		to := r.To
		if to == 0 {
			to = f.info.Size
		}
		if ranged && (end <= r.From || off >= to) {
			continue
		}
		if !ranged && (r.From != 0 || r.To != 0) {
			continue
		}
		r.seen++
		if r.seen <= r.After || (r.Count > 0 && r.hits >= r.Count) {
			continue
		}
		if r.Prob > 0 && f.rng.Float64() >= r.Prob {
			continue
		}
		r.hits++
		f.injected++
		return r
	}
	return nil
}

func (r *ruleState) err(where string, path string) error {
	e := r.Err
	if e == nil {
		e = syscall.EIO
	}
	return fmt.Errorf("zone: %s on %s: %w (%w)", where, path, ErrInjected, e)
}

// zoneOp checks the rules for an operation on zone i.
func (f *Faulty) zoneOp(op Op, i int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	start := f.info.ZoneStart(i)
	if r := f.fire(op, start, start+f.info.ZoneSize, true); r != nil {
		return r.err(fmt.Sprintf("%v zone %d", op, i), f.info.Path)
	}
	return nil
}

// Info implements Device.
func (f *Faulty) Info() Info { return f.info }

// ReportZones implements Device.
func (f *Faulty) ReportZones(ctx context.Context, first, n int) ([]Zone, error) {
	f.mu.Lock()
	r := f.fire(OpReport, f.info.ZoneStart(first), f.info.ZoneStart(first+n), true)
	f.mu.Unlock()
	if r != nil {
		return nil, r.err(fmt.Sprintf("report zones [%d, %d)", first, first+n), f.info.Path)
	}
	return f.d.ReportZones(ctx, first, n)
}

// ReadAt implements Device.
func (f *Faulty) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	r := f.fire(OpRead, off, off+int64(len(p)), true)
	f.mu.Unlock()
	if r != nil && !r.Corrupt {
		return 0, r.err(fmt.Sprintf("read of %d bytes at offset %d", len(p), off), f.info.Path)
	}
	n, err := f.d.ReadAt(p, off)
	if r == nil || err != nil {
		return n, err
	}
	to := r.To
	if to == 0 {
		to = f.info.Size
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	bs := f.info.BlockSize
	for b := off - off%bs; b < off+int64(n); b += bs {
		lo, hi := max(b, off, r.From), min(b+bs, off+int64(n), to)
		if lo >= hi {
			continue
		}
		i := lo + f.rng.Int64N(hi-lo) - off
		p[i] ^= 1 << f.rng.IntN(8)
	}
	return n, nil
}

// WriteAt implements Device.
func (f *Faulty) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	r := f.fire(OpWrite, off, off+int64(len(p)), true)
	var keep int64
	if r != nil && r.Partial && int64(len(p)) >= f.info.BlockSize {
		keep = f.rng.Int64N(int64(len(p))/f.info.BlockSize) * f.info.BlockSize
	}
	f.mu.Unlock()
	if r == nil {
		return f.d.WriteAt(p, off)
	}
	n := 0
	if keep > 0 {
		var err error
		if n, err = f.d.WriteAt(p[:keep], off); err != nil {
			return n, err
		}
	}
	return n, r.err(fmt.Sprintf("write of %d bytes at offset %d (zone %d), %d written", len(p), off, f.info.ZoneOf(off), n), f.info.Path)
}

// Flush implements Device.
func (f *Faulty) Flush(ctx context.Context) error {
	f.mu.Lock()
	r := f.fire(OpFlush, 0, 0, false)
	f.mu.Unlock()
	if r != nil {
		return r.err("flush", f.info.Path)
	}
	return f.d.Flush(ctx)
}

// Reset implements Device.
func (f *Faulty) Reset(ctx context.Context, i int) error {
	if err := f.zoneOp(OpReset, i); err != nil {
		return err
	}
	return f.d.Reset(ctx, i)
}

// Finish implements Device.
func (f *Faulty) Finish(ctx context.Context, i int) error {
	if err := f.zoneOp(OpFinish, i); err != nil {
		return err
	}
	return f.d.Finish(ctx, i)
}

// zoneOpener is what a device offers for explicit zone opens and closes
// (Mem, Zoned).
type zoneOpener interface {
	OpenZone(ctx context.Context, i int) error
	CloseZone(ctx context.Context, i int) error
}

// OpenZone opens zone i explicitly on the wrapped device, or does nothing
// beyond checking i when that device has no explicit open (emulated
// zones).
func (f *Faulty) OpenZone(ctx context.Context, i int) error {
	if err := f.zoneOp(OpOpen, i); err != nil {
		return err
	}
	if o, ok := f.d.(zoneOpener); ok {
		return o.OpenZone(ctx, i)
	}
	return CheckZone(f.info, i)
}

// CloseZone closes zone i on the wrapped device, like OpenZone.
func (f *Faulty) CloseZone(ctx context.Context, i int) error {
	if err := f.zoneOp(OpClose, i); err != nil {
		return err
	}
	if o, ok := f.d.(zoneOpener); ok {
		return o.CloseZone(ctx, i)
	}
	return CheckZone(f.info, i)
}

// Close implements Device; it always closes the wrapped device.
func (f *Faulty) Close() error { return f.d.Close() }
