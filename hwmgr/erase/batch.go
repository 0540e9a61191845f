package erase

import (
	"context"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
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

// Run erases every job in parallel through target.Batch (guard rails,
// open, bounded per controller).
func (b Batch) Run(ctx context.Context, jobs []Job) []Result {
	specs := make([]target.Spec, len(jobs))
	res := make([]Result, len(jobs))
	for i, j := range jobs {
		specs[i] = target.Spec{Drive: j.Drive, ZoneSize: j.ZoneSize, Serial: b.Serials[j.Drive.Path]}
		res[i].Drive = j.Drive
	}
	errs := target.Batch{Skip: b.Skip, PerController: b.PerController}.Run(ctx, lifecycle.ActErase, specs,
		func(ctx context.Context, i int, dev zone.Device) (err error) {
			res[i].Report, err = Run(ctx, dev, jobs[i].Drive, jobs[i].Config)
			return err
		})
	for i := range res {
		res[i].Err = errs[i]
	}
	return res
}
