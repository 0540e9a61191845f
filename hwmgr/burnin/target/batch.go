package target

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
)

// Spec is one drive of a batch: the drive, the emulated zone size on a
// conventional drive (0: zone.DefaultZoneSize) and the serial the request
// names for it (it confirms a drive that holds data).
type Spec struct {
	Drive    Drive
	ZoneSize int64
	Serial   string
}

// Batch runs one destructive job per drive, every drive behind the guard
// rails, at most PerController jobs at a time per controller. Burn-in and
// erase batches (hwmgr/burnin, hwmgr/erase) and the daemon's jobs all run
// through it.
type Batch struct {
	Skip SkipList
	// PerController bounds the concurrent jobs per Drive.Key() (default 1).
	PerController int
	// Limiter, when set, is shared with other batches (the daemon's jobs
	// started by separate requests); else Run makes one of PerController.
	Limiter *Limiter
}

// One waits for a controller slot, runs the guard rails, opens the device
// and hands it to run; the device is closed when run returns. A refusal
// wraps ErrSkipped, ErrReadOnly, ErrVirtual or a lifecycle error, and run
// is not called.
func (b Batch) One(ctx context.Context, action lifecycle.Action, s Spec, run func(ctx context.Context, dev zone.Device) error) (err error) {
	lim := b.Limiter
	if lim == nil {
		lim = &Limiter{PerKey: b.PerController}
	}
	release, err := lim.Acquire(ctx, s.Drive.Key())
	if err != nil {
		return err
	}
	defer release()
	dev, _, err := Open(ctx, s.Drive, b.Skip, Request{Action: action, Serial: s.Serial}, s.ZoneSize)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dev.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("target: %s: close: %w", s.Drive.Path, cerr))
		}
	}()
	return run(ctx, dev)
}

// Run runs run on every spec in parallel through One and returns each
// drive's error (nil: run was called and returned nil).
func (b Batch) Run(ctx context.Context, action lifecycle.Action, specs []Spec, run func(ctx context.Context, i int, dev zone.Device) error) []error {
	if b.Limiter == nil {
		b.Limiter = &Limiter{PerKey: b.PerController}
	}
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.One(ctx, action, s, func(ctx context.Context, dev zone.Device) error { return run(ctx, i, dev) })
		}()
	}
	wg.Wait()
	return errs
}
