package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// lostSurvivesRestart (6 loop devices behind zone.Faulty, one 4+2
// volume, no spare): take takes the member of slot 2 out. The node is
// closed and reopened on all six drives, the one taken out readable
// again: the volume is degraded and not writable, that drive is stale
// and its bytes are unchanged, Puts are refused and every block reads.
// Then a blank drive is added, Run rebuilds onto it, the volume is
// healthy and takes Puts, and the old drive is still untouched.
func lostSurvivesRestart(t *testing.T, take func(n *Node, d Drive, f *zone.Faulty)) {
	ctx := context.Background()
	paths := loops(t, 6)
	ds, fs := faulty(t, open(t, paths))
	n, err := Open(ctx, ds, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	bs := putBlocks(t, n, rand.New(rand.NewPCG(91, 92)), 10, 100<<10)
	victim := slotDrive(t, n, ds, 2)
	take(n, ds[victim], fs[victim])
	if st := n.Status(); st.Volumes[0].State != "degraded" || st.Volumes[0].Writable {
		t.Fatalf("after the loss: volume %+v", st.Volumes[0])
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	fs[victim].Clear()
	before := loopdev.Hash(t, paths[victim])

	n, err = Open(ctx, ds, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	st := n.Status()
	vs := st.Volumes[0]
	if vs.State != "degraded" || vs.Writable || vs.Slots[2].State != "lost" {
		t.Fatalf("reopened: volume %+v", vs)
	}
	if r := role(st, ds[victim].Path); r.Role != RoleStale || r.Slot != -1 {
		t.Errorf("the drive taken out, reopened: %+v, want stale", r)
	}
	b := randBlock(rand.New(rand.NewPCG(93, 94)), 8192)
	if _, err := n.Put(ctx, b.key, b.data); !errors.Is(err, ErrFull) {
		t.Errorf("put on the reopened node: %v, want ErrFull", err)
	}
	readAll(t, n, bs)
	if h := loopdev.Hash(t, paths[victim]); h != before {
		t.Errorf("the stale drive changed on reopen: %s -> %s", before, h)
	}

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.Run(rctx) })
	defer func() { cancel(); wg.Wait() }()
	fresh := loops(t, 1)
	if err := n.AddDrive(ctx, open(t, fresh)[0]); err != nil {
		t.Fatal(err)
	}
	st = rebuilt(t, n, ds[victim].Path)
	if r := role(st, fresh[0]); r.Role != RoleMember || r.Slot != 2 {
		t.Errorf("added drive: %+v, want the member of slot 2", r)
	}
	if !st.Volumes[0].Writable {
		t.Errorf("rebuilt volume not writable: %+v", st.Volumes[0])
	}
	if _, err := n.Put(ctx, b.key, b.data); err != nil {
		t.Fatalf("put after the rebuild: %v", err)
	}
	readAll(t, n, append(bs, b))
	if r := role(n.Status(), ds[victim].Path); r.Role != RoleStale {
		t.Errorf("old drive after the rebuild: %+v, want stale", r)
	}
	if h := loopdev.Hash(t, paths[victim]); h != before {
		t.Errorf("the stale drive changed: %s -> %s", before, h)
	}
}

// TestFailedMemberStaysLostAfterRestart: the member fails its writes
// (zone.Faulty); a Put finds it and the node takes it out.
func TestFailedMemberStaysLostAfterRestart(t *testing.T) {
	lostSurvivesRestart(t, func(n *Node, d Drive, f *zone.Faulty) {
		if err := f.Inject(zone.Rule{Ops: zone.OpWrite | zone.OpFlush}); err != nil {
			t.Fatal(err)
		}
		b := randBlock(rand.New(rand.NewPCG(95, 96)), 4096)
		if _, err := n.Put(context.Background(), b.key, b.data); !errors.Is(err, ErrFull) {
			t.Errorf("put onto the failing member: %v, want ErrFull", err)
		}
		if r := role(n.Status(), d.Path); r.Role != RoleFailed {
			t.Fatalf("failing member: %+v, want failed", r)
		}
	})
}

// TestRemovedMemberStaysLostAfterRestart: RemoveDrive takes it out.
func TestRemovedMemberStaysLostAfterRestart(t *testing.T) {
	lostSurvivesRestart(t, func(n *Node, d Drive, _ *zone.Faulty) {
		if err := n.RemoveDrive(context.Background(), d.Path); err != nil {
			t.Fatal(err)
		}
	})
}
