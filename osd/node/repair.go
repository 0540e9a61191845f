package node

import (
	"context"
	"errors"
	"sync"

	"github.com/stowage/stowage/osd/volume"
)

type repairItem struct {
	v   *vol
	key Key
}

// repairQueue is a bounded FIFO of blocks to repair, each queued once.
type repairQueue struct {
	mu      sync.Mutex
	cap     int
	items   []repairItem
	set     map[repairItem]bool
	notify  chan struct{}
	done    int64
	failed  int64
	dropped int64
}

func newRepairQueue(n int) *repairQueue {
	return &repairQueue{cap: n, set: map[repairItem]bool{}, notify: make(chan struct{}, 1)}
}

func (q *repairQueue) push(it repairItem) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.set[it] {
		return
	}
	if len(q.items) >= q.cap {
		q.dropped++
		return
	}
	q.set[it] = true
	q.items = append(q.items, it)
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *repairQueue) pop() (repairItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return repairItem{}, false
	}
	it := q.items[0]
	q.items = q.items[1:]
	delete(q.set, it)
	return it, true
}

func (q *repairQueue) status() RepairStatus {
	q.mu.Lock()
	defer q.mu.Unlock()
	return RepairStatus{Queued: len(q.items), Done: q.done, Failed: q.failed, Dropped: q.dropped, Capacity: q.cap}
}

// onDamage is every volume's OnDamage hook: count it, and queue the block
// for repair unless its slot has no drive (a rebuild fixes that).
func (n *Node) onDamage(v *vol, d volume.Damage) {
	n.stats.addDamage(d.Kind, 1)
	if v == nil || d.Kind == volume.Lost {
		return
	}
	n.repairs.push(repairItem{v: v, key: d.Key})
}

// repairLoop drains the repair queue until ctx ends.
func (n *Node) repairLoop(ctx context.Context) error {
	for {
		it, ok := n.repairs.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-n.repairs.notify:
				continue
			}
		}
		res, err := it.v.v.Repair(ctx, it.key)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.stats.mu.Lock()
		n.stats.repaired += int64(len(res.Repaired))
		n.stats.repairFailed += int64(len(res.Failed))
		for _, slot := range res.Repaired {
			for _, d := range res.Damage {
				if d.Slot == slot {
					add(&n.stats.repairedKind, d.Kind.String(), 1)
					break
				}
			}
		}
		n.stats.mu.Unlock()
		n.repairs.mu.Lock()
		switch {
		case err == nil || errors.Is(err, volume.ErrNotFound):
			if len(res.Repaired) > 0 {
				n.repairs.done++
			}
		default:
			n.repairs.failed++
			n.log.Warn("node: repair failed", "volume", it.v.id.String(), "key", keyHex(it.key), "err", err)
		}
		n.repairs.mu.Unlock()
	}
}

func keyHex(k Key) string {
	const hx = "0123456789abcdef"
	b := make([]byte, 64)
	for i, c := range k {
		b[2*i], b[2*i+1] = hx[c>>4], hx[c&15]
	}
	return string(b)
}
