package node

import (
	"context"
	"fmt"
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
	dr := &drive{Drive: d, slot: -1}
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
// caller's; the node does not touch it again.
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
	if d.vol != nil && d.slot >= 0 {
		if err := d.vol.v.MarkLost(d.slot); err != nil {
			return err
		}
	}
	d.role, d.detail, d.vol, d.slot = RoleLost, "removed", nil, -1
	n.log.Warn("node: drive removed", "drive", path)
	n.poke()
	return nil
}
