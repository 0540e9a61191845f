package erase

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/lifecycle"
)

// Job is one drive of an erase batch.
type Job struct {
	Drive    target.Drive
	Config   Config
	ZoneSize int64 // emulated zone size on conventional drives; 0: zone.DefaultZoneSize
}

// Batch erases many drives at once, each behind the guard rails.
type Batch struct {
	Skip          target.SkipList
	Serials       map[string]string // serial named by the request, by drive path
	PerController int               // concurrent jobs per Drive.Key() (default 1)
}

// Result is one drive's outcome: a report, or why it was not erased.
type Result struct {
	Drive  target.Drive
	Report *Report
	Err    error
}

// Run erases every job in parallel, bounded per controller.
func (b Batch) Run(ctx context.Context, jobs []Job) []Result {
	lim := &target.Limiter{PerKey: b.PerController}
	res := make([]Result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		res[i].Drive = j.Drive
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].Report, res[i].Err = b.one(ctx, lim, j)
		}()
	}
	wg.Wait()
	return res
}

func (b Batch) one(ctx context.Context, lim *target.Limiter, j Job) (rep *Report, err error) {
	release, err := lim.Acquire(ctx, j.Drive.Key())
	if err != nil {
		return nil, err
	}
	defer release()
	dev, _, err := target.Open(ctx, j.Drive, b.Skip, target.Request{Action: lifecycle.ActErase, Serial: b.Serials[j.Drive.Path]}, j.ZoneSize)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := dev.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("erase: %s: close: %w", j.Drive.Path, cerr))
		}
	}()
	return Run(ctx, dev, j.Drive, j.Config)
}
