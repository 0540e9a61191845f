package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/volume"
)

// AddDrive adds a new or replacement drive. A free one (checked as in
// Open: label, owner, foreign signatures) becomes a spare, and Run
// rebuilds a degraded volume onto it; a drive holding a member of a known
// volume is left as stale (its slot was given away) and one holding an
// unknown volume is refused (restart the node to assemble it).
func (n *Node) AddDrive(ctx context.Context, d Drive) error {
	if d.Dev == nil {
		return fmt.Errorf("node: add drive: no device")
	}
	if d.Path == "" {
		d.Path = d.Dev.Info().Path
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	if old := n.byPath(d.Path); old != nil && old.role != RoleLost {
		n.mu.Unlock()
		return fmt.Errorf("%w: %s is already a drive of the node (%s)", ErrBusy, d.Path, old.role)
	}
	n.mu.Unlock()
	dr := n.newDrive(d)
	if id, ok := n.classify(ctx, dr); ok {
		dr.role, dr.detail = RoleStale, "holds a member of volume "+id.String()+"; not reassembled while running"
	}
	n.mu.Lock()
	for i, old := range n.drives {
		if old.Path == d.Path {
			n.drives = append(n.drives[:i], n.drives[i+1:]...)
			break
		}
	}
	n.drives = append(n.drives, dr)
	n.mu.Unlock()
	n.log.Info("node: drive added", "drive", d.Path, "role", dr.role, "detail", dr.detail)
	n.poke()
	if dr.role == RoleError {
		return fmt.Errorf("node: add drive %s: %s", d.Path, dr.detail)
	}
	return nil
}

// RemoveDrive takes a pulled or failed drive out: a member's volume goes
// degraded (every block still readable while no more than m are lost, no
// Puts until rebuilt), a spare is no longer used. The device stays the
// caller's; the node does not touch it again. The loss is recorded in
// the other members' labels, so after a restart the removed drive, if
// still attached, is stale and the volume degraded until rebuilt; if
// that record fails on some member, the drive is removed all the same
// and the error (wrapping volume.ErrLabelsNotUpdated) returned.
func (n *Node) RemoveDrive(ctx context.Context, path string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	d := n.byPath(path)
	if d == nil {
		return fmt.Errorf("%w: %s", ErrUnknownDrive, path)
	}
	var lerr error
	if d.vol != nil && d.slot >= 0 {
		if err := d.vol.v.MarkLost(ctx, d.slot); err != nil {
			if !errors.Is(err, volume.ErrLabelsNotUpdated) {
				return err
			}
			lerr = fmt.Errorf("node: remove drive %s: %w", path, err) // lost in memory all the same
		}
	}
	d.role, d.detail, d.vol, d.slot = RoleLost, "removed", nil, -1
	n.log.Warn("node: drive removed", "drive", path)
	n.poke()
	return lerr
}

// Drain moves a member drive's fragments onto a spare while the drive
// keeps serving, so every block keeps all k+m fragments at every moment
// (volume.Replace); Puts and Deletes meanwhile go to both. At the end the
// spare holds the slot and the drained drive's label says drained, with
// no owner: hwmgr may take it. Progress shows in Status().Jobs. Drain
// blocks until done; on failure the spare is freed again and the drive
// stays in service.
func (n *Node) Drain(ctx context.Context, path string) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	d := n.byPath(path)
	if d == nil {
		n.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownDrive, path)
	}
	if d.role != RoleMember || d.vol == nil {
		n.mu.Unlock()
		return fmt.Errorf("%w: %s is %s, not a volume member", ErrBusy, path, d.role)
	}
	v, slot := d.vol, d.slot
	target := n.spare()
	if target == nil {
		n.mu.Unlock()
		return fmt.Errorf("%w: no spare drive to drain %s onto", ErrBusy, path)
	}
	if !v.busy.CompareAndSwap(false, true) {
		n.mu.Unlock()
		return fmt.Errorf("%w: volume %s has a rebuild or drain running", ErrBusy, v.id)
	}
	target.role, target.vol, target.slot = RoleTarget, v, slot
	d.detail = "draining onto " + target.Path
	n.mu.Unlock()
	defer func() {
		v.busy.Store(false)
		n.poke()
	}()

	old, err := label.Open(ctx, d.Dev, label.Options{})
	if err == nil {
		_, err = old.Update(ctx, func(r *label.Record) error { r.State = lifecycle.Draining; return nil })
	}
	if err != nil {
		n.undrain(ctx, d, target, nil)
		return fmt.Errorf("node: drain %s: label: %w", path, err)
	}
	started := n.o.Now()
	job := n.jobs.start(JobStatus{Kind: "drain", Volume: v.id.String(), Slot: slot, From: path, Target: target.Path,
		Running: true, Progress: Progress{Started: started}})
	n.log.Info("node: drain started", "drive", path, "target", target.Path, "volume", v.id.String(), "slot", slot)
	res, err := v.v.Replace(ctx, slot, target.Dev, volume.RebuildOptions{Progress: func(p volume.Progress) {
		e := eta(p, started, n.o.Now())
		n.jobs.update(job, func(j *JobStatus) {
			j.Progress = Progress{Done: p.Done, Total: p.Total, Bytes: p.Bytes, Started: started, ETA: e}
		})
	}})
	n.jobs.update(job, func(j *JobStatus) {
		j.Running, j.Finished = false, n.o.Now()
		if err != nil {
			j.Err = err.Error()
		}
	})
	if err != nil {
		n.undrain(ctx, d, target, old)
		return fmt.Errorf("node: drain %s: %w", path, err)
	}
	n.stats.mu.Lock()
	n.stats.moved += int64(res.Written)
	n.stats.mu.Unlock()
	_, lerr := old.Update(ctx, func(r *label.Record) error {
		r.Owner, r.Payload, r.State = "", nil, lifecycle.Drained
		return nil
	})
	n.mu.Lock()
	target.role, target.detail = RoleMember, ""
	d.role, d.detail, d.vol, d.slot = RoleDrained, "drained onto "+target.Path, nil, -1
	n.mu.Unlock()
	n.log.Info("node: drain done", "drive", path, "target", target.Path, "copied", res.Written)
	if lerr != nil {
		return fmt.Errorf("node: drain %s: done, but its label still names the volume: %w", path, lerr)
	}
	return nil
}

// undrain puts things back after a failed drain: the target is released
// (data zones reset, label free) and becomes a spare; the drive's label
// goes back to in-service if it is still a member.
func (n *Node) undrain(ctx context.Context, d, target *drive, old *label.Area) {
	ta, err := label.Open(ctx, target.Dev, label.Options{})
	if err == nil {
		if r, ok := ta.Current(); ok && r.Owner == volume.Owner && string(r.Payload) == volume.TargetPayload {
			err = n.release(ctx, target, ta)
		}
	}
	if old != nil {
		if _, lerr := old.Update(ctx, func(r *label.Record) error {
			if r.State == lifecycle.Draining {
				r.State = lifecycle.InService
			}
			return nil
		}); lerr != nil {
			n.log.Warn("node: drain undone, but the label still says draining", "drive", d.Path, "err", lerr)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	target.vol, target.slot = nil, -1
	switch reason := target.w.failure(); {
	case reason != "":
		target.role, target.detail = RoleFailed, reason
	case err != nil:
		target.role, target.detail = RoleError, fmt.Sprintf("not released after a failed drain: %v", err)
	default:
		target.role, target.detail = RoleSpare, ""
	}
	if d.role == RoleMember {
		d.detail = ""
	}
}
