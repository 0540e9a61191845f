package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/volume"
)

// Run does the background work until ctx ends: the repair queue fed by
// reads, the paced scrub loop (a pass over every volume, then
// Options.ScrubInterval of rest, or until StartScrub), failed drives
// taken out, rebuilds of degraded volumes onto spare drives (and resumed
// ones after a restart), drains hwmgr asks for, and paced compaction.
// It returns ctx's error.
func (n *Node) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.repairLoop(ctx) })
	wg.Go(func() { _ = n.scrubLoop(ctx) })
	wg.Go(func() { _ = n.maintain(ctx) })
	wg.Go(func() { _ = n.compactLoop(ctx) })
	wg.Wait()
	return ctx.Err()
}

// StartScrub starts the next scrub pass now (if one is not running).
func (n *Node) StartScrub() {
	select {
	case n.scrubNow <- struct{}{}:
	default:
	}
}

func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// scrubLoop runs scrub passes forever.
func (n *Node) scrubLoop(ctx context.Context) error {
	if err := n.scrubWait(ctx, n.o.ScrubDelay); err != nil {
		return err
	}
	for {
		if err := n.scrubPass(ctx); err != nil {
			return err
		}
		if err := n.scrubWait(ctx, n.o.ScrubInterval); err != nil {
			return err
		}
	}
}

// scrubWait waits d (on the injected clock), or until StartScrub.
func (n *Node) scrubWait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	n.jobs.mu.Lock()
	n.jobs.scrub.NextPass = n.o.Now().Add(d)
	n.jobs.mu.Unlock()
	wait, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-n.scrubNow:
			cancel()
		case <-wait.Done():
		}
	}()
	_ = n.o.Sleep(wait, d) // an early wake-up is StartScrub
	return ctx.Err()
}

// scrubPass scrubs every volume once, at o.ScrubBytesPerSecond.
func (n *Node) scrubPass(ctx context.Context) error {
	vs, err := n.volumes()
	if err != nil {
		return err
	}
	start := n.o.Now()
	n.jobs.mu.Lock()
	n.jobs.scrub.Running = true
	n.jobs.scrub.Pass++
	n.jobs.scrub.Volumes = len(vs)
	n.jobs.scrub.NextPass = time.Time{}
	n.jobs.mu.Unlock()
	var total volume.ScrubReport
	for i, v := range vs {
		vstart := n.o.Now()
		n.jobs.mu.Lock()
		n.jobs.scrub.Volume, n.jobs.scrub.VolumeIndex = v.id.String(), i
		n.jobs.scrub.Progress = Progress{Started: vstart}
		n.jobs.mu.Unlock()
		rate := n.o.ScrubBytesPerSecond
		if rate < 0 {
			rate = 0
		}
		rep, err := v.v.Scrub(ctx, volume.ScrubOptions{BytesPerSecond: rate, Now: n.o.Now, Sleep: n.o.Sleep,
			Progress: func(p volume.Progress) {
				now := n.o.Now()
				e := eta(p, vstart, now)
				n.jobs.mu.Lock()
				n.jobs.scrub.Progress = Progress{Done: p.Done, Total: p.Total, Bytes: p.Bytes, Started: vstart, ETA: e}
				// The volumes still to come, at this one's time per volume.
				if left := len(vs) - i - 1; left > 0 && p.Done > 0 && p.Total > 0 {
					per := time.Duration(float64(now.Sub(vstart)) / float64(p.Done) * float64(p.Total))
					e += time.Duration(left) * per
				}
				n.jobs.scrub.PassETA = e
				n.jobs.mu.Unlock()
			}})
		n.stats.addScrub(rep)
		addReport(&total, rep)
		if ctx.Err() != nil {
			n.jobs.mu.Lock()
			n.jobs.scrub.Running = false
			n.jobs.mu.Unlock()
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, volume.ErrClosed) {
			n.log.Error("node: scrub of a volume failed", "volume", v.id.String(), "err", err)
		}
	}
	n.stats.mu.Lock()
	n.stats.scrubPasses++
	n.stats.mu.Unlock()
	n.jobs.mu.Lock()
	n.jobs.scrub.Running = false
	n.jobs.scrub.LastPass = total
	n.jobs.scrub.LastFinished = n.o.Now()
	n.jobs.scrub.PassETA = 0
	n.jobs.mu.Unlock()
	n.log.Info("node: scrub pass done", "volumes", len(vs), "keys", total.Keys, "damaged", total.Damaged,
		"repaired", total.Repaired, "took", n.o.Now().Sub(start))
	return nil
}

func addReport(t *volume.ScrubReport, r volume.ScrubReport) {
	t.Keys += r.Keys
	t.Bytes += r.Bytes
	t.Damaged += r.Damaged
	t.Missing += r.Missing
	t.Corrupt += r.Corrupt
	t.IOErrors += r.IOErrors
	t.Lost += r.Lost
	t.Mismatched += r.Mismatched
	t.Repaired += r.Repaired
	t.RepairFailed += r.RepairFailed
	t.Unrecoverable += r.Unrecoverable
	t.Gone += r.Gone
	t.Orphans += r.Orphans
}

// maintain starts rebuilds (and drains) whenever a drive comes or goes,
// and after each job.
func (n *Node) maintain(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(n.o.LabelCheckInterval)
	defer tick.Stop()
	for {
		n.takeOutFailed(ctx)
		n.assign(ctx, &wg)
		n.checkLabels(ctx, &wg)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.wake:
		case <-tick.C:
		}
	}
}

