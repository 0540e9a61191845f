package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/stowage/stowage/osd/volume"
	"github.com/stowage/stowage/osd/zone"
)

// Failed-drive detection. Every drive's device is wrapped in a watch that
// sees the error of each operation the engines, the labels and the jobs
// run on it:
//
//   - a failed write, flush, zone reset or finish (the drive lost data we
//     gave it), or a device gone (ENXIO, ENODEV, a read past its end):
//     the drive has failed at once;
//   - a failed read or zone report: counted; Options.ReadErrorLimit of
//     them within Options.ReadErrorWindow and the drive has failed.
//
// A failed drive is taken out like RemoveDrive (takeOutFailed): its slot
// is lost, the volume degraded (reads reconstruct, no Puts), and Run
// rebuilds the slot onto a spare. The watch only records the verdict and
// pokes Run; the take-out itself runs from Run and from a failed Put,
// never inside the I/O path (which may hold engine or volume locks).

// watch is a drive's device seen through its error history.
type watch struct {
	zone.Device
	n    *Node
	path string
	ser  string

	mu     sync.Mutex
	reads  []time.Time // read errors within the window, oldest first
	reason string      // why the drive failed; "" while it has not
}

func (n *Node) watch(d Drive) *watch {
	return &watch{Device: d.Dev, n: n, path: d.Path, ser: d.Serial}
}

// Unwrap returns the watched device.
func (w *watch) Unwrap() zone.Device { return w.Device }

// failure is why the drive failed ("" while it has not).
func (w *watch) failure() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reason
}

// fail records the verdict (the first reason wins) and wakes Run.
func (w *watch) fail(reason string, err error) {
	w.mu.Lock()
	first := w.reason == ""
	if first {
		w.reason = reason
	}
	w.mu.Unlock()
	if !first {
		return
	}
	w.n.log.Warn("node: drive failed", "serial", w.ser, "drive", w.path, "reason", reason, "err", err)
	w.n.poke()
}

// ignored says whether err says nothing about the drive: none, a caller's
// bad request or a cancelled context.
func ignored(err error) bool {
	return err == nil || errors.Is(err, zone.ErrUnaligned) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// gone says whether err means the device is no longer there.
func gone(err error) bool {
	return errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.ENODEV) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// fatal handles what every error says: nothing (ignored), or the device
// is gone (the drive failed). It reports whether err is dealt with.
func (w *watch) fatal(op string, err error) bool {
	switch {
	case ignored(err):
		return true
	case gone(err):
		w.fail("device gone: "+op, err)
		return true
	}
	return false
}

func (w *watch) writeErr(op string, err error) {
	if !w.fatal(op, err) {
		w.fail(op+" error", err)
	}
}

func (w *watch) readErr(op string, err error) {
	if w.fatal(op, err) {
		return
	}
	limit, window := w.n.o.ReadErrorLimit, w.n.o.ReadErrorWindow
	if limit < 0 {
		return
	}
	now := w.n.o.Now()
	w.mu.Lock()
	keep := w.reads[:0]
	for _, t := range w.reads {
		if now.Sub(t) < window {
			keep = append(keep, t)
		}
	}
	w.reads = append(keep, now)
	count := len(w.reads)
	w.mu.Unlock()
	if count >= limit {
		w.fail(fmt.Sprintf("%d read errors within %v", count, window), err)
	}
}

// ReadAt implements zone.Device.
func (w *watch) ReadAt(p []byte, off int64) (int, error) {
	c, err := w.Device.ReadAt(p, off)
	w.readErr("read", err)
	return c, err
}

// ReportZones implements zone.Device.
func (w *watch) ReportZones(ctx context.Context, first, count int) ([]zone.Zone, error) {
	zs, err := w.Device.ReportZones(ctx, first, count)
	w.readErr("zone report", err)
	return zs, err
}

// WriteAt implements zone.Device.
func (w *watch) WriteAt(p []byte, off int64) (int, error) {
	c, err := w.Device.WriteAt(p, off)
	w.writeErr("write", err)
	return c, err
}

// Flush implements zone.Device.
func (w *watch) Flush(ctx context.Context) error {
	err := w.Device.Flush(ctx)
	w.writeErr("flush", err)
	return err
}

// Reset implements zone.Device.
func (w *watch) Reset(ctx context.Context, i int) error {
	err := w.Device.Reset(ctx, i)
	w.writeErr("zone reset", err)
	return err
}

// Finish implements zone.Device.
func (w *watch) Finish(ctx context.Context, i int) error {
	err := w.Device.Finish(ctx, i)
	w.writeErr("zone finish", err)
	return err
}

// takeOutFailed takes every drive whose watch says failed out of the
// node, like RemoveDrive: a member's slot is lost (its volume degraded;
// Run rebuilds it onto a spare), a spare is no longer used. It returns
// how many it took out.
func (n *Node) takeOutFailed(ctx context.Context) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return 0
	}
	taken := 0
	for _, d := range n.drives {
		reason := d.w.failure()
		if reason == "" {
			continue
		}
		switch d.role {
		case RoleMember, RoleTarget, RoleSpare:
		default:
			continue // already out, or never used
		}
		if d.vol != nil && d.slot >= 0 && holds(d.vol, d.slot, d.Dev.Info().Path) {
			// The loss is recorded in the other members' labels; a
			// client giving up on its Put must not cut that short.
			err := d.vol.v.MarkLost(context.WithoutCancel(ctx), d.slot)
			switch {
			case errors.Is(err, volume.ErrLabelsNotUpdated):
				n.log.Error("node: failed drive taken out, but not recorded in every member's label", "drive", d.Path, "err", err)
			case err != nil:
				n.log.Warn("node: failed drive not taken out of its volume", "drive", d.Path, "err", err)
				continue
			}
		} else if d.role == RoleTarget {
			// A drain target: the drain fails on it and frees it
			// (undrain), which sees the verdict.
			continue
		}
		d.role, d.detail, d.vol, d.slot = RoleFailed, reason, nil, -1
		n.stats.drivesFailed.Add(1)
		n.log.Warn("node: failed drive taken out", "serial", d.Serial, "drive", d.Path, "reason", reason)
		taken++
	}
	if taken > 0 {
		n.poke() // rebuild onto a spare
	}
	return taken
}

// holds says whether slot of v is on the device at path now.
func holds(v *vol, slot int, path string) bool {
	st := v.v.Status()
	return slot < len(st.Slots) && st.Slots[slot].Device == path
}
