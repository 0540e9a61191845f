package burnin

import (
	"context"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
)

// DefaultSiblingPct is the default sibling rule: a drive whose write or read
// throughput is below 80% of the median of its model's drives fails.
const DefaultSiblingPct = 80

// SiblingRule compares drives of one model burned in alongside each other.
// The zero value is the default rule.
type SiblingRule struct {
	// Pct: a drive below Pct percent of its group's median write or read
	// throughput fails (default DefaultSiblingPct).
	Pct float64
	// MinGroup is the fewest drives of a model compared (default 3: with
	// two drives the median says nothing about which one is slow).
	MinGroup int
}

// Compare applies the sibling rule to reports of one burn-in batch: reports
// are grouped by Model, and in every group of at least MinGroup completed
// reports (those with bytes read), a drive whose WriteBps or ReadBps is below
// Pct% of the group's median fails with RuleSiblingSlow. It changes the
// reports in place and returns the ones it failed.
func Compare(reports []*Report, rule SiblingRule) []*Report {
	if rule.Pct == 0 {
		rule.Pct = DefaultSiblingPct
	}
	if rule.MinGroup == 0 {
		rule.MinGroup = 3
	}
	groups := map[string][]*Report{}
	var order []string
	for _, r := range reports {
		if r == nil || r.BytesRead == 0 || r.BytesWritten == 0 {
			continue
		}
		if _, ok := groups[r.Model]; !ok {
			order = append(order, r.Model)
		}
		groups[r.Model] = append(groups[r.Model], r)
	}
	var failed []*Report
	for _, m := range order {
		g := groups[m]
		if len(g) < rule.MinGroup {
			continue
		}
		var ws, rs []float64
		for _, r := range g {
			ws, rs = append(ws, r.WriteBps), append(rs, r.ReadBps)
		}
		mw, mr := median(ws), median(rs)
		for _, r := range g {
			slow := false
			if r.WriteBps < mw*rule.Pct/100 {
				r.fail(RuleSiblingSlow, "%s: writes at %.1f MB/s, below %.0f%% of the median %.1f MB/s of %d %q drives",
					r.Path, r.WriteBps/1e6, rule.Pct, mw/1e6, len(g), m)
				slow = true
			}
			if r.ReadBps < mr*rule.Pct/100 {
				r.fail(RuleSiblingSlow, "%s: reads at %.1f MB/s, below %.0f%% of the median %.1f MB/s of %d %q drives",
					r.Path, r.ReadBps/1e6, rule.Pct, mr/1e6, len(g), m)
				slow = true
			}
			if slow {
				failed = append(failed, r)
			}
		}
	}
	return failed
}

// Job is one drive of a batch.
type Job struct {
	Drive  target.Drive
	Config Config
	// ZoneSize is the emulated zone size on conventional drives (regions
	// are zones); 0 means zone.DefaultZoneSize.
	ZoneSize int64
}

// Batch burns in many drives at once.
type Batch struct {
	// Skip is the skip list checked before every drive is opened.
	Skip target.SkipList
	// Serial confirms the drives that need it, by path (a request naming
	// the serial of each drive that holds data or is re-burned).
	Serials map[string]string
	// PerController bounds the concurrent jobs per Drive.Key() (default 1).
	PerController int
	// Siblings is the rule Compare applies to the finished reports.
	Siblings SiblingRule
}

// Result is one drive's outcome in a batch: a report, or the error that
// kept the drive from being burned in (a guard-rail refusal wraps
// target.ErrSkipped, target.ErrReadOnly or a lifecycle error).
type Result struct {
	Drive  target.Drive
	Report *Report
	Err    error
}

// Run burns in every job in parallel through target.Batch (guard rails,
// open, at most PerController at a time per controller), then applies the
// sibling rule to the reports.
func (b Batch) Run(ctx context.Context, jobs []Job) []Result {
	specs := make([]target.Spec, len(jobs))
	res := make([]Result, len(jobs))
	for i, j := range jobs {
		specs[i] = target.Spec{Drive: j.Drive, ZoneSize: j.ZoneSize, Serial: b.Serials[j.Drive.Path]}
		res[i].Drive = j.Drive
	}
	errs := target.Batch{Skip: b.Skip, PerController: b.PerController}.Run(ctx, lifecycle.ActBurnIn, specs,
		func(ctx context.Context, i int, dev zone.Device) (err error) {
			res[i].Report, err = Run(ctx, dev, jobs[i].Drive, jobs[i].Config)
			return err
		})
	var reps []*Report
	for i := range res {
		res[i].Err = errs[i]
		if res[i].Err == nil && res[i].Report != nil {
			reps = append(reps, res[i].Report)
		}
	}
	Compare(reps, b.Siblings)
	return res
}