// checkLabels reads the labels of members and spares. A drive whose
// label says failed (hwmgr's health verdict) is taken out. A Drain
// starts for every member whose label says draining (hwmgr's request,
// or a drain a restart cut short) when its volume has no job running.
func (n *Node) checkLabels(ctx context.Context, wg *sync.WaitGroup) {
	type member struct {
		d *drive
		v *vol
	}
	n.mu.Lock()
	var ms []member
	for _, d := range n.drives {
		if d.role == RoleMember && d.vol != nil || d.role == RoleSpare {
			ms = append(ms, member{d, d.vol})
		}
	}
	n.mu.Unlock()
	failed := false
	for _, m := range ms {
		d := m.d
		a, err := label.Open(ctx, d.Dev, label.Options{})
		if err != nil {
			continue
		}
		r, ok := a.Current()
		if ok && r.State == lifecycle.Failed {
			d.w.fail("label says failed", nil)
			failed = true
			continue
		}
		if !ok || r.State != lifecycle.Draining || m.v == nil || m.v.busy.Load() {
			continue
		}
		n.log.Info("node: label says draining: draining", "drive", d.Path)
		wg.Go(func() {
			if err := n.Drain(ctx, d.Path); err != nil && ctx.Err() == nil {
				n.log.Warn("node: requested drain not done", "drive", d.Path, "err", err)
			}
		})
	}
	if failed {
		n.takeOutFailed(ctx)
	}
}

// assign starts a rebuild for each volume with a lost or rebuilding slot
// and no job running, onto the slot's rebuilding drive or a spare.
func (n *Node) assign(ctx context.Context, wg *sync.WaitGroup) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	for _, v := range n.vols {
		if v.busy.Load() {
			continue
		}
		st := v.v.Status()
		for _, s := range st.Slots {
			var target *drive
			switch s.State {
			case "rebuilding":
				target = n.byPath(s.Device)
			case "lost":
				target = n.spare()
			default:
				continue
			}
			if target == nil {
				continue
			}
			v.busy.Store(true)
			target.role, target.vol, target.slot = RoleTarget, v, s.Slot
			wg.Go(func() {
				ok := n.rebuild(ctx, v, s.Slot, target)
				v.busy.Store(false)
				if ok {
					n.poke() // another slot may wait
				}
			})
			break
		}
	}
}

// byPath and spare need n.mu.
func (n *Node) byPath(p string) *drive {
	for _, d := range n.drives {
		if d.Path == p || d.Dev.Info().Path == p {
			return d
		}
	}
	return nil
}

func (n *Node) spare() *drive {
	for _, d := range n.drives {
		if d.role == RoleSpare && d.w.failure() == "" {
			return d
		}
	}
	return nil
}

// rebuild fills slot of v onto target; it reports success. A failed
// rebuild is retried at the next AddDrive/RemoveDrive (or restart).
func (n *Node) rebuild(ctx context.Context, v *vol, slot int, target *drive) bool {
	started := n.o.Now()
	job := n.jobs.start(JobStatus{Kind: "rebuild", Volume: v.id.String(), Slot: slot, Target: target.Path,
		Running: true, Progress: Progress{Started: started}})
	n.log.Info("node: rebuild started", "volume", v.id.String(), "slot", slot, "target", target.Path)
	res, err := v.v.Rebuild(ctx, slot, target.Dev, volume.RebuildOptions{Progress: func(p volume.Progress) {
		e := eta(p, started, n.o.Now())
		n.jobs.update(job, func(j *JobStatus) {
			j.Progress = Progress{Done: p.Done, Total: p.Total, Bytes: p.Bytes, Started: started, ETA: e}
		})
	}})
	n.stats.mu.Lock()
	n.stats.rebuilt += int64(res.Written)
	n.stats.mu.Unlock()
	n.jobs.update(job, func(j *JobStatus) {
		j.Running, j.Finished = false, n.o.Now()
		if err != nil {
			j.Err = err.Error()
		}
	})
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case target.role == RoleFailed:
		// Taken out meanwhile (takeOutFailed lost its slot).
	case err == nil:
		target.role, target.detail = RoleMember, ""
		n.log.Info("node: rebuild done", "volume", v.id.String(), "slot", slot, "written", res.Written)
		return true
	case errors.Is(err, volume.ErrInUse):
		// The target turned out not to be free: leave it alone.
		target.role, target.detail, target.vol, target.slot = RoleUnusable, err.Error(), nil, -1
	default:
		// The slot names the target now (rebuilding): the next assign
		// resumes onto it.
		target.detail = fmt.Sprintf("rebuild stopped: %v", err)
		n.log.Warn("node: rebuild stopped", "volume", v.id.String(), "slot", slot, "err", err)
	}
	return false
}

// compactLoop runs a compaction step every o.CompactInterval (none when
// it is negative), on the real clock (the injectable one paces scrubs).
func (n *Node) compactLoop(ctx context.Context) error {
	if n.o.CompactInterval < 0 {
		return nil
	}
	for {
		if err := sleepCtx(ctx, n.o.CompactInterval); err != nil {
			return err
		}
		n.compactStep(ctx)
	}
}

// compactStep compacts at most one extent per drive of each volume with
// no rebuild or drain running (their copying comes first; the engine
// keeps either safe beside a compaction).
func (n *Node) compactStep(ctx context.Context) {
	vs, err := n.volumes()
	if err != nil {
		return
	}
	for _, v := range vs {
		if v.busy.Load() {
			continue
		}
		res, err := v.v.Compact(ctx, n.o.CompactShare, 1)
		if res.Extents > 0 {
			v.full.Store(false)
			n.stats.compacted.Add(int64(res.Extents))
			n.log.Info("node: compacted", "volume", v.id.String(), "extents", res.Extents)
		}
		if err != nil && ctx.Err() == nil {
			n.log.Warn("node: compaction", "volume", v.id.String(), "err", err)
		}
	}
}
